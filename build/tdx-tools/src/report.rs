//! Human-readable plan tables.
//!
//! Pattern: pure formatting into a `String` (the command prints it), so tests can check the text.

use std::fmt::Write as _;

use tdx_planner::{Plan, PlanError, PlanInput};

/// `1.50 GiB`-style size.
#[must_use]
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Bytes of required memory (online + offline) as given.
#[must_use]
pub fn required_bytes(input: &PlanInput<'_>) -> u64 {
    input
        .memory
        .iter()
        .chain(input.offline)
        .map(|m| m.range.size().0)
        .sum()
}

/// One-line summary (`N TDMRs, M reserved areas, PAMT X`).
#[must_use]
pub fn summary(plan: &Plan) -> String {
    format!(
        "{} TDMRs, {} reserved areas (max {} in one TDMR), PAMT {} ({} bytes) in {} blocks",
        plan.tdmrs.len(),
        plan.reserved_count(),
        plan.tdmrs
            .iter()
            .map(|t| t.reserved.len())
            .max()
            .unwrap_or(0),
        human(plan.pamt_bytes.0),
        plan.pamt_bytes.0,
        plan.pamt_blocks.len()
    )
}

/// The full table for a successful plan, with the Linux baseline's outcome for comparison.
#[must_use]
pub fn table(
    input: &PlanInput<'_>,
    plan: &Plan,
    baseline: &Result<Box<Plan>, PlanError>,
) -> String {
    let mut s = String::new();
    let l = input.limits;
    let _ = writeln!(s, "plan: {}", summary(plan));
    let _ = writeln!(
        s,
        "{:>3}  {:>18}  {:>18}  {:>10}  {:>4}  {:>5}  {:>18}  {:>18}  {:>18}",
        "#", "base", "end", "size", "node", "rsvd", "pamt_4k", "pamt_2m", "pamt_1g"
    );
    for (i, t) in plan.tdmrs.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:>3}  {:>#18x}  {:>#18x}  {:>10}  {:>4}  {:>2}/{:<2}  {:>#18x}  {:>#18x}  {:>#18x}",
            i,
            t.base.0,
            t.base.0 + t.size.0,
            human(t.size.0),
            t.node,
            t.reserved.len(),
            l.max_reserved_per_tdmr,
            t.pamt[0].base().0,
            t.pamt[1].base().0,
            t.pamt[2].base().0
        );
        for (j, a) in t.reserved.iter().enumerate() {
            let start = t.base.0 + a.offset.0;
            let _ = writeln!(
                s,
                "       reserved {j:>2}: [{start:#x}, {:#x})  {}",
                start + a.size.0,
                human(a.size.0)
            );
        }
    }
    let _ = writeln!(s, "PAMT placement per node:");
    for b in &plan.pamt_blocks {
        let users: Vec<String> = plan
            .tdmrs
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.pamt.iter().any(|p| {
                    p.base().0 >= b.range.base().0
                        && p.base().0 < b.range.base().0 + b.range.size().0
                })
            })
            .map(|(i, _)| i.to_string())
            .collect();
        let _ = writeln!(
            s,
            "  node {:>3}: [{:#x}, {:#x})  {}  for TDMR {}",
            b.node,
            b.range.base().0,
            b.range.base().0 + b.range.size().0,
            human(b.range.size().0),
            users.join(",")
        );
    }
    let req = required_bytes(input);
    let min = tdx_planner::pamt::granular_min_pamt(plan.required_granules(), &l);
    let _ = writeln!(
        s,
        "PAMT bytes: {} ({}), {:.3}% of {} host memory, {:.3}% of {} TDMR; 1 GiB-granular minimum {} (+{} bytes)",
        plan.pamt_bytes.0,
        human(plan.pamt_bytes.0),
        pct(plan.pamt_bytes.0, req),
        human(req),
        pct(plan.pamt_bytes.0, plan.tdmr_bytes()),
        human(plan.tdmr_bytes()),
        min,
        plan.pamt_bytes.0.saturating_sub(min)
    );
    let min_free = plan
        .tdmrs
        .iter()
        .map(|t| usize::from(l.max_reserved_per_tdmr).saturating_sub(t.reserved.len()))
        .min()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "unused limits: {} of {} TDMRs free; fullest TDMR has {} of {} reserved slots free",
        usize::from(l.max_tdmrs).saturating_sub(plan.tdmrs.len()),
        l.max_tdmrs,
        min_free,
        l.max_reserved_per_tdmr
    );
    match baseline {
        Ok(b) => {
            let _ = writeln!(s, "Linux baseline: {}", summary(b));
        }
        Err(e) => {
            let _ = writeln!(s, "Linux baseline: FAILS: {e}");
        }
    }
    s
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}
