//! Reserved-area derivation and TDMR formation.
//!
//! Pattern: a TDMR's reserved areas are a *function* of the TDMR span, the CMRs, the required
//! memory and the PAMT blocks, never stored state; the planner recomputes them whenever it needs a
//! count. Definitions (all inside one TDMR):
//! - *available* memory A = required memory (online and offline) minus PAMT blocks;
//! - *must-reserve* points = non-CMR memory (the module rejects non-reserved spans outside CMRs,
//!   §6) plus PAMT blocks (a PAMT may not overlap any TDMR's non-reserved memory, §6);
//! - each maximal gap of (TDMR \ A) that holds must-reserve points becomes **one** reserved area:
//!   the hull of those points. Everything else in a gap is CMR memory the host does not own, which
//!   may stay non-reserved (§6 only checks CMR containment, not that it is RAM).
//!
//! This is the "holes from CMRs" rule of [S11] (§7.4) generalised: neighbouring non-CMR holes
//! separated only by memory the host does not own merge into one area, and a PAMT block that
//! touches such a gap costs no extra area. Because the hull of every gap lies in the gap, the areas
//! are sorted, disjoint and 4 KiB-aligned whenever the inputs are, and every maximal non-reserved
//! span lies in one merged CMR (every non-CMR point is reserved).
//!
//! TDMR formation: 1 GiB runs of granules touched by required memory (split where the node
//! changes on a granule boundary), greedily split left to right so each fits `cap` reserved areas
//! (optimal in TDMR count because the area count is monotone in the span), then adjacent TDMRs are
//! merged, fewest added granules first, until `max_tdmrs` holds (§7.4: "merging TDMRs" was the
//! suggested improvement to Linux's one-TDMR-per-region greedy fill, §7.2).

use crate::addr::{align_down, align_up, PhysAddr, Span, GIB};
use crate::types::{PamtBlock, PlanError, Req, Scratch, Tdmr, WorkTdmr};

/// Span of a placed PAMT block (blocks lie below `1 << pa_bits`, so the end never saturates).
pub(crate) fn block_span(b: &PamtBlock) -> Span {
    Span::new(
        b.range.base().0,
        b.range.base().0.saturating_add(b.range.size().0),
    )
}

/// Span of a TDMR (TDMRs lie below `1 << pa_bits`, so the end never saturates).
pub(crate) fn tdmr_span(t: &Tdmr) -> Span {
    Span::new(t.base.0, t.base.0.saturating_add(t.size.0))
}

/// The first taken span (PAMT block or `extra`) that ends after `from` and starts before `to`,
/// lowest start first.
fn next_taken(blocks: &[PamtBlock], extra: Option<Span>, from: u64, to: u64) -> Option<Span> {
    let window = Span::new(from, to);
    let mut best: Option<Span> = None;
    for t in blocks.iter().map(block_span).chain(extra) {
        if t.overlaps(window) && best.is_none_or(|b| t.start < b.start) {
            best = Some(t);
        }
    }
    best
}

/// Calls `f` with each available span of `tdmr` (required memory minus PAMT blocks), in order.
fn for_each_available(
    tdmr: Span,
    req: &[Req],
    blocks: &[PamtBlock],
    extra: Option<Span>,
    mut f: impl FnMut(Span),
) {
    for r in req {
        let piece = r.span.clip(tdmr);
        if piece.is_empty() {
            continue;
        }
        let mut cursor = piece.start;
        while cursor < piece.end {
            match next_taken(blocks, extra, cursor, piece.end) {
                None => {
                    f(Span::new(cursor, piece.end));
                    break;
                }
                Some(t) => {
                    if t.start > cursor {
                        f(Span::new(cursor, t.start));
                    }
                    cursor = cursor.max(t.end);
                }
            }
        }
    }
}

/// Hull of the must-reserve points inside gap `g` (empty if none).
fn must_reserve_hull(g: Span, cmr: &[Span], blocks: &[PamtBlock], extra: Option<Span>) -> Span {
    // First non-CMR point at or after g.start (merged CMRs never touch, so one hop suffices).
    let mut lo = g.start;
    if let Some(c) = cmr.iter().find(|c| c.start <= lo && lo < c.end) {
        lo = c.end;
    }
    // End of the last non-CMR run before g.end.
    let mut hi = g.end;
    if let Some(c) = cmr.iter().find(|c| c.start < hi && hi <= c.end) {
        hi = c.start;
    }
    let mut hull = if lo < g.end && hi > g.start && lo < hi {
        Span::new(lo, hi)
    } else {
        Span::EMPTY
    };
    for t in blocks.iter().map(block_span).chain(extra) {
        let t = t.clip(g);
        if t.is_empty() {
            continue;
        }
        hull = if hull.is_empty() {
            t
        } else {
            Span::new(hull.start.min(t.start), hull.end.max(t.end))
        };
    }
    hull
}

/// Calls `f` with each reserved area of `tdmr`, in address order.
pub(crate) fn for_each_reserved(
    tdmr: Span,
    req: &[Req],
    cmr: &[Span],
    blocks: &[PamtBlock],
    extra: Option<Span>,
    mut f: impl FnMut(Span),
) {
    let mut cursor = tdmr.start;
    let gap = |g: Span, f: &mut dyn FnMut(Span)| {
        if g.is_empty() {
            return;
        }
        let h = must_reserve_hull(g, cmr, blocks, extra);
        if !h.is_empty() {
            f(h);
        }
    };
    for_each_available(tdmr, req, blocks, extra, |a| {
        gap(Span::new(cursor, a.start), &mut f);
        cursor = a.end;
    });
    gap(Span::new(cursor, tdmr.end), &mut f);
}

/// Number of reserved areas `tdmr` needs.
#[must_use]
pub(crate) fn reserved_count(
    tdmr: Span,
    req: &[Req],
    cmr: &[Span],
    blocks: &[PamtBlock],
    extra: Option<Span>,
) -> usize {
    let mut n = 0;
    for_each_reserved(tdmr, req, cmr, blocks, extra, |_| n += 1);
    n
}

/// Node with the most required bytes inside `span` (lowest node on ties), or `None` if `span`
/// holds no required memory. Every `u16` is a real node: "no node" is `None`, never a sentinel
/// value (node 65535 is as real as node 0).
pub(crate) fn majority_node(span: Span, req: &[Req]) -> Option<u16> {
    let mut best: Option<(u64, u16)> = None;
    for cand in req.iter().filter(|r| r.span.overlaps(span)) {
        let bytes: u64 = req
            .iter()
            .filter(|r| r.node == cand.node)
            .map(|r| r.span.clip(span).len())
            .sum();
        let better = match best {
            None => true,
            Some((b, n)) => bytes > b || (bytes == b && cand.node < n),
        };
        if better {
            best = Some((bytes, cand.node));
        }
    }
    best.map(|(_, node)| node)
}

/// Builds `s.work`: at most `max_tdmrs` TDMRs, each needing at most `cap` reserved areas before
/// PAMTs are placed. `max_reserved` is only used for error reporting.
pub(crate) fn form_tdmrs(
    s: &mut Scratch,
    max_tdmrs: usize,
    cap: usize,
    max_reserved: usize,
) -> Result<(), PlanError> {
    s.work.clear();
    // 1. Runs of granules touched by required memory; split where the node changes exactly on a
    //    granule boundary, so each node's TDMRs (and so its PAMTs) stay on that node.
    let mut prev_node = None;
    for r in &s.req {
        let g = Span::new(align_down(r.span.start, GIB), align_up(r.span.end, GIB));
        match s.work.last_mut() {
            Some(last) if g.start < last.span.end => last.span.end = last.span.end.max(g.end),
            Some(last) if g.start == last.span.end && prev_node == Some(r.node) => {
                last.span.end = g.end;
            }
            _ => s
                .work
                .push(WorkTdmr {
                    span: g,
                    node: r.node,
                })
                .map_err(|_| PlanError::WorkspaceExhausted)?,
        }
        prev_node = Some(r.node);
    }

    // 2. Greedy left-to-right split so every TDMR fits `cap` reserved areas.
    let mut i = 0;
    while i < s.work.len() {
        let run = s.work[i].span;
        let count = |sp: Span| reserved_count(sp, &s.req, &s.cmr, &[], None);
        if count(run) <= cap {
            i += 1;
            continue;
        }
        // `run` is a non-empty whole number of granules, so these stay inside it.
        let first = Span::new(run.start, run.start.saturating_add(GIB));
        let n = count(first);
        if n > cap {
            return Err(PlanError::ReservedAreasExhausted {
                tdmr_base: PhysAddr(run.start),
                needed: n.saturating_add(max_reserved.saturating_sub(cap)),
                max: max_reserved,
            });
        }
        // Largest end (in granules) that still fits: binary search on the monotone count.
        let (mut lo, mut hi) = (1u64, (run.end - run.start) / GIB);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            let end = run.start.saturating_add(mid.saturating_mul(GIB));
            if count(Span::new(run.start, end)) <= cap {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let cut = run.start.saturating_add(lo.saturating_mul(GIB));
        let node = s.work[i].node;
        s.work[i].span.end = cut;
        s.work
            .insert(
                i + 1,
                WorkTdmr {
                    span: Span::new(cut, run.end),
                    node,
                },
            )
            .map_err(|_| PlanError::WorkspaceExhausted)?;
        i += 1;
    }

    // 3. Merge neighbours, fewest added granules first, while over the TDMR limit.
    while s.work.len() > max_tdmrs {
        let mut best: Option<(u64, usize)> = None;
        for j in 0..s.work.len() - 1 {
            let (a, b) = (s.work[j].span, s.work[j + 1].span);
            let gap = b.start - a.end;
            if best.is_some_and(|(g, _)| g <= gap) {
                continue;
            }
            if reserved_count(Span::new(a.start, b.end), &s.req, &s.cmr, &[], None) <= cap {
                best = Some((gap, j));
            }
        }
        let Some((_, j)) = best else {
            return Err(PlanError::TooManyTdmrs {
                needed: s.work.len(),
                max: max_tdmrs,
            });
        };
        s.work[j].span.end = s.work[j + 1].span.end;
        s.work.remove(j + 1);
    }

    // 4. Each TDMR's node is where most of its memory is. Every TDMR was formed around
    //    required memory, so a TDMR without any keeps the node it was formed with.
    for k in 0..s.work.len() {
        if let Some(node) = majority_node(s.work[k].span, &s.req) {
            s.work[k].node = node;
        }
    }
    Ok(())
}
