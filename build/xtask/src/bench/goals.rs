//! The fast-path goals (issue 15), each read from the figures of one run: the figure, the
//! goal, the figure before the work, its published anchor, and whether the run meets it.
//!
//! Pattern: a goal is a row of data plus one small function from [`Figures`] to the value
//! shown and a verdict. A goal whose figures the run did not report is *not measured*, which
//! is never "met": a benchmark that stopped printing a figure must not pass silently.

use serde::Serialize;

use super::figures::Figures;

/// One goal.
pub struct Goal {
    pub metric: &'static str,
    /// The figure before the work (the "now" column) or "—".
    pub before: &'static str,
    pub goal: &'static str,
    /// The published figure we compare with, or "".
    pub anchor: &'static str,
    /// The value to show, and whether it meets the goal; `None`: not measured.
    pub eval: fn(&Figures) -> Option<(String, bool)>,
}

fn at_most(f: &Figures, name: &str, limit: u64) -> Option<(String, bool)> {
    f.get(name).map(|v| (v.to_string(), v <= limit))
}

/// [`at_most`] of the one-frame operation `name` (`alloc_frame`, `free_frame`), shown with the
/// same request through a lease (`alloc_frames` / `free_frames` of one address), `name_lease`.
fn with_lease_form(f: &Figures, name: &str, limit: u64) -> Option<(String, bool)> {
    let (v, met) = at_most(f, name, limit)?;
    let lease = f.get(&format!("{name}_lease"));
    Some((
        lease.map_or(v.clone(), |l| format!("{v} (lease form {l})")),
        met,
    ))
}

/// The goals in the order.
pub const GOALS: &[Goal] = &[
    Goal {
        metric: "null syscall (instructions)",
        before: "135",
        goal: "≤ 80",
        anchor: "L4Re ≈ 147",
        eval: |f| at_most(f, "null_syscall", 80),
    },
    Goal {
        metric: "IPC SEND/REPLY round trip, no payload",
        before: "937",
        goal: "≤ 600",
        anchor: "seL4/L4Re ≈ 550–615 one-way",
        eval: |f| at_most(f, "ipc_round_trip", 600),
    },
    Goal {
        metric: "IDL overhead over a bare round trip (status)",
        before: "490",
        goal: "≤ 200",
        anchor: "",
        eval: |f| {
            let d = f
                .get("tdx_status_ipc")?
                .checked_sub(f.get("ipc_round_trip")?)?;
            Some((d.to_string(), d <= 200))
        },
    },
    Goal {
        metric: "allocate one 4 KiB frame through the IDL",
        before: "3818",
        goal: "≤ 1500",
        anchor: "",
        eval: |f| with_lease_form(f, "tdx_alloc_4k", 1500),
    },
    Goal {
        metric: "free one 4 KiB frame (scrub, check off the path)",
        before: "—",
        goal: "≤ 1500",
        anchor: "",
        eval: |f| with_lease_form(f, "tdx_free_4k", 1500),
    },
    Goal {
        metric: "allocate 512 × 4 KiB in one call, per frame",
        before: "—",
        goal: "≤ 60",
        anchor: "",
        eval: |f| at_most(f, "tdx_alloc_512x4k_per_frame", 60),
    },
    Goal {
        metric: "free 512 × 4 KiB in one call, per frame",
        before: "—",
        goal: "≤ 60",
        anchor: "",
        eval: |f| at_most(f, "tdx_free_512x4k_per_frame", 60),
    },
    Goal {
        metric: "background scrub + PT_NDA check per 4 KiB",
        before: "—",
        goal: "printed, method named",
        anchor: "Linux: MOVDIR64B",
        eval: |f| {
            let v = f.get("tdx_scrub_check_4k")?;
            let method = f.note("scrub_method")?;
            Some((format!("{v} ({method})"), !method.is_empty()))
        },
    },
    Goal {
        metric: "host allocator alloc+free, ns/op",
        before: "76",
        goal: "≤ 30",
        anchor: "Linux order-0 ≈ 46–53 ns",
        eval: |f| at_most(f, "frame_alloc_free_ns", 30),
    },
    Goal {
        metric: "  … speed-up over a Linux-style buddy",
        before: "—",
        goal: "≥ 2×",
        anchor: "",
        eval: |f| {
            let ours = f.get("frame_alloc_free_ns")?;
            let buddy = f.get("buddy_alloc_free_ns")?;
            let x = buddy as f64 / ours.max(1) as f64;
            Some((format!("{x:.1}× ({buddy} ns)"), x >= 2.0))
        },
    },
    Goal {
        metric: "most TDMR.INIT calls on one CPU (4 on 4)",
        before: "all",
        goal: "≤ ¼ + one TDMR",
        anchor: "",
        eval: |f| {
            let most = f.get("tdmr_init_most_on_one_cpu")?;
            let total = f.get("tdmr_init_calls")?;
            Some((format!("{most} of {total}"), most <= total / 4 + total / 4))
        },
    },
    Goal {
        metric: "first TD frame vs Ready (instructions)",
        before: "equal",
        goal: "after the 1st GiB",
        anchor: "",
        eval: |f| {
            let first = f.get("init_first_frame")?;
            let ready = f.get("init_ready")?;
            let blocks = f.note("init_blocks").unwrap_or("?");
            let early = blocks
                .split_once('/')
                .and_then(|(k, n)| {
                    Some((k.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?))
                })
                .is_some_and(|(k, n)| k >= 1 && k < n);
            Some((
                format!("{first} vs {ready} ({blocks} GiB blocks)"),
                first < ready && early,
            ))
        },
    },
];

/// One goal's outcome in a run (what `--json` writes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub metric: &'static str,
    pub before: &'static str,
    pub goal: &'static str,
    pub value: Option<String>,
    pub met: bool,
}

/// Every goal's outcome in `f`.
pub fn evaluate(f: &Figures) -> Vec<Outcome> {
    GOALS
        .iter()
        .map(|g| {
            let r = (g.eval)(f);
            Outcome {
                metric: g.metric,
                before: g.before,
                goal: g.goal,
                met: r.as_ref().is_some_and(|(_, met)| *met),
                value: r.map(|(v, _)| v),
            }
        })
        .collect()
}

/// Prints the goal table, with the previous run's value where `previous` is given.
pub fn print(f: &Figures, previous: Option<&Figures>) {
    println!();
    println!("issue 15 goals (this run; before = the figure when the work began)");
    println!(
        "  {:<48} {:>7} {:>28} {:>22} {:>5}  anchor",
        "metric", "before", "now", "goal", "met"
    );
    for (g, o) in GOALS.iter().zip(evaluate(f)) {
        let now = o.value.clone().unwrap_or_else(|| "not measured".into());
        let prev = previous
            .and_then(|p| (g.eval)(p))
            .map(|(v, _)| format!("  (previous: {v})"))
            .unwrap_or_default();
        println!(
            "  {:<48} {:>7} {:>28} {:>22} {:>5}  {}{prev}",
            g.metric,
            g.before,
            now,
            g.goal,
            if o.met { "yes" } else { "no" },
            g.anchor
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::figures::Unit;

    #[test]
    fn a_goal_without_its_figures_is_not_met() {
        let f = Figures::default();
        assert!(evaluate(&f).iter().all(|o| !o.met && o.value.is_none()));
    }

    #[test]
    fn goals_read_their_figures() {
        let mut f = Figures::default();
        f.push("null_syscall", 80, Unit::Instructions);
        f.push("ipc_round_trip", 601, Unit::Instructions);
        f.push("tdx_status_ipc", 790, Unit::Instructions);
        f.push("frame_alloc_free_ns", 20, Unit::Ns);
        f.push("buddy_alloc_free_ns", 39, Unit::Ns);
        f.push("init_first_frame", 10, Unit::Instructions);
        f.push("init_ready", 40, Unit::Instructions);
        f.notes.push(("init_blocks".into(), "1/4".into()));
        let o = evaluate(&f);
        let met = |m: &str| o.iter().find(|o| o.metric.contains(m)).unwrap().met;
        assert!(met("null syscall"));
        assert!(!met("round trip, no payload"));
        assert!(met("IDL overhead"));
        assert!(met("host allocator"));
        assert!(!met("buddy"), "1.95× is not 2×");
        assert!(met("first TD frame"));
    }
}
