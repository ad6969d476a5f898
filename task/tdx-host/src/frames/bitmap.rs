//! The allocator's bitmaps as plain word arrays: 2 bits per 4 KiB frame (free, quarantined),
//! searched and updated a 64-bit word at a time.
//!
//! Invariant: callers pass bit ranges inside the words they own (`FrameAllocator` hands each
//! pool a disjoint span); nothing here checks ownership, only word bounds through indexing.

use tdx_planner::addr::PAGE_4K;

/// Words of bitmap storage needed for `bytes` of pools (2 bits per 4 KiB, plus one spare word
/// per pool for rounding).
#[must_use]
pub const fn bitmap_words(bytes: u64, pools: usize) -> usize {
    (2 * (bytes / PAGE_4K)).div_ceil(64) as usize + 2 * pools
}

/// First set bit in `[from, to)`: a word at a time, `trailing_zeros` on the first non-zero one.
#[inline]
pub(super) fn find_set(bits: &[u64], from: u64, to: u64) -> Option<u64> {
    find(bits, from, to, 0)
}

/// First clear bit in `[from, to)`.
#[inline]
pub(super) fn find_clear(bits: &[u64], from: u64, to: u64) -> Option<u64> {
    find(bits, from, to, u64::MAX)
}

/// First bit in `[from, to)` differing from `skip` (all zeros or all ones).
#[inline]
fn find(bits: &[u64], from: u64, to: u64, skip: u64) -> Option<u64> {
    if from >= to {
        return None;
    }
    let last = ((to - 1) / 64) as usize;
    let mut w = (from / 64) as usize;
    // Bits below `from` in the first word count as `skip`.
    let mut word = (bits[w] ^ skip) & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            let i = w as u64 * 64 + u64::from(word.trailing_zeros());
            return (i < to).then_some(i);
        }
        if w == last {
            return None;
        }
        w += 1;
        word = bits[w] ^ skip;
    }
}

/// Sets or clears `n` bits from bit `start`, a word at a time where possible.
#[inline(always)]
pub(super) fn set_bits(bits: &mut [u64], start: u64, n: u64, value: bool) {
    let lo = start % 64;
    if n != 0 && lo + n <= 64 {
        // Inside one word (a single frame, a short run): one read-modify-write.
        let mask = (u64::MAX >> (64 - n)) << lo;
        let w = &mut bits[(start / 64) as usize];
        *w = if value { *w | mask } else { *w & !mask };
        return;
    }
    set_bits_words(bits, start, n, value);
}

/// [`set_bits`] across words.
fn set_bits_words(bits: &mut [u64], start: u64, n: u64, value: bool) {
    let mut i = start;
    let end = start + n;
    while i < end {
        let w = (i / 64) as usize;
        let lo = i % 64;
        let take = (64 - lo).min(end - i);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << lo
        };
        if value {
            bits[w] |= mask;
        } else {
            bits[w] &= !mask;
        }
        i += take;
    }
}

/// Whether all `n` bits from `start` are set (stops at the first word that is not).
#[inline]
pub(super) fn all_set(bits: &[u64], start: u64, n: u64) -> bool {
    find_clear(bits, start, start + n).is_none()
}
