extern crate std;

use proptest::prelude::{prop, prop_assert, prop_assert_eq, proptest};
use std::collections::BTreeSet;
use std::vec::Vec;

use super::{
    max_phys_bits, Added, Extent, ExtentError, Leaf, PageSize, HUGE_PAGE, LARGE_PAGE, PDPT_REACH,
};

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
/// The direct map's window in the kernel: the upper half of 4-level paging.
const WINDOW: u64 = 128 * TIB;

/// QEMU q35 with `-m 1G,slots=4,maxmem=2T` and `-numa`: boot RAM, firmware
/// ranges below 4 GiB, and the SRAT's hot-pluggable device-memory range.
fn qemu_highmem(page_bits: u8) -> Extent<64> {
    let mut x = Extent::new(page_bits, WINDOW);
    for (b, s) in [
        (0, 4 * GIB),                 // the low 4 GiB, MMIO window included
        (0, 0x9fc00),                 // RAM
        (0x10_0000, GIB - 0x10_0000), // RAM
        (0xfeff_c000, 0x4000),        // reserved
        (4 * GIB, 2 * TIB + 3 * GIB), // SRAT, hot-pluggable
        (0, 0x8000_0000),             // SRAT, node 0 and 1 RAM
    ] {
        assert_ne!(x.add(b, s), Err(ExtentError::TooManySpans { limit: 64 }));
    }
    x
}

#[test]
fn qemu_highmem_layout_uses_five_tables_with_1g_pages() {
    let x = qemu_highmem(46);
    assert_eq!(x.spans().len(), 1);
    assert_eq!(x.end(), 2 * TIB + 7 * GIB);
    // 0..512G, ..1T, ..1.5T, ..2T, and the slot holding 2T..2T+7G.
    assert_eq!(x.table_pages(PageSize::Huge1G), 5);
    let leaves: Vec<Leaf> = x.leaves(PageSize::Huge1G).collect();
    assert_eq!(leaves.len() as u64, x.end() / HUGE_PAGE);
    assert!(leaves.iter().all(|l| l.size == HUGE_PAGE));
    let uncached: Vec<u64> = leaves.iter().filter(|l| l.uncached).map(|l| l.pa).collect();
    assert_eq!(uncached, [3 * GIB], "only the MMIO window is uncached");
    // Memory of DIMMs placed above 64 GiB and above 1 TiB is reachable.
    assert!(x.covers(65 * GIB, 2 << 20));
    assert!(x.covers(TIB + GIB, 4096));
    assert!(!x.covers(x.end(), 4096));
}

#[test]
fn without_1g_pages_every_gib_has_a_directory() {
    let mut x: Extent<8> = Extent::new(46, WINDOW);
    x.add(0, 64 * GIB).unwrap();
    // Today's fixed map: one PDPT, 64 page directories.
    assert_eq!(x.table_pages(PageSize::Large2M), 65);
    assert_eq!(x.table_pages(PageSize::Huge1G), 1);
    let uncached: Vec<u64> = x
        .leaves(PageSize::Large2M)
        .filter(|l| l.uncached)
        .map(|l| l.pa)
        .collect();
    assert_eq!(uncached.len(), 512);
    assert_eq!(uncached[0], 3 * GIB);
}

#[test]
fn ranges_round_out_to_2m_and_partial_gibs_get_directories() {
    let mut x: Extent<8> = Extent::new(46, WINDOW);
    assert_eq!(x.add(65 * GIB + 0x1000, 0x1000), Ok(Added::Whole));
    assert_eq!(x.spans()[0].base().0, 65 * GIB);
    assert_eq!(x.spans()[0].end().0, 65 * GIB + LARGE_PAGE);
    assert_eq!(x.table_pages(PageSize::Huge1G), 2, "a PDPT and one PD");
    let leaves: Vec<Leaf> = x.leaves(PageSize::Huge1G).collect();
    assert_eq!(
        leaves,
        [Leaf {
            pa: 65 * GIB,
            size: LARGE_PAGE,
            uncached: false
        }]
    );
}

#[test]
fn holes_stay_unmapped() {
    let mut x: Extent<8> = Extent::new(46, WINDOW);
    x.add(0, 4 * GIB).unwrap();
    x.add(64 * GIB, GIB).unwrap();
    // A 64-bit PCI window between them is not in the map.
    assert!(!x.covers(32 * GIB, 4096));
    assert!(!x.covers(4 * GIB - 4096, 8192), "runs into the hole");
    assert!(x.covers(64 * GIB, GIB));
    assert_eq!(x.spans().len(), 2);
}

#[test]
fn touching_and_overlapping_ranges_merge() {
    let mut x: Extent<4> = Extent::new(46, WINDOW);
    x.add(10 * GIB, GIB).unwrap();
    x.add(12 * GIB, GIB).unwrap();
    x.add(14 * GIB, GIB).unwrap();
    assert_eq!(x.spans().len(), 3);
    // Touches the first, overlaps the second: three become... two.
    x.add(11 * GIB, GIB + 1).unwrap();
    assert_eq!(x.spans().len(), 2);
    assert_eq!(x.spans()[0].end().0, 13 * GIB);
    assert!(x.covers(10 * GIB, 3 * GIB), "one span across the old seams");
}

#[test]
fn memory_beyond_maxphyaddr_is_clipped() {
    let mut x: Extent<4> = Extent::new(46, WINDOW);
    assert_eq!(x.add((1 << 46) - GIB, 2 * GIB), Ok(Added::Clipped));
    assert_eq!(x.end(), 1 << 46);
    assert_eq!(x.add(1 << 46, GIB), Ok(Added::Clipped));
    assert_eq!(x.add(u64::MAX - 5, 10), Ok(Added::Clipped), "wraps");
    assert_eq!(x.add(0, 0), Ok(Added::Empty));
    assert_eq!(x.spans().len(), 1);
}

#[test]
fn failures_name_the_limit_and_change_nothing() {
    let mut x: Extent<2> = Extent::new(52, WINDOW);
    x.add(0, GIB).unwrap();
    assert_eq!(
        x.add(WINDOW - GIB, 2 * GIB),
        Err(ExtentError::BeyondWindow {
            end: WINDOW + GIB,
            window: WINDOW
        })
    );
    x.add(4 * GIB, GIB).unwrap();
    assert_eq!(
        x.add(8 * GIB, GIB),
        Err(ExtentError::TooManySpans { limit: 2 })
    );
    assert_eq!(x.spans().len(), 2);
    assert_eq!(x.end(), 5 * GIB);
    // Merging into existing spans still works when the table is full.
    assert_eq!(x.add(GIB, 3 * GIB), Ok(Added::Whole));
    assert_eq!(x.spans().len(), 1);
}

#[test]
fn covers_empty_and_wrapping_ranges() {
    let mut x: Extent<2> = Extent::new(46, WINDOW);
    x.add(0, GIB).unwrap();
    assert!(x.covers(5 * TIB, 0), "an empty range names no memory");
    assert!(!x.covers(u64::MAX, 2));
}

#[test]
fn cpuid_decoding() {
    assert_eq!(PageSize::from_cpuid(0x8000_0008, 1 << 26), PageSize::Huge1G);
    assert_eq!(PageSize::from_cpuid(0x8000_0008, 0), PageSize::Large2M);
    assert_eq!(
        PageSize::from_cpuid(0x8000_0000, 1 << 26),
        PageSize::Large2M
    );
    assert_eq!(max_phys_bits(0x8000_0008, 0x3030), 48);
    assert_eq!(max_phys_bits(0x8000_0008, 0x302e), 46);
    assert_eq!(max_phys_bits(0x8000_0001, 0x302e), 36, "leaf absent");
    assert_eq!(max_phys_bits(0x8000_0008, 0x3040), 52, "bounded");
    assert_eq!(max_phys_bits(0x8000_0008, 0x20), 36, "below the minimum");
    assert_eq!(max_phys_bits(0x8000_0008, 0), 36, "nonsense");
}

/// Distinct table pages the leaves themselves need: one per 512 GiB slot
/// holding a leaf, one per GiB holding a 2 MiB leaf.
fn tables_of(leaves: &[Leaf]) -> usize {
    let slots: BTreeSet<u64> = leaves.iter().map(|l| l.pa / PDPT_REACH).collect();
    let dirs: BTreeSet<u64> = leaves
        .iter()
        .filter(|l| l.size == LARGE_PAGE)
        .map(|l| l.pa / HUGE_PAGE)
        .collect();
    slots.len() + dirs.len()
}

proptest! {
    /// Against a model at 2 MiB granularity over 0..2 TiB: the spans are
    /// exactly the union of the rounded ranges, the leaves tile them in
    /// order without overlap, and the table count is what the leaves need.
    #[test]
    fn matches_a_model(
        raw in prop::collection::vec((0u64..(1 << 20), 1u64..(1 << 31)), 0..12),
        huge in prop::bool::ANY,
    ) {
        // Bases in 2 MiB-ish steps with odd offsets; sizes up to 2 GiB.
        let ranges: Vec<(u64, u64)> = raw.iter().map(|&(b, s)| (b * LARGE_PAGE + (s % 4096), s)).collect();
        let page = if huge { PageSize::Huge1G } else { PageSize::Large2M };
        let mut x: Extent<16> = Extent::new(46, WINDOW);
        let mut model = BTreeSet::new();
        for &(b, s) in &ranges {
            x.add(b, s).unwrap();
            for g in b / LARGE_PAGE..(b + s).div_ceil(LARGE_PAGE) {
                model.insert(g);
            }
        }
        let spans = x.spans();
        for w in spans.windows(2) {
            prop_assert!(w[0].end().0 < w[1].base().0, "sorted, disjoint, not touching");
        }
        let mut from_spans = BTreeSet::new();
        for s in spans {
            prop_assert!(s.base().0.is_multiple_of(LARGE_PAGE) && s.end().0.is_multiple_of(LARGE_PAGE));
            from_spans.extend(s.base().0 / LARGE_PAGE..s.end().0 / LARGE_PAGE);
        }
        prop_assert_eq!(&from_spans, &model);
        let leaves: Vec<Leaf> = x.leaves(page).collect();
        let mut from_leaves = BTreeSet::new();
        let mut last_end = 0;
        for l in &leaves {
            prop_assert!(l.pa >= last_end && l.pa.is_multiple_of(l.size));
            prop_assert!(page == PageSize::Huge1G || l.size == LARGE_PAGE);
            last_end = l.pa + l.size;
            from_leaves.extend(l.pa / LARGE_PAGE..last_end / LARGE_PAGE);
        }
        prop_assert_eq!(&from_leaves, &model);
        prop_assert_eq!(x.table_pages(page), tables_of(&leaves));
        for g in [0u64, 1, 1000, 1 << 19] {
            prop_assert_eq!(x.covers(g * LARGE_PAGE, 4096), model.contains(&g));
        }
    }
}
