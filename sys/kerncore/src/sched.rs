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
//!
//! [`pick_ranked`] is the same rule for a fixed table of priorities,
//! computed from per-task masks ([`Ranks`], built once from the
//! priorities): it climbs from any candidate to a more important one until
//! none is left, then takes turns among the equals, without visiting every
//! candidate or reading a priority. The tests hold it to [`pick`].

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

/// For each task `i`: the tasks more important than `i`, and the tasks
/// exactly as important as `i` (`i` included), as bits. Built once from
/// the fixed priorities; tasks past the table have no bits anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranks {
    more_important: [u64; 64],
    equal: [u64; 64],
}

impl Ranks {
    /// The masks of the tasks `0..priorities.len()` (at most 64; more are
    /// ignored), lower numbers being more important. A `const fn`, so the
    /// kernel builds its table at compile time from the manifest.
    #[must_use]
    pub const fn new(priorities: &[u8]) -> Self {
        let mut r = Ranks {
            more_important: [0; 64],
            equal: [0; 64],
        };
        let n = if priorities.len() < 64 {
            priorities.len()
        } else {
            64
        };
        let mut i = 0;
        while i < n {
            let mut j = 0;
            while j < n {
                if priorities[j] < priorities[i] {
                    r.more_important[i] |= 1 << j;
                } else if priorities[j] == priorities[i] {
                    r.equal[i] |= 1 << j;
                }
                j += 1;
            }
            i += 1;
        }
        r
    }
}

/// [`pick`] for the priorities `ranks` was built from, over `set` (bits
/// of tasks outside the table must be clear). Exactly [`pick`]'s answer.
#[inline(always)]
#[must_use]
pub fn pick_ranked(set: u64, previous: usize, ranks: &Ranks) -> Option<usize> {
    if set == 0 {
        return None;
    }
    let mut best = set.trailing_zeros() as usize;
    // Each step is strictly more important, so this ends within as many
    // steps as there are distinct priorities.
    loop {
        let better = set & ranks.more_important[best];
        if better == 0 {
            break;
        }
        best = better.trailing_zeros() as usize;
    }
    let equals = set & ranks.equal[best];
    if equals & (equals - 1) == 0 {
        return Some(best);
    }
    // Round robin among the equals: the first after `previous`, wrapping.
    let at_or_below = 1u64
        .checked_shl(previous as u32 + 1)
        .map_or(u64::MAX, |b| b.wrapping_sub(1));
    let after = equals & !at_or_below;
    let from = if after != 0 { after } else { equals };
    Some(from.trailing_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::{pick, pick_ranked, Ranks};
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

    proptest! {
        #[test]
        fn pick_ranked_is_pick(
            n in 1usize..=64,
            set in any::<u64>(),
            previous in 0usize..64,
            prio in proptest::collection::vec(0u8..6, 64),
        ) {
            let previous = previous % n;
            let set = if n == 64 { set } else { set & ((1u64 << n) - 1) };
            let ranks = Ranks::new(&prio[..n]);
            let by_index = |i: usize| prio[..n].get(i).copied();
            prop_assert_eq!(pick_ranked(set, previous, &ranks), pick(set, previous, by_index));
        }
    }

    #[test]
    fn ranked_equals_take_turns_and_the_more_important_wins() {
        let ranks = Ranks::new(&[1, 1, 2, 1]);
        assert_eq!(pick_ranked(0b1011, 0, &ranks), Some(1));
        assert_eq!(pick_ranked(0b1011, 1, &ranks), Some(3));
        assert_eq!(pick_ranked(0b1011, 3, &ranks), Some(0));
        assert_eq!(pick_ranked(0b0100, 3, &ranks), Some(2));
        assert_eq!(pick_ranked(0b0110, 3, &ranks), Some(1));
        assert_eq!(pick_ranked(0, 3, &ranks), None);
        let all_equal = Ranks::new(&[0; 64]);
        assert_eq!(pick_ranked(1 << 63, 63, &all_equal), Some(63));
        assert_eq!(pick_ranked(u64::MAX, 63, &all_equal), Some(0));
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
