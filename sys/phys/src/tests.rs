//! Property tests: every operation agrees with a byte-by-byte model over a small address window,
//! placed both at 0 and at the top of the 64-bit space (where wrapping would show).

use proptest::prelude::*;

use super::{ByteLen, PhysAddr, PhysRange};

/// Width of the modelled window in bytes.
const W: u64 = 64;

/// Bytes of `r` relative to `origin`, as a bit set (the window is at most 64 bytes wide).
fn bits(r: PhysRange, origin: u64) -> u64 {
    (r.base().0..r.end().0).fold(0, |acc, b| acc | 1 << (b - origin))
}

/// A range inside `[origin, origin + W)`.
fn range_in(origin: u64) -> impl Strategy<Value = PhysRange> {
    (0..=W, 0..=W).prop_map(move |(a, b)| {
        let (lo, hi) = (a.min(b), a.max(b));
        // W bytes at the top end exactly at u64::MAX; the last byte is unreachable by design.
        let hi = hi.min(u64::MAX - origin);
        PhysRange::from_bounds(origin + lo.min(hi), origin + hi).unwrap()
    })
}

fn origins() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(0x1_0000_0000), Just(u64::MAX - W)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn overlaps_means_a_shared_byte((o, a, b) in origins().prop_flat_map(|o| (Just(o), range_in(o), range_in(o)))) {
        prop_assert_eq!(a.overlaps(b), bits(a, o) & bits(b, o) != 0);
        prop_assert_eq!(a.overlaps(b), b.overlaps(a));
        prop_assert_eq!(a.intersect(b).map(|r| bits(r, o)), a.overlaps(b).then(|| bits(a, o) & bits(b, o)));
    }

    #[test]
    fn contains_means_every_byte_inside((o, a, b) in origins().prop_flat_map(|o| (Just(o), range_in(o), range_in(o)))) {
        if !b.is_empty() {
            prop_assert_eq!(a.contains(b), bits(b, o) & !bits(a, o) == 0);
        }
        if a.contains(b) {
            prop_assert!(a.base() <= b.base() && b.end() <= a.end());
        }
    }

    /// The pieces are exactly the bytes of the range outside every hole, in address order, each
    /// maximal (no two touch), non-empty, and at most one more than the holes.
    #[test]
    fn subtract_leaves_exactly_the_bytes_outside_the_holes(
        (o, r, holes) in origins().prop_flat_map(|o| (Just(o), range_in(o), proptest::collection::vec(range_in(o), 0..6)))
    ) {
        let mut pieces = std::vec::Vec::new();
        r.subtract(holes.iter().copied(), |p| pieces.push(p));
        let holes_bits = holes.iter().fold(0, |acc, h| acc | bits(*h, o));
        let got = pieces.iter().fold(0, |acc, p| acc | bits(*p, o));
        prop_assert_eq!(got, bits(r, o) & !holes_bits);
        prop_assert!(pieces.len() <= holes.len() + 1);
        for p in &pieces {
            prop_assert!(!p.is_empty() && r.contains(*p));
        }
        for w in pieces.windows(2) {
            prop_assert!(w[0].end() < w[1].base(), "pieces out of order or touching: {:?}", pieces);
        }
    }

    #[test]
    fn construction_never_wraps(base in any::<u64>(), size in any::<u64>()) {
        match PhysRange::new(base, size) {
            Some(r) => {
                prop_assert_eq!((r.base(), r.size()), (PhysAddr(base), ByteLen(size)));
                prop_assert_eq!(r.end().0, base + size);
            }
            None => prop_assert!(base.checked_add(size).is_none()),
        }
        let s = PhysRange::saturating(base, size);
        prop_assert!(s.base().0 == base && s.end().0 >= base);
        prop_assert_eq!(PhysRange::from_bounds(base, size).is_some(), base <= size);
    }

    #[test]
    fn align_inward_is_the_largest_aligned_subrange(r in range_in(0x1000), shift in 0u32..5) {
        let align = 1u64 << shift;
        let aligned = |x: u64| x.is_multiple_of(align);
        let want = (r.base().0..r.end().0).filter(|&b| aligned(b)).find_map(|b| {
            let end = (b..=r.end().0).rev().find(|&e| aligned(e))?;
            (end > b).then(|| PhysRange::from_bounds(b, end).unwrap())
        });
        prop_assert_eq!(r.align_inward(align), want);
    }
}

#[test]
fn empty_ranges_overlap_nothing_and_subtract_to_nothing() {
    let big = PhysRange::literal(0, 1 << 40);
    let empty = PhysRange::literal(4096, 0);
    assert!(!big.overlaps(empty) && !empty.overlaps(big));
    let mut n = 0;
    empty.subtract([], |_| n += 1);
    assert_eq!(n, 0);
    assert!(big.contains(empty));
    assert!(!PhysRange::literal(0, 4096).contains(PhysRange::literal(1 << 20, 0)));
}

#[test]
fn the_top_of_the_address_space_is_reachable_but_not_past_it() {
    assert_eq!(PhysRange::new(u64::MAX, 1), None);
    assert_eq!(PhysRange::new(u64::MAX - 4095, 4096), None);
    let top = PhysRange::new(u64::MAX - 4096, 4096).unwrap();
    assert_eq!(top.end(), PhysAddr(u64::MAX));
    assert_eq!(
        PhysRange::saturating(u64::MAX - 10, 100).end(),
        PhysAddr(u64::MAX)
    );
    assert_eq!(top.align_inward(1 << 13), None);
}
