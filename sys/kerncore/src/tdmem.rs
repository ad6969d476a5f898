//! TD memory: the physical memory the kernel lets the memory authority
//! (tdx-host) have scrubbed, hand to the TDX module as PAMT, or name as a
//! page operand of a PHYMEM leaf.
//!
//! Pattern: the kernel keeps facts, not policy. "TD memory" is RAM the
//! platform record found at boot plus ranges onlined inside the firmware's
//! hot-plug window ([`OnlineTable`]), minus a short list of exclusions the
//! kernel names (the first MiB, the kernel image with its page tables and
//! stacks, every task's memory). [`check_td_memory`] decides one range
//! against those lists; the kernel builds the lists from its statics.
//!
//! Invariants:
//! - a range is TD memory only if every byte of it is inside some included
//!   range and no byte of it is inside an exclusion; empty and wrapping
//!   ranges are never TD memory (an operand that names no memory is a
//!   caller's mistake the module should never see);
//! - an online range is page-aligned, non-empty, does not wrap, lies inside
//!   the hot-plug window and overlaps neither boot RAM nor another online
//!   range; offline removes only an exact match, so a caller cannot shrink
//!   or split what it onlined.

/// 4 KiB: the granule of onlining and scrubbing.
pub const PAGE: u64 = 4096;

/// The checked physical range (it cannot wrap), shared with the emulator, the planner and
/// tdx-host.
pub use phys::PhysRange;

/// Why a range is not TD memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NotTdMemory {
    /// The range is empty (or, for callers building it from raw words,
    /// wraps the address space).
    Malformed,
    /// Some byte is in exclusion number `index` of the list given.
    Excluded { index: usize },
    /// Some byte is in no included range: not RAM (MMIO, a firmware hole,
    /// absent memory, or hot-plug memory nobody onlined).
    NotRam,
}

/// Decides whether `range` is TD memory: entirely covered by `included`
/// (RAM and online ranges, in any order, may touch or overlap) and
/// disjoint from every range of `excluded`. Exclusions are reported
/// first, so "this is the kernel" wins over "this is partly not RAM".
///
/// # Errors
/// Why not, as [`NotTdMemory`].
pub fn check_td_memory(
    range: PhysRange,
    included: &[PhysRange],
    excluded: &[PhysRange],
) -> Result<(), NotTdMemory> {
    if range.is_empty() {
        return Err(NotTdMemory::Malformed);
    }
    let end = range.end().0;
    if let Some(index) = excluded.iter().position(|x| x.overlaps(range)) {
        return Err(NotTdMemory::Excluded { index });
    }
    // Unsorted cover: advance a cursor through any range that holds it.
    // Each step moves the cursor strictly forward past one range's end, so
    // at most `included.len()` steps happen.
    let mut cursor = range.base().0;
    for _ in 0..=included.len() {
        if cursor >= end {
            return Ok(());
        }
        let next = included
            .iter()
            .filter(|r| r.base().0 <= cursor)
            .map(|r| r.end().0)
            .filter(|&r_end| r_end > cursor)
            .max();
        match next {
            Some(r_end) => cursor = r_end,
            None => return Err(NotTdMemory::NotRam),
        }
    }
    if cursor >= end {
        Ok(())
    } else {
        Err(NotTdMemory::NotRam)
    }
}

/// Why a range cannot be onlined or offlined.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OnlineError {
    /// Base or size is not a multiple of [`PAGE`].
    Misaligned,
    /// Empty (or, for callers building it from raw words, wraps the
    /// address space).
    Malformed,
    /// Overlaps RAM the platform record found at boot (already TD memory).
    OverlapsBootRam,
    /// Not entirely inside the hot-plug window (or there is none).
    OutsideHotplugWindow,
    /// Overlaps a range already online.
    OverlapsOnline,
    /// Offline: no online range is exactly this one.
    NotOnline,
    /// The table holds no more ranges.
    TableFull,
}

/// The ranges onlined since boot: at most `N`, unordered, disjoint.
#[derive(Clone, Debug)]
pub struct OnlineTable<const N: usize> {
    ranges: [PhysRange; N],
    count: usize,
}

impl<const N: usize> Default for OnlineTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> OnlineTable<N> {
    #[must_use]
    pub const fn new() -> Self {
        OnlineTable {
            ranges: [PhysRange::EMPTY; N],
            count: 0,
        }
    }

    /// The online ranges.
    #[must_use]
    pub fn ranges(&self) -> &[PhysRange] {
        &self.ranges[..self.count]
    }

    /// Records `range` as online after checking it against the hot-plug
    /// `window` and the RAM found at boot. Nothing changes on error.
    ///
    /// # Errors
    /// The first rule broken, in the order of [`OnlineError`]'s variants.
    pub fn online(
        &mut self,
        range: PhysRange,
        window: Option<PhysRange>,
        boot_ram: &[PhysRange],
    ) -> Result<(), OnlineError> {
        if !range.base().is_aligned(PAGE) || !range.end().is_aligned(PAGE) {
            return Err(OnlineError::Misaligned);
        }
        if range.is_empty() {
            return Err(OnlineError::Malformed);
        }
        // Boot RAM first: it is the more precise answer for memory the
        // memory authority merely held offline at boot.
        if boot_ram.iter().any(|r| r.overlaps(range)) {
            return Err(OnlineError::OverlapsBootRam);
        }
        if !window.is_some_and(|w| w.contains(range)) {
            return Err(OnlineError::OutsideHotplugWindow);
        }
        if self.ranges().iter().any(|r| r.overlaps(range)) {
            return Err(OnlineError::OverlapsOnline);
        }
        if self.count == N {
            return Err(OnlineError::TableFull);
        }
        self.ranges[self.count] = range;
        self.count += 1;
        Ok(())
    }

    /// Removes the online range exactly equal to `range`.
    ///
    /// # Errors
    /// [`OnlineError::NotOnline`] if there is none (nothing changes).
    pub fn offline(&mut self, range: PhysRange) -> Result<(), OnlineError> {
        let i = self
            .ranges()
            .iter()
            .position(|&r| r == range && !r.is_empty())
            .ok_or(OnlineError::NotOnline)?;
        self.count -= 1;
        self.ranges[i] = self.ranges[self.count];
        self.ranges[self.count] = PhysRange::EMPTY;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::{prop, prop_assert, prop_assert_eq, proptest};
    use std::vec::Vec;

    use super::{check_td_memory, NotTdMemory, OnlineError, OnlineTable, PhysRange, PAGE};

    const MIB: u64 = 1 << 20;

    fn r(base: u64, size: u64) -> PhysRange {
        PhysRange::literal(base, size)
    }

    #[test]
    fn td_memory_examples() {
        let ram = [
            r(0, 640 << 10),
            r(MIB, 1023 * MIB),
            r(4096 * MIB, 1024 * MIB),
        ];
        let excl = [r(0, MIB), r(MIB, 4 * MIB), r(16 * MIB, 8 * MIB)];
        assert_eq!(check_td_memory(r(64 * MIB, MIB), &ram, &excl), Ok(()));
        assert_eq!(
            check_td_memory(r(0x9000, PAGE), &ram, &excl),
            Err(NotTdMemory::Excluded { index: 0 })
        );
        assert_eq!(
            check_td_memory(r(MIB, PAGE), &ram, &excl),
            Err(NotTdMemory::Excluded { index: 1 })
        );
        assert_eq!(
            check_td_memory(r(20 * MIB, PAGE), &ram, &excl),
            Err(NotTdMemory::Excluded { index: 2 })
        );
        // LAPIC, a hole between RAM ranges, memory far beyond RAM.
        for bad in [
            r(0xfee0_0000, PAGE),
            r(1023 * MIB, 2 * MIB),
            r(1 << 40, PAGE),
        ] {
            assert_eq!(
                check_td_memory(bad, &ram, &excl),
                Err(NotTdMemory::NotRam),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_td_memory(r(64 * MIB, 0), &ram, &excl),
            Err(NotTdMemory::Malformed)
        );
        // Touching ranges cover together.
        let split = [r(0, 8 * MIB), r(8 * MIB, 8 * MIB)];
        assert_eq!(check_td_memory(r(7 * MIB, 2 * MIB), &split, &[]), Ok(()));
    }

    #[test]
    fn online_rules() {
        let window = Some(r(8 << 30, 4 << 30));
        let ram = [r(MIB, 1023 * MIB)];
        let mut t: OnlineTable<2> = OnlineTable::new();
        assert_eq!(
            t.online(r(0xfee0_0000, PAGE), window, &ram),
            Err(OnlineError::OutsideHotplugWindow)
        );
        assert_eq!(
            t.online(r(8 << 30, PAGE), None, &ram),
            Err(OnlineError::OutsideHotplugWindow)
        );
        assert_eq!(
            t.online(r((8 << 30) + 1, PAGE), window, &ram),
            Err(OnlineError::Misaligned)
        );
        assert_eq!(
            t.online(r(8 << 30, 0), window, &ram),
            Err(OnlineError::Malformed)
        );
        assert_eq!(
            t.online(r(u64::MAX - 2 * PAGE + 1, PAGE), window, &ram),
            Err(OnlineError::OutsideHotplugWindow),
            "the top page of the address space"
        );
        assert_eq!(
            t.online(r(12 << 30, PAGE), window, &ram),
            Err(OnlineError::OutsideHotplugWindow),
            "just past the window"
        );
        let in_ram = Some(r(0, 4 << 30));
        assert_eq!(
            t.online(r(512 * MIB, PAGE), in_ram, &ram),
            Err(OnlineError::OverlapsBootRam)
        );
        assert_eq!(t.online(r(8 << 30, 1 << 30), window, &ram), Ok(()));
        assert_eq!(
            t.online(r((9 << 30) - PAGE, 2 * PAGE), window, &ram),
            Err(OnlineError::OverlapsOnline)
        );
        assert_eq!(t.online(r(9 << 30, 1 << 30), window, &ram), Ok(()));
        assert_eq!(
            t.online(r(10 << 30, PAGE), window, &ram),
            Err(OnlineError::TableFull)
        );
        assert_eq!(
            t.offline(r(8 << 30, PAGE)),
            Err(OnlineError::NotOnline),
            "only exact matches go offline"
        );
        assert_eq!(t.offline(r(8 << 30, 1 << 30)), Ok(()));
        assert_eq!(t.ranges(), &[r(9 << 30, 1 << 30)]);
        assert_eq!(t.offline(r(8 << 30, 1 << 30)), Err(OnlineError::NotOnline));
    }

    fn ranges() -> impl proptest::strategy::Strategy<Value = Vec<PhysRange>> {
        prop::collection::vec((0u64..48, 0u64..16), 0..6)
            .prop_map(|v| v.into_iter().map(|(b, s)| r(b, s)).collect())
    }

    use proptest::strategy::Strategy as _;

    proptest! {
        /// Against a byte-by-byte model on a small address space.
        #[test]
        fn td_memory_matches_a_model(
            included in ranges(),
            excluded in ranges(),
            base in 0u64..64,
            size in 0u64..24,
        ) {
            let range = r(base, size);
            let inside = |x: &PhysRange, a: u64| x.contains_addr(phys::PhysAddr(a));
            let model = size != 0
                && (base..base + size).all(|a| included.iter().any(|x| inside(x, a)))
                && !(base..base + size).any(|a| excluded.iter().any(|x| inside(x, a)));
            let got = check_td_memory(range, &included, &excluded);
            prop_assert_eq!(got.is_ok(), model, "{:?}", got);
            if let Err(NotTdMemory::Excluded { index }) = got {
                let x = excluded[index];
                prop_assert!((base..base + size).any(|a| inside(&x, a)));
            }
        }

        /// The table stays disjoint, inside the window and off boot RAM,
        /// whatever is onlined and offlined.
        #[test]
        fn online_table_keeps_its_invariants(
            ops in prop::collection::vec((prop::bool::ANY, 0u64..40, 0u64..8), 0..40),
        ) {
            let w = r(8 * PAGE, 24 * PAGE);
            let window = Some(w);
            let ram = [r(0, 10 * PAGE)];
            let mut t: OnlineTable<4> = OnlineTable::new();
            for (online, b, s) in ops {
                let x = r(b * PAGE, s * PAGE);
                let before = t.ranges().to_vec();
                let res = if online { t.online(x, window, &ram) } else { t.offline(x) };
                if res.is_err() {
                    prop_assert_eq!(t.ranges(), &before[..]);
                }
                for (i, a) in t.ranges().iter().enumerate() {
                    prop_assert!(w.contains(*a));
                    prop_assert!(!ram[0].overlaps(*a));
                    for c in &t.ranges()[i + 1..] {
                        prop_assert!(!a.overlaps(*c));
                    }
                }
            }
        }
    }
}
