//! The boot loader's memory map, parsed from bytes.
//!
//! PVH (`hvm_start_info`) and multiboot2 both describe memory as E820-style
//! entries (`base: u64, size: u64, kind: u32`). The kernel copies the
//! loader's bytes into slices and parses them here, so every parser runs on
//! the host under property tests as well.
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

/// Multiboot2 tag types used here.
const MB2_TAG_END: u32 = 0;
const MB2_TAG_MMAP: u32 = 6;
const MB2_TAG_ACPI_OLD: u32 = 14;
const MB2_TAG_ACPI_NEW: u32 = 15;

/// Parses a multiboot2 information structure (`mbi` starts at its total
/// size field and is at most that long) into `map`. Returns the offset in
/// `mbi` of the RSDP copy (tag 15, ACPI 2.0+, wins over tag 14).
pub fn parse_multiboot2<const N: usize>(
    mbi: &[u8],
    map: &mut MemoryMap<N>,
    mut rejected: impl FnMut(Rejected),
) -> Option<usize> {
    let total = usize::try_from(u32_at(mbi, 0)?).ok()?.min(mbi.len());
    let mbi = &mbi[..total];
    let mut rsdp = None;
    let mut tag = 8usize;
    while let (Some(kind), Some(size)) = (u32_at(mbi, tag), u32_at(mbi, tag + 4)) {
        let size = size as usize;
        if kind == MB2_TAG_END || size < 8 {
            break;
        }
        let Some(body) = tag.checked_add(size).and_then(|end| mbi.get(tag..end)) else {
            break;
        };
        if kind == MB2_TAG_ACPI_NEW || (kind == MB2_TAG_ACPI_OLD && rsdp.is_none()) {
            rsdp = Some(tag + 8);
        }
        if kind == MB2_TAG_MMAP {
            let entry_size = u32_at(body, 8).unwrap_or(0) as usize;
            if entry_size >= E820_ENTRY_SIZE {
                let entries = body.get(16..).unwrap_or(&[]);
                for e in entries.chunks_exact(entry_size).filter_map(entry) {
                    if let Err(why) = map.push(e) {
                        rejected(why);
                    }
                }
            }
        }
        // Tags are 8-aligned.
        let Some(next) = size.checked_add(7).map(|s| tag + (s & !7)) else {
            break;
        };
        tag = next;
    }
    rsdp
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::{any, prop, prop_assert, proptest};
    use std::vec::Vec;

    use super::{parse_e820, parse_multiboot2, MemRange, MemoryMap, Rejected, E820_RAM};

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

    fn mb2_with_mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let body = e820(entries);
        let tag_size = 16 + body.len();
        let mut out = Vec::new();
        out.extend_from_slice(&0u32.to_le_bytes()); // total, patched below
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&6u32.to_le_bytes());
        out.extend_from_slice(&(tag_size as u32).to_le_bytes());
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&body);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&[0; 8]); // end tag
        let total = out.len() as u32;
        out[..4].copy_from_slice(&total.to_le_bytes());
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
    fn multiboot2_gives_the_same_map() {
        let entries = [
            (0, 0x9_f000, E820_RAM),
            (0xffff_ffff_ffff_f000, 0x2000, E820_RAM),
            (0x10_0000, 0x1000_0000, E820_RAM),
        ];
        let mut map = MemoryMap::<8>::new();
        let mut rejected = 0;
        assert_eq!(
            parse_multiboot2(&mb2_with_mmap(&entries), &mut map, |_| rejected += 1),
            None
        );
        assert_eq!(rejected, 1);
        assert_eq!(
            map.ranges(),
            [
                MemRange {
                    base: 0,
                    size: 0x9_f000,
                    kind: E820_RAM
                },
                MemRange {
                    base: 0x10_0000,
                    size: 0x1000_0000,
                    kind: E820_RAM
                }
            ]
        );
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
            let mut mb = MemoryMap::<32>::new();
            parse_multiboot2(&mb2_with_mmap(&entries), &mut mb, |_| {});
            prop_assert!(mb.ranges() == map.ranges());
        }

        #[test]
        fn random_multiboot2_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut map = MemoryMap::<16>::new();
            if let Some(rsdp) = parse_multiboot2(&bytes, &mut map, |_| {}) {
                prop_assert!(rsdp < bytes.len());
            }
            for r in map.ranges() {
                prop_assert!(r.base.checked_add(r.size).is_some());
            }
        }
    }
}
