//! `cargo xtask bench`: costs counted, never timed, under QEMU.
//!
//! The benchmark images run under `-icount shift=0,sleep=off`, where QEMU advances virtual
//! time (and the TSC) by one nanosecond per guest instruction (and jumps over idle time), so a
//! TSC delta in the guest is an instruction count; the guest measures the TSC's own overhead
//! and its ticks per instruction in the same run and reports medians. Each image runs twice,
//! side by side, and the two runs must agree ([`figures::compare`]): a figure that moves
//! between runs measures something else each time. Each guest checks every result it
//! measures and fails its image if one is wrong, so a figure is never printed for an
//! operation that did not do its job.
//!
//! The command prints every figure beside its published anchor and as a ratio to the null
//! syscall of the same run, the issue-15 goal table ([`goals`]), the host benchmarks
//! ([`host`]), and with `--baseline FILE` the figures of an earlier `--json FILE` beside this
//! run's. `BENCH_CONSOLE=1` relays the first run's guest console (for probing a figure by
//! hand with temporary `log` lines in a task).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{deps, dist, qemu};
use figures::{Figures, Unit};

mod breakdown;
mod figures;
mod goals;
mod host;

/// Published instruction counts (x86-platform notes §4.2: L4Re/Fiasco on
/// Intel N100 and Xeon, instructions retired).
const ANCHORS: &[(&str, &str)] = &[
    ("null_syscall", "L4Re ≈ 147 instructions"),
    (
        "ipc_round_trip",
        "L4Re ≈ 1100–1230 instructions (2 × 550–615 one-way)",
    ),
];

/// Guest benchmark images: the kernel's, tdx-host's, tdx-host's bounded scrub (a 1 GiB free
/// while a lower-priority task keeps a timer), parallel TDMR.INIT (4 TDMRs on 4 CPUs), and the
/// first TDX frame served while TDMR.INIT still runs against the time to Ready.
const IMAGES: &[&str] = &[
    "test-suite/bench/app.toml",
    "test-suite/bench/tdx.toml",
    "test-suite/bench/scrub.toml",
    "test-suite/tdx-parinit.toml",
    "test-suite/tdx-early.toml",
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

/// Adds the parallel bring-up figures of tdx-parinit's console to `f`.
fn push_tdmr_init(console: &[String], f: &mut Figures) {
    if let Some((cpus, peak, most, total)) = tdmr_init_line(console) {
        f.push("tdmr_init_cpus", cpus, Unit::Calls);
        f.push("tdmr_init_peak_in_flight", peak, Unit::Calls);
        f.push("tdmr_init_most_on_one_cpu", most, Unit::Calls);
        f.push("tdmr_init_calls", total, Unit::Calls);
    }
}

/// Prints the parallel bring-up figure against the goal and the figure before it.
fn print_parallel_tdmr_init(f: &Figures) {
    let (Some(cpus), Some(peak), Some(most), Some(total)) = (
        f.get("tdmr_init_cpus"),
        f.get("tdmr_init_peak_in_flight"),
        f.get("tdmr_init_most_on_one_cpu"),
        f.get("tdmr_init_calls"),
    ) else {
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
fn relative(r: &Figures, name: &str, n: u64) -> Option<String> {
    let &(_, base, what) = RELATIVE.iter().find(|(f, _, _)| *f == name)?;
    let b = r.get(base)?;
    (b > 0).then(|| format!("{what}: {:.0} × {base} ({b})", n as f64 / b as f64))
}

/// What `cargo xtask bench` was asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only the kernel's figures, then where their instructions go.
    pub breakdown: bool,
    /// Write every figure, both runs and the goals here.
    pub json: Option<PathBuf>,
    /// Show the figures of this earlier `--json` file beside this run's.
    pub baseline: Option<PathBuf>,
    /// Only these of [`IMAGES`] (empty: all), and no host benchmarks or goal table.
    pub only: Vec<String>,
}

/// What `--json` writes (and `--baseline` reads back: only `figures`).
#[derive(Serialize)]
struct Report<'a> {
    figures: &'a Figures,
    second_run: &'a Figures,
    /// The largest relative difference between the two runs' deterministic figures.
    max_difference: f64,
    goals: Vec<goals::Outcome>,
}

#[derive(Deserialize)]
struct Baseline {
    figures: Figures,
}

fn read_baseline(path: &Path) -> Result<Figures> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the baseline {}", path.display()))?;
    let b: Baseline = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a `cargo xtask bench --json` file",
            path.display()
        )
    })?;
    Ok(b.figures)
}

/// Runs `image` (built) once and returns its console; fails if the image did not succeed.
/// Runs one built image under `-icount`; `echo` relays its console as it runs (the first run
/// with `BENCH_CONSOLE=1`, for probing a figure by hand).
fn run_built(manifest: &str, image: &dist::Image, elf: &Path, echo: bool) -> Result<Vec<String>> {
    let outcome = qemu::run(
        elf,
        &qemu::Options {
            settings: &image.manifest.qemu,
            debug_exit: true,
            icount: true,
            echo,
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
    Ok(outcome.console)
}

/// Whether `BENCH_CONSOLE=1` asks for the first run's guest console.
fn echo_console() -> bool {
    std::env::var_os("BENCH_CONSOLE").is_some_and(|v| v == "1")
}

/// Builds `manifest` once and runs it twice side by side (the second from a copy of the image
/// directory, so the runs share no file); returns both consoles.
fn run_twice(manifest: &str) -> Result<(Vec<String>, Vec<String>)> {
    let image = dist::dist(manifest.as_ref())?;
    let copy = image.dir.with_extension("second-run");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy)?;
    for e in std::fs::read_dir(&image.dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), copy.join(e.file_name()))?;
        }
    }
    let elf2 = copy.join(image.elf.file_name().context("image without a file name")?);
    let (a, b) = std::thread::scope(|s| {
        let second = s.spawn(|| run_built(manifest, &image, &elf2, false));
        let first = run_built(manifest, &image, &image.elf, echo_console());
        (first, second.join())
    });
    let b = b.map_err(|_| anyhow::anyhow!("the second run of {manifest} panicked"))?;
    Ok((a?, b?))
}

/// Runs `images` twice each; returns both runs' figures and the first run's consoles.
fn measure(images: &[&str]) -> Result<(Figures, Figures)> {
    let (mut first, mut second) = (Figures::default(), Figures::default());
    for m in images {
        let (a, b) = run_twice(m)?;
        first.read_console(&a);
        second.read_console(&b);
        if m.ends_with("tdx-parinit.toml") {
            push_tdmr_init(&a, &mut first);
            push_tdmr_init(&b, &mut second);
        }
    }
    Ok((first, second))
}

/// Prints the guest figures: value, ratio to the null syscall, anchor, and the previous value.
fn print_table(r: &Figures, previous: Option<&Figures>) {
    let null = r.get("null_syscall").unwrap_or(0);
    println!(
        "{:<36} {:>12} {:>14} {:>12}   anchor",
        "benchmark", "instructions", "× null syscall", "previous"
    );
    for f in &r.figures {
        let prev = previous
            .and_then(|p| p.get(&f.name))
            .map(|v| v.to_string())
            .unwrap_or_default();
        match f.unit {
            Unit::Ticks => {
                let before = if f.name == "gib_free_worst_timer_late_ticks" {
                    "before bounded scrub: 1157"
                } else {
                    ""
                };
                println!(
                    "{:<36} {:>12} {:>14} {prev:>12}   ticks of 1 ms (virtual time); {before}",
                    f.name, f.value, ""
                );
            }
            Unit::Instructions => {
                let ratio = if null > 0 {
                    f.value as f64 / null as f64
                } else {
                    0.0
                };
                let anchor = relative(r, &f.name, f.value)
                    .or_else(|| anchor_text(&f.name))
                    .unwrap_or_default();
                println!(
                    "{:<36} {:>12} {ratio:>14.2} {prev:>12}   {anchor}",
                    f.name, f.value
                );
            }
            Unit::Ns | Unit::Calls => {}
        }
    }
    if !r.notes.is_empty() {
        for (k, v) in &r.notes {
            println!("note: {k}: {v}");
        }
    }
}

pub fn run(o: &Options) -> Result<ExitCode> {
    deps::ensure_target()?;
    deps::ensure_qemu()?;
    let previous = o.baseline.as_deref().map(read_baseline).transpose()?;
    // `--breakdown` is about the kernel alone: its image, then the same
    // image with the phase counters.
    let images: Vec<&str> = if o.breakdown {
        IMAGES[..1].to_vec()
    } else if o.only.is_empty() {
        IMAGES.to_vec()
    } else {
        for m in &o.only {
            if !IMAGES.contains(&m.as_str()) {
                bail!(
                    "{m} is not a benchmark image (those are: {})",
                    IMAGES.join(", ")
                );
            }
        }
        IMAGES
            .iter()
            .copied()
            .filter(|m| o.only.iter().any(|x| x == m))
            .collect()
    };
    let (mut first, mut second) = measure(&images)?;
    if first.figures.is_empty() {
        bail!("the benchmark images reported no results");
    }
    print_table(&first, previous.as_ref());
    if o.breakdown {
        let image = dist::dist(breakdown::IMAGE.as_ref())?;
        let console = run_built(breakdown::IMAGE, &image, &image.elf, echo_console())?;
        let mut totals = Figures::default();
        totals.read_console(&console);
        breakdown::print(&totals, &breakdown::phases(&console))?;
    } else if o.only.is_empty() {
        print_parallel_tdmr_init(&first);
        let text = host::frame_allocator()?;
        first.read_host(&text);
        second.read_host(&text);
        host::planners()?;
        goals::print(&first, previous.as_ref());
    }
    let (unstable, worst) = figures::compare(&first, &second);
    if let Some(path) = &o.json {
        let report = Report {
            figures: &first,
            second_run: &second,
            max_difference: worst,
            goals: goals::evaluate(&first),
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    println!();
    if unstable.is_empty() {
        println!(
            "two runs agree: every instruction figure within {:.2}% (bound {:.0}%)",
            worst * 100.0,
            figures::STABLE_WITHIN * 100.0
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for u in &unstable {
            println!(
                "unstable: {} was {:?} in the first run and {:?} in the second",
                u.name, u.first, u.second
            );
        }
        println!(
            "the two runs disagree by more than {:.0}% on {} figure(s)",
            figures::STABLE_WITHIN * 100.0,
            unstable.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::{figures::Figures, figures::Unit, relative};

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
    fn parses_the_tdmr_init_line() {
        let console = vec![
            "[tdx-host] tdx-host: TDMR.INIT per CPU: 4 CPUs, at most 4 in flight at once, the most on one CPU 256 of 1024:".to_string(),
        ];
        assert_eq!(super::tdmr_init_line(&console), Some((4, 4, 256, 1024)));
        assert_eq!(super::tdmr_init_line(&[]), None);
        let mut f = Figures::default();
        super::push_tdmr_init(&console, &mut f);
        assert_eq!(f.get("tdmr_init_most_on_one_cpu"), Some(256));
    }

    #[test]
    fn restart_cost_is_read_against_the_status_round_trip_of_the_same_run() {
        let mut r = Figures::default();
        r.push("tdx_status_ipc", 1400, Unit::Instructions);
        r.push("tdx_restart_to_serving", 14_000_000, Unit::Instructions);
        let text = relative(&r, "tdx_restart_to_serving", 14_000_000).unwrap();
        assert!(text.ends_with("10000 × tdx_status_ipc (1400)"), "{text}");
        assert_eq!(relative(&r, "tdx_status_ipc", 1400), None);
        assert_eq!(
            relative(&Figures::default(), "tdx_restart_to_serving", 1),
            None
        );
    }
}
