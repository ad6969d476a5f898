//! Planner fixtures (`drv/tdx-planner/fixtures/*.json`): every feasible fixture plans, covers its
//! memory, passes tdx-emu's SYS.CONFIG validation (§6) and does at least as well as the Linux
//! baseline (§7); infeasible ones fail with the right error; hand-written invalid PLANs are
//! rejected with the right status.

use std::path::{Path, PathBuf};

use tdx_planner::verify::check_coverage;
use tdx_planner::{PhysAddr, Plan, PlanError};
use tdx_tools::format::{plan_json_to_infos, plan_to_json, read_input, read_plan};
use tdx_tools::{check_config_command, emu, plan_command, run_baseline, run_planner};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drv/tdx-planner/fixtures")
}

fn max_rsvd(p: &Plan) -> usize {
    p.tdmrs.iter().map(|t| t.reserved.len()).max().unwrap_or(0)
}

/// (fixture, expected baseline outcome): `None` = baseline succeeds.
const FEASIBLE: &[(&str, Option<&str>)] = &[
    ("qemu-1g", None),
    ("qemu-4g", None),
    ("qemu-2node", None),
    ("qemu-4g-tight-rsvd", Some("ReservedAreasExhausted")),
    ("emr-2s-20holes", Some("ReservedAreasExhausted")),
    ("server-2s-2t", None),
    ("server-8s-8t", None),
    ("pmem-mmio", None),
    ("tight-4tdmr-2rsvd", Some("TooManyTdmrs")),
];

#[test]
fn feasible_fixtures_plan_validly_and_beat_linux() {
    for &(name, baseline_err) in FEASIBLE {
        let (j, input) = read_input(&dir().join(format!("{name}.json"))).unwrap();
        let pi = input.as_plan_input();
        let plan = run_planner(&pi).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_coverage(&pi, &plan).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // Round-trip through PLAN JSON, as check-config would read it.
        let json = plan_to_json(&plan);
        let text = serde_json::to_string(&json).unwrap();
        let infos = plan_json_to_infos(&serde_json::from_str(&text).unwrap()).unwrap();
        let status = emu::check(&input, &infos).unwrap();
        assert!(status.is_success(), "{name}: {status}");
        // PAMT: at most 4 KiB per level per TDMR above the 1 GiB-granular minimum of the TDMRs.
        let tdmr_gib = plan.tdmr_bytes() >> 30;
        let floor = tdx_planner::pamt::granular_min_pamt(tdmr_gib, &input.limits);
        assert!(
            plan.pamt_bytes.0 <= floor + 3 * 4096 * plan.tdmrs.len() as u64,
            "{name}"
        );
        // With the stock limits no granule beyond the touched ones is covered.
        if input.limits == tdx_planner::Limits::TDX_1_5 {
            assert_eq!(tdmr_gib, plan.required_granules(), "{name}");
        }
        match (run_baseline(&pi), baseline_err) {
            (Ok(b), None) => {
                assert!(
                    max_rsvd(&plan) <= max_rsvd(&b),
                    "{name}: ours uses more areas"
                );
                assert!(
                    plan.tdmrs.len() <= b.tdmrs.len(),
                    "{name}: ours uses more TDMRs"
                );
                if j.offline.is_empty() {
                    assert!(
                        plan.pamt_bytes <= b.pamt_bytes,
                        "{name}: ours uses more PAMT"
                    );
                }
            }
            (Err(e), Some(want)) => assert!(format!("{e:?}").starts_with(want), "{name}: {e:?}"),
            (other, want) => panic!(
                "{name}: baseline {:?}, expected {want:?}",
                other.map(|b| b.tdmrs.len())
            ),
        }
    }
}

#[test]
fn emerald_rapids_fixture_matches_field_report() {
    let (_, input) = read_input(&dir().join("emr-2s-20holes.json")).unwrap();
    let pi = input.as_plan_input();
    match run_baseline(&pi) {
        Err(PlanError::ReservedAreasExhausted {
            tdmr_base,
            needed,
            max,
        }) => {
            assert_eq!(tdmr_base, PhysAddr(0));
            assert_eq!(max, 16);
            assert!(needed > 16);
        }
        other => panic!("{:?}", other.map(|p| p.tdmrs.len())),
    }
    let plan = run_planner(&pi).unwrap();
    assert_eq!(
        plan.tdmrs[0].reserved.len(),
        2,
        "only [0,1M) and the CMR gap below 2 GiB"
    );
}

#[test]
fn infeasible_fixtures_say_why() {
    let cases: &[(&str, PlanError)] = &[
        (
            "infeasible-outside-cmr",
            PlanError::MemoryOutsideCmrs {
                base: PhysAddr(0x10_0000),
                size: tdx_planner::ByteLen(0xC000_0000 - 0x10_0000),
                node: 0,
            },
        ),
        (
            "infeasible-tdmrs",
            PlanError::TooManyTdmrs { needed: 5, max: 2 },
        ),
    ];
    for (name, want) in cases {
        let path = dir().join(format!("{name}.json"));
        let (_, input) = read_input(&path).unwrap();
        assert_eq!(
            run_planner(&input.as_plan_input()).unwrap_err(),
            *want,
            "{name}"
        );
        assert_eq!(plan_command(&path, None, None).unwrap(), 2, "{name}");
    }
}

#[test]
fn plan_command_writes_plan_and_svg_that_check_config_accepts() {
    let tmp = std::env::temp_dir().join(format!("tdx-tools-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in ["qemu-2node", "emr-2s-20holes"] {
        let input = dir().join(format!("{name}.json"));
        let (plan_path, svg_path) = (
            tmp.join(format!("{name}.plan.json")),
            tmp.join(format!("{name}.svg")),
        );
        assert_eq!(
            plan_command(&input, Some(&plan_path), Some(&svg_path)).unwrap(),
            0
        );
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("PAMT node 0"));
        assert_eq!(
            check_config_command(&input, &plan_path).unwrap(),
            0,
            "{name}"
        );
        assert!(read_plan(&plan_path).unwrap().pamt_bytes.0 > 0);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn invalid_plans_are_rejected_with_the_right_status() {
    let input = dir().join("qemu-4g.json");
    let cases: &[(&str, u64, &str)] = &[
        ("valid-qemu-4g", 0, "TDX_SUCCESS"),
        ("pamt-overlap", 0xC000_0A12_0000_0101, "TDX_PAMT_OVERLAP"),
        ("unaligned-tdmr", 0xC000_0A00_0000_0001, "TDX_INVALID_TDMR"),
        ("pamt-too-small", 0xC000_0A10_0000_0000, "TDX_INVALID_PAMT"),
        (
            "reserved-unordered",
            0xC000_0A21_0000_0101,
            "TDX_NON_ORDERED_RESERVED_IN_TDMR",
        ),
        (
            "reserved-null-gap",
            0xC000_0A21_0000_0100,
            "TDX_NON_ORDERED_RESERVED_IN_TDMR",
        ),
        (
            "tdmr-outside-cmrs",
            0xC000_0A02_0000_0000,
            "TDX_TDMR_OUTSIDE_CMRS",
        ),
        // TDMR 0's PAMTs lie in TDMR 1's memory, and so do TDMR 1's own; the module checks the
        // earlier TDMR's PAMTs first and names their owner in byte 0: (0, 4K, 1).
        (
            "pamt-in-available",
            0xC000_0A12_0001_0000,
            "TDX_PAMT_OVERLAP",
        ),
        (
            "pamt-outside-cmrs",
            0xC000_0A11_0000_0200,
            "TDX_PAMT_OUTSIDE_CMRS",
        ),
    ];
    let (_, owned) = read_input(&input).unwrap();
    for &(name, raw, want_name) in cases {
        let path = dir()
            .join("invalid-plans")
            .join(format!("{name}.plan.json"));
        let infos = plan_json_to_infos(&read_plan(&path).unwrap()).unwrap();
        let status = emu::check(&owned, &infos).unwrap();
        assert_eq!(
            (status.raw(), status.name()),
            (raw, want_name),
            "{name}: got {status}"
        );
        let rc = check_config_command(&input, &path).unwrap();
        assert_eq!(rc, i32::from(raw != 0), "{name}");
    }
}

#[test]
fn unknown_keys_and_hex_strings() {
    let tmp = std::env::temp_dir().join(format!("tdx-tools-keys-{}.json", std::process::id()));
    let good = r#"{"limits":{"max_tdmrs":"64","max_reserved_per_tdmr":16,"pamt_entry_size":{"4k":16,"2m":"0x10","1g":16}},
        "cmrs":[{"base":"0x100000","size":"0x3ff00000"}],"memory":[{"base":1048576,"size":"0x3ff00000","node":0}]}"#;
    std::fs::write(&tmp, good).unwrap();
    let (_, input) = read_input(&tmp).unwrap();
    assert_eq!(input.limits.pamt_entry_size, [16, 16, 16]);
    std::fs::write(&tmp, good.replace("\"node\":0", "\"node\":0,\"numa\":1")).unwrap();
    assert!(read_input(&tmp).is_err());
    let _ = std::fs::remove_file(&tmp);
}

/// `check-config` enforces the module's advertised MAX_RESERVED_PER_TDMR: a plan whose TDMR 0
/// uses two reserved areas passes under the stock limit of 16 and is refused under a limit of 1
/// with TDX_INVALID_RESERVED_IN_TDMR(TDMR 0, slot 1); the planner itself never produces such a
/// plan for that input.
#[test]
fn check_config_refuses_more_reserved_areas_than_advertised() {
    let plan = dir()
        .join("invalid-plans")
        .join("two-reserved-limit-1.plan.json");
    let stock = dir().join("qemu-4g.json");
    let limit1 = dir().join("qemu-4g-rsvd1.json");
    let infos = plan_json_to_infos(&read_plan(&plan).unwrap()).unwrap();
    assert_eq!(infos[0].reserved.iter().filter(|r| r.size != 0).count(), 2);
    let (_, owned) = read_input(&stock).unwrap();
    assert!(emu::check(&owned, &infos).unwrap().is_success());
    assert_eq!(check_config_command(&stock, &plan).unwrap(), 0);
    let (_, owned) = read_input(&limit1).unwrap();
    let status = emu::check(&owned, &infos).unwrap();
    assert_eq!(
        (status.raw(), status.name()),
        (0xC000_0A20_0000_0100, "TDX_INVALID_RESERVED_IN_TDMR"),
        "got {status}"
    );
    assert_eq!(check_config_command(&limit1, &plan).unwrap(), 1);
    let ours = run_planner(&owned.as_plan_input()).unwrap();
    assert!(ours.tdmrs.iter().all(|t| t.reserved.len() <= 1));
    let infos = plan_json_to_infos(&plan_to_json(&ours)).unwrap();
    assert!(emu::check(&owned, &infos).unwrap().is_success());
}
