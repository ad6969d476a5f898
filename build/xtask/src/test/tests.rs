//! Tests of the run's counting: selected cases, cargo's summary lines, and the restart and
//! UEFI checks an image's console must pass.

use super::host::cargo_summary;
use super::{count_case, Totals};
use crate::test_select::case_line;

#[test]
fn counts_only_selected_cases() {
    let mut t = Totals::default();
    count_case(
        "adversary",
        "lease_a",
        true,
        "",
        Some("adversary::lease"),
        &mut t,
    );
    count_case(
        "adversary",
        "flags_b",
        false,
        "boom",
        Some("adversary::lease"),
        &mut t,
    );
    count_case(
        "kernel",
        "lease_c",
        false,
        "boom",
        Some("adversary::lease"),
        &mut t,
    );
    assert_eq!((t.passed, t.failed, t.cases), (1, 0, 1));
    assert!(t.failures.is_empty());
    count_case("kernel", "lease_c", false, "boom", None, &mut t);
    assert_eq!((t.passed, t.failed, t.cases), (1, 1, 2));
    assert_eq!(t.failures, vec!["kernel::lease_c: boom".to_string()]);
}

#[test]
fn a_restart_run_needs_one_restart_per_kill_and_a_re_attach() {
    let good = "[kill] a\n[jefe] WARN restarted tdx-host (restart #1)\n[tdx-host] tdx-host: re-attach #1 (record seq 3)\n";
    assert_eq!(super::restarted_at_every_kill(good), Ok(()));
    let lost = "[kill] a\n[kill] b\n[jefe] WARN restarted tdx-host (restart #1)\n[tdx-host] tdx-host: re-attach #1\n";
    assert!(super::restarted_at_every_kill(lost).is_err());
    let fresh = "[kill] a\n[jefe] WARN restarted tdx-host (restart #1)\n";
    assert!(super::restarted_at_every_kill(fresh).is_err());
    assert!(super::restarted_at_every_kill("").is_err());
    // Chaos kills count (the `[chaos] seed` line is not a kill).
    let chaos = "[chaos] seed 1 task tdx-host: 2 kills\n[chaos] kill 1 of 2 at Tick\n[jefe] WARN restarted tdx-host (restart #1)\n[tdx-host] tdx-host: re-attach #1\n[chaos] kill 2 of 2 at Tick\n";
    assert_eq!(
        super::restarted_at_every_kill(chaos),
        Err("2 kills but 1 restarts of tdx-host".into())
    );
    let both = "[chaos] seed 1 task tdx-host: 2 kills\n[chaos] kill 1 of 2 at Syscall\n[jefe] WARN restarted tdx-host (restart #1)\n[chaos] kill 2 of 2 at Tick\n[jefe] WARN restarted tdx-host (restart #2)\n[tdx-host] tdx-host: re-attach #2 (record seq 9)\n";
    assert_eq!(super::restarted_at_every_kill(both), Ok(()));
    let mixed = "[kill] a\n[jefe] WARN restarted tdx-host (restart #1)\n[chaos] kill 1 of 1 at Tick\n[tdx-host] tdx-host: re-attach #1\n";
    assert!(super::restarted_at_every_kill(mixed).is_err());
}

#[test]
fn restart_cases_are_unique_per_label() {
    assert_eq!(
        super::restart_case("tdx-restart"),
        Some("tdx_host_restarted_at_every_kill")
    );
    assert_eq!(
        super::restart_case("tdx-restart-soak"),
        Some("soak_restarted_at_every_kill")
    );
    assert_eq!(super::restart_case("kill"), None);
    // Every manifest with a restart case is a suite, and no two print
    // the same case (they share the `tdx-restart` label).
    for (i, &(manifest, case)) in super::RESTART_CASES.iter().enumerate() {
        let path = format!("test-suite/{manifest}.toml");
        assert!(
            super::SUITES.iter().any(|&(m, _)| m == path),
            "{path} is not in SUITES"
        );
        assert!(
            super::RESTART_CASES[i + 1..]
                .iter()
                .all(|&(_, c)| c != case),
            "{case} twice"
        );
    }
}

#[test]
fn uefi_boot_checks_read_the_kernels_boot_lines() {
    let good = b"BdsDxe: starting Boot0001\r\ntdxhost kernel\r\nboot: memory from the EFI memory map (128 descriptors, version 1)\r\nboot: firmware UEFI; ACPI RSDP from multiboot2 tag 15 (ACPI 2.0+)\r\n";
    assert!(super::uefi_boot_checks(good).iter().all(|(_, r)| r.is_ok()));
    let bios = b"boot: memory from the multiboot2 memory map (7 entries)\nboot: firmware BIOS; ACPI RSDP not given (searched in the BIOS areas)\n";
    let r = super::uefi_boot_checks(bios);
    assert!(r.iter().all(|(_, r)| r.is_err()), "{r:?}");
    let r = super::uefi_boot_checks(b"");
    assert!(r[0]
        .1
        .as_ref()
        .unwrap_err()
        .contains("no memory map source"));
}

#[test]
fn reads_cargo_summaries() {
    assert_eq!(
        cargo_summary("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured"),
        Some((12, 0))
    );
    assert_eq!(
        cargo_summary("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
        Some((3, 2))
    );
    assert_eq!(cargo_summary("running 3 tests"), None);
}

#[test]
fn reads_case_lines() {
    assert_eq!(
        case_line("[runner] test a_b ... ok"),
        Some(("a_b", true, ""))
    );
    assert_eq!(
        case_line("[runner] test x ... FAILED: boom"),
        Some(("x", false, "boom"))
    );
    assert_eq!(case_line("[runner] kernel suite: 3 passed, 0 failed"), None);
}
