//! Shorthand for the unit tests of the planner's modules: ranges from `[start, end)` and inputs
//! with default limits and address width. It uses only the vocabulary modules, so a stage's
//! tests may use it without an import circle.

use crate::addr::PhysRange;
use crate::types::{Limits, MemRange, PaBits, PlanInput};

/// One MiB.
pub const MIB: u64 = 1 << 20;
/// MAXPHYADDR 52 minus 6 KeyID bits, as the emulator-backed tools use.
pub const PA_BITS: PaBits = PaBits(46);

/// `[b, e)`.
pub fn r(b: u64, e: u64) -> PhysRange {
    PhysRange::new(b, e - b)
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
