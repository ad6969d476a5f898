//! Physical addresses, byte lengths and [`PhysRange`], the one checked physical range type.
//!
//! Why a crate of its own: the kernel (`kerncore`), the software TDX module (`tdx-emu`), the
//! TDMR planner and tdx-host all ask the same questions of physical ranges (does it wrap, do two
//! share a byte, what is left after cutting holes out), and none of them may depend on another
//! for it: `abi` is the kernel↔task contract and the emulator models a third-party module that
//! knows nothing of our syscalls, while `tdx-abi` is the module's wire format. This crate has no
//! dependencies, no `unsafe` and no allocation, so every one of them — on the host and on bare
//! metal — can use it without a cycle.
//!
//! Invariants:
//! - A [`PhysRange`] is `[base, end)` with `base <= end`: it never wraps the 64-bit space, so
//!   `end` always exists. Every constructor either checks ([`PhysRange::new`],
//!   [`PhysRange::from_bounds`] return `None` for a wrapping input) or clamps
//!   ([`PhysRange::saturating`], for models that must answer for any operand).
//! - An empty range names no memory: it overlaps nothing and [`PhysRange::subtract`] of it yields
//!   nothing.
//! - All arithmetic is checked or saturating; nothing here panics except
//!   [`PhysRange::literal`], which exists for constants and panics at compile time there.

#![no_std]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

use core::fmt;

/// A host physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(pub u64);

/// A length in bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteLen(pub u64);

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for ByteLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl PhysAddr {
    /// Whether the address is a multiple of `align` (a power of two).
    #[must_use]
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align - 1) == 0
    }
}

/// A physical range `[base, end)` that does not wrap (see the module invariants).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysRange {
    base: u64,
    end: u64,
}

impl fmt::Debug for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base, self.end)
    }
}

impl PhysRange {
    /// The empty range at address 0.
    pub const EMPTY: PhysRange = PhysRange { base: 0, end: 0 };

    /// `[base, base + size)`, or `None` if it would wrap the 64-bit space.
    #[must_use]
    pub const fn new(base: u64, size: u64) -> Option<Self> {
        match base.checked_add(size) {
            Some(end) => Some(PhysRange { base, end }),
            None => None,
        }
    }

    /// `[start, end)`, or `None` if `end < start`.
    #[must_use]
    pub const fn from_bounds(start: u64, end: u64) -> Option<Self> {
        if start <= end {
            Some(PhysRange { base: start, end })
        } else {
            None
        }
    }

    /// `[base, base + size)` cut off at the top of the address space: what a model that must
    /// answer for any operand (the emulated module, the kernel's memory checks) treats a wrapping
    /// operand as.
    #[must_use]
    pub const fn saturating(base: u64, size: u64) -> Self {
        PhysRange {
            base,
            end: base.saturating_add(size),
        }
    }

    /// `[base, base + size)` for constants and tests: panics if the range wraps, which in a
    /// `const` item is a compile-time error. Code handling input uses [`PhysRange::new`].
    #[must_use]
    pub const fn literal(base: u64, size: u64) -> Self {
        match PhysRange::new(base, size) {
            Some(r) => r,
            None => panic!("physical range wraps the address space"),
        }
    }

    /// First byte.
    #[must_use]
    pub const fn base(self) -> PhysAddr {
        PhysAddr(self.base)
    }

    /// Length in bytes.
    #[must_use]
    pub const fn size(self) -> ByteLen {
        ByteLen(self.end - self.base)
    }

    /// One past the last byte.
    #[must_use]
    pub const fn end(self) -> PhysAddr {
        PhysAddr(self.end)
    }

    /// Whether the range names no memory.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.base == self.end
    }

    /// Whether the two ranges share a byte (empty ranges share none).
    #[must_use]
    pub const fn overlaps(self, other: PhysRange) -> bool {
        !self.is_empty() && !other.is_empty() && self.base < other.end && other.base < self.end
    }

    /// Whether every byte of `inner` is in this range (an empty `inner` must lie within its
    /// bounds too, so a range cannot be "contained" from the far end of the address space).
    #[must_use]
    pub const fn contains(self, inner: PhysRange) -> bool {
        self.base <= inner.base && inner.end <= self.end
    }

    /// Whether `pa` is a byte of this range.
    #[must_use]
    pub const fn contains_addr(self, pa: PhysAddr) -> bool {
        self.base <= pa.0 && pa.0 < self.end
    }

    /// The bytes both ranges hold, or `None` if they share none.
    #[must_use]
    pub const fn intersect(self, other: PhysRange) -> Option<PhysRange> {
        if !self.overlaps(other) {
            return None;
        }
        let base = if self.base > other.base {
            self.base
        } else {
            other.base
        };
        let end = if self.end < other.end {
            self.end
        } else {
            other.end
        };
        Some(PhysRange { base, end })
    }

    /// The largest range inside this one whose base and end are multiples of `align` (a power of
    /// two), or `None` if no aligned byte remains.
    #[must_use]
    pub const fn align_inward(self, align: u64) -> Option<PhysRange> {
        let mask = align - 1;
        let Some(bumped) = self.base.checked_add(mask) else {
            return None;
        };
        let base = bumped & !mask;
        let end = self.end & !mask;
        if base < end {
            Some(PhysRange { base, end })
        } else {
            None
        }
    }

    /// Calls `f` with every maximal non-empty piece of this range that no range of `holes`
    /// touches, in address order. `holes` may be unsorted, overlap each other, be empty, or reach
    /// outside this range. At most one piece more than there are holes comes out.
    pub fn subtract<I>(self, holes: I, mut f: impl FnMut(PhysRange))
    where
        I: IntoIterator<Item = PhysRange>,
        I::IntoIter: Clone,
    {
        let holes = holes.into_iter();
        let mut cursor = self.base;
        // Each step either ends the walk or moves `cursor` past the end of a hole that starts at
        // or before it, so at most one step more than there are holes happens.
        while cursor < self.end {
            let rest = PhysRange {
                base: cursor,
                end: self.end,
            };
            let next = holes
                .clone()
                .filter(|h| h.overlaps(rest))
                .min_by_key(|h| h.base);
            let Some(h) = next else {
                f(rest);
                return;
            };
            if h.base > cursor {
                f(PhysRange {
                    base: cursor,
                    end: h.base,
                });
            }
            cursor = h.end;
        }
    }
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
mod tests;
