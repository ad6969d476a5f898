//! Kernel entry and exit: SYSCALL, interrupts and exceptions, and the one
//! path back to a task.
//!
//! Pattern: every way into the kernel from ring 3 ends with the task's full
//! register state in its [`SavedState`], after which the kernel runs on its
//! own stack, calls one Rust function, and gets back the `SavedState` of
//! the task to resume (possibly another one). That function is the only
//! place scheduling decisions surface; the asm never decides anything.
//!
//! - SYSCALL does not switch stacks, so the entry uses the save area itself
//!   as a stack to push the frame (`CURRENT_SAVE_END` points just past it),
//!   then moves to the kernel stack.
//! - An interrupt from ring 3 makes the CPU load RSP0 from the TSS, which
//!   also points just past the save area, so the CPU's own pushes (SS, RSP,
//!   RFLAGS, CS, RIP, error code) land in the frame; the stub pushes the
//!   rest.
//! - An interrupt in ring 0 can only arrive while the kernel halts in
//!   `WaitForInterrupt`; its frame stays on the kernel stack and it returns
//!   to the halt.
//! - Every entry from ring 3 clears RFLAGS.DF and AC before any Rust runs
//!   (FMASK for SYSCALL, POPF in the trap stub), so a task cannot make
//!   kernel string copies run backwards or open its pages to the kernel
//!   under SMAP; both paths return the task's own RFLAGS.
//! - Resume uses SYSRET when the task last entered by SYSCALL (RCX and R11
//!   are then dead by the ABI) and IRETQ otherwise, which restores every
//!   register exactly.

use core::sync::atomic::{AtomicU32, AtomicU64};

use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

use super::gdt::{KERNEL_CS, KERNEL_DS, USER_CS, USER_DS};

/// A task's registers while it is not running. The layout is fixed by the
/// entry stubs: general registers in push order, then the interrupt frame
/// exactly as the CPU pushes it.
///
/// 16-byte aligned because a CPU taking an interrupt in 64-bit mode aligns
/// RSP down to 16 before pushing: the frame end (RSP0) must already be
/// aligned or the pushes would land 8 bytes low.
#[derive(Copy, Clone, Debug, Default)]
#[repr(C, align(16))]
pub struct SavedState {
    pub(in crate::arch) r15: u64,
    pub(in crate::arch) r14: u64,
    pub(in crate::arch) r13: u64,
    pub(in crate::arch) r12: u64,
    pub(in crate::arch) r11: u64,
    pub(in crate::arch) r10: u64,
    pub(in crate::arch) r9: u64,
    pub(in crate::arch) r8: u64,
    pub(in crate::arch) rbp: u64,
    pub(in crate::arch) rdi: u64,
    pub(in crate::arch) rsi: u64,
    pub(in crate::arch) rdx: u64,
    pub(in crate::arch) rcx: u64,
    pub(in crate::arch) rbx: u64,
    pub(in crate::arch) rax: u64,
    pub(in crate::arch) rip: u64,
    pub(in crate::arch) cs: u64,
    pub(in crate::arch) rflags: u64,
    pub(in crate::arch) rsp: u64,
    pub(in crate::arch) ss: u64,
    /// Non-zero when the task is suspended in a syscall, so SYSRET may
    /// resume it.
    pub(in crate::arch) resume_with_sysret: u64,
}

/// Byte offset of the end of the interrupt frame in [`SavedState`].
pub const FRAME_END: u64 = 160;
const _: () = assert!(core::mem::offset_of!(SavedState, resume_with_sysret) == FRAME_END as usize);
const _: () = assert!(FRAME_END.is_multiple_of(16));

/// RFLAGS of a freshly started task: interrupts on, IOPL 0.
pub const INITIAL_RFLAGS: u64 = 0x202;

impl SavedState {
    /// The state that starts a task at `entry` with stack `stack_top`.
    #[must_use]
    pub fn initial(entry: u64, stack_top: u64) -> Self {
        SavedState {
            rip: entry,
            cs: u64::from(USER_CS.0),
            rflags: INITIAL_RFLAGS,
            rsp: stack_top,
            ss: u64::from(USER_DS.0),
            ..SavedState::default()
        }
    }

    /// The syscall number the task passed (RAX at SYSCALL).
    #[inline]
    #[must_use]
    pub fn syscall_number(&self) -> u64 {
        self.rax
    }

    /// The syscall's argument words, in `abi::syscall` order.
    #[inline]
    #[must_use]
    pub fn syscall_args(&self) -> abi::syscall::ArgRegs {
        [
            self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9, self.r12, self.r13,
        ]
    }

    /// Writes the first `N` syscall result words, in `abi::syscall` order;
    /// the other registers keep their values.
    #[inline]
    pub fn set_syscall_results<const N: usize>(&mut self, words: [u64; N]) {
        const { assert!(N <= abi::syscall::RESULT_WORDS) };
        let slots = [
            &mut self.rax,
            &mut self.rdi,
            &mut self.rsi,
            &mut self.rdx,
            &mut self.r10,
            &mut self.r8,
            &mut self.r9,
            &mut self.r12,
        ];
        for (slot, word) in slots.into_iter().zip(words) {
            *slot = word;
        }
    }

    /// The address of the instruction the task resumes at (for a fault,
    /// the faulting one).
    #[must_use]
    pub fn instruction_pointer(&self) -> u64 {
        self.rip
    }

    /// Records how the task entered the kernel: by SYSCALL (it may resume
    /// by SYSRET, RCX and R11 being dead) or by a trap (IRETQ, restoring
    /// every register).
    #[inline]
    pub fn set_entered_by_syscall(&mut self, by_syscall: bool) {
        self.resume_with_sysret = u64::from(by_syscall);
    }

    /// Makes a kernel frame resume at `rip` with `code` as the status the
    /// interrupted instruction's caller reads (the fixups of `vmx`).
    pub fn resume_at_with_status(&mut self, rip: u64, code: u64) {
        self.rip = rip;
        self.rax = code;
    }
}

/// Address just past the running task's interrupt frame.
pub static CURRENT_SAVE_END: AtomicU64 = AtomicU64::new(0);
/// Top of the boot CPU's kernel stack.
pub static KERNEL_STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// The user RSP while the SYSCALL stub pushes the frame.
static USER_RSP_SCRATCH: AtomicU64 = AtomicU64::new(0);
/// The vector of the trap being entered. Only the boot CPU takes traps
/// from tasks, and interrupts stay off until the vector is read.
pub static TRAP_VECTOR: AtomicU32 = AtomicU32::new(0);

/// RFLAGS bits cleared on SYSCALL: TF, IF, DF, AC, NT. Clearing DF and AC
/// here is what keeps a task's flags out of the kernel on this path (the
/// trap stub does the same for interrupts and exceptions); SYSRET gives
/// the task its own RFLAGS back from R11.
const FMASK: RFlags = RFlags::TRAP_FLAG
    .union(RFlags::INTERRUPT_FLAG)
    .union(RFlags::DIRECTION_FLAG)
    .union(RFlags::ALIGNMENT_CHECK)
    .union(RFlags::NESTED_TASK);

/// Enables SYSCALL and points it at the entry stub.
pub fn init_syscall() {
    // The crate checks the SYSCALL/SYSRET selector arithmetic the module
    // doc of `gdt` describes; a mismatch is a kernel bug found at boot.
    if let Err(e) = Star::write(USER_CS, USER_DS, KERNEL_CS, KERNEL_DS) {
        panic!("GDT layout does not fit SYSCALL/SYSRET: {e}");
    }
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(FMASK);
    // Safety: SCE only makes SYSCALL/SYSRET legal; STAR, LSTAR and FMASK
    // are set above, so the first SYSCALL lands in `syscall_entry`.
    unsafe { Efer::update(|efer| efer.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Leaves the boot path for the first task: `save` becomes the stack that
/// [`resume_task`] pops the task's registers from.
///
/// # Safety
/// `save` must point at the [`SavedState`] of a task whose address space is
/// loaded and whose save area is the current one (`task::load`).
pub unsafe fn enter_first_task(save: *const SavedState) -> ! {
    // Hand assembly: moving RSP onto a save area is the entry path itself.
    // Safety: forwarded to the caller; the boot stack is abandoned for good.
    unsafe {
        core::arch::asm!(
            "mov rsp, {save}",
            "jmp {resume}",
            save = in(reg) save,
            resume = sym resume_task,
            options(noreturn)
        )
    }
}

#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() {
    core::arch::naked_asm!(
        "mov [rip + {scratch}], rsp",
        "mov rsp, [rip + {save_end}]",
        "push {uss}",
        "push qword ptr [rip + {scratch}]",
        "push r11",
        "push {ucs}",
        "push rcx",
        "push rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rdi, rsp",
        "mov rsp, [rip + {kstack}]",
        "call {handler}",
        "mov rsp, rax",
        "jmp {restore}",
        scratch = sym USER_RSP_SCRATCH,
        save_end = sym CURRENT_SAVE_END,
        kstack = sym KERNEL_STACK_TOP,
        uss = const USER_DS.0 as u64,
        ucs = const USER_CS.0 as u64,
        handler = sym crate::syscalls::syscall_entry_from_task,
        restore = sym resume_task,
    )
}

/// Resumes the task whose [`SavedState`] RSP points at.
#[unsafe(naked)]
pub unsafe extern "C" fn resume_task() -> ! {
    core::arch::naked_asm!(
        "cmp qword ptr [rsp + {frame_end}], 0",
        "jne 2f",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        "iretq",
        "2:",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "add rsp, 8",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "add rsp, 8",
        "pop rbx",
        "pop rax",
        "mov rcx, [rsp]",
        "mov r11, [rsp + 16]",
        "mov rsp, [rsp + 24]",
        "sysretq",
        frame_end = const FRAME_END,
    )
}

/// Common tail of every interrupt and exception stub: the stub has pushed
/// an error code (real or zero) and recorded the vector.
#[unsafe(naked)]
pub unsafe extern "C" fn trap_common() {
    core::arch::naked_asm!(
        "xchg [rsp], rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rsi, rax",
        "mov edi, dword ptr [rip + {vector}]",
        "mov rdx, rsp",
        "test byte ptr [rsp + 128], 3",
        "jz 3f",
        "mov rsp, [rip + {kstack}]",
        // A task may enter with DF and AC set (both are user-writable);
        // the CPU clears neither on an interrupt or exception. Clear them
        // on the kernel stack (never push below the save area). `clac`
        // would #UD without SMAP; POPF works everywhere.
        "pushfq",
        "and qword ptr [rsp], {keep}",
        "popfq",
        "call {from_user}",
        "mov rsp, rax",
        "jmp {restore}",
        "3:",
        "mov rbx, rsp",
        "and rsp, -16",
        "call {from_kernel}",
        "mov rsp, rbx",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        "iretq",
        vector = sym TRAP_VECTOR,
        kstack = sym KERNEL_STACK_TOP,
        keep = const !(super::cpu::RFLAGS_DF | super::cpu::RFLAGS_AC) as i32,
        from_user = sym crate::trap::trap_from_task,
        from_kernel = sym crate::trap::trap_in_kernel,
        restore = sym resume_task,
    )
}
