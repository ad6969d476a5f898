//! The privileged instructions the rest of the kernel may ask for, by name.
//!
//! Control registers, MSRs, port I/O, RFLAGS and the halt instructions come
//! from the `x86_64` crate; this module is the one door to them for the
//! portable kernel, which never imports the crate itself. Each wrapper that
//! changes the machine is `unsafe` because its effect is the caller's
//! responsibility (a port write can reset a device, a CR3 write changes
//! what memory means). Hand assembly remains only for WBINVD, which the
//! crate does not provide.

use x86_64::instructions::{hlt, interrupts, port::Port};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr2, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;
use x86_64::registers::rflags::{self, RFlags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The caller must know what the device behind `port` does with the write.
pub unsafe fn outb(port: u16, value: u8) {
    // Safety: forwarded to the caller.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU or the read faults.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // Safety: forwarded to the caller.
    unsafe { Msr::new(msr).read() }
}

/// Loads CR3 with `pml4` and no PCID or cache-control bits.
///
/// # Safety
/// `pml4` must be the physical address of a valid, 4 KiB-aligned top-level
/// table that maps the running kernel.
pub unsafe fn write_cr3(pml4: u64) {
    // Safety: the caller guarantees a page-aligned table address below the
    // physical-address limit, which is all the unchecked constructors
    // assume; skipping the checks keeps the context switch as short as the
    // bare `mov cr3`.
    unsafe {
        let frame = PhysFrame::from_start_address_unchecked(PhysAddr::new_unsafe(pml4));
        Cr3::write(frame, Cr3Flags::empty());
    }
}

/// The faulting address of the last page fault.
#[must_use]
pub fn read_cr2() -> u64 {
    // Raw: a task can fault on a non-canonical address, which the crate's
    // `VirtAddr` would refuse.
    Cr2::read_raw()
}

/// Turns on what the kernel's invariants rest on, where this CPU has it:
/// global pages for the kernel image, SMEP and SMAP so the kernel can
/// neither run nor touch task pages by accident (it reaches task memory
/// only through the direct map), and CR0.WP so read-only mappings bind the
/// kernel too. Returns whether SMEP and SMAP are on.
pub fn enable_protections() -> (bool, bool) {
    let (_, ebx, _, _) = cpuid(7, 0);
    let smep = ebx & (1 << 7) != 0;
    let smap = ebx & (1 << 20) != 0;
    let mut cr4 = Cr4::read() | Cr4Flags::PAGE_GLOBAL;
    cr4.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, smep);
    cr4.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, smap);
    // Safety: PGE, SMEP and SMAP are only set when CPUID reports them, and
    // the kernel never executes or dereferences user pages; WP only makes
    // the kernel honour its own read-only mappings.
    unsafe {
        Cr4::write(cr4);
        Cr0::update(|cr0| cr0.insert(Cr0Flags::WRITE_PROTECT));
    }
    (smep, smap)
}

/// `(eax, ebx, ecx, edx)` of CPUID leaf `leaf`, subleaf `sub`.
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    // CPUID is unprivileged and side-effect free; core::arch handles RBX,
    // which LLVM reserves.
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Halts until the next interrupt with interrupts enabled for exactly the
/// halt, then disables them again.
pub fn wait_for_interrupt() {
    // `sti; hlt` is the race-free idle sequence (STI's one-instruction
    // shadow covers the HLT); the interrupt handlers are installed before
    // the first call, and disabling restores the kernel's interrupts-off
    // invariant.
    interrupts::enable_and_hlt();
    interrupts::disable();
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // With interrupts off, HLT parks the CPU.
        interrupts::disable();
        hlt();
    }
}

/// Writes back and invalidates this CPU's caches.
pub fn wbinvd() {
    // Hand assembly: the `x86_64` crate has no WBINVD.
    // Safety: WBINVD only writes back and invalidates caches.
    unsafe { core::arch::asm!("wbinvd", options(nostack, preserves_flags)) };
}

/// RFLAGS.DF: string instructions run backwards.
pub const RFLAGS_DF: u64 = RFlags::DIRECTION_FLAG.bits();
/// RFLAGS.AC: in ring 0 with SMAP, user pages become accessible.
pub const RFLAGS_AC: u64 = RFlags::ALIGNMENT_CHECK.bits();

/// Stops the kernel if it was entered with DF or AC still set: the entry
/// paths clear both (SYSCALL through FMASK, traps in their stub), and the
/// compiled kernel assumes DF clear and relies on AC clear for SMAP. A
/// violation is an entry-path bug, never a task's doing.
#[inline(always)]
pub fn check_entry_flags() {
    let flags = rflags::read_raw();
    if flags & (RFLAGS_DF | RFLAGS_AC) != 0 {
        entry_flags_not_cleared(flags);
    }
}

/// The failure of [`check_entry_flags`], out of line so the check costs
/// the syscall path only the read and the test.
#[cold]
#[inline(never)]
fn entry_flags_not_cleared(flags: u64) -> ! {
    panic!("kernel entered with RFLAGS {flags:#x}: DF/AC not cleared by the entry path");
}
