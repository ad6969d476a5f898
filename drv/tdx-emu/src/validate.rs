//! TDH.SYS.CONFIG per-TDMR validation (§6), as pure functions.
//!
//! Pattern: [`validate_tdmr`] checks TDMR `i` against the already-accepted TDMRs `0..i`, in the
//! exact order §6 lists, and returns the first failure with §4.1 detail bytes (byte0 = i,
//! byte1 = level or reserved slot j, byte2 = other TDMR). The SYS.CONFIG leaf interleaves it with
//! reading each TDMR_INFO from memory, as the module does (§6 rule 6), so an error in TDMR 3's
//! entry PA is only seen once TDMRs 0..2 passed.
//!
//! The loop nesting and detail bytes are those of `tdh_sys_config.c` in the public 1.5.01 module
//! source (§6.2, §10 item 17), so a layout with several faults gets the module's first error:
//! - PAMT vs PAMT: for each j < i, i's PAMT levels 4K, 2M, 1G each against all three of j's →
//!   PAMT_OVERLAP(i, level, j); then i's own pairs 4K/2M, 4K/1G (level 4K) and 2M/1G (level 2M)
//!   → PAMT_OVERLAP(i, level, i).
//! - PAMT vs available memory: for each j in 0..=i, i's levels 4K, 2M, 1G against j's available
//!   memory → PAMT_OVERLAP(i, level, j); then, if j < i, j's levels 4K, 2M, 1G against i's
//!   available memory → PAMT_OVERLAP(j, level, i), the PAMT's owner in byte 0.
//! - Address, size and CMR checks of the PAMTs run in the level order 1G, 2M, 4K.
//!
//! Invariants: all arithmetic is checked (wrap tests come first, as in §6); "inside a CMR" merges
//! CMRs that touch exactly (the `is_area_in_cmr` quirk).

use phys::PhysRange;
use tdx_abi::consts::{GIB, PAGE_SIZE_4K};
use tdx_abi::{CmrInfo, PageSize, TdmrInfo, TdxStatus, MAX_RESERVED_PER_TDMR};

/// What the per-TDMR checks need to know about the platform and module.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlatformView<'a> {
    /// Exclusive upper bound for "below MAX_PA with no HKID bits": `1 << hkid_start_bit`.
    pub pa_limit: u64,
    /// CMR list (null entries ignored).
    pub cmrs: &'a [CmrInfo],
    /// PAMT entry sizes indexed by level (4K, 2M, 1G).
    pub entry_sizes: [u64; 3],
    /// MAX_RESERVED_PER_TDMR as reported through TDH.SYS.RD: the number of reserved slots a
    /// TDMR_INFO has in this module's ABI (at most 16).
    pub max_reserved: usize,
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte. The module answers for any
/// operand, so a wrapping one counts as reaching the top of the address space.
pub(crate) const fn overlaps(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    PhysRange::saturating(a, a_len).overlaps(PhysRange::saturating(b, b_len))
}

/// `[base, base + size)` lies inside one CMR, where touching CMRs count as one (§6 quirk).
pub(crate) fn area_in_cmrs(cmrs: &[CmrInfo], base: u64, size: u64) -> bool {
    let Some(end) = base.checked_add(size) else {
        return false;
    };
    let mut iter = cmrs.iter().filter(|c| !c.is_null());
    // Find the CMR containing `base`, then extend through exactly-touching successors.
    let Some(first) = iter.by_ref().find(|c| c.base <= base && base < c.end()) else {
        return false;
    };
    let mut covered = first.end();
    for c in iter {
        if covered >= end || c.base != covered {
            break;
        }
        covered = c.end();
    }
    end <= covered
}

/// Call `f(start, end)` for every maximal non-reserved span of `t` (non-empty spans only).
/// Requires the reserved list of `t` to be already validated (sorted, inside, null-terminated).
pub(crate) fn for_each_available(t: &TdmrInfo, mut f: impl FnMut(u64, u64) -> bool) -> bool {
    let mut cursor = t.base;
    for r in t.reserved.iter().take_while(|r| r.size != 0) {
        let rs = t.base + r.offset;
        if rs > cursor && !f(cursor, rs) {
            return false;
        }
        cursor = cursor.max(rs + r.size);
    }
    if t.end() > cursor {
        return f(cursor, t.end());
    }
    true
}

/// `[base, base + size)` intersects an available (non-reserved) part of `t`.
pub(crate) fn overlaps_available(t: &TdmrInfo, base: u64, size: u64) -> bool {
    !for_each_available(t, |s, e| !overlaps(base, size, s, e - s))
}

/// `t`'s PAMTs in the address-check order 1G, 2M, 4K.
fn pamts(t: &TdmrInfo) -> [(PageSize, u64, u64); 3] {
    PageSize::CONFIG_ORDER.map(|l| {
        let (b, s) = t.pamt(l);
        (l, b, s)
    })
}

/// `t`'s PAMTs in the overlap-check order 4K, 2M, 1G.
fn pamts_overlap_order(t: &TdmrInfo) -> [(PageSize, u64, u64); 3] {
    [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G].map(|l| {
        let (b, s) = t.pamt(l);
        (l, b, s)
    })
}

/// Run every §6 per-TDMR check for TDMR `i` (`prev` = accepted TDMRs `0..i`).
pub(crate) fn validate_tdmr(
    i: usize,
    prev: &[TdmrInfo],
    t: &TdmrInfo,
    p: &PlatformView<'_>,
) -> Result<(), TdxStatus> {
    let ii = i as u8;
    let invalid_tdmr = TdxStatus::INVALID_TDMR.with_details(ii, 0, 0);
    let non_ordered = TdxStatus::NON_ORDERED_TDMR.with_details(ii, 0, 0);

    // §6 TDMR range: wrap → INVALID; order and overlap → NON_ORDERED; granularity and PA range → INVALID.
    let Some(end) = t.base.checked_add(t.size) else {
        return Err(invalid_tdmr);
    };
    if let Some(last) = prev.last() {
        if t.base < last.base || t.base < last.base + last.size {
            return Err(non_ordered);
        }
    }
    if !t.base.is_multiple_of(GIB) || t.size == 0 || !t.size.is_multiple_of(GIB) {
        return Err(invalid_tdmr);
    }
    if t.base >= p.pa_limit || end > p.pa_limit {
        return Err(invalid_tdmr);
    }

    // §6 reserved areas: all 16 slots are scanned. The 1.5.01 module reports 16 and has 16
    // slots, so its slot count is its only limit. A module that reports
    // MAX_RESERVED_PER_TDMR = N < 16 has only N slots per TDMR_INFO, so a non-null slot j >= N
    // is not a reserved area it can honour: the emulator refuses it with the module's per-slot
    // status for a reserved-area entry that breaks the TDMR_INFO rules,
    // INVALID_RESERVED_IN_TDMR(i, j). Without this the extra area would count as reserved while
    // the host was told at most N.
    // An empty slot followed by a filled one is reported against the empty slot, as the module
    // does: it looks one slot ahead from each empty slot, so the error names slot j - 1 when
    // slot j is the first filled slot after an empty run.
    let mut null_seen = false;
    for j in 0..MAX_RESERVED_PER_TDMR {
        let r = t.reserved[j];
        let jj = j as u8;
        let non_ordered_rsvd = TdxStatus::NON_ORDERED_RESERVED_IN_TDMR.with_details(ii, jj, 0);
        let invalid_rsvd = TdxStatus::INVALID_RESERVED_IN_TDMR.with_details(ii, jj, 0);
        if r.size == 0 {
            null_seen = true;
            continue;
        }
        if null_seen {
            // j > 0 here: an empty slot precedes this one.
            let empty = (j - 1) as u8;
            return Err(TdxStatus::NON_ORDERED_RESERVED_IN_TDMR.with_details(ii, empty, 0));
        }
        if j >= p.max_reserved {
            return Err(invalid_rsvd);
        }
        let Some(r_end) = r.offset.checked_add(r.size) else {
            return Err(invalid_rsvd);
        };
        if j > 0 {
            // The previous slot is non-null here and was already validated (no wrap).
            let q = t.reserved[j - 1];
            if r.offset < q.offset || r.offset < q.offset + q.size {
                return Err(non_ordered_rsvd);
            }
        }
        if !r.offset.is_multiple_of(PAGE_SIZE_4K) || !r.size.is_multiple_of(PAGE_SIZE_4K) {
            return Err(invalid_rsvd);
        }
        match t.base.checked_add(r.offset) {
            Some(abs) if abs.checked_add(r.size).is_some() && r_end <= t.size => {}
            _ => return Err(invalid_rsvd),
        }
    }

    // §6 PAMT address/size, order 1G, 2M, 4K.
    for (level, base, size) in pamts(t) {
        let err = TdxStatus::INVALID_PAMT.with_details(ii, level.level(), 0);
        let Some(pend) = base.checked_add(size) else {
            return Err(err);
        };
        if base % PAGE_SIZE_4K != 0 || size % PAGE_SIZE_4K != 0 {
            return Err(err);
        }
        if base >= p.pa_limit || pend > p.pa_limit {
            return Err(err);
        }
        let min = (t.size >> level.shift()).saturating_mul(p.entry_sizes[level.level() as usize]);
        if size < min {
            return Err(err);
        }
    }

    // §6 PAMT vs PAMT: earlier TDMRs outermost, i's levels 4K, 2M, 1G inside.
    for (j, q) in prev.iter().enumerate() {
        for (level, base, size) in pamts_overlap_order(t) {
            if pamts(q).iter().any(|&(_, b, s)| overlaps(base, size, b, s)) {
                return Err(TdxStatus::PAMT_OVERLAP.with_details(ii, level.level(), j as u8));
            }
        }
    }
    let own = [
        (PageSize::Size4K, PageSize::Size2M),
        (PageSize::Size4K, PageSize::Size1G),
        (PageSize::Size2M, PageSize::Size1G),
    ];
    for (a, b) in own {
        let ((ab, asz), (bb, bsz)) = (t.pamt(a), t.pamt(b));
        if overlaps(ab, asz, bb, bsz) {
            return Err(TdxStatus::PAMT_OVERLAP.with_details(ii, a.level(), ii));
        }
    }

    // §6 PAMT vs available TDMR memory, both directions, TDMR j outermost. A PAMT of an
    // earlier TDMR j over i's memory is reported with j, the PAMT's owner, in byte 0.
    for (j, other) in prev.iter().chain(core::iter::once(t)).enumerate() {
        let jj = j as u8;
        for (level, base, size) in pamts_overlap_order(t) {
            if overlaps_available(other, base, size) {
                return Err(TdxStatus::PAMT_OVERLAP.with_details(ii, level.level(), jj));
            }
        }
        if j < i {
            for (level, base, size) in pamts_overlap_order(other) {
                if overlaps_available(t, base, size) {
                    return Err(TdxStatus::PAMT_OVERLAP.with_details(jj, level.level(), ii));
                }
            }
        }
    }

    // §6 PAMT in CMRs, order 1G, 2M, 4K.
    for (level, base, size) in pamts(t) {
        if !area_in_cmrs(p.cmrs, base, size) {
            return Err(TdxStatus::PAMT_OUTSIDE_CMRS.with_details(ii, level.level(), 0));
        }
    }

    // §6 TDMR available parts in CMRs.
    if !for_each_available(t, |s, e| area_in_cmrs(p.cmrs, s, e - s)) {
        return Err(TdxStatus::TDMR_OUTSIDE_CMRS.with_details(ii, 0, 0));
    }
    Ok(())
}

/// SYS.INIT's CMR sanity check (§3.2, §10 items 4 and 7), as `check_cmrs` in the 1.5.01
/// `tdh_sys_init.c`: every non-empty CMR must not wrap, must lie below MAX_PA without KeyID bits,
/// must be 4 KiB-aligned in base and size, and must start at or after the end of the previous
/// non-empty one (touching is fine). Empty entries are skipped wherever they are, and a CMR may
/// start at 0: neither is the module's business.
pub(crate) fn cmr_list_valid(cmrs: &[CmrInfo], pa_limit: u64) -> bool {
    let mut prev_end: Option<u64> = None;
    for c in cmrs.iter().filter(|c| !c.is_null()) {
        let Some(end) = c.base.checked_add(c.size) else {
            return false;
        };
        if end > pa_limit {
            return false;
        }
        if c.base % PAGE_SIZE_4K != 0 || c.size % PAGE_SIZE_4K != 0 {
            return false;
        }
        if prev_end.is_some_and(|pe| c.base < pe) {
            return false;
        }
        prev_end = Some(end);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::{area_in_cmrs, overlaps_available};
    use tdx_abi::consts::GIB;
    use tdx_abi::{CmrInfo, ReservedArea, TdmrInfo};

    #[test]
    fn touching_cmrs_merge_but_gaps_do_not() {
        let c = [
            CmrInfo::new(GIB, GIB),
            CmrInfo::new(2 * GIB, GIB),
            CmrInfo::new(4 * GIB, GIB),
        ];
        assert!(area_in_cmrs(&c, GIB + 4096, 2 * GIB - 8192));
        assert!(!area_in_cmrs(&c, 2 * GIB, 2 * GIB + 4096));
        assert!(!area_in_cmrs(&c, 0, 4096));
        assert!(area_in_cmrs(&c, 4 * GIB, GIB));
    }

    #[test]
    fn available_excludes_reserved() {
        let mut t = TdmrInfo::new(GIB, GIB);
        t.reserved[0] = ReservedArea {
            offset: 0,
            size: 0x10_0000,
        };
        assert!(!overlaps_available(&t, GIB, 0x10_0000));
        assert!(overlaps_available(&t, GIB, 0x10_1000));
        assert!(!overlaps_available(&t, 0, GIB));
    }
}
