//! End-to-end memory hotplug tests: boots `test-suite/hotplug-<policy>.toml` (and
//! `test-suite/tdx-highmem.toml`, DIMMs above 64 GiB and 1 TiB) with a QMP socket, and plays the platform's part while the image's check task plays the guest's.
//!
//! They meet on console lines: the check task prints `hotplug: ready for <step>`, the harness
//! waits for it (bounded), acts over QMP (`object-add` + `device_add pc-dimm`, `device_del`),
//! and checks QEMU's side of the outcome (`ACPI_DEVICE_OST` with the driver's `_OST` codes,
//! `DEVICE_DELETED`, `query-memory-devices`); the check task's own `test NAME ... ok|FAILED`
//! lines are the guest side. Each result is printed as `test hotplug-<policy>::NAME ...`
//! (`tdx-highmem::NAME ...`) and
//! counted by `cargo xtask test`. A run that does not get to its end, or does not end with
//! the image reporting success, is a failure of its own, and prints the console tail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::qmp::Qmp;
use crate::{dist, qemu};

/// The suites: (manifest, policy). `highmem` is the per-node policy with DIMMs above 64 GiB and
/// 1 TiB (`tdx-highmem`).
pub const SUITES: &[(&str, &str)] = &[
    ("test-suite/hotplug-reject.toml", "reject"),
    ("test-suite/hotplug-per-node.toml", "per-node"),
    ("test-suite/tdx-highmem.toml", "highmem"),
];

/// The `IMAGE` of a suite's case names.
#[must_use]
pub fn label(policy: &str) -> String {
    if policy == "highmem" {
        "tdx-highmem".into()
    } else {
        format!("hotplug-{policy}")
    }
}

/// Where `tdx-highmem` hot-adds its DIMM: 1 TiB + 2 GiB, inside QEMU's device-memory region
/// (which starts at 4 GiB, after RAM, for an Intel CPU) and above the cold ones.
const HIGHMEM_HOT_ADDR: u64 = (1 << 40) + (2 << 30);

/// `_OST` codes the driver reports (drv/acpi-mem-hotplug, `ost`).
const OST_INSERTION: u64 = 0x200;
const OST_INSERT_NOT_SUPPORTED: u64 = 0x82;
const OST_EJECT: u64 = 0x103;
const OST_DEVICE_IN_USE: u64 = 0x81;

/// Bound of the wait for the first step (boot and TDX bring-up included).
const FIRST_STEP: Duration = Duration::from_secs(90);
/// The same for `tdx-highmem`, whose first step also scrubs the cold DIMMs under TCG.
const HIGHMEM_FIRST_STEP: Duration = Duration::from_secs(150);
/// Bound of every later wait.
const STEP: Duration = Duration::from_secs(45);
/// Bound of a QMP event the driver should cause.
const EVENT: Duration = Duration::from_secs(20);

/// One case's result.
pub struct CaseResult {
    pub name: String,
    pub ok: bool,
    pub why: String,
}

/// QEMU's console (COM1) as it arrives, line by line; shared with `nmi_test.rs`.
pub(crate) struct Console {
    rx: Receiver<String>,
    pub(crate) lines: Vec<String>,
}

impl Console {
    /// Waits for a line containing `needle`.
    pub(crate) fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.lines.push(line);
                    if hit {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no console line `{needle}` within {timeout:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("QEMU exited before the console said `{needle}`")
                }
            }
        }
    }

    /// Takes the lines that have arrived, without waiting.
    pub(crate) fn drain(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.lines.push(l);
        }
    }

    pub(crate) fn tail(&self, n: usize) -> impl Iterator<Item = &String> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n))
    }

    /// Waits for QEMU to exit, killing it once `limit` has passed since `started` (or at once
    /// when the harness's script failed), then takes the console's last lines and removes the
    /// QMP socket. Returns QEMU's exit status (`None`: killed).
    pub(crate) fn finish(
        &mut self,
        child: &mut Child,
        (started, limit): (Instant, Duration),
        script_failed: bool,
        socket: &Path,
    ) -> Result<Option<i32>> {
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s.code();
            }
            if script_failed || started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        self.drain();
        let _ = std::fs::remove_file(socket);
        Ok(status)
    }

    /// The guest's cases, judged from the console like every image's, and the verdict's
    /// problem with the run, if any.
    pub(crate) fn guest_cases(
        &self,
        image: &dist::Image,
        status: Option<i32>,
    ) -> (Vec<CaseResult>, Option<String>) {
        let mut text = vec![];
        for l in &self.lines {
            text.extend_from_slice(l.as_bytes());
            text.push(b'\n');
        }
        let end = status.map_or(crate::verdict::End::TimedOut, crate::verdict::End::Exited);
        let (_, verdict) =
            crate::decode::judge_capture(&text, &image.dir, &image.manifest.name, end);
        let cases = verdict
            .cases
            .iter()
            .map(|c| CaseResult {
                name: c.name.clone(),
                ok: c.ok,
                why: c.reason.clone(),
            })
            .collect();
        (cases, verdict.problem)
    }
}

struct Run {
    qmp: Qmp,
    console: Console,
    results: Vec<CaseResult>,
}

impl Run {
    fn case(&mut self, name: &str, ok: bool, why: impl Into<String>) {
        self.results.push(CaseResult {
            name: name.into(),
            ok,
            why: if ok { String::new() } else { why.into() },
        });
    }

    fn ost_event(&mut self, device: &str, source: u64, status: u64) -> Result<Option<Value>> {
        self.qmp.wait_event(
            "ACPI_DEVICE_OST",
            |d| {
                d["info"]["device"] == device
                    && d["info"]["source"].as_u64() == Some(source)
                    && d["info"]["status"].as_u64() == Some(status)
            },
            EVENT,
        )
    }

    fn hot_add(&mut self, node: Option<u32>) -> Result<()> {
        self.qmp.execute(
            "object-add",
            json!({ "qom-type": "memory-backend-ram", "id": "m1", "size": 128u64 << 20 }),
        )?;
        let mut dev = json!({ "driver": "pc-dimm", "id": "d1", "memdev": "m1", "slot": 1 });
        if let Some(n) = node {
            dev["node"] = json!(n);
        }
        self.qmp.execute("device_add", dev)?;
        Ok(())
    }

    /// `device_del` each of `ids`, then waits for every `DEVICE_DELETED`.
    fn remove_all(&mut self, name: &str, ids: &[&str]) -> Result<()> {
        let mut problems = vec![];
        for id in ids {
            if let Err(e) = self.qmp.execute("device_del", json!({ "id": id })) {
                problems.push(format!("{e:#}"));
            }
        }
        for id in ids {
            let got = self
                .qmp
                .wait_event("DEVICE_DELETED", |d| d["device"] == *id, EVENT)?;
            if got.is_none() {
                problems.push(format!("no DEVICE_DELETED for {id} within {EVENT:?}"));
            }
        }
        self.case(name, problems.is_empty(), problems.join("; "));
        let left = self.qmp.memory_device_ids()?;
        self.case(
            "query_memory_devices_empty_after_eject",
            left.is_empty(),
            format!("still listed: {left:?}"),
        );
        Ok(())
    }

    fn reject(&mut self) -> Result<()> {
        self.console
            .wait_for("hotplug: ready for add", FIRST_STEP)?;
        self.hot_add(None)?;
        let ost = self.ost_event("d1", OST_INSERTION, OST_INSERT_NOT_SUPPORTED)?;
        self.case(
            "hot_add_refusal_reported_through_ost",
            ost.is_some(),
            format!("no ACPI_DEVICE_OST(d1, {OST_INSERTION:#x}, {OST_INSERT_NOT_SUPPORTED:#x}) within {EVENT:?}"),
        );
        self.console.wait_for("hotplug: ready for remove", STEP)?;
        self.remove_all("device_del_of_refused_dimms_completes", &["d1", "d0"])
    }

    /// `tdx-highmem`: hot-adds a DIMM above 1 TiB at a fixed address, then ejects all three.
    fn highmem(&mut self) -> Result<()> {
        self.console
            .wait_for("hotplug: ready for add", HIGHMEM_FIRST_STEP)?;
        self.qmp.execute(
            "object-add",
            json!({ "qom-type": "memory-backend-ram", "id": "m2", "size": 64u64 << 20 }),
        )?;
        let added = self.qmp.execute(
            "device_add",
            json!({ "driver": "pc-dimm", "id": "d2", "memdev": "m2", "slot": 2, "node": 1,
                    "addr": HIGHMEM_HOT_ADDR }),
        );
        let listed = self.qmp.memory_device_ids()?;
        self.case(
            "dimm_hot_added_above_1t",
            added.is_ok() && listed.len() == 3,
            format!("device_add: {added:?}; query-memory-devices: {listed:?}"),
        );
        self.console.wait_for("hotplug: ready for remove", STEP)?;
        self.remove_all("device_del_of_high_dimms_completes", &["d2", "d1", "d0"])
    }

    fn per_node(&mut self) -> Result<()> {
        self.console
            .wait_for("hotplug: ready for add", FIRST_STEP)?;
        self.hot_add(Some(1))?;
        self.console
            .wait_for("hotplug: ready for busy remove", STEP)?;
        self.qmp.execute("device_del", json!({ "id": "d1" }))?;
        let ost = self.ost_event("d1", OST_EJECT, OST_DEVICE_IN_USE)?;
        self.case(
            "device_del_of_busy_dimm_refused_through_ost",
            ost.is_some(),
            format!(
                "no ACPI_DEVICE_OST(d1, {OST_EJECT:#x}, {OST_DEVICE_IN_USE:#x}) within {EVENT:?}"
            ),
        );
        let deleted = self.qmp.wait_event(
            "DEVICE_DELETED",
            |d| d["device"] == "d1",
            Duration::from_secs(1),
        )?;
        let listed = self.qmp.memory_device_ids()?;
        self.case(
            "busy_dimm_stays_plugged",
            deleted.is_none() && listed.iter().any(|d| d == "d1"),
            format!("DEVICE_DELETED: {deleted:?}; query-memory-devices: {listed:?}"),
        );
        self.console.wait_for("hotplug: ready for remove", STEP)?;
        self.remove_all("device_del_of_idle_dimms_completes", &["d1", "d0"])
    }
}

/// Builds `manifest` and boots it with a QMP socket at `socket`; shared with `nmi_test.rs`.
pub(crate) fn spawn(
    manifest: &str,
    socket: &std::path::Path,
) -> Result<(Child, Console, dist::Image)> {
    let image = dist::dist(manifest.as_ref())?;
    let _ = std::fs::remove_file(socket);
    let mut child = qemu::command(
        &image.elf,
        &qemu::Options {
            settings: &image.manifest.qemu,
            debug_exit: true,
            icount: false,
            echo: false,
            interactive: false,
            extra_args: vec![
                "-qmp".into(),
                format!("unix:{},server=on,wait=off", socket.display()),
            ],
            timeout: None,
            uefi: None,
        },
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .context("cannot start qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("no QEMU stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    Ok((child, Console { rx, lines: vec![] }, image))
}

/// Runs one policy's suite; every result (guest cases from the console, harness cases, and a
/// `run_completed` case for the run itself) is returned.
pub fn run_suite(manifest: &str, policy: &'static str) -> Result<Vec<CaseResult>> {
    let what = label(policy);
    println!("xtask: building the {what} test image ({manifest})");
    let socket = dist::target_dir().join(format!("{what}-{}.qmp", std::process::id()));
    let (mut child, console, image) = spawn(manifest, &socket)?;
    let started = Instant::now();
    let qmp = match Qmp::connect(&socket, Duration::from_secs(10)) {
        Ok(q) => q,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let mut run = Run {
        qmp,
        console,
        results: vec![],
    };
    let script = match policy {
        "reject" => run.reject(),
        "highmem" => run.highmem(),
        _ => run.per_node(),
    };
    // The image ends itself (isa-debug-exit) once the check task is done.
    let limit = Duration::from_secs(image.manifest.qemu.timeout);
    let status = run
        .console
        .finish(&mut child, (started, limit), script.is_err(), &socket)?;
    let (mut results, problem) = run.console.guest_cases(&image, status);
    results.append(&mut run.results);
    // The driver learns of every event through the SCI, not only by its fallback poll.
    let sci = run
        .console
        .lines
        .iter()
        .any(|l| l.contains("[hotplug] hotplug: SCI: memory hotplug event"));
    results.push(CaseResult {
        name: "hotplug_events_arrive_by_sci".into(),
        ok: sci,
        why: if sci {
            String::new()
        } else {
            "the driver never logged an SCI for a hotplug event".into()
        },
    });
    let ok = script.is_ok() && problem.is_none();
    let why = match (&script, &problem) {
        (Err(e), _) => format!("{e:#}"),
        (Ok(()), Some(p)) => p.clone(),
        (Ok(()), None) => String::new(),
    };
    results.push(CaseResult {
        name: "run_completed".into(),
        ok,
        why,
    });
    if !ok || results.iter().any(|r| !r.ok) {
        println!("xtask: {what}: last console lines:");
        for l in run.console.tail(30) {
            println!("  | {l}");
        }
    }
    println!(
        "xtask: {what}: {} cases in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(results)
}

/// The image `cargo xtask run --hotplug` boots when no manifest is named.
pub const DEMO_MANIFEST: &str = "test-suite/hotplug-demo.toml";

/// `-m` with hotplug slots: the manifest's own if it has `slots=`, else with 4 slots added.
fn with_slots(memory: &str) -> String {
    if memory.contains("slots=") {
        memory.to_string()
    } else {
        format!("{memory},slots=4,maxmem=4G")
    }
}

/// The hotplug policy tdx-host runs under in `m` (its manifest config), for the banner.
fn policy_of(m: &crate::manifest::Manifest) -> String {
    m.parsed_tasks
        .iter()
        .find(|(_, t)| t.crate_name == "tdx-host")
        .and_then(|(_, t)| t.config.as_ref())
        .and_then(|c| c.get("hotplug-policy"))
        .and_then(|p| p.as_str())
        .unwrap_or("reject")
        .to_string()
}

/// `cargo xtask run --hotplug`: boots with hotplug slots, the monitor on Ctrl-A C, and prints
/// how to hot-add and remove a DIMM.
pub fn run_interactive(
    manifest: PathBuf,
    qemu_args: Vec<String>,
) -> Result<std::process::ExitCode> {
    crate::deps::ensure_target()?;
    crate::deps::ensure_qemu()?;
    let manifest = if manifest == Path::new("app.toml") {
        println!(
            "xtask: --hotplug: using {DEMO_MANIFEST} (the default image has no hotplug driver)"
        );
        PathBuf::from(DEMO_MANIFEST)
    } else {
        manifest
    };
    let image = dist::dist(&manifest)?;
    let mut settings = image.manifest.qemu.clone();
    settings.memory = with_slots(&settings.memory);
    let has_driver = image
        .manifest
        .parsed_tasks
        .iter()
        .any(|(_, t)| t.crate_name == "drv-acpi-mem-hotplug");
    println!(
        "xtask: booting {} ({}) with memory hotplug slots: -m {}",
        image.manifest.name,
        image.elf.display(),
        settings.memory
    );
    println!("xtask: the machine keeps running; Ctrl-A C switches between console and QEMU monitor, Ctrl-A X quits.");
    println!("xtask: to hot-add a 128 MiB DIMM, type in the monitor:");
    println!("xtask:     object_add memory-backend-ram,id=m1,size=128M");
    println!("xtask:     device_add pc-dimm,id=d1,memdev=m1        (add ,node=1 for NUMA node 1 if the image has one)");
    println!("xtask: to remove it:  device_del d1   (refused through _OST while frames of it are allocated)");
    println!("xtask: to list DIMMs: info memory-devices");
    if has_driver {
        println!(
            "xtask: then Ctrl-A C back to the console: the driver logs `hotplug: slot N: ...` and tdx-host's `{}` policy decides.",
            policy_of(&image.manifest)
        );
    } else {
        println!("xtask: note: this image has no drv-acpi-mem-hotplug task, so nothing will act on a DIMM.");
    }
    let status = qemu::command(
        &image.elf,
        &qemu::Options {
            settings: &settings,
            debug_exit: false,
            icount: false,
            echo: true,
            interactive: true,
            extra_args: qemu_args,
            timeout: None,
            uefi: None,
        },
    )
    .status()?;
    Ok(if status.success() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::with_slots;

    #[test]
    fn adds_slots_only_when_missing() {
        assert_eq!(with_slots("256M"), "256M,slots=4,maxmem=4G");
        assert_eq!(with_slots("1G,slots=2,maxmem=8G"), "1G,slots=2,maxmem=8G");
    }
}
