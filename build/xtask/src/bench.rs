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
    "test-suite/tdx-parinit.toml",
];

/// tdx-host's init report line of parallel TDMR.INIT: (CPUs, most in flight at once, the most
/// calls on one CPU, all calls), from `TDMR.INIT per CPU: 4 CPUs, at most 4 in flight at once,
/// the most on one CPU 256 of 1024:`.
fn tdmr_init_line(console: &[String]) -> Option<(u64, u64, u64, u64)> {
    let l = console
        .iter()
        .find_map(|l| l.split("TDMR.INIT per CPU: ").nth(1))?;
    let num = |after: &str| -> Option<u64> {
        l.split(after)
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let cpus = l.split(' ').next()?.parse().ok()?;
    Some((cpus, num("at most ")?, num("on one CPU ")?, num(" of ")?))
}

/// Prints the parallel bring-up figure against the goal and the figure before it.
fn print_parallel_tdmr_init(console: &[String]) {
    let Some((cpus, peak, most, total)) = tdmr_init_line(console) else {
        println!("bring-up: tdx-parinit printed no TDMR.INIT per-CPU line");
        return;
    };
    println!();
    println!(
        "bring-up: the most TDMR.INIT calls any one CPU makes, 4 TDMRs on 4 CPUs: {most} of {total} \
         ({cpus} CPUs, {peak} calls in flight at once)"
    );
    println!(
        "  goal: ≤ ¼ of the total + one TDMR = {} + {}; before: one call in flight at a time, \
         all {total} in sequence with tdx-host blocked on each (TDMR i already went to CPU i mod n)",
        total / 4,
        total / 4
    );
}

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

/// The kernel's figures before its fast path (issue 15), measured on this branch's base (main at
/// ed48da8, the generic dispatcher only) with this image: `(figure, instructions)`. The issue
/// quotes 135 and 937 from an older tree.
const BEFORE_FAST_PATH: &[(&str, u64)] = &[("null_syscall", 116), ("ipc_round_trip", 901)];

/// The anchor text of `name`: the published anchor, then the figure before the fast path.
fn anchor_text(name: &str) -> Option<String> {
    let anchor = ANCHORS.iter().chain(BEFORE).find(|(a, _)| *a == name);
    let before = BEFORE_FAST_PATH.iter().find(|(a, _)| *a == name);
    match (anchor, before) {
        (Some((_, a)), Some((_, b))) => Some(format!("{a}; before the fast path: {b}")),
        (Some((_, a)), None) => Some((*a).to_string()),
        (None, Some((_, b))) => Some(format!("before the fast path: {b}")),
        (None, None) => None,
    }
}

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

/// The kernel image with `[kernel] breakdown` (`kern::breakdown`).
const BREAKDOWN_IMAGE: &str = "test-suite/bench/breakdown.toml";

/// One syscall's phases from the kernel's last `kernel breakdown:` line for it: mean
/// instructions per call, in the kernel's order (enter, decode, check, transfer, schedule,
/// leave).
#[derive(Debug, Clone, PartialEq)]
struct Phases {
    syscall: String,
    /// The whole instrumented Rust part (phases and probes).
    span: f64,
    values: Vec<(String, f64)>,
}

impl Phases {
    fn total(&self) -> f64 {
        self.values.iter().map(|(_, v)| v).sum()
    }
}

/// The last `kernel breakdown:` line of each syscall.
fn phases(console: &[String]) -> Vec<Phases> {
    let mut out: Vec<Phases> = Vec::new();
    for l in console {
        let Some(rest) = l.split("kernel breakdown: ").nth(1) else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let Some(syscall) = w.next() else { continue };
        let mut span = 0.0;
        let values = w
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                let v = v.parse().ok()?;
                if k == "span" {
                    span = v;
                }
                (!matches!(k, "n" | "probe" | "span")).then(|| (k.to_string(), v))
            })
            .collect();
        let p = Phases {
            syscall: syscall.to_string(),
            span,
            values,
        };
        match out.iter_mut().find(|q| q.syscall == p.syscall) {
            Some(q) => *q = p,
            None => out.push(p),
        }
    }
    out
}

/// Prints where the null syscall's and the IPC round trip's instructions go: each kernel
/// phase (its probes subtracted); the probes' own cost (the instrumented Rust span less the
/// phases); and the rest of the client's total in the same run: its syscall stubs,
/// SYSCALL/SYSRET, the asm entry and exit stubs and, for the round trip, the server's loop.
fn print_breakdown(totals: &[BenchResult], phases: &[Phases]) -> Result<()> {
    let find = |name: &str| phases.iter().find(|p| p.syscall == name);
    let total = |name: &str| totals.iter().find(|(n, _, _)| n == name).map(|r| r.1);
    let Some(first) = phases.first() else {
        bail!("the breakdown image printed no `kernel breakdown:` lines");
    };
    println!();
    println!("where the instructions go ({BREAKDOWN_IMAGE}: mean instructions per call)");
    print!("{:<24}", "");
    for (k, _) in &first.values {
        print!(" {k:>8}");
    }
    println!(
        " {:>8} {:>8} {:>10} {:>8}",
        "kernel", "probes", "stubs+user", "total"
    );
    let row = |label: &str, ps: &[&Phases], total: Option<u64>| {
        print!("{label:<24}");
        for (i, _) in first.values.iter().enumerate() {
            let v: f64 = ps
                .iter()
                .filter_map(|p| p.values.get(i))
                .map(|(_, v)| v)
                .sum();
            print!(" {v:>8.1}");
        }
        let kernel: f64 = ps.iter().map(|p| p.total()).sum();
        let span: f64 = ps.iter().map(|p| p.span).sum();
        print!(" {kernel:>8.1} {:>8.1}", span - kernel);
        match total {
            Some(t) => println!(" {:>10.1} {t:>8}", t as f64 - span),
            None => println!(),
        }
    };
    if let Some(p) = find("refresh_task_id") {
        row("null syscall", &[p], total("null_syscall"));
    }
    let ipc: Vec<&Phases> = ["send", "recv", "reply"]
        .iter()
        .filter_map(|s| find(s))
        .collect();
    for p in &ipc {
        row(&format!("  {}", p.syscall.to_uppercase()), &[p], None);
    }
    if ipc.len() == 3 {
        row("IPC round trip", &ipc, total("ipc_round_trip"));
    }
    println!(
        "(null syscall: REFRESH_TASK_ID; round trip: the client's SEND, the server's REPLY and \
         RECV; probes: the counters' own instructions, absent from the plain image; \
         stubs+user: the client's total in this run less the instrumented kernel span)"
    );
    Ok(())
}

fn run_image(manifest: &str) -> Result<(Vec<BenchResult>, Vec<String>)> {
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
    Ok((results(&outcome.console), outcome.console))
}

pub fn run(breakdown: bool) -> Result<ExitCode> {
    deps::ensure_target()?;
    deps::ensure_qemu()?;
    let mut r = Vec::new();
    let mut parinit = Vec::new();
    // `--breakdown` is about the kernel alone: its image, then the same
    // image with the phase counters.
    let images = if breakdown { &IMAGES[..1] } else { IMAGES };
    for m in images {
        let (results, console) = run_image(m)?;
        r.extend(results);
        if m.ends_with("tdx-parinit.toml") {
            parinit = console;
        }
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
            None => anchor_text(name).unwrap_or_default(),
        };
        println!("{name:<36} {n:>12} {ratio:>14.2}   {anchor}");
    }
    if r.is_empty() {
        bail!("the benchmark image reported no results");
    }
    if breakdown {
        let (totals, console) = run_image(BREAKDOWN_IMAGE)?;
        print_breakdown(&totals, &phases(&console))?;
        return Ok(ExitCode::SUCCESS);
    }
    print_parallel_tdmr_init(&parinit);
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
    fn kernel_figures_show_their_anchor_and_the_figure_before_the_fast_path() {
        let t = super::anchor_text("null_syscall").unwrap();
        assert!(
            t.starts_with("L4Re ≈ 147") && t.ends_with("before the fast path: 116"),
            "{t}"
        );
        assert!(super::anchor_text("tdx_alloc_4k").is_none());
    }

    #[test]
    fn breakdown_lines_keep_the_last_of_each_syscall() {
        let console = vec![
            "kernel breakdown: send n=256 probe=20.0 span=300.0 enter=1.0 decode=2.5".to_string(),
            "kernel breakdown: recv n=256 probe=20.0 span=100.0 enter=3.0".to_string(),
            "kernel breakdown: send n=256 probe=20.0 span=200.0 enter=4.0 decode=5.0".to_string(),
        ];
        let p = super::phases(&console);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].syscall, "send");
        assert_eq!(p[0].span, 200.0);
        assert_eq!(p[0].total(), 9.0);
        assert_eq!(p[1].values, vec![("enter".to_string(), 3.0)]);
    }

    #[test]
    fn parses_the_tdmr_init_line() {
        let console = vec![
            "[tdx-host] tdx-host: TDMR.INIT per CPU: 4 CPUs, at most 4 in flight at once, the most on one CPU 256 of 1024:".to_string(),
        ];
        assert_eq!(super::tdmr_init_line(&console), Some((4, 4, 256, 1024)));
        assert_eq!(super::tdmr_init_line(&[]), None);
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
