//! `cargo xtask hil`: runs test images on a rig (`rig.rs`) and judges them
//! by their console alone (`verdict.rs`).
//!
//! For each image, in order: build it and its GRUB ISO; deliver the ISO
//! (or not, for a rig that is "already booted"); open the console (before
//! the reset, so nothing the machine says is lost); reset; then read the
//! console under three deadlines — the first byte within `timeouts.boot`
//! of the reset, no quiet stretch longer than `timeouts.silence`, the
//! verdict line within `timeouts.run` of the reset — feeding every byte to
//! the judge, and stop at the verdict line. After the last image the
//! rig's `stop` command runs, whatever happened.
//!
//! Invariant: an image passes only when the judge accepted its verdict
//! line; a rig command that fails, a console that cannot be opened, goes
//! quiet or ends, and a run past its deadline each fail the image as a
//! whole with that reason (one failure on top of the cases counted, as in
//! `cargo xtask test`). Output is the same as `cargo xtask test`'s:
//! `test LABEL::NAME ... ok|FAILED: why` lines, `failures:`, and
//! `N passed, N failed`; the exit status is non-zero on any failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::junit::Collector;
use crate::manifest::QemuSettings;
use crate::rig::console::{Console, Got};
use crate::rig::{self, Rig, Value, Values};
use crate::verdict::{BuildId, Case, End, Event, Judge};
use crate::{dist, qmp};

/// The QEMU rig `cargo xtask test` runs images on.
pub const QEMU_RIG: &str = "test-suite/rigs/qemu.toml";

/// Images `cargo xtask test` runs through the QEMU rig: (manifest, label).
pub const TEST_SUITES: &[(&str, &str)] = &[
    ("test-suite/app.toml", "hil-kernel"),
    ("test-suite/tdx-1cpu.toml", "hil-tdx-1cpu"),
];

/// An image ready to run on a rig.
pub struct Target {
    /// The `IMAGE` of its cases' full names.
    pub label: String,
    /// The label the image itself prints in its verdict line.
    pub image_label: String,
    pub iso: PathBuf,
    pub dir: PathBuf,
    pub build: Option<BuildId>,
    pub qemu: QemuSettings,
}

/// Builds the image of `manifest` and its ISO.
pub fn prepare(manifest: &Path, label: &str) -> Result<Target> {
    println!("xtask: building the {label} image ({})", manifest.display());
    let image = dist::dist(manifest)?;
    let iso = crate::grub::make_iso(&image)?;
    let build = crate::verdict::build_id_of(&image.dir)
        .with_context(|| format!("reading the build id of {}", image.dir.display()))?;
    Ok(Target {
        label: label.to_string(),
        image_label: image.manifest.name.clone(),
        iso,
        dir: image.dir,
        build: Some(build),
        qemu: image.manifest.qemu.clone(),
    })
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub ok: bool,
    pub why: String,
    /// Since the previous case line (or the reset).
    pub time: Duration,
}

/// What one image's run on the rig came to.
#[derive(Debug)]
pub struct ImageRun {
    pub cases: Vec<CaseResult>,
    /// Why the run failed as a whole.
    pub problem: Option<String>,
    /// The console as text, with decoded defmt and the judge's remarks.
    pub console: String,
    pub time: Duration,
}

fn values(rig: &Rig, t: &Target) -> Values {
    let one = |p: &Path| Value::One(p.display().to_string());
    let mut v = Values::new();
    v.insert("iso", one(&t.iso));
    v.insert("image", Value::One(t.label.clone()));
    v.insert("image-dir", one(&t.dir));
    v.insert(
        "build-id",
        Value::One(
            t.build
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
    );
    v.insert("work", one(&rig.work_dir()));
    v.insert("rig-dir", one(&rig.dir));
    v.insert("qemu-memory", Value::One(t.qemu.memory.clone()));
    v.insert("qemu-smp", Value::One(t.qemu.smp.clone()));
    v.insert("qemu-args", Value::Many(t.qemu.args.clone()));
    v
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Resets the machine: the rig's command, or QMP `system_reset` and, for a
/// machine that was started paused, `cont`.
fn reset(rig: &Rig, v: &Values, work: &Path) -> Result<()> {
    let timeout = secs(rig.reset.timeout);
    if let Some(cmd) = &rig.reset.command {
        rig::run_bounded(rig::shell(cmd, v)?, timeout, &work.join("reset.log"))
            .map_err(|e| anyhow::anyhow!("the reset command {e}"))?;
        return Ok(());
    }
    let path = rig::substitute(rig.reset.qmp.as_deref().unwrap_or_default(), v, false)?;
    let mut q = qmp::Qmp::connect(Path::new(&path), timeout)?;
    q.execute("system_reset", json!({}))?;
    let status = q.execute("query-status", json!({}))?;
    if status["running"] != true {
        q.execute("cont", json!({}))?;
    }
    Ok(())
}

/// Runs one image on the rig. `echo` shows the console live (prefixed).
pub fn run_one(rig: &Rig, t: &Target, echo: bool) -> ImageRun {
    let start = Instant::now();
    let mut run = ImageRun {
        cases: vec![],
        problem: None,
        console: String::new(),
        time: Duration::ZERO,
    };
    if let Err(e) = drive(rig, t, echo, &mut run) {
        run.problem = Some(format!("{e:#}"));
    }
    run.time = start.elapsed();
    run
}

fn drive(rig: &Rig, t: &Target, echo: bool, run: &mut ImageRun) -> Result<()> {
    let work = rig.work_dir();
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let v = values(rig, t);
    if let Some(cmd) = &rig.deliver.command {
        rig::run_bounded(
            rig::shell(cmd, &v)?,
            secs(rig.deliver.timeout),
            &work.join("deliver.log"),
        )
        .map_err(|e| anyhow::anyhow!("rig: the deliver command {e}"))?;
    }
    let kind = rig.console_kind()?;
    let mut console = Console::open(
        &kind,
        &v,
        Instant::now() + secs(rig.timeouts.boot),
        &work.join("console.log"),
    )
    .context("rig: the console")?;
    run.console
        .push_str(&format!("xtask: console: {}\n", console.describe()));
    reset(rig, &v, &work).context("rig: reset")?;
    let reset_at = Instant::now();
    let run_deadline = reset_at + secs(rig.timeouts.run);
    // Frames are decoded and faults symbolized live, with the image's ELFs.
    let mut judge = Judge::new(&t.image_label, t.build)
        .with_decoder(Box::new(crate::decode::ImageAnnotator::new(&t.dir)));
    let mut last_byte: Option<Instant> = None;
    let mut last_case = reset_at;
    let mut bytes = 0usize;
    let mut buf = vec![0u8; 4096];
    let mut timed_out = None;
    let end = loop {
        let quiet_deadline = match last_byte {
            None => reset_at + secs(rig.timeouts.boot),
            Some(at) => at + secs(rig.timeouts.silence),
        };
        let deadline = quiet_deadline.min(run_deadline);
        match console.read(&mut buf, deadline) {
            Got::Data(n) => {
                bytes += n;
                last_byte = Some(Instant::now());
                let mut done = false;
                for e in judge.feed(&buf[..n]) {
                    done |= note(e, t, echo, run, &mut last_case);
                }
                if done {
                    judge.stop_after_verdict();
                    break End::Exited(0);
                }
            }
            Got::Quiet => {
                let now = Instant::now();
                let why = if now >= run_deadline {
                    format!(
                        "no verdict within {} s of the reset: the image never ended \
                         ({bytes} console bytes)",
                        rig.timeouts.run
                    )
                } else if now < quiet_deadline {
                    continue; // an interrupted wait
                } else if last_byte.is_none() {
                    format!(
                        "the console stayed silent for {} s after the reset (no output at all)",
                        rig.timeouts.boot
                    )
                } else {
                    format!(
                        "the console went silent for {} s (after {bytes} bytes)",
                        rig.timeouts.silence
                    )
                };
                timed_out = Some(why);
                break End::TimedOut;
            }
            Got::Lost(why) => break End::ConsoleLost(why),
        }
    };
    drop(console);
    let verdict = judge.finish(end);
    // The judge knows only that time ran out; which deadline it was goes first.
    run.problem = match (timed_out, &verdict.problem) {
        (Some(why), Some(p)) => Some(format!("{why}; {p}")),
        (Some(why), None) => Some(why),
        (None, p) => p.clone(),
    };
    if let Some(p) = &run.problem {
        run.console.push_str(&format!("xtask: {p}\n"));
    }
    // The judge's final word on each case wins over what was seen live.
    let times: Vec<(String, Duration)> =
        run.cases.iter().map(|c| (c.name.clone(), c.time)).collect();
    run.cases = verdict
        .cases
        .iter()
        .map(|c| CaseResult {
            name: c.name.clone(),
            ok: c.ok,
            why: c.reason.clone(),
            time: times
                .iter()
                .find(|(n, _)| *n == c.name)
                .map_or(Duration::ZERO, |(_, d)| *d),
        })
        .collect();
    Ok(())
}

/// Records one judge event; true at the verdict line.
fn note(e: Event, t: &Target, echo: bool, run: &mut ImageRun, last_case: &mut Instant) -> bool {
    let shown = crate::decode::show(&e);
    if echo {
        println!("  {} | {shown}", t.label);
    }
    run.console.push_str(&shown);
    run.console.push('\n');
    match e {
        Event::Case(Case { name, ok, reason }) => {
            let now = Instant::now();
            run.cases.push(CaseResult {
                name,
                ok,
                why: reason,
                time: now.duration_since(*last_case),
            });
            *last_case = now;
            false
        }
        Event::Verdict { .. } => true,
        Event::Text(_) | Event::Defmt(_) | Event::Note(_) | Event::Problem(_) => false,
    }
}

/// Runs the rig's `stop` command, if it has one.
pub fn stop(rig: &Rig, t: Option<&Target>) -> Result<()> {
    let Some(stop) = &rig.stop else { return Ok(()) };
    let mut v = Values::new();
    if let Some(t) = t {
        v = values(rig, t);
    } else {
        v.insert("work", Value::One(rig.work_dir().display().to_string()));
        v.insert("rig-dir", Value::One(rig.dir.display().to_string()));
    }
    let work = rig.work_dir();
    std::fs::create_dir_all(&work)?;
    rig::run_bounded(
        rig::shell(&stop.command, &v)?,
        secs(stop.timeout),
        &work.join("stop.log"),
    )
    .map_err(|e| anyhow::anyhow!("rig: the stop command {e}"))?;
    Ok(())
}

/// Prints one case line as `cargo xtask test` does.
pub fn case_line(label: &str, c: &CaseResult) -> String {
    if c.ok {
        format!("test {label}::{} ... ok", c.name)
    } else {
        format!("test {label}::{} ... FAILED {}", c.name, c.why)
    }
}

/// `cargo xtask hil --rig RIG --image MANIFEST… [--junit FILE]`.
pub fn command(rig_path: &Path, manifests: &[PathBuf], junit: Option<&Path>) -> Result<ExitCode> {
    let rig = Rig::load(rig_path)?;
    crate::deps::ensure_target()?;
    println!(
        "xtask: rig {} ({}){}",
        rig.name,
        rig_path.display(),
        if rig.description.is_empty() {
            String::new()
        } else {
            format!(": {}", rig.description)
        }
    );
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut failures = vec![];
    let mut report = Collector::default();
    let mut last = None;
    for m in manifests {
        let label = m
            .file_stem()
            .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        let target = match prepare(m, &label) {
            Ok(t) => t,
            Err(e) => {
                failed += 1;
                let why = format!("the image could not be built: {e:#}");
                println!("xtask: {label}: {why}");
                report.whole_run_failed(&label, &why);
                failures.push(format!("{label}: {why}"));
                continue;
            }
        };
        println!(
            "xtask: {label}: running {} on {}",
            target.iso.display(),
            rig.name
        );
        let run = run_one(&rig, &target, true);
        for c in &run.cases {
            println!("{}", case_line(&label, c));
            report.case(&label, &c.name, c.ok, &c.why, c.time);
            if c.ok {
                passed += 1;
            } else {
                failed += 1;
                failures.push(format!("{label}::{}: {}", c.name, c.why));
            }
        }
        if let Some(p) = &run.problem {
            failed += 1;
            println!("xtask: {label}: FAILED: {p}");
            report.whole_run_failed(&label, p);
            failures.push(format!("{label}: {p}"));
        }
        report.image_output(&label, &run.console, run.time);
        println!(
            "xtask: {label}: {} cases in {:.1} s",
            run.cases.len(),
            run.time.as_secs_f64()
        );
        last = Some(target);
    }
    if let Err(e) = stop(&rig, last.as_ref()) {
        failed += 1;
        println!("xtask: {e:#}");
        report.whole_run_failed(&rig.name, &format!("{e:#}"));
        failures.push(format!("{e:#}"));
    }
    if let Some(path) = junit {
        report.report().write(path)?;
        println!("xtask: wrote {}", path.display());
    }
    if !failures.is_empty() {
        println!("\nfailures:");
        for f in &failures {
            println!("    {f}");
        }
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{run_one, stop, ImageRun, Target};
    use crate::manifest::QemuSettings;
    use crate::rig::Rig;

    /// A fake rig named `name`: shell commands stand in for the machine.
    fn rig(name: &str, deliver: &str, reset: &str, console: &str, timeouts: &str) -> Rig {
        let text = format!(
            "name = \"test-{name}\"\n[deliver]\n{deliver}\n[reset]\ncommand = {reset:?}\n\
             [console]\ncommand = {console:?}\n[timeouts]\n{timeouts}\n"
        );
        Rig::parse(&text, Path::new("fake.toml")).unwrap()
    }

    fn target() -> Target {
        Target {
            label: "hil-fake".into(),
            image_label: "fake".into(),
            iso: PathBuf::from("/nonexistent/image.iso"),
            dir: std::env::temp_dir(),
            build: None,
            qemu: QemuSettings::default(),
        }
    }

    /// A console as an image prints it: one passing and one failing case,
    /// then the verdict line for build `build`.
    fn canned_console(build: u64) -> String {
        let mut tally = verdict::Tally::default();
        let a = tally.pass(&"ipc_round_trip");
        let b = tally.fail(&"lease_bounds", &"expected 4096, got 0");
        let mut v = tally.verdict("fake");
        v.build = verdict::BuildId(build);
        format!("SeaBIOS\r\n[runner] {a}\r\n[runner] {b}\r\n[jefe] {v}\r\n")
    }

    /// A console command that prints `text` and then stays connected.
    fn printing(name: &str, text: &str) -> String {
        let file = std::env::temp_dir().join(format!("xtask-hil-{name}-{}", std::process::id()));
        std::fs::write(&file, text).unwrap();
        format!("cat '{}'; sleep 30", file.display())
    }

    #[test]
    fn a_good_console_is_judged_at_its_verdict_line_without_waiting_for_eof() {
        let console = printing("good", &canned_console(0xabcd));
        let r = rig("good", "already-booted = true", "true", &console, "");
        let mut t = target();
        t.build = Some(verdict::BuildId(0xabcd));
        let start = std::time::Instant::now();
        let run = run_one(&r, &t, false);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(run.problem, None, "{}", run.console);
        let got: Vec<(&str, bool)> = run.cases.iter().map(|c| (c.name.as_str(), c.ok)).collect();
        assert_eq!(got, [("ipc_round_trip", true), ("lease_bounds", false)]);
        assert_eq!(run.cases[1].why, "expected 4096, got 0");
        assert!(run.console.contains("SeaBIOS"));
    }

    #[test]
    fn a_garbled_or_foreign_console_fails_the_run() {
        // One character of a case line changed on the way: the CRC catches it.
        let garbled = canned_console(0xabcd).replace("lease_bounds", "lease_bounda");
        let r = rig(
            "garbled",
            "already-booted = true",
            "true",
            &printing("garbled", &garbled),
            "",
        );
        let mut t = target();
        t.build = Some(verdict::BuildId(0xabcd));
        let p = run_one(&r, &t, false).problem.unwrap();
        assert!(p.contains("checksum"), "{p}");
        // A console from another build (a stale image on the rig).
        let r = rig(
            "foreign",
            "already-booted = true",
            "true",
            &printing("foreign", &canned_console(0x1111)),
            "",
        );
        let p = run_one(&r, &t, false).problem.unwrap();
        assert!(p.contains("build"), "{p}");
    }

    fn problem(r: &ImageRun) -> &str {
        r.problem.as_deref().expect("the run failed as a whole")
    }

    #[test]
    fn a_failing_deliver_command_fails_the_run_with_its_output() {
        let r = rig(
            "deliver",
            "command = \"echo cannot mount {iso} >&2; exit 2\"",
            "true",
            "printf 'never read\\n'",
            "",
        );
        let run = run_one(&r, &target(), false);
        let p = problem(&run);
        assert!(p.contains("deliver command failed"), "{p}");
        assert!(
            p.contains("exit status: 2") && p.contains("cannot mount /nonexistent/image.iso"),
            "{p}"
        );
        assert!(run.cases.is_empty());
    }

    #[test]
    fn a_failing_or_hanging_reset_fails_the_run() {
        let r = rig("reset", "already-booted = true", "exit 1", "sleep 30", "");
        let p = run_one(&r, &target(), false).problem.unwrap();
        assert!(p.contains("reset command failed (exit status: 1)"), "{p}");
        let mut r = rig(
            "reset-hang",
            "already-booted = true",
            "sleep 30",
            "sleep 30",
            "",
        );
        r.reset.timeout = 1;
        let p = run_one(&r, &target(), false).problem.unwrap();
        assert!(p.contains("did not finish within 1 s"), "{p}");
    }

    #[test]
    fn a_console_that_never_speaks_or_goes_silent_fails_the_run() {
        let r = rig(
            "mute",
            "already-booted = true",
            "true",
            "sleep 30",
            "boot = 1",
        );
        let p = run_one(&r, &target(), false).problem.unwrap();
        assert!(p.contains("stayed silent for 1 s after the reset"), "{p}");
        assert!(p.contains("no verdict line"), "the judge agrees: {p}");
        let r = rig(
            "silent",
            "already-booted = true",
            "true",
            "printf 'booting\\ntest one ... ok\\n'; sleep 30",
            "silence = 1",
        );
        let run = run_one(&r, &target(), false);
        let p = problem(&run);
        assert!(p.contains("went silent for 1 s"), "{p}");
        assert_eq!(run.cases.len(), 1, "the case before the silence is kept");
        assert!(run.console.contains("booting"));
    }

    #[test]
    fn an_image_that_never_ends_fails_at_the_run_deadline() {
        let r = rig(
            "endless",
            "already-booted = true",
            "true",
            "while :; do echo 'test again ... ok'; sleep 0.05; done",
            "run = 1\nsilence = 5",
        );
        let start = std::time::Instant::now();
        let run = run_one(&r, &target(), false);
        let p = problem(&run);
        assert!(
            p.contains("no verdict within 1 s of the reset: the image never ended"),
            "{p}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_console_that_ends_before_the_verdict_fails_the_run() {
        let r = rig(
            "lost",
            "already-booted = true",
            "true",
            "printf 'test a ... ok\\n'; echo 'SOL payload deactivated' >&2; exit 1",
            "",
        );
        let run = run_one(&r, &target(), false);
        let p = problem(&run);
        assert!(
            p.contains("console command ended") && p.contains("SOL payload deactivated"),
            "{p}"
        );
        assert!(stop(&r, None).is_ok(), "no stop command: nothing to do");
    }
}
