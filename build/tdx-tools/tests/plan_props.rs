//! The planner against the emulator, on random memory maps: every map either plans into
//! TDMR_INFOs that tdx-emu's TDH.SYS.CONFIG validation accepts (and that cover all required
//! memory, `tdx_planner::verify`), or fails with a clean [`PlanError`] — never a panic, never a plan
//! the module rejects.
//!
//! The generator covers what real maps do and what hostile ones could: RAM ranges from 4 KiB to
//! TiBs, e820 holes, non-CMR gaps, up to five NUMA nodes including node 65535, memory kept
//! offline, RAM outside every CMR, layouts pushed against (and past) the top of the usable
//! address space, random `pa_bits`, and random module limits (TDMRs, reserved areas, PAMT entry
//! sizes). Generation is cheap (a handful of integers per segment) so 10,000 cases run in the
//! default `cargo test`; `TDXHOST_PROPTEST_CASES=200000` runs more.

use proptest::prelude::{
    any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig, Strategy,
};
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm};
use tdx_planner::verify::check_coverage;
use tdx_planner::{InputKind, Limits, MemRange, PaBits, PhysRange, PlanError};
use tdx_tools::format::{plan_json_to_infos, plan_to_json, Input};
use tdx_tools::{emu, run_baseline, run_planner};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn cases() -> u32 {
    std::env::var("TDXHOST_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// One CMR-sized segment of the map.
#[derive(Clone, Debug)]
struct Seg {
    /// Non-CMR gap before it, in pages.
    gap_pages: u64,
    /// Size in pages (1 page .. 4 TiB).
    pages: u64,
    /// e820 holes: (position in per-mille of the segment, length in pages).
    holes: Vec<(u16, u64)>,
    node: u16,
    offline: bool,
    /// RAM reported without a CMR behind it (the planner must refuse it).
    no_cmr: bool,
    /// A sub-page sliver of RAM at the segment's start on another node.
    sliver: bool,
    /// Split the segment at this per-mille point into two exactly touching CMRs (which the
    /// module treats as one), the second half's RAM on `node + 1` if the flag is set.
    split: Option<(u16, bool)>,
}

fn pages() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => 1u64..16,                                  // 4 KiB .. 64 KiB
        3 => 16u64..(256 * MIB / PAGE),                 // up to 256 MiB
        4 => (256 * MIB / PAGE)..(64 * GIB / PAGE),     // up to 64 GiB
        1 => (64 * GIB / PAGE)..(4096 * GIB / PAGE),    // up to 4 TiB
    ]
}

fn seg() -> impl Strategy<Value = Seg> {
    (
        prop_oneof![3 => Just(0u64), 2 => 1u64..512, 2 => 512u64..(8 * GIB / PAGE), 1 => (8 * GIB / PAGE)..(1024 * GIB / PAGE)],
        pages(),
        prop::collection::vec((0u16..1000, 1u64..4096), 0..4),
        prop_oneof![8 => 0u16..4, 1 => Just(u16::MAX)],
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.03),
        prop::bool::weighted(0.05),
        prop_oneof![4 => Just(None), 1 => (1u16..1000, any::<bool>()).prop_map(Some)],
    )
        .prop_map(|(gap_pages, pages, holes, node, offline, no_cmr, sliver, split)| Seg {
            gap_pages,
            pages,
            holes,
            node,
            offline,
            no_cmr,
            sliver,
            split,
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    let entry = prop_oneof![6 => Just(16u16), 1 => 1u16..64, 1 => 64u16..4097];
    prop_oneof![
        2 => Just(Limits::TDX_1_5),
        3 => (1u16..=64, 1u16..=16, entry.clone(), entry.clone(), entry).prop_map(|(t, r, a, b, c)| Limits {
            max_tdmrs: t,
            max_reserved_per_tdmr: r,
            pamt_entry_size: [a, b, c],
        }),
    ]
}

/// Where the map sits: from just above 1 MiB, or pushed so its end lands at the top of the
/// usable space (`overshoot` pages past it; 0 = exactly at the limit).
#[derive(Clone, Copy, Debug)]
enum Anchor {
    Low,
    Top { overshoot: u64 },
}

fn anchor() -> impl Strategy<Value = Anchor> {
    prop_oneof![
        6 => Just(Anchor::Low),
        2 => Just(Anchor::Top { overshoot: 0 }),
        1 => (1u64..(2 * GIB / PAGE)).prop_map(|o| Anchor::Top { overshoot: o }),
    ]
}

#[derive(Clone, Debug)]
struct Map {
    segs: Vec<Seg>,
    limits: Limits,
    pa_bits: u8,
    anchor: Anchor,
    /// (segment, per-mille offset, pages) of each excluded range; 0 pages = an empty range.
    excluded: Vec<(usize, u16, u64)>,
    /// Raw ranges (any base and size, possibly wrapping or overlapping) added to list `.0`
    /// (0 memory, 1 offline, 2 CMRs, 3 excluded) at a random position.
    chaos: Vec<(u8, usize, u64, u64)>,
}

fn map() -> impl Strategy<Value = Map> {
    (
        prop_oneof![4 => prop::collection::vec(seg(), 1..8), 1 => prop::collection::vec(seg(), 8..16)],
        limits(),
        prop_oneof![4 => Just(46u8), 2 => 40u8..46, 1 => 30u8..40],
        anchor(),
        prop::collection::vec((0usize..12, 0u16..1000, 0u64..8192), 0..3),
        prop_oneof![
            9 => Just(Vec::new()),
            1 => prop::collection::vec(
                (0u8..4, 0usize..40, any::<u64>(), prop_oneof![any::<u64>(), 0u64..(1 << 34)]),
                1..3
            ),
        ],
    )
        .prop_map(|(segs, limits, pa_bits, anchor, excluded, chaos)| Map {
            segs,
            limits,
            pa_bits,
            anchor,
            excluded,
            chaos,
        })
}

/// What the map should do, besides planning or failing cleanly.
struct Expect {
    beyond_limit: bool,
    ram_outside_cmrs: bool,
    /// Raw ranges were added: the two flags above are not known.
    unknown: bool,
}

fn build(m: &Map) -> Option<(Input, Expect)> {
    let limit = 1u64 << m.pa_bits;
    // Lay the segments out from 0, then shift.
    let mut spans = Vec::new();
    let mut cur = 0u64;
    for s in &m.segs {
        cur = cur.checked_add(s.gap_pages.checked_mul(PAGE)?)?;
        let size = s.pages.checked_mul(PAGE)?;
        spans.push((cur, size));
        cur = cur.checked_add(size)?;
    }
    let shift = match m.anchor {
        Anchor::Low => MIB,
        Anchor::Top { overshoot } => {
            let end = limit.checked_add(overshoot * PAGE)?;
            end.checked_sub(cur).filter(|&s| s >= MIB)?
        }
    };
    let mut input = Input {
        cmrs: Vec::new(),
        memory: Vec::new(),
        offline: Vec::new(),
        excluded: Vec::new(),
        limits: m.limits,
        pa_bits: PaBits(m.pa_bits),
    };
    let mut expect = Expect {
        beyond_limit: false,
        ram_outside_cmrs: false,
        unknown: false,
    };
    for (s, &(rel, size)) in m.segs.iter().zip(&spans) {
        let base = rel.checked_add(shift)?;
        let end = base.checked_add(size)?;
        let cut = s
            .split
            .map(|(pm, _)| base + (size / 1000 * u64::from(pm)) / PAGE * PAGE)
            .filter(|&c| c > base && c < end);
        if !s.no_cmr {
            match cut {
                Some(c) => {
                    input.cmrs.push(PhysRange::literal(base, c - base));
                    input.cmrs.push(PhysRange::literal(c, end - c));
                }
                None => input.cmrs.push(PhysRange::literal(base, size)),
            }
            expect.beyond_limit |= end > limit;
        }
        let node_at = |a: u64| match (cut, s.split) {
            (Some(c), Some((_, true))) if a >= c => s.node.wrapping_add(1),
            _ => s.node,
        };
        let mut cuts: Vec<(u64, u64)> = s
            .holes
            .iter()
            .map(|&(pm, len)| {
                (
                    base + (size / 1000 * u64::from(pm)) / PAGE * PAGE,
                    len * PAGE,
                )
            })
            .collect();
        cuts.sort_unstable();
        let mut start = base;
        if s.sliver && size > PAGE {
            // A sub-page range on another node: whole-page logic must ignore it.
            input.memory.push(MemRange {
                range: PhysRange::literal(base, PAGE / 2),
                node: s.node.wrapping_add(1),
            });
            start = base + PAGE;
        }
        // The node boundary (if any) is one more cut of zero length.
        cuts.extend(
            cut.filter(|_| s.split.is_some_and(|(_, n)| n))
                .map(|c| (c, 0)),
        );
        cuts.sort_unstable();
        for (at, len) in cuts.into_iter().chain([(end, 0)]) {
            let stop = at.min(end);
            if stop > start {
                let r = MemRange {
                    range: PhysRange::literal(start, stop - start),
                    node: node_at(start),
                };
                expect.beyond_limit |= stop > limit;
                expect.ram_outside_cmrs |= s.no_cmr;
                if s.offline {
                    input.offline.push(r);
                } else {
                    input.memory.push(r);
                }
            }
            start = start.max(at.saturating_add(len).min(end));
        }
    }
    for &(k, pm, len) in &m.excluded {
        let Some(&(rel, size)) = spans.get(k) else {
            continue;
        };
        let at = (rel + shift + size / 1000 * u64::from(pm)) / PAGE * PAGE;
        input.excluded.push(PhysRange::new(at, len * PAGE)?);
    }
    for &(list, at, base, size) in &m.chaos {
        // A wrapping range cannot be built (the type refuses it); the adversarial input is the
        // one that runs into the top of the address space instead.
        let r = PhysRange::saturating(base, size);
        let mem = |v: &mut Vec<MemRange>| {
            v.insert(
                at.min(v.len()),
                MemRange {
                    range: r,
                    node: (base % 3) as u16,
                },
            )
        };
        match list {
            0 => mem(&mut input.memory),
            1 => mem(&mut input.offline),
            2 => input.cmrs.insert(at.min(input.cmrs.len()), r),
            _ => input.excluded.insert(at.min(input.excluded.len()), r),
        }
        // Anything goes now: only "valid plan or clean error" is checked.
        expect.unknown = true;
    }
    Some((input, expect))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // XorShift: the default ChaCha generator costs more than a case in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        // Failing seeds are kept in `tests/plan_props.proptest-regressions` and re-run first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_maps_plan_validly_or_fail_cleanly(m in map()) {
        let Some((input, expect)) = build(&m) else { return Ok(()) };
        let pi = input.as_plan_input();
        let _ = run_baseline(&pi); // must not panic
        let outcome = run_planner(&pi);
        if std::env::var_os("TDXHOST_PROPTEST_STATS").is_some() {
            let tag = match &outcome {
                Ok(p) => format!("ok {} tdmrs", p.tdmrs.len().min(5)),
                Err(e) => format!("{e:?}").split([' ', '{']).next().unwrap_or("").to_owned(),
            };
            eprintln!("STAT {tag}");
        }
        match outcome {
            Ok(plan) => {
                prop_assert!(expect.unknown || !expect.beyond_limit, "planned memory beyond 2^{}", m.pa_bits);
                prop_assert!(expect.unknown || !expect.ram_outside_cmrs, "planned RAM outside every CMR");
                prop_assert!(!plan.tdmrs.is_empty());
                for t in &plan.tdmrs {
                    prop_assert!(t.size.0 > 0);
                    prop_assert!(t.base.0.checked_add(t.size.0).is_some_and(|e| e <= 1u64 << m.pa_bits));
                }
                let cov = check_coverage(&pi, &plan);
                prop_assert!(cov.is_ok(), "{:?}", cov);
                let infos = plan_json_to_infos(&plan_to_json(&plan)).unwrap();
                let status = emu::check(&input, &infos).unwrap();
                prop_assert!(status.is_success(), "emulator rejects the plan: {}", status);
            }
            Err(e) => {
                prop_assert!(
                    !matches!(e, PlanError::ArithmeticOverflow | PlanError::InvalidLimits | PlanError::InvalidPaBits { .. }),
                    "{:?}", e
                );
                if expect.beyond_limit && !expect.unknown {
                    prop_assert!(
                        matches!(e, PlanError::BeyondMaxPhysAddr { .. }),
                        "memory beyond the limit must be named: {:?}", e
                    );
                }
                if let PlanError::BeyondMaxPhysAddr { kind, pa_bits, .. } = e {
                    prop_assert!(expect.beyond_limit || expect.unknown);
                    prop_assert_eq!(pa_bits, m.pa_bits);
                    prop_assert!(matches!(kind, InputKind::Memory | InputKind::Cmrs));
                }
                if matches!(e, PlanError::MemoryOutsideCmrs { .. }) {
                    prop_assert!(expect.ram_outside_cmrs || expect.beyond_limit || expect.unknown);
                }
            }
        }
    }
}

/// The same property, at the limits by construction: the last usable GiB, a map that ends one
/// page past the limit, and memory near 2^64.
#[test]
fn top_of_the_address_space() {
    for pa_bits in [30u8, 39, 46] {
        let top = 1u64 << pa_bits;
        let mk = |end: u64| Input {
            cmrs: vec![
                PhysRange::literal(MIB, 512 * MIB),
                PhysRange::literal(top - GIB, end - (top - GIB)),
            ],
            memory: vec![
                MemRange {
                    range: PhysRange::literal(MIB, 512 * MIB),
                    node: 0,
                },
                MemRange {
                    range: PhysRange::literal(top - GIB, end - (top - GIB)),
                    node: 1,
                },
            ],
            offline: vec![],
            excluded: vec![],
            limits: Limits::TDX_1_5,
            pa_bits: PaBits(pa_bits),
        };
        if pa_bits > 30 {
            let ok = mk(top);
            let plan = run_planner(&ok.as_plan_input()).unwrap();
            let infos = plan_json_to_infos(&plan_to_json(&plan)).unwrap();
            assert!(emu::check(&ok, &infos).unwrap().is_success());
        }
        let over = mk(top + PAGE);
        assert!(matches!(
            run_planner(&over.as_plan_input()),
            Err(PlanError::BeyondMaxPhysAddr { .. })
        ));
    }
}
