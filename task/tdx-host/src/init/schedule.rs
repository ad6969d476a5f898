//! Which TDMR each CPU initializes next: the pure scheduling of parallel TDH.SYS.TDMR.INIT.
//!
//! Pattern: list scheduling over whole TDMRs. Workers are the CPUs bring-up uses, in a fixed
//! order; at the start each worker takes the next unfinished TDMR (in plan order); a worker
//! whose chunk finished keeps its TDMR until the module reports it fully initialized, then
//! takes the next TDMR nobody holds — the first worker to finish gets the next TDMR.
//!
//! Invariants (host-tested below, against simulated CPUs of different speeds):
//! - **One TDMR per CPU, one CPU per TDMR.** A TDMR is held by at most one worker at a time
//!   (the module answers TDX_OPERAND_BUSY to TDMR.INIT of the same TDMR on two LPs, §3.2), and
//!   a worker holds at most one TDMR.
//! - **Every TDMR is handed out exactly once**, in plan order, and none is skipped.
//! - **Bounded imbalance.** On CPUs of equal speed each worker's chunk calls stay within the
//!   list-scheduling bound: at most total / workers + the chunks of the largest TDMR; with as
//!   many workers as TDMRs, exactly one TDMR each. (A faster CPU takes more TDMRs, as it
//!   should.)

use heapless::Vec;
use tdx_planner::types::MAX_TDMRS;

/// The most CPUs one TDMR.INIT round uses: one TDMR each, so never more than the TDMRs.
pub const MAX_WORKERS: usize = MAX_TDMRS;

/// The hand-out of TDMRs to workers.
#[derive(Clone, Debug)]
pub struct TdmrSchedule {
    /// TDMRs still to hand out, in plan order.
    queue: Vec<u8, MAX_TDMRS>,
    /// Next index into `queue`.
    head: usize,
    /// The TDMR each worker holds.
    held: Vec<Option<u8>, MAX_WORKERS>,
}

impl TdmrSchedule {
    /// A schedule for the TDMRs whose `unfinished` flag is set (plan order), over `workers`
    /// workers (capped at [`MAX_WORKERS`]).
    #[must_use]
    pub fn new(unfinished: &[bool], workers: usize) -> Self {
        let mut queue = Vec::new();
        for (i, _) in unfinished
            .iter()
            .enumerate()
            .take(MAX_TDMRS)
            .filter(|(_, &u)| u)
        {
            // Capacity MAX_TDMRS and at most MAX_TDMRS indices.
            let _ = queue.push(i as u8);
        }
        let mut held = Vec::new();
        for _ in 0..workers.min(MAX_WORKERS) {
            let _ = held.push(None);
        }
        TdmrSchedule {
            queue,
            head: 0,
            held,
        }
    }

    /// Workers this schedule uses: no more than there are TDMRs to hand out.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.held.len().min(self.queue.len())
    }

    /// The TDMR worker `w` works on now, if any.
    #[must_use]
    pub fn held(&self, w: usize) -> Option<usize> {
        self.held.get(w).copied().flatten().map(usize::from)
    }

    /// Worker `w` is free (at the start, or its TDMR is fully initialized): it takes the next
    /// TDMR nobody holds, if one is left. A worker that still holds a TDMR keeps it.
    pub fn take(&mut self, w: usize) -> Option<usize> {
        let slot = self.held.get_mut(w)?;
        if slot.is_some() {
            return slot.map(usize::from);
        }
        let next = *self.queue.get(self.head)?;
        self.head += 1;
        *slot = Some(next);
        Some(usize::from(next))
    }

    /// Worker `w`'s TDMR is fully initialized: it holds nothing now.
    pub fn release(&mut self, w: usize) {
        if let Some(slot) = self.held.get_mut(w) {
            *slot = None;
        }
    }

    /// Whether every TDMR was handed out and no worker holds one.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.head >= self.queue.len() && self.held.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec as StdVec;

    use super::TdmrSchedule;

    /// Simulates workers of the given speeds (time units per chunk) over TDMRs of the given
    /// chunk counts, the next finishing worker first (ties: lowest index). Returns the chunk
    /// calls per worker, checking the invariants at every event.
    fn simulate(chunks: &[u64], speeds: &[u64]) -> StdVec<u64> {
        let mut s = TdmrSchedule::new(&std::vec![true; chunks.len()], speeds.len());
        let n = s.workers();
        let mut left = chunks.to_vec();
        let mut calls = std::vec![0u64; speeds.len()];
        let mut busy_until: StdVec<Option<u64>> = std::vec![None; n];
        let mut handed = StdVec::new();
        for w in 0..n {
            let t = s.take(w).expect("a TDMR for every worker at the start");
            handed.push(t);
            busy_until[w] = Some(speeds[w]);
        }
        loop {
            // Invariant: no TDMR held twice.
            let mut held: StdVec<usize> = (0..n).filter_map(|w| s.held(w)).collect();
            let before = held.len();
            held.sort_unstable();
            held.dedup();
            assert_eq!(held.len(), before, "a TDMR on two CPUs at once");
            let Some((w, now)) = busy_until
                .iter()
                .enumerate()
                .filter_map(|(w, b)| b.map(|t| (w, t)))
                .min_by_key(|&(w, t)| (t, w))
            else {
                break;
            };
            let t = s.held(w).unwrap();
            calls[w] += 1;
            left[t] -= 1;
            if left[t] == 0 {
                s.release(w);
                if let Some(next) = s.take(w) {
                    handed.push(next);
                }
            }
            busy_until[w] = s.held(w).map(|_| now + speeds[w]);
        }
        assert!(s.is_done());
        handed.sort_unstable();
        assert_eq!(
            handed,
            (0..chunks.len()).collect::<StdVec<_>>(),
            "each TDMR once"
        );
        assert!(left.iter().all(|&c| c == 0));
        calls
    }

    fn bound_holds(chunks: &[u64], speeds: &[u64]) {
        let calls = simulate(chunks, speeds);
        let total: u64 = chunks.iter().sum();
        let largest = *chunks.iter().max().unwrap();
        assert_eq!(calls.iter().sum::<u64>(), total);
        let workers = speeds.len().min(chunks.len()) as u64;
        let most = *calls.iter().max().unwrap();
        assert!(
            most <= total / workers + largest,
            "most {most} > {total}/{workers} + {largest} for {chunks:?} at {speeds:?}"
        );
    }

    /// The goal's case: 4 TDMRs on 4 equal CPUs, one TDMR each, a quarter of the calls each.
    #[test]
    fn four_tdmrs_on_four_cpus_one_each() {
        assert_eq!(simulate(&[256, 256, 256, 256], &[1, 1, 1, 1]), [256; 4]);
        bound_holds(&[256, 256, 256, 256], &[1, 1, 1, 1]);
    }

    /// More TDMRs than CPUs: the first CPU to finish takes the next TDMR.
    #[test]
    fn first_free_cpu_takes_the_next_tdmr() {
        // CPU 1 finishes TDMR 1 (2 chunks) first and takes TDMR 2, then TDMR 3.
        let calls = simulate(&[10, 2, 3, 4], &[1, 1]);
        assert_eq!(calls, [10, 9]);
    }

    /// One CPU does everything, in plan order; more CPUs than TDMRs leave the rest idle.
    #[test]
    fn one_cpu_and_idle_cpus() {
        assert_eq!(simulate(&[3, 1, 2], &[1]), [6]);
        let calls = simulate(&[3, 1], &[1, 1, 1, 1]);
        assert_eq!(calls, [3, 1, 0, 0]);
    }

    /// The call bound holds for uneven TDMRs on equal CPUs, and the hand-out invariants for
    /// CPUs of different speeds too (a fixed pseudo-random sweep; a faster CPU rightly makes
    /// more calls).
    #[test]
    fn bound_holds_for_uneven_tdmrs_and_speeds() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..500 {
            let tdmrs = 1 + next(64) as usize;
            let cpus = 1 + next(16) as usize;
            let chunks: StdVec<u64> = (0..tdmrs).map(|_| 1 + next(300)).collect();
            bound_holds(&chunks, &std::vec![1; cpus]);
            let speeds: StdVec<u64> = (0..cpus).map(|_| 1 + next(5)).collect();
            let calls = simulate(&chunks, &speeds);
            assert_eq!(calls.iter().sum::<u64>(), chunks.iter().sum::<u64>());
        }
    }

    /// Only unfinished TDMRs are handed out (a resumed bring-up).
    #[test]
    fn finished_tdmrs_are_not_handed_out() {
        let mut s = TdmrSchedule::new(&[false, true, false, true], 4);
        assert_eq!(s.workers(), 2);
        assert_eq!((s.take(0), s.take(1), s.take(2)), (Some(1), Some(3), None));
        assert_eq!(s.take(0), Some(1), "a worker keeps its TDMR until released");
        s.release(0);
        s.release(1);
        assert!(s.is_done());
    }
}
