//! What the allocator changed since the ledger last committed it: the ledger copies exactly
//! these parts of the working state into its durable image (`crate::ledger`).
//!
//! Granularity: while a commit's bitmap writes are at most [`EXACT_RANGES`] disjoint word
//! ranges (a one-frame request: its free bit, its quarantine bit), those exact ranges, so the
//! ledger compares only the words written; past that, bitmap words in chunks of
//! [`CHUNK_WORDS`] (one bit each, plus the lowest and highest dirty chunk so an idle map costs
//! nothing to scan), marked from the moment the exact ranges give up (the ranges held then go
//! to the chunks too, so a one-frame request never touches the chunk map); pools by index,
//! either wholly (a new pool, online or offline) or only their `retired` count (a retire;
//! `in_use`, which taking and releasing frames change, is not stored but counted again from the
//! bitmap at restore, so those changes only advance the pool epoch); records as one index range
//! (an insertion or removal moves everything above it). Over-reporting is harmless (the ledger
//! compares with its image and journals only words that differ); under-reporting would lose a change, so every
//! write to the bitmap, a pool or a record marks it here. A word must never be reported twice
//! in one commit (the ledger would count its change twice): the exact ranges stay disjoint, and
//! a write overlapping two of them gives them up for the chunks.

use super::MAX_POOLS;

/// Bitmap words per dirty chunk (one cache line).
pub const CHUNK_WORDS: u64 = 8;
/// Chunks tracked one by one; a bitmap beyond that is reported as wholly dirty.
const MAP_WORDS: usize = 256;
/// Disjoint bitmap word ranges tracked exactly; more give way to the chunks.
pub const EXACT_RANGES: usize = 4;

/// Dirty parts of the allocator's state.
#[derive(Clone, Debug)]
pub struct Dirty {
    chunks: [u64; MAP_WORDS],
    /// Lowest and one past the highest dirty chunk (`lo >= hi`: none).
    lo: u64,
    hi: u64,
    /// A write beyond the chunk map: every bitmap word counts as dirty.
    all_bits: bool,
    /// Exact word ranges `[first, end)` written, disjoint; `nexact > EXACT_RANGES`: too many
    /// (or overlapping), the chunks alone count.
    exact: [(u64, u64); EXACT_RANGES],
    nexact: usize,
    /// Pools any of whose fields changed.
    pools: u128,
    /// Pools whose `retired` count changed, and nothing else unless also in `pools`.
    retired: u128,
    /// Record index range `[rec_lo, rec_hi)`.
    rec_lo: usize,
    rec_hi: usize,
    /// Pool changes marked since the allocator was built; never reset by [`Dirty::clean`].
    pool_epoch: u64,
}

const _: () = assert!(MAX_POOLS <= 128, "pools fit the u128 mask");

impl Default for Dirty {
    fn default() -> Self {
        Self::new()
    }
}

impl Dirty {
    /// Nothing dirty.
    #[must_use]
    pub const fn new() -> Self {
        Dirty {
            chunks: [0; MAP_WORDS],
            lo: u64::MAX,
            hi: 0,
            all_bits: false,
            exact: [(0, 0); EXACT_RANGES],
            nexact: 0,
            pools: 0,
            retired: 0,
            rec_lo: usize::MAX,
            rec_hi: 0,
            pool_epoch: 0,
        }
    }

    /// Bits `[start, start + n)` of the bitmap changed. The first write since the last clean
    /// (a one-frame request's only one) is recorded inline.
    #[inline(always)]
    pub fn bits(&mut self, start: u64, n: u64) {
        if n == 0 {
            return;
        }
        let (a, b) = (start / 64, (start + n - 1) / 64 + 1);
        if self.nexact == 0 {
            self.exact[0] = (a, b);
            self.nexact = 1;
            return;
        }
        self.more_bits(a, b);
    }

    /// [`Self::bits`] of words `[a, b)` after an earlier write.
    #[inline(never)]
    fn more_bits(&mut self, a: u64, b: u64) {
        let held = self.nexact;
        if held <= EXACT_RANGES {
            self.exact_words(a, b);
            if self.nexact <= EXACT_RANGES {
                // Still exact: the chunks are marked only once the exact ranges give up.
                return;
            }
            // Just gave up: the ranges held so far (one perhaps merged with this write) go to
            // the chunks, so that every word written since the last clean is marked there.
            for k in 0..held {
                let (x, y) = self.exact[k];
                self.chunk_words(x, y);
            }
        }
        self.chunk_words(a, b);
    }

    /// Marks the chunks of bitmap words `[a, b)` (or the whole bitmap past the chunk map).
    fn chunk_words(&mut self, a: u64, b: u64) {
        let (first, last) = (a / CHUNK_WORDS, (b - 1) / CHUNK_WORDS);
        if last >= (MAP_WORDS * 64) as u64 {
            self.all_bits = true;
            return;
        }
        self.lo = self.lo.min(first);
        self.hi = self.hi.max(last + 1);
        for c in first..=last {
            self.chunks[(c / 64) as usize] |= 1 << (c % 64);
        }
    }

    /// Adds words `[a, b)` to the exact ranges: merged into the one it overlaps or touches,
    /// else a new one; if the merged range then meets another, or there is no room, the exact
    /// ranges are given up (the chunks cover every write anyway).
    fn exact_words(&mut self, a: u64, b: u64) {
        let n = self.nexact;
        let Some(k) = self.exact[..n].iter().position(|e| a <= e.1 && e.0 <= b) else {
            if n < EXACT_RANGES {
                self.exact[n] = (a, b);
                self.nexact = n + 1;
            } else {
                self.nexact = EXACT_RANGES + 1;
            }
            return;
        };
        let e = (self.exact[k].0.min(a), self.exact[k].1.max(b));
        self.exact[k] = e;
        let meets = |(j, o): (usize, &(u64, u64))| j != k && e.0 <= o.1 && o.0 <= e.1;
        if self.exact[..n].iter().enumerate().any(meets) {
            self.nexact = EXACT_RANGES + 1;
        }
    }

    /// Pool `k` changed (any field).
    #[inline]
    pub fn pool(&mut self, k: usize) {
        self.pools |= 1 << (k % 128);
        self.pool_epoch = self.pool_epoch.wrapping_add(1);
    }

    /// A pool's `in_use` changed (frames taken or released), none of its stored fields: only
    /// the epoch advances.
    #[inline(always)]
    pub fn pool_in_use(&mut self) {
        self.pool_epoch = self.pool_epoch.wrapping_add(1);
    }

    /// Pool `k`'s `retired` count changed, none of its other stored fields.
    #[inline]
    pub fn pool_retired(&mut self, k: usize) {
        self.retired |= 1 << (k % 128);
        self.pool_epoch = self.pool_epoch.wrapping_add(1);
    }

    /// Advances with every pool change: anything derived from the pools alone (the totals
    /// `status` reports) stays valid while this stays the same. Every write to a pool marks it
    /// (the ledger depends on that), so this misses none.
    #[must_use]
    pub fn pool_epoch(&self) -> u64 {
        self.pool_epoch
    }

    /// Records `[lo, hi)` changed (or moved).
    #[inline]
    pub fn records(&mut self, lo: usize, hi: usize) {
        self.rec_lo = self.rec_lo.min(lo);
        self.rec_hi = self.rec_hi.max(hi);
    }

    /// Everything is dirty (a freshly restored or formatted allocator).
    pub fn everything(&mut self, pools: usize, records: usize) {
        self.all_bits = true;
        for k in 0..pools {
            self.pool(k);
        }
        self.records(0, records);
    }

    /// Whether the whole bitmap must be copied.
    #[must_use]
    pub fn all_bits(&self) -> bool {
        self.all_bits
    }

    /// Calls `f` with the first word and word count (within `words`) of each dirty part of
    /// the bitmap: the exact ranges written while they are few, else each dirty chunk. No word
    /// is reported twice.
    pub fn for_each_chunk(&self, words: u64, mut f: impl FnMut(u64, u64)) {
        if self.all_bits {
            f(0, words);
            return;
        }
        if self.nexact <= EXACT_RANGES {
            for &(a, b) in &self.exact[..self.nexact] {
                if a < words {
                    f(a, b.min(words) - a);
                }
            }
            return;
        }
        let mut c = self.lo;
        while c < self.hi {
            let w = self.chunks[(c / 64) as usize] >> (c % 64);
            if w == 0 {
                c = (c / 64 + 1) * 64;
                continue;
            }
            c += u64::from(w.trailing_zeros());
            if c >= self.hi {
                break;
            }
            let first = c * CHUNK_WORDS;
            if first < words {
                f(first, CHUNK_WORDS.min(words - first));
            }
            c += 1;
        }
    }

    /// The exact bitmap word ranges `[first, end)` written, disjoint, while they are few
    /// (see [`Self::for_each_chunk`], which reports the same words then); `None`: use the
    /// chunks.
    #[must_use]
    pub fn exact_ranges(&self) -> Option<&[(u64, u64)]> {
        if self.all_bits {
            return None;
        }
        self.exact.get(..self.nexact)
    }

    /// Pools any of whose fields changed (a mask).
    #[must_use]
    pub fn pools(&self) -> u128 {
        self.pools
    }

    /// Pools of which only the retired count changed (a mask, disjoint from [`Self::pools`]).
    #[must_use]
    pub fn retired_pools(&self) -> u128 {
        self.retired & !self.pools
    }

    /// The dirty record range, if any.
    #[must_use]
    pub fn record_range(&self) -> Option<(usize, usize)> {
        (self.rec_lo < self.rec_hi).then_some((self.rec_lo, self.rec_hi))
    }

    /// Nothing dirty any more (clears only the chunk words that were used).
    pub fn clean(&mut self) {
        if self.lo < self.hi {
            let (a, b) = ((self.lo / 64) as usize, (self.hi - 1) as usize / 64);
            // Mostly a few words (a request's free and quarantine bits lie 2 × 4 KiB of map
            // apart): store only into those that hold a mark, not a call to `memset`.
            for w in &mut self.chunks[a..=b] {
                if *w != 0 {
                    *w = 0;
                }
            }
        }
        self.lo = u64::MAX;
        self.hi = 0;
        self.all_bits = false;
        self.nexact = 0;
        self.pools = 0;
        self.retired = 0;
        self.rec_lo = usize::MAX;
        self.rec_hi = 0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    use super::{Dirty, CHUNK_WORDS, EXACT_RANGES};

    /// The words `for_each_chunk` reports, failing on any reported twice.
    fn reported(d: &Dirty, words: u64) -> BTreeSet<u64> {
        let mut seen = BTreeSet::new();
        d.for_each_chunk(words, |first, n| {
            for w in first..first + n {
                assert!(seen.insert(w), "word {w} reported twice");
            }
        });
        seen
    }

    /// Every word of every write is reported, none twice, whatever the writes: few and
    /// disjoint (exact), touching or overlapping (merged), or too many (chunks).
    #[test]
    fn every_written_word_reported_once() {
        let words = 4096u64;
        let cases: [&[(u64, u64)]; 7] = [
            &[(5, 1)],
            &[(5, 1), (64 * 8 * 3 + 7, 1)],
            &[(0, 64), (64, 1), (63, 2)],
            &[(10, 1), (200, 1), (100, 200)],
            &[
                (1, 1),
                (1000, 1),
                (2000, 1),
                (3000, 1),
                (4000, 1),
                (50_000, 1),
            ],
            &[(0, 64 * 100), (64 * 50, 1)],
            &[(64 * 4095, 64), (3, 1)],
        ];
        for writes in cases {
            let mut d = Dirty::new();
            let mut want = BTreeSet::new();
            for &(start, n) in writes {
                d.bits(start, n);
                for w in start / 64..=(start + n - 1) / 64 {
                    if w < words {
                        want.insert(w);
                    }
                }
            }
            let got = reported(&d, words);
            assert!(
                want.is_subset(&got),
                "{writes:?}: missed {:?}",
                &want - &got
            );
            d.clean();
            assert!(reported(&d, words).is_empty());
        }
    }

    /// A one-frame request's writes are reported word-exactly, not as whole chunks.
    #[test]
    fn few_writes_are_exact() {
        let mut d = Dirty::new();
        d.bits(64 * 8 * 10 + 3, 1);
        d.bits(64 * 8 * 40 + 60, 1);
        let got: Vec<u64> = reported(&d, 1 << 20).into_iter().collect();
        assert_eq!(got, [8 * 10, 8 * 40]);
        // Past the exact ranges' room: the chunks, still every word.
        for k in 0..EXACT_RANGES as u64 {
            d.bits(64 * 8 * (100 + 2 * k), 1);
        }
        let got = reported(&d, 1 << 20);
        assert_eq!(got.len() as u64, (2 + EXACT_RANGES as u64) * CHUNK_WORDS);
    }
}
