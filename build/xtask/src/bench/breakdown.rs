//! `cargo xtask bench --breakdown`: where the kernel's instructions go, per syscall phase.
//!
//! The breakdown image is the kernel benchmark built with `[kernel] breakdown = true`: the
//! kernel counts each phase of every syscall and prints a `kernel breakdown:` line per syscall
//! (mean instructions per call, its counters' own cost subtracted). This module reads those
//! lines and sets them beside the client's totals from the plain image of the same run.

use anyhow::{bail, Result};

use super::figures::Figures;

/// The kernel image with `[kernel] breakdown` (`kern::breakdown`).
pub const IMAGE: &str = "test-suite/bench/breakdown.toml";

/// One syscall's phases from the kernel's last `kernel breakdown:` line for it: mean
/// instructions per call, in the kernel's order (enter, decode, check, transfer, schedule,
/// leave).
#[derive(Debug, Clone, PartialEq)]
pub struct Phases {
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
pub fn phases(console: &[String]) -> Vec<Phases> {
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
pub fn print(totals: &Figures, phases: &[Phases]) -> Result<()> {
    let find = |name: &str| phases.iter().find(|p| p.syscall == name);
    let total = |name: &str| totals.get(name);
    let Some(first) = phases.first() else {
        bail!("the breakdown image printed no `kernel breakdown:` lines");
    };
    println!();
    println!("where the instructions go ({IMAGE}: mean instructions per call)");
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
    let ipc: Vec<&Phases> = ["send", "reply_recv"]
        .iter()
        .filter_map(|s| find(s))
        .collect();
    for p in &ipc {
        row(&format!("  {}", p.syscall.to_uppercase()), &[p], None);
    }
    if ipc.len() == 2 {
        row("IPC round trip", &ipc, total("ipc_round_trip"));
    }
    println!(
        "(null syscall: REFRESH_TASK_ID; round trip: the client's SEND and the server's \
         REPLY_RECV, which replies and takes the next request in one entry; probes: the \
         counters' own instructions, absent from the plain image; stubs+user: the client's \
         total in this run less the instrumented kernel span)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
