//! PAMT sizing (§6, §7.3).
//!
//! Invariant: a PAMT for level L of a TDMR of `size` bytes holds one entry per L-page, i.e.
//! `(size >> shift(L)) * entry_size` bytes, rounded up to 4 KiB because SYS.CONFIG requires
//! 4 KiB-aligned PAMT sizes (§6). With 16-byte entries one GiB of TDMR costs
//! 4 MiB + 8 KiB + 4 KiB (about 1/256 of the TDMR). The arithmetic is `tdx_abi::pamt_bytes`, so
//! the planner and the emulator share one definition.

use crate::addr::{ByteLen, GIB};
use crate::types::{Limits, PamtLevel, PlanError};

/// Bytes of the `level` PAMT for a TDMR of `tdmr_size` bytes.
#[must_use]
pub fn pamt_size(tdmr_size: ByteLen, level: PamtLevel, entry_size: u16) -> ByteLen {
    ByteLen(tdx_abi::pamt_bytes(
        tdmr_size.0,
        level.abi(),
        u64::from(entry_size),
    ))
}

/// The sum of PAMT byte counts, or `ArithmeticOverflow` (sizes derive from
/// untrusted memory maps and module limits, so no sum may wrap).
pub(crate) fn checked_total<'a>(
    bytes: impl IntoIterator<Item = &'a u64>,
) -> Result<u64, PlanError> {
    bytes
        .into_iter()
        .try_fold(0u64, |acc, &b| acc.checked_add(b))
        .ok_or(PlanError::ArithmeticOverflow)
}

/// The three PAMT sizes (4K, 2M, 1G) of a TDMR.
#[must_use]
pub fn tdmr_pamt_sizes(tdmr_size: ByteLen, limits: &Limits) -> [u64; 3] {
    let mut out = [0u64; 3];
    for level in PamtLevel::ALL {
        out[level as usize] = pamt_size(tdmr_size, level, limits.pamt_entry_size[level as usize]).0;
    }
    out
}

/// The "1 GiB-granular minimum": PAMT bytes for `granules` GiB of TDMR without the per-TDMR
/// 4 KiB rounding. No valid plan covering that many granules can use less.
#[must_use]
pub fn granular_min_pamt(granules: u64, limits: &Limits) -> u64 {
    PamtLevel::ALL
        .iter()
        .map(|&l| {
            (granules.saturating_mul(GIB) >> l.shift())
                .saturating_mul(u64::from(limits.pamt_entry_size[l as usize]))
        })
        .fold(0u64, u64::saturating_add)
}
