//! Host tests of the multiboot2 parser on synthetic boot information.

extern crate std;

use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, proptest};
use std::vec::Vec;

use super::{efi, kind, parse, tag, Info, Malformed, MapSource, Problem, RsdpCopy};
use crate::bootmap::{parse_e820, MemRange, MemoryMap, Rejected, E820_ENTRY_SIZE};

/// Builds an MBI tag by tag; `finish` adds the end tag and the total size.
struct Mbi(Vec<u8>);

impl Mbi {
    fn new() -> Self {
        Mbi(std::vec![0; 8])
    }

    fn tag(mut self, kind: u32, payload: &[u8]) -> Self {
        self.0.extend_from_slice(&kind.to_le_bytes());
        self.0
            .extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
        self.0.extend_from_slice(payload);
        while !self.0.len().is_multiple_of(8) {
            self.0.push(0);
        }
        self
    }

    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn unfinished(mut self) -> Vec<u8> {
        let total = self.0.len() as u32;
        self.0[..4].copy_from_slice(&total.to_le_bytes());
        self.0
    }

    fn finish(self) -> Vec<u8> {
        self.tag(tag::END, &[]).unfinished()
    }
}

/// A memory map tag's payload: entry size, version, entries.
fn map_payload(entry_size: u32, version: u32, entries: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&entry_size.to_le_bytes());
    p.extend_from_slice(&version.to_le_bytes());
    p.extend_from_slice(entries);
    p
}

/// EFI descriptors `(type, base, pages, attribute)`, each `size` bytes
/// (the bytes past the 40 of version 1 are filled with 0xA5).
fn efi_descs(descs: &[(u32, u64, u64, u64)], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for &(t, base, pages, attr) in descs {
        let start = out.len();
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&0xdead_beef_u64.to_le_bytes()); // virtual start
        out.extend_from_slice(&pages.to_le_bytes());
        out.extend_from_slice(&attr.to_le_bytes());
        out.resize(start + size, 0xA5);
    }
    out
}

fn efi_tag(descs: &[(u32, u64, u64, u64)], size: usize) -> Vec<u8> {
    map_payload(size as u32, 1, &efi_descs(descs, size))
}

fn e820(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(base, size, kind) in entries {
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

fn basic_tag(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    map_payload(E820_ENTRY_SIZE as u32, 0, &e820(entries))
}

/// A valid RSDP body of `len` bytes (the parser only checks the length;
/// the ACPI parser checks the contents).
fn rsdp(len: usize) -> Vec<u8> {
    let mut r = std::vec![0u8; len];
    r[..8].copy_from_slice(b"RSD PTR ");
    r
}

fn run(mbi: &[u8]) -> (MemoryMap<64>, Info, Vec<Problem>) {
    let mut map = MemoryMap::<64>::new();
    let mut problems = Vec::new();
    let info = parse(mbi, &mut map, |p| problems.push(p));
    (map, info, problems)
}

const MIB: u64 = 1 << 20;
const PAGES_PER_MIB: u64 = MIB / efi::PAGE_SIZE;

#[test]
fn every_efi_type_is_classified() {
    // One descriptor per type, each 1 MiB with a gap after it, so none
    // merge; descriptors 48 bytes long (a later descriptor version).
    let types: Vec<u32> = (0..=15).chain([16, 0x7000_0000, 0x8000_0001]).collect();
    let descs: Vec<_> = types
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, (2 * i as u64) * MIB, PAGES_PER_MIB, 0xf))
        .collect();
    let (map, info, problems) = run(&Mbi::new()
        .tag(tag::EFI64, &[0; 8])
        .tag(tag::EFI_MMAP, &efi_tag(&descs, 48))
        .finish());
    assert_eq!(problems, []);
    assert_eq!(
        info.source,
        MapSource::Efi {
            descriptors: types.len(),
            version: 1
        }
    );
    assert!(info.uefi && !info.boot_services_running);
    let expect = |t: u32| match t {
        efi::CONVENTIONAL
        | efi::LOADER_CODE
        | efi::LOADER_DATA
        | efi::BOOT_SERVICES_CODE
        | efi::BOOT_SERVICES_DATA => kind::RAM,
        efi::UNUSABLE => kind::UNUSABLE,
        efi::ACPI_RECLAIM => kind::ACPI_RECLAIM,
        efi::ACPI_NVS => kind::ACPI_NVS,
        efi::PERSISTENT => kind::PERSISTENT,
        // Reserved, runtime services, MMIO, port space, PAL code,
        // unaccepted, unknown, OEM and OS-defined types.
        _ => kind::RESERVED,
    };
    let got: Vec<(u64, u64, u32)> = map
        .ranges()
        .iter()
        .map(|r| (r.base, r.size, r.kind))
        .collect();
    let want: Vec<(u64, u64, u32)> = types
        .iter()
        .enumerate()
        .map(|(i, &t)| ((2 * i as u64) * MIB, MIB, expect(t)))
        .collect();
    assert_eq!(got, want);
    assert!(map.is_ram(7 * 2 * MIB, MIB), "conventional memory is RAM");
    assert!(!map.is_ram(5 * 2 * MIB, 4096), "runtime code is not RAM");
    assert!(!map.is_ram(9 * 2 * MIB, 4096), "ACPI reclaim is not RAM");
}

#[test]
fn boot_services_memory_is_the_firmwares_while_they_run() {
    let descs = [
        (efi::BOOT_SERVICES_CODE, 0, PAGES_PER_MIB, 0),
        (efi::BOOT_SERVICES_DATA, 2 * MIB, PAGES_PER_MIB, 0),
        (efi::CONVENTIONAL, 4 * MIB, PAGES_PER_MIB, 0),
    ];
    let (map, info, problems) = run(&Mbi::new()
        .tag(tag::EFI_MMAP, &efi_tag(&descs, 40))
        .tag(tag::EFI_BS, &[])
        .finish());
    assert_eq!(problems, []);
    assert!(info.boot_services_running);
    let kinds: Vec<u32> = map.ranges().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [kind::RESERVED, kind::RESERVED, kind::RAM]);
}

#[test]
fn specific_purpose_memory_is_not_general_ram() {
    let descs = [(efi::CONVENTIONAL, 0, 1, efi::ATTR_SPECIFIC_PURPOSE | 0xf)];
    let (map, _, _) = run(&Mbi::new().tag(tag::EFI_MMAP, &efi_tag(&descs, 40)).finish());
    assert_eq!(map.ranges()[0].kind, kind::SOFT_RESERVED);
    assert!(!map.is_ram(0, 4096));
}

#[test]
fn hundreds_of_touching_descriptors_merge_into_few_ranges() {
    // 300 alternating RAM-like types, touching: one RAM range; then an
    // ACPI NVS hole and more RAM: three ranges in a map of 8.
    let ram_types = [
        efi::CONVENTIONAL,
        efi::BOOT_SERVICES_DATA,
        efi::LOADER_DATA,
        efi::BOOT_SERVICES_CODE,
        efi::LOADER_CODE,
    ];
    let mut descs: Vec<_> = (0..300u64)
        .map(|i| (ram_types[i as usize % ram_types.len()], i * 8192, 2, 0xf))
        .collect();
    descs.push((efi::ACPI_NVS, 300 * 8192, 1, 0));
    descs.push((efi::CONVENTIONAL, 300 * 8192 + 4096, 10, 0xf));
    let mut map = MemoryMap::<8>::new();
    let mut problems = Vec::new();
    parse(
        &Mbi::new().tag(tag::EFI_MMAP, &efi_tag(&descs, 40)).finish(),
        &mut map,
        |p| problems.push(p),
    );
    assert_eq!(problems, []);
    let r = |base, size, kind| MemRange { base, size, kind };
    assert_eq!(
        map.ranges(),
        [
            r(0, 300 * 8192, kind::RAM),
            r(300 * 8192, 4096, kind::ACPI_NVS),
            r(300 * 8192 + 4096, 10 * 4096, kind::RAM)
        ]
    );
}

#[test]
fn the_efi_map_wins_over_the_basic_one_in_either_order() {
    let efi = efi_tag(&[(efi::CONVENTIONAL, 0x10_0000, 16, 0)], 40);
    let basic = basic_tag(&[(0, 0x9_f000, 1)]);
    for mbi in [
        Mbi::new()
            .tag(tag::MMAP, &basic)
            .tag(tag::EFI_MMAP, &efi)
            .finish(),
        Mbi::new()
            .tag(tag::EFI_MMAP, &efi)
            .tag(tag::MMAP, &basic)
            .finish(),
    ] {
        let (map, info, problems) = run(&mbi);
        assert_eq!(problems, []);
        assert!(matches!(info.source, MapSource::Efi { descriptors: 1, .. }));
        assert_eq!(
            map.ranges(),
            [MemRange {
                base: 0x10_0000,
                size: 16 * 4096,
                kind: kind::RAM
            }]
        );
    }
}

#[test]
fn a_bad_efi_map_falls_back_to_the_basic_one() {
    let basic = basic_tag(&[(0, 0x9_f000, 1), (0x10_0000, 0x100_0000, 1)]);
    let descs = [(efi::CONVENTIONAL, 0, 1, 0)];
    let cases = [
        (
            efi_tag(&descs, 32),
            Malformed::EfiDescriptorSize { size: 32 },
        ),
        (
            map_payload(40, 0, &efi_descs(&descs, 40)),
            Malformed::EfiDescriptorVersion { version: 0 },
        ),
        (
            std::vec![40, 0, 0, 0],
            Malformed::MapTagShort {
                kind: tag::EFI_MMAP,
                size: 12,
            },
        ),
    ];
    for (efi, why) in cases {
        let (map, info, problems) = run(&Mbi::new()
            .tag(tag::EFI_MMAP, &efi)
            .tag(tag::MMAP, &basic)
            .finish());
        assert_eq!(problems, [Problem::Malformed(why)]);
        assert_eq!(info.source, MapSource::Basic { entries: 2 });
        assert_eq!(map.ranges().len(), 2);
    }
}

#[test]
fn bad_descriptors_are_skipped_and_reported() {
    let descs = [
        (efi::CONVENTIONAL, 0x1000, 1, 0),
        (efi::CONVENTIONAL, 0x2_0800, 1, 0),  // misaligned
        (efi::CONVENTIONAL, 0x10_0000, 0, 0), // empty: ignored
        (efi::CONVENTIONAL, 0x20_0000, u64::MAX >> 4, 0), // pages * 4096 overflows
        (efi::CONVENTIONAL, u64::MAX - 0xfff, 2, 0), // wraps
        (efi::CONVENTIONAL, 0x30_0000, 1, 0),
    ];
    let mut payload = efi_tag(&descs, 40);
    payload.extend_from_slice(&[1, 2, 3]); // not a whole descriptor
    let (map, info, problems) = run(&Mbi::new().tag(tag::EFI_MMAP, &payload).finish());
    assert_eq!(
        info.source,
        MapSource::Efi {
            descriptors: 6,
            version: 1
        }
    );
    assert_eq!(
        problems,
        [
            Problem::Malformed(Malformed::TrailingBytes {
                kind: tag::EFI_MMAP,
                bytes: 3
            }),
            Problem::Entry(Rejected::Misaligned { base: 0x2_0800 }),
            Problem::Entry(Rejected::Wraps {
                base: 0x20_0000,
                size: u64::MAX
            }),
            Problem::Entry(Rejected::Wraps {
                base: u64::MAX - 0xfff,
                size: 0x2000
            }),
        ]
    );
    let bases: Vec<u64> = map.ranges().iter().map(|r| r.base).collect();
    assert_eq!(bases, [0x1000, 0x30_0000]);
}

#[test]
fn rsdp_tags_v1_and_v2() {
    // Only the ACPI 1.0 copy.
    let (_, info, problems) = run(&Mbi::new().tag(tag::ACPI_OLD, &rsdp(20)).finish());
    assert_eq!(problems, []);
    assert_eq!(
        info.rsdp,
        Some(RsdpCopy {
            offset: 16,
            len: 20,
            v2: false
        })
    );
    // Both: the ACPI 2.0+ copy wins, whichever comes first.
    for mbi in [
        Mbi::new()
            .tag(tag::ACPI_OLD, &rsdp(20))
            .tag(tag::ACPI_NEW, &rsdp(36))
            .finish(),
        Mbi::new()
            .tag(tag::ACPI_NEW, &rsdp(36))
            .tag(tag::ACPI_OLD, &rsdp(20))
            .finish(),
    ] {
        let (_, info, _) = run(&mbi);
        let r = info.rsdp.unwrap();
        assert!(r.v2 && r.len == 36);
        assert_eq!(&mbi[r.offset..r.offset + 8], b"RSD PTR ");
    }
    // A v2 copy too short for its revision: reported, the v1 copy is used.
    let (_, info, problems) = run(&Mbi::new()
        .tag(tag::ACPI_NEW, &rsdp(20))
        .tag(tag::ACPI_OLD, &rsdp(20))
        .finish());
    assert_eq!(
        problems,
        [Problem::Malformed(Malformed::RsdpTooShort {
            kind: tag::ACPI_NEW,
            len: 20
        })]
    );
    assert!(!info.rsdp.unwrap().v2);
    let (_, info, problems) = run(&Mbi::new().tag(tag::ACPI_OLD, &rsdp(12)).finish());
    assert_eq!(info.rsdp, None);
    assert_eq!(problems.len(), 1);
}

#[test]
fn malformed_structures_are_reported_and_stop_the_walk() {
    let basic = basic_tag(&[(0, 0x9_f000, 1)]);
    // No header at all.
    let (_, info, problems) = run(&[1, 2, 3]);
    assert_eq!(info, Info::default());
    assert_eq!(
        problems,
        [Problem::Malformed(Malformed::NoHeader { available: 3 })]
    );
    // A total size below the header.
    let (_, _, problems) = run(&[4, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        problems,
        [Problem::Malformed(Malformed::NoHeader { available: 8 })]
    );
    // The loader's range is shorter than the total size claims: what is
    // there is used, and the lost end tag is reported too.
    let mut mbi = Mbi::new().tag(tag::MMAP, &basic).finish();
    let cut = mbi.len() - 8;
    mbi.truncate(cut);
    let (map, _, problems) = run(&mbi);
    assert_eq!(map.ranges().len(), 1);
    assert_eq!(
        problems,
        [
            Problem::Malformed(Malformed::Truncated {
                total: cut + 8,
                available: cut
            }),
            Problem::Malformed(Malformed::NoEndTag)
        ]
    );
    // A tag smaller than its header, after a good one: the good one counts.
    let mbi = Mbi::new()
        .tag(tag::MMAP, &basic)
        .raw(&[tag::ACPI_NEW as u8, 0, 0, 0, 4, 0, 0, 0])
        .finish();
    let (map, info, problems) = run(&mbi);
    assert_eq!(map.ranges().len(), 1);
    assert_eq!(info.rsdp, None);
    assert!(matches!(
        problems[..],
        [Problem::Malformed(Malformed::TagTooSmall { size: 4, .. })]
    ));
    // A tag that runs past the end.
    let mut mbi = Mbi::new()
        .tag(tag::EFI_MMAP, &efi_tag(&[(7, 0, 1, 0)], 40))
        .finish();
    mbi[12..16].copy_from_slice(&0x1000u32.to_le_bytes());
    let (map, info, problems) = run(&mbi);
    assert_eq!((map.ranges().len(), info.source), (0, MapSource::None));
    assert!(matches!(
        problems[..],
        [Problem::Malformed(Malformed::TagOverruns {
            at: 8,
            size: 0x1000,
            ..
        })]
    ));
    // No end tag.
    let (_, _, problems) = run(&Mbi::new().tag(tag::MMAP, &basic).unfinished());
    assert_eq!(problems, [Problem::Malformed(Malformed::NoEndTag)]);
    // A second memory map tag of a kind: the first one is used.
    let (map, _, problems) = run(&Mbi::new()
        .tag(tag::MMAP, &basic)
        .tag(tag::MMAP, &basic_tag(&[(0x100_0000, 0x1000, 1)]))
        .finish());
    assert_eq!(map.ranges()[0].base, 0);
    assert_eq!(
        problems,
        [Problem::Malformed(Malformed::Duplicate { kind: tag::MMAP })]
    );
    // Basic map entries too small for E820.
    let (_, info, problems) = run(&Mbi::new()
        .tag(tag::MMAP, &map_payload(16, 0, &[0; 32]))
        .finish());
    assert_eq!(info.source, MapSource::None);
    assert_eq!(
        problems,
        [Problem::Malformed(Malformed::MmapEntrySize { size: 16 })]
    );
}

#[test]
fn every_problem_reads_as_a_sentence() {
    let all = [
        Malformed::NoHeader { available: 3 },
        Malformed::Truncated {
            total: 9,
            available: 8,
        },
        Malformed::TagTooSmall {
            at: 8,
            kind: 6,
            size: 4,
        },
        Malformed::TagOverruns {
            at: 8,
            kind: 6,
            size: 99,
            total: 16,
        },
        Malformed::NoEndTag,
        Malformed::MapTagShort { kind: 17, size: 12 },
        Malformed::MmapEntrySize { size: 16 },
        Malformed::EfiDescriptorSize { size: 32 },
        Malformed::EfiDescriptorVersion { version: 0 },
        Malformed::TrailingBytes { kind: 17, bytes: 3 },
        Malformed::RsdpTooShort { kind: 15, len: 20 },
        Malformed::Duplicate { kind: 6 },
    ];
    for m in all {
        let text = std::format!("{m}");
        assert!(text.len() > 10 && !text.contains("Malformed"), "{text}");
    }
}

proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut map = MemoryMap::<16>::new();
        let info = parse(&bytes, &mut map, |_| {});
        if let Some(r) = info.rsdp {
            prop_assert!(r.offset + r.len <= bytes.len());
        }
        for r in map.ranges() {
            prop_assert!(r.base.checked_add(r.size).is_some());
        }
    }

    /// Random tags (valid headers, random payloads) in a valid structure.
    #[test]
    fn random_tags_never_panic(
        tags in prop::collection::vec((0u32..24, prop::collection::vec(any::<u8>(), 0..200)), 0..8),
    ) {
        let mut mbi = Mbi::new();
        for (kind, payload) in &tags {
            mbi = mbi.tag(*kind, payload);
        }
        let bytes = mbi.finish();
        let mut map = MemoryMap::<16>::new();
        let info = parse(&bytes, &mut map, |_| {});
        if let Some(r) = info.rsdp {
            prop_assert!(r.offset + r.len <= bytes.len());
        }
    }

    /// The basic map gives what the PVH parser gives for the same entries.
    #[test]
    fn the_basic_map_matches_e820(
        entries in prop::collection::vec((any::<u64>(), any::<u64>(), 0u32..4), 0..40),
    ) {
        let mut pvh = MemoryMap::<32>::new();
        parse_e820(&e820(&entries), &mut pvh, |_| {});
        let mut mb = MemoryMap::<32>::new();
        parse(&Mbi::new().tag(tag::MMAP, &basic_tag(&entries)).finish(), &mut mb, |_| {});
        prop_assert!(mb.ranges() == pvh.ranges());
    }

    /// Random EFI maps: a page is RAM exactly when some stored descriptor
    /// covering it has a RAM type (firmware maps do not overlap; these are
    /// made not to).
    #[test]
    fn random_efi_maps_classify_every_page(
        descs in prop::collection::vec((0u32..20, 0u64..8, 1u64..8, any::<bool>()), 0..60),
        size in prop::sample::select(std::vec![40usize, 48, 56, 80]),
        bs_running in any::<bool>(),
    ) {
        let mut at = 0u64;
        let mut placed = Vec::new();
        for &(t, gap, pages, sp) in &descs {
            at += gap * efi::PAGE_SIZE;
            let attr = if sp { efi::ATTR_SPECIFIC_PURPOSE } else { 0 };
            placed.push((t, at, pages, attr));
            at += pages * efi::PAGE_SIZE;
        }
        let mut mbi = Mbi::new().tag(tag::EFI_MMAP, &efi_tag(&placed, size));
        if bs_running {
            mbi = mbi.tag(tag::EFI_BS, &[]);
        }
        let mut map = MemoryMap::<64>::new();
        let mut problems = 0;
        parse(&mbi.finish(), &mut map, |_| problems += 1);
        prop_assert_eq!(problems, 0);
        for &(t, base, pages, attr) in &placed {
            let ram = super::efi_kind(t, attr, bs_running) == kind::RAM;
            for p in 0..pages {
                prop_assert_eq!(map.is_ram(base + p * efi::PAGE_SIZE, efi::PAGE_SIZE), ram);
            }
        }
    }
}
