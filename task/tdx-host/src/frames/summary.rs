//! The allocator's second level: two bits per 2 MiB chunk of every pool, derived from the free
//! bitmap — "some 4 KiB frame of the chunk is free" (`any`) and "every frame of the chunk is
//! free" (`all`). A 4 KiB search finds the first chunk with a free frame with `trailing_zeros`
//! on `any`, then the frame in at most 8 words of the free bitmap; a 2 MiB search is one
//! `trailing_zeros` on `all`; a 1 GiB frame is 8 whole words of `all` equal to all ones.
//!
//! Pattern: fixed storage (no heap), [`SUMMARY_WORDS`] words per level. Each pool gets a span
//! that starts at a bit ≡ its first chunk number (mod 64), like the free bitmap does for frames,
//! so a 1 GiB-aligned group of 512 chunks is whole words.
//!
//! Invariant: for every chunk of every pool, its `any` and `all` bits equal what its free bits
//! say (a chunk cut by the pool's ends is never `all`). Every write of free bits calls
//! [`Summary::refresh`] for the frames it wrote; restore rebuilds both levels exactly. Only
//! searches read the summary, and they re-check the free bitmap they land on.

use super::bitmap::{all_set, find_set};

/// 4 KiB frames per chunk (one 2 MiB frame).
pub const CHUNK_FRAMES: u64 = 512;
/// Words per summary level: 32768 chunks, i.e. 64 GiB of pools.
pub const SUMMARY_WORDS: usize = 512;

/// What the caller did to the free bits it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Set them (frames became free).
    Set,
    /// Cleared them (frames were allocated).
    Cleared,
    /// Unknown: recompute both levels (restore).
    Any,
}

/// Where one pool's frames are: its first free bit, first frame number and frame count.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub bit: u64,
    pub first_frame: u64,
    pub frames: u64,
    /// Summary bit of the pool's first chunk.
    pub sbit: u64,
}

impl Span {
    /// Summary bit of pool-relative frame `rel`.
    #[inline]
    pub fn sbit_of(&self, rel: u64) -> u64 {
        self.sbit + (self.first_frame + rel) / CHUNK_FRAMES - self.first_frame / CHUNK_FRAMES
    }

    /// One past the pool's last summary bit.
    #[inline]
    pub fn sbit_end(&self) -> u64 {
        self.sbit_of(self.frames - 1) + 1
    }

    /// Pool-relative frames `[lo, hi)` of the chunk with summary bit `s`, clamped to the pool.
    #[inline]
    pub fn chunk(&self, s: u64) -> (u64, u64) {
        let g = s - self.sbit + self.first_frame / CHUNK_FRAMES;
        let lo = (g * CHUNK_FRAMES).max(self.first_frame) - self.first_frame;
        let hi = ((g + 1) * CHUNK_FRAMES).min(self.first_frame + self.frames) - self.first_frame;
        (lo, hi)
    }
}

/// Both summary levels of every pool.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    pub any: [u64; SUMMARY_WORDS],
    pub all: [u64; SUMMARY_WORDS],
    /// Summary bits handed to pools so far.
    used: u64,
}

impl Summary {
    pub const fn new() -> Self {
        Summary {
            any: [0; SUMMARY_WORDS],
            all: [0; SUMMARY_WORDS],
            used: 0,
        }
    }

    /// The summary bit a pool of `frames` frames from frame number `first_frame` would start
    /// at, and the bits it takes; `None` if the storage cannot hold it.
    pub fn place(&self, first_frame: u64, frames: u64) -> Option<(u64, u64)> {
        let g0 = first_frame / CHUNK_FRAMES;
        let chunks = (first_frame + frames - 1) / CHUNK_FRAMES - g0 + 1;
        let lead = g0.wrapping_sub(self.used) % 64;
        let need = lead + chunks;
        (self.used + need <= SUMMARY_WORDS as u64 * 64).then_some((self.used + lead, need))
    }

    /// Takes the bits [`Self::place`] returned.
    pub fn take(&mut self, need: u64) {
        self.used += need;
    }

    /// Brings the chunks holding pool-relative frames `[rel, rel + n)` of `span` up to date
    /// with the free bits in `bits`, after `change` was done to exactly those frames.
    #[inline]
    pub fn refresh(&mut self, bits: &[u64], span: &Span, rel: u64, n: u64, change: Change) {
        if n == 0 {
            return;
        }
        let (first, last) = (span.sbit_of(rel), span.sbit_of(rel + n - 1));
        for s in first..=last {
            let (lo, hi) = span.chunk(s);
            let whole = hi - lo == CHUNK_FRAMES;
            let covered = rel <= lo && hi <= rel + n;
            let (b0, b1) = (span.bit + lo, span.bit + hi);
            // In a whole chunk (8 whole words) the word holding the change often answers
            // alone: still some free bit after a clear, not all ones after a set.
            let word = if whole {
                bits[((span.bit + rel.max(lo)) / 64) as usize]
            } else {
                0
            };
            let (any, all) = match change {
                Change::Set => (
                    true,
                    whole && (covered || (word == u64::MAX && all_set(bits, b0, CHUNK_FRAMES))),
                ),
                Change::Cleared => (
                    !covered && (word != 0 || find_set(bits, b0, b1).is_some()),
                    false,
                ),
                Change::Any => (
                    find_set(bits, b0, b1).is_some(),
                    whole && all_set(bits, b0, CHUNK_FRAMES),
                ),
            };
            let (w, m) = ((s / 64) as usize, 1u64 << (s % 64));
            self.any[w] = if any {
                self.any[w] | m
            } else {
                self.any[w] & !m
            };
            self.all[w] = if all {
                self.all[w] | m
            } else {
                self.all[w] & !m
            };
        }
    }
}
