//! The task runtime: entry point, syscall stubs and small helpers.
//!
//! Every syscall is one `syscall` instruction with the number in RAX and
//! arguments in RDI, RSI, RDX, R10, R8, R9, R12, R13; results come back in
//! RAX, RDI, RSI, RDX, R10 and R8. The kernel preserves every other register
//! (it saves and restores the whole frame), so each stub tells the compiler
//! exactly which registers change: RCX and R11 (clobbered by the instruction
//! itself) and the result registers.
//!
//! Slices passed to the kernel are *claims*: the kernel checks each against
//! the caller's regions and faults the caller on a bad one, so these stubs
//! are safe functions — a wrong slice can only hurt the task that passed it.

#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]
#![forbid(clippy::wildcard_imports)]

#[cfg(feature = "defmt")]
pub mod defmt_log;
pub mod hl;
pub mod log;
#[cfg(target_os = "none")]
mod start;

use core::arch::asm;
use core::marker::PhantomData;

pub use abi::seamcall::{SeamcallOutcome, UnknownOutcome};
pub use abi::{
    lease_attr, FaultInfo, Generation, ReplyFaultReason, Sysnum, TaskId, TaskIndex, TaskState,
    ULease,
};

/// A lease: a piece of the caller's memory lent to the server for the
/// duration of one SEND.
#[derive(Copy, Clone, Debug)]
#[repr(transparent)]
pub struct Lease<'a> {
    raw: ULease,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> Lease<'a> {
    /// Lends `data` for reading.
    #[must_use]
    pub fn read_only(data: &'a [u8]) -> Self {
        Self::raw(lease_attr::READ, data.as_ptr() as u64, data.len())
    }

    /// Lends `data` for reading and writing.
    #[must_use]
    pub fn read_write(data: &'a mut [u8]) -> Self {
        Self::raw(
            lease_attr::READ | lease_attr::WRITE,
            data.as_mut_ptr() as u64,
            data.len(),
        )
    }

    /// Lends `data` for writing only.
    #[must_use]
    pub fn write_only(data: &'a mut [u8]) -> Self {
        Self::raw(lease_attr::WRITE, data.as_mut_ptr() as u64, data.len())
    }

    /// A lease with arbitrary attributes and bounds. The kernel checks them;
    /// tests use this to build bad leases on purpose.
    #[must_use]
    pub fn raw(attributes: u32, base: u64, len: usize) -> Self {
        Lease {
            raw: ULease {
                attributes,
                reserved: 0,
                base,
                len: len as u64,
            },
            _borrow: PhantomData,
        }
    }
}

/// What RECV delivered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RecvMessage {
    /// The sender, or [`TaskId::KERNEL`] for notifications.
    pub sender: TaskId,
    /// The operation code; for notifications, the bits that fired.
    pub operation: u64,
    /// The length the sender sent, which may exceed the buffer (the server
    /// should then reply-fault the sender).
    pub message_len: usize,
    /// How many bytes of reply the sender can take.
    pub response_capacity: usize,
    /// How many leases the sender attached.
    pub lease_count: usize,
}

/// Attributes and length of a lease, from BORROW_INFO.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub attributes: u32,
    pub len: usize,
}

/// The state of a task's timer, from GET_TIMER.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimerState {
    /// Kernel ticks (milliseconds) since boot.
    pub now: u64,
    /// The armed deadline, if any.
    pub deadline: Option<u64>,
    /// Bits posted when the deadline passes.
    pub notifications: u64,
}

/// Raw syscall with up to eight arguments and six results.
#[inline(always)]
fn syscall(num: Sysnum, args: [u64; 8]) -> [u64; 6] {
    sys_raw(num as u64, args)
}

/// Sends `outgoing` as operation `operation` to `target`, lending `leases`,
/// and waits for the reply. Returns the response code and the reply length
/// (which is at most `incoming.len()`).
///
/// A response code at or above [`abi::FIRST_DEAD_CODE`] means the target
/// restarted; it carries the target's new generation.
pub fn sys_send(
    target: TaskId,
    operation: u16,
    outgoing: &[u8],
    incoming: &mut [u8],
    leases: &[Lease<'_>],
) -> (u32, usize) {
    let r = syscall(
        Sysnum::Send,
        [
            u64::from(target.0),
            u64::from(operation),
            outgoing.as_ptr() as u64,
            outgoing.len() as u64,
            incoming.as_mut_ptr() as u64,
            incoming.len() as u64,
            leases.as_ptr() as u64,
            leases.len() as u64,
        ],
    );
    (r[0] as u32, r[1] as usize)
}

/// Receives from anyone (open receive), or delivers pending notifications
/// selected by `notification_mask` first.
pub fn sys_recv_open(buffer: &mut [u8], notification_mask: u64) -> RecvMessage {
    match sys_recv(buffer, notification_mask, None) {
        Ok(m) => m,
        // An open receive cannot name a dead peer, so the kernel never
        // returns an error for it.
        Err(_) => unreachable_open_recv(),
    }
}

#[cold]
fn unreachable_open_recv() -> ! {
    sys_panic(b"open RECV returned an error")
}

/// Receives only from `sender` (closed receive); `TaskId::KERNEL` takes only
/// notifications. Returns the dead code if `sender` is stale or restarts.
pub fn sys_recv_closed(
    buffer: &mut [u8],
    notification_mask: u64,
    sender: TaskId,
) -> Result<RecvMessage, u32> {
    sys_recv(buffer, notification_mask, Some(sender))
}

/// The general form of RECV.
pub fn sys_recv(
    buffer: &mut [u8],
    notification_mask: u64,
    sender: Option<TaskId>,
) -> Result<RecvMessage, u32> {
    let specific = match sender {
        Some(t) => abi::RECV_CLOSED | u64::from(t.0),
        None => 0,
    };
    let r = syscall(
        Sysnum::Recv,
        [
            buffer.as_mut_ptr() as u64,
            buffer.len() as u64,
            notification_mask,
            specific,
            0,
            0,
            0,
            0,
        ],
    );
    if r[0] != 0 {
        return Err(r[0] as u32);
    }
    Ok(RecvMessage {
        sender: TaskId(r[1] as u32),
        operation: r[2],
        message_len: r[3] as usize,
        response_capacity: r[4] as usize,
        lease_count: r[5] as usize,
    })
}

/// Replies to `peer` with `code` and `message`. A stale `peer`, or one no
/// longer waiting for us, is silently ignored.
pub fn sys_reply(peer: TaskId, code: u32, message: &[u8]) {
    syscall(
        Sysnum::Reply,
        [
            u64::from(peer.0),
            u64::from(code),
            message.as_ptr() as u64,
            message.len() as u64,
            0,
            0,
            0,
            0,
        ],
    );
}

/// Faults `peer`, which must be waiting for our reply, for `reason`.
pub fn sys_reply_fault(peer: TaskId, reason: ReplyFaultReason) {
    syscall(
        Sysnum::ReplyFault,
        [u64::from(peer.0), reason as u64, 0, 0, 0, 0, 0, 0],
    );
}

/// Copies from lease `index` of `lender`, starting `offset` bytes in, into
/// `dest`. Returns the response code (0, [`abi::DEFECT`] or a dead code) and
/// the number of bytes copied.
pub fn sys_borrow_read(
    lender: TaskId,
    index: usize,
    offset: usize,
    dest: &mut [u8],
) -> (u32, usize) {
    let r = syscall(
        Sysnum::BorrowRead,
        [
            u64::from(lender.0),
            index as u64,
            offset as u64,
            dest.as_mut_ptr() as u64,
            dest.len() as u64,
            0,
            0,
            0,
        ],
    );
    (r[0] as u32, r[1] as usize)
}

/// Copies `src` into lease `index` of `lender` at `offset`. Returns the
/// response code and the number of bytes copied.
pub fn sys_borrow_write(lender: TaskId, index: usize, offset: usize, src: &[u8]) -> (u32, usize) {
    let r = syscall(
        Sysnum::BorrowWrite,
        [
            u64::from(lender.0),
            index as u64,
            offset as u64,
            src.as_ptr() as u64,
            src.len() as u64,
            0,
            0,
            0,
        ],
    );
    (r[0] as u32, r[1] as usize)
}

/// Attributes and length of lease `index` of `lender`.
pub fn sys_borrow_info(lender: TaskId, index: usize) -> Result<LeaseInfo, u32> {
    let r = syscall(
        Sysnum::BorrowInfo,
        [u64::from(lender.0), index as u64, 0, 0, 0, 0, 0, 0],
    );
    if r[0] != 0 {
        return Err(r[0] as u32);
    }
    Ok(LeaseInfo {
        attributes: r[1] as u32,
        len: r[2] as usize,
    })
}

/// ORs `bits` into `target`'s notification word. Returns 0 or a dead code.
pub fn sys_post(target: TaskId, bits: u64) -> u32 {
    syscall(Sysnum::Post, [u64::from(target.0), bits, 0, 0, 0, 0, 0, 0])[0] as u32
}

/// Arms (or with `None`, disarms) this task's timer: at `deadline` ticks the
/// kernel posts `notifications` to us.
pub fn sys_set_timer(deadline: Option<u64>, notifications: u64) {
    let (enabled, dl) = match deadline {
        Some(d) => (1, d),
        None => (0, 0),
    };
    syscall(
        Sysnum::SetTimer,
        [enabled, dl, notifications, 0, 0, 0, 0, 0],
    );
}

/// Reads the clock and this task's timer.
pub fn sys_get_timer() -> TimerState {
    let r = syscall(Sysnum::GetTimer, [0; 8]);
    TimerState {
        now: r[1],
        deadline: if r[3] != 0 { Some(r[2]) } else { None },
        notifications: r[4],
    }
}

/// Enables or disables the interrupts bound to `mask` in the manifest.
pub fn sys_irq_control(mask: u64, enable: bool) {
    let flags = if enable { abi::irq_control::ENABLE } else { 0 };
    syscall(Sysnum::IrqControl, [mask, flags, 0, 0, 0, 0, 0, 0]);
}

/// Returns `(enabled, pending)` bit sets for the interrupts bound to `mask`.
pub fn sys_irq_status(mask: u64) -> (u64, u64) {
    let r = syscall(Sysnum::IrqStatus, [mask, 0, 0, 0, 0, 0, 0, 0]);
    (r[1], r[2])
}

/// The current id (with generation) of the task at `index`.
pub fn sys_refresh_task_id(index: TaskIndex) -> TaskId {
    TaskId(
        syscall(
            Sysnum::RefreshTaskId,
            [u64::from(index.0), 0, 0, 0, 0, 0, 0, 0],
        )[0] as u32,
    )
}

/// Writes `bytes` to the kernel log, tagged with this task's name.
pub fn sys_log(bytes: &[u8]) {
    syscall(
        Sysnum::Log,
        [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0, 0, 0],
    );
}

/// Hands one encoded defmt frame to the kernel, which writes it to the
/// binary log port tagged with this task's index. Frames longer than the
/// kernel's limit (256 bytes) are dropped by the kernel.
pub fn sys_log_frame(frame: &[u8]) {
    syscall(
        Sysnum::LogFrame,
        [frame.as_ptr() as u64, frame.len() as u64, 0, 0, 0, 0, 0, 0],
    );
}

/// Halts the CPU until the next interrupt; for the idle task.
pub fn sys_wait_for_interrupt() {
    syscall(Sysnum::WaitForInterrupt, [0; 8]);
}

/// Faults this task with `FaultInfo::Panic`; the kernel keeps `message` for
/// the supervisor.
pub fn sys_panic(message: &[u8]) -> ! {
    syscall(
        Sysnum::Panic,
        [
            message.as_ptr() as u64,
            message.len() as u64,
            0,
            0,
            0,
            0,
            0,
            0,
        ],
    );
    // The kernel never returns from PANIC; if it somehow did, trap.
    loop {
        core::hint::spin_loop();
    }
}

/// Issues syscall `number` with arbitrary registers. Tasks use the typed
/// wrappers; tests use this to hand the kernel malformed requests.
#[inline(always)]
pub fn sys_raw(number: u64, args: [u64; 8]) -> [u64; 6] {
    let (r0, r1, r2, r3, r4, r5);
    // Safety: `syscall` transfers to the kernel, which reads only the
    // registers named here and writes only the result registers (plus RCX
    // and R11, which the instruction itself clobbers). Memory named by
    // pointer arguments is accessed by the kernel only after it has checked
    // that this task owns it (a bad claim faults this task); the asm block
    // does not say `nomem` because the kernel may write our buffers.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => r0,
            inlateout("rdi") args[0] => r1,
            inlateout("rsi") args[1] => r2,
            inlateout("rdx") args[2] => r3,
            inlateout("r10") args[3] => r4,
            inlateout("r8") args[4] => r5,
            in("r9") args[5],
            in("r12") args[6],
            in("r13") args[7],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    [r0, r1, r2, r3, r4, r5]
}

/// Executes a SEAMCALL through the kernel: `rax` is the leaf word, `regs`
/// its RCX, RDX, R8, R9, R10, R11; `cpu` the CPU to run on (`None`: the
/// kernel's choice).
///
/// # Errors
/// [`UnknownOutcome`] when the kernel answers with an outcome code this library does not know.
pub fn sys_seamcall(
    cpu: Option<u32>,
    rax: u64,
    regs: [u64; 6],
) -> Result<SeamcallOutcome, UnknownOutcome> {
    let (code, o_rax, o_rcx, o_rdx, o_r8, o_r9, o_r10, o_r11): (
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
    );
    let target = cpu.map_or(abi::seamcall::ANY_CPU, u64::from);
    // Safety: as in `syscall`, with the SEAMCALL register convention of
    // `abi::seamcall`: every register the kernel writes is an output here.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") Sysnum::Seamcall as u64 => code,
            inlateout("rdi") target => o_rax,
            inlateout("rsi") rax => o_rcx,
            inlateout("rdx") regs[0] => o_rdx,
            inlateout("r10") regs[1] => o_r8,
            inlateout("r8") regs[2] => o_r9,
            inlateout("r9") regs[3] => o_r10,
            inlateout("r12") regs[4] => o_r11,
            in("r13") regs[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    SeamcallOutcome::from_raw([code, o_rax, o_rcx, o_rdx, o_r8, o_r9, o_r10, o_r11])
}
