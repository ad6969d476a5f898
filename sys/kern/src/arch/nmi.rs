//! Non-maskable interrupts and machine checks: the two events the kernel
//! cannot mask, so they may arrive anywhere, including the few ring-0
//! instructions of the SYSCALL entry, the SYSRET exits and `resume_task`
//! that still run on a stack the task chose.
//!
//! Pattern: each has its own gate and stub, never [`trap_common`]: on the
//! boot CPU the gate switches to a private IST stack unconditionally (the
//! CPU loads RSP from the TSS whatever the interrupted code's RSP was), and
//! the stub touches no per-task state, no save area, no lock and no
//! segment base (the kernel uses no SWAPGS, and nothing here reads GS).
//! Neither event is ever a task's fault: an NMI is not caused by the
//! instruction it interrupts, and a machine check stops the machine.
//!
//! - NMI: the stub counts the event in an atomic (by where it landed: a
//!   task, or the kernel; and whether the legacy error lines of port 0x61,
//!   SERR# or IOCHK#, were up) and returns with IRETQ to exactly where it
//!   interrupted, every register as it was. Until that IRETQ the CPU holds
//!   further NMIs back, and the stub cannot fault (kernel memory only), so
//!   NMIs never nest on the IST stack. The counts are reported later from
//!   a context that may take the console lock ([`take_unreported`], called
//!   at the timer tick), because the interrupted code may hold it.
//! - Machine check: fatal. The kernel has no MCE recovery (no error-bank
//!   triage, no poisoned-page handling), and while MCG_STATUS.MCIP is set a
//!   second machine check shuts the processor down, so returning to code
//!   whose data may be corrupt could only make things worse. The handler
//!   writes what the banks say straight to the UART (no lock: the console
//!   lock may be held by the code it interrupted), exits QEMU as a kernel
//!   failure where the image allows, and halts.
//! - Application processors have no TSS (they never change privilege
//!   level), hence no IST: their NMI gate uses the AP's own kernel stack,
//!   which is always the stack in use there, and only counts. Their CR4.MCE
//!   stays clear (the AP start-up code is not this module's), so a machine
//!   check there still shuts that CPU down; the gate is ready for the day
//!   it is set.
//!
//! Linux takes the same approach (`arch/x86/kernel/idt.c`: NMI and #MC on
//! IST stacks; `arch/x86/kernel/nmi.c`: port 0x61 reasons).
//!
//! [`trap_common`]: super::entry::trap_common

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr4, Cr4Flags};

use super::cpu;

/// Legacy NMI status and control port (the PC's system control port B).
const NMI_STATUS_PORT: u16 = 0x61;
/// Port 0x61 bits 7 (SERR#, a PCI system error) and 6 (IOCHK#, an I/O
/// channel check): the legacy hardware-error reasons for an NMI.
const NMI_STATUS_ERROR_LINES: u8 = 0xC0;

/// NMIs on the boot CPU that interrupted a task (ring 3).
static IN_TASK: AtomicU64 = AtomicU64::new(0);
/// NMIs on the boot CPU that interrupted the kernel (ring 0).
static IN_KERNEL: AtomicU64 = AtomicU64::new(0);
/// NMIs on the boot CPU with SERR# or IOCHK# up in port 0x61.
static ERROR_LINES: AtomicU64 = AtomicU64::new(0);
/// NMIs on the application processors. A platform NMI (QEMU's
/// `inject-nmi`, a BMC's NMI button) arrives on each CPU's LINT1, which the
/// kernel leaves masked on the APs, so this counts only NMIs that reach an
/// AP otherwise (an NMI IPI, firmware that unmasked LINT1).
static ON_OTHER_CPUS: AtomicU64 = AtomicU64::new(0);
/// The total already reported; written only by the boot CPU outside NMI
/// context.
static REPORTED: AtomicU64 = AtomicU64::new(0);

/// The NMI counts at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NmiCounts {
    /// Boot CPU, interrupting a task.
    pub in_task: u64,
    /// Boot CPU, interrupting the kernel.
    pub in_kernel: u64,
    /// Boot CPU, with a legacy error line (SERR#/IOCHK#) up.
    pub error_lines: u64,
    /// Every other CPU together.
    pub on_other_cpus: u64,
}

impl NmiCounts {
    /// Every NMI counted, on any CPU.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.in_task + self.in_kernel + self.on_other_cpus
    }
}

/// The counts, if NMIs arrived since the last call returned some. Boot CPU
/// only, from a context that holds no lock the caller will want (the timer
/// tick): the caller reports them.
pub fn take_unreported() -> Option<NmiCounts> {
    let counts = NmiCounts {
        in_task: IN_TASK.load(Ordering::Relaxed),
        in_kernel: IN_KERNEL.load(Ordering::Relaxed),
        error_lines: ERROR_LINES.load(Ordering::Relaxed),
        on_other_cpus: ON_OTHER_CPUS.load(Ordering::Relaxed),
    };
    let total = counts.total();
    // Plain load and store, not a swap: this runs at every tick, and only
    // the boot CPU, outside NMI context, writes REPORTED.
    if REPORTED.load(Ordering::Relaxed) == total {
        return None;
    }
    REPORTED.store(total, Ordering::Relaxed);
    Some(counts)
}

/// The boot CPU's NMI entry, on its IST stack. The frame is the CPU's
/// (RIP, CS, RFLAGS, RSP, SS; no error code). RFLAGS need not be kept
/// here: IRETQ restores them from the frame.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn nmi_entry() {
    core::arch::naked_asm!(
        "test byte ptr [rsp + 8], 3",
        "jz 2f",
        "lock inc qword ptr [rip + {in_task}]",
        "jmp 3f",
        "2:",
        "lock inc qword ptr [rip + {in_kernel}]",
        "3:",
        "push rax",
        "in al, {port}",
        "test al, {lines}",
        "jz 4f",
        "lock inc qword ptr [rip + {error_lines}]",
        "4:",
        "pop rax",
        "iretq",
        in_task = sym IN_TASK,
        in_kernel = sym IN_KERNEL,
        error_lines = sym ERROR_LINES,
        port = const NMI_STATUS_PORT,
        lines = const NMI_STATUS_ERROR_LINES,
    )
}

/// An application processor's NMI entry: it runs only kernel code on its
/// own stack, so the NMI is counted and the AP goes on.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn ap_nmi_entry() {
    core::arch::naked_asm!(
        "lock inc qword ptr [rip + {count}]",
        "iretq",
        count = sym ON_OTHER_CPUS,
    )
}

/// The machine-check entry (the boot CPU's on its IST stack; an AP's on
/// its own stack). Never returns.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn machine_check_entry() {
    core::arch::naked_asm!(
        "mov rdi, rsp",
        "and rsp, -16",
        "call {fatal}",
        "ud2",
        fatal = sym machine_check,
    )
}

/// The CPU's interrupt frame, as the machine-check stub finds it.
#[repr(C)]
struct CpuFrame {
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// MSRs of the machine-check architecture (Intel SDM Vol. 3B, chapter 16,
/// "Machine-Check Architecture").
const IA32_MCG_CAP: u32 = 0x179;
const IA32_MCG_STATUS: u32 = 0x17A;
const IA32_MC0_STATUS: u32 = 0x401;
/// MCi_STATUS.VAL: the bank holds an error.
const MCI_STATUS_VAL: u64 = 1 << 63;
/// MCi_STATUS.ADDRV: MCi_ADDR holds the error's address.
const MCI_STATUS_ADDRV: u64 = 1 << 58;
/// Banks the report reads at most (MCG_CAP.Count is 8 bits).
const MAX_BANKS: u64 = 32;

/// CPUID.1:EDX bit 7 (MCE, the exception exists) and bit 14 (MCA, the
/// MCG and bank MSRs exist).
fn machine_check_features() -> (bool, bool) {
    let (_, _, _, edx) = cpu::cpuid(1, 0);
    (edx & (1 << 7) != 0, edx & (1 << 14) != 0)
}

/// Writes straight to the UART: the console lock is not taken because
/// the code the machine check interrupted may hold it.
struct RawConsole;

impl core::fmt::Write for RawConsole {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        super::serial::write(super::serial::COM1, s.as_bytes());
        Ok(())
    }
}

extern "C" fn machine_check(frame: *const CpuFrame) -> ! {
    // Safety: the stub passes the CPU's frame, which stays where it is:
    // this function never returns.
    let frame = unsafe { &*frame };
    let mut out = RawConsole;
    let _ = write!(
        out,
        "\n*** KERNEL MACHINE CHECK on APIC id {} at rip={:#x} cs={:#x} rflags={:#x} ({}): \
         no MCE recovery, halting\n",
        super::apic::apic_id(),
        frame.rip,
        frame.cs,
        frame.rflags,
        if frame.cs & 3 == 3 {
            "in a task"
        } else {
            "in the kernel"
        },
    );
    if machine_check_features().1 {
        // Safety: CPUID reports the machine-check architecture, so the
        // MCG MSRs and MCG_CAP.Count banks exist.
        let (cap, status) = unsafe { (cpu::rdmsr(IA32_MCG_CAP), cpu::rdmsr(IA32_MCG_STATUS)) };
        let _ = writeln!(out, "*** MCG_CAP={cap:#x} MCG_STATUS={status:#x}");
        for bank in 0..(cap & 0xFF).min(MAX_BANKS) {
            let base = IA32_MC0_STATUS + 4 * bank as u32;
            // Safety: `bank` is below MCG_CAP.Count.
            let status = unsafe { cpu::rdmsr(base) };
            if status & MCI_STATUS_VAL == 0 {
                continue;
            }
            let _ = write!(out, "*** bank {bank}: status={status:#x}");
            if status & MCI_STATUS_ADDRV != 0 {
                // Safety: as above; MCi_ADDR follows MCi_STATUS.
                let addr = unsafe { cpu::rdmsr(base + 1) };
                let _ = write!(out, " addr={addr:#x}");
            }
            let _ = writeln!(out);
        }
    }
    crate::fail::qemu_exit(crate::fail::EXIT_KERNEL_FAILURE);
    cpu::halt_forever()
}

/// Turns on machine-check exceptions where the CPU has them, so that a
/// machine check reaches [`machine_check_entry`] and is explained rather
/// than shutting the processor down silently (CR4.MCE clear).
pub fn enable_machine_checks() {
    if machine_check_features().0 {
        // Safety: CPUID reports #MC; its gate is installed (`idt::init`
        // runs first), so setting CR4.MCE only makes it deliverable.
        unsafe { Cr4::update(|cr4| cr4.insert(Cr4Flags::MACHINE_CHECK_EXCEPTION)) };
    }
}
