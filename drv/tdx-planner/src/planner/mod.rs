//! The TDMR planner entry point.
//!
//! Pattern: a pure function from [`PlanInput`] to a caller-provided [`Plan`]; on error the plan's
//! public fields are left empty. Phases: normalize inputs (§5.1, §7.1), form TDMRs
//! ([`crate::layout`]), place PAMTs ([`crate::place`]), then materialize reserved areas.
//!
//! Headroom: TDMRs are first formed using all `max_reserved_per_tdmr` areas for holes. If a PAMT
//! then cannot be placed because every candidate TDMR is full, the TDMRs are re-formed keeping one
//! (then two) areas free per TDMR; the first error is reported if every attempt fails.

use crate::addr::{ByteLen, PhysAddr};
use crate::layout::{for_each_reserved, form_tdmrs};
use crate::normalize::normalize;
use crate::pamt::{checked_total, tdmr_pamt_sizes};
use crate::place::place_pamts;
use crate::types::{Plan, PlanError, PlanInput, ReservedArea, Tdmr, MAX_TDMRS};

/// Plans TDMRs, reserved areas and PAMTs for `input` into `out`.
///
/// Stack use is a few hundred bytes; all tables live in `out` (see the crate docs for sizes).
///
/// # Errors
/// A [`PlanError`] naming the limit that cannot be met and by how much.
pub fn plan_tdmrs(input: &PlanInput<'_>, out: &mut Plan) -> Result<(), PlanError> {
    let r = plan_inner(input, out);
    if r.is_err() {
        out.tdmrs.clear();
        out.pamt_blocks.clear();
        out.pamt_bytes = ByteLen(0);
    }
    r
}

fn plan_inner(input: &PlanInput<'_>, out: &mut Plan) -> Result<(), PlanError> {
    normalize(input, &mut out.scratch, true)?;
    let limits = input.limits;
    let max_tdmrs = limits.tdmrs();
    let max_res = limits.reserved();
    let mut first_err = None;
    for headroom in 0..max_res.min(3) {
        let cap = max_res - headroom;
        if let Err(e) = form_tdmrs(&mut out.scratch, max_tdmrs, cap, max_res) {
            return Err(first_err.unwrap_or(e));
        }
        let Plan {
            tdmrs,
            pamt_blocks,
            scratch,
            ..
        } = out;
        tdmrs.clear();
        let mut sizes = [[0u64; 3]; MAX_TDMRS];
        for (k, w) in scratch.work.iter().enumerate() {
            let size = ByteLen(w.span.len());
            sizes[k] = tdmr_pamt_sizes(size, &limits);
            let t = Tdmr {
                base: PhysAddr(w.span.start),
                size,
                node: w.node,
                ..Tdmr::default()
            };
            // form_tdmrs guarantees at most max_tdmrs <= MAX_TDMRS entries.
            let _ = tdmrs.push(t);
        }
        let n = tdmrs.len();
        match place_pamts(scratch, tdmrs, pamt_blocks, &sizes[..n], max_res) {
            Ok(()) => {
                materialize_reserved(out, max_res)?;
                let total = checked_total(sizes.iter().flatten())?;
                out.pamt_bytes = ByteLen(total);
                return Ok(());
            }
            Err(e @ PlanError::ReservedAreasExhausted { .. }) => {
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(first_err.unwrap_or(e)),
        }
    }
    Err(first_err.unwrap_or(PlanError::InvalidLimits))
}

fn materialize_reserved(out: &mut Plan, max_res: usize) -> Result<(), PlanError> {
    let Plan {
        tdmrs,
        pamt_blocks,
        scratch,
        ..
    } = out;
    for t in tdmrs.iter_mut() {
        let span = crate::layout::tdmr_span(t);
        let mut count = 0usize;
        t.reserved.clear();
        let reserved = &mut t.reserved;
        for_each_reserved(span, &scratch.req, &scratch.cmr, pamt_blocks, None, |a| {
            count = count.saturating_add(1);
            let _ = reserved.push(ReservedArea {
                offset: ByteLen(a.start - span.start),
                size: ByteLen(a.len()),
            });
        });
        if count > max_res {
            return Err(PlanError::ReservedAreasExhausted {
                tdmr_base: t.base,
                needed: count,
                max: max_res,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
