//! What the allocator changed since the ledger last committed it: the ledger copies exactly
//! these parts of the working state into its durable image (`crate::ledger`).
//!
//! Granularity: bitmap words in chunks of [`CHUNK_WORDS`] (one bit each, plus the lowest and
//! highest dirty chunk so an idle map costs nothing to scan), pools by index, records as one
//! index range (an insertion or removal moves everything above it). Over-reporting is harmless
//! (the ledger compares with its image and journals only words that differ); under-reporting
//! would lose a change, so every write to the bitmap, a pool or a record marks it here.

use super::MAX_POOLS;

/// Bitmap words per dirty chunk (one cache line).
pub const CHUNK_WORDS: u64 = 8;
/// Chunks tracked one by one; a bitmap beyond that is reported as wholly dirty.
const MAP_WORDS: usize = 256;

/// Dirty parts of the allocator's state.
#[derive(Clone, Debug)]
pub struct Dirty {
    chunks: [u64; MAP_WORDS],
    /// Lowest and one past the highest dirty chunk (`lo >= hi`: none).
    lo: u64,
    hi: u64,
    /// A write beyond the chunk map: every bitmap word counts as dirty.
    all_bits: bool,
    pools: u128,
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
            pools: 0,
            rec_lo: usize::MAX,
            rec_hi: 0,
            pool_epoch: 0,
        }
    }

    /// Bits `[start, start + n)` of the bitmap changed.
    #[inline]
    pub fn bits(&mut self, start: u64, n: u64) {
        if n == 0 {
            return;
        }
        let first = start / 64 / CHUNK_WORDS;
        let last = (start + n - 1) / 64 / CHUNK_WORDS;
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

    /// Pool `k` changed.
    #[inline]
    pub fn pool(&mut self, k: usize) {
        self.pools |= 1 << (k % 128);
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

    /// Calls `f` with each dirty chunk's first word and word count (within `words`).
    pub fn for_each_chunk(&self, words: u64, mut f: impl FnMut(u64, u64)) {
        if self.all_bits {
            f(0, words);
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

    /// Dirty pool indices (a mask).
    #[must_use]
    pub fn pools(&self) -> u128 {
        self.pools
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
        self.pools = 0;
        self.rec_lo = usize::MAX;
        self.rec_hi = 0;
    }
}
