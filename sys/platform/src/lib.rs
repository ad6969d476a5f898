//! Platform discovery: every CPU and every byte, found at boot.
//!
//! TDX initialisation needs the complete picture before it starts: every
//! logical CPU must run TDH.SYS.LP.INIT before TDH.SYS.CONFIG, one CPU of
//! every package must run TDH.SYS.KEY.CONFIG, and every RAM range must be
//! known with its NUMA node so the TDMRs and PAMTs can be placed. The boot
//! protocols (PVH, multiboot2) give only an E820 list; CPUs, nodes and the
//! memory hot-plug window live in ACPI. This crate turns those tables into
//! an [`abi::platform::PlatformRecord`].
//!
//! # How the kernel uses it
//!
//! 1. The boot CPU, single-threaded, after the direct map of physical
//!    memory is up, implements [`PhysRead`] over that map (a read outside
//!    the map returns `false`, never faults).
//! 2. It finds the RSDP address: PVH `hvm_start_info.rsdp_paddr` (offset
//!    32; 0 means absent), or multiboot2 tag 15 (ACPI 2.0+ RSDP copy,
//!    preferred) or tag 14 (ACPI 1.0 RSDP copy). A multiboot2 tag holds a
//!    *copy* of the RSDP, not its address: the kernel copies the payload
//!    out of the boot information and passes the copy's address. Only
//!    with neither does [`acpi::find_rsdp`] scan the first KiB of the EBDA
//!    and 0xE0000–0xFFFFF (ACPI 6.5 §5.2.5.1).
//! 3. It calls [`discover`] with the E820 RAM ranges (type 1 only), the
//!    physical ranges of the loaded image and the boot CPU's CPUID, prints
//!    [`Report`] if it is not clean, and keeps the record (and the FADT
//!    for the memory hot-plug driver: SCI, GPE0, PM1a).
//! 4. tdx-host gets the record through kernel IPC, encoded with
//!    [`abi::platform::encode`].
//!
//! # Invariants and pattern
//!
//! - Pure functions over a [`PhysRead`]; no allocation, no `unsafe`, no
//!   panics on any input: every table byte is untrusted.
//! - Every table is validated (signature, length bounds, checksum) before
//!   any entry is read, and every loop is bounded by a length that was
//!   checked against [`acpi::MAX_TABLE_LEN`] or by an explicit cap, so a
//!   table claiming 2^32 entries or an entry of length 0 ends in an error.
//! - Missing or malformed tables never stop the boot: [`build_record`]
//!   falls back (one node; the boot CPU alone) and says so in the record
//!   flags and in the [`Report`].

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

pub mod acpi;
pub mod fadt;
pub mod madt;
pub mod record;
pub mod srat;
pub mod topology;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod qemu_tests;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod x2apic_tests;

use core::fmt;

pub use acpi::{AcpiError, Signature};
pub use record::{build_record, discover, Discovery, Report};
pub use topology::{Cpuid, CpuidResult, Topology, TopologySource};

/// A physical address.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(pub u64);

impl PhysAddr {
    /// `self + off`, or `None` if that wraps.
    #[must_use]
    pub fn checked_add(self, off: u64) -> Option<PhysAddr> {
        self.0.checked_add(off).map(PhysAddr)
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A local APIC id: 8 bits in xAPIC mode, 32 bits (x2APIC id) otherwise.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApicId(pub u32);

/// An ACPI proximity domain (SRAT). Sparse and firmware-chosen; the record
/// maps them to dense node indices.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProximityDomain(pub u32);

/// Reads physical memory for the parsers.
///
/// The kernel implements it over its direct map; tests over byte vectors.
/// Implementations must return `false` (not fault, not panic) for any range
/// they cannot read in full, including ranges that wrap.
pub trait PhysRead {
    /// Fills `buf` from physical address `pa`. Returns whether all of
    /// `buf.len()` bytes were read.
    #[must_use]
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool;
}

impl<T: PhysRead + ?Sized> PhysRead for &T {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        (**self).read(pa, buf)
    }
}
