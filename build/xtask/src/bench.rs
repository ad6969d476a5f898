//! `cargo xtask bench`: costs counted, never timed, under QEMU.
//!
//! The benchmark image runs under `-icount shift=0`, where QEMU advances
//! virtual time (and the TSC) by one nanosecond per guest instruction, so a
//! TSC delta in the guest is an instruction count; the guest measures the
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

/// `bench result: NAME N instructions` lines from the console.
fn results(console: &[String]) -> Vec<(String, u64)> {
    console
        .iter()
        .filter_map(|l| {
            let rest = l.split("bench result: ").nth(1)?;
            let mut w = rest.split_whitespace();
            let name = w.next()?.to_string();
            let n = w.next()?.parse().ok()?;
            Some((name, n))
        })
        .collect()
}

pub fn run() -> Result<ExitCode> {
    deps::ensure_target()?;
    deps::ensure_qemu()?;
    let image = dist::dist("test-suite/bench/app.toml".as_ref())?;
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
        },
    )?;
    if outcome.status != Some(qemu::EXIT_SUCCESS) {
        for l in &outcome.console {
            println!("  | {l}");
        }
        bail!(
            "the benchmark image did not complete: {}",
            outcome.describe()
        );
    }
    let r = results(&outcome.console);
    let null = r
        .iter()
        .find(|(n, _)| n == "null_syscall")
        .map(|(_, v)| *v)
        .unwrap_or(0);
    println!(
        "{:<22} {:>12} {:>14}   anchor",
        "benchmark", "instructions", "× null syscall"
    );
    for (name, n) in &r {
        let ratio = if null > 0 {
            *n as f64 / null as f64
        } else {
            0.0
        };
        let anchor = ANCHORS
            .iter()
            .find(|(a, _)| a == name)
            .map(|(_, t)| *t)
            .unwrap_or("");
        println!("{name:<22} {n:>12} {ratio:>14.2}   {anchor}");
    }
    if r.is_empty() {
        bail!("the benchmark image reported no results");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::results;

    #[test]
    fn parses_result_lines() {
        let console = vec![
            "[bench-client] bench result: null_syscall 186 instructions".to_string(),
            "noise".to_string(),
            "[bench-client] bench result: ipc_round_trip 1562 instructions".to_string(),
        ];
        assert_eq!(
            results(&console),
            vec![
                ("null_syscall".into(), 186),
                ("ipc_round_trip".into(), 1562)
            ]
        );
    }
}
