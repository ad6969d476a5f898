//! Property tests on random memory maps: any plan produced passes tdx-emu's SYS.CONFIG
//! validation, covers all required memory (checked by `tdx_planner::verify`), and spends at most
//! 12 KiB per TDMR (4 KiB rounding per PAMT level) above the 1 GiB-granular PAMT minimum of the
//! GiB it covers; with the stock limits it covers no GiB that holds no required memory.

use proptest::prelude::{
    any, prop_assert, prop_assert_eq, proptest, Just, ProptestConfig, Strategy,
};
use proptest::prop_oneof;
use tdx_planner::verify::check_coverage;
use tdx_planner::{Limits, MemRange, PhysRange, PlanError};
use tdx_tools::format::{plan_json_to_infos, plan_to_json, Input};
use tdx_tools::{emu, run_baseline, run_planner};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One CMR segment: a non-CMR gap before it, its size, and how its RAM is cut.
#[derive(Clone, Debug)]
struct Seg {
    gap_pages: u64,
    size_mib: u64,
    /// (relative cut positions as per-mille, hole pages) for e820 holes inside the CMR.
    holes: Vec<(u16, u64)>,
    offline: bool,
}

fn seg() -> impl Strategy<Value = Seg> {
    (
        prop_oneof![Just(0u64), 1u64..64, 256u64..(4 * GIB / PAGE)],
        prop_oneof![64u64..1024, 1024u64..(64 * 1024)],
        proptest::collection::vec((1u16..999, 1u64..512), 0..6),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(gap_pages, size_mib, holes, offline)| Seg {
            gap_pages,
            size_mib,
            holes,
            offline,
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::TDX_1_5),
        1 => (1u16..8, 1u16..5).prop_map(|(t, r)| Limits { max_tdmrs: t, max_reserved_per_tdmr: r, ..Limits::TDX_1_5 }),
    ]
}

fn build(segs: &[Seg], nodes: u16, limits: Limits, exclude_low: bool) -> Input {
    let mut cmrs = Vec::new();
    let (mut memory, mut offline) = (Vec::new(), Vec::new());
    let mut cur = MIB;
    let n = segs.len() as u64;
    for (k, s) in segs.iter().enumerate() {
        cur += s.gap_pages * PAGE;
        let size = s.size_mib * MIB;
        cmrs.push(PhysRange::literal(cur, size));
        let node = (k as u64 * u64::from(nodes) / n) as u16;
        let mut cuts: Vec<(u64, u64)> = s
            .holes
            .iter()
            .map(|&(pm, pages)| {
                (
                    cur + (size / 1000 * u64::from(pm)) / PAGE * PAGE,
                    pages * PAGE,
                )
            })
            .collect();
        cuts.sort_unstable();
        let mut start = cur;
        let end = cur + size;
        for (at, len) in cuts.into_iter().chain([(end, 0)]) {
            let stop = at.min(end);
            if stop > start {
                let m = MemRange {
                    range: PhysRange::literal(start, stop - start),
                    node,
                };
                if s.offline {
                    offline.push(m)
                } else {
                    memory.push(m)
                }
            }
            start = start.max((at + len).min(end));
        }
        cur = end;
    }
    let excluded = if exclude_low {
        vec![PhysRange::literal(MIB, 32 * MIB)]
    } else {
        vec![]
    };
    Input {
        cmrs,
        memory,
        offline,
        excluded,
        limits,
        pa_bits: tdx_planner::PaBits(tdx_tools::format::DEFAULT_PA_BITS),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn plans_are_valid_covering_and_tight(
        segs in proptest::collection::vec(seg(), 1..14),
        nodes in 1u16..4,
        limits in limits(),
        exclude_low in any::<bool>(),
    ) {
        let input = build(&segs, nodes, limits, exclude_low);
        let pi = input.as_plan_input();
        let _ = run_baseline(&pi); // must not panic
        match run_planner(&pi) {
            Ok(plan) => {
                prop_assert!(check_coverage(&pi, &plan).is_ok(), "{:?}", check_coverage(&pi, &plan));
                let infos = plan_json_to_infos(&plan_to_json(&plan)).unwrap();
                let status = emu::check(&input, &infos).unwrap();
                prop_assert!(status.is_success(), "{}", status);
                let gib = plan.tdmr_bytes() / GIB;
                let floor = tdx_planner::pamt::granular_min_pamt(gib, &limits);
                prop_assert!(plan.pamt_bytes.0 <= floor + 3 * PAGE * plan.tdmrs.len() as u64);
                prop_assert!(gib >= plan.required_granules());
                if limits == Limits::TDX_1_5 {
                    prop_assert_eq!(gib, plan.required_granules());
                }
            }
            Err(e) => {
                // With the stock limits and ≤ 14 segments only PAMT room can run out (a node
                // whose RAM is all offline or in tiny pieces).
                if limits == Limits::TDX_1_5 {
                    prop_assert!(matches!(e, PlanError::NoRoomForPamt { .. }), "{:?}", e);
                }
            }
        }
    }
}
