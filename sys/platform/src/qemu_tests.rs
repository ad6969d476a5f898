//! End-to-end tests: synthetic firmware tables shaped like QEMU 7.2 q35's
//! (`hw/i386/acpi-build.c`, SeaBIOS RSDP v1 + RSDT), run through
//! [`crate::discover`], and the record checked field by field. Then the
//! same machines with one thing broken at a time.

use std::vec::Vec;

use abi::platform::{
    decode, encode, CpuInfo, HotplugWindow, NodeFlags, RamRange, RecordFlags, ENCODED_MAX,
    MAX_CPUS, MAX_RAM_RANGES,
};

use crate::acpi::{AcpiError, Signature};
use crate::fadt::tests::q35_fadt_body;
use crate::testutil::{
    m_iso, m_lapic, m_lapic_nmi, m_x2apic, madt_body, rsdp_v1, rsdp_v2, s_lapic, s_mem, s_x2apic,
    srat_body, table, TestMem,
};
use crate::{discover, Discovery, PhysAddr};

pub(crate) const GIB: u64 = 1 << 30;
pub(crate) const RSDP_AT: u64 = 0xF_59E0;
const TABLES_AT: u64 = 0x3FFE_0000;
/// QEMU q35 `-m 1G` E820 RAM (reference §1.2, observed).
const E820_1G: [(u64, u64); 2] = [(0, 0x9_FC00), (0x10_0000, 0x3FFE_0000 - 0x10_0000)];
const IMAGE: [(u64, u64); 2] = [(0x10_0000, 0x8_0000), (0x20_0000, 0x4_0000)];

/// A q35 machine description, turned into tables the way QEMU does it.
pub(crate) struct Machine {
    /// `(apic id, node)` of every present CPU.
    pub cpus: Vec<(u32, u32)>,
    /// Memory per NUMA node; empty means no `-numa` (and no SRAT unless
    /// there is device memory, as QEMU auto-creates one node then).
    pub node_mem: Vec<u64>,
    /// Device-memory window `(base, size)` from `slots=,maxmem=`.
    pub hotplug: Option<(u64, u64)>,
    /// Publish an RSDP v2 + XSDT (OVMF) instead of v1 + RSDT (SeaBIOS).
    pub xsdt: bool,
}

pub(crate) struct Built {
    pub mem: TestMem,
    madt_at: u64,
    srat_at: Option<u64>,
}

fn madt_for(cpus: &[(u32, u32)]) -> Vec<u8> {
    // pc_madt_cpu_entry: type 0 below 255, type 9 above; then the I/O
    // APIC, IRQ0→GSI2, the PCI IRQs 5/9/10/11 level/high, and LINT1 NMI.
    let mut e: Vec<Vec<u8>> = Vec::new();
    for (uid, &(apic, _)) in cpus.iter().enumerate() {
        if apic < 255 {
            e.push(m_lapic(uid as u8, apic as u8, 1));
        } else {
            e.push(m_x2apic(apic, 1, uid as u32));
        }
    }
    e.push(crate::testutil::m_ioapic(0, 0xFEC0_0000, 0));
    e.push(m_iso(0, 2, 0));
    for irq in [5, 9, 10, 11] {
        e.push(m_iso(irq, u32::from(irq), 0xD));
    }
    e.push(m_lapic_nmi(0xFF, 0, 1));
    table(b"APIC", 1, &madt_body(0xFEE0_0000, 1, &e))
}

fn srat_for(m: &Machine) -> Option<Vec<u8>> {
    let node_mem: Vec<u64> = if m.node_mem.is_empty() && m.hotplug.is_some() {
        vec![GIB] // QEMU's implicit single node
    } else {
        m.node_mem.clone()
    };
    if node_mem.is_empty() {
        return None;
    }
    let mut e: Vec<Vec<u8>> = Vec::new();
    for &(apic, node) in &m.cpus {
        if apic < 255 {
            e.push(s_lapic(apic as u8, node, 1));
        } else {
            e.push(s_x2apic(apic, node, 1));
        }
    }
    // build_srat: per node, cut out the 640K hole and the PCI hole.
    let below_4g = node_mem.iter().sum::<u64>().min(2 * GIB);
    let mut mems = 0;
    let mut next = 0u64;
    for (node, &len) in node_mem.iter().enumerate() {
        let node = node as u32;
        let mut base = next;
        let mut len = len;
        next = base + len;
        if base <= 0xA_0000 && next > 0xA_0000 {
            e.push(s_mem(base, 0xA_0000 - base, node, 1));
            mems += 1;
            base = 0x10_0000;
            len = next - base;
        }
        if base <= below_4g && next > below_4g {
            e.push(s_mem(base, below_4g - base, node, 1));
            mems += 1;
            base = 4 * GIB;
            len = next - below_4g;
            next = base + len;
        }
        if len > 0 {
            e.push(s_mem(base, len, node, 1));
            mems += 1;
        }
    }
    for _ in mems..node_mem.len() + 2 {
        e.push(s_mem(0, 0, 0, 0));
    }
    if let Some((base, size)) = m.hotplug {
        e.push(s_mem(base, size, node_mem.len() as u32 - 1, 0b11));
    }
    Some(table(b"SRAT", 1, &srat_body(&e)))
}

pub(crate) fn build(m: &Machine) -> Built {
    let mut mem = TestMem::default();
    let mut at = TABLES_AT;
    let mut place = |mem: &mut TestMem, t: &[u8]| {
        let here = at;
        mem.put(here, t);
        at += (t.len() as u64 + 63) & !63;
        here
    };
    let fadt = place(&mut mem, &table(b"FACP", 3, &q35_fadt_body(true)));
    let madt_at = place(&mut mem, &madt_for(&m.cpus));
    let hpet = place(&mut mem, &table(b"HPET", 1, &[0u8; 20]));
    let srat_at = srat_for(m).map(|t| place(&mut mem, &t));
    let mut ptrs = vec![fadt, madt_at, hpet];
    ptrs.extend(srat_at);
    if m.xsdt {
        let body: Vec<u8> = ptrs.iter().flat_map(|p| p.to_le_bytes()).collect();
        let x = place(&mut mem, &table(b"XSDT", 1, &body));
        mem.put(RSDP_AT, &rsdp_v2(0, x));
    } else {
        let body: Vec<u8> = ptrs
            .iter()
            .flat_map(|&p| (p as u32).to_le_bytes())
            .collect();
        let r = place(&mut mem, &table(b"RSDT", 1, &body));
        mem.put(RSDP_AT, &rsdp_v1(r as u32));
    }
    Built {
        mem,
        madt_at,
        srat_at,
    }
}

pub(crate) fn run(mem: &TestMem, cpuid: &impl crate::Cpuid) -> Discovery {
    discover(mem, Some(PhysAddr(RSDP_AT)), E820_1G, IMAGE, cpuid)
}

/// One CPU, no `-numa`, and the device-memory window `hotplug`.
fn one_cpu(hotplug: Option<(u64, u64)>) -> Built {
    build(&Machine {
        cpus: vec![(0, 0)],
        node_mem: vec![],
        hotplug,
        xsdt: false,
    })
}

fn two_node_machine(xsdt: bool) -> Machine {
    Machine {
        cpus: vec![(0, 0), (1, 0), (2, 1), (3, 1)],
        node_mem: vec![GIB / 2, GIB / 2],
        hotplug: None,
        xsdt,
    }
}

pub(crate) fn cpu(apic_id: u32, package: u32, node: u32) -> CpuInfo {
    CpuInfo {
        apic_id,
        package,
        node,
        enabled: true,
    }
}

pub(crate) fn assert_round_trips(d: &Discovery) {
    let mut buf = [0u8; ENCODED_MAX];
    let n = encode(&d.record, &mut buf).expect("a built record is valid");
    assert_eq!(decode(&buf[..n]).unwrap(), d.record);
}

/// (a) `-smp 4,sockets=2 -numa node,mem=512M,cpus=0-1 -numa
/// node,mem=512M,cpus=2-3`: two nodes, two packages.
#[test]
fn qemu_two_nodes_two_packages() {
    for xsdt in [false, true] {
        let b = build(&two_node_machine(xsdt));
        let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 2, 0));
        assert!(d.report.is_clean(), "{}", d.report);
        let r = &d.record;
        assert_eq!(
            r.cpus(),
            [cpu(0, 0, 0), cpu(1, 0, 0), cpu(2, 1, 1), cpu(3, 1, 1)]
        );
        assert_eq!(r.package_count, 2);
        assert_eq!(r.nodes().len(), 2);
        assert_eq!(r.nodes()[1].proximity, 1);
        let both = NodeFlags(NodeFlags::HAS_CPUS.0 | NodeFlags::HAS_RAM.0);
        assert!(r.nodes().iter().all(|n| n.flags == both));
        // The second E820 range is split at the node boundary (512 MiB).
        let ram = |base, size, node| RamRange { base, size, node };
        assert_eq!(
            r.ram(),
            [
                ram(0, 0x9_FC00, 0),
                ram(0x10_0000, 0x2000_0000 - 0x10_0000, 0),
                ram(0x2000_0000, 0x3FFE_0000 - 0x2000_0000, 1),
            ]
        );
        assert_eq!(r.image().len(), 2);
        assert_eq!(r.hotplug, None);
        assert_eq!(
            r.flags,
            RecordFlags(RecordFlags::SRAT_PRESENT.0 | RecordFlags::MADT_PRESENT.0)
        );
        let f = d.fadt.expect("FADT");
        assert_eq!((f.sci_int, f.gpe0.unwrap().address), (9, 0x620));
        assert_round_trips(&d);
    }
}

/// (b) `-smp 1`, no NUMA: no SRAT, one node, one CPU.
#[test]
fn qemu_single_cpu_without_numa() {
    let b = build(&Machine {
        cpus: vec![(0, 0)],
        node_mem: vec![],
        hotplug: None,
        xsdt: false,
    });
    assert!(b.srat_at.is_none());
    let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 1, 0));
    assert!(d.report.is_clean(), "{}", d.report);
    let r = &d.record;
    assert_eq!(r.cpus(), [cpu(0, 0, 0)]);
    assert_eq!(
        (r.package_count, r.nodes().len(), r.nodes()[0].proximity),
        (1, 1, 0)
    );
    assert_eq!(r.ram().len(), 2);
    assert!(r.ram().iter().all(|x| x.node == 0));
    assert_eq!(r.flags, RecordFlags::MADT_PRESENT);
    assert_round_trips(&d);
}

/// (c) `-m 1G,slots=4,maxmem=8G`: QEMU's implicit node and one hot-plug
/// entry covering device memory from 4 GiB (7 GiB + 1 GiB per slot).
#[test]
fn qemu_hotplug_window_at_4g() {
    let window = (4 * GIB, 11 * GIB);
    let d = run(
        &one_cpu(Some(window)).mem,
        &crate::testutil::qemu_cpuid(1, 1, 0),
    );
    assert!(d.report.is_clean(), "{}", d.report);
    assert_eq!(
        d.record.hotplug,
        Some(HotplugWindow {
            base: 4 * GIB,
            size: 11 * GIB,
            node: 0
        })
    );
    assert!(d.record.nodes()[0].flags.contains(NodeFlags::HAS_HOTPLUG));
    assert!(d.record.flags.contains(RecordFlags::SRAT_PRESENT));
    assert_round_trips(&d);

    // With two nodes the window belongs to the last one.
    let mut m = two_node_machine(false);
    m.hotplug = Some(window);
    let d = run(&build(&m).mem, &crate::testutil::qemu_cpuid(1, 2, 0));
    assert_eq!(d.record.hotplug.unwrap().node, 1);
    assert!(d.record.nodes()[1].flags.contains(NodeFlags::HAS_HOTPLUG));
    assert!(!d.record.nodes()[0].flags.contains(NodeFlags::HAS_HOTPLUG));
}

/// Large machines use x2APIC entries (ids ≥ 255) in MADT and SRAT, and a
/// MADT with more CPUs than the record holds is cut, flagged, reported,
/// and refused by name.
#[test]
fn x2apic_entries_and_cpu_overflow() {
    let total = MAX_CPUS as u32 + 44;
    let half = total / 2;
    let cpus: Vec<(u32, u32)> = (0..total)
        .map(|i| (if i < 200 { i } else { 0x1000 + i }, i / half))
        .collect();
    let b = build(&Machine {
        cpus,
        node_mem: vec![GIB / 2, GIB / 2],
        hotplug: None,
        xsdt: true,
    });
    let d = run(&b.mem, &crate::testutil::qemu_cpuid(2, 64, 0));
    let r = &d.record;
    assert_eq!(r.cpus().len(), MAX_CPUS);
    assert_eq!(d.report.cpus_dropped, 44);
    assert!(r.flags.contains(RecordFlags::TRUNCATED));
    assert_eq!(r.cpus()[255], cpu(0x1000 + 255, (0x1000 + 255) >> 7, 0));
    assert_eq!(r.cpus()[half as usize - 1].node, 0);
    assert_eq!(r.cpus()[half as usize].node, 1);
    assert!(!d.report.is_clean());
    let refused = d
        .report
        .exceeded(r)
        .expect("a machine beyond MAX_CPUS is refused");
    assert_eq!(
        refused,
        abi::limits::Exceeded {
            limit: abi::limits::Limit::Cpus,
            found: total as usize
        }
    );
    let msg = refused.to_string();
    assert!(
        msg.contains(&format!(
            "has {total} logical CPUs, more than MAX_CPUS = {MAX_CPUS}"
        )),
        "{msg}"
    );
    assert_round_trips(&d);
}

fn corrupt(mem: &mut TestMem, at: u64) {
    let mut b = [0u8; 1];
    assert!(crate::PhysRead::read(mem, at, &mut b));
    mem.poke(at, b[0] ^ 0x40);
}

fn assert_boot_cpu_fallback(d: &Discovery, boot: u32) {
    assert_eq!(
        d.record.cpus(),
        [cpu(boot, boot >> 1, d.record.cpus()[0].node)]
    );
    assert!(d.record.flags.contains(RecordFlags::FALLBACK_USED));
    assert!(!d.record.flags.contains(RecordFlags::MADT_PRESENT));
    assert!(d.report.madt.is_some());
    assert_round_trips(d);
}

#[test]
fn bad_madt_checksum_falls_back_to_boot_cpu() {
    let mut b = build(&two_node_machine(false));
    corrupt(&mut b.mem, b.madt_at + 50);
    let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 2, 2));
    assert!(matches!(
        d.report.madt,
        Some(AcpiError::TableChecksum {
            sig: Signature::MADT,
            ..
        })
    ));
    assert_boot_cpu_fallback(&d, 2);
    // The SRAT still places the boot CPU (APIC 2) in node 1.
    assert_eq!(d.record.cpus()[0].node, 1);
    assert!(format!("{}", d.report).contains("APIC at 0x3ffe0100: bad checksum"));
}

#[test]
fn truncated_madt_and_length_lies_fall_back() {
    // Truncated: the table's bytes end before its length (unmapped tail).
    let mut b = build(&two_node_machine(false));
    b.mem.unmap(b.madt_at + 60, 4);
    let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 2, 0));
    assert!(matches!(d.report.madt, Some(AcpiError::Unreadable { .. })));
    assert_boot_cpu_fallback(&d, 0);

    // Length claims 2^32-1 bytes: rejected without walking it.
    let mut b = build(&two_node_machine(false));
    for (i, v) in u32::MAX.to_le_bytes().iter().enumerate() {
        b.mem.poke(b.madt_at + 4 + i as u64, *v);
    }
    let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 2, 0));
    assert!(matches!(
        d.report.madt,
        Some(AcpiError::TableTooLong { .. })
    ));
    assert_boot_cpu_fallback(&d, 0);
}

#[test]
fn madt_without_processors_falls_back() {
    let mut mem = TestMem::default();
    let madt = table(b"APIC", 1, &madt_body(0xFEE0_0000, 1, &[]));
    mem.put(0x1000, &madt);
    mem.put(0x2000, &table(b"RSDT", 1, &0x1000u32.to_le_bytes()));
    mem.put(RSDP_AT, &rsdp_v1(0x2000));
    let d = run(&mem, &crate::testutil::qemu_cpuid(1, 1, 0));
    assert_eq!(
        d.report.madt,
        Some(AcpiError::NoEntries {
            sig: Signature::MADT
        })
    );
    assert_boot_cpu_fallback(&d, 0);
    // No FADT in this firmware: reported, not fatal.
    assert!(d.fadt.is_none());
    assert_eq!(
        d.report.fadt,
        Some(AcpiError::TableNotFound {
            sig: Signature::FADT
        })
    );
}

#[test]
fn bad_srat_falls_back_to_one_node() {
    // An SRAT entry of length 0 (must not loop), then a bad checksum.
    for poke in [1u64, 9] {
        let mut b = build(&two_node_machine(false));
        let srat = b.srat_at.unwrap();
        if poke == 1 {
            // Length byte of the first entry (offset 48 + 1) → 0, and fix
            // the checksum so only the entry is wrong.
            let mut t = [0u8; 36];
            assert!(crate::PhysRead::read(&b.mem, srat, &mut t));
            let len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]) as usize;
            let mut all = vec![0u8; len];
            assert!(crate::PhysRead::read(&b.mem, srat, &mut all));
            all[49] = 0;
            crate::testutil::fix_table_checksum(&mut all);
            b.mem.put(srat, &all);
        } else {
            corrupt(&mut b.mem, srat + 60);
        }
        let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 2, 0));
        let e = d.report.srat.expect("SRAT error reported");
        assert!(
            matches!(
                e,
                AcpiError::EntryTooShort { len: 0, .. } | AcpiError::TableChecksum { .. }
            ),
            "{e:?}"
        );
        let r = &d.record;
        assert_eq!(r.nodes().len(), 1);
        assert!(r.cpus().iter().all(|c| c.node == 0));
        assert_eq!(r.cpus().len(), 4, "the MADT is still used");
        assert_eq!(r.ram().len(), 2, "no split without an SRAT");
        assert!(r.flags.contains(RecordFlags::FALLBACK_USED));
        assert!(!r.flags.contains(RecordFlags::SRAT_PRESENT));
        assert_eq!(r.package_count, 2);
        assert_round_trips(&d);
    }
}

#[test]
fn rsdp_not_found_gives_full_fallback() {
    let b = build(&two_node_machine(false));
    let mut mem = b.mem;
    mem.unmap(RSDP_AT, 20);
    // No hint and nothing in the BIOS areas.
    let d = discover(
        &mem,
        None,
        E820_1G,
        IMAGE,
        &crate::testutil::qemu_cpuid(1, 2, 3),
    );
    assert_eq!(d.report.madt, Some(AcpiError::RsdpNotFound));
    assert_eq!(d.report.srat, Some(AcpiError::RsdpNotFound));
    assert_eq!(d.report.fadt, Some(AcpiError::RsdpNotFound));
    assert_eq!(d.record.nodes().len(), 1);
    assert_eq!(d.record.ram().len(), 2);
    assert_boot_cpu_fallback(&d, 3);
    assert!(format!("{}", d.report).contains("no ACPI RSDP found"));
}

#[test]
fn boot_cpu_missing_from_madt_is_added() {
    let b = build(&two_node_machine(false));
    // CPUID says we are APIC 7, which the MADT does not list.
    let d = run(&b.mem, &crate::testutil::qemu_cpuid(1, 2, 7));
    assert!(d.report.boot_cpu_added);
    assert!(d.record.flags.contains(RecordFlags::BOOT_CPU_ADDED));
    assert_eq!(d.record.cpus().len(), 5);
    assert_eq!(d.record.cpus()[4], cpu(7, 3, 0));
    assert_eq!(d.record.package_count, 3);
}

#[test]
fn ram_outside_srat_goes_to_node_0_and_capacity_is_respected() {
    let b = build(&two_node_machine(false));
    // A range above every SRAT entry, one straddling the 4 GiB gap, one
    // that wraps, and many more than fit.
    let mut ram = vec![(8 * GIB, GIB), (0x3000_0000, 0x2000_0000), (u64::MAX, 2)];
    let extra = MAX_RAM_RANGES as u64 + 36;
    ram.extend((0..extra).map(|i| (16 * GIB + i * 0x1000_0000, 0x1000)));
    let d = discover(
        &b.mem,
        Some(PhysAddr(RSDP_AT)),
        ram.iter().copied(),
        IMAGE,
        &crate::testutil::qemu_cpuid(1, 2, 0),
    );
    let r = &d.record;
    assert_eq!(
        r.ram()[0],
        RamRange {
            base: 8 * GIB,
            size: GIB,
            node: 0
        }
    );
    assert_eq!(
        r.ram()[1],
        RamRange {
            base: 0x3000_0000,
            size: 0x1000_0000,
            node: 1
        }
    );
    assert_eq!(
        r.ram()[2],
        RamRange {
            base: 0x4000_0000,
            size: 0x1000_0000,
            node: 0
        }
    );
    assert_eq!(r.ram().len(), MAX_RAM_RANGES);
    assert_eq!(d.report.ram_rejected, 1);
    assert_eq!(
        u64::from(d.report.ram_dropped),
        extra - (MAX_RAM_RANGES as u64 - 3)
    );
    assert!(r.flags.contains(RecordFlags::TRUNCATED));
    let refused = d.report.exceeded(r).expect("refused");
    assert_eq!(refused.limit, abi::limits::Limit::RamRanges);
    assert!(
        refused.to_string().contains("MAX_RAM_RANGES = 128"),
        "{refused}"
    );
    assert_round_trips(&d);
}

/// A MADT with tens of thousands of processors against a large SRAT: the
/// walk is linear (SRAT lookups stop at capacity) and the excess reported.
#[test]
fn huge_madt_and_srat_stay_bounded() {
    let n = 20_000u32;
    let madt: Vec<Vec<u8>> = (0..n).map(|i| m_x2apic(0x1000 + i, 1, i)).collect();
    let srat: Vec<Vec<u8>> = (0..1000).map(|i| s_x2apic(0x1000 + i, i % 3, 1)).collect();
    let mut mem = TestMem::default();
    mem.put(
        0x10_0000,
        &table(b"APIC", 1, &madt_body(0xFEE0_0000, 0, &madt)),
    );
    mem.put(0x80_0000, &table(b"SRAT", 1, &srat_body(&srat)));
    let ptrs: Vec<u8> = [0x10_0000u32, 0x80_0000]
        .iter()
        .flat_map(|p| p.to_le_bytes())
        .collect();
    mem.put(0x2000, &table(b"RSDT", 1, &ptrs));
    mem.put(RSDP_AT, &rsdp_v1(0x2000));
    let start = std::time::Instant::now();
    let d = run(&mem, &crate::testutil::qemu_cpuid(1, 1, 0x1000));
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    assert_eq!(d.record.cpus().len(), MAX_CPUS);
    assert_eq!(d.report.cpus_dropped, n - MAX_CPUS as u32);
    assert_eq!(d.record.nodes().len(), 3);
    assert_eq!(d.record.cpus()[5].node, 2);
    assert!(d.record.flags.contains(RecordFlags::TRUNCATED));
}

/// A hot-plug window is refused where onlined memory would be device registers: over the
/// APIC and firmware MMIO below 4 GiB (the MADT's I/O APIC and local APIC), or over the first
/// MiB. The refusal is reported, and no window is recorded.
#[test]
fn a_hot_plug_window_over_mmio_or_low_memory_is_refused() {
    for window in [
        (0xFEC0_0000, 0x140_0000),
        (0xA_0000, 0x6_0000),
        (0xFEE0_0000, 0x1000),
    ] {
        let d = run(
            &one_cpu(Some(window)).mem,
            &crate::testutil::qemu_cpuid(1, 1, 0),
        );
        assert_eq!(d.record.hotplug, None, "{window:x?}");
        assert_eq!(d.report.hotplug_refused, 1, "{window:x?}");
        assert!(!d.report.is_clean());
        assert!(d.report.to_string().contains("hot-plug windows over MMIO"));
    }
}

/// A memory map that lists RAM twice (wholly or in part) records each byte once: the later
/// entry is clipped to what the earlier ones left, and the overlap is reported. A byte count
/// over the record cannot overflow however the entries lie.
#[test]
fn overlapping_boot_ram_is_recorded_once() {
    let b = one_cpu(None);
    let cpuid = crate::testutil::qemu_cpuid(1, 1, 0);
    let big = 1u64 << 63;
    let d = discover(
        &b.mem,
        Some(PhysAddr(RSDP_AT)),
        [(0x10_0000, big), (0x10_0000, big)],
        IMAGE,
        &cpuid,
    );
    let sizes: Vec<(u64, u64)> = d.record.ram().iter().map(|r| (r.base, r.size)).collect();
    assert_eq!(sizes, [(0x10_0000, big)]);
    assert_eq!(d.report.ram_overlapping, 1);
    let d = discover(
        &b.mem,
        Some(PhysAddr(RSDP_AT)),
        [(0, 2 * GIB), (GIB, 2 * GIB), (GIB / 2, GIB / 4)],
        IMAGE,
        &cpuid,
    );
    let sizes: Vec<(u64, u64)> = d.record.ram().iter().map(|r| (r.base, r.size)).collect();
    assert_eq!(sizes, [(0, 2 * GIB), (2 * GIB, GIB)]);
    assert_eq!(d.report.ram_overlapping, 2);
    assert!(d
        .report
        .to_string()
        .contains("overlapping RAM ranges clipped"));
}
