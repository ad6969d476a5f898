//! Physical-address and size newtypes, and the half-open span used inside the planner.
//!
//! The range type itself is [`phys::PhysRange`], re-exported here.
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

/// Addresses, lengths and ranges are the workspace's one vocabulary (`phys`): the planner, tdx-host
/// and tdx-tools use the same checked [`PhysRange`], whose fields are private so that no range
/// can wrap.
pub use phys::{ByteLen, PhysAddr, PhysRange};

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

    /// Intersection (possibly empty); the arithmetic is `PhysRange`'s, like every overlap test
    /// in the workspace.
    pub const fn clip(&self, other: Span) -> Span {
        match self.to_range().intersect(other.to_range()) {
            Some(r) => Span::of(r),
            None => Span::EMPTY,
        }
    }

    pub const fn overlaps(&self, other: Span) -> bool {
        self.to_range().overlaps(other.to_range())
    }

    /// The span of a range (a range never wraps, so `start <= end` holds).
    pub const fn of(r: PhysRange) -> Span {
        Span {
            start: r.base().0,
            end: r.end().0,
        }
    }

    pub const fn contains(&self, other: Span) -> bool {
        self.to_range().contains(other.to_range())
    }

    pub const fn to_range(self) -> PhysRange {
        // `start <= end` is this type's invariant, so `from_bounds` cannot refuse; the empty
        // fallback only keeps the function total.
        match PhysRange::from_bounds(self.start, self.end) {
            Some(r) => r,
            None => PhysRange::EMPTY,
        }
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
