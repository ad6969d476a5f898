//! `cargo xtask bench`: costs counted, never timed, under QEMU.
//!
//! The benchmark image runs under `-icount shift=0,sleep=off`, where QEMU
//! advances virtual time (and the TSC) by one nanosecond per guest
//! instruction (and jumps over idle time), so a TSC delta in the guest is an
//! instruction count; the guest measures the
//! TSC's own overhead and its ticks per instruction in the same run and
//! reports medians. This command prints the results beside published
//! anchors and as ratios against the null syscall measured in the same run.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::{deps, dist, qemu};

/// Published instruction counts (x86-platform notes §4.2: L4Re/Fiasco on
/// Intel N100 and Xeon, instructions retired).
const ANCHORS: &[(&str, &str)] = &[
    ("null_syscall", "L4Re ≈ 147 instructions"),
    (
        "ipc_round_trip",
        "L4Re ≈ 1100–1230 instructions (2 × 550–615 one-way)",
    ),
];

/// `bench result: NAME N UNIT` lines from the console (UNIT: `instructions`, or `ticks` of
/// the kernel's 1 ms timer).
fn results(console: &[String]) -> Vec<BenchResult> {
    console
        .iter()
        .filter_map(|l| {
            let rest = l.split("bench result: ").nth(1)?;
            let mut w = rest.split_whitespace();
            let name = w.next()?.to_string();
            let n = w.next()?.parse().ok()?;
            let ticks = w.next() == Some("ticks");
            Some((name, n, ticks))
        })
        .collect()
}

/// A benchmark's name, value, and whether it is in ticks (else instructions).
type BenchResult = (String, u64, bool);

/// Guest benchmark images: the kernel's, tdx-host's, then tdx-host's bounded scrub (a 1 GiB
/// free while a lower-priority task keeps a timer).
const IMAGES: &[&str] = &[
    "test-suite/bench/app.toml",
    "test-suite/bench/tdx.toml",
    "test-suite/bench/scrub.toml",
];

/// Figures measured once on the server before its scrub was bounded (commit d5688c5's tdx-host
/// on this image, `-icount shift=0,sleep=off`): the free request scrubbed 1 GiB and made
/// 262,144 TDH.PHYMEM.PAGE.RDMD calls before replying, and the ticker woke 1,157 ticks late.
const BEFORE: &[(&str, &str)] = &[
    (
        "gib_free_request",
        "before bounded scrub: 1291565561 (whole GiB in the request)",
    ),
    (
        "gib_free_worst_timer_wait",
        "before bounded scrub: ≈ 1291565561 (waited for the whole request)",
    ),
];

/// Figures read against a baseline of the same run rather than a published anchor: (figure,
/// baseline, what the figure is).
const RELATIVE: &[(&str, &str, &str)] = &[
    (
        "tdx_restart_to_serving",
        "tdx_status_ipc",
        "restart of a Ready tdx-host until `status` answers Ready",
    ),
    (
        "tdx_td_minimal_create",
        "tdx_status_ipc",
        "MNG.CREATE, KEY.CONFIG per package, 6 × MNG.ADDCX, MNG.INIT, 9 requests",
    ),
    (
        "tdx_td_minimal_teardown",
        "tdx_status_ipc",
        "VPFLUSHDONE, CACHE.WB per package, KEY.FREEID, 7 × (RECLAIM + WBINVD), 1 request",
    ),
];

/// The anchor text of a [`RELATIVE`] figure `name` of value `n`: how many baselines it costs.
fn relative(r: &[BenchResult], name: &str, n: u64) -> Option<String> {
    let &(_, base, what) = RELATIVE.iter().find(|(f, _, _)| *f == name)?;
    let b = r.iter().find(|(f, _, ticks)| f == base && !ticks)?.1;
    (b > 0).then(|| format!("{what}: {:.0} × {base} ({b})", n as f64 / b as f64))
}

fn run_image(manifest: &str) -> Result<Vec<BenchResult>> {
    let image = dist::dist(manifest.as_ref())?;
    let outcome = qemu::run(
        &image.elf,
        &qemu::Options {
            settings: &image.manifest.qemu,
            debug_exit: true,
            icount: true,
            echo: false,
            interactive: false,
            extra_args: vec![],
            timeout: None,
            uefi: None,
        },
    )?;
    if outcome.status != Some(qemu::EXIT_SUCCESS) {
        for l in &outcome.console {
            println!("  | {l}");
        }
        bail!(
            "the benchmark image {manifest} did not complete: {}",
            outcome.describe()
        );
    }
    Ok(results(&outcome.console))
}

pub fn run() -> Result<ExitCode> {
    deps::ensure_target()?;
    deps::ensure_qemu()?;
    let mut r = Vec::new();
    for m in IMAGES {
        r.extend(run_image(m)?);
    }
    let null = r
        .iter()
        .find(|(n, _, _)| n == "null_syscall")
        .map(|(_, v, _)| *v)
        .unwrap_or(0);
    println!(
        "{:<36} {:>12} {:>14}   anchor",
        "benchmark", "instructions", "× null syscall"
    );
    for (name, n, ticks) in &r {
        if *ticks {
            let before = if name == "gib_free_worst_timer_late_ticks" {
                "before bounded scrub: 1157"
            } else {
                ""
            };
            println!(
                "{name:<36} {n:>12} {:>14}   ticks of 1 ms (virtual time); {before}",
                ""
            );
            continue;
        }
        let ratio = if null > 0 {
            *n as f64 / null as f64
        } else {
            0.0
        };
        let anchor = match relative(&r, name, *n) {
            Some(text) => text,
            None => ANCHORS
                .iter()
                .chain(BEFORE)
                .find(|(a, _)| a == name)
                .map(|(_, t)| (*t).to_string())
                .unwrap_or_default(),
        };
        println!("{name:<36} {n:>12} {ratio:>14.2}   {anchor}");
    }
    if r.is_empty() {
        bail!("the benchmark image reported no results");
    }
    host::frame_allocator()?;
    host::planners()?;
    Ok(ExitCode::SUCCESS)
}

/// Host benchmarks: tdx-host's frame allocator against a plain bitmap-scan baseline, and the
/// TDMR planner against the Linux baseline on every fixture. Times are wall-clock ns on this
/// host, so compare rows of one run, not across machines.
mod host {
    use std::process::Command;
    use std::time::Instant;

    use anyhow::{Context, Result};

    /// Runs tdx-host's ignored host benchmark (release build) and relays its lines.
    pub fn frame_allocator() -> Result<()> {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(crate::dist::workspace_root())
            .args([
                "test",
                "--quiet",
                "--release",
                "-p",
                "tdx-host",
                "--lib",
                "host_bench_frame_allocator",
                "--",
                "--ignored",
                "--nocapture",
            ])
            .output()
            .context("running the frame allocator host benchmark")?;
        println!();
        for l in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            if l.starts_with("host") || l.starts_with("  ") {
                println!("{l}");
            }
        }
        Ok(())
    }

    pub fn planners() -> Result<()> {
        let dir = crate::dist::workspace_root().join("drv/tdx-planner/fixtures");
        let mut files: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        println!();
        println!("host: TDMR planner, ours vs the Linux baseline (per fixture; time = median of 21 runs)");
        println!(
            "  {:<26} {:>6} {:>5} {:>11} {:>9} | {:>6} {:>5} {:>11} {:>9}",
            "fixture", "TDMRs", "rsvd", "PAMT KiB", "µs", "TDMRs", "rsvd", "PAMT KiB", "µs"
        );
        println!("  {:<26} {:^35} | {:^35}", "", "ours", "Linux baseline");
        for path in files {
            let Ok((_, input)) = tdx_tools::format::read_input(&path) else {
                continue;
            };
            let pi = input.as_plan_input();
            let time = |f: &dyn Fn() -> bool| {
                let mut v: Vec<f64> = (0..21)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64() * 1e6
                    })
                    .collect();
                v.sort_by(f64::total_cmp);
                v[10]
            };
            macro_rules! cell {
                ($r:expr, $us:expr) => {
                    match &$r {
                        Ok(p) => format!(
                            "{:>6} {:>5} {:>11} {:>9.1}",
                            p.tdmrs.len(),
                            p.reserved_count(),
                            p.pamt_bytes.0 / 1024,
                            $us
                        ),
                        Err(e) => format!(
                            "{:<35}",
                            format!("FAILED: {e:?}")
                                .chars()
                                .take(35)
                                .collect::<String>()
                        ),
                    }
                };
            }
            let ours = tdx_tools::run_planner(&pi);
            let t_ours = time(&|| tdx_tools::run_planner(&pi).is_ok());
            let base = tdx_tools::run_baseline(&pi);
            let t_base = time(&|| tdx_tools::run_baseline(&pi).is_ok());
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            println!(
                "  {:<26} {} | {}",
                name,
                cell!(ours, t_ours),
                cell!(base, t_base)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{relative, results};

    #[test]
    fn parses_result_lines() {
        let console = vec![
            "[bench-client] bench result: null_syscall 186 instructions".to_string(),
            "noise".to_string(),
            "[bench-client] bench result: ipc_round_trip 1562 instructions".to_string(),
            "[hotplug-liar] bench result: gib_free_worst_timer_late_ticks 2 ticks".to_string(),
        ];
        assert_eq!(
            results(&console),
            vec![
                ("null_syscall".into(), 186, false),
                ("ipc_round_trip".into(), 1562, false),
                ("gib_free_worst_timer_late_ticks".into(), 2, true)
            ]
        );
    }

    #[test]
    fn restart_cost_is_read_against_the_status_round_trip_of_the_same_run() {
        let r = vec![
            ("tdx_status_ipc".to_string(), 1400, false),
            ("tdx_restart_to_serving".to_string(), 14_000_000, false),
        ];
        let text = relative(&r, "tdx_restart_to_serving", 14_000_000).unwrap();
        assert!(text.ends_with("10000 × tdx_status_ipc (1400)"), "{text}");
        assert_eq!(relative(&r, "tdx_status_ipc", 1400), None);
        assert_eq!(relative(&r[1..], "tdx_restart_to_serving", 1), None);
    }
}
