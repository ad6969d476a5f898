//! The scheduler's choice over a set of task bits.
//!
//! Pattern: the kernel keeps a bit per task for "runnable" (and one for
//! "blocked sending"), so picking the next task visits only the tasks in
//! the set instead of the whole table. [`pick`] is the one rule, shared by
//! the scheduler and by RECV's choice of sender: the most important
//! candidate (lowest priority number) wins, and among equals the first in
//! round-robin order starting just after `previous` (so equals take
//! turns). It gives exactly what a scan of indices `previous+1, …, n-1, 0,
//! …, previous` keeping the first strictly better candidate gives; the
//! tests below hold it to that scan.

/// Among the tasks whose bits are set in `set` (bit `i` = task `i`) and for
/// which `priority(i)` is `Some`, the most important one, the first in
/// round-robin order after `previous` among equals. `None`: no candidate.
#[inline(always)]
pub fn pick(set: u64, previous: usize, priority: impl Fn(usize) -> Option<u8>) -> Option<usize> {
    // Bits strictly above `previous` come first, then the rest (up to and
    // including `previous` itself, which a full scan reaches last).
    let at_or_below = 1u64
        .checked_shl(previous as u32 + 1)
        .map_or(u64::MAX, |b| b.wrapping_sub(1));
    let mut best: Option<(usize, u8)> = None;
    for mut part in [set & !at_or_below, set & at_or_below] {
        while part != 0 {
            let i = part.trailing_zeros() as usize;
            part &= part - 1;
            let Some(p) = priority(i) else { continue };
            if best.is_none_or(|(_, b)| p < b) {
                best = Some((i, p));
            }
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::pick;
    use proptest::prelude::*;

    /// The full scan `pick` replaces: indices `previous+1 ..` wrapping
    /// round, the first strictly more important candidate kept.
    fn scan(n: usize, set: u64, previous: usize, prio: &[Option<u8>]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for k in 1..=n {
            let i = (previous + k) % n;
            if set & (1 << i) == 0 {
                continue;
            }
            let Some(p) = prio[i] else { continue };
            match best {
                Some(b) if prio[b].is_some_and(|bp| p >= bp) => {}
                _ => best = Some(i),
            }
        }
        best
    }

    proptest! {
        #[test]
        fn pick_is_the_round_robin_scan(
            n in 1usize..=64,
            set in any::<u64>(),
            previous in 0usize..64,
            prio in proptest::collection::vec(proptest::option::weighted(0.8, 0u8..4), 64),
        ) {
            let previous = previous % n;
            let set = if n == 64 { set } else { set & ((1u64 << n) - 1) };
            prop_assert_eq!(pick(set, previous, |i| prio[i]), scan(n, set, previous, &prio));
        }
    }

    #[test]
    fn equals_take_turns_and_the_more_important_wins() {
        let prio = |i: usize| Some([1u8, 1, 2, 1][i]);
        assert_eq!(pick(0b1011, 0, prio), Some(1));
        assert_eq!(pick(0b1011, 1, prio), Some(3));
        assert_eq!(pick(0b1011, 3, prio), Some(0));
        assert_eq!(pick(0b0100, 3, prio), Some(2));
        assert_eq!(pick(0, 3, prio), None);
        assert_eq!(pick(1 << 63, 63, |_| Some(0)), Some(63));
    }
}
