//! The boot loader's memory map, parsed from bytes.
//!
//! PVH (`hvm_start_info`) and multiboot2 both describe memory as E820-style
//! entries (`base: u64, size: u64, kind: u32`); a UEFI memory map is
//! translated into those kinds (`multiboot2::efi_kind`). The kernel copies
//! the loader's bytes into slices and parses them here and in
//! [`crate::multiboot2`], so every parser runs on the host under property
//! tests as well.
//!
//! Invariants: a [`MemoryMap`] holds only entries whose end `base + size`
//! fits in a `u64` (an entry that wraps is [`Rejected::Wraps`] and
//! skipped, never stored), so every user may compute `end()` without
//! overflow. Parsing never reads outside the slice it is given and never
//! panics, whatever the bytes say.

/// E820 type 1: usable RAM.
pub const E820_RAM: u32 = 1;

/// Size of one PVH memory-map entry (`hvm_memmap_table_entry`).
pub const E820_ENTRY_SIZE: usize = 24;

/// One memory-map entry whose end fits in 64 bits.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemRange {
    pub base: u64,
    pub size: u64,
    pub kind: u32,
}

impl MemRange {
    /// One past the last byte. Cannot overflow: a range that would is never
    /// stored in a [`MemoryMap`].
    #[must_use]
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// Why an entry was not stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// `base + size` does not fit in 64 bits.
    Wraps { base: u64, size: u64 },
    /// The map is full; the entry was dropped.
    Full,
    /// An EFI descriptor whose start is not page-aligned (the UEFI
    /// specification requires it); skipped.
    Misaligned { base: u64 },
}

/// At most `N` memory ranges, in the loader's order.
pub struct MemoryMap<const N: usize> {
    ranges: [MemRange; N],
    count: usize,
}

impl<const N: usize> Default for MemoryMap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MemoryMap<N> {
    #[must_use]
    pub const fn new() -> Self {
        MemoryMap {
            ranges: [MemRange {
                base: 0,
                size: 0,
                kind: 0,
            }; N],
            count: 0,
        }
    }

    #[must_use]
    pub fn ranges(&self) -> &[MemRange] {
        &self.ranges[..self.count]
    }

    /// Stores `r` unless it wraps or the map is full.
    pub fn push(&mut self, r: MemRange) -> Result<(), Rejected> {
        if r.base.checked_add(r.size).is_none() {
            return Err(Rejected::Wraps {
                base: r.base,
                size: r.size,
            });
        }
        let slot = self.ranges.get_mut(self.count).ok_or(Rejected::Full)?;
        *slot = r;
        self.count += 1;
        Ok(())
    }

    /// Stores `r`, or extends the last stored range by it when that one
    /// has the same kind and ends where `r` starts (firmware maps split
    /// memory into many touching descriptors).
    pub fn push_merged(&mut self, r: MemRange) -> Result<(), Rejected> {
        let Some(end) = r.base.checked_add(r.size) else {
            return Err(Rejected::Wraps {
                base: r.base,
                size: r.size,
            });
        };
        if let Some(last) = self
            .count
            .checked_sub(1)
            .and_then(|i| self.ranges.get_mut(i))
        {
            if last.kind == r.kind && last.end() == r.base {
                // `end` fits in 64 bits, so the merged range does too.
                last.size = end - last.base;
                return Ok(());
            }
        }
        self.push(r)
    }

    /// Whether `[base, base+size)` is wholly usable RAM (possibly spanning
    /// touching or overlapping RAM entries).
    #[must_use]
    pub fn is_ram(&self, base: u64, size: u64) -> bool {
        let Some(end) = base.checked_add(size) else {
            return false;
        };
        let mut cursor = base;
        let mut progressed = true;
        while cursor < end && progressed {
            progressed = false;
            for r in self.ranges().iter().filter(|r| r.kind == E820_RAM) {
                if r.base <= cursor && cursor < r.end() {
                    cursor = r.end();
                    progressed = true;
                }
            }
        }
        cursor >= end
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let b = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Reads one E820 entry (at least 20 bytes: base, size, type).
fn entry(bytes: &[u8]) -> Option<MemRange> {
    Some(MemRange {
        base: u64_at(bytes, 0)?,
        size: u64_at(bytes, 8)?,
        kind: u32_at(bytes, 16)?,
    })
}

/// Parses a PVH memory-map table (24-byte entries) into `map`; each entry
/// not stored is reported to `rejected`.
pub fn parse_e820<const N: usize>(
    table: &[u8],
    map: &mut MemoryMap<N>,
    mut rejected: impl FnMut(Rejected),
) {
    for e in table.chunks_exact(E820_ENTRY_SIZE).filter_map(entry) {
        if let Err(why) = map.push(e) {
            rejected(why);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::{any, prop, prop_assert, proptest};
    use std::vec::Vec;

    use super::{parse_e820, MemRange, MemoryMap, Rejected, E820_RAM};

    /// PVH/E820 entries as bytes (24 bytes each).
    pub fn e820(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(base, size, kind) in entries {
            out.extend_from_slice(&base.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        out
    }

    #[test]
    fn an_entry_that_wraps_is_skipped_and_reported() {
        let table = e820(&[
            (0, 0x9_f000, E820_RAM),
            (0xffff_ffff_ffff_f000, 0x2000, E820_RAM),
            (u64::MAX, 1, 2),
            (0x10_0000, 0x1000_0000, E820_RAM),
        ]);
        let mut map = MemoryMap::<8>::new();
        let mut seen = Vec::new();
        parse_e820(&table, &mut map, |r| seen.push(r));
        assert_eq!(map.ranges().len(), 2);
        assert_eq!(
            seen,
            [
                Rejected::Wraps {
                    base: 0xffff_ffff_ffff_f000,
                    size: 0x2000
                },
                Rejected::Wraps {
                    base: u64::MAX,
                    size: 1
                }
            ]
        );
        assert!(map.is_ram(0x10_0000, 0x1000));
        assert!(!map.is_ram(0xffff_ffff_ffff_f000, 0x1000));
    }

    #[test]
    fn a_full_map_drops_the_rest() {
        let table = e820(&[(0, 1, 1), (1, 1, 1), (2, 1, 1)]);
        let mut map = MemoryMap::<2>::new();
        let mut full = 0;
        parse_e820(&table, &mut map, |r| {
            full += usize::from(r == Rejected::Full)
        });
        assert_eq!((map.ranges().len(), full), (2, 1));
    }

    #[test]
    fn touching_ranges_of_one_kind_merge() {
        let mut map = MemoryMap::<2>::new();
        let r = |base, size, kind| MemRange { base, size, kind };
        map.push_merged(r(0x1000, 0x1000, 1)).unwrap();
        map.push_merged(r(0x2000, 0x3000, 1)).unwrap();
        // Another kind, then a gap: new ranges.
        map.push_merged(r(0x5000, 0x1000, 2)).unwrap();
        assert_eq!(map.push_merged(r(0x7000, 0x1000, 2)), Err(Rejected::Full));
        map.push_merged(r(0x6000, 0x1000, 2)).unwrap();
        assert_eq!(map.ranges(), [r(0x1000, 0x4000, 1), r(0x5000, 0x2000, 2)]);
        assert_eq!(
            map.push_merged(r(u64::MAX - 0xfff, 0x2000, 2)),
            Err(Rejected::Wraps {
                base: u64::MAX - 0xfff,
                size: 0x2000
            })
        );
    }

    proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]

        #[test]
        fn random_maps_never_panic_and_keep_only_ranges_that_fit(
            entries in prop::collection::vec((any::<u64>(), any::<u64>(), 0u32..4), 0..40),
            probe in (any::<u64>(), any::<u64>()),
        ) {
            let mut map = MemoryMap::<32>::new();
            parse_e820(&e820(&entries), &mut map, |_| {});
            for r in map.ranges() {
                prop_assert!(r.base.checked_add(r.size).is_some());
            }
            let _ = map.is_ram(probe.0, probe.1);
        }
    }
}
