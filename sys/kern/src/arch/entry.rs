//! Kernel entry and exit: SYSCALL, interrupts and exceptions, and the one
//! path back to a task.
//!
//! Pattern: every way into the kernel from ring 3 ends with the task's
//! register state in its [`SavedState`], after which the kernel runs on its
//! own stack, calls Rust, and gets back the `SavedState` of the task to
//! resume (possibly another one). Rust is the only place scheduling
//! decisions surface; the asm never decides anything.
//!
//! - SYSCALL does not switch stacks. The entry keeps the task's RSP in a
//!   scratch word, addresses the save area from `CURRENT_SAVE_END` (just
//!   past it) and stores only what a syscall reads: RAX, the argument
//!   registers (RDI, RSI, RDX, R10, R8, R9, R12, R13), RIP (RCX) and
//!   RFLAGS (R11). The *lazy registers*, RBX, RBP, R14, R15 and RSP, stay
//!   in the CPU (and the scratch word) while the fast path runs: the Rust
//!   code preserves the callee-saved ones by its ABI, and no syscall reads
//!   or answers in them. See [`SyscallExit`] for the two exits.
//! - Invariant of the lazy registers: a task's save area is complete
//!   whenever anything but the fast path of its own syscall runs. The stub
//!   spills the lazy registers into the caller's save area before it
//!   leaves the caller for another task, and before the slow path (the
//!   generic dispatcher, kill injection, faults, restarts, halting) runs;
//!   the fast path neither reads nor writes the caller's lazy slots. A
//!   task that goes on after a fast syscall keeps its own lazy registers,
//!   never another task's; a task that is switched to is loaded in full.
//! - On a syscall entry the CS, SS, RCX and R11 slots are not written:
//!   only the IRETQ exit reads them, and it runs only after a trap entry
//!   stored them or at a task's (re)start, never after a syscall (the
//!   spill marks the save area to resume by SYSRET).
//! - An interrupt from ring 3 makes the CPU load RSP0 from the TSS, which
//!   also points just past the save area, so the CPU's own pushes (SS, RSP,
//!   RFLAGS, CS, RIP, error code) land in the frame; the stub pushes the
//!   rest, so a trap always saves the full state.
//! - An interrupt in ring 0 can only arrive while the kernel halts in
//!   `WaitForInterrupt`; its frame stays on the kernel stack and it returns
//!   to the halt. FMASK keeps IF clear through the whole fast path, so no
//!   interrupt sees a caller whose lazy registers are still in the CPU.
//!   NMI and machine check are not masked, and may arrive in the ring-0
//!   instructions that run on the task's RSP (the first two of the SYSCALL
//!   entry, the last two before each SYSRET, two in `resume_task`): they
//!   run on IST stacks of their own and never come here (`nmi`).
//! - Every entry from ring 3 clears RFLAGS.DF and AC before any Rust runs
//!   (FMASK for SYSCALL, POPF in the trap stub), so a task cannot make
//!   kernel string copies run backwards or open its pages to the kernel
//!   under SMAP; both paths return the task's own RFLAGS.
//! - Resume uses SYSRET when the task last entered by SYSCALL (RCX and R11
//!   are then dead by the ABI) and IRETQ otherwise, which restores every
//!   register exactly. The kernel is built without SSE, so no vector
//!   register carries kernel data back to a task.

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

/// What the syscall fast path answers the SYSCALL stub (returned in RAX
/// and RDX by the C ABI). The stub, not Rust, writes the caller's lazy
/// registers (see the module doc), because only the stub still holds
/// them: the Rust code preserved them for it.
#[repr(C)]
pub struct SyscallExit {
    /// The save area to resume; null: the fast path declined the call,
    /// and the stub runs the slow entry once the caller is spilled.
    pub resume: *const SavedState,
    /// Null: `resume` is the caller, which goes on with its lazy registers
    /// still in the CPU (the short exit). Otherwise the caller's save
    /// area, completed by the stub before anything else runs.
    pub spill: *mut SavedState,
}

impl SyscallExit {
    /// The caller resumes at once, by the short exit.
    #[must_use]
    pub fn same(caller: *const SavedState) -> Self {
        SyscallExit {
            resume: caller,
            spill: core::ptr::null_mut(),
        }
    }

    /// The caller is left: its save area is completed, `next` resumed.
    #[must_use]
    pub fn switch(caller: *mut SavedState, next: *const SavedState) -> Self {
        SyscallExit {
            resume: next,
            spill: caller,
        }
    }

    /// The slow path takes the call from the start, after the spill.
    #[must_use]
    pub fn slow(caller: *mut SavedState) -> Self {
        SyscallExit {
            resume: core::ptr::null(),
            spill: caller,
        }
    }
}

/// Distance of a [`SavedState`] field below the frame end (the syscall
/// stub addresses the save area from `CURRENT_SAVE_END`).
macro_rules! below_end {
    ($field:ident) => {
        FRAME_END as usize - core::mem::offset_of!(SavedState, $field)
    };
}

/// The SYSCALL entry and its two exits.
///
/// Entry: stores only what a syscall reads (number, arguments, RIP from
/// RCX, RFLAGS from R11) into the caller's save area, keeps its RSP in
/// `USER_RSP_SCRATCH`, and calls the fast entry on the kernel stack.
///
/// Exit, by the fast entry's [`SyscallExit`]:
/// - `spill` null (the caller goes on): the short exit reloads every
///   register the kernel's Rust code may have changed (RAX, RDI, RSI,
///   RDX, R8, R9, R10 and R12, the result words, from the save area; RCX
///   and R11 are RIP and RFLAGS) and SYSRETs. RBX, RBP, R13, R14 and R15
///   were preserved by the Rust code (callee-saved in its ABI), so they
///   hold the caller's own values; R13 also equals its save slot, which
///   no syscall answers in.
/// - otherwise the lazy registers are stored into the caller's save
///   area (now complete, marked to resume by SYSRET), then either the
///   chosen task is resumed by the full restore of [`resume_task`], which
///   loads every register it will see, or the slow entry runs the call
///   and its answer is resumed the same way.
#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() {
    core::arch::naked_asm!(
        "mov [rip + {scratch}], rsp",
        "mov rsp, [rip + {save_end}]",
        "mov [rsp - {rip_}], rcx",
        "mov [rsp - {rflags}], r11",
        "mov [rsp - {rax}], rax",
        "mov [rsp - {rdi}], rdi",
        "mov [rsp - {rsi}], rsi",
        "mov [rsp - {rdx}], rdx",
        "mov [rsp - {r10}], r10",
        "mov [rsp - {r8}], r8",
        "mov [rsp - {r9}], r9",
        "mov [rsp - {r12}], r12",
        "mov [rsp - {r13}], r13",
        "lea rdi, [rsp - {end}]",
        "mov rsp, [rip + {kstack}]",
        "call {fast}",
        "test rdx, rdx",
        "jnz 2f",
        // The short exit: the caller goes on.
        "mov rdi, [rax + {o_rdi}]",
        "mov rsi, [rax + {o_rsi}]",
        "mov rdx, [rax + {o_rdx}]",
        "mov r10, [rax + {o_r10}]",
        "mov r8, [rax + {o_r8}]",
        "mov r9, [rax + {o_r9}]",
        "mov r12, [rax + {o_r12}]",
        "mov rcx, [rax + {o_rip}]",
        "mov r11, [rax + {o_rflags}]",
        "mov rsp, [rip + {scratch}]",
        "mov rax, [rax + {o_rax}]",
        "sysretq",
        // The caller is left, or the slow path runs: spill it first.
        "2:",
        "mov [rdx + {o_rbx}], rbx",
        "mov [rdx + {o_rbp}], rbp",
        "mov [rdx + {o_r14}], r14",
        "mov [rdx + {o_r15}], r15",
        "mov rcx, [rip + {scratch}]",
        "mov [rdx + {o_rsp}], rcx",
        "mov qword ptr [rdx + {o_sysret}], 1",
        "test rax, rax",
        "jz 3f",
        "mov rsp, rax",
        "jmp {restore}",
        "3:",
        "mov rdi, rdx",
        "call {slow}",
        "mov rsp, rax",
        "jmp {restore}",
        scratch = sym USER_RSP_SCRATCH,
        save_end = sym CURRENT_SAVE_END,
        kstack = sym KERNEL_STACK_TOP,
        end = const FRAME_END,
        rip_ = const below_end!(rip),
        rflags = const below_end!(rflags),
        rax = const below_end!(rax),
        rdi = const below_end!(rdi),
        rsi = const below_end!(rsi),
        rdx = const below_end!(rdx),
        r10 = const below_end!(r10),
        r8 = const below_end!(r8),
        r9 = const below_end!(r9),
        r12 = const below_end!(r12),
        r13 = const below_end!(r13),
        o_rax = const core::mem::offset_of!(SavedState, rax),
        o_rdi = const core::mem::offset_of!(SavedState, rdi),
        o_rsi = const core::mem::offset_of!(SavedState, rsi),
        o_rdx = const core::mem::offset_of!(SavedState, rdx),
        o_r10 = const core::mem::offset_of!(SavedState, r10),
        o_r8 = const core::mem::offset_of!(SavedState, r8),
        o_r9 = const core::mem::offset_of!(SavedState, r9),
        o_r12 = const core::mem::offset_of!(SavedState, r12),
        o_rip = const core::mem::offset_of!(SavedState, rip),
        o_rflags = const core::mem::offset_of!(SavedState, rflags),
        o_rbx = const core::mem::offset_of!(SavedState, rbx),
        o_rbp = const core::mem::offset_of!(SavedState, rbp),
        o_r14 = const core::mem::offset_of!(SavedState, r14),
        o_r15 = const core::mem::offset_of!(SavedState, r15),
        o_rsp = const core::mem::offset_of!(SavedState, rsp),
        o_sysret = const core::mem::offset_of!(SavedState, resume_with_sysret),
        fast = sym crate::syscalls::syscall_fast_entry,
        slow = sym crate::syscalls::syscall_slow_entry,
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
