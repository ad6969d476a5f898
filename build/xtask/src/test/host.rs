//! The host half of `cargo xtask test`: finds the workspace's host crates (those not marked
//! `target-only`), runs their tests, whole through one `cargo test` or by name from the test
//! executables cargo built, and counts cargo's and libtest's lines into the run's totals.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::Totals;
use crate::dist;
use crate::test_select as select;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Workspace members that are built and tested on the host: (name,
/// manifest path).
fn host_packages() -> Result<Vec<(String, PathBuf)>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dist::workspace_root())
        .output()
        .context("running cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let mut packages = vec![];
    for p in meta["packages"].as_array().into_iter().flatten() {
        let target_only = p["metadata"]["tdxhost"]["target-only"]
            .as_bool()
            .unwrap_or(false);
        if !target_only {
            packages.push((
                p["name"].as_str().unwrap_or_default().to_string(),
                PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
            ));
        }
    }
    packages.sort();
    Ok(packages)
}

/// Workspace members that are built and tested on the host.
pub fn host_crates() -> Result<Vec<String>> {
    Ok(host_packages()?.into_iter().map(|(n, _)| n).collect())
}

/// One host test executable cargo built, and the tests a run of it runs.
pub(super) struct HostExe {
    pub(super) crate_name: String,
    pub(super) path: PathBuf,
    /// The package's directory, where cargo runs its tests.
    pub(super) dir: PathBuf,
    /// Test paths, ignored tests left out.
    pub(super) tests: Vec<String>,
}

/// Builds every host crate's tests (as one `cargo test` would, so the
/// features are the same) and lists each executable's tests.
pub(super) fn host_executables() -> Result<Vec<HostExe>> {
    let packages = host_packages()?;
    let mut cmd = cargo();
    cmd.current_dir(dist::workspace_root()).args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for (name, _) in &packages {
        cmd.args(["-p", name]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the host tests failed (see above)");
    }
    let mut exes = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(manifest)) =
            (msg["executable"].as_str(), msg["manifest_path"].as_str())
        else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some((name, _)) = packages
            .iter()
            .find(|(_, m)| m.as_path() == std::path::Path::new(manifest))
        else {
            continue;
        };
        let dir = PathBuf::from(manifest)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(dist::workspace_root);
        let list = |ignored: bool| -> Result<Vec<String>> {
            let mut c = Command::new(exe);
            c.current_dir(&dir).arg("--list");
            if ignored {
                c.arg("--ignored");
            }
            let out = c
                .output()
                .with_context(|| format!("listing the tests of {exe}"))?;
            if !out.status.success() {
                bail!(
                    "{exe} --list failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(select::parse_libtest_list(&String::from_utf8_lossy(
                &out.stdout,
            )))
        };
        let ignored = list(true)?;
        let tests = list(false)?
            .into_iter()
            .filter(|t| !ignored.contains(t))
            .collect();
        exes.push(HostExe {
            crate_name: name.clone(),
            path: PathBuf::from(exe),
            dir,
            tests,
        });
    }
    exes.sort_by(|a, b| (&a.crate_name, &a.path).cmp(&(&b.crate_name, &b.path)));
    Ok(exes)
}

/// Counts one libtest output line into `t`, and echoes it.
fn count_host_line(line: &str, who: &str, t: &mut Totals) -> u64 {
    let mut failed = 0;
    if let Some((p, f)) = cargo_summary(line) {
        t.passed += p;
        t.failed += f;
        t.cases += p + f;
        failed = f;
    }
    if line.contains("FAILED") || line.contains("panicked") {
        t.failures.push(format!("{who}: {line}"));
    }
    t.junit.host_line(who, line);
    println!("{line}");
    failed
}

/// Runs the matching tests of each host executable that has any.
pub(super) fn host_tests_filtered(exes: &[HostExe], pattern: &str, t: &mut Totals) -> Result<()> {
    for exe in exes {
        let chosen: Vec<&String> = exe
            .tests
            .iter()
            .filter(|p| select::matches(Some(pattern), &select::host_test(&exe.crate_name, p)))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let who = format!("host:{}", exe.crate_name);
        println!(
            "xtask: {who}: {} of {} tests of {}",
            chosen.len(),
            exe.tests.len(),
            exe.path.display()
        );
        let mut child = Command::new(&exe.path)
            .current_dir(&exe.dir)
            .env("CARGO_MANIFEST_DIR", &exe.dir)
            .env("CARGO_PKG_NAME", &exe.crate_name)
            .arg("--exact")
            .args(&chosen)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", exe.path.display()))?;
        let stdout = child.stdout.take().context("no test output")?;
        let mut failed = 0;
        for line in BufReader::new(stdout).lines() {
            failed += count_host_line(&line?, &who, t);
        }
        if !child.wait()?.success() && failed == 0 {
            t.failed += 1;
            let why = format!("{} did not succeed", exe.path.display());
            t.junit.whole_run_failed(&who, &why);
            t.failures.push(format!("{who}: {why}"));
        }
    }
    Ok(())
}

/// Parses cargo's `test result: ok. 12 passed; 0 failed; …` lines.
pub(super) fn cargo_summary(line: &str) -> Option<(u64, u64)> {
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

pub(super) fn host_tests(t: &mut Totals) -> Result<()> {
    let crates = host_crates()?;
    println!("xtask: host tests ({} crates)", crates.len());
    t.junit.set_host_packages(&host_packages()?);
    let mut cmd = cargo();
    cmd.current_dir(dist::workspace_root()).arg("test");
    for c in &crates {
        cmd.args(["-p", c]);
    }
    // One stream for stdout and stderr, in order: cargo's `Running …`
    // lines (stderr) tell the JUnit report which crate the results are of.
    let (stdout, writer) = std::io::pipe().context("creating a pipe")?;
    let mut child = cmd
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()
        .context("running cargo test")?;
    // The pipe's write end lives only in the child now, so EOF comes.
    drop(cmd);
    for line in BufReader::new(stdout).lines() {
        count_host_line(&line?, "host", t);
    }
    if !child.wait()?.success() {
        t.failed += 1;
        t.junit
            .whole_run_failed("host", "cargo test did not succeed (see the output)");
        t.failures
            .push("host: cargo test did not succeed (see above)".into());
    }
    Ok(())
}
