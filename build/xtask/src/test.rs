//! `cargo xtask test`: every host test, then every in-QEMU suite, then one
//! closing line `N passed, N failed`.
//!
//! Host crates are the workspace members not marked
//! `[package.metadata.tdxhost] target-only = true`; their `cargo test`
//! results are counted from cargo's own summary lines. Each in-QEMU suite
//! is an image whose tasks print `test NAME ... ok|FAILED` and a closing
//! checksummed verdict line (console protocol v1), and end the run through
//! isa-debug-exit. Each image is judged by its console alone
//! (`verdict.rs`): a run without a verdict line that checks out — hung,
//! truncated, garbled, a damaged defmt frame — counts as a failure of its
//! own, so nothing can pass by going quiet; QEMU's exit status is only
//! shown.
//!
//! Some suites also boot from the GRUB ISO (`grub.rs`): under SeaBIOS
//! (`…-grub`) and under OVMF (`…-uefi`, firmware from `deps::ensure_ovmf`,
//! each run with its own copy of the variable store); a UEFI run also
//! checks that the kernel took its memory map and RSDP from the
//! multiboot2 EFI tags.
//!
//! `--list` and a PATTERN choose tests by full name (`IMAGE::NAME`,
//! `host:CRATE::PATH`); how, and where an image's names come from, is in
//! `test_select.rs`. With neither, the run is the plain one CI relies on:
//! one `cargo test` over every host crate, then every image. With a
//! pattern, host tests run from the test executables cargo built, each
//! given the matching names (`--exact`), and every image that may hold a
//! matching case runs whole, counting only matching cases.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};

use crate::test_select::{self as select, case_line, ImagePlan};
use crate::verdict::{End, Event};
use crate::{deps, dist, junit, qemu};

mod host;

pub use host::host_crates;
use host::{host_executables, host_tests, host_tests_filtered};

/// The in-QEMU suites: (manifest, what it checks). A label may be shared
/// by several manifests booted one after the other (one suite of several
/// boots); their case names must differ.
pub const SUITES: &[(&str, &str)] = &[
    ("test-suite/app.toml", "kernel"),
    ("test-suite/platform-numa.toml", "platform-numa"),
    ("test-suite/platform-1cpu.toml", "platform-1cpu"),
    ("test-suite/platform-hotplug.toml", "platform-hotplug"),
    ("test-suite/tdx-numa.toml", "tdx-numa"),
    ("test-suite/tdx-td.toml", "tdx-td"),
    ("test-suite/tdx-x2apic.toml", "tdx-x2apic"),
    ("test-suite/tdx-8node.toml", "tdx-8node"),
    ("test-suite/tdx-1cpu.toml", "tdx-1cpu"),
    ("test-suite/tdx-parinit.toml", "tdx-parinit"),
    ("test-suite/tdx-early.toml", "tdx-early"),
    ("test-suite/tdx-absent.toml", "tdx-absent"),
    ("test-suite/tdx-fail-sysinit.toml", "tdx-fail-sysinit"),
    ("test-suite/tdx-fail-lpinit.toml", "tdx-fail-lpinit"),
    ("test-suite/tdx-fail-sysrd.toml", "tdx-fail-sysrd"),
    ("test-suite/tdx-fail-config.toml", "tdx-fail-config"),
    ("test-suite/tdx-fail-keyconfig.toml", "tdx-fail-keyconfig"),
    ("test-suite/tdx-fail-tdmrinit.toml", "tdx-fail-tdmrinit"),
    ("test-suite/adversary.toml", "adversary"),
    ("test-suite/kill.toml", "kill"),
    ("test-suite/tdx-restart.toml", "tdx-restart"),
    // The restart soak reports under tdx-restart's label
    // (`tdx-restart::restart_soak`): one suite of two boots.
    ("test-suite/tdx-restart-soak.toml", "tdx-restart"),
];

/// The raw console of an image's last run, in its image directory.
pub const CONSOLE_FILE: &str = "console.log";

/// Suites also booted through GRUB from an ISO (the multiboot2 path).
pub const GRUB_SUITES: &[(&str, &str)] = &[("test-suite/app.toml", "kernel-grub")];

/// Suites booted from the same ISO under UEFI firmware (OVMF): GRUB's EFI
/// build, the EFI memory map and the RSDP tag. The kernel suite ends by its
/// own reset as on a rig, and so does the TDX suite (`tdx-numa`'s 4 CPUs,
/// 2 nodes and hot-plug slots, with defmt on the one console, since OVMF
/// writes to every serial port). The hardware image (`tdx-hw`) boots the
/// same way a TDX server would and, without TDX, must end Unavailable.
pub const UEFI_SUITES: &[(&str, &str)] = &[
    ("test-suite/app.toml", "kernel-uefi"),
    ("test-suite/tdx-uefi.toml", "tdx-uefi"),
    ("test-suite/tdx-hw.toml", "tdx-hw-uefi"),
];

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    /// Test cases counted (passed or failed), as opposed to runs that
    /// failed as a whole.
    cases: u64,
    failures: Vec<String>,
    /// The JUnit report: every count above has its case there.
    junit: junit::Collector,
}

/// How an in-QEMU image is booted.
#[derive(Clone, Copy)]
enum Boot {
    /// The image ELF through QEMU's `-kernel` (PVH).
    Direct,
    /// A GRUB ISO (the multiboot2 path) under SeaBIOS.
    Grub,
    /// The same ISO under OVMF (UEFI).
    Uefi,
    /// Driven over QMP by `hotplug_test.rs`, with this policy.
    Hotplug(&'static str),
    /// Driven over QMP by `nmi_test.rs`.
    Nmi,
    /// On the QEMU rig through `cargo xtask hil` (`hil.rs`).
    Hil,
}

/// One in-QEMU image of the run.
struct QemuImage {
    /// The `IMAGE` of its cases' full names.
    label: String,
    manifest: &'static str,
    boot: Boot,
}

impl QemuImage {
    /// How the run names this image: its label, and its manifest too when
    /// the label covers several (`tdx-restart (tdx-restart-soak.toml)`).
    fn name(&self) -> String {
        let shared = qemu_images()
            .iter()
            .filter(|i| i.label == self.label)
            .count()
            > 1;
        if shared {
            let file = std::path::Path::new(self.manifest)
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or(self.manifest);
            format!("{} ({file})", self.label)
        } else {
            self.label.clone()
        }
    }
}

/// Every in-QEMU image, in run order.
fn qemu_images() -> Vec<QemuImage> {
    let direct = SUITES.iter().map(|&(manifest, what)| QemuImage {
        label: what.into(),
        manifest,
        boot: Boot::Direct,
    });
    let grub = GRUB_SUITES.iter().map(|&(manifest, what)| QemuImage {
        label: what.into(),
        manifest,
        boot: Boot::Grub,
    });
    let uefi = UEFI_SUITES.iter().map(|&(manifest, what)| QemuImage {
        label: what.into(),
        manifest,
        boot: Boot::Uefi,
    });
    let hotplug = crate::hotplug_test::SUITES
        .iter()
        .map(|&(manifest, policy)| QemuImage {
            label: crate::hotplug_test::label(policy),
            manifest,
            boot: Boot::Hotplug(policy),
        });
    let nmi = std::iter::once(QemuImage {
        label: crate::nmi_test::LABEL.into(),
        manifest: crate::nmi_test::MANIFEST,
        boot: Boot::Nmi,
    });
    let hil = crate::hil::TEST_SUITES
        .iter()
        .map(|&(manifest, label)| QemuImage {
            label: label.into(),
            manifest,
            boot: Boot::Hil,
        });
    direct
        .chain(grub)
        .chain(uefi)
        .chain(hotplug)
        .chain(nmi)
        .chain(hil)
        .collect()
}

/// Counts one case of `what` into `t` if `pattern` selects it.
fn count_case(what: &str, name: &str, ok: bool, why: &str, pattern: Option<&str>, t: &mut Totals) {
    count_timed_case(what, name, ok, why, Duration::ZERO, pattern, t);
}

/// [`count_case`] with the case's duration, where it is known.
fn count_timed_case(
    what: &str,
    name: &str,
    ok: bool,
    why: &str,
    time: Duration,
    pattern: Option<&str>,
    t: &mut Totals,
) {
    if !select::matches(pattern, &select::image_case(what, name)) {
        return;
    }
    t.junit.case(what, name, ok, why, time);
    t.cases += 1;
    if ok {
        t.passed += 1;
        println!("test {what}::{name} ... ok");
    } else {
        t.failed += 1;
        println!("test {what}::{name} ... FAILED {why}");
        t.failures.push(format!("{what}::{name}: {why}"));
    }
}

/// Boots one image and counts its (selected) cases. Returns every case
/// name it printed when the run completed, for the record.
fn qemu_suite(
    manifest: &str,
    what: &str,
    how: Boot,
    pattern: Option<&str>,
    t: &mut Totals,
) -> Result<Option<Vec<String>>> {
    // Missing firmware is this image's failure, said before anything runs.
    let ovmf = match how {
        Boot::Uefi => Some(deps::ensure_ovmf()?),
        _ => None,
    };
    println!("xtask: building the {what} test image ({manifest})");
    let image = dist::dist(manifest.as_ref())?;
    let grub = matches!(how, Boot::Grub | Boot::Uefi);
    let boot = if grub {
        crate::grub::make_iso(&image)?
    } else {
        image.elf.clone()
    };
    let uefi = match &ovmf {
        Some(o) => Some(qemu::Uefi::fresh(
            o,
            &boot,
            image.manifest.kernel.defmt == crate::manifest::DefmtPort::Console,
        )?),
        None => None,
    };
    let ends_by_reset = image.manifest.kernel.on_finish == build_kconfig::OnFinish::Reset;
    let started = Instant::now();
    let outcome = qemu::run(
        &boot,
        &qemu::Options {
            settings: &image.manifest.qemu,
            // The ISO boots the way a machine without QEMU's exit device
            // does: the image must end the run itself (`on-finish`). Under
            // UEFI an image that cannot end itself keeps the exit device.
            debug_exit: match how {
                Boot::Grub => false,
                Boot::Uefi => !ends_by_reset,
                _ => true,
            },
            icount: false,
            echo: false,
            interactive: false,
            extra_args: vec![],
            timeout: None,
            uefi,
        },
    )?;
    let end = match outcome.status {
        Some(s) => End::Exited(s),
        None => End::TimedOut,
    };
    // Kept for `cargo xtask decode` (as a rig's captured log would be).
    let _ = std::fs::write(image.dir.join(CONSOLE_FILE), &outcome.raw);
    let (events, verdict) =
        crate::decode::judge_capture(&outcome.raw, &image.dir, &image.manifest.name, end);
    let mut seen = vec![];
    for c in &verdict.cases {
        seen.push(c.name.clone());
        let time = outcome
            .case_times
            .iter()
            .find(|(name, _)| *name == c.name)
            .map_or(Duration::ZERO, |&(_, d)| d);
        count_timed_case(what, &c.name, c.ok, &c.reason, time, pattern, t);
    }
    // Symbolized faults explain failures: with a failure, show each fault
    // report and where it was, and every problem of the console.
    if verdict.problem.is_some() || verdict.failed > 0 {
        let mut last = None;
        for e in &events {
            match e {
                Event::Text(l) => last = Some(l),
                Event::Note(_) | Event::Problem(_) => {
                    if let (Event::Note(_), Some(l)) = (e, last.take()) {
                        println!("xtask: {what}: {l}");
                    }
                    println!("xtask: {what}:   {}", crate::decode::show(e).trim_start());
                }
                _ => {}
            }
        }
    }
    if image.manifest.name == "kernel-tests" {
        let source =
            std::fs::read_to_string(dist::workspace_root().join("test-suite/assist/src/main.rs"))
                .unwrap_or_default();
        let r = crate::decode::check_symbolized_fault(&events, &source);
        seen.push("symbolized_fault".into());
        let why = r.as_ref().err().cloned().unwrap_or_default();
        count_case(what, "symbolized_fault", r.is_ok(), &why, pattern, t);
    }
    if grub && ends_by_reset {
        let r = ended_by_reset(&outcome.raw, outcome.status);
        seen.push("run_ended_by_reset".into());
        let why = r.as_ref().err().cloned().unwrap_or_default();
        count_case(what, "run_ended_by_reset", r.is_ok(), &why, pattern, t);
    }
    // A soak's summary (its seed, the restarts, operations and frames it
    // checked) is shown with its cases.
    for l in outcome
        .console
        .iter()
        .filter(|l| l.contains("[soak] seed "))
    {
        println!("xtask: {what}: {}", l.trim());
    }
    if let Some(name) = restart_case(&image.manifest.name) {
        // The console with the decoded defmt lines: jefe's restart lines
        // are defmt records (on COM2, or in-band on the console).
        let r = restarted_at_every_kill(&outcome.console.join("\n"));
        seen.push(name.into());
        let why = r.as_ref().err().cloned().unwrap_or_default();
        count_case(what, name, r.is_ok(), &why, pattern, t);
    }
    if matches!(how, Boot::Uefi) {
        for (name, r) in uefi_boot_checks(&outcome.raw) {
            seen.push(name.into());
            let why = r.as_ref().err().cloned().unwrap_or_default();
            count_case(what, name, r.is_ok(), &why, pattern, t);
        }
    }
    // The COM2 defmt stream's own check (absent in the shared-console mode,
    // where a bad frame is a problem of the console).
    if let Some((name, ok, why)) = outcome.console.last().and_then(|l| case_line(l)) {
        if name == "defmt_frames" {
            seen.push(name.to_string());
            count_case(what, name, ok, why, pattern, t);
        }
    }
    let ran = seen.len();
    let complete = verdict.problem.is_none();
    t.junit.image_output(
        what,
        &(outcome.console.join("\n") + "\n"),
        started.elapsed(),
    );
    if let Some(problem) = &verdict.problem {
        t.failed += 1;
        let why = format!(
            "the run failed after {ran} cases: {problem} (QEMU: {})",
            outcome.describe()
        );
        t.junit.whole_run_failed(what, &why);
        t.failures.push(format!("{what}: {why}"));
        println!("xtask: {what} suite: {problem}; last console lines:");
        for l in outcome.console.iter().rev().take(25).rev() {
            println!("  | {l}");
        }
    }
    println!(
        "xtask: {what} suite: {ran} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(complete.then_some(seen))
}

/// One end-to-end memory hotplug suite (driven over QMP, see
/// `hotplug_test.rs`). Returns its case names when it ran to the end.
fn hotplug_suite(
    manifest: &str,
    policy: &'static str,
    pattern: Option<&str>,
    t: &mut Totals,
) -> Result<Option<Vec<String>>> {
    let what = crate::hotplug_test::label(policy);
    let results = crate::hotplug_test::run_suite(manifest, policy)?;
    Ok(Some(count_results(&what, results, pattern, t)))
}

/// The NMI suite (driven over QMP, see `nmi_test.rs`). Returns its case
/// names when it ran to the end.
fn nmi_suite(pattern: Option<&str>, t: &mut Totals) -> Result<Option<Vec<String>>> {
    let results = crate::nmi_test::run_suite()?;
    Ok(Some(count_results(
        crate::nmi_test::LABEL,
        results,
        pattern,
        t,
    )))
}

/// Counts the results of a QMP-driven suite; returns their names.
fn count_results(
    what: &str,
    results: Vec<crate::hotplug_test::CaseResult>,
    pattern: Option<&str>,
    t: &mut Totals,
) -> Vec<String> {
    for r in &results {
        count_case(what, &r.name, r.ok, &r.why, pattern, t);
    }
    results.into_iter().map(|r| r.name).collect()
}

/// One image on the QEMU rig, through `cargo xtask hil`'s path. Returns
/// its case names when the judge accepted the run.
fn hil_suite(
    manifest: &str,
    what: &str,
    pattern: Option<&str>,
    t: &mut Totals,
) -> Result<Option<Vec<String>>> {
    let rig = crate::rig::Rig::load(crate::hil::QEMU_RIG.as_ref())?;
    let target = crate::hil::prepare(manifest.as_ref(), what)?;
    let run = crate::hil::run_one(&rig, &target, false);
    if let Err(e) = crate::hil::stop(&rig, Some(&target)) {
        println!("xtask: {what}: {e:#}");
    }
    for c in &run.cases {
        count_timed_case(what, &c.name, c.ok, &c.why, c.time, pattern, t);
    }
    t.junit.image_output(what, &run.console, run.time);
    println!(
        "xtask: {what} suite (rig {}): {} cases in {:.1} s",
        rig.name,
        run.cases.len(),
        run.time.as_secs_f64()
    );
    if let Some(p) = run.problem {
        t.failed += 1;
        t.junit.whole_run_failed(what, &p);
        t.failures.push(format!("{what}: {p}"));
        println!("xtask: {what}: the run failed: {p}; last console lines:");
        let lines: Vec<&str> = run.console.lines().collect();
        for l in &lines[lines.len().saturating_sub(25)..] {
            println!("  | {l}");
        }
        return Ok(None);
    }
    Ok(Some(run.cases.into_iter().map(|c| c.name).collect()))
}

fn run_image(image: &QemuImage, pattern: Option<&str>, t: &mut Totals) {
    let what = &image.label;
    let result = match image.boot {
        Boot::Direct | Boot::Grub | Boot::Uefi => {
            qemu_suite(image.manifest, what, image.boot, pattern, t)
        }
        Boot::Hotplug(policy) => hotplug_suite(image.manifest, policy, pattern, t),
        Boot::Nmi => nmi_suite(pattern, t),
        Boot::Hil => hil_suite(image.manifest, what, pattern, t),
    };
    match result {
        Ok(Some(names)) => {
            if let Err(e) = select::write_record(what, image.manifest, &names) {
                println!("xtask: could not record the {what} cases: {e:#}");
            }
        }
        Ok(None) => {}
        Err(e) => {
            t.failed += 1;
            t.junit
                .whole_run_failed(what, &format!("could not run: {e:#}"));
            t.failures.push(format!("{what}: {e:#}"));
            println!("xtask: {what} suite could not run: {e:#}");
        }
    }
}

/// Whether a run without isa-debug-exit ended as `on-finish = "reset"`
/// asks: the kernel announced the reset after the verdict line, and QEMU
/// (started with `-no-reboot`, so a reset ends it) exited by itself with
/// status 0 rather than being killed at the timeout.
fn ended_by_reset(console: &[u8], status: Option<i32>) -> Result<(), String> {
    let text = String::from_utf8_lossy(console);
    let verdict = text
        .find("verdict: ")
        .ok_or("no verdict line before the end of the run")?;
    if !text[verdict..].contains("the run is over; resetting") {
        return Err("the kernel did not announce a reset after the verdict".into());
    }
    match status {
        Some(0) => Ok(()),
        Some(s) => Err(format!(
            "QEMU exited with status {s}, not through a guest reset"
        )),
        None => Err("the machine did not reset: QEMU was killed at the timeout".into()),
    }
}

/// The images judged by [`restarted_at_every_kill`], by manifest name, and
/// the name of that case in each. Both report under the `tdx-restart`
/// label, so the names differ.
const RESTART_CASES: &[(&str, &str)] = &[
    ("tdx-restart", "tdx_host_restarted_at_every_kill"),
    ("tdx-restart-soak", "soak_restarted_at_every_kill"),
];

/// The [`restarted_at_every_kill`] case of the image named `manifest`, if
/// it has one.
fn restart_case(manifest: &str) -> Option<&'static str> {
    RESTART_CASES
        .iter()
        .find(|&&(m, _)| m == manifest)
        .map(|&(_, case)| case)
}

/// The own case of `tdx-restart` and `tdx-restart-soak`: every kill the
/// kernel injected into tdx-host (a SEAMCALL kill rule's `[kill]` line or a
/// `[chaos] kill` line) was followed by one restart by jefe, and the last
/// instance re-attached (its bring-up record said where the module stood)
/// — the client cases ran on a server that had been killed at every step.
/// `text` is the console with the decoded defmt lines among it.
fn restarted_at_every_kill(text: &str) -> Result<(), String> {
    let kills = text
        .lines()
        .filter(|l| l.starts_with("[kill] ") || l.starts_with("[chaos] kill "))
        .count();
    let restarts = text
        .lines()
        .filter(|l| l.contains("restarted tdx-host (restart #"))
        .count();
    let reattached = text.lines().any(|l| l.contains("tdx-host: re-attach #"));
    if kills == 0 {
        return Err("the kernel injected no kill".into());
    }
    if restarts != kills {
        return Err(format!("{kills} kills but {restarts} restarts of tdx-host"));
    }
    if !reattached {
        return Err("no instance of tdx-host reported a re-attach".into());
    }
    Ok(())
}

/// What a UEFI boot must show on the kernel's console, beyond the suite's
/// own cases: the firmware was UEFI, memory came from the EFI memory map
/// (multiboot2 tag 17), and the RSDP from a multiboot2 tag rather than a
/// search of legacy BIOS areas.
fn uefi_boot_checks(console: &[u8]) -> [(&'static str, Result<(), String>); 2] {
    let text = String::from_utf8_lossy(console);
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.trim_end().to_string())
    };
    let map = match line("boot: memory from ") {
        Some(l) if l.starts_with("boot: memory from the EFI memory map (") => Ok(()),
        Some(l) => Err(format!("not from the EFI memory map: `{l}`")),
        None => Err("the kernel printed no memory map source".into()),
    };
    let acpi = match line("boot: firmware ") {
        Some(l) if l.starts_with("boot: firmware UEFI; ACPI RSDP from multiboot2 tag") => Ok(()),
        Some(l) => Err(format!("expected a UEFI boot with an RSDP tag: `{l}`")),
        None => Err("the kernel printed no firmware line".into()),
    };
    [("efi_memory_map", map), ("rsdp_from_tag", acpi)]
}

/// Writes the JUnit report to `target/junit.xml` (and `extra`), reads it
/// back and checks its counts against the run's; a report that disagrees
/// is a failure of the run.
fn write_junit(t: &mut Totals, extra: Option<&std::path::Path>) {
    let report = t.junit.report();
    let default = dist::target_dir().join("junit.xml");
    for path in std::iter::once(default.as_path()).chain(extra) {
        let written = report
            .write(path)
            .and_then(|()| junit::verify(path, (t.passed + t.failed) as usize, t.failed as usize));
        match written {
            Ok(()) => println!("xtask: wrote {}", path.display()),
            Err(e) => {
                t.failed += 1;
                t.failures.push(format!("junit: {e:#}"));
            }
        }
    }
}

/// `cargo xtask test [PATTERN]`.
pub fn run(
    host: bool,
    in_qemu: bool,
    pattern: Option<&str>,
    junit_file: Option<&std::path::Path>,
) -> Result<ExitCode> {
    if pattern == Some("") {
        bail!("the test pattern is empty (leave it out to run every test)");
    }
    deps::ensure_target()?;
    let mut t = Totals::default();
    let images = if in_qemu { qemu_images() } else { vec![] };
    match pattern {
        None => {
            if host {
                host_tests(&mut t)?;
            }
            if in_qemu {
                deps::ensure_qemu()?;
                for image in &images {
                    run_image(image, None, &mut t);
                }
            }
        }
        Some(p) => {
            let exes = if host { host_executables()? } else { vec![] };
            let host_matches = exes
                .iter()
                .flat_map(|e| e.tests.iter().map(|p| select::host_test(&e.crate_name, p)))
                .filter(|n| select::matches(Some(p), n))
                .count();
            let mut chosen = vec![];
            let mut unreachable: Vec<String> = vec![];
            for image in &images {
                let record = select::read_record(&image.label, image.manifest);
                match select::plan_image(
                    Some(p),
                    &image.label,
                    record.as_ref().map(|r| &r.cases[..]),
                ) {
                    ImagePlan::Run { known } => chosen.push((image, known)),
                    ImagePlan::Skip => {}
                    ImagePlan::SkipUnrecorded => unreachable.push(image.name()),
                }
            }
            if !unreachable.is_empty() {
                println!(
                    "xtask: not run, no record of their cases (run them once, e.g. \
                     `cargo xtask test IMAGE::`, to record them): {}",
                    unreachable.join(", ")
                );
            }
            if host_matches == 0 && chosen.is_empty() {
                bail!("no test matches `{p}`{}", unrecorded_note(&unreachable));
            }
            println!(
                "xtask: `{p}` selects {host_matches} host tests and {} in-QEMU images",
                chosen.len()
            );
            host_tests_filtered(&exes, p, &mut t)?;
            if !chosen.is_empty() {
                deps::ensure_qemu()?;
            }
            for (image, known) in chosen {
                match known {
                    Some(n) => println!(
                        "xtask: {}: {n} recorded cases match; the image runs whole, \
                         only matching cases count",
                        image.name()
                    ),
                    None => println!(
                        "xtask: {}: no record of its cases; it runs whole, only \
                         matching cases count",
                        image.name()
                    ),
                }
                run_image(image, Some(p), &mut t);
            }
            if t.cases == 0 && t.failed == 0 {
                bail!(
                    "no test matched `{p}` (the images it selected printed no \
                     matching case){}",
                    unrecorded_note(&unreachable)
                );
            }
        }
    }
    write_junit(&mut t, junit_file);
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

fn unrecorded_note(unrecorded: &[String]) -> String {
    if unrecorded.is_empty() {
        String::new()
    } else {
        format!(
            "; these images have no record of their cases and were not searched: {}",
            unrecorded.join(", ")
        )
    }
}

/// `cargo xtask test --list [PATTERN]`: every selected test's full name,
/// one a line; `#` lines say where an image's names come from, or that
/// they are not known.
pub fn list(host: bool, in_qemu: bool, pattern: Option<&str>) -> Result<ExitCode> {
    if pattern == Some("") {
        bail!("the test pattern is empty (leave it out to list every test)");
    }
    let mut lines = vec![];
    let mut listed = 0;
    let mut unrecorded: Vec<String> = vec![];
    if host {
        eprintln!("xtask: building the host tests to list them");
        for exe in host_executables()? {
            for test in &exe.tests {
                let name = select::host_test(&exe.crate_name, test);
                if select::matches(pattern, &name) {
                    lines.push(name);
                    listed += 1;
                }
            }
        }
    }
    let now = SystemTime::now();
    let images = if in_qemu { qemu_images() } else { vec![] };
    for image in &images {
        let label = &image.label;
        let name = image.name();
        match select::read_record(label, image.manifest) {
            Some(record) => {
                let names: Vec<String> = record
                    .cases
                    .iter()
                    .map(|c| select::image_case(label, c))
                    .filter(|n| select::matches(pattern, n))
                    .collect();
                if names.is_empty() {
                    continue;
                }
                lines.push(format!(
                    "# {name}: as printed by its last complete run, {} (cases \
                     exist only at run time; a run updates this list)",
                    select::age(record.when, now)
                ));
                listed += names.len();
                lines.extend(names);
            }
            None => {
                lines.push(format!(
                    "# {name}: not listed: its cases are known only by running it, \
                     and it has not completed a run here (`cargo xtask test {label}::` \
                     records them)"
                ));
                unrecorded.push(name);
            }
        }
    }
    for l in &lines {
        println!("{l}");
    }
    if let Some(p) = pattern {
        if listed == 0 {
            bail!(
                "no listed test matches `{p}`{}",
                unrecorded_note(&unrecorded)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
