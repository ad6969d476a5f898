//! Host benchmarks: tdx-host's frame allocator against a plain bitmap-scan baseline, and the
//! TDMR planner against the Linux baseline on every fixture. Times are wall-clock ns on this
//! host, so compare rows of one run, not across machines.
//!
//! Pattern: each benchmark runs in this process or in a release `cargo test` of its crate, and
//! its figures come back as `host result:` lines (see [`super::figures::Figures::read_host`]).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Runs tdx-host's ignored host benchmark (release build), relays its lines and returns its
/// whole output (for the `host result:` figures).
pub fn frame_allocator() -> Result<String> {
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "the frame allocator host benchmark failed ({}):\n{text}",
            out.status
        );
    }
    println!();
    for l in text.lines() {
        if (l.starts_with("host") && !l.starts_with("host result:")) || l.starts_with("  ") {
            println!("{l}");
        }
    }
    Ok(text)
}

pub fn planners() -> Result<()> {
    let dir = crate::dist::workspace_root().join("drv/tdx-planner/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    println!();
    println!(
        "host: TDMR planner, ours vs the Linux baseline (per fixture; time = median of 21 runs)"
    );
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
