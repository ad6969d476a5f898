//! The rule "no module imports in a circle inside a crate", checked over
//! the source text of every workspace crate.
//!
//! Pattern: a textual dependency graph. For each crate, the nodes are its
//! top-level modules (`src/NAME.rs` or `src/NAME/`); an edge `a → b` is a
//! path `crate::b…` anywhere in `a`'s files, or `super::b…` in `a`'s own
//! top-level file (where `super` is the crate root). Comment lines are
//! skipped. A strongly connected component of more than one module is a
//! cycle; each is reported with one concrete path through it and, for every
//! step, the file and line that makes the edge.
//!
//! This is deliberately simple text matching, not name resolution: a
//! `use` of a re-export is counted against the module named in the path,
//! which is what a reader sees. The kernel's `arch` module is exempt (its
//! entry code and the portable kernel call each other by design), and so
//! are test files (`tests.rs`, `*_tests.rs`): a test may use any module.
//!
//! [`KNOWN`] lists the circles that existed when the rule was introduced
//! and are being removed by their owners; [`new_cycles`] reports every
//! other one. Delete an entry once its circle is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Module directories not checked, relative to the workspace root.
const EXEMPT: &[&str] = &["sys/kern/src/arch"];

/// Circles being removed, as (crate directory, modules in sorted order).
pub const KNOWN: &[(&str, &[&str])] = &[];

/// The cycles under `root` that are not in [`KNOWN`].
pub fn new_cycles(root: &Path) -> Result<Vec<Cycle>> {
    let known: Vec<(PathBuf, Vec<String>)> = KNOWN
        .iter()
        .map(|(dir, modules)| {
            let mut modules: Vec<String> = modules.iter().map(ToString::to_string).collect();
            modules.sort();
            (root.join(dir).join("src"), modules)
        })
        .collect();
    Ok(workspace_cycles(root)?
        .into_iter()
        .filter(|c| {
            let mut modules = c.modules.clone();
            modules.sort();
            !known.contains(&(c.src.clone(), modules))
        })
        .collect())
}

/// Where an edge comes from: the first place it was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
}

/// A circle of module imports inside one crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The crate's `src` directory.
    pub src: PathBuf,
    /// The modules in order; the last imports the first.
    pub modules: Vec<String>,
    /// For each step `modules[i] → modules[i + 1]` (wrapping), where.
    pub sites: Vec<Site>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut path = self.modules.clone();
        path.extend(self.modules.first().cloned());
        writeln!(f, "{}: {}", self.src.display(), path.join(" -> "))?;
        for (i, site) in self.sites.iter().enumerate() {
            let to = &self.modules[(i + 1) % self.modules.len()];
            writeln!(
                f,
                "    {} -> {to}: {}:{}",
                self.modules[i],
                site.file.display(),
                site.line
            )?;
        }
        Ok(())
    }
}

type Graph = BTreeMap<String, BTreeMap<String, Site>>;

/// Every cycle in every crate under `root`'s `members` directories.
pub fn workspace_cycles(root: &Path) -> Result<Vec<Cycle>> {
    let mut cycles = vec![];
    for group in ["build", "sys", "task", "drv", "test-suite"] {
        let dir = root.join(group);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut crates: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("src")))
            .filter(|p| p.is_dir())
            .collect();
        crates.sort();
        for src in crates {
            let exempt: Vec<PathBuf> = EXEMPT.iter().map(|e| root.join(e)).collect();
            cycles.extend(crate_cycles(&src, &exempt)?);
        }
    }
    Ok(cycles)
}

/// The cycles among the top-level modules of the crate whose sources are
/// in `src`, leaving out modules whose directory is in `exempt`.
pub fn crate_cycles(src: &Path, exempt: &[PathBuf]) -> Result<Vec<Cycle>> {
    let graph = graph(src, exempt)?;
    Ok(strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|component| {
            let modules = circle(&graph, &component);
            let sites = (0..modules.len())
                .map(|i| graph[&modules[i]][&modules[(i + 1) % modules.len()]].clone())
                .collect();
            Cycle {
                src: src.to_path_buf(),
                modules,
                sites,
            }
        })
        .collect())
}

/// The files of each top-level module: `src/NAME.rs` (the module's own
/// file) and everything under `src/NAME/`.
fn modules(src: &Path, exempt: &[PathBuf]) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let entries = std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))?;
    for entry in entries {
        let path = entry?.path();
        if exempt.contains(&path) || exempt.contains(&path.with_extension("")) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if matches!(stem, "lib" | "main" | "bin") {
            continue;
        }
        if path.is_dir() {
            let mut files = vec![];
            rust_files(&path, &mut files)?;
            out.entry(stem.to_string()).or_default().extend(files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.entry(stem.to_string()).or_default().push(path);
        }
    }
    Ok(out)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `file` is a module's own top-level file, where `super::` names
/// the crate root.
fn is_top_level(src: &Path, file: &Path) -> bool {
    file.parent() == Some(src)
        || (file.file_name().is_some_and(|n| n == "mod.rs")
            && file.parent().and_then(Path::parent) == Some(src))
}

/// Whether `file` holds only tests (`tests.rs`, `*_tests.rs`).
fn is_test_file(file: &Path) -> bool {
    file.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

fn graph(src: &Path, exempt: &[PathBuf]) -> Result<Graph> {
    let modules = modules(src, exempt)?;
    let mut graph: Graph = modules
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (module, files) in &modules {
        for file in files.iter().filter(|f| !is_test_file(f)) {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let top = is_top_level(src, file);
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                let mut targets = referenced(line, "crate::");
                if top {
                    targets.extend(referenced(line, "super::"));
                }
                for target in targets {
                    if target != *module && modules.contains_key(&target) {
                        let edges = graph.entry(module.clone()).or_default();
                        edges.entry(target).or_insert_with(|| Site {
                            file: file.clone(),
                            line: n + 1,
                        });
                    }
                }
            }
        }
    }
    Ok(graph)
}

/// The module names a line reaches through `prefix` (`crate::` or
/// `super::`), including inside `use prefix::{a, b::c}` groups.
fn referenced(line: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        // Not the tail of a longer path (`foo::crate::`) or identifier.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                out.extend(ident(item.trim()));
            }
        } else {
            out.extend(ident(rest));
        }
    }
    out
}

/// The leading identifier of `text`, if any.
fn ident(text: &str) -> Option<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0 && !text.starts_with(|c: char| c.is_ascii_digit())).then(|| text[..end].to_string())
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = vec![];
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        out: vec![],
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One shortest circle through the first module of a component, staying
/// inside the component (breadth-first, so the path printed is short).
fn circle(graph: &Graph, component: &[String]) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let start = component[0].as_str();
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].keys().map(String::as_str) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![v.to_string()];
                let mut at = v;
                while at != start {
                    at = parent[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    // A component of more than one module always has a circle through
    // each member; keep the whole component if that ever fails.
    component.to_vec()
}

#[cfg(test)]
mod tests {
    use super::{crate_cycles, new_cycles, referenced};
    use std::path::Path;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_plain_grouped_and_super_paths() {
        let r = referenced("use crate::{types::X, layout, self};", "crate::");
        assert_eq!(
            r.into_iter().collect::<Vec<_>>(),
            ["layout", "self", "types"]
        );
        let r = referenced("let a = crate::place::run(super::verify::x);", "super::");
        assert_eq!(r.into_iter().collect::<Vec<_>>(), ["verify"]);
        assert!(referenced("use other_crate::crate_like::x;", "crate::").is_empty());
    }

    #[test]
    fn finds_a_circle_with_its_sites_and_ignores_comments_and_exempt_dirs() {
        let dir = tempdir();
        let src = dir.join("src");
        write(&src, "lib.rs", "mod a; mod b; mod c; mod arch;");
        write(&src, "a.rs", "use crate::b::B;\n");
        write(&src, "b/mod.rs", "mod inner;\n");
        write(&src, "b/inner.rs", "fn f() { crate::c::g(); }\n");
        write(
            &src,
            "c.rs",
            "// crate::b is only mentioned\nuse super::a;\n",
        );
        write(&src, "arch/mod.rs", "use crate::a; \n");
        write(&src, "d.rs", "use crate::arch;\n");
        write(&src, "d_tests.rs", "use crate::a;\n");
        write(&src, "a/tests.rs", "use crate::d;\n");
        let cycles = crate_cycles(&src, &[src.join("arch")]).unwrap();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b", "c"]);
        let text = cycles[0].to_string();
        assert!(text.contains("a -> b -> c -> a"), "{text}");
        assert!(text.contains("inner.rs:1"), "{text}");
        // Breaking one edge breaks the circle.
        write(&src, "c.rs", "// crate::b is only mentioned\n");
        assert!(crate_cycles(&src, &[]).unwrap().is_empty());
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-cycles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The rule itself, over this workspace.
    #[test]
    fn no_module_imports_in_a_circle_inside_a_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cycles = new_cycles(&root).unwrap();
        let text: String = cycles.iter().map(ToString::to_string).collect();
        assert!(
            cycles.is_empty(),
            "modules import each other in a circle:\n{text}"
        );
    }
}
