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
//! A third array, `quar`, summarizes the quarantine bits more coarsely (one bit per 8 chunks:
//! some frame of them may be quarantined), so listing the quarantine and finding its next run
//! skip empty stretches 1 GiB a word instead of scanning every quarantine word between two
//! runs. It is small (512 bytes) because the allocator is moved by value.
//!
//! Invariant: for every chunk of every pool, its `any` and `all` bits equal what its free bits
//! say (a chunk cut by the pool's ends is never `all`), and the `quar` bit of a group is set
//! if a quarantine bit of it is. Every write of free bits calls [`Summary::refresh`] for the
//! frames it wrote, every write of quarantine bits [`Summary::quarantined`] or
//! [`Summary::unquarantined`]; restore rebuilds all of them. Only searches read the
//! summary, and they re-check the bitmap they land on.

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
        // = sbit + (first_frame + rel) / 512 - first_frame / 512.
        self.sbit + (self.first_frame % CHUNK_FRAMES + rel) / CHUNK_FRAMES
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

/// Chunks per bit of the quarantine summary (16 MiB).
const QUAR_GROUP: u64 = 8;

/// Both summary levels of every pool's free bits, and a coarser one of the quarantine bits.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    pub any: [u64; SUMMARY_WORDS],
    pub all: [u64; SUMMARY_WORDS],
    /// Per group of [`QUAR_GROUP`] summary bits: some chunk of it may hold a quarantined frame
    /// (derived from the quarantine bits; a quarantine [`Span`] has the pool's first quarantine
    /// bit as `bit`). Set whenever a frame of the group is quarantined; cleared only when a
    /// group wholly inside one pool's span holds none (a group two pools share stays set).
    quar: [u64; SUMMARY_WORDS / QUAR_GROUP as usize],
    /// Summary bits handed to pools so far.
    used: u64,
}

impl Summary {
    pub const fn new() -> Self {
        Summary {
            any: [0; SUMMARY_WORDS],
            all: [0; SUMMARY_WORDS],
            quar: [0; SUMMARY_WORDS / QUAR_GROUP as usize],
            used: 0,
        }
    }

    /// Pool-relative frames `[rel, rel + n)` of the pool with span `span` (either of its
    /// spans: only the chunk placement is used) were quarantined.
    #[inline(always)]
    pub fn quarantined(&mut self, span: &Span, rel: u64, n: u64) {
        if n == 0 {
            return;
        }
        let mut g = span.sbit_of(rel) / QUAR_GROUP;
        let last = if n == 1 {
            g
        } else {
            span.sbit_of(rel + n - 1) / QUAR_GROUP
        };
        loop {
            self.quar[(g / 64) as usize] |= 1 << (g % 64);
            if g >= last {
                return;
            }
            g += 1;
        }
    }

    /// After quarantine bits of pool-relative frames `[rel, rel + n)` of the quarantine span
    /// `q` were cleared: clears the groups around them that now hold none (only groups wholly
    /// inside this pool's span can be known empty).
    pub fn unquarantined(&mut self, bits: &[u64], q: &Span, rel: u64, n: u64) {
        if n == 0 {
            return;
        }
        let (s0, s1) = (q.sbit, q.sbit_end());
        for g in q.sbit_of(rel) / QUAR_GROUP..=q.sbit_of(rel + n - 1) / QUAR_GROUP {
            let (gs, ge) = (g * QUAR_GROUP, (g + 1) * QUAR_GROUP);
            if gs < s0 || ge > s1 {
                continue;
            }
            let (lo, _) = q.chunk(gs);
            let (_, hi) = q.chunk(ge - 1);
            // Releases go up the pool, so look past the cleared frames first.
            let after = (rel + n).clamp(lo, hi);
            if find_set(bits, q.bit + after, q.bit + hi).is_none()
                && find_set(bits, q.bit + lo, q.bit + after).is_none()
            {
                self.quar[(g / 64) as usize] &= !(1 << (g % 64));
            }
        }
    }

    /// Rebuilds the quarantine summary of the pool with quarantine span `q` (restore): every
    /// group with a quarantined frame of it is set.
    pub fn rebuild_quarantined(&mut self, bits: &[u64], q: &Span) {
        let mut at = 0;
        while let Some(b) = find_set(bits, q.bit + at, q.bit + q.frames) {
            let rel = b - q.bit;
            self.quarantined(q, rel, 1);
            at = q.chunk(q.sbit_of(rel)).1;
        }
    }

    /// The first quarantined frame (pool-relative) at or after `from` in the quarantine span
    /// `q`: groups without one are skipped 64 at a time.
    pub fn next_quarantined(&self, bits: &[u64], q: &Span, from: u64) -> Option<u64> {
        let mut at = from;
        let end = q.sbit_end().div_ceil(QUAR_GROUP);
        while at < q.frames {
            let g = find_set(&self.quar, q.sbit_of(at) / QUAR_GROUP, end)?;
            // The group's chunks that belong to this pool.
            let first = (g * QUAR_GROUP).max(q.sbit);
            let last = ((g + 1) * QUAR_GROUP).min(q.sbit_end()) - 1;
            let (lo, _) = q.chunk(first);
            let (_, hi) = q.chunk(last);
            if let Some(b) = find_set(bits, q.bit + at.max(lo), q.bit + hi) {
                return Some(b - q.bit);
            }
            at = at.max(hi);
        }
        None
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

    /// [`Self::refresh`] after one frame, pool-relative `rel`, was taken (its free bit cleared):
    /// its chunk is no longer wholly free, and it still has a free frame if the word that held
    /// the bit has another. A word of the pool's free bits lies in one chunk (bit ≡ frame
    /// number mod 64, chunks are 512-frame aligned), so its bits that are the pool's decide
    /// alone (in a word the pool shares, its first or last, the other pool's bits are masked
    /// off); only an emptied word goes the long way.
    /// `word`: the bitmap word that held the bit, as it is now.
    #[inline(always)]
    pub fn cleared_one(&mut self, bits: &[u64], span: &Span, rel: u64, word: u64) {
        let s = span.sbit_of(rel);
        self.all[(s / 64) as usize] &= !(1u64 << (s % 64));
        let first = (span.bit + rel) & !63;
        let end = span.bit + span.frames;
        let mut mine = word;
        // Both shifts are below 64: `first` is within 63 bits below the pool's first bit,
        // and the cleared bit (at or above `first`) lies below `end`.
        if first < span.bit {
            mine &= u64::MAX << (span.bit - first);
        }
        if first + 64 > end {
            mine &= u64::MAX >> (first + 64 - end);
        }
        if mine == 0 {
            self.refresh(bits, span, rel, 1, Change::Cleared);
        }
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
