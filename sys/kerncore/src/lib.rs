//! Kernel algorithms split out of `sys/kern` so they can be tested on the
//! host (the kernel itself only builds for bare metal).
//!
//! The one here is the check every syscall makes before the kernel touches
//! task memory: does a claimed range lie entirely in regions the task owns
//! with the needed permission? A range may span regions that touch; it may
//! not wrap, and an empty range is always fine (it names no memory).
//!
//! [`bootmap`] parses the boot loader's memory map from bytes, and
//! [`multiboot2`] GRUB's boot information (EFI memory map, RSDP); [`mailbox`]
//! is the per-CPU request protocol, whose answers carry their request's
//! sequence number.
//! [`directmap`] computes the extent of the kernel's direct map of physical
//! memory, its page sizes and the page-table pages it costs.
//! [`inject`] holds the manifest's deliberate kills (SEAMCALL kill rules, the
//! seeded chaos schedule).
//! [`sched`] is the scheduler's pick over a set of task bits.
//! [`tdmem`] decides what "TD memory" is: the memory the kernel lets the
//! memory authority scrub and hand to the TDX module.

#![no_std]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

pub mod bootmap;
pub mod directmap;
pub mod inject;
pub mod mailbox;
pub mod multiboot2;
pub mod sched;
pub mod tdmem;

/// A region of task memory: `[base, base + size)` with attribute bits.
pub trait Region {
    fn base(&self) -> u64;
    fn size(&self) -> u64;
    fn attributes(&self) -> u32;
}

/// Whether `[base, base + len)` lies in `regions` (sorted by base, not
/// overlapping), using only regions that have every bit of `need`.
///
/// Two steps with one answer: the region holding `base` is found from the
/// top (IPC buffers live mostly on task stacks, in the highest RAM region),
/// and if it has `need` and holds the whole range the answer is yes at once;
/// otherwise (a range across touching regions, or a refusal) the full walk
/// decides. The first step only ever says yes where the walk would.
/// Inlined into the kernel's checks (the IPC fast path makes up to three per
/// round trip); the walk is a call.
#[inline(always)]
#[must_use]
pub fn regions_cover<R: Region>(regions: &[R], base: u64, len: u64, need: u32) -> bool {
    if len == 0 {
        return true;
    }
    let Some(end) = base.checked_add(len) else {
        return false;
    };
    if let Some(r) = regions.iter().rev().find(|r| r.base() <= base) {
        if r.attributes() & need == need && end <= r.base().saturating_add(r.size()) {
            return true;
        }
    }
    regions_cover_walk(regions, base, end, need)
}

/// The general answer of [`regions_cover`] for a non-empty `[base, end)`.
#[inline(never)]
fn regions_cover_walk<R: Region>(regions: &[R], base: u64, end: u64, need: u32) -> bool {
    let mut cursor = base;
    // Sorted regions: one pass, each region either extends the covered
    // prefix or is skipped.
    for r in regions {
        if r.attributes() & need != need {
            continue;
        }
        let r_end = r.base().saturating_add(r.size());
        if r.base() <= cursor && cursor < r_end {
            cursor = r_end;
            if cursor >= end {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::{prop, prop_assert_eq, proptest};
    use std::vec::Vec;

    use super::{regions_cover, Region};

    #[derive(Clone, Debug)]
    struct R(u64, u64, u32);

    impl Region for R {
        fn base(&self) -> u64 {
            self.0
        }
        fn size(&self) -> u64 {
            self.1
        }
        fn attributes(&self) -> u32 {
            self.2
        }
    }

    const RW: u32 = 3;
    const RO: u32 = 1;

    #[test]
    fn inside_touching_and_outside() {
        let rs = [
            R(0x1000, 0x1000, RO),
            R(0x2000, 0x1000, RW),
            R(0x5000, 0x1000, RW),
        ];
        assert!(
            regions_cover(&rs, 0x1800, 0x1000, RO),
            "spans two touching regions"
        );
        assert!(
            !regions_cover(&rs, 0x1800, 0x1000, RW),
            "the first lacks write"
        );
        assert!(!regions_cover(&rs, 0x2800, 0x1000, RO), "runs into a hole");
        assert!(!regions_cover(&rs, 0x0, 0x10, RO));
        assert!(
            regions_cover(&rs, 0x0, 0, RW),
            "empty ranges name no memory"
        );
        assert!(
            !regions_cover(&rs, u64::MAX - 4, 10, RO),
            "wrapping ranges are refused"
        );
    }

    proptest! {
        /// Against a byte-by-byte model on a small address space.
        #[test]
        fn matches_a_model(
            raw in prop::collection::vec((0u64..64, 1u64..16, 0u32..4), 0..6),
            base in 0u64..128,
            len in 0u64..64,
            need in 0u32..4,
        ) {
            // Build sorted, non-overlapping regions from the raw list.
            let mut rs: Vec<R> = Vec::new();
            let mut next_free = 0;
            let mut sorted = raw.clone();
            sorted.sort();
            for (b, s, a) in sorted {
                let b = b.max(next_free);
                rs.push(R(b, s, a));
                next_free = b + s;
            }
            let model = (base..base + len).all(|addr| {
                rs.iter().any(|r| r.0 <= addr && addr < r.0 + r.1 && r.2 & need == need)
            });
            prop_assert_eq!(regions_cover(&rs, base, len, need), model);
        }
    }
}
