//! Input validation and normalization into the planner's bounded scratch.
//!
//! Pattern: check everything once, up front, and produce sorted, disjoint, 4 KiB-aligned spans so
//! the later phases can assume them. Invariants established in [`Scratch`]:
//! - `cmr`: non-null CMRs, sorted, with exactly-touching neighbours merged, which is how the
//!   module's `is_area_in_cmr` treats them (§6 quirk);
//! - `req`: online and offline memory, clamped above 1 MiB (§5.1: never in a CMR; Linux clamps
//!   too, §7.1), trimmed inward to 4 KiB, sorted, disjoint, touching same-node same-kind ranges
//!   merged; with `check_cmrs`, each lies inside one merged CMR (what the unmerged Linux fix
//!   [S11] checks; mainline only finds out at SYS.CONFIG, §7.1);
//! - `excluded`: non-empty ones widened outward to 4 KiB and sorted;
//! - every CMR and every whole page of memory lies below `1 << pa_bits` (≤ 2^52), so later
//!   phases may add any two addresses or sizes of the plan without wrapping; they still use
//!   checked arithmetic where a sum is not bounded by that argument alone.

use crate::addr::{align_down, align_up, Span, LOW_MIB, PAGE_4K};
use crate::types::{
    InputKind, MemRange, PlanError, PlanInput, Req, Scratch, MAX_CMRS, MAX_EXCLUDED,
    MAX_MEMORY_RANGES,
};

pub(crate) fn normalize(
    input: &PlanInput<'_>,
    s: &mut Scratch,
    check_cmrs: bool,
) -> Result<(), PlanError> {
    s.req.clear();
    s.cmr.clear();
    s.excluded.clear();
    s.work.clear();

    let l = &input.limits;
    if l.max_tdmrs == 0 || l.max_reserved_per_tdmr == 0 || l.pamt_entry_size.contains(&0) {
        return Err(PlanError::InvalidLimits);
    }
    let pa_limit = input.pa_bits.limit().ok_or(PlanError::InvalidPaBits {
        bits: input.pa_bits.0,
    })?;
    let beyond = |kind, r: &crate::addr::PhysRange| PlanError::BeyondMaxPhysAddr {
        kind,
        base: r.base(),
        size: r.size(),
        pa_bits: input.pa_bits.0,
    };

    if input.cmrs.len() > MAX_CMRS {
        return Err(PlanError::TooManyInputRanges {
            kind: InputKind::Cmrs,
            count: input.cmrs.len(),
            max: MAX_CMRS,
        });
    }
    let mut prev_end = 0u64;
    for (index, c) in input.cmrs.iter().enumerate() {
        if c.is_empty() {
            continue;
        }
        let end = c.end().0;
        if end > pa_limit {
            return Err(beyond(InputKind::Cmrs, c));
        }
        if !c.base().is_aligned(PAGE_4K) || c.size().0 % PAGE_4K != 0 || c.base().0 < prev_end {
            return Err(PlanError::InvalidCmr { index });
        }
        prev_end = end;
        match s.cmr.last_mut() {
            Some(last) if last.end == c.base().0 => last.end = end,
            _ => s
                .cmr
                .push(Span::new(c.base().0, end))
                .map_err(|_| PlanError::InvalidCmr { index })?,
        }
    }

    let count = input.memory.len() + input.offline.len();
    if count > MAX_MEMORY_RANGES {
        return Err(PlanError::TooManyInputRanges {
            kind: InputKind::Memory,
            count,
            max: MAX_MEMORY_RANGES,
        });
    }
    let tagged = input
        .memory
        .iter()
        .map(|m| (m, true))
        .chain(input.offline.iter().map(|m| (m, false)));
    for (m, online) in tagged {
        let span = trim(m)?;
        // Whole pages only: a sub-page piece that straddles the limit is trimmed away anyway.
        if span.end > pa_limit {
            return Err(beyond(InputKind::Memory, &m.range));
        }
        if span.is_empty() {
            continue;
        }
        // Capacity was checked above; a failed push is impossible.
        let _ = s.req.push(Req {
            span,
            node: m.node,
            online,
        });
    }
    insertion_sort_by_key(&mut s.req, |r| r.span.start);
    let mut merged = 0usize;
    for i in 0..s.req.len() {
        let r = s.req[i];
        if merged > 0 {
            let last = &mut s.req[merged - 1];
            if r.span.start < last.span.end {
                return Err(PlanError::InvalidMemory {
                    base: crate::addr::PhysAddr(r.span.start),
                    size: crate::addr::ByteLen(r.span.len()),
                });
            }
            if r.span.start == last.span.end && r.node == last.node && r.online == last.online {
                last.span.end = r.span.end;
                continue;
            }
        }
        s.req[merged] = r;
        merged += 1;
    }
    s.req.truncate(merged);
    if s.req.is_empty() {
        return Err(PlanError::NoMemory);
    }
    if check_cmrs {
        for r in &s.req {
            if !s.cmr.iter().any(|c| c.contains(r.span)) {
                return Err(PlanError::MemoryOutsideCmrs {
                    base: crate::addr::PhysAddr(r.span.start),
                    size: crate::addr::ByteLen(r.span.len()),
                    node: r.node,
                });
            }
        }
    }

    if input.excluded.len() > MAX_EXCLUDED {
        return Err(PlanError::TooManyInputRanges {
            kind: InputKind::Excluded,
            count: input.excluded.len(),
            max: MAX_EXCLUDED,
        });
    }
    for e in input.excluded {
        // An empty range excludes nothing; widening it to its page would exclude a page.
        if e.is_empty() {
            continue;
        }
        let end = e.end().0;
        let span = Span::new(align_down(e.base().0, PAGE_4K), align_up(end, PAGE_4K));
        if !span.is_empty() {
            let _ = s.excluded.push(span);
        }
    }
    insertion_sort_by_key(&mut s.excluded, |e| e.start);
    Ok(())
}

/// Clamp above 1 MiB and trim inward to 4 KiB.
fn trim(m: &MemRange) -> Result<Span, PlanError> {
    let end = m.range.end();
    let start = align_up(m.range.base().0.max(LOW_MIB), PAGE_4K);
    let end = align_down(end.0, PAGE_4K);
    Ok(if start < end {
        Span::new(start, end)
    } else {
        Span::EMPTY
    })
}

/// Stable insertion sort: inputs are at most a few hundred entries and usually sorted already.
pub(crate) fn insertion_sort_by_key<T: Copy>(v: &mut [T], key: impl Fn(&T) -> u64) {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && key(&v[j - 1]) > key(&x) {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}
