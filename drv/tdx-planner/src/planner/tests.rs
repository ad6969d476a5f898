//! Unit tests of the planner's rules, some against the Linux baseline (the emulator-backed fixture
//! and property tests live in `build/tdx-tools/tests`). Each test pins one behaviour and fails if
//! it regresses.

extern crate std;

use crate::addr::{PhysAddr, GIB};
use crate::baseline::plan_linux_baseline;
use crate::testing::{input, m, plan, r, MIB, PA_BITS};
use crate::types::{Limits, PaBits, Plan, PlanError, PlanInput};

/// §7.4: 20 e820 holes inside one CMR below 2 GiB cost Linux 20+ areas; us none.
#[test]
fn holes_come_from_cmrs_not_ram() {
    let cmrs = [r(MIB, 0x6f80_0000), r(4 * GIB, 8 * GIB)];
    let mut mem = std::vec::Vec::new();
    let mut cur = MIB;
    for k in 0..20u64 {
        let hole = 0x100_0000 + k * 0x400_0000;
        mem.push(m(cur, hole, 0));
        cur = hole + 0x10000;
    }
    mem.push(m(cur, 0x6f00_0000, 0));
    mem.push(m(4 * GIB, 8 * GIB, 0));
    let i = input(&cmrs, &mem, Limits::TDX_1_5);
    let p = plan(&i).unwrap();
    let first = &p.tdmrs[0];
    assert_eq!(first.base, PhysAddr(0));
    // [0, 1 MiB) and [0x6f800000, 2 GiB): the e820 holes are inside the CMR.
    assert_eq!(first.reserved.len(), 2, "{first:?}");
    let mut b = Plan::default();
    match plan_linux_baseline(&i, &mut b) {
        Err(PlanError::ReservedAreasExhausted {
            tdmr_base,
            needed,
            max,
        }) => {
            assert_eq!((tdmr_base, max), (PhysAddr(0), 16));
            assert!(needed > 16, "needed {needed}");
        }
        other => panic!("baseline should fail like Linux: {other:?}"),
    }
}

/// Two non-CMR holes separated only by CMR memory the host does not own merge into one area.
#[test]
fn neighbouring_holes_merge_across_unowned_memory() {
    let cmrs = [
        r(MIB, 100 * MIB),
        r(110 * MIB, 120 * MIB),
        r(130 * MIB, GIB),
    ];
    let mem = [m(MIB, 100 * MIB, 0), m(130 * MIB, GIB, 0)];
    let p = plan(&input(&cmrs, &mem, Limits::TDX_1_5)).unwrap();
    let t = &p.tdmrs[0];
    let areas: std::vec::Vec<_> = t
        .reserved
        .iter()
        .map(|a| (a.offset.0, a.offset.0 + a.size.0))
        .collect();
    // One area from the first hole through the second (the PAMT may extend it further).
    assert!(
        areas.iter().any(|&(s, e)| s == 100 * MIB && e >= 130 * MIB),
        "{areas:x?}"
    );
    assert_eq!(areas.len(), 2, "{areas:x?}");
}

/// With one reserved area per TDMR, the PAMT block must extend an existing hole.
#[test]
fn pamt_block_shares_a_hole() {
    let cmrs = [r(MIB, 3 * GIB), r(4 * GIB, 5 * GIB)];
    let mem = [m(MIB, 3 * GIB, 0), m(4 * GIB, 5 * GIB, 0)];
    let l = Limits {
        max_reserved_per_tdmr: 1,
        ..Limits::TDX_1_5
    };
    let p = plan(&input(&cmrs, &mem, l)).unwrap();
    assert_eq!(p.pamt_blocks.len(), 1);
    assert!(p.tdmrs.iter().all(|t| t.reserved.len() <= 1));
    let mut b = Plan::default();
    assert!(matches!(
        plan_linux_baseline(&input(&cmrs, &mem, l), &mut b),
        Err(PlanError::ReservedAreasExhausted { .. })
    ));
}

/// Offline memory is covered by TDMRs but never holds a PAMT; excluded ranges never do either.
#[test]
fn offline_covered_and_excluded_respected() {
    let cmrs = [r(MIB, 2 * GIB), r(4 * GIB, 8 * GIB)];
    let mem = [m(MIB, 2 * GIB, 0), m(4 * GIB, 5 * GIB, 1)];
    let off = [m(5 * GIB, 8 * GIB, 1)];
    // Exclude the top of node 1's online RAM, where the PAMT would otherwise go.
    let exc = [r(5 * GIB - 64 * MIB, 5 * GIB)];
    let i = PlanInput {
        cmrs: &cmrs,
        memory: &mem,
        offline: &off,
        excluded: &exc,
        limits: Limits::TDX_1_5,
        pa_bits: PA_BITS,
    };
    let p = plan(&i).unwrap();
    assert_eq!(p.tdmr_bytes(), 2 * GIB + 4 * GIB);
    for b in &p.pamt_blocks {
        let (s, e) = (b.range.base().0, b.range.base().0 + b.range.size().0);
        assert!(e <= 5 * GIB - 64 * MIB || s >= 8 * GIB, "{b:?}");
        if b.node == 1 {
            assert!(s >= 4 * GIB && e <= 5 * GIB);
        }
    }
}

/// Separate islands beyond `max_tdmrs` are merged, and the error says by how much when impossible.
#[test]
fn tdmr_limit_merges_then_reports() {
    let cmrs: std::vec::Vec<_> = (0..6u64)
        .map(|k| r(k * 2 * GIB + MIB, k * 2 * GIB + GIB))
        .collect();
    let mem: std::vec::Vec<_> = (0..6u64)
        .map(|k| m(k * 2 * GIB + MIB, k * 2 * GIB + GIB, 0))
        .collect();
    let l = Limits {
        max_tdmrs: 3,
        max_reserved_per_tdmr: 16,
        ..Limits::TDX_1_5
    };
    let p = plan(&input(&cmrs, &mem, l)).unwrap();
    assert_eq!(p.tdmrs.len(), 3);
    let l = Limits {
        max_tdmrs: 2,
        max_reserved_per_tdmr: 1,
        ..Limits::TDX_1_5
    };
    assert_eq!(
        plan(&input(&cmrs, &mem, l)).unwrap_err(),
        PlanError::TooManyTdmrs { needed: 6, max: 2 }
    );
}

/// Too many holes for one TDMR: the run is split at a 1 GiB boundary instead of failing.
#[test]
fn reserved_limit_splits_tdmr() {
    // Four GiB, each with a non-CMR hole in the middle; two areas per TDMR.
    let mut cmrs = std::vec::Vec::new();
    for k in 0..4u64 {
        let g = 4 * GIB + k * GIB;
        cmrs.push(r(g, g + GIB / 2));
        cmrs.push(r(g + GIB / 2 + 64 * MIB, g + GIB));
    }
    let mem: std::vec::Vec<_> = cmrs
        .iter()
        .map(|c| m(c.base().0, c.base().0 + c.size().0, 0))
        .collect();
    let l = Limits {
        max_reserved_per_tdmr: 2,
        ..Limits::TDX_1_5
    };
    let p = plan(&input(&cmrs, &mem, l)).unwrap();
    assert!(p.tdmrs.len() >= 2, "{:?}", p.tdmrs);
    assert!(p.tdmrs.iter().all(|t| t.reserved.len() <= 2));
    assert_eq!(p.tdmr_bytes(), 4 * GIB);
}

#[test]
fn errors_name_the_problem() {
    let cmrs = [r(MIB, GIB)];
    let mem = [m(MIB, GIB, 0), m(GIB, GIB + 4096, 3)];
    assert_eq!(
        plan(&input(&cmrs, &mem, Limits::TDX_1_5)).unwrap_err(),
        PlanError::MemoryOutsideCmrs {
            base: PhysAddr(GIB),
            size: crate::ByteLen(4096),
            node: 3
        }
    );
    // Node 1 owns 64 KiB of online RAM but needs a 4 MiB PAMT for its own GiB.
    let cmrs = [r(MIB, 2 * GIB)];
    let mem = [
        m(MIB, GIB, 0),
        m(GIB, GIB + 0x10000, 1),
        m(GIB + 0x10000, 2 * GIB, 0),
    ];
    let off = [];
    let i = PlanInput {
        cmrs: &cmrs,
        memory: &mem,
        offline: &off,
        excluded: &[],
        limits: Limits::TDX_1_5,
        pa_bits: PA_BITS,
    };
    // The GiB at 1 GiB is mostly node 0, so everything is node 0: feasible.
    assert!(plan(&i).is_ok());
    let mem = [m(MIB, GIB, 0), m(GIB, GIB + 0x10000, 1)];
    let off = [m(GIB + 0x10000, 2 * GIB, 1)];
    let i = PlanInput {
        cmrs: &cmrs,
        memory: &mem,
        offline: &off,
        excluded: &[],
        limits: Limits::TDX_1_5,
        pa_bits: PA_BITS,
    };
    assert!(matches!(
        plan(&i).unwrap_err(),
        PlanError::NoRoomForPamt { node: 1, .. }
    ));
    let bad = [r(2 * GIB, 3 * GIB), r(MIB, GIB)];
    assert_eq!(
        plan(&input(&bad, &[m(MIB, GIB, 0)], Limits::TDX_1_5)).unwrap_err(),
        PlanError::InvalidCmr { index: 1 }
    );
}

/// The output struct stays small enough to live in a task's data section.
#[test]
fn plan_size_is_bounded() {
    let size = core::mem::size_of::<Plan>();
    assert!(size < 48 * 1024, "Plan is {size} bytes");
}

/// Node 65535 is a real node: its TDMR and its PAMT stay on it (it used to be the "no node"
/// sentinel and was planned as node 0).
#[test]
fn node_65535_is_a_real_node() {
    let cmrs = [r(MIB, 4 * GIB)];
    let mem = [m(MIB, 2 * GIB, 0), m(2 * GIB, 4 * GIB, u16::MAX)];
    let p = plan(&input(&cmrs, &mem, Limits::TDX_1_5)).unwrap();
    let t = p
        .tdmrs
        .iter()
        .find(|t| t.base.0 == 2 * GIB)
        .expect("a TDMR at 2 GiB");
    assert_eq!(t.node, u16::MAX, "{:?}", p.tdmrs);
    for pamt in &t.pamt {
        assert!(pamt.base().0 >= 2 * GIB && pamt.base().0 + pamt.size().0 <= 4 * GIB);
    }
    assert!(p
        .pamt_blocks
        .iter()
        .any(|b| b.node == u16::MAX && b.range.base().0 >= 2 * GIB));
}

/// Memory beyond the usable physical-address width is refused with an error naming the range and
/// the width, never planned into an empty or wrapped TDMR; memory just below the limit plans.
#[test]
fn memory_beyond_max_phys_addr_is_refused() {
    let top = 1u64 << PA_BITS.0;
    // Near 2^64: used to give an empty TDMR and a misleading error.
    let near_top = u64::MAX - GIB + 1;
    for (cmr, mem) in [
        (r(MIB, 2 * GIB), [m(MIB, GIB, 0), m(near_top, !0xfff, 0)]),
        (
            r(MIB, 2 * GIB),
            [m(MIB, GIB, 0), m(top - GIB, top + 4096, 0)],
        ),
    ] {
        let cmrs = [cmr];
        match plan(&input(&cmrs, &mem, Limits::TDX_1_5)) {
            Err(PlanError::BeyondMaxPhysAddr {
                kind: crate::InputKind::Memory,
                base,
                pa_bits,
                ..
            }) => {
                assert_eq!((base, pa_bits), (mem[1].range.base(), PA_BITS.0));
            }
            other => panic!("{:?}", other.map(|p| p.tdmrs.clone())),
        }
    }
    // A CMR beyond the limit is refused the same way.
    let cmrs = [r(MIB, GIB), r(top - GIB, top + GIB)];
    let mem = [m(MIB, GIB, 0)];
    assert!(matches!(
        plan(&input(&cmrs, &mem, Limits::TDX_1_5)),
        Err(PlanError::BeyondMaxPhysAddr {
            kind: crate::InputKind::Cmrs,
            ..
        })
    ));
    // The last GiB below the limit plans; its TDMR ends exactly at the limit.
    let cmrs = [r(MIB, GIB), r(top - GIB, top)];
    let mem = [m(MIB, GIB, 0), m(top - GIB, top, 1)];
    let p = plan(&input(&cmrs, &mem, Limits::TDX_1_5)).unwrap();
    assert_eq!(p.tdmrs.last().map(|t| t.base.0 + t.size.0), Some(top));
    // Widths the planner cannot use are refused.
    for bits in [0u8, 29, 53, 255] {
        let i = PlanInput {
            pa_bits: PaBits(bits),
            ..input(&cmrs, &mem, Limits::TDX_1_5)
        };
        assert_eq!(plan(&i).unwrap_err(), PlanError::InvalidPaBits { bits });
    }
}
