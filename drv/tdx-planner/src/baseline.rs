//! A Linux-equivalent planner (§7), written from the facts in the notes, for comparison only.
//!
//! Pattern: the same inputs and output type as [`crate::plan_tdmrs`], but Linux's rules:
//! - the memory list is the *online* RAM only (memblock at init, §7.1), clamped above 1 MiB;
//!   offline memory is not covered and CMRs are not consulted (SYS.CONFIG finds mistakes, §7.1);
//! - one TDMR per region, greedily: align each region out to 1 GiB; skip if the current TDMR
//!   covers it, start at the current TDMR's end if it overlaps partly (§7.2);
//! - one contiguous PAMT chunk per TDMR (4K, 2M, 1G back to back) from the node of the first region
//!   ending above the TDMR base, at the lowest free address of that node's RAM (the page
//!   allocator; approximated, Linux's `alloc_contig_pages` alignment is not modelled) (§7.3);
//! - reserved areas: every RAM gap inside the TDMR (before, between, after regions) plus every
//!   PAMT chunk clipped to the TDMR, never merged; more than `max_reserved` fails (§7.4).

use crate::addr::{align_down, align_up, ByteLen, PhysAddr, PhysRange, Span, GIB};
use crate::normalize::{insertion_sort_by_key, normalize};
use crate::pamt::{checked_total, tdmr_pamt_sizes};
use crate::types::{
    PamtBlock, Plan, PlanError, PlanInput, Req, ReservedArea, Tdmr, MAX_RESERVED_PER_TDMR,
};

/// Plans like Linux does.
///
/// # Errors
/// `TooManyTdmrs` ("TDMRs exhausted"), `NoRoomForPamt` (-ENOMEM), `ReservedAreasExhausted`
/// ("reserved areas exhausted", with the total this TDMR would have needed).
pub fn plan_linux_baseline(input: &PlanInput<'_>, out: &mut Plan) -> Result<(), PlanError> {
    let r = inner(input, out);
    if r.is_err() {
        out.tdmrs.clear();
        out.pamt_blocks.clear();
        out.pamt_bytes = ByteLen(0);
    }
    r
}

fn inner(input: &PlanInput<'_>, out: &mut Plan) -> Result<(), PlanError> {
    normalize(input, &mut out.scratch, false)?;
    let max_tdmrs = input.limits.tdmrs();
    let max_res = input.limits.reserved();
    let Plan {
        tdmrs,
        pamt_blocks,
        scratch,
        pamt_bytes,
    } = out;
    // Keep only the online memory list (§7.1).
    let mut k = 0;
    for i in 0..scratch.req.len() {
        if scratch.req[i].online {
            scratch.req[k] = scratch.req[i];
            k += 1;
        }
    }
    scratch.req.truncate(k);
    if scratch.req.is_empty() {
        return Err(PlanError::NoMemory);
    }
    let mem: &[Req] = &scratch.req;

    // §7.2 fill_out_tdmrs.
    tdmrs.clear();
    let mut needed = 0usize;
    for r in mem {
        let mut start = align_down(r.span.start, GIB);
        let end = align_up(r.span.end, GIB);
        if let Some(last) = tdmrs.last() {
            let last_end = last.base.0.saturating_add(last.size.0);
            if last_end >= end {
                continue;
            }
            if start < last_end {
                start = last_end;
            }
        }
        needed += 1;
        if needed > max_tdmrs {
            continue; // keep counting to report how many were needed
        }
        let _ = tdmrs.push(Tdmr {
            base: PhysAddr(start),
            size: ByteLen(end - start),
            ..Tdmr::default()
        });
    }
    if needed > max_tdmrs {
        return Err(PlanError::TooManyTdmrs {
            needed,
            max: max_tdmrs,
        });
    }

    // §7.3 one chunk per TDMR, node of the first region ending above the base.
    pamt_blocks.clear();
    let mut total = 0u64;
    for t in tdmrs.iter_mut() {
        let node = mem
            .iter()
            .find(|r| r.span.end > t.base.0)
            .map_or(0, |r| r.node);
        t.node = node;
        let sizes = tdmr_pamt_sizes(t.size, &input.limits);
        let chunk = checked_total(&sizes)?;
        total = total
            .checked_add(chunk)
            .ok_or(PlanError::ArithmeticOverflow)?;
        let at = lowest_free(mem, &scratch.excluded, pamt_blocks, node, chunk).ok_or(
            PlanError::NoRoomForPamt {
                node,
                needed_bytes: ByteLen(chunk),
            },
        )?;
        let mut cursor = at;
        for (level, &sz) in sizes.iter().enumerate() {
            t.pamt[level] = PhysRange::new(cursor, sz).ok_or(PlanError::ArithmeticOverflow)?;
            cursor = cursor.saturating_add(sz);
        }
        let b = PamtBlock {
            node,
            range: PhysRange::new(at, chunk).ok_or(PlanError::ArithmeticOverflow)?,
        };
        let pos = pamt_blocks
            .iter()
            .position(|x| x.range.base().0 > at)
            .unwrap_or(pamt_blocks.len());
        pamt_blocks
            .insert(pos, b)
            .map_err(|_| PlanError::WorkspaceExhausted)?;
    }
    *pamt_bytes = ByteLen(total);

    // §7.4 reserved areas: RAM holes plus PAMT chunks, sorted, never merged.
    for t in tdmrs.iter_mut() {
        let span = crate::layout::tdmr_span(t);
        let mut areas: heapless::Vec<Span, 256> = heapless::Vec::new();
        let mut cursor = span.start;
        let mut overflow = 0usize;
        let mut add = |a: Span, areas: &mut heapless::Vec<Span, 256>| {
            if !a.is_empty() && areas.push(a).is_err() {
                overflow += 1;
            }
        };
        for r in mem.iter().filter(|r| r.span.overlaps(span)) {
            add(Span::new(cursor, r.span.start.max(span.start)), &mut areas);
            cursor = r.span.end.min(span.end);
        }
        add(Span::new(cursor, span.end), &mut areas);
        for b in pamt_blocks.iter() {
            let bs = crate::layout::block_span(b);
            add(bs.clip(span), &mut areas);
        }
        insertion_sort_by_key(&mut areas, |a| a.start);
        let needed = areas.len() + overflow;
        if needed > max_res {
            return Err(PlanError::ReservedAreasExhausted {
                tdmr_base: t.base,
                needed,
                max: max_res,
            });
        }
        t.reserved.clear();
        for a in areas.iter().take(MAX_RESERVED_PER_TDMR) {
            let _ = t.reserved.push(ReservedArea {
                offset: ByteLen(a.start - span.start),
                size: ByteLen(a.len()),
            });
        }
    }
    Ok(())
}

/// Lowest 4 KiB-aligned free run of `size` bytes in `node`'s RAM.
fn lowest_free(
    mem: &[Req],
    excluded: &[Span],
    blocks: &[PamtBlock],
    node: u16,
    size: u64,
) -> Option<u64> {
    for r in mem.iter().filter(|r| r.node == node) {
        let mut cursor = r.span.start;
        while let Some(want_end) = cursor.checked_add(size).filter(|&e| e <= r.span.end) {
            let want = Span::new(cursor, want_end);
            let hit = excluded
                .iter()
                .copied()
                .chain(blocks.iter().map(crate::layout::block_span))
                .filter(|t| t.overlaps(want))
                .map(|t| t.end)
                .max();
            match hit {
                None => return Some(cursor),
                Some(e) => cursor = e,
            }
        }
    }
    None
}
