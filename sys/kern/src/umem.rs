//! Task memory as the kernel sees it: claims to check, then copies.
//!
//! A pointer and length from a task is a [`USlice`] (the type the syscall
//! argument structs of `abi::syscall` carry): an *allegation* that
//! the task may access that memory. The only way to turn it into bytes is
//! to check it against the task's regions ([`Task::can_access`], using
//! `kerncore::regions_cover`, which is host-tested; a slice inside the
//! task's RAM is accepted without the walk because startup checked that the
//! regions cover the RAM read-write); copies go through the kernel's direct
//! map, never through the task's own mapping.

pub use abi::syscall::USlice;
use abi::{lease_attr, ULease};

use crate::arch::paging::phys_to_virt;
use crate::tables::{region_attr, RegionDesc};
use crate::task::Task;

impl kerncore::Region for RegionDesc {
    fn base(&self) -> u64 {
        self.base
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn attributes(&self) -> u32 {
        self.attributes
    }
}

impl Task {
    /// Whether this task may read (and, with `write`, write) `slice`.
    ///
    /// An empty slice names no memory and is always fine. Inlined: the
    /// common answers take a few instructions, and only the general walk is
    /// a call (`kerncore::regions_cover`). First the task's RAM (its data,
    /// bss and stack, where nearly every IPC buffer lives): startup refuses
    /// to boot unless the regions cover all of it read-write
    /// (`startup::create_tasks`), so a slice inside it is the regions'
    /// answer without reading them.
    #[inline(always)]
    #[must_use]
    pub fn can_access(&self, slice: USlice, write: bool) -> bool {
        // Empty: names no memory (IPC without payload, the common case).
        if slice.len == 0 {
            return true;
        }
        let (ram_base, ram_size) = self.ram();
        // No overflow: an offset above the RAM's size fails the first test
        // (a base below the RAM wraps to a huge offset), and then the
        // subtraction cannot underflow.
        let offset = slice.base.wrapping_sub(ram_base);
        if offset <= ram_size && slice.len <= ram_size - offset {
            return true;
        }
        let need = if write {
            region_attr::READ | region_attr::WRITE
        } else {
            region_attr::READ
        };
        kerncore::regions_cover(self.regions(), slice.base, slice.len, need)
    }
}

/// Copies `len` bytes between checked task slices.
///
/// # Safety
/// Both ranges must have been checked with [`Task::can_access`] for their
/// owners (read for `src`, write for `dst`).
pub unsafe fn copy(src: u64, dst: u64, len: usize) {
    // An empty slice may name any address (it names no memory).
    if len == 0 {
        return;
    }
    // Safety: checked task memory is RAM covered by the direct map; task
    // regions never overlap each other, and a task copying within itself
    // uses `copy` (memmove semantics) to be safe anyway.
    unsafe { core::ptr::copy(phys_to_virt(src), phys_to_virt(dst), len) }
}

/// Copies `len` bytes from a checked slice of one task to a checked slice of
/// another: the IPC fast path's payload copy. Eight bytes a step (`rep
/// movsq`), then the last few bytes one by one; inlined, so a small message
/// costs about one instruction per quadword, not a `memmove` call that first
/// works out a direction and an alignment.
///
/// # Safety
/// As [`copy`] (`src` checked readable for its owner, `dst` writable for its
/// owner), and the owners are two different tasks: task regions never
/// overlap, so neither do the ranges, and a forward copy is exact.
#[inline(always)]
pub unsafe fn copy_between_tasks(src: u64, dst: u64, len: usize) {
    // Safety: as the function's contract; both ranges lie in RAM covered by
    // the direct map. RCX counts quadwords, then the remaining bytes; RSI
    // and RDI walk up (DF is clear in the kernel, as the ABI keeps it).
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) len & 7,
            inout("rcx") len / 8 => _,
            inout("rsi") phys_to_virt(src) => _,
            inout("rdi") phys_to_virt(dst) => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Reads checked task memory into a kernel buffer.
///
/// # Safety
/// `src..src+dst.len()` must have been checked readable for its owner.
pub unsafe fn read_into(src: u64, dst: &mut [u8]) {
    if dst.is_empty() {
        return;
    }
    // Safety: as for `copy`; `dst` is kernel memory.
    unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(src), dst.as_mut_ptr(), dst.len()) }
}

/// Decodes one lease entry already copied into kernel memory.
#[must_use]
pub fn decode_lease(raw: &[u8]) -> ULease {
    let word = |o: usize| {
        raw.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    ULease {
        attributes: word(0) as u32,
        reserved: (word(0) >> 32) as u32,
        base: word(8),
        len: word(16),
    }
}

/// Whether a lease's memory is accessible to its lender as it claims.
#[must_use]
pub fn lease_is_valid(lender: &Task, lease: &ULease) -> bool {
    let known = lease_attr::READ | lease_attr::WRITE;
    if lease.attributes & !known != 0 || lease.reserved != 0 {
        return false;
    }
    lender.can_access(
        USlice::new(lease.base, lease.len),
        lease.attributes & lease_attr::WRITE != 0,
    )
}
