//! Physical-address and size newtypes, and the half-open span used inside the planner.
//!
//! Pattern: thin `Copy` newtypes over `u64` so that an address can never be passed where a size
//! is expected (and vice versa). Invariant: [`PhysRange`] is `base .. base + size` with no
//! wrap-around; constructors that could wrap return `None`. All alignment constants come from
//! the TDX ABI notes: TDMRs are 1 GiB-granular, reserved areas and PAMTs 4 KiB-granular (§6).

/// 4 KiB: reserved-area, PAMT and CMR granularity (§5.1, §6).
pub const PAGE_4K: u64 = 1 << 12;
/// 2 MiB large page.
pub const PAGE_2M: u64 = 1 << 21;
/// 1 GiB: TDMR base/size granularity (§6).
pub const GIB: u64 = 1 << 30;
/// 1 MiB: memory below this is never in a CMR (§5.1); RAM there is clamped away.
pub const LOW_MIB: u64 = 1 << 20;

/// Addresses and lengths are the workspace's one vocabulary (`phys`).
pub use phys::{ByteLen, PhysAddr};

/// A physical range `[base, base + size)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct PhysRange {
    /// First byte.
    pub base: PhysAddr,
    /// Length in bytes.
    pub size: ByteLen,
}

impl PhysRange {
    /// `[base, base + size)`.
    #[must_use]
    pub const fn new(base: u64, size: u64) -> Self {
        Self {
            base: PhysAddr(base),
            size: ByteLen(size),
        }
    }

    /// One past the last byte, or `None` if the range wraps the 64-bit space.
    #[must_use]
    pub const fn end(&self) -> Option<PhysAddr> {
        match self.base.0.checked_add(self.size.0) {
            Some(e) => Some(PhysAddr(e)),
            None => None,
        }
    }

    /// Whether the range is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.size.0 == 0
    }

    /// The checked range ([`phys::PhysRange`]) for overlap and subtraction, cut off at the top of
    /// the address space should this one wrap.
    #[must_use]
    pub const fn checked(&self) -> phys::PhysRange {
        phys::PhysRange::saturating(self.base.0, self.size.0)
    }
}

/// Internal half-open span `[start, end)`; `start <= end` always holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub const EMPTY: Span = Span { start: 0, end: 0 };

    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    pub const fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Intersection (possibly empty).
    pub fn clip(&self, other: Span) -> Span {
        let s = if self.start > other.start {
            self.start
        } else {
            other.start
        };
        let e = if self.end < other.end {
            self.end
        } else {
            other.end
        };
        if s < e {
            Span::new(s, e)
        } else {
            Span::EMPTY
        }
    }

    pub const fn overlaps(&self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub const fn contains(&self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub const fn to_range(self) -> PhysRange {
        PhysRange::new(self.start, self.end - self.start)
    }
}

/// Round `x` down to a multiple of `align` (a power of two).
pub(crate) const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Round `x` up to a multiple of `align` (a power of two); saturates at the top of memory.
pub(crate) const fn align_up(x: u64, align: u64) -> u64 {
    match x.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => align_down(u64::MAX, align),
    }
}
