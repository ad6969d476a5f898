//! Manifest inheritance: `inherit = "base.toml"` at the top of a manifest.
//!
//! A manifest names at most one base, by a path relative to its own
//! directory; a base may inherit in turn. [`Chain::read`] follows the chain
//! (most derived file first) and [`Chain::merged`] folds it into one table,
//! the base at the bottom: tables merge key by key, recursively; anything
//! else (scalars, arrays, and a table meeting a non-table) is replaced by
//! the more derived file's value. Arrays are never concatenated, so a child
//! states a whole list or none of it. A key keeps the place it has in the
//! base, and keys the child adds follow the base's, so the base's task order
//! stands and a child's new tasks come last.
//!
//! Invariants: the chain has no file twice (a cycle is an error naming its
//! files, found before anything is merged); a missing or unreadable base is
//! an error naming the file that inherits it; the two chain keys (`inherit`
//! and the `base` marker) never reach the merged table, so the manifest's
//! schema, with its unknown-key errors, applies to the merged result
//! unchanged. The `base` marker says "only a base, not an image" and belongs
//! to its own file: it is not inherited.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// The key naming a file's base.
pub const INHERIT_KEY: &str = "inherit";
/// The key marking a file as only a base for others (`base = true`).
pub const BASE_KEY: &str = "base";

/// Why a chain of manifests cannot be assembled.
#[derive(Debug)]
pub enum InheritError {
    /// A file of the chain cannot be read; `by` is the file inheriting it.
    Unreadable {
        path: PathBuf,
        by: Option<PathBuf>,
        source: std::io::Error,
    },
    /// A file of the chain is not TOML.
    Syntax { path: PathBuf, message: String },
    /// A chain key has the wrong type.
    BadKey {
        path: PathBuf,
        key: &'static str,
        expected: &'static str,
    },
    /// The chain comes back to a file already in it (the files in order).
    Cycle(Vec<PathBuf>),
}

impl fmt::Display for InheritError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InheritError::Unreadable {
                path,
                by: Some(by),
                source,
            } => write!(
                f,
                "{}: inherits {}, which cannot be read: {source}",
                by.display(),
                path.display()
            ),
            InheritError::Unreadable {
                path,
                by: None,
                source,
            } => write!(f, "cannot read manifest {}: {source}", path.display()),
            InheritError::Syntax { path, message } => write!(f, "{}: {message}", path.display()),
            InheritError::BadKey {
                path,
                key,
                expected,
            } => write!(f, "{}: `{key}` must be {expected}", path.display()),
            InheritError::Cycle(files) => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "manifest inheritance cycle: {}",
                    names.join(" inherits ")
                )
            }
        }
    }
}

/// The I/O error is part of the message, so it is not repeated as a source.
impl std::error::Error for InheritError {}

/// One file of a chain, its chain keys removed.
#[derive(Debug, Clone)]
struct Layer {
    path: PathBuf,
    table: Table,
}

/// A manifest and the files it inherits, most derived first.
#[derive(Debug, Clone)]
pub struct Chain {
    layers: Vec<Layer>,
    /// Whether the first file carries `base = true`.
    marked_base: bool,
    /// Whether the first file has a chain key (so its text alone is not a manifest).
    has_chain_keys: bool,
}

/// The file's chain keys, removed from its table: (`inherit`, `base`).
fn take_chain_keys(path: &Path, table: &mut Table) -> Result<(Option<String>, bool), InheritError> {
    let bad = |key, expected| InheritError::BadKey {
        path: path.to_path_buf(),
        key,
        expected,
    };
    let inherit = match table.remove(INHERIT_KEY) {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(bad(INHERIT_KEY, "a path (a string)")),
    };
    let base = match table.remove(BASE_KEY) {
        None => false,
        Some(Value::Boolean(b)) => b,
        Some(_) => return Err(bad(BASE_KEY, "`true` or `false`")),
    };
    Ok((inherit, base))
}

fn parse_table(text: &str, path: &Path) -> Result<Table, InheritError> {
    text.parse::<Table>().map_err(|e| InheritError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Where a file is, for telling whether the chain has come back to it.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Chain {
    /// Follows the chain from the manifest at `path`, whose text is `text`.
    pub fn from_text(text: &str, path: &Path) -> Result<Chain, InheritError> {
        let mut table = parse_table(text, path)?;
        let has_chain_keys = table.contains_key(INHERIT_KEY) || table.contains_key(BASE_KEY);
        let (mut next, marked_base) = take_chain_keys(path, &mut table)?;
        let mut layers = vec![Layer {
            path: path.to_path_buf(),
            table,
        }];
        let mut seen = vec![identity(path)];
        while let Some(relative) = next.take() {
            let by = layers.last().expect("one layer at least").path.clone();
            let path = by.parent().unwrap_or(Path::new("")).join(&relative);
            let id = identity(&path);
            if seen.contains(&id) {
                let mut files: Vec<PathBuf> = layers.iter().map(|l| l.path.clone()).collect();
                files.push(path);
                return Err(InheritError::Cycle(files));
            }
            let text =
                std::fs::read_to_string(&path).map_err(|source| InheritError::Unreadable {
                    path: path.clone(),
                    by: Some(by.clone()),
                    source,
                })?;
            let mut table = parse_table(&text, &path)?;
            // A base's own marker says nothing about the files inheriting it.
            (next, _) = take_chain_keys(&path, &mut table)?;
            seen.push(id);
            layers.push(Layer { path, table });
        }
        Ok(Chain {
            layers,
            marked_base,
            has_chain_keys,
        })
    }

    /// Reads the manifest at `path` and follows its chain.
    #[cfg(test)]
    pub fn read(path: &Path) -> Result<Chain, InheritError> {
        let text = std::fs::read_to_string(path).map_err(|source| InheritError::Unreadable {
            path: path.to_path_buf(),
            by: None,
            source,
        })?;
        Self::from_text(&text, path)
    }

    /// Whether the named file says it is only a base (`base = true`).
    pub fn is_marked_base(&self) -> bool {
        self.marked_base
    }

    /// Whether the named file's text, as it stands, is the whole manifest
    /// (no base, no chain keys), so it can be deserialized with line numbers.
    pub fn is_plain(&self) -> bool {
        self.layers.len() == 1 && !self.has_chain_keys
    }

    /// The files of the chain, most derived first.
    #[cfg(test)]
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.layers.iter().map(|l| l.path.as_path())
    }

    /// The named file, and what it inherits, for messages.
    pub fn describe(&self) -> String {
        let mut out = self.layers[0].path.display().to_string();
        for (i, l) in self.layers.iter().enumerate().skip(1) {
            let how = if i == 1 {
                " (inheriting"
            } else {
                ", which inherits"
            };
            out.push_str(&format!("{how} {}", l.path.display()));
        }
        if self.layers.len() > 1 {
            out.push(')');
        }
        out
    }

    /// The chain folded into one table, the root base at the bottom.
    pub fn merged(&self) -> Table {
        let mut layers = self.layers.iter().rev();
        let mut out = layers.next().expect("one layer at least").table.clone();
        for l in layers {
            merge_into(&mut out, l.table.clone());
        }
        out
    }

    /// The files that put `key` into the merged table at `under` (a path
    /// of table keys). With an empty `under` only top-level keys count;
    /// otherwise `key` may be at any depth below `under`.
    pub fn origins_of(&self, under: &[&str], key: &str) -> Vec<&Path> {
        let merged = Value::Table(self.merged());
        let Some(start) = walk(&merged, under) else {
            return vec![];
        };
        let mut occurrences = vec![];
        let prefix: Vec<Step> = under.iter().map(|k| Step::Key(k.to_string())).collect();
        if under.is_empty() {
            if start.get(key).is_some() {
                occurrences.push(vec![Step::Key(key.to_string())]);
            }
        } else {
            find(start, key, &mut prefix.clone(), &mut occurrences);
        }
        let mut files: Vec<&Path> = vec![];
        for at in &occurrences {
            for path in self.suppliers(at) {
                if !files.contains(&path) {
                    files.push(path);
                }
            }
        }
        files
    }

    /// The files whose own text holds the value at `at` in the merged
    /// table: the most derived file defining it, and the bases below it
    /// for as long as that value is a table (tables merge; anything else
    /// replaces, so a file below a replacement contributes nothing).
    fn suppliers(&self, at: &[Step]) -> Vec<&Path> {
        let mut out = vec![];
        for l in &self.layers {
            let root = Value::Table(l.table.clone());
            let mut here = &root;
            let mut defined = true;
            for (depth, step) in at.iter().enumerate() {
                let next = match (here, step) {
                    (Value::Table(t), Step::Key(k)) => t.get(k),
                    (Value::Array(a), Step::Index(i)) => a.get(*i),
                    _ => None,
                };
                let Some(next) = next else {
                    defined = false;
                    break;
                };
                // Past an array the whole value is this file's.
                if matches!(next, Value::Array(_)) && depth + 1 < at.len() {
                    let whole = walk_steps(next, &at[depth + 1..]).is_some();
                    if whole {
                        out.push(l.path.as_path());
                    }
                    return out;
                }
                here = next;
            }
            if defined {
                out.push(l.path.as_path());
                if !matches!(here, Value::Table(_)) {
                    return out;
                }
            }
        }
        out
    }
}

/// One step into a TOML value.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn walk<'v>(v: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().try_fold(v, |v, k| v.get(*k))
}

fn walk_steps<'v>(v: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

/// Every place below `v` (reached by `at`) where `key` is a table key.
fn find(v: &Value, key: &str, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Table(t) => {
            for (k, child) in t {
                at.push(Step::Key(k.clone()));
                if k == key {
                    out.push(at.clone());
                }
                find(child, key, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Step::Index(i));
                find(child, key, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Lays `child` over `base`: tables merge key by key, anything else replaces.
fn merge_into(base: &mut Table, child: Table) {
    for (key, value) in child {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(below)), Value::Table(above)) => merge_into(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::manifest::{load, Manifest};

    /// A complete manifest but for its name, marked as a base.
    const BASE: &str = r#"
base = true
[kernel.tdx]
tdx-keyids = 32
[qemu]
smp = "2"
args = ["-a", "-b"]
[tasks.jefe]
crate = "task-jefe"
priority = 0
memory = { text = 0x10000, ram = 0x4000 }
rights = { restart = ["*"] }
[tasks.ping]
crate = "task-ping"
priority = 2
memory = { text = 0x10000, ram = 0x4000 }
task-slots = ["pong"]
[tasks.pong]
crate = "task-pong"
priority = 1
memory = { text = 0x10000, ram = 0x4000 }
notifications = ["wake", "timer"]
[tasks.idle]
crate = "task-idle"
priority = 9
memory = { text = 0x1000, ram = 0x1000 }
"#;

    /// A fresh directory holding `files` (name, text); names may have directories.
    fn scratch(test: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-inherit-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn task<'m>(m: &'m Manifest, name: &str) -> &'m crate::manifest::TaskSettings {
        &m.parsed_tasks.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn load_err(path: &Path) -> String {
        format!("{:#}", load(path).unwrap_err())
    }

    #[test]
    fn a_child_overrides_its_base_key_by_key() {
        let dir = scratch(
            "override",
            &[
                ("base.toml", BASE),
                (
                    "child.toml",
                    "inherit = \"base.toml\"\nname = \"c\"\n[tasks.ping]\npriority = 3\n[qemu]\nsmp = \"4\"\n",
                ),
            ],
        );
        let m = load(&dir.join("child.toml")).unwrap();
        assert_eq!(m.name, "c");
        assert_eq!(m.qemu.smp, "4");
        let ping = task(&m, "ping");
        assert_eq!(ping.priority, 3);
        assert_eq!(
            ping.crate_name, "task-ping",
            "the rest of the table is the base's"
        );
        let names: Vec<_> = m.parsed_tasks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["jefe", "ping", "pong", "idle"],
            "the base's order stands"
        );
        assert_eq!(m.path, dir.join("child.toml"));
    }

    #[test]
    fn nested_tables_merge_recursively() {
        let dir = scratch(
            "nested",
            &[
                ("base.toml", BASE),
                (
                    "child.toml",
                    "inherit = \"base.toml\"\nname = \"c\"\n[tasks.pong.memory]\nram = 0x8000\n[kernel.tdx]\nabsent = true\n[tasks.extra]\ncrate = \"x\"\npriority = 5\nmemory = { text = 0x1000, ram = 0 }\n",
                ),
            ],
        );
        let m = load(&dir.join("child.toml")).unwrap();
        let pong = task(&m, "pong");
        assert_eq!((pong.memory.text, pong.memory.ram), (0x10000, 0x8000));
        let tdx = m.kernel.tdx.as_ref().unwrap();
        assert!(tdx.absent);
        assert_eq!(
            tdx.tdx_keyids, 32,
            "the base's key two tables down survives"
        );
        let names: Vec<_> = m.parsed_tasks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["jefe", "ping", "pong", "idle", "extra"],
            "new tasks come last"
        );
    }

    #[test]
    fn arrays_are_replaced_not_concatenated() {
        let dir = scratch(
            "arrays",
            &[
                ("base.toml", BASE),
                (
                    "child.toml",
                    "inherit = \"base.toml\"\nname = \"c\"\n[qemu]\nargs = [\"-c\"]\n[tasks.pong]\nnotifications = [\"timer\", \"wake\"]\n",
                ),
            ],
        );
        let m = load(&dir.join("child.toml")).unwrap();
        assert_eq!(m.qemu.args, ["-c"]);
        assert_eq!(task(&m, "pong").notifications, ["timer", "wake"]);
    }

    #[test]
    fn a_chain_is_followed_relative_to_each_file() {
        let dir = scratch(
            "chain",
            &[
                ("common/base.toml", BASE),
                (
                    "common/mid.toml",
                    "base = true\ninherit = \"base.toml\"\n[qemu]\nmemory = \"512M\"\n",
                ),
                (
                    "images/child.toml",
                    "inherit = \"../common/mid.toml\"\nname = \"c\"\n[qemu]\nsmp = \"3\"\n",
                ),
            ],
        );
        let child = dir.join("images/child.toml");
        let m = load(&child).unwrap();
        assert_eq!((m.qemu.smp.as_str(), m.qemu.memory.as_str()), ("3", "512M"));
        assert_eq!(m.qemu.args, ["-a", "-b"]);
        let chain = super::Chain::read(&child).unwrap();
        assert_eq!(chain.files().count(), 3);
        assert!(!chain.is_marked_base(), "a base's marker is not inherited");
        let e = load_err(&dir.join("common/mid.toml"));
        assert!(e.contains("only a base"), "{e}");
        assert!(e.contains("mid.toml"), "{e}");
    }

    #[test]
    fn a_cycle_is_an_error_naming_its_files() {
        let dir = scratch(
            "cycle",
            &[
                ("a.toml", "inherit = \"b.toml\"\nname = \"a\"\n"),
                ("b.toml", "inherit = \"c.toml\"\n"),
                ("c.toml", "inherit = \"./a.toml\"\n"),
                ("self.toml", "inherit = \"self.toml\"\n"),
            ],
        );
        let e = load_err(&dir.join("a.toml"));
        assert!(e.contains("inheritance cycle"), "{e}");
        for f in [
            "a.toml inherits",
            "b.toml inherits",
            "c.toml inherits",
            "./a.toml",
        ] {
            assert!(e.contains(f), "{f}: {e}");
        }
        let e = load_err(&dir.join("self.toml"));
        assert!(e.contains("inheritance cycle"), "{e}");
    }

    #[test]
    fn a_missing_base_is_an_error_naming_both_files() {
        let dir = scratch(
            "missing",
            &[("child.toml", "inherit = \"nowhere.toml\"\nname = \"c\"\n")],
        );
        let e = load_err(&dir.join("child.toml"));
        assert!(e.contains("child.toml: inherits"), "{e}");
        assert!(e.contains("nowhere.toml, which cannot be read"), "{e}");
        let dir = scratch(
            "not-a-path",
            &[("child.toml", "inherit = 3\nname = \"c\"\n")],
        );
        let e = load_err(&dir.join("child.toml"));
        assert!(e.contains("`inherit` must be a path"), "{e}");
    }

    #[test]
    fn an_unknown_key_in_a_base_is_an_error_naming_the_base() {
        let dir = scratch(
            "unknown-in-base",
            &[
                ("base.toml", &BASE.replace("priority = 2", "priorty = 2")),
                (
                    "child.toml",
                    "inherit = \"base.toml\"\nname = \"c\"\n[tasks.ping]\npriority = 2\n",
                ),
            ],
        );
        let e = load_err(&dir.join("child.toml"));
        assert!(
            e.contains("in [tasks.ping]: unknown field `priorty`"),
            "{e}"
        );
        assert!(e.contains("did you mean `priority`"), "{e}");
        assert!(e.contains("`priorty` is set in"), "{e}");
        assert!(e.contains("base.toml"), "{e}");
        assert!(
            e.ends_with(&format!("set in {}", dir.join("base.toml").display())),
            "{e}"
        );
        let dir = scratch(
            "unknown-in-base-tdx",
            &[
                (
                    "base.toml",
                    &BASE.replace("tdx-keyids = 32", "tdx-keyid = 32"),
                ),
                ("child.toml", "inherit = \"base.toml\"\nname = \"c\"\n"),
            ],
        );
        let e = load_err(&dir.join("child.toml"));
        assert!(e.contains("in [kernel]: unknown field `tdx-keyid`"), "{e}");
        assert!(e.contains("did you mean `tdx-keyids`"), "{e}");
        assert!(
            e.ends_with(&format!("set in {}", dir.join("base.toml").display())),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_child_is_an_error_naming_the_child() {
        let dir = scratch(
            "unknown-in-child",
            &[
                ("base.toml", BASE),
                ("top.toml", "inherit = \"base.toml\"\nnmae = \"c\"\n"),
                (
                    "qemu.toml",
                    "inherit = \"base.toml\"\nname = \"c\"\n[qemu]\nsmpp = \"3\"\n",
                ),
            ],
        );
        let e = load_err(&dir.join("top.toml"));
        assert!(e.contains("unknown field `nmae`"), "{e}");
        assert!(e.contains("did you mean `name`"), "{e}");
        assert!(
            e.ends_with(&format!("set in {}", dir.join("top.toml").display())),
            "{e}"
        );
        let e = load_err(&dir.join("qemu.toml"));
        assert!(e.contains("in [qemu]: unknown field `smpp`"), "{e}");
        assert!(e.contains("did you mean `smp`"), "{e}");
        assert!(
            e.ends_with(&format!("set in {}", dir.join("qemu.toml").display())),
            "{e}"
        );
        assert!(
            e.starts_with(&format!("{} (inheriting", dir.join("qemu.toml").display())),
            "{e}"
        );
    }

    /// A rule broken only by the merged result is reported for the file named.
    #[test]
    fn the_merged_manifest_is_validated() {
        let dir = scratch(
            "validated",
            &[
                ("base.toml", BASE),
                (
                    "child.toml",
                    "inherit = \"base.toml\"\nname = \"c\"\n[tasks.pong]\npriority = 3\n",
                ),
            ],
        );
        let e = load_err(&dir.join("child.toml"));
        assert!(e.contains("invalid manifest"), "{e}");
        assert!(e.contains("must go uphill"), "{e}");
    }
}
