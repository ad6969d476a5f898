//! Shorthand for the unit tests of the planner's modules: ranges from `[start, end)`, inputs
//! with default limits and address width, and a plan that is always coverage-checked. It is
//! compiled for tests only and no production module imports it, so stage tests may share it
//! without an import circle.

extern crate std;

use std::boxed::Box;

use crate::addr::PhysRange;
use crate::planner::plan_tdmrs;
use crate::types::{Limits, MemRange, PaBits, Plan, PlanError, PlanInput};
use crate::verify::check_coverage;

/// One MiB.
pub const MIB: u64 = 1 << 20;
/// MAXPHYADDR 52 minus 6 KeyID bits, as the emulator-backed tools use.
pub const PA_BITS: PaBits = PaBits(46);

/// `[b, e)`.
pub fn r(b: u64, e: u64) -> PhysRange {
    PhysRange::literal(b, e - b)
}

/// `[b, e)` on `node`.
pub fn m(b: u64, e: u64, node: u16) -> MemRange {
    MemRange {
        range: r(b, e),
        node,
    }
}

/// Online memory `mem` inside `cmrs`, nothing offline or excluded.
pub fn input<'a>(cmrs: &'a [PhysRange], mem: &'a [MemRange], limits: Limits) -> PlanInput<'a> {
    PlanInput {
        cmrs,
        memory: mem,
        offline: &[],
        excluded: &[],
        limits,
        pa_bits: PA_BITS,
    }
}

/// Plans `i` into a boxed plan and checks it with [`check_coverage`], so no test can pass with a
/// plan that leaves memory uncovered.
pub fn plan(i: &PlanInput<'_>) -> Result<Box<Plan>, PlanError> {
    let mut p = Box::<Plan>::default();
    plan_tdmrs(i, &mut p)?;
    check_coverage(i, &p).expect("coverage");
    Ok(p)
}
