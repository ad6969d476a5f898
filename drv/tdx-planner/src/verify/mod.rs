//! Independent checks of a plan against its input (coverage and PAMT hygiene).
//!
//! Pattern: re-derive from the *raw* input, sharing no code with the planner, so a planner bug
//! cannot hide itself. The module-side validity of the TDMR_INFO array (§6) is checked by
//! `tdx-emu`'s `check_config`; this module checks what the module does not:
//! - every page of required memory (online and offline, above 1 MiB, whole 4 KiB pages) is either
//!   available TDMR memory or a PAMT block (§8.1: all host memory must be TDX memory);
//! - every PAMT lies in one online RAM range, on its TDMR's node when that node has online RAM,
//!   outside every excluded range and inside a PAMT block the plan reports.

use crate::addr::{ByteLen, PhysAddr, PhysRange, LOW_MIB, PAGE_4K};
use crate::types::{Limits, MemRange, Plan, PlanInput};

/// What a plan gets wrong (`tdmr` is a TDMR index, `level` a [`crate::PamtLevel`] index).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoverageError {
    /// Required memory at `addr` is in no TDMR.
    Uncovered { addr: PhysAddr },
    /// Required memory at `addr` is reserved but holds no PAMT (it could never be TDX memory).
    RamReserved { addr: PhysAddr },
    /// A PAMT of TDMR `tdmr` (level `level`) is not inside one online RAM range.
    PamtNotInRam { tdmr: usize, level: usize },
    /// A PAMT overlaps an excluded range.
    PamtInExcluded { tdmr: usize, level: usize },
    /// A PAMT is on another node although the TDMR's node has online RAM.
    PamtOffNode { tdmr: usize, level: usize },
    /// A PAMT is not inside any reported PAMT block.
    PamtNotInBlock { tdmr: usize, level: usize },
}

fn end(r: &PhysRange) -> u64 {
    r.end().0
}

fn within(inner: &PhysRange, outer: &PhysRange) -> bool {
    outer.base().0 <= inner.base().0 && end(inner) <= end(outer)
}

fn page_range(m: &MemRange) -> (u64, u64) {
    let s = m.range.base().0.max(LOW_MIB).next_multiple_of(PAGE_4K);
    let e = end(&m.range) & !(PAGE_4K - 1);
    (s, e)
}

/// The node of the online RAM holding all of `p`, if `p` is covered by touching RAM ranges of one
/// node.
fn ram_node(input: &PlanInput<'_>, p: &PhysRange) -> Option<u16> {
    let mut x = p.base().0;
    let mut node = None;
    while x < end(p) {
        let m = input.memory.iter().find(|m| {
            let (s, e) = page_range(m);
            s <= x && x < e
        })?;
        if node.is_some_and(|n| n != m.node) {
            return None;
        }
        node = Some(m.node);
        x = page_range(m).1;
    }
    node
}

/// Checks `plan` against `input`.
///
/// # Errors
/// The first [`CoverageError`] found.
pub fn check_coverage(input: &PlanInput<'_>, plan: &Plan) -> Result<(), CoverageError> {
    for m in input.memory.iter().chain(input.offline) {
        let (mut x, e) = page_range(m);
        while x < e {
            if let Some(b) = plan
                .pamt_blocks
                .iter()
                .find(|b| b.range.base().0 <= x && x < end(&b.range))
            {
                x = end(&b.range);
                continue;
            }
            let t = plan
                .tdmrs
                .iter()
                .find(|t| t.base.0 <= x && x < end(&t.range()))
                .ok_or(CoverageError::Uncovered { addr: PhysAddr(x) })?;
            if t.reserved.iter().any(|a| {
                let s = t.base.0.saturating_add(a.offset.0);
                s <= x && x < s.saturating_add(a.size.0)
            }) {
                return Err(CoverageError::RamReserved { addr: PhysAddr(x) });
            }
            // Advance to the next event: reserved start, PAMT start, or TDMR end.
            let mut next = end(&t.range());
            for a in &t.reserved {
                let s = t.base.0.saturating_add(a.offset.0);
                if s > x {
                    next = next.min(s);
                }
            }
            for b in &plan.pamt_blocks {
                if b.range.base().0 > x {
                    next = next.min(b.range.base().0);
                }
            }
            x = next;
        }
    }
    for (i, t) in plan.tdmrs.iter().enumerate() {
        // Only whole pages count: a sub-page RAM range can hold no PAMT, so a node that owns
        // nothing else has no RAM for this purpose (the planner then borrows another node's).
        let node_has_ram = input.memory.iter().any(|m| {
            let (s, e) = page_range(m);
            m.node == t.node && s < e
        });
        for (level, p) in t.pamt.iter().enumerate() {
            // The PAMT may span touching RAM ranges of one node (the planner merges them).
            let Some(node) = ram_node(input, p) else {
                return Err(CoverageError::PamtNotInRam { tdmr: i, level });
            };
            if node_has_ram && node != t.node {
                return Err(CoverageError::PamtOffNode { tdmr: i, level });
            }
            // An empty excluded range excludes nothing (and an empty PAMT overlaps nothing).
            if input.excluded.iter().any(|e| {
                !e.is_empty() && !p.is_empty() && p.base().0 < end(e) && e.base().0 < end(p)
            }) {
                return Err(CoverageError::PamtInExcluded { tdmr: i, level });
            }
            if !plan.pamt_blocks.iter().any(|b| within(p, &b.range)) {
                return Err(CoverageError::PamtNotInBlock { tdmr: i, level });
            }
        }
    }
    Ok(())
}

/// Bytes of PAMT `plan` uses beyond the 1 GiB-granular minimum of its input
/// ([`Plan::required_granules`] GiB without per-TDMR rounding).
#[must_use]
pub fn pamt_overhead(plan: &Plan, limits: &Limits) -> ByteLen {
    let min = crate::pamt::granular_min_pamt(plan.required_granules(), limits);
    ByteLen(plan.pamt_bytes.0.saturating_sub(min))
}

#[cfg(test)]
mod tests;
