//! PAMT placement.
//!
//! Pattern: best-fit over a small candidate set, evaluated with the pure reserved-area function
//! of [`crate::layout`]. For each node (in TDMR order) the planner tries, coarsest first:
//! 1. one contiguous block holding every PAMT of the node's TDMRs (the usual outcome: one area at
//!    most, and usually zero because the block touches an existing hole);
//! 2. one block per TDMR (4K, 2M, 1G PAMTs back to back, like Linux's chunk, §7.3);
//! 3. each PAMT on its own.
//!
//! Candidates are the two ends of every free run of *online* RAM of the node inside one TDMR
//! (free = not excluded, not already PAMT). Only the ends can touch an existing gap, so an interior
//! position can never be cheaper. Each candidate costs `reserved_count(with) - reserved_count(without)`
//! areas in the TDMR that holds it and is feasible if the count stays within `max_reserved`. Ties
//! go to the higher address, which keeps low memory (legacy DMA, boot data) for the host.
//!
//! Invariants: a block lies in one RAM range (hence one merged CMR, §6 PAMT_OUTSIDE_CMRS), in one
//! TDMR, inside a reserved area of that TDMR (so it never overlaps available memory,
//! §6 PAMT_OVERLAP), and never overlaps another block. A node with no online RAM at all (e.g.
//! hot-pluggable memory only, §8.1) borrows from any node; otherwise PAMTs stay on their node.

use heapless::Vec;

use crate::addr::{ByteLen, PhysAddr, PhysRange, Span};
use crate::layout::{block_span, reserved_count};
use crate::pamt::checked_total;
use crate::types::{PamtBlock, PlanError, Scratch, Tdmr, MAX_PAMT_BLOCKS, MAX_TDMRS};

/// Why a single placement failed.
#[derive(Clone, Copy, Debug)]
enum Miss {
    /// No free run was large enough.
    NoRoom,
    /// Runs were large enough, but the cheapest would need `needed` areas in `tdmr_base`.
    Exhausted { tdmr_base: u64, needed: usize },
}

/// Places all PAMTs; fills `tdmrs[i].pamt` and `blocks` (kept sorted).
pub(crate) fn place_pamts(
    s: &Scratch,
    tdmrs: &mut [Tdmr],
    blocks: &mut Vec<PamtBlock, MAX_PAMT_BLOCKS>,
    sizes: &[[u64; 3]],
    max_reserved: usize,
) -> Result<(), PlanError> {
    blocks.clear();
    for i in 0..tdmrs.len() {
        let node = tdmrs[i].node;
        if tdmrs[..i].iter().any(|t| t.node == node) {
            continue; // node already handled
        }
        let src = if s.req.iter().any(|r| r.online && r.node == node) {
            Some(node)
        } else {
            None
        };
        let members: Vec<usize, MAX_TDMRS> = (0..tdmrs.len())
            .filter(|&k| tdmrs[k].node == node)
            .collect();
        let node_total = checked_total(members.iter().flat_map(|&k| sizes[k].iter()))?;

        // 1. One block for the whole node.
        if let Ok(at) = find(s, tdmrs, blocks, node_total, src, max_reserved) {
            let mut cursor = at.start;
            for &k in &members {
                cursor = assign_chunk(&mut tdmrs[k], sizes[k], cursor);
            }
            insert_block(
                blocks,
                PamtBlock {
                    node,
                    range: at.to_range(),
                },
            )?;
            continue;
        }
        // 2./3. Per TDMR, falling back to per level.
        for &k in &members {
            let total = checked_total(&sizes[k])?;
            match find(s, tdmrs, blocks, total, src, max_reserved) {
                Ok(at) => {
                    assign_chunk(&mut tdmrs[k], sizes[k], at.start);
                    insert_block(
                        blocks,
                        PamtBlock {
                            node,
                            range: at.to_range(),
                        },
                    )?;
                }
                Err(_) => {
                    for (level, &bytes) in sizes[k].iter().enumerate() {
                        let at = find(s, tdmrs, blocks, bytes, src, max_reserved)
                            .map_err(|miss| miss_error(miss, node, bytes, max_reserved))?;
                        tdmrs[k].pamt[level] = at.to_range();
                        insert_block(
                            blocks,
                            PamtBlock {
                                node,
                                range: at.to_range(),
                            },
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn miss_error(miss: Miss, node: u16, bytes: u64, max: usize) -> PlanError {
    match miss {
        Miss::NoRoom => PlanError::NoRoomForPamt {
            node,
            needed_bytes: ByteLen(bytes),
        },
        Miss::Exhausted { tdmr_base, needed } => PlanError::ReservedAreasExhausted {
            tdmr_base: PhysAddr(tdmr_base),
            needed,
            max,
        },
    }
}

/// Lays out the 4K, 2M and 1G PAMTs of one TDMR back to back from `at`; returns the end.
fn assign_chunk(t: &mut Tdmr, sizes: [u64; 3], at: u64) -> u64 {
    let mut cursor = at;
    for (level, &sz) in sizes.iter().enumerate() {
        // The block holding the chunk was found for the sum of these sizes: no saturation.
        t.pamt[level] = PhysRange::saturating(cursor, sz);
        cursor = cursor.saturating_add(sz);
    }
    cursor
}

fn insert_block(
    blocks: &mut Vec<PamtBlock, MAX_PAMT_BLOCKS>,
    b: PamtBlock,
) -> Result<(), PlanError> {
    let pos = blocks
        .iter()
        .position(|x| x.range.base() > b.range.base())
        .unwrap_or(blocks.len());
    blocks
        .insert(pos, b)
        .map_err(|_| PlanError::WorkspaceExhausted)
}

/// Best position for `size` bytes of PAMT on `node` (any node if `None`).
fn find(
    s: &Scratch,
    tdmrs: &[Tdmr],
    blocks: &[PamtBlock],
    size: u64,
    node: Option<u16>,
    max_reserved: usize,
) -> Result<Span, Miss> {
    // (cost, start) of the best feasible candidate; tightest infeasible one for the error.
    let mut best: Option<(usize, Span)> = None;
    let mut miss = Miss::NoRoom;
    for t in tdmrs {
        let tspan = crate::layout::tdmr_span(t);
        let mut base_count = None;
        for r in s
            .req
            .iter()
            .filter(|r| r.online && node.is_none_or(|n| n == r.node))
        {
            let piece = r.span.clip(tspan);
            if piece.len() < size {
                continue;
            }
            for_each_free(piece, &s.excluded, blocks, |free| {
                if free.len() < size {
                    return;
                }
                let before = *base_count
                    .get_or_insert_with(|| reserved_count(tspan, &s.req, &s.cmr, blocks, None));
                for cand in [
                    Span::new(free.end - size, free.end),
                    // free.len() >= size was checked above.
                    Span::new(free.start, free.start.saturating_add(size)),
                ] {
                    let after = reserved_count(tspan, &s.req, &s.cmr, blocks, Some(cand));
                    if after > max_reserved {
                        let tighter = match miss {
                            Miss::NoRoom => true,
                            Miss::Exhausted { needed, .. } => after < needed,
                        };
                        if tighter {
                            miss = Miss::Exhausted {
                                tdmr_base: tspan.start,
                                needed: after,
                            };
                        }
                        continue;
                    }
                    let cost = after.saturating_sub(before);
                    let better = match best {
                        None => true,
                        Some((c, b)) => cost < c || (cost == c && cand.start > b.start),
                    };
                    if better {
                        best = Some((cost, cand));
                    }
                }
            });
        }
    }
    best.map(|(_, sp)| sp).ok_or(miss)
}

/// Calls `f` with each run of `piece` not covered by an excluded range or a PAMT block.
fn for_each_free(piece: Span, excluded: &[Span], blocks: &[PamtBlock], mut f: impl FnMut(Span)) {
    let mut cursor = piece.start;
    while cursor < piece.end {
        let window = Span::new(cursor, piece.end);
        let next = excluded
            .iter()
            .copied()
            .chain(blocks.iter().map(block_span))
            .filter(|t| t.overlaps(window))
            .min_by_key(|t| t.start);
        match next {
            None => {
                f(window);
                return;
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
