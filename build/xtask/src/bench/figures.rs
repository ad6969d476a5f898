//! The figures of one benchmark run, read from the images' consoles and the host benchmark's
//! output, and how two runs of the same images are compared.
//!
//! Pattern: every source reduces to a flat list of [`Figure`]s (a name, a value and its unit)
//! and a list of notes (`bench note: KEY VALUE…`, text the run names, such as the scrub
//! method). Everything printed or written afterwards — the table, the goals, the JSON file —
//! reads only these lists, so a figure has one name and one value everywhere.
//!
//! Invariant: names are unique within a run ([`Figures::push`] keeps the last of a name, as a
//! guest that re-measures reports its final figure last).

use serde::{Deserialize, Serialize};

/// What a figure counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Guest instructions under `-icount` (deterministic).
    Instructions,
    /// Ticks of the kernel's 1 ms timer in virtual time.
    Ticks,
    /// Wall-clock nanoseconds on this host (host benchmarks only; not deterministic).
    Ns,
    /// A count of calls (e.g. TDMR.INIT calls on one CPU).
    Calls,
}

impl Unit {
    /// Whether two runs must agree on the figure (instruction and call counts are exact
    /// under `-icount`; host time is not).
    pub fn deterministic(self) -> bool {
        !matches!(self, Unit::Ns)
    }
}

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: u64,
    pub unit: Unit,
}

/// All figures and notes of one run, in the order they were reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub figures: Vec<Figure>,
    pub notes: Vec<(String, String)>,
}

impl Figures {
    /// Adds `name`, replacing an earlier figure of that name.
    pub fn push(&mut self, name: &str, value: u64, unit: Unit) {
        let f = Figure {
            name: name.to_string(),
            value,
            unit,
        };
        match self.figures.iter_mut().find(|g| g.name == name) {
            Some(g) => *g = f,
            None => self.figures.push(f),
        }
    }

    /// The value of `name`, if it was measured.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// The note `key`, if one was given.
    pub fn note(&self, key: &str) -> Option<&str> {
        self.notes
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Reads `bench result: NAME N UNIT` (UNIT `instructions` or `ticks`) and
    /// `bench note: KEY VALUE…` lines from a console.
    pub fn read_console(&mut self, console: &[String]) {
        for l in console {
            if let Some(rest) = l.split("bench result: ").nth(1) {
                let mut w = rest.split_whitespace();
                let (Some(name), Some(Ok(n))) = (w.next(), w.next().map(str::parse::<u64>)) else {
                    continue;
                };
                let unit = if w.next() == Some("ticks") {
                    Unit::Ticks
                } else {
                    Unit::Instructions
                };
                self.push(name, n, unit);
            } else if let Some(rest) = l.split("bench note: ").nth(1) {
                let (k, v) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
                self.notes.push((k.to_string(), v.trim().to_string()));
            }
        }
    }

    /// Reads the host benchmark's `host result: NAME N` lines (nanoseconds per operation).
    pub fn read_host(&mut self, lines: &str) {
        for l in lines.lines() {
            let Some(rest) = l.trim().strip_prefix("host result: ") else {
                continue;
            };
            let mut w = rest.split_whitespace();
            if let (Some(name), Some(Ok(n))) = (w.next(), w.next().map(str::parse::<u64>)) {
                self.push(name, n, Unit::Ns);
            }
        }
    }
}

/// The largest relative difference between two runs' deterministic figures that still counts
/// as the same: TCG's round-robin over several vCPUs may shift a figure measured on a
/// multi-CPU image by a few instructions; anything beyond this is a benchmark that measures
/// something else each time.
pub const STABLE_WITHIN: f64 = 0.02;

/// A deterministic figure whose two runs disagree by more than [`STABLE_WITHIN`], or that
/// only one run reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Unstable {
    pub name: String,
    pub first: Option<u64>,
    pub second: Option<u64>,
}

/// Compares two runs of the same images; returns the figures that are not stable and the
/// largest relative difference among the stable ones.
pub fn compare(a: &Figures, b: &Figures) -> (Vec<Unstable>, f64) {
    let mut bad = Vec::new();
    let mut worst = 0.0f64;
    let names = a
        .figures
        .iter()
        .chain(&b.figures)
        .filter(|f| f.unit.deterministic());
    let mut seen: Vec<&str> = Vec::new();
    for f in names {
        if seen.contains(&f.name.as_str()) {
            continue;
        }
        seen.push(&f.name);
        match (a.get(&f.name), b.get(&f.name)) {
            (Some(x), Some(y)) => {
                let d = x.abs_diff(y) as f64 / x.max(y).max(1) as f64;
                if d > STABLE_WITHIN {
                    bad.push(Unstable {
                        name: f.name.clone(),
                        first: Some(x),
                        second: Some(y),
                    });
                } else {
                    worst = worst.max(d);
                }
            }
            (first, second) => bad.push(Unstable {
                name: f.name.clone(),
                first,
                second,
            }),
        }
    }
    (bad, worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_results_notes_and_host_lines() {
        let console = vec![
            "[bench-client] bench result: null_syscall 186 instructions".to_string(),
            "noise".to_string(),
            "[hotplug-liar] bench result: gib_free_worst_timer_late_ticks 2 ticks".to_string(),
            "[tdx-bench] bench note: scrub_method wide stores (rep stosq)".to_string(),
            "[bench-client] bench result: broken x instructions".to_string(),
            "[bench-client] bench result: null_syscall 180 instructions".to_string(),
        ];
        let mut f = Figures::default();
        f.read_console(&console);
        f.read_host("host result: frame_alloc_free_ns 25\n  other\nhost result: bad\n");
        assert_eq!(f.get("null_syscall"), Some(180));
        assert_eq!(f.figures.len(), 3);
        assert_eq!(f.figures[1].unit, Unit::Ticks);
        assert_eq!(f.note("scrub_method"), Some("wide stores (rep stosq)"));
        assert_eq!(f.get("frame_alloc_free_ns"), Some(25));
        assert_eq!(f.figures[2].unit, Unit::Ns);
    }

    #[test]
    fn two_runs_agree_within_the_bound_and_host_time_is_not_compared() {
        let mut a = Figures::default();
        let mut b = Figures::default();
        a.push("x", 1000, Unit::Instructions);
        b.push("x", 1010, Unit::Instructions);
        a.push("t", 10, Unit::Ns);
        b.push("t", 99, Unit::Ns);
        let (bad, worst) = compare(&a, &b);
        assert!(bad.is_empty(), "{bad:?}");
        assert!((worst - 0.0099).abs() < 0.001, "{worst}");
        b.push("x", 1100, Unit::Instructions);
        a.push("only_a", 5, Unit::Calls);
        let (bad, _) = compare(&a, &b);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[1].second, None);
    }
}
