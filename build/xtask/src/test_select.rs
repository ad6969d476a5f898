//! Choosing tests by name: `cargo xtask test --list` and
//! `cargo xtask test PATTERN`.
//!
//! Every test has one full name, the one `cargo xtask test` prints:
//! `IMAGE::NAME` for a case of an in-QEMU image (`kernel::ipc_send_recv`,
//! `hotplug-reject::run_completed`) and `host:CRATE::PATH` for a host test
//! (`host:tdx-emu::tests::config_rejects_overlap`). A pattern selects the
//! tests whose full name contains it: a plain, case-sensitive substring,
//! like libtest's own filter, so `adversary::lease` and `host:platform::`
//! both work and no character is special.
//!
//! Where names come from:
//! - host tests are listed exactly, by each test executable's `--list`
//!   (ignored tests left out, since the run does not run them);
//! - an in-QEMU image's cases exist only while it runs: its tasks print
//!   `test NAME ...` as they go, some names are built at run time, and
//!   which checks a shared check task runs depends on the image's
//!   configuration. So no static list can be trusted; instead every
//!   complete run records the names it saw in
//!   `target/xtask-cases/IMAGE@MANIFEST` (one record per boot: several
//!   manifests may share an `IMAGE` label, as `tdx-restart` and its soak
//!   do, and one manifest may boot under several labels, as `app.toml`
//!   does), and `--list` prints that record and says how old it is, and
//!   names an image with no record (cases known only by running it)
//!   instead of leaving it out.
//!
//! Invariants of a filtered run: a case whose full name does not match is
//! never counted (images run whole, since their cases cannot be chosen from
//! outside; the harness drops the lines that do not match); an image whose
//! cases are unknown runs only when the pattern reaches into its own name
//! (see [`may_select_unrecorded`]) and is otherwise reported as skipped; a
//! pattern that selects nothing is an error, never "0 passed, 0 failed".

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};

/// Whether `full` (a full test name) is selected by `pattern` (`None`
/// selects everything).
#[must_use]
pub fn matches(pattern: Option<&str>, full: &str) -> bool {
    pattern.is_none_or(|p| full.contains(p))
}

/// The full name of a case of an in-QEMU image.
#[must_use]
pub fn image_case(image: &str, case: &str) -> String {
    format!("{image}::{case}")
}

/// The full name of a host test.
#[must_use]
pub fn host_test(crate_name: &str, path: &str) -> String {
    format!("host:{crate_name}::{path}")
}

/// Whether `pattern` may select a case of `image` whose name is unknown.
///
/// Any pattern could lie inside an unknown case name, so this asks the
/// narrower question "does the pattern reach into `IMAGE::`": it lies
/// within `IMAGE::`, or it starts with a non-empty tail of `IMAGE::`
/// (`adversary::lease`, `ary::`, `::`). A pattern that lies wholly in the
/// case part (`lease`) cannot pick an unrecorded image, and the run says
/// so rather than booting every image to find out.
#[must_use]
pub fn may_select_unrecorded(pattern: &str, image: &str) -> bool {
    let prefix = format!("{image}::");
    if prefix.contains(pattern) {
        return true;
    }
    (1..=pattern.len())
        .filter(|&k| pattern.is_char_boundary(k))
        .any(|k| prefix.ends_with(&pattern[..k]))
}

/// Test names from a libtest `--list` output (`PATH: test` lines; the
/// closing `N tests, M benchmarks` line and anything else is skipped).
#[must_use]
pub fn parse_libtest_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| {
            l.strip_suffix(": test")
                .or_else(|| l.strip_suffix(": bench"))
        })
        .map(str::to_string)
        .collect()
}

/// The case names a complete run of an image printed, as recorded.
#[derive(Debug, PartialEq, Eq)]
pub struct Recorded {
    pub cases: Vec<String>,
    /// When the run was recorded, if the file's time is readable.
    pub when: Option<SystemTime>,
}

/// The record file's text: a comment line, then one case name per line.
#[must_use]
pub fn record_text(image: &str, manifest: &str, cases: &[String]) -> String {
    let mut text = format!(
        "# cases printed by the last complete run of the {image} image from \
         {manifest} (written by cargo xtask test; one name per line)\n"
    );
    for c in cases {
        text.push_str(c);
        text.push('\n');
    }
    text
}

/// Case names from a record file's text.
#[must_use]
pub fn parse_record(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The record file's name for the boot of `manifest` whose cases are
/// named `image::…`: both, since a label may cover several manifests and a
/// manifest may boot under several labels (`tdx-restart@tdx-restart-soak`,
/// `kernel-grub@app`).
#[must_use]
pub fn record_name(image: &str, manifest: &str) -> String {
    let stem = std::path::Path::new(manifest)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(manifest);
    format!("{image}@{stem}")
}

fn record_path(image: &str, manifest: &str) -> PathBuf {
    crate::dist::target_dir()
        .join("xtask-cases")
        .join(record_name(image, manifest))
}

/// The record of the last complete run of `manifest` as `image`, if there
/// is one.
pub fn read_record(image: &str, manifest: &str) -> Option<Recorded> {
    let path = record_path(image, manifest);
    let text = std::fs::read_to_string(&path).ok()?;
    let when = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    Some(Recorded {
        cases: parse_record(&text),
        when,
    })
}

/// Records the cases a complete run of `manifest` as `image` printed
/// (names in the order printed, each once).
pub fn write_record(image: &str, manifest: &str, cases: &[String]) -> Result<()> {
    let mut unique: Vec<String> = vec![];
    for c in cases {
        if !unique.contains(c) {
            unique.push(c.clone());
        }
    }
    let path = record_path(image, manifest);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, record_text(image, manifest, &unique))
        .with_context(|| format!("writing {}", path.display()))
}

/// "5 min ago" and the like, for `--list`'s notes.
#[must_use]
pub fn age(when: Option<SystemTime>, now: SystemTime) -> String {
    let Some(secs) = when
        .and_then(|w| now.duration_since(w).ok())
        .map(|d| d.as_secs())
    else {
        return "at an unknown time".into();
    };
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

/// What a filtered run does with one in-QEMU image.
#[derive(Debug, PartialEq, Eq)]
pub enum ImagePlan {
    /// Run it; `known` of its recorded cases match (`None`: no record).
    Run { known: Option<usize> },
    /// Its record has no matching case.
    Skip,
    /// No record, and the pattern cannot reach it by its image name.
    SkipUnrecorded,
}

/// Decides what to do with `image` for `pattern`, given its record.
#[must_use]
pub fn plan_image(pattern: Option<&str>, image: &str, record: Option<&[String]>) -> ImagePlan {
    let Some(p) = pattern else {
        return ImagePlan::Run {
            known: record.map(<[String]>::len),
        };
    };
    match record {
        Some(cases) => {
            let n = cases
                .iter()
                .filter(|c| matches(Some(p), &image_case(image, c)))
                .count();
            if n > 0 {
                ImagePlan::Run { known: Some(n) }
            } else {
                ImagePlan::Skip
            }
        }
        None if may_select_unrecorded(p, image) => ImagePlan::Run { known: None },
        None => ImagePlan::SkipUnrecorded,
    }
}

/// One `test NAME ... ok|FAILED[: why]` line from a suite's console.
pub(crate) fn case_line(line: &str) -> Option<(&str, bool, &str)> {
    let at = line.find("test ")?;
    let rest = &line[at + 5..];
    let (name, verdict) = rest.split_once(" ... ")?;
    if verdict.starts_with("ok") {
        Some((name, true, ""))
    } else if let Some(why) = verdict.strip_prefix("FAILED") {
        Some((name, false, why.trim_start_matches(':').trim()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn substring_selects_full_names() {
        assert!(matches(None, "kernel::anything"));
        assert!(matches(
            Some("adversary::lease"),
            "adversary::lease_table_rewrite_read"
        ));
        assert!(matches(
            Some("rewrite"),
            "adversary::lease_table_rewrite_read"
        ));
        assert!(!matches(Some("adversary::lease"), "kernel::lease_borrow"));
        assert!(!matches(
            Some("Lease"),
            "adversary::lease_table_rewrite_read"
        ));
        // No character is special: `*` and `.` are literal.
        assert!(!matches(Some("lease*"), "adversary::lease_x"));
        assert!(!matches(Some("a.b"), "host:x::axb"));
        assert!(matches(
            Some("host:platform::"),
            &host_test("platform", "acpi::t")
        ));
        assert!(!matches(
            Some("host:platform::"),
            &host_test("platform-x", "t")
        ));
    }

    #[test]
    fn unrecorded_images_only_by_their_name() {
        assert!(may_select_unrecorded("adversary::lease", "adversary"));
        assert!(may_select_unrecorded("adversary", "adversary"));
        assert!(may_select_unrecorded("ary::lea", "adversary"));
        assert!(may_select_unrecorded("::", "adversary"));
        assert!(may_select_unrecorded("kernel", "kernel-grub"));
        assert!(!may_select_unrecorded("lease", "adversary"));
        assert!(!may_select_unrecorded("adversary::lease", "kernel"));
        assert!(!may_select_unrecorded("tdx::", "tdx-numa"));
        assert!(!may_select_unrecorded("nothing-matches-this", "tdx-numa"));
        // Not a char boundary inside a multi-byte pattern: no panic.
        assert!(!may_select_unrecorded("é::x", "adversary"));
    }

    #[test]
    fn plans_images() {
        let rec = vec!["lease_a".to_string(), "flags_b".to_string()];
        assert_eq!(
            plan_image(None, "adversary", None),
            ImagePlan::Run { known: None }
        );
        assert_eq!(
            plan_image(None, "adversary", Some(&rec)),
            ImagePlan::Run { known: Some(2) }
        );
        assert_eq!(
            plan_image(Some("lease"), "adversary", Some(&rec)),
            ImagePlan::Run { known: Some(1) }
        );
        assert_eq!(
            plan_image(Some("adversary::"), "adversary", Some(&rec)),
            ImagePlan::Run { known: Some(2) }
        );
        assert_eq!(
            plan_image(Some("nothing"), "adversary", Some(&rec)),
            ImagePlan::Skip
        );
        assert_eq!(
            plan_image(Some("adversary::lease"), "adversary", None),
            ImagePlan::Run { known: None }
        );
        assert_eq!(
            plan_image(Some("lease"), "adversary", None),
            ImagePlan::SkipUnrecorded
        );
    }

    #[test]
    fn reads_libtest_lists() {
        let out = "tests::a: test\nmod::b::c: test\nbench_x: bench\n\n3 tests, 1 benchmarks\n";
        assert_eq!(
            parse_libtest_list(out),
            vec!["tests::a", "mod::b::c", "bench_x"]
        );
        assert!(parse_libtest_list("0 tests, 0 benchmarks\n").is_empty());
    }

    #[test]
    fn records_round_trip() {
        let cases = vec!["a_b".to_string(), "c".to_string()];
        let text = record_text("kernel", "test-suite/app.toml", &cases);
        assert!(text.starts_with('#'));
        assert_eq!(parse_record(&text), cases);
        assert_eq!(parse_record("# only a comment\n\n"), Vec::<String>::new());
    }

    #[test]
    fn records_are_per_boot() {
        // Two manifests under one label, one manifest under two labels:
        // every boot has a record of its own.
        let names = [
            record_name("tdx-restart", "test-suite/tdx-restart.toml"),
            record_name("tdx-restart", "test-suite/tdx-restart-soak.toml"),
            record_name("kernel", "test-suite/app.toml"),
            record_name("kernel-grub", "test-suite/app.toml"),
        ];
        assert_eq!(names[1], "tdx-restart@tdx-restart-soak");
        assert_eq!(names[3], "kernel-grub@app");
        for (i, a) in names.iter().enumerate() {
            assert!(names[i + 1..].iter().all(|b| b != a), "{a} twice");
        }
    }

    #[test]
    fn images_sharing_a_label_are_planned_by_their_own_records() {
        let restart = vec!["tdx_host_restarted_at_every_kill".to_string()];
        let soak = vec![
            "restart_soak".to_string(),
            "soak_restarted_at_every_kill".to_string(),
        ];
        let p = Some("tdx-restart::restart_soak");
        assert_eq!(
            plan_image(p, "tdx-restart", Some(&restart)),
            ImagePlan::Skip
        );
        assert_eq!(
            plan_image(p, "tdx-restart", Some(&soak)),
            ImagePlan::Run { known: Some(1) }
        );
        // Without records the label names both, so both boot.
        assert_eq!(
            plan_image(p, "tdx-restart", None),
            ImagePlan::Run { known: None }
        );
    }

    #[test]
    fn ages_read_well() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s| Some(now - Duration::from_secs(s));
        assert_eq!(age(ago(5), now), "5 s ago");
        assert_eq!(age(ago(600), now), "10 min ago");
        assert_eq!(age(ago(3 * 3600), now), "3 h ago");
        assert_eq!(age(ago(3 * 86400), now), "3 days ago");
        assert_eq!(age(None, now), "at an unknown time");
        // A record from the future (clock change) is not a panic.
        assert_eq!(
            age(Some(now + Duration::from_secs(9)), now),
            "at an unknown time"
        );
    }
}
