//! End-to-end tests for machines with x2APIC ids: MADT Processor Local
//! x2APIC and Local x2APIC NMI entries and SRAT Processor Local x2APIC
//! Affinity entries, with ids above 255, run through [`crate::discover`].
//!
//! Pattern as in `qemu_tests`: synthetic tables in a sparse memory, the
//! record checked field by field, then one thing broken at a time. The
//! record holds [`MAX_CPUS`] CPUs, so "more CPUs than that" is a
//! truncation test and a refusal (`Report::exceeded`), not a success test.

use std::vec::Vec;

use abi::limits::{Exceeded, Limit, MAX_PACKAGES};
use abi::platform::{RecordFlags, MAX_CPUS, MAX_NODES};

use crate::acpi::{AcpiError, Signature};
use crate::fadt::tests::q35_fadt_body;
use crate::qemu_tests::{assert_round_trips, build, cpu, run, Machine, GIB, RSDP_AT};
use crate::testutil::{
    m_lapic, m_x2apic, m_x2apic_nmi, madt_body, qemu_cpuid, resize, rsdp_v1, s_mem, s_x2apic,
    srat_body, table, TestMem,
};
use crate::Discovery;

/// An RSDP v1 and RSDT naming q35's FADT, a MADT of `madt` (revision
/// `madt_rev`) and, if given, an SRAT (revision 3) of `srat`.
fn firmware(madt: &[Vec<u8>], madt_rev: u8, srat: Option<&[Vec<u8>]>) -> TestMem {
    let mut mem = TestMem::default();
    mem.put(0x4_0000, &table(b"FACP", 3, &q35_fadt_body(true)));
    let body = madt_body(0xFEE0_0000, 0, madt);
    mem.put(0x10_0000, &table(b"APIC", madt_rev, &body));
    let mut ptrs = vec![0x4_0000u32, 0x10_0000];
    if let Some(s) = srat {
        mem.put(0x80_0000, &table(b"SRAT", 3, &srat_body(s)));
        ptrs.push(0x80_0000);
    }
    let ptrs: Vec<u8> = ptrs.iter().flat_map(|p| p.to_le_bytes()).collect();
    mem.put(0x2000, &table(b"RSDT", 1, &ptrs));
    mem.put(RSDP_AT, &rsdp_v1(0x2000));
    mem
}

fn ids(d: &Discovery) -> Vec<u32> {
    d.record.cpus().iter().map(|c| c.apic_id).collect()
}

#[test]
fn a_qemu_shaped_machine_with_ids_up_to_2400_records_every_id_node_and_package() {
    // As many CPUs as the record holds, ids spread over 0..=2400: QEMU lists
    // ids below 255 as type 0 and the rest as type 9 (MADT) and type 2
    // (SRAT). 2 threads × 128 cores: the package is the id >> 8.
    let last = MAX_CPUS as u32 - 1;
    let apic: Vec<u32> = (0..=last).map(|i| i * 2400 / last).collect();
    assert_eq!((apic.len(), apic[last as usize]), (MAX_CPUS, 2400));
    let b = build(&Machine {
        cpus: apic.iter().map(|&a| (a, a / 800)).collect(),
        node_mem: vec![GIB / 4; 4],
        hotplug: None,
        xsdt: true,
    });
    let d = run(&b.mem, &qemu_cpuid(2, 128, 0));
    assert!(d.report.is_clean(), "{}", d.report);
    let want: Vec<_> = apic.iter().map(|&a| cpu(a, a >> 8, a / 800)).collect();
    assert_eq!(d.record.cpus(), &want[..]);
    assert_eq!(d.record.package_count, 10);
    assert_eq!(d.record.nodes().len(), 4);
    assert!(!d.record.flags.contains(RecordFlags::TRUNCATED));
    assert_eq!(d.report.exceeded(&d.record), None);
    assert_round_trips(&d);
}

#[test]
fn more_x2apic_cpus_than_the_record_holds_are_reported_and_refused() {
    // MAX_CPUS + 44 CPUs, every one a type 9 entry, ids 0, 2, 4, … (SMT off).
    let n = MAX_CPUS as u32 + 44;
    let madt: Vec<Vec<u8>> = (0..n).map(|i| m_x2apic(2 * i, 1, i)).collect();
    let d = run(&firmware(&madt, 5, None), &qemu_cpuid(2, 128, 0));
    let want: Vec<u32> = (0..MAX_CPUS as u32).map(|i| 2 * i).collect();
    assert_eq!(ids(&d), want);
    assert_eq!(d.record.cpus()[200], cpu(400, 1, 0));
    assert_eq!(d.report.cpus_dropped, 44);
    assert!(d.record.flags.contains(RecordFlags::TRUNCATED));
    assert!(!d.report.is_clean());
    assert_eq!(
        d.report.exceeded(&d.record),
        Some(Exceeded {
            limit: Limit::Cpus,
            found: n as usize
        })
    );
    assert_round_trips(&d);
}

#[test]
fn more_numa_nodes_than_the_record_holds_are_refused_by_name() {
    // One CPU and a 16 MiB memory range in each of MAX_NODES + 3 sparse
    // proximity domains (x2APIC affinity, ids above 255).
    let n = MAX_NODES as u32 + 3;
    let madt: Vec<Vec<u8>> = (0..n).map(|i| m_x2apic(0x100 + i, 1, i)).collect();
    let mut srat: Vec<Vec<u8>> = (0..n).map(|i| s_x2apic(0x100 + i, 10 * i, 1)).collect();
    srat.extend((0..n).map(|i| s_mem(u64::from(i) << 24, 1 << 24, 10 * i, 1)));
    let d = run(&firmware(&madt, 5, Some(&srat)), &qemu_cpuid(2, 128, 0x100));
    assert_eq!(d.record.nodes().len(), MAX_NODES);
    // Each of the 3 extra domains is named by a CPU and a memory entry.
    assert_eq!(d.report.nodes_dropped, 6);
    assert!(d.record.flags.contains(RecordFlags::TRUNCATED));
    let refused = d.report.exceeded(&d.record).expect("refused");
    assert_eq!(
        refused,
        Exceeded {
            limit: Limit::Nodes,
            found: MAX_NODES + 1
        }
    );
    let msg = refused.to_string();
    let want = format!(
        "at least {} NUMA nodes, more than MAX_NODES = {MAX_NODES}",
        MAX_NODES + 1
    );
    assert!(msg.contains(&want), "{msg}");
    assert_round_trips(&d);
}

#[test]
fn more_packages_than_the_limit_are_refused_by_name() {
    // One CPU per package (1 thread, 1 core: the package is the id).
    let n = MAX_PACKAGES as u32 + 1;
    let madt: Vec<Vec<u8>> = (0..n).map(|i| m_x2apic(0x200 + i, 1, i)).collect();
    let d = run(&firmware(&madt, 5, None), &qemu_cpuid(1, 1, 0x200));
    assert!(d.report.is_clean(), "{}", d.report);
    assert_eq!(d.record.package_count, n);
    let refused = d.report.exceeded(&d.record).expect("refused");
    assert_eq!(refused.limit, Limit::Packages);
    assert!(
        refused.to_string().contains("MAX_PACKAGES = 16"),
        "{refused}"
    );

    // At the limit: accepted.
    let madt: Vec<Vec<u8>> = (0..n - 1).map(|i| m_x2apic(0x200 + i, 1, i)).collect();
    let d = run(&firmware(&madt, 5, None), &qemu_cpuid(1, 1, 0x200));
    assert_eq!(d.report.exceeded(&d.record), None);
}

#[test]
fn a_cpu_listed_as_type_0_and_type_9_is_one_cpu_enabled_if_either_entry_says_so() {
    let madt = [
        m_lapic(0, 0, 1),
        m_x2apic(0, 1, 0),
        // Online-capable as type 0, enabled as type 9: usable now.
        m_lapic(1, 1, 2),
        m_x2apic(1, 1, 1),
        // Online-capable only.
        m_x2apic(2, 2, 2),
        // "No processor" markers of both widths.
        m_x2apic(u32::MAX, 1, 9),
        m_lapic(9, 0xFF, 1),
        // 255 is only a marker in an 8-bit field.
        m_x2apic(255, 1, 10),
    ];
    let d = run(&firmware(&madt, 5, None), &qemu_cpuid(1, 1, 0));
    assert!(d.report.is_clean(), "{}", d.report);
    let mut not_yet = cpu(2, 2, 0);
    not_yet.enabled = false;
    assert_eq!(
        d.record.cpus(),
        [cpu(0, 0, 0), cpu(1, 1, 0), not_yet, cpu(255, 255, 0)]
    );
    assert_eq!(d.report.cpus_dropped, 0);
    assert_round_trips(&d);
}

#[test]
fn srat_x2apic_affinity_gives_cpus_above_255_their_nodes() {
    let madt = [
        m_x2apic(256, 1, 0),
        m_x2apic(511, 1, 1),
        m_x2apic(0x1_0000, 1, 2),
        m_x2apic(0x1_0001, 1, 3),
        m_x2apic_nmi(u32::MAX, 0, 1),
    ];
    // Sparse domains 7, 40, 1000 become nodes 0, 1, 2; 0x1_0001 has no
    // affinity entry and goes to node 0.
    let srat = [
        s_x2apic(256, 40, 1),
        s_x2apic(511, 7, 1),
        s_x2apic(0x1_0000, 1000, 1),
        s_mem(0, GIB / 2, 7, 1),
        s_mem(GIB / 2, GIB / 2, 40, 1),
    ];
    let d = run(&firmware(&madt, 3, Some(&srat)), &qemu_cpuid(2, 128, 256));
    assert!(d.report.is_clean(), "{}", d.report);
    assert_eq!(
        d.record.cpus(),
        [
            cpu(256, 1, 1),
            cpu(511, 1, 0),
            cpu(0x1_0000, 0x100, 2),
            cpu(0x1_0001, 0x100, 0)
        ]
    );
    let domains: Vec<u32> = d.record.nodes().iter().map(|n| n.proximity).collect();
    assert_eq!(domains, [7, 40, 1000]);
    assert_eq!(d.record.package_count, 2);
    assert_round_trips(&d);
}

#[test]
fn short_x2apic_entries_are_skipped_noted_and_mark_the_record_incomplete() {
    let madt = [
        m_lapic(0, 0, 1),
        resize(m_x2apic(0x300, 1, 1), 15),
        resize(m_x2apic_nmi(u32::MAX, 0, 1), 11),
        m_x2apic(0x301, 1, 2),
    ];
    let srat = [resize(s_x2apic(0x301, 1, 1), 20), s_x2apic(0x300, 1, 1)];
    let d = run(&firmware(&madt, 3, Some(&srat)), &qemu_cpuid(1, 1, 0));
    // 0x300 is lost with its entry; 0x301 keeps its CPU but not its node.
    assert_eq!(d.record.cpus(), [cpu(0, 0, 0), cpu(0x301, 0x301, 0)]);
    assert_eq!(d.report.madt_skipped.count, 2);
    assert_eq!(d.report.srat_skipped.count, 1);
    assert_eq!(
        d.report.madt_skipped.first,
        Some(AcpiError::EntryTooShort {
            sig: Signature::MADT,
            offset: 52,
            kind: 9,
            len: 15
        })
    );
    let f = d.record.flags;
    assert!(f.contains(RecordFlags::ENTRIES_SKIPPED) && f.contains(RecordFlags::TRUNCATED));
    assert!(!d.report.is_clean());
    let log = d.report.to_string();
    assert!(log.contains("2 short MADT entries skipped"), "{log}");
    assert!(log.contains("1 short SRAT entries skipped"), "{log}");
    assert_round_trips(&d);

    // A short NMI entry alone loses no CPU: noted, not incomplete.
    let madt = [m_lapic(0, 0, 1), resize(m_x2apic_nmi(1, 0, 1), 9)];
    let d = run(&firmware(&madt, 3, None), &qemu_cpuid(1, 1, 0));
    assert_eq!(ids(&d), [0]);
    assert!(d.record.flags.contains(RecordFlags::ENTRIES_SKIPPED));
    assert!(!d.record.flags.contains(RecordFlags::TRUNCATED));
    assert!(!d.report.is_clean());
}

#[test]
fn a_madt_whose_only_processor_entry_is_short_falls_back_and_says_why() {
    let madt = [resize(m_x2apic(0x300, 1, 1), 12)];
    let d = run(&firmware(&madt, 3, None), &qemu_cpuid(1, 1, 0x300));
    assert_eq!(ids(&d), [0x300]);
    assert_eq!(
        d.report.madt,
        Some(AcpiError::NoEntries {
            sig: Signature::MADT
        })
    );
    assert_eq!(d.report.madt_skipped.count, 1);
    assert!(d.record.flags.contains(RecordFlags::FALLBACK_USED));
    assert!(d.record.flags.contains(RecordFlags::TRUNCATED));
}
