//! The end-to-end NMI test: boots `test-suite/nmi.toml` with a QMP socket and injects NMIs
//! (`inject-nmi`) while the image's check task works, then judges both sides.
//!
//! They meet on console lines, as the hotplug tests do (`hotplug_test.rs`, whose console reader
//! and QEMU launch this reuses): the check task prints `nmi: ready for busy`, runs an IPC
//! workload and prints `nmi: busy done`; then `nmi: ready for idle`, sleeps with every task
//! blocked (the kernel halts in ring 0) and prints `nmi: idle done`. Between each `ready` and
//! its `done` the harness injects an NMI every [`SPACING`], far apart enough that the CPU never
//! merges two.
//!
//! Cases: the guest's own (`test NAME ...` lines: the workload's answers, no restart), judged
//! from the console like every image's, and the harness's: the kernel reported exactly as many
//! NMIs on the boot CPU as were injected, some of them in a task and some in the kernel, no task
//! faulted, and the run ended with the image's success. Each is printed as `test nmi::NAME ...`
//! and counted by `cargo xtask test`.
//!
//! A second boot of the same image checks the machine-check path: once the workload runs, the
//! harness injects an uncorrected error into bank 1 (HMP `mce`, through QMP's
//! `human-monitor-command`); the kernel must stop with its machine-check report, naming that
//! bank's status and address, and exit as a kernel failure, with no task blamed.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use crate::hotplug_test::{spawn, CaseResult, Console};
use crate::qmp::Qmp;

/// The image and the label of its cases.
pub const MANIFEST: &str = "test-suite/nmi.toml";
pub const LABEL: &str = "nmi";

/// Bound of the wait for the first step (boot included).
const FIRST_STEP: Duration = Duration::from_secs(90);
/// Bound of each injection phase and of the wait for the next step.
const STEP: Duration = Duration::from_secs(60);
/// Time between two injected NMIs.
const SPACING: Duration = Duration::from_millis(100);
/// The machine check injected: bank 1, MCi_STATUS with VAL, UC, EN and ADDRV (Intel SDM
/// Vol. 3B, 16.3.2.2), MCG_STATUS with MCIP and RIPV, and an address.
const MCE_BANK: u32 = 1;
const MCE_STATUS: u64 = 0xB400_0000_0000_0000;
const MCE_MCG_STATUS: u64 = 0x5;
const MCE_ADDRESS: u64 = 0x123_4000;

/// The kernel's NMI report line (`trap.rs`, `report_nmis`), parsed.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    total: u64,
    in_task: u64,
    in_kernel: u64,
    on_other_cpus: u64,
}

/// Parses `kernel: NMI received (N total: T in a task, K in the kernel, A on other CPUs, ...)`.
fn parse_report(line: &str) -> Option<Report> {
    let rest = line.strip_prefix("kernel: NMI received (")?;
    let (total, rest) = rest.split_once(" total: ")?;
    let mut fields = rest.split(", ");
    let mut field =
        |suffix: &str| -> Option<u64> { fields.next()?.strip_suffix(suffix)?.parse().ok() };
    Some(Report {
        total: total.parse().ok()?,
        in_task: field(" in a task")?,
        in_kernel: field(" in the kernel")?,
        on_other_cpus: field(" on other CPUs")?,
    })
}

/// Injects an NMI every [`SPACING`] until a console line contains `done` (bounded by
/// [`STEP`]); returns how many it injected.
fn inject_until(qmp: &mut Qmp, console: &mut Console, done: &str) -> Result<u64> {
    let started = Instant::now();
    let mut seen = console.lines.len();
    let mut injected = 0;
    loop {
        console.drain();
        if console.lines[seen..].iter().any(|l| l.contains(done)) {
            return Ok(injected);
        }
        seen = console.lines.len();
        if started.elapsed() > STEP {
            bail!("no console line `{done}` within {STEP:?} ({injected} NMIs injected)");
        }
        qmp.execute("inject-nmi", json!({}))?;
        injected += 1;
        std::thread::sleep(SPACING);
    }
}

/// Waits for a line containing `needle` that came after line `from` (it may already have
/// been taken by [`Console::drain`]).
fn wait_after(console: &mut Console, from: usize, needle: &str, timeout: Duration) -> Result<()> {
    if console.lines[from.min(console.lines.len())..]
        .iter()
        .any(|l| l.contains(needle))
    {
        return Ok(());
    }
    console.wait_for(needle, timeout)
}

/// The two phases; returns the NMIs injected in each.
fn script(qmp: &mut Qmp, console: &mut Console) -> Result<(u64, u64)> {
    wait_after(console, 0, "nmi: ready for busy", FIRST_STEP)?;
    let from = console.lines.len();
    let busy = inject_until(qmp, console, "nmi: busy done")?;
    wait_after(console, from, "nmi: ready for idle", STEP)?;
    let idle = inject_until(qmp, console, "nmi: idle done")?;
    Ok((busy, idle))
}

fn case(name: &str, ok: bool, why: String) -> CaseResult {
    CaseResult {
        name: name.into(),
        ok,
        why: if ok { String::new() } else { why },
    }
}

/// Boots the image again, injects a machine check once the workload runs, and judges the stop.
fn machine_check_run() -> Result<CaseResult> {
    let socket = crate::dist::target_dir().join(format!("{LABEL}-mce-{}.qmp", std::process::id()));
    let (mut child, mut console, _image) = spawn(MANIFEST, &socket)?;
    let injected = (|| -> Result<()> {
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(10))?;
        console.wait_for("nmi: ready for busy", FIRST_STEP)?;
        std::thread::sleep(Duration::from_millis(300));
        qmp.execute(
            "human-monitor-command",
            json!({ "command-line": format!(
                "mce 0 {MCE_BANK} {MCE_STATUS:#x} {MCE_MCG_STATUS:#x} {MCE_ADDRESS:#x} 0"
            ) }),
        )?;
        Ok(())
    })();
    let started = Instant::now();
    let status = console.finish(&mut child, (started, STEP), injected.is_err(), &socket)?;
    let said = |needle: &str| console.lines.iter().any(|l| l.contains(needle));
    let bank = format!("*** bank {MCE_BANK}: status={MCE_STATUS:#x} addr={MCE_ADDRESS:#x}");
    let blamed = console.lines.iter().any(|l| l.contains(" faulted"));
    let ok = injected.is_ok()
        && status == Some(crate::qemu::EXIT_KERNEL_FAILURE)
        && said("*** KERNEL MACHINE CHECK")
        && said(&bank)
        && !blamed;
    if !ok {
        println!("xtask: {LABEL}: machine-check run, last console lines:");
        for l in console.tail(15) {
            println!("  | {l}");
        }
    }
    Ok(case(
        "machine_check_stops_the_kernel_with_its_report",
        ok,
        format!(
            "injection: {:?}; QEMU status {status:?} (want {}); report {}; bank line `{bank}` {}; \
             a task blamed: {blamed}",
            injected.as_ref().err(),
            crate::qemu::EXIT_KERNEL_FAILURE,
            if said("*** KERNEL MACHINE CHECK") {
                "printed"
            } else {
                "missing"
            },
            if said(&bank) { "printed" } else { "missing" },
        ),
    ))
}

/// Runs the suite; every result (guest cases from the console, harness cases, and a
/// `run_completed` case for the run itself) is returned.
pub fn run_suite() -> Result<Vec<CaseResult>> {
    println!("xtask: building the {LABEL} test image ({MANIFEST})");
    let socket = crate::dist::target_dir().join(format!("{LABEL}-{}.qmp", std::process::id()));
    let (mut child, mut console, image) = spawn(MANIFEST, &socket)?;
    let started = Instant::now();
    let mut qmp = match Qmp::connect(&socket, Duration::from_secs(10)) {
        Ok(q) => q,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let injected = script(&mut qmp, &mut console);
    // The image ends itself (isa-debug-exit) once the check task is done.
    let limit = Duration::from_secs(image.manifest.qemu.timeout);
    let status = console.finish(&mut child, (started, limit), injected.is_err(), &socket)?;
    let (mut results, problem) = console.guest_cases(&image, status);

    let last = console.lines.iter().rev().find_map(|l| parse_report(l));
    if let Ok((busy, idle)) = &injected {
        let sent = busy + idle;
        // The report's own arithmetic, then the boot CPU's share: every NMI sent reaches it.
        let boot_cpu = last
            .as_ref()
            .filter(|r| r.total == r.in_task + r.in_kernel + r.on_other_cpus)
            .map(|r| r.in_task + r.in_kernel);
        results.push(case(
            "kernel_reported_every_nmi",
            busy > &0 && idle > &0 && boot_cpu == Some(sent),
            format!(
                "injected {busy} while busy and {idle} while idle; the kernel's last report: \
                 {last:?}"
            ),
        ));
        results.push(case(
            "nmis_landed_in_tasks_and_in_the_kernel",
            last.as_ref()
                .is_some_and(|r| r.in_task > 0 && r.in_kernel > 0),
            format!("the kernel's last report: {last:?}"),
        ));
    }
    let faults: Vec<&String> = console
        .lines
        .iter()
        .filter(|l| l.contains(" faulted") || l.contains("KERNEL "))
        .collect();
    results.push(case(
        "no_task_faulted_and_kernel_alive",
        faults.is_empty(),
        format!("console: {faults:?}"),
    ));
    let ok = injected.is_ok() && problem.is_none();
    let why = match (&injected, &problem) {
        (Err(e), _) => format!("{e:#}"),
        (Ok(_), Some(p)) => p.clone(),
        (Ok(_), None) => String::new(),
    };
    results.push(case("run_completed", ok, why));
    if !ok || results.iter().any(|r| !r.ok) {
        println!("xtask: {LABEL}: last console lines:");
        for l in console.tail(30) {
            println!("  | {l}");
        }
    }
    results.push(machine_check_run()?);
    println!(
        "xtask: {LABEL}: {} cases in {:.1} s ({})",
        results.len(),
        started.elapsed().as_secs_f64(),
        match &injected {
            Ok((b, i)) => format!("{b} NMIs injected while busy, {i} while idle"),
            Err(_) => "injection stopped early".into(),
        }
    );
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::{parse_report, Report};

    #[test]
    fn parses_the_kernels_report_line() {
        let line = "kernel: NMI received (5 total: 2 in a task, 3 in the kernel, 0 on other \
                    CPUs, 0 with SERR#/IOCHK# up)";
        assert_eq!(
            parse_report(line),
            Some(Report {
                total: 5,
                in_task: 2,
                in_kernel: 3,
                on_other_cpus: 0
            })
        );
        assert_eq!(parse_report("[check] kernel: NMI received (5 total)"), None);
        assert_eq!(
            parse_report("kernel: NMI received (x total: 1 in a task)"),
            None
        );
    }
}
