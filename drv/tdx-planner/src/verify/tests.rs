//! Unit tests of [`check_coverage`]: it must neither miss a fault nor see one that is not there.

extern crate std;

use crate::addr::{PhysRange, GIB};
use crate::testing::{input, m, plan, r, MIB, PA_BITS};
use crate::types::{Limits, PlanInput};
use crate::verify::{check_coverage, CoverageError};

/// `verify`: an empty excluded range excludes nothing, even inside a PAMT.
#[test]
fn verify_ignores_empty_excluded_ranges() {
    let cmrs = [r(MIB, 2 * GIB)];
    let mem = [m(MIB, 2 * GIB, 0)];
    let p = plan(&input(&cmrs, &mem, Limits::TDX_1_5)).unwrap();
    let pamt = p.tdmrs[0].pamt[0];
    for base in [
        pamt.base().0,
        pamt.base().0 + 0x1000,
        pamt.base().0 + 0x1234,
    ] {
        let exc = [PhysRange::literal(base, 0)];
        let i = PlanInput {
            excluded: &exc,
            ..input(&cmrs, &mem, Limits::TDX_1_5)
        };
        assert_eq!(
            check_coverage(&i, &p),
            Ok(()),
            "empty exclusion at {base:#x}"
        );
        // The planner agrees: an empty exclusion changes nothing.
        assert_eq!(plan(&i).unwrap().pamt_blocks, p.pamt_blocks);
    }
    // A one-byte exclusion still counts.
    let exc = [PhysRange::literal(pamt.base().0 + 0x1234, 1)];
    let i = PlanInput {
        excluded: &exc,
        ..input(&cmrs, &mem, Limits::TDX_1_5)
    };
    assert!(matches!(
        check_coverage(&i, &p),
        Err(CoverageError::PamtInExcluded { .. })
    ));
}

/// `verify`: a node whose only online RAM is smaller than a page has no RAM for PAMTs, so a plan
/// that borrows another node's RAM for its TDMR is not "off node".
#[test]
fn verify_does_not_count_sub_page_ram_as_node_ram() {
    let cmrs = [r(MIB, 4 * GIB)];
    let mem = [m(MIB, 2 * GIB, 0), m(2 * GIB, 2 * GIB + 0x800, 1)];
    let off = [m(2 * GIB + 0x1000, 4 * GIB, 1)];
    let i = PlanInput {
        cmrs: &cmrs,
        memory: &mem,
        offline: &off,
        excluded: &[],
        limits: Limits::TDX_1_5,
        pa_bits: PA_BITS,
    };
    let p = plan(&i).unwrap(); // `plan` runs check_coverage
    let t = p.tdmrs.iter().find(|t| t.node == 1).expect("node 1 TDMR");
    assert!(t.pamt[0].base().0 < 2 * GIB, "borrowed from node 0: {t:?}");
}
