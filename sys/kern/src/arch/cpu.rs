//! Thin wrappers over privileged x86 instructions.
//!
//! Each is `unsafe` because its effect on the machine is the caller's
//! responsibility (a port write can reset a device, a CR3 write changes what
//! memory means); the wrappers only make the instruction and its register
//! use explicit.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The caller must know what the device behind `port` does with the write.
pub unsafe fn outb(port: u16, value: u8) {
    // Safety: forwarded to the caller.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// Reads can have side effects on devices; the caller must know them.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // Safety: forwarded to the caller.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU or the read faults.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // Safety: forwarded to the caller.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    u64::from(hi) << 32 | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // Safety: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// Loads CR3.
///
/// # Safety
/// `pml4` must be the physical address of a valid top-level table that
/// maps the running kernel.
pub unsafe fn write_cr3(pml4: u64) {
    // Safety: forwarded to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) }
}

pub fn read_cr2() -> u64 {
    let v: u64;
    // Safety: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr4() -> u64 {
    let v: u64;
    // Safety: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// The new CR4 must be valid for this CPU and consistent with the paging
/// structures in use.
pub unsafe fn write_cr4(v: u64) {
    // Safety: forwarded to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
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
    // Safety: `sti; hlt` is the standard race-free idle sequence (STI's
    // one-instruction shadow covers the HLT); the interrupt handlers are
    // installed before the first call, and `cli` restores the kernel's
    // interrupts-off invariant.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // Safety: with interrupts off, HLT parks the CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// RFLAGS.DF: string instructions run backwards.
pub const RFLAGS_DF: u64 = 1 << 10;
/// RFLAGS.AC: in ring 0 with SMAP, user pages become accessible.
pub const RFLAGS_AC: u64 = 1 << 18;

/// The current RFLAGS.
#[must_use]
pub fn read_rflags() -> u64 {
    let v: u64;
    // Safety: pushes and pops one word on the current (kernel) stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) v, options(nomem, preserves_flags)) }
    v
}

/// Stops the kernel if it was entered with DF or AC still set: the entry
/// paths clear both (SYSCALL through FMASK, traps in their stub), and the
/// compiled kernel assumes DF clear and relies on AC clear for SMAP. A
/// violation is an entry-path bug, never a task's doing.
pub fn check_entry_flags() {
    let flags = read_rflags();
    if flags & (RFLAGS_DF | RFLAGS_AC) != 0 {
        panic!("kernel entered with RFLAGS {flags:#x}: DF/AC not cleared by the entry path");
    }
}
