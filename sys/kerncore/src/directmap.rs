//! The direct map's extent: which physical memory the kernel maps at its
//! direct-map offset, with which page sizes, and how many page-table pages
//! that costs.
//!
//! Pattern: the kernel feeds every range the platform reports as memory (the
//! boot memory map's RAM and ACPI ranges, the low 4 GiB with its MMIO
//! window, every enabled SRAT memory range including hot-pluggable ones)
//! into an [`Extent`]; the extent rounds each out to 2 MiB, drops what lies
//! beyond the CPU's MAXPHYADDR, and keeps the union as sorted spans. The
//! kernel then maps [`Extent::leaves`] — 1 GiB pages for every whole,
//! aligned GiB when the CPU has them, 2 MiB pages for the rest — and sizes
//! its table pool with [`Extent::table_pages`]. Holes between spans (high
//! PCI windows, reserved ranges above 4 GiB) are not mapped at all, so the
//! kernel has no cached alias of device memory there and a stray access
//! faults.
//!
//! Invariants of an [`Extent`]:
//! - spans are sorted, disjoint and never touch (touching spans are
//!   merged), so a range lies in the map exactly when one span contains it;
//! - every span is 2 MiB-aligned at both ends, non-empty, ends at or below
//!   the MAXPHYADDR bound and at or below the virtual window the direct
//!   map has;
//! - a failed [`Extent::add`] changes nothing.

use crate::tdmem::PhysRange;

/// 2 MiB: the smallest page of the direct map and its rounding granule.
pub const LARGE_PAGE: u64 = 2 << 20;
/// 1 GiB.
pub const HUGE_PAGE: u64 = 1 << 30;
/// What one page-directory-pointer table (one PML4 entry) maps: 512 GiB.
pub const PDPT_REACH: u64 = 512 << 30;
/// The MMIO window of PCs below 4 GiB (LAPIC, IOAPIC, HPET, 32-bit PCI
/// BARs): mapped uncached whatever else the platform says about it.
pub const MMIO_WINDOW: PhysRange = PhysRange::literal(3 << 30, 1 << 30);
/// MAXPHYADDR when CPUID leaf 0x80000008 is absent (Intel SDM, CPUID).
pub const DEFAULT_PHYS_BITS: u8 = 36;
/// The architectural ceiling of MAXPHYADDR.
pub const MAX_PHYS_BITS: u8 = 52;

/// The page size of the direct map's leaves where a whole aligned GiB is
/// covered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 1 GiB pages (CPUID.80000001H:EDX[26], Page1GB).
    Huge1G,
    /// 2 MiB pages only.
    Large2M,
}

impl PageSize {
    /// From the highest extended CPUID leaf and CPUID.80000001H:EDX.
    #[must_use]
    pub fn from_cpuid(max_extended_leaf: u32, edx_80000001: u32) -> Self {
        if max_extended_leaf >= 0x8000_0001 && edx_80000001 & (1 << 26) != 0 {
            PageSize::Huge1G
        } else {
            PageSize::Large2M
        }
    }

    /// For the boot report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PageSize::Huge1G => "1 GiB",
            PageSize::Large2M => "2 MiB",
        }
    }
}

/// MAXPHYADDR from the highest extended CPUID leaf and
/// CPUID.80000008H:EAX (bits 7:0), bounded to what the architecture
/// allows; [`DEFAULT_PHYS_BITS`] if the leaf is absent or says nonsense.
#[must_use]
pub fn max_phys_bits(max_extended_leaf: u32, eax_80000008: u32) -> u8 {
    // Written as one positive condition: rustc 1.95 at opt-level 2
    // miscompiled the equivalent `absent || bits < 36` form (returned the
    // raw byte), which the host tests caught.
    let [bits, ..] = eax_80000008.to_le_bytes();
    if max_extended_leaf >= 0x8000_0008 && bits >= DEFAULT_PHYS_BITS {
        bits.min(MAX_PHYS_BITS)
    } else {
        DEFAULT_PHYS_BITS
    }
}

/// What [`Extent::add`] did with a range.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Added {
    /// Covered whole (rounded out to 2 MiB).
    Whole,
    /// Part or all of it lies at or above the MAXPHYADDR bound, where no
    /// memory can be; only the part below is covered.
    Clipped,
    /// Empty: nothing to cover.
    Empty,
}

/// Why a range cannot join the direct map.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExtentError {
    /// The memory ends (rounded to 2 MiB) at `end`, beyond the `window`
    /// bytes of virtual space the direct map has.
    BeyondWindow { end: u64, window: u64 },
    /// The union would need more than `limit` separate spans.
    TooManySpans { limit: usize },
}

/// One leaf mapping: `size` bytes (1 GiB or 2 MiB) at `pa`, naturally
/// aligned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub pa: u64,
    pub size: u64,
    /// Inside [`MMIO_WINDOW`]: map it uncached.
    pub uncached: bool,
}

/// The union of everything the direct map covers, in at most `N` spans.
pub struct Extent<const N: usize> {
    spans: [PhysRange; N],
    count: usize,
    /// `1 << MAXPHYADDR`.
    phys_limit: u64,
    /// Bytes of virtual space the direct map has.
    window: u64,
}

impl<const N: usize> Extent<N> {
    /// An empty extent for a CPU with `phys_bits` of physical address and a
    /// virtual window of `window` bytes.
    #[must_use]
    pub const fn new(phys_bits: u8, window: u64) -> Self {
        let bits = if phys_bits > MAX_PHYS_BITS {
            MAX_PHYS_BITS
        } else {
            phys_bits
        };
        Extent {
            spans: [PhysRange::EMPTY; N],
            count: 0,
            phys_limit: 1 << bits,
            window,
        }
    }

    /// The spans, sorted, disjoint and not touching.
    #[must_use]
    pub fn spans(&self) -> &[PhysRange] {
        &self.spans[..self.count]
    }

    /// One past the last mapped byte (0 if nothing is mapped).
    #[must_use]
    pub fn end(&self) -> u64 {
        self.spans().last().map_or(0, |s| s.end().0)
    }

    /// Bytes covered.
    #[must_use]
    pub fn covered(&self) -> u64 {
        self.spans().iter().map(|s| s.size().0).sum()
    }

    /// Covers `[base, base + size)`, rounded out to 2 MiB and cut at the
    /// MAXPHYADDR bound. A range that wraps is cut at the top of the
    /// address space first (it is beyond MAXPHYADDR anyway).
    ///
    /// # Errors
    /// [`ExtentError`]; the extent is then unchanged.
    pub fn add(&mut self, base: u64, size: u64) -> Result<Added, ExtentError> {
        if size == 0 {
            return Ok(Added::Empty);
        }
        let end = base.saturating_add(size);
        let clipped = end > self.phys_limit;
        let end = end.min(self.phys_limit);
        if base >= end {
            return Ok(Added::Clipped);
        }
        // Cannot overflow: end <= 2^52.
        let lo = base & !(LARGE_PAGE - 1);
        let hi = end.next_multiple_of(LARGE_PAGE);
        if hi > self.window {
            return Err(ExtentError::BeyondWindow {
                end: hi,
                window: self.window,
            });
        }
        // Spans [first, last) overlap or touch [lo, hi).
        let first = self.spans().partition_point(|s| s.end().0 < lo);
        let last = first + self.spans()[first..].partition_point(|s| s.base().0 <= hi);
        let merged = last - first;
        if merged == 0 && self.count == N {
            return Err(ExtentError::TooManySpans { limit: N });
        }
        let (mut new_lo, mut new_hi) = (lo, hi);
        if merged > 0 {
            new_lo = new_lo.min(self.spans[first].base().0);
            new_hi = new_hi.max(self.spans[last - 1].end().0);
        }
        let span = PhysRange::from_bounds(new_lo, new_hi).unwrap_or(PhysRange::EMPTY);
        if merged == 0 {
            self.spans.copy_within(first..self.count, first + 1);
            self.count += 1;
        } else {
            self.spans.copy_within(last..self.count, first + 1);
            self.count -= merged - 1;
        }
        self.spans[first] = span;
        Ok(if clipped {
            Added::Clipped
        } else {
            Added::Whole
        })
    }

    /// Whether `[base, base + len)` lies in the map. An empty range names
    /// no memory and always does; a wrapping one never.
    #[must_use]
    pub fn covers(&self, base: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some(r) = PhysRange::new(base, len) else {
            return false;
        };
        self.spans().iter().any(|s| s.contains(r))
    }

    /// Page-table pages the map needs below its PML4: one
    /// page-directory-pointer table per 512 GiB slot touched, and one page
    /// directory per GiB mapped with 2 MiB pages (every GiB touched with
    /// [`PageSize::Large2M`]; with [`PageSize::Huge1G`] only a GiB a span
    /// covers in part).
    #[must_use]
    pub fn table_pages(&self, page: PageSize) -> usize {
        let mut pages = 0;
        let mut last_slot = None;
        let mut last_gib = None;
        for s in self.spans() {
            let (b, e) = (s.base().0, s.end().0);
            for slot in b / PDPT_REACH..=(e - 1) / PDPT_REACH {
                if last_slot != Some(slot) {
                    pages += 1;
                    last_slot = Some(slot);
                }
            }
            let (g0, g1) = (b / HUGE_PAGE, (e - 1) / HUGE_PAGE);
            let mut directory = |g: u64| {
                if last_gib != Some(g) {
                    pages += 1;
                    last_gib = Some(g);
                }
            };
            match page {
                PageSize::Large2M => (g0..=g1).for_each(directory),
                // Only a span's first and last GiB can be covered in part.
                PageSize::Huge1G => {
                    for g in [g0, g1] {
                        if b > g * HUGE_PAGE || e < (g + 1) * HUGE_PAGE {
                            directory(g);
                        }
                    }
                }
            }
        }
        pages
    }

    /// The leaf mappings, in address order.
    #[must_use]
    pub fn leaves(&self, page: PageSize) -> Leaves<'_> {
        Leaves {
            spans: self.spans(),
            next: self.spans().first().map_or(0, |s| s.base().0),
            page,
        }
    }
}

/// Iterator over an extent's [`Leaf`] mappings; see [`Extent::leaves`].
pub struct Leaves<'a> {
    spans: &'a [PhysRange],
    next: u64,
    page: PageSize,
}

impl Iterator for Leaves<'_> {
    type Item = Leaf;

    fn next(&mut self) -> Option<Leaf> {
        let span = *self.spans.first()?;
        let pa = self.next;
        let huge = self.page == PageSize::Huge1G
            && pa.is_multiple_of(HUGE_PAGE)
            && span.end().0 - pa >= HUGE_PAGE;
        let size = if huge { HUGE_PAGE } else { LARGE_PAGE };
        self.next = pa + size;
        if self.next >= span.end().0 {
            self.spans = &self.spans[1..];
            if let Some(s) = self.spans.first() {
                self.next = s.base().0;
            }
        }
        Some(Leaf {
            pa,
            size,
            uncached: MMIO_WINDOW.contains_addr(phys::PhysAddr(pa)),
        })
    }
}

#[cfg(test)]
#[path = "directmap_tests.rs"]
mod tests;
