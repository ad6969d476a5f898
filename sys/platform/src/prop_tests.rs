//! Property tests: no firmware table and no boot memory map panics the parsers.
//!
//! Pattern: build a small physical memory out of generated pieces — an RSDP (v1 or v2), an RSDT
//! or XSDT, and MADT/SRAT/FADT-shaped tables with random entry types, entry lengths, entry
//! counts, declared lengths and (mostly valid) checksums, plus random pointers into nowhere —
//! and run everything the kernel runs on it: [`crate::discover`] with a random E820 list, image
//! list and CPUID, each table's own iterators, and the record's encode/decode round trip. The
//! properties are "returns" (an `Err`, a fallback or a truncated record are all fine), no APIC
//! id recorded twice, and skipped entries always reported. Entries of known types come at their
//! spec length, one byte short or a few bytes long (payload to match), or with a random length.
//!
//! A last property checks results, not just survival: well-formed type 0 / type 9 processor
//! lists give exactly the usable ids, once each.
//!
//! Case count: `TDXHOST_PROPTEST_CASES` (default 10,000 per property, as for the planner property
//! in `build/tdx-tools`; the workspace builds this crate and proptest optimized even in test
//! builds, which keeps that to seconds).

use std::vec::Vec;

use abi::platform::{decode, encode, RecordFlags, ENCODED_MAX};
use proptest::prelude::{any, prop, prop_oneof, proptest, Just, ProptestConfig, Strategy};
use proptest::test_runner::RngAlgorithm;

use crate::acpi::{find_rsdp, RootTable};
use crate::fadt::Fadt;
use crate::madt::Madt;
use crate::srat::Srat;
use crate::testutil::{
    self, fix_rsdp_checksums, fix_table_checksum, m_lapic, m_x2apic, madt_body, qemu_cpuid,
    rsdp_v1, TestMem,
};
use crate::{discover, ApicId, PhysAddr, PhysRead};

/// Cases per property: `TDXHOST_PROPTEST_CASES` or 10,000.
pub(crate) fn cases() -> u32 {
    std::env::var("TDXHOST_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Memory made of a few byte runs; everything else is unreadable.
struct RunMem {
    runs: Vec<(u64, Vec<u8>)>,
}

impl PhysRead for RunMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        let Some(end) = pa.checked_add(buf.len() as u64) else {
            return false;
        };
        for (base, bytes) in &self.runs {
            let run_end = base + bytes.len() as u64;
            if *base <= pa && end <= run_end {
                let off = (pa - base) as usize;
                buf.copy_from_slice(&bytes[off..off + buf.len()]);
                return true;
            }
        }
        false
    }
}

/// Where the generated pieces live (disjoint, below 4 GiB like firmware tables).
const RSDP_AT: u64 = 0xE_0000;
const ROOT_AT: u64 = 0x1000_0000;
const TABLE_AT: [u64; 3] = [0x2000_0000, 0x3000_0000, 0x4000_0000];

/// One generated subtable: type, declared length, payload (may disagree with the length).
#[derive(Clone, Debug)]
struct Entry {
    kind: u8,
    len: u8,
    payload: Vec<u8>,
}

/// A subtable of a known type: mostly its spec length; sometimes one byte short or a few
/// bytes long with a payload to match (the walk stays in step, so the entry is skipped or
/// decoded from its prefix); sometimes a random declared length over the spec payload.
fn entry(known: &'static [(u8, u8)]) -> impl Strategy<Value = Entry> {
    let typed = prop::sample::select(known).prop_flat_map(|(kind, len)| {
        prop_oneof![
            6 => Just((len, len)),
            1 => Just((len.saturating_sub(1), len.saturating_sub(1))),
            1 => (1u8..8).prop_map(move |extra| (len.saturating_add(extra), len.saturating_add(extra))),
            1 => any::<u8>().prop_map(move |declared| (declared, len)),
        ]
        .prop_flat_map(move |(declared, body)| {
            (
                Just(kind),
                Just(declared),
                prop::collection::vec(any::<u8>(), usize::from(body.saturating_sub(2))),
            )
        })
    });
    let any_entry = (
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..40),
    );
    prop_oneof![4 => typed, 1 => any_entry].prop_map(|(kind, len, payload)| Entry {
        kind,
        len,
        payload,
    })
}

/// A table: signature, revision, fixed body, entries, a declared-length override and whether
/// the checksum is fixed.
#[derive(Clone, Debug)]
struct Table {
    sig: [u8; 4],
    revision: u8,
    fixed: Vec<u8>,
    entries: Vec<Entry>,
    length: Option<u32>,
    good_checksum: bool,
}

impl Table {
    fn bytes(&self) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&self.sig);
        t.extend_from_slice(&[0; 4]);
        t.push(self.revision);
        t.push(0);
        t.extend_from_slice(b"PROPTS");
        t.extend_from_slice(b"PROPTEST");
        t.extend_from_slice(&[1, 0, 0, 0]);
        t.extend_from_slice(b"PROP");
        t.extend_from_slice(&[1, 0, 0, 0]);
        t.extend_from_slice(&self.fixed);
        for e in &self.entries {
            t.push(e.kind);
            t.push(e.len);
            t.extend_from_slice(&e.payload);
        }
        let len = self.length.unwrap_or(t.len() as u32);
        t[4..8].copy_from_slice(&len.to_le_bytes());
        if self.good_checksum {
            fix_table_checksum(&mut t);
        }
        t
    }
}

/// MADT entry types and lengths (ACPI 6.5 §5.2.12): local APIC, I/O APIC, source override,
/// local APIC NMI, LAPIC address override, local x2APIC, local x2APIC NMI, and an unknown type.
const MADT_KINDS: &[(u8, u8)] = &[
    (0, 8),
    (1, 12),
    (2, 10),
    (4, 6),
    (5, 12),
    (9, 16),
    (10, 12),
    (0x7f, 2),
];
/// SRAT entry types and lengths (§5.2.16): local APIC, memory and local x2APIC affinity, and
/// generic initiator affinity (not decoded).
const SRAT_KINDS: &[(u8, u8)] = &[(0, 16), (1, 40), (2, 24), (5, 32)];

fn table(
    sig: &'static [u8; 4],
    fixed: usize,
    kinds: &'static [(u8, u8)],
) -> impl Strategy<Value = Table> {
    (
        prop_oneof![6 => Just(*sig), 1 => any::<[u8; 4]>()],
        any::<u8>(),
        prop::collection::vec(any::<u8>(), fixed),
        prop::collection::vec(entry(kinds), 0..24),
        prop_oneof![
            6 => Just(None),
            1 => any::<u32>().prop_map(Some),
            1 => (0u32..400).prop_map(Some),
        ],
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(sig, revision, fixed, entries, length, good_checksum)| Table {
                sig,
                revision,
                fixed,
                entries,
                length,
                good_checksum,
            },
        )
}

/// An FADT: a body of random length (the parser reads up to 232 bytes of it).
fn fadt() -> impl Strategy<Value = Table> {
    prop_oneof![Just(0usize), 60usize..90, 80usize..200, 196usize..260]
        .prop_flat_map(|n| table(b"FACP", n, &[(0, 2)]))
        .prop_map(|mut t| {
            t.entries.clear();
            t
        })
}

/// The whole firmware picture.
#[derive(Clone, Debug)]
struct Firmware {
    rsdp_v2: bool,
    rsdp_len: Option<u32>,
    rsdp_good: bool,
    /// Extra root entries pointing nowhere (or at random places).
    stray: Vec<u64>,
    root_length: Option<u32>,
    root_good: bool,
    madt: Table,
    srat: Table,
    fadt: Table,
    hint: bool,
}

fn firmware() -> impl Strategy<Value = Firmware> {
    (
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => any::<u32>().prop_map(Some)],
        prop::bool::weighted(0.9),
        prop::collection::vec(any::<u64>(), 0..4),
        prop_oneof![6 => Just(None), 1 => any::<u32>().prop_map(Some), 1 => (0u32..80).prop_map(Some)],
        prop::bool::weighted(0.9),
        table(b"APIC", 8, MADT_KINDS),
        table(b"SRAT", 12, SRAT_KINDS),
        fadt(),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(rsdp_v2, rsdp_len, rsdp_good, stray, root_length, root_good, madt, srat, fadt, hint)| {
                Firmware {
                    rsdp_v2,
                    rsdp_len,
                    rsdp_good,
                    stray,
                    root_length,
                    root_good,
                    madt,
                    srat,
                    fadt,
                    hint,
                }
            },
        )
}

impl Firmware {
    fn memory(&self) -> RunMem {
        let mut runs = Vec::new();
        // RSDP.
        let mut r = Vec::new();
        r.extend_from_slice(b"RSD PTR ");
        r.push(0);
        r.extend_from_slice(b"PROPTS");
        r.push(if self.rsdp_v2 { 2 } else { 0 });
        r.extend_from_slice(&(ROOT_AT as u32).to_le_bytes());
        if self.rsdp_v2 {
            r.extend_from_slice(&self.rsdp_len.unwrap_or(36).to_le_bytes());
            r.extend_from_slice(&ROOT_AT.to_le_bytes());
            r.extend_from_slice(&[0; 4]);
        }
        if self.rsdp_good {
            fix_rsdp_checksums(&mut r);
        }
        runs.push((RSDP_AT, r));
        // Root table: XSDT with 64-bit entries for v2, RSDT with 32-bit ones for v1.
        let mut body = Vec::new();
        for &at in TABLE_AT.iter().chain(&self.stray) {
            if self.rsdp_v2 {
                body.extend_from_slice(&at.to_le_bytes());
            } else {
                body.extend_from_slice(&(at as u32).to_le_bytes());
            }
        }
        let root = Table {
            sig: if self.rsdp_v2 { *b"XSDT" } else { *b"RSDT" },
            revision: 1,
            fixed: body,
            entries: Vec::new(),
            length: self.root_length,
            good_checksum: self.root_good,
        };
        runs.push((ROOT_AT, root.bytes()));
        for (at, t) in TABLE_AT.iter().zip([&self.madt, &self.srat, &self.fadt]) {
            runs.push((*at, t.bytes()));
        }
        RunMem { runs }
    }
}

/// A CPUID that answers every leaf with values derived from `seed`.
fn cpuid(seed: u64) -> impl Fn(u32, u32) -> (u32, u32, u32, u32) {
    move |leaf, sub| {
        let x = seed
            ^ u64::from(leaf).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(sub).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let y = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        ((y >> 32) as u32, y as u32, (x >> 32) as u32, x as u32)
    }
}

/// Boot memory maps: anything, including wrapping entries and ones near 2^64.
fn boot_map() -> impl Strategy<Value = Vec<(u64, u64)>> {
    let entry = prop_oneof![
        3 => (0u64..(1 << 40), 0u64..(1 << 36)),
        1 => (any::<u64>(), any::<u64>()),
        1 => (u64::MAX - (1 << 32)..=u64::MAX, 0u64..(1 << 33)),
        1 => (0u64..(1 << 20), Just(0u64)),
    ];
    prop::collection::vec(entry, 0..40)
}

/// Everything the kernel's boot path runs on a firmware picture.
fn exercise(
    mem: &RunMem,
    hint: Option<PhysAddr>,
    ram: &[(u64, u64)],
    image: &[(u64, u64)],
    seed: u64,
) {
    let d = discover(
        mem,
        hint,
        ram.iter().copied(),
        image.iter().copied(),
        &cpuid(seed),
    );
    for r in d.record.ram() {
        assert!(
            r.base.checked_add(r.size).is_some(),
            "recorded RAM wraps: {r:?}"
        );
    }
    let cpus = d.record.cpus();
    for (i, c) in cpus.iter().enumerate() {
        assert!(
            cpus[..i].iter().all(|p| p.apic_id != c.apic_id),
            "APIC id {:#x} recorded twice",
            c.apic_id
        );
    }
    if d.record.flags.contains(RecordFlags::ENTRIES_SKIPPED) {
        assert!(!d.report.is_clean(), "skipped entries must be reported");
    }
    let mut buf = std::vec![0u8; ENCODED_MAX];
    if let Ok(n) = encode(&d.record, &mut buf) {
        let back = decode(&buf[..n]).expect("a record we encoded decodes");
        assert_eq!(back, d.record);
    }
    // The tables' own iterators, through the hint only: `discover` above already ran the
    // 0xE0000 scan, which is the slow part of a debug-build case.
    let Some(at) = hint else { return };
    let Ok(root) = find_rsdp(mem, Some(at)).and_then(|r| RootTable::from_rsdp(mem, &r)) else {
        return;
    };
    for i in 0..root.len().min(64) {
        let _ = root.entry(mem, i);
    }
    if let Ok(m) = Madt::find(mem, &root) {
        m.entries(mem).take(4096).for_each(drop);
        m.processors(mem).take(4096).for_each(drop);
    }
    if let Ok(s) = Srat::find(mem, &root) {
        s.entries(mem).take(4096).for_each(drop);
        s.memory(mem).take(4096).for_each(|m| {
            let _ = (m.end(), m.contains(m.base.0));
        });
        s.cpus(mem).take(4096).for_each(drop);
        let _ = s.cpu_domain(mem, ApicId(seed as u32));
    }
    let _ = Fadt::find(mem, &root);
}

proptest! {
    // XorShift: the default ChaCha generator dominates a debug-build case.
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    /// (a) Random RSDP/RSDT/XSDT/MADT/SRAT/FADT bytes never panic the parsers.
    #[test]
    fn random_acpi_tables_never_panic(fw in firmware(), ram in boot_map(), seed in any::<u64>()) {
        let mem = fw.memory();
        let hint = fw.hint.then_some(PhysAddr(RSDP_AT));
        exercise(&mem, hint, &ram, &[(0x10_0000, 0x20_0000)], seed);
    }

    /// (a) Raw random bytes where the tables are expected (no structure at all).
    #[test]
    fn random_bytes_as_tables_never_panic(
        rsdp in prop::collection::vec(any::<u8>(), 0..64),
        root in prop::collection::vec(any::<u8>(), 0..128),
        tables in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 3),
        fix in any::<bool>(),
    ) {
        let mut rsdp = rsdp;
        let mut root = root;
        let mut tables = tables;
        if fix {
            if rsdp.len() >= 20 { fix_rsdp_checksums(&mut rsdp); }
            if root.len() >= 36 { fix_table_checksum(&mut root); }
            for t in &mut tables { if t.len() >= 36 { fix_table_checksum(t); } }
        }
        let mut runs = std::vec![(RSDP_AT, rsdp), (ROOT_AT, root)];
        runs.extend(TABLE_AT.iter().copied().zip(tables));
        let mem = RunMem { runs };
        exercise(&mem, Some(PhysAddr(RSDP_AT)), &[(0, 1 << 30)], &[], 0);
    }

    /// (b) Random boot memory maps and image lists, with sane tables, never panic the record
    /// builder, and every recorded RAM range is a real, non-wrapping range.
    #[test]
    fn random_boot_memory_maps_never_panic(
        ram in boot_map(),
        image in boot_map(),
        fw in firmware(),
    ) {
        let mem = fw.memory();
        exercise(&mem, Some(PhysAddr(RSDP_AT)), &ram, &image, 7);
    }

    /// (c) For well-formed processor entries of both widths (type 0 and type 9, ids above 255,
    /// duplicates across the two types, "no processor" ids, every flag combination), the record
    /// holds each usable id exactly once, in table order, enabled if any of its entries is.
    #[test]
    fn processor_entries_of_both_widths_give_each_usable_id_once(
        procs in prop::collection::vec(
            (any::<bool>(), prop_oneof![
                4 => 0u32..700,
                1 => Just(0xFF),
                1 => Just(u32::MAX),
                1 => any::<u32>(),
            ], 0u32..4),
            0..64,
        ),
    ) {
        // The boot CPU (id 0) comes first, so the MADT always has an enabled processor.
        let mut entries = std::vec![m_lapic(0, 0, 1)];
        let mut want: Vec<(u32, bool)> = std::vec![(0, true)];
        for (i, &(x2apic, id, flags)) in procs.iter().enumerate() {
            let uid = i as u32 + 1;
            let (entry, marker) = if x2apic || id > 0xFF {
                (m_x2apic(id, flags, uid), u32::MAX)
            } else {
                (m_lapic(uid as u8, id as u8, flags), 0xFF)
            };
            entries.push(entry);
            let enabled = flags & 1 != 0;
            let usable = (enabled || flags & 2 != 0) && id != marker;
            if !usable {
                continue;
            }
            match want.iter_mut().find(|(w, _)| *w == id) {
                Some(w) => w.1 |= enabled,
                None => want.push((id, enabled)),
            }
        }
        let mut mem = TestMem::default();
        mem.put(0x10_0000, &testutil::table(b"APIC", 5, &madt_body(0xFEE0_0000, 0, &entries)));
        mem.put(0x2000, &testutil::table(b"RSDT", 1, &0x10_0000u32.to_le_bytes()));
        mem.put(RSDP_AT, &rsdp_v1(0x2000));
        let d = discover(&mem, Some(PhysAddr(RSDP_AT)), [(0, 1 << 30)], [], &qemu_cpuid(1, 1, 0));
        let got: Vec<(u32, bool)> = d.record.cpus().iter().map(|c| (c.apic_id, c.enabled)).collect();
        assert_eq!(got, want);
        assert_eq!(d.report.cpus_dropped, 0);
        assert_eq!(d.report.madt_skipped.count, 0);
    }
}
