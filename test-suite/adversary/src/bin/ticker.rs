//! ticker: the victim of `free_1g_keeps_lower_priority_timer` (and of the benchmark of the same
//! name). A task below tdx-host's priority that keeps a timer due every tick and records how
//! late it wakes: `now - deadline` in ticks, and the longest TSC gap between two wakes (guest
//! instructions under `-icount shift=0`, host time under plain TCG).
//!
//! It serves [`test_adversary::ticker`]'s operations. It never SENDs, and is no attacker: the
//! referee does not wait for it.

#![no_std]
#![no_main]

use userlib::{sys_get_timer, sys_recv_open, sys_reply, sys_set_timer, TaskId};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::notifications::TIMER_MASK;
use test_adversary::ticker::{REPORT, START};

/// Gaps kept to estimate one tick in TSC (a ring, median on REPORT).
const GAPS: usize = 64;

struct Seen {
    worst_late: u64,
    worst_gap: u64,
    /// Ticks at the two ends of the worst gap.
    worst_gap_ticks: (u64, u64),
    wakes: u64,
    gaps: [u64; GAPS],
}

impl Seen {
    const fn new() -> Self {
        Seen {
            worst_late: 0,
            worst_gap: 0,
            worst_gap_ticks: (0, 0),
            wakes: 0,
            gaps: [0; GAPS],
        }
    }

    fn tick_tsc(&self) -> u64 {
        let n = (self.wakes as usize).min(GAPS);
        let mut g = self.gaps;
        let g = &mut g[..n];
        g.sort_unstable();
        g.get(n / 2).copied().unwrap_or(0)
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut seen = Seen::new();
    let mut deadline = sys_get_timer().now + 1;
    sys_set_timer(Some(deadline), TIMER_MASK);
    let mut last = test_api::measure::tsc();
    let mut last_tick = sys_get_timer().now;
    let mut buf = [0u8; 8];
    loop {
        let m = sys_recv_open(&mut buf, TIMER_MASK);
        if m.sender == TaskId::KERNEL {
            let now = sys_get_timer().now;
            let tsc = test_api::measure::tsc();
            if now < deadline {
                continue;
            }
            let gap = tsc - last;
            last = tsc;
            seen.worst_late = seen.worst_late.max(now - deadline);
            if gap > seen.worst_gap {
                seen.worst_gap = gap;
                seen.worst_gap_ticks = (last_tick, now);
            }
            last_tick = now;
            seen.gaps[(seen.wakes as usize) % GAPS] = gap;
            seen.wakes += 1;
            deadline = now + 1;
            sys_set_timer(Some(deadline), TIMER_MASK);
            continue;
        }
        match m.operation {
            START => {
                seen = Seen::new();
                last = test_api::measure::tsc();
                last_tick = sys_get_timer().now;
                sys_reply(m.sender, 0, &[]);
            }
            REPORT => {
                userlib::ulog!(
                    "ticker: worst gap from tick {} to tick {}",
                    seen.worst_gap_ticks.0,
                    seen.worst_gap_ticks.1
                );
                let mut out = [0u8; 32];
                let words = [seen.worst_late, seen.worst_gap, seen.wakes, seen.tick_tsc()];
                for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                sys_reply(m.sender, 0, &out);
            }
            _ => sys_reply(m.sender, test_adversary::referee::BAD_OPERATION, &[]),
        }
    }
}
