//! `cargo xtask test`: every host test, then every in-QEMU suite, then one
//! closing line `N passed, N failed`.
//!
//! Host crates are the workspace members not marked
//! `[package.metadata.tdxhost] target-only = true`; their `cargo test`
//! results are counted from cargo's own summary lines. Each in-QEMU suite
//! is an image whose tasks print `test NAME ... ok|FAILED` and end the run
//! through isa-debug-exit; a run that hangs past its timeout, ends in a
//! kernel failure, or stops before reporting every case counts as a
//! failure of its own, so nothing can pass by going quiet.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{deps, dist, qemu};

/// The in-QEMU suites: (manifest, what it checks).
pub const SUITES: &[(&str, &str)] = &[
    ("test-suite/app.toml", "kernel"),
    ("test-suite/platform-numa.toml", "platform-numa"),
    ("test-suite/platform-1cpu.toml", "platform-1cpu"),
    ("test-suite/platform-hotplug.toml", "platform-hotplug"),
    ("test-suite/tdx-numa.toml", "tdx-numa"),
    ("test-suite/tdx-1cpu.toml", "tdx-1cpu"),
    ("test-suite/tdx-absent.toml", "tdx-absent"),
    ("test-suite/tdx-fail-sysinit.toml", "tdx-fail-sysinit"),
    ("test-suite/tdx-fail-lpinit.toml", "tdx-fail-lpinit"),
    ("test-suite/tdx-fail-sysrd.toml", "tdx-fail-sysrd"),
    ("test-suite/tdx-fail-config.toml", "tdx-fail-config"),
    ("test-suite/tdx-fail-keyconfig.toml", "tdx-fail-keyconfig"),
    ("test-suite/tdx-fail-tdmrinit.toml", "tdx-fail-tdmrinit"),
    ("test-suite/adversary.toml", "adversary"),
];

/// Suites also booted through GRUB from an ISO (the multiboot2 path).
pub const GRUB_SUITES: &[(&str, &str)] = &[("test-suite/app.toml", "kernel-grub")];

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

/// Workspace members that are built and tested on the host.
pub fn host_crates() -> Result<Vec<String>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dist::workspace_root())
        .output()
        .context("running cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let mut names = vec![];
    for p in meta["packages"].as_array().into_iter().flatten() {
        let target_only = p["metadata"]["tdxhost"]["target-only"]
            .as_bool()
            .unwrap_or(false);
        if !target_only {
            names.push(p["name"].as_str().unwrap_or_default().to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Parses cargo's `test result: ok. 12 passed; 0 failed; …` lines.
fn cargo_summary(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let mut passed = None;
    let mut failed = None;
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(kind), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "passed" => passed = n.parse().ok(),
            "failed" => failed = n.parse().ok(),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

fn host_tests(t: &mut Totals) -> Result<()> {
    let crates = host_crates()?;
    println!("xtask: host tests ({} crates)", crates.len());
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dist::workspace_root()).arg("test");
    for c in &crates {
        cmd.args(["-p", c]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let stdout = child.stdout.take().context("no cargo test output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some((p, f)) = cargo_summary(&line) {
            t.passed += p;
            t.failed += f;
        }
        if line.contains("FAILED") || line.contains("panicked") {
            t.failures.push(format!("host: {line}"));
        }
        println!("{line}");
    }
    if !child.wait()?.success() {
        t.failed += 1;
        t.failures
            .push("host: cargo test did not succeed (see above)".into());
    }
    Ok(())
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

fn qemu_suite(manifest: &str, what: &str, grub: bool, t: &mut Totals) -> Result<()> {
    println!("xtask: building the {what} test image ({manifest})");
    let image = dist::dist(manifest.as_ref())?;
    let boot = if grub {
        crate::grub::make_iso(&image)?
    } else {
        image.elf.clone()
    };
    let started = Instant::now();
    let outcome = qemu::run(
        &boot,
        &qemu::Options {
            settings: &image.manifest.qemu,
            debug_exit: true,
            icount: false,
            echo: false,
            interactive: false,
            extra_args: vec![],
            timeout: None,
        },
    )?;
    let mut ran = 0;
    for line in &outcome.console {
        if let Some((name, ok, why)) = case_line(line) {
            ran += 1;
            if ok {
                t.passed += 1;
                println!("test {what}::{name} ... ok");
            } else {
                t.failed += 1;
                println!("test {what}::{name} ... FAILED {why}");
                t.failures.push(format!("{what}::{name}: {why}"));
            }
        }
    }
    let complete =
        outcome.status == Some(qemu::EXIT_SUCCESS) || outcome.status == Some((0x11 << 1) | 1);
    if !complete {
        t.failed += 1;
        t.failures.push(format!(
            "{what}: the run did not finish ({}) after {ran} cases",
            outcome.describe()
        ));
        println!(
            "xtask: {what} suite: {}; last console lines:",
            outcome.describe()
        );
        for l in outcome.console.iter().rev().take(25).rev() {
            println!("  | {l}");
        }
    }
    println!(
        "xtask: {what} suite: {ran} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The end-to-end memory hotplug suites (driven over QMP, see `hotplug_test.rs`).
fn hotplug_suites(t: &mut Totals) {
    for (manifest, policy) in crate::hotplug_test::SUITES {
        let what = format!("hotplug-{policy}");
        match crate::hotplug_test::run_suite(manifest, policy) {
            Ok(results) => {
                for r in results {
                    if r.ok {
                        t.passed += 1;
                        println!("test {what}::{} ... ok", r.name);
                    } else {
                        t.failed += 1;
                        println!("test {what}::{} ... FAILED {}", r.name, r.why);
                        t.failures.push(format!("{what}::{}: {}", r.name, r.why));
                    }
                }
            }
            Err(e) => {
                t.failed += 1;
                t.failures.push(format!("{what}: {e:#}"));
                println!("xtask: {what} suite could not run: {e:#}");
            }
        }
    }
}

pub fn run(host: bool, in_qemu: bool) -> Result<ExitCode> {
    deps::ensure_target()?;
    let mut t = Totals::default();
    if host {
        host_tests(&mut t)?;
    }
    if in_qemu {
        deps::ensure_qemu()?;
        let grub = GRUB_SUITES.iter().map(|(m, w)| (m, w, true));
        for (manifest, what, grub) in SUITES.iter().map(|(m, w)| (m, w, false)).chain(grub) {
            if let Err(e) = qemu_suite(manifest, what, grub, &mut t) {
                t.failed += 1;
                t.failures.push(format!("{what}: {e:#}"));
                println!("xtask: {what} suite could not run: {e:#}");
            }
        }
        hotplug_suites(&mut t);
    }
    if !t.failures.is_empty() {
        println!("\nfailures:");
        for f in &t.failures {
            println!("    {f}");
        }
    }
    println!("\n{} passed, {} failed", t.passed, t.failed);
    Ok(if t.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::{cargo_summary, case_line};

    #[test]
    fn reads_cargo_summaries() {
        assert_eq!(
            cargo_summary("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured"),
            Some((12, 0))
        );
        assert_eq!(
            cargo_summary("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(cargo_summary("running 3 tests"), None);
    }

    #[test]
    fn reads_case_lines() {
        assert_eq!(
            case_line("[runner] test a_b ... ok"),
            Some(("a_b", true, ""))
        );
        assert_eq!(
            case_line("[runner] test x ... FAILED: boom"),
            Some(("x", false, "boom"))
        );
        assert_eq!(case_line("[runner] kernel suite: 3 passed, 0 failed"), None);
    }
}
