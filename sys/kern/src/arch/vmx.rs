//! The hardware SEAMCALL backend: VMXON on every CPU, then the real
//! instruction (`66 0F 01 CF`).
//!
//! SEAMCALL is only legal in VMX root operation, so each CPU enters it
//! once at boot (after the checks of `tdx_abi::hw`, which refuse cleanly
//! on a CPU without VMX or SEAM — QEMU's TCG among them). The instruction's
//! three failure modes are reported, never fatal: CF=1 is VMfailInvalid
//! (no module loaded); #UD and #GP are caught by the trap handlers through
//! the fix-up at [`SEAMCALL_INSN`], which resumes at [`SEAMCALL_FIXUP`]
//! with the fault's code in RAX.
//!
//! VMXON and SEAMCALL are hand assembly: the `x86_64` crate has neither;
//! the control registers around them are the crate's.

use tdx_abi::hw::{
    check_seam_support, SeamUnsupported, MSR_IA32_FEATURE_CONTROL, MSR_IA32_MTRRCAP,
    MSR_IA32_SEAMRR_PHYS_MASK,
};
use tdx_abi::{SeamcallArgs, SeamcallResult};
use tdx_emu::{InstructionOutcome, SeamcallFault};

use x86_64::registers::control::{Cr0, Cr4, Cr4Flags};

use super::cpu;
use super::paging::phys_to_virt;
use super::smp::{self, Op};

const MSR_IA32_VMX_BASIC: u32 = 0x480;
const MSR_IA32_VMX_CR0_FIXED0: u32 = 0x486;
const MSR_IA32_VMX_CR0_FIXED1: u32 = 0x487;
const MSR_IA32_VMX_CR4_FIXED0: u32 = 0x488;
const MSR_IA32_VMX_CR4_FIXED1: u32 = 0x489;

/// Outcome codes the raw stub returns in RAX.
const RAW_OK: u64 = 0;
const RAW_VMFAIL_INVALID: u64 = 1;
/// Set by the trap fix-up.
pub const RAW_UD: u64 = 2;
pub const RAW_GP: u64 = 3;

/// Why the hardware backend is not available.
#[derive(Copy, Clone, Debug)]
pub enum HwError {
    Unsupported(SeamUnsupported),
    /// VMXON failed (or a CPU did not answer) on this CPU.
    VmxonFailed(usize),
}

impl core::fmt::Display for HwError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HwError::Unsupported(e) => write!(f, "{e}"),
            HwError::VmxonFailed(cpu) => write!(f, "VMXON failed on CPU {cpu}"),
        }
    }
}

/// Checks this CPU can run SEAMCALL.
fn detect() -> Result<(), SeamUnsupported> {
    let (_, _, ecx, _) = cpu::cpuid(1, 0);
    if ecx & tdx_abi::hw::CPUID1_ECX_VMX == 0 {
        return check_seam_support(ecx, 0, 0, 0);
    }
    // Safety: these MSRs exist on every CPU that reports VMX (checked
    // above); SEAMRR's mask is read only when MTRRCAP says it exists.
    let (fc, cap) = unsafe {
        (
            cpu::rdmsr(MSR_IA32_FEATURE_CONTROL),
            cpu::rdmsr(MSR_IA32_MTRRCAP),
        )
    };
    let mask = if cap & tdx_abi::hw::MTRRCAP_SEAMRR != 0 {
        // Safety: see above.
        unsafe { cpu::rdmsr(MSR_IA32_SEAMRR_PHYS_MASK) }
    } else {
        0
    };
    check_seam_support(ecx, fc, cap, mask)
}

/// Enters VMX root operation on the calling CPU. Runs through the per-CPU
/// service so it happens on each CPU itself.
pub fn vmxon_here(index: usize) -> bool {
    let Some(pa) = smp::vmxon_region(index) else {
        return false;
    };
    // Safety: detection passed on the boot CPU (all CPUs are alike); the
    // fixed-bit MSRs exist with VMX; the region is this CPU's own zeroed,
    // 4 KiB-aligned page of the per-CPU area, reached through the direct
    // map.
    unsafe {
        let basic = cpu::rdmsr(MSR_IA32_VMX_BASIC);
        let revision = (basic as u32) & 0x7FFF_FFFF;
        core::ptr::write_volatile(phys_to_virt(pa) as *mut u32, revision);
        // Raw values: the fixed-bit MSRs may name bits the crate's flag
        // types do not know, and all of them must reach the register.
        let cr0 = (Cr0::read_raw() | cpu::rdmsr(MSR_IA32_VMX_CR0_FIXED0))
            & cpu::rdmsr(MSR_IA32_VMX_CR0_FIXED1);
        Cr0::write_raw(cr0);
        let cr4 = (Cr4::read_raw()
            | Cr4Flags::VIRTUAL_MACHINE_EXTENSIONS.bits()
            | cpu::rdmsr(MSR_IA32_VMX_CR4_FIXED0))
            & cpu::rdmsr(MSR_IA32_VMX_CR4_FIXED1);
        Cr4::write_raw(cr4);
        let failed: u8;
        // Hand assembly: the `x86_64` crate has no VMXON.
        core::arch::asm!("vmxon [{pa}]", "setna {f}", pa = in(reg) &pa, f = out(reg_byte) failed);
        failed == 0
    }
}

/// Detects SEAM support and enters VMX operation on every CPU.
pub fn enable_all() -> Result<(), HwError> {
    detect().map_err(HwError::Unsupported)?;
    for i in 0..smp::cpu_count() {
        match smp::run_on(i, Op::VmxOn, [0; 8]) {
            Ok(w) if w[0] == 1 => {}
            _ => return Err(HwError::VmxonFailed(i)),
        }
    }
    Ok(())
}

extern "C" {
    /// Address of the SEAMCALL instruction inside [`seamcall_raw`].
    pub static SEAMCALL_INSN: u8;
    /// Where a faulting SEAMCALL resumes.
    pub static SEAMCALL_FIXUP: u8;
}

// `seamcall_raw(regs: *mut [u64; 7]) -> u64`: SEAMCALL with `regs` (RAX,
// RCX, RDX, R8–R11) in and out. Returns RAW_OK, RAW_VMFAIL_INVALID, or
// (through the fix-up) RAW_UD/RAW_GP. In global asm, not a naked function,
// so the labels exist even in images that never call it (the trap
// handlers refer to them).
core::arch::global_asm!(
    ".section .text.seamcall_raw, \"ax\"",
    ".global seamcall_raw",
    "seamcall_raw:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov r12, rdi",
    "mov rax, [r12]",
    "mov rcx, [r12 + 8]",
    "mov rdx, [r12 + 16]",
    "mov r8, [r12 + 24]",
    "mov r9, [r12 + 32]",
    "mov r10, [r12 + 40]",
    "mov r11, [r12 + 48]",
    ".global SEAMCALL_INSN",
    "SEAMCALL_INSN:",
    ".byte 0x66, 0x0f, 0x01, 0xcf",
    "jc 3f",
    "mov [r12], rax",
    "mov [r12 + 8], rcx",
    "mov [r12 + 16], rdx",
    "mov [r12 + 24], r8",
    "mov [r12 + 32], r9",
    "mov [r12 + 40], r10",
    "mov [r12 + 48], r11",
    "xor eax, eax",
    "jmp 4f",
    "3:",
    "mov eax, 1",
    ".global SEAMCALL_FIXUP",
    "SEAMCALL_FIXUP:",
    "4:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".text",
);

extern "C" {
    fn seamcall_raw(regs: *mut [u64; 7]) -> u64;
}

/// One SEAMCALL on the calling CPU (which must be in VMX operation).
pub fn seamcall(args: &SeamcallArgs) -> InstructionOutcome {
    let mut regs = [
        args.rax, args.rcx, args.rdx, args.r8, args.r9, args.r10, args.r11,
    ];
    // Safety: the CPU is in VMX root operation (enable_all succeeded); the
    // stub saves every callee-saved register and a #UD/#GP of the
    // instruction is redirected to its fix-up by the trap handlers.
    let raw = unsafe { seamcall_raw(&mut regs) };
    match raw {
        RAW_OK => InstructionOutcome::Returned(SeamcallResult {
            rax: regs[0],
            rcx: regs[1],
            rdx: regs[2],
            r8: regs[3],
            r9: regs[4],
            r10: regs[5],
            r11: regs[6],
        }),
        RAW_VMFAIL_INVALID => InstructionOutcome::VmFailInvalid,
        RAW_UD => InstructionOutcome::Fault(SeamcallFault::Ud),
        _ => InstructionOutcome::Fault(SeamcallFault::Gp),
    }
}

/// If `rip` is the SEAMCALL instruction, where to resume instead and the
/// code to put in RAX (`vector` 6 → #UD, 13 → #GP).
#[must_use]
pub fn fixup(rip: u64, vector: u32) -> Option<(u64, u64)> {
    let insn = &raw const SEAMCALL_INSN as u64;
    let resume = &raw const SEAMCALL_FIXUP as u64;
    match vector {
        6 if rip == insn => Some((resume, RAW_UD)),
        13 if rip == insn => Some((resume, RAW_GP)),
        _ => None,
    }
}
