//! JUnit XML reports of `cargo xtask test` and `cargo xtask hil`.
//!
//! The report is collected while a run goes on ([`Collector`]) and written
//! once at its end: one `<testsuite>` per image (named by its label) and
//! one per host crate (`host:CRATE`), one `<testcase>` per counted test.
//! A failed case carries `<failure message=…>` with its reason; a run that
//! failed as a whole (hang, lost console, an image that could not be built,
//! a test executable that crashed) is one more failed case named
//! [`WHOLE_RUN`] in its suite, because the run's totals count it as one
//! failure too: the invariant is that the root's `tests` and `failures`
//! equal the `N passed, N failed` line's `N + N` and second `N`.
//!
//! Text is escaped for XML 1.0, whose character set has no C0 controls but
//! tab, LF and CR (not even as references) and no U+FFFE/U+FFFF: those are
//! written as `\xNN` / `\u{FFFE}` so a console that printed garbage still
//! yields a report every JUnit reader accepts.
//!
//! Host test durations: libtest on stable Rust reports no per-test time, so
//! a host case's `time` is the wall time since the previous result of the
//! same executable (tests run in parallel, so this is when the result came,
//! not how long the test ran). An image case's `time` is the time since
//! the image's previous case line (or since the machine started), taken as
//! the console is read, under QEMU and on a rig alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The name of the case that stands for a run that failed as a whole.
pub const WHOLE_RUN: &str = "(whole run)";

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub time: Duration,
    /// The reason, for a failed case.
    pub failure: Option<String>,
}

/// One `<testsuite>`: an image or a host crate.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    pub name: String,
    pub time: Duration,
    pub cases: Vec<Case>,
    /// The console (and decoded defmt) of the image, or the output of the
    /// host crate's tests.
    pub output: String,
}

impl Suite {
    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }
}

/// A whole report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub suites: Vec<Suite>,
}

impl Report {
    /// (tests, failures) over every suite.
    #[must_use]
    pub fn totals(&self) -> (usize, usize) {
        self.suites
            .iter()
            .fold((0, 0), |(t, f), s| (t + s.cases.len(), f + s.failures()))
    }

    /// The report as a JUnit XML document.
    #[must_use]
    pub fn to_xml(&self) -> String {
        let (tests, failures) = self.totals();
        let total: Duration = self.suites.iter().map(|s| s.time).sum();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"tdxhost\" tests=\"{tests}\" failures=\"{failures}\" \
             errors=\"0\" time=\"{}\">",
            secs(total)
        );
        for (id, s) in self.suites.iter().enumerate() {
            let _ = writeln!(
                x,
                "  <testsuite id=\"{id}\" name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" \
                 skipped=\"0\" time=\"{}\">",
                escape(&s.name),
                s.cases.len(),
                s.failures(),
                secs(s.time)
            );
            for c in &s.cases {
                let _ = write!(
                    x,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
                    escape(&c.name),
                    escape(&s.name),
                    secs(c.time)
                );
                match &c.failure {
                    None => x.push_str("/>\n"),
                    Some(why) => {
                        let _ = writeln!(
                            x,
                            ">\n      <failure message=\"{}\" type=\"failure\">{}</failure>\n    \
                             </testcase>",
                            escape(first_line(why)),
                            escape_text(why)
                        );
                    }
                }
            }
            if !s.output.is_empty() {
                let _ = writeln!(x, "    <system-out>{}</system-out>", escape_text(&s.output));
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }

    /// Writes the report to `path` (creating its directory).
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, self.to_xml())
            .with_context(|| format!("writing the JUnit report {}", path.display()))
    }
}

/// Parses the report at `path` as a JUnit reader would and checks that
/// the root's counts, the suites' counts and the elements themselves all
/// equal the run's `tests` (passed + failed) and `failures`.
pub fn verify(path: &Path, tests: usize, failures: usize) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc = roxmltree::Document::parse(&text)
        .with_context(|| format!("{} is not well-formed XML", path.display()))?;
    let root = doc.root_element();
    if !root.has_tag_name("testsuites") {
        anyhow::bail!(
            "the root element is <{}>, not <testsuites>",
            root.tag_name().name()
        );
    }
    let count = |n: roxmltree::Node, a: &str| -> Result<usize> {
        n.attribute(a)
            .with_context(|| format!("<{}> has no `{a}`", n.tag_name().name()))?
            .parse()
            .with_context(|| format!("<{}> `{a}` is not a count", n.tag_name().name()))
    };
    let mut found = vec![(
        "root attributes",
        count(root, "tests")?,
        count(root, "failures")?,
    )];
    let (mut st, mut sf) = (0, 0);
    for s in root.children().filter(|n| n.has_tag_name("testsuite")) {
        st += count(s, "tests")?;
        sf += count(s, "failures")?;
    }
    found.push(("suite attributes", st, sf));
    let elements = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    found.push(("elements", elements("testcase"), elements("failure")));
    for (what, t, f) in found {
        if (t, f) != (tests, failures) {
            anyhow::bail!(
                "{}: its {what} say {t} tests, {f} failures; the run counted {tests}, {failures}",
                path.display()
            );
        }
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `s` escaped for XML 1.0 attribute values (and text).
#[must_use]
pub fn escape(s: &str) -> String {
    escape_as(s, true)
}

/// `s` escaped for XML 1.0 element text: line feeds and tabs stay as
/// they are, so a console reads as it was.
#[must_use]
pub fn escape_text(s: &str) -> String {
    escape_as(s, false)
}

fn escape_as(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if !attribute => out.push(c),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute values would fold a raw CR, LF or tab into a space.
            '\n' => out.push_str("&#10;"),
            // A raw CR would be read back as LF.
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Builds the report of a `cargo xtask test` run as its results come in.
#[derive(Default)]
pub struct Collector {
    suites: BTreeMap<String, Suite>,
    /// Suite names in the order they first appeared.
    order: Vec<String>,
    /// Where host crates live: (name, package directory).
    host_dirs: Vec<(String, PathBuf)>,
    /// The crate of the host test executable whose output is coming.
    host_crate: Option<String>,
    /// When the current host executable's previous result came.
    host_last: Option<Instant>,
    /// A `---- NAME stdout ----` block of libtest's failure report being
    /// read: (case name, text).
    host_failure: Option<(String, String)>,
    /// The current executable's results: they count once its
    /// `test result:` line came, as the run's totals do (an executable
    /// that crashes counts as one failure, not as its results so far).
    host_pending: Vec<Case>,
}

impl Collector {
    /// Host crates' names and package directories, to tell which crate an
    /// integration test executable belongs to (cargo names it only by its
    /// file, `Running tests/NAME.rs`).
    pub fn set_host_packages(&mut self, packages: &[(String, PathBuf)]) {
        self.host_dirs = packages
            .iter()
            .map(|(n, manifest)| {
                let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
                (n.clone(), dir)
            })
            .collect();
    }

    fn suite(&mut self, name: &str) -> &mut Suite {
        if !self.suites.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.suites
            .entry(name.to_string())
            .or_insert_with(|| Suite {
                name: name.to_string(),
                ..Suite::default()
            })
    }

    /// A counted case of suite `suite`.
    pub fn case(&mut self, suite: &str, name: &str, ok: bool, why: &str, time: Duration) {
        let failure = (!ok).then(|| {
            if why.is_empty() {
                "FAILED".to_string()
            } else {
                why.to_string()
            }
        });
        self.suite(suite).cases.push(Case {
            name: name.to_string(),
            time,
            failure,
        });
    }

    /// A run of suite `suite` that failed as a whole.
    pub fn whole_run_failed(&mut self, suite: &str, why: &str) {
        self.case(suite, WHOLE_RUN, false, why, Duration::ZERO);
    }

    /// An image's console (with decoded defmt) and how long it ran.
    pub fn image_output(&mut self, suite: &str, console: &str, time: Duration) {
        let s = self.suite(suite);
        s.output.push_str(console);
        s.time += time;
    }

    /// The crate of a host test executable cargo announces, from its
    /// `Running SRC (target/…/deps/STEM-HASH)` or `Doc-tests CRATE` line.
    fn host_crate_of(&self, line: &str) -> Option<String> {
        let line = line.trim();
        let by_lib_name = |lib: &str| {
            self.host_dirs
                .iter()
                .find(|(n, _)| n.replace('-', "_") == lib)
                .map(|(n, _)| n.clone())
        };
        if let Some(lib) = line.strip_prefix("Doc-tests ") {
            return by_lib_name(lib.trim()).or_else(|| Some(lib.trim().to_string()));
        }
        let rest = line.strip_prefix("Running ")?;
        let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
        let (src, exe) = rest.split_once(" (")?;
        let stem = Path::new(exe.trim_end_matches(')'))
            .file_name()?
            .to_str()?
            .rsplit_once('-')
            .map_or("", |(s, _)| s)
            .to_string();
        if src.starts_with("src/") {
            if let Some(n) = by_lib_name(&stem) {
                return Some(n);
            }
        }
        // An integration test: the crate whose package holds SRC. Two
        // crates with the same test file name cannot be told apart here;
        // the first (by name) is taken.
        self.host_dirs
            .iter()
            .find(|(_, dir)| dir.join(src).is_file())
            .map(|(n, _)| n.clone())
            .or(Some(stem))
    }

    /// One line of host test output. `who` is `host:CRATE` when the caller
    /// ran one crate's executable, else `host` (a plain `cargo test`, whose
    /// stderr lines must come in the same stream so `Running` lines tell
    /// the crates apart).
    pub fn host_line(&mut self, who: &str, line: &str) {
        if let Some(c) = who.strip_prefix("host:") {
            if self.host_crate.as_deref() != Some(c) {
                self.host_crate = Some(c.to_string());
                self.host_last = Some(Instant::now());
            }
        } else if let Some(c) = self.host_crate_of(line) {
            self.host_crate = Some(c);
            self.host_last = Some(Instant::now());
            self.host_failure = None;
            self.host_pending.clear();
            return;
        }
        let suite = format!("host:{}", self.host_crate.as_deref().unwrap_or("unknown"));
        let t = line.trim_end();
        if let Some((name, text)) = self.host_failure.as_mut() {
            if t.starts_with("---- ") || t == "failures:" || t.starts_with("test result: ") {
                let (name, text) = (name.clone(), text.clone());
                self.host_failure = None;
                if let Some(c) = self
                    .host_pending
                    .iter_mut()
                    .rev()
                    .find(|c| c.name == name && c.failure.is_some())
                {
                    c.failure = Some(format!("FAILED\n{}", text.trim_end()));
                }
                self.suite(&suite)
                    .output
                    .push_str(&format!("---- {name} ----\n{text}"));
            } else {
                text.push_str(t);
                text.push('\n');
                return;
            }
        }
        if let Some(name) = t
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" ----"))
            .and_then(|r| r.rsplit_once(' ').map(|(n, _)| n))
        {
            self.host_failure = Some((name.to_string(), String::new()));
            return;
        }
        if t.starts_with("test result: ") {
            let done = std::mem::take(&mut self.host_pending);
            let s = self.suite(&suite);
            s.time += done.iter().map(|c| c.time).sum::<Duration>();
            s.cases.extend(done);
            return;
        }
        let Some(rest) = t.strip_prefix("test ") else {
            return;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            return;
        };
        let ok = match result {
            "ok" => true,
            "FAILED" => false,
            _ => return, // ignored, bench
        };
        let now = Instant::now();
        let time = now.duration_since(self.host_last.unwrap_or(now));
        self.host_last = Some(now);
        self.host_pending.push(Case {
            name: name.to_string(),
            time,
            failure: (!ok).then(|| "FAILED".to_string()),
        });
    }

    /// The report: suites in the order they first appeared.
    #[must_use]
    pub fn report(&self) -> Report {
        Report {
            suites: self
                .order
                .iter()
                .filter_map(|n| self.suites.get(n).cloned())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{escape, verify, Collector, WHOLE_RUN};

    /// Parses `xml` and returns (root tests, root failures, Σ suite tests,
    /// Σ suite failures, Σ testcase elements, Σ failure elements).
    fn counts(xml: &str) -> (usize, usize, usize, usize, usize, usize) {
        let doc = roxmltree::Document::parse(xml).expect("a well-formed XML document");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let attr = |n: roxmltree::Node, a: &str| -> usize {
            n.attribute(a).expect(a).parse().expect("a count")
        };
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        let cases = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count();
        let fails = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count();
        for c in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
            let t: f64 = c.attribute("time").expect("time").parse().expect("seconds");
            assert!(t >= 0.0);
            assert!(c.attribute("classname").is_some());
        }
        (
            attr(root, "tests"),
            attr(root, "failures"),
            suites.iter().map(|s| attr(*s, "tests")).sum(),
            suites.iter().map(|s| attr(*s, "failures")).sum(),
            cases,
            fails,
        )
    }

    #[test]
    fn a_report_parses_and_its_counts_are_the_run_totals() {
        let mut c = Collector::default();
        // What a run counted: 3 passed, 3 failed (one a whole-run failure).
        let (passed, failed) = (3, 3);
        c.case("kernel", "ipc_basic", true, "", Duration::from_millis(5));
        c.case(
            "kernel",
            "lease <bad> & \"quoted\"",
            false,
            "expected 1, got 2\nsecond line",
            Duration::from_millis(7),
        );
        c.image_output(
            "kernel",
            "boot\x1b[0m\x00\x07 ]]> <![CDATA[ \u{fffe}\r\n",
            Duration::from_secs(3),
        );
        c.case("hil-kernel", "a", true, "", Duration::ZERO);
        c.whole_run_failed("hil-kernel", "console silent for 60 s");
        c.host_line("host:xtask", "test junit::x ... ok");
        c.host_line("host:xtask", "test junit::y ... FAILED");
        c.host_line("host:xtask", "test result: FAILED. 1 passed; 1 failed");
        let report = c.report();
        assert_eq!(report.totals(), (passed + failed, failed));
        let xml = report.to_xml();
        assert_eq!(
            counts(&xml),
            (6, 3, 6, 3, 6, 3),
            "root, suites and elements all agree with the run"
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let out = doc
            .descendants()
            .find(|n| n.has_tag_name("system-out"))
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(
            out, "boot\\x1b[0m\\x00\\x07 ]]> <![CDATA[ \\u{FFFE}\r\n",
            "control characters are visible, the rest round-trips"
        );
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(failure.attribute("message"), Some("expected 1, got 2"));
        assert_eq!(failure.text(), Some("expected 1, got 2\nsecond line"));
        let named = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .filter_map(|n| n.attribute("name"))
            .collect::<Vec<_>>();
        assert!(named.contains(&"lease <bad> & \"quoted\""));
        assert!(named.contains(&WHOLE_RUN));
        let path = std::env::temp_dir().join(format!("xtask-junit-{}.xml", std::process::id()));
        report.write(&path).unwrap();
        verify(&path, passed + failed, failed).unwrap();
        let e = verify(&path, passed + failed, failed - 1).unwrap_err();
        assert!(e.to_string().contains("the run counted 6, 2"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn plain_cargo_test_output_is_split_by_crate_with_failure_text() {
        let dir = std::env::temp_dir().join(format!("xtask-junit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b/tests")).unwrap();
        std::fs::write(dir.join("b/tests/props.rs"), "").unwrap();
        let mut c = Collector::default();
        c.set_host_packages(&[
            ("crate-a".into(), dir.join("a/Cargo.toml")),
            ("crate-b".into(), dir.join("b/Cargo.toml")),
        ]);
        let lines = [
            "     Running unittests src/lib.rs (target/debug/deps/crate_a-0123abcd)",
            "running 2 tests",
            "test m::one ... ok",
            "test m::two ... FAILED",
            "test m::three ... ignored",
            "",
            "failures:",
            "",
            "---- m::two stdout ----",
            "thread 'm::two' panicked at src/lib.rs:3:5:",
            "boom",
            "",
            "failures:",
            "    m::two",
            "test result: FAILED. 1 passed; 1 failed; 1 ignored",
            "     Running tests/props.rs (target/debug/deps/props-99aa)",
            "test prop ... ok",
            "test result: ok. 1 passed; 0 failed",
            "   Doc-tests crate_a",
            "test src/lib.rs - f (line 3) ... ok",
            "test result: ok. 1 passed; 0 failed",
            // An executable that crashed before its summary: its results
            // do not count (the run counts one failure for it instead).
            "     Running unittests src/lib.rs (target/debug/deps/crate_b-77)",
            "test lost ... ok",
        ];
        for l in lines {
            c.host_line("host", l);
        }
        let r = c.report();
        let _ = std::fs::remove_dir_all(&dir);
        let names: Vec<&str> = r.suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["host:crate-a", "host:crate-b"]);
        assert_eq!(r.suites[0].cases.len(), 3, "m::one, m::two, the doc-test");
        assert_eq!(r.suites[1].cases.len(), 1);
        let two = &r.suites[0].cases[1];
        assert_eq!(two.name, "m::two");
        let why = two.failure.as_deref().unwrap();
        assert!(why.contains("panicked at src/lib.rs:3:5") && why.contains("boom"));
        assert_eq!(r.totals(), (4, 1));
    }

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(escape("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
        assert_eq!(escape("\u{1}\t\n"), "\\x01&#9;&#10;");
        assert_eq!(escape("\u{7f}\u{ffff}é"), "\\x7f\\u{FFFF}é");
        assert_eq!(super::escape_text("a\tb\r\n<"), "a\tb&#13;\n&lt;");
    }
}
