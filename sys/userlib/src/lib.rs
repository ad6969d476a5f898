//! The task runtime: entry point, syscall stubs and small helpers.
//!
//! Every syscall is one `syscall` instruction with the number in RAX and
//! eight argument words, answered by result words; which register holds
//! which word is `abi::syscall`'s to say, and each wrapper here encodes its
//! arguments and decodes its results with that module's structs, the same
//! ones the kernel uses. The kernel preserves every other register (it
//! saves and restores the whole frame), so each stub tells the compiler
//! exactly which registers change: RCX and R11 (clobbered by the
//! instruction itself) and the result registers.
//!
//! Slices passed to the kernel are *claims*: the kernel checks each against
//! the caller's regions and faults the caller on a bad one, so these stubs
//! are safe functions — a wrong slice can only hurt the task that passed it.

#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]
#![forbid(clippy::wildcard_imports)]

#[cfg(feature = "defmt")]
pub mod defmt_log;
pub mod durable;
pub mod hl;
pub mod log;
#[cfg(target_os = "none")]
mod start;

use core::arch::asm;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

pub use abi::seamcall::{SeamcallOutcome, UnknownOutcome};
pub use abi::syscall::TimerState;
use abi::syscall::{
    ArgRegs, BorrowArgs, BorrowInfoArgs, BytesArgs, Deadline, IrqControlArgs, IrqStatus,
    IrqStatusArgs, PostArgs, Received, RecvArgs, RefreshTaskIdArgs, RefreshedTaskId, ReplyArgs,
    ReplyFaultArgs, ReplyRecvArgs, Response, SeamcallArgs, SendArgs, SetTimerArgs, USlice,
};
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

impl From<Received> for RecvMessage {
    fn from(m: Received) -> Self {
        RecvMessage {
            sender: m.sender,
            operation: m.operation,
            message_len: m.message_len as usize,
            response_capacity: m.response_capacity as usize,
            lease_count: m.lease_count as usize,
        }
    }
}

/// The claim a slice makes to the kernel.
fn claim(bytes: &[u8]) -> USlice {
    USlice::new(bytes.as_ptr() as u64, bytes.len() as u64)
}

/// The claim a writable slice makes to the kernel.
fn claim_mut(bytes: &mut [u8]) -> USlice {
    USlice::new(bytes.as_mut_ptr() as u64, bytes.len() as u64)
}

/// Raw syscall with eight argument words, returning the first `N` of its
/// six result words (a result struct's `from_regs` takes exactly its own).
#[inline(always)]
fn syscall<const N: usize>(num: Sysnum, args: ArgRegs) -> [u64; N] {
    const { assert!(N <= 6) };
    let r = sys_raw(num as u64, args);
    core::array::from_fn(|i| r[i])
}

/// [`syscall`] setting only the first `A` argument words: the kernel
/// ignores the words past a syscall's own (`abi::syscall`), so the other
/// registers need neither zeroing nor, for R12 and R13, saving around the
/// call. Hand-written per width because `asm!` cannot take a register
/// list as a parameter; all eight words (REPLY_RECV) are [`sys_raw`].
#[inline(always)]
fn syscall_words<const A: usize, const N: usize>(num: Sysnum, args: ArgRegs) -> [u64; N] {
    const { assert!(N <= 6 && A <= 8) };
    let r: [u64; 6] = if A <= 1 {
        let (r0, r1, r2, r3, r4, r5);
        // Safety: as `sys_raw`, with the argument registers past RDI left
        // as they are; the kernel writes at most the six result
        // registers named here (and SYSCALL clobbers RCX and R11).
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") num as u64 => r0,
                inlateout("rdi") args[0] => r1,
                lateout("rsi") r2,
                lateout("rdx") r3,
                lateout("r10") r4,
                lateout("r8") r5,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        [r0, r1, r2, r3, r4, r5]
    } else if A <= 4 {
        let (r0, r1, r2, r3, r4, r5);
        // Safety: as above, with four argument words.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") num as u64 => r0,
                inlateout("rdi") args[0] => r1,
                inlateout("rsi") args[1] => r2,
                inlateout("rdx") args[2] => r3,
                inlateout("r10") args[3] => r4,
                lateout("r8") r5,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        [r0, r1, r2, r3, r4, r5]
    } else {
        sys_raw(num as u64, args)
    };
    core::array::from_fn(|i| r[i])
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
    let args = SendArgs {
        target,
        operation: u64::from(operation),
        message: claim(outgoing),
        reply: claim_mut(incoming),
        leases: USlice::new(leases.as_ptr() as u64, leases.len() as u64),
    };
    let r = Response::from_regs(syscall(Sysnum::Send, args.to_regs()));
    (r.code, r.value as usize)
}

/// SEND with a reply buffer the caller has not initialized: no zeroing of
/// memory the kernel is about to write (a generated IDL client's reply of a
/// fixed layout). Returns the response code and the reply bytes the kernel
/// wrote, at the start of `incoming`.
pub fn sys_send_into<'r>(
    target: TaskId,
    operation: u16,
    outgoing: &[u8],
    incoming: &'r mut [MaybeUninit<u8>],
    leases: &[Lease<'_>],
) -> (u32, &'r [u8]) {
    let args = SendArgs {
        target,
        operation: u64::from(operation),
        message: claim(outgoing),
        reply: USlice::new(incoming.as_mut_ptr() as u64, incoming.len() as u64),
        leases: USlice::new(leases.as_ptr() as u64, leases.len() as u64),
    };
    let r = Response::from_regs(syscall(Sysnum::Send, args.to_regs()));
    let written = (r.value as usize).min(incoming.len());
    // Safety: the response value of a SEND is the number of bytes the kernel
    // wrote at the start of the reply buffer (REPLY's message, a kernel IPC
    // answer) or 0 (every other answer), and never more than the buffer
    // holds (a longer REPLY is refused: `ReplyTooBig`); `min` keeps the slice
    // inside the buffer regardless. Those bytes are initialized, and
    // `incoming` stays borrowed for as long as the slice lives.
    let reply = unsafe { core::slice::from_raw_parts(incoming.as_ptr().cast::<u8>(), written) };
    (r.code, reply)
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
    let args = RecvArgs {
        buffer: claim_mut(buffer),
        notification_mask,
        sender,
    };
    Received::from_regs(syscall_words::<{ RecvArgs::WORDS }, _>(
        Sysnum::Recv,
        args.to_regs(),
    ))
    .map(RecvMessage::from)
}

/// Replies to `peer` with `code` and `message`. A stale `peer`, or one no
/// longer waiting for us, is silently ignored.
pub fn sys_reply(peer: TaskId, code: u32, message: &[u8]) {
    let args = ReplyArgs {
        peer,
        code,
        message: claim(message),
    };
    syscall_words::<{ ReplyArgs::WORDS }, 0>(Sysnum::Reply, args.to_regs());
}

/// Replies to `peer` with `code` and `message` as [`sys_reply`] does, then
/// receives as [`sys_recv`] does, in one kernel entry (REPLY_RECV): the
/// reply of one request rides on the receive of the next.
///
/// Registers (`abi::syscall::ReplyRecvArgs`): RDI/RSI = `buffer`, RDX =
/// `notification_mask`, R10 = `sender` (RECV's words, in RECV's
/// registers); R8 = `peer`, R9 = `code`, R12/R13 = `message`. RAX, RDI,
/// RSI, RDX, R10 and R8 come back as RECV's result; R9, R12 and R13 are
/// kept. Everything REPLY would fault for faults the caller before the
/// receive; a reply to a stale peer or one not waiting for us is ignored,
/// and the receive goes on.
///
/// # Errors
/// The dead code of a closed receive whose `sender` is stale or restarts.
pub fn sys_reply_recv(
    peer: TaskId,
    code: u32,
    message: &[u8],
    buffer: &mut [u8],
    notification_mask: u64,
    sender: Option<TaskId>,
) -> Result<RecvMessage, u32> {
    let args = ReplyRecvArgs {
        reply: ReplyArgs {
            peer,
            code,
            message: claim(message),
        },
        recv: RecvArgs {
            buffer: claim_mut(buffer),
            notification_mask,
            sender,
        },
    };
    Received::from_regs(syscall_words::<{ ReplyRecvArgs::WORDS }, _>(
        Sysnum::ReplyRecv,
        args.to_regs(),
    ))
    .map(RecvMessage::from)
}

/// [`sys_reply_recv`] with an open receive.
pub fn sys_reply_recv_open(
    peer: TaskId,
    code: u32,
    message: &[u8],
    buffer: &mut [u8],
    notification_mask: u64,
) -> RecvMessage {
    match sys_reply_recv(peer, code, message, buffer, notification_mask, None) {
        Ok(m) => m,
        // As for `sys_recv_open`: an open receive never names a dead peer.
        Err(_) => unreachable_open_recv(),
    }
}

/// Faults `peer`, which must be waiting for our reply, for `reason`.
pub fn sys_reply_fault(peer: TaskId, reason: ReplyFaultReason) {
    let args = ReplyFaultArgs { peer, reason };
    syscall::<0>(Sysnum::ReplyFault, args.to_regs());
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
    let args = BorrowArgs {
        lender,
        index: index as u64,
        offset: offset as u64,
        buffer: claim_mut(dest),
    };
    let r = Response::from_regs(syscall(Sysnum::BorrowRead, args.to_regs()));
    (r.code, r.value as usize)
}

/// Copies `src` into lease `index` of `lender` at `offset`. Returns the
/// response code and the number of bytes copied.
pub fn sys_borrow_write(lender: TaskId, index: usize, offset: usize, src: &[u8]) -> (u32, usize) {
    let args = BorrowArgs {
        lender,
        index: index as u64,
        offset: offset as u64,
        buffer: claim(src),
    };
    let r = Response::from_regs(syscall(Sysnum::BorrowWrite, args.to_regs()));
    (r.code, r.value as usize)
}

/// Attributes and length of lease `index` of `lender`.
pub fn sys_borrow_info(lender: TaskId, index: usize) -> Result<LeaseInfo, u32> {
    let args = BorrowInfoArgs {
        lender,
        index: index as u64,
    };
    let info = abi::syscall::LeaseInfo::from_regs(syscall(Sysnum::BorrowInfo, args.to_regs()))?;
    Ok(LeaseInfo {
        attributes: info.attributes,
        len: info.len as usize,
    })
}

/// ORs `bits` into `target`'s notification word. Returns 0, a dead code or
/// `abi::IPC_REFUSED`.
pub fn sys_post(target: TaskId, bits: u64) -> u32 {
    let args = PostArgs { target, bits };
    Response::from_regs(syscall(Sysnum::Post, args.to_regs())).code
}

/// Arms (or with `None`, disarms) this task's timer: at `deadline` ticks the
/// kernel posts `notifications` to us.
pub fn sys_set_timer(deadline: Option<u64>, notifications: u64) {
    let args = SetTimerArgs {
        deadline: deadline.map(Deadline::At),
        notifications,
    };
    syscall::<0>(Sysnum::SetTimer, args.to_regs());
}

/// Arms this task's timer `ticks` from now (the kernel adds its clock,
/// saturating; 0 fires at once): `sys_set_timer(Some(now + ticks), ..)`
/// in one syscall, without reading the clock first.
pub fn sys_set_timer_after(ticks: u64, notifications: u64) {
    let args = SetTimerArgs {
        deadline: Some(Deadline::After(ticks)),
        notifications,
    };
    syscall::<0>(Sysnum::SetTimer, args.to_regs());
}

/// Reads the clock and this task's timer.
pub fn sys_get_timer() -> TimerState {
    TimerState::from_regs(syscall(Sysnum::GetTimer, [0; 8]))
}

/// Enables or disables the interrupts bound to `mask` in the manifest.
pub fn sys_irq_control(mask: u64, enable: bool) {
    let args = IrqControlArgs { mask, enable };
    syscall::<0>(Sysnum::IrqControl, args.to_regs());
}

/// Returns `(enabled, pending)` bit sets for the interrupts bound to `mask`.
pub fn sys_irq_status(mask: u64) -> (u64, u64) {
    let args = IrqStatusArgs { mask };
    let s = IrqStatus::from_regs(syscall(Sysnum::IrqStatus, args.to_regs()));
    (s.enabled, s.pending)
}

/// The current id (with generation) of the task at `index`.
pub fn sys_refresh_task_id(index: TaskIndex) -> TaskId {
    let args = RefreshTaskIdArgs {
        index: u64::from(index.0),
    };
    RefreshedTaskId::from_regs(syscall_words::<{ RefreshTaskIdArgs::WORDS }, _>(
        Sysnum::RefreshTaskId,
        args.to_regs(),
    ))
    .id
}

/// Writes `bytes` to the kernel log, tagged with this task's name.
pub fn sys_log(bytes: &[u8]) {
    let args = BytesArgs {
        bytes: claim(bytes),
    };
    syscall::<0>(Sysnum::Log, args.to_regs());
}

/// Hands one encoded defmt frame to the kernel, which writes it to the
/// binary log port tagged with this task's index. Frames longer than the
/// kernel's limit (256 bytes) are dropped by the kernel.
pub fn sys_log_frame(frame: &[u8]) {
    let args = BytesArgs {
        bytes: claim(frame),
    };
    syscall::<0>(Sysnum::LogFrame, args.to_regs());
}

/// Halts the CPU until the next interrupt; for the idle task.
pub fn sys_wait_for_interrupt() {
    syscall::<0>(Sysnum::WaitForInterrupt, [0; 8]);
}

/// Faults this task with `FaultInfo::Panic`; the kernel keeps `message` for
/// the supervisor.
pub fn sys_panic(message: &[u8]) -> ! {
    let args = BytesArgs {
        bytes: claim(message),
    };
    syscall::<0>(Sysnum::Panic, args.to_regs());
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
    let args = SeamcallArgs {
        cpu: cpu.map_or(abi::seamcall::ANY_CPU, u64::from),
        leaf: rax,
        inputs: regs,
    };
    seamcall_syscall(Sysnum::Seamcall, args)
}

/// Starts a SEAMCALL on CPU `cpu` and returns at once (`SeamcallOutcome::Started`, or why
/// not); the kernel posts notification bit `bit` (0..=63) to this task when it has finished,
/// and [`sys_seamcall_collect`] then returns its result. Register use as [`sys_seamcall`].
///
/// # Errors
/// [`UnknownOutcome`] when the kernel answers with an outcome code this library does not know.
pub fn sys_seamcall_start(
    cpu: u32,
    bit: u8,
    rax: u64,
    regs: [u64; 6],
) -> Result<SeamcallOutcome, UnknownOutcome> {
    let args = SeamcallArgs {
        cpu: u64::from(cpu) | (u64::from(bit & 63) << abi::seamcall::START_BIT_SHIFT),
        leaf: rax,
        inputs: regs,
    };
    seamcall_syscall(Sysnum::SeamcallStart, args)
}

/// The result of the SEAMCALL this task started on CPU `cpu`: what [`sys_seamcall`] would
/// have returned, or `InProgress`, or `NothingToCollect`.
///
/// # Errors
/// [`UnknownOutcome`] when the kernel answers with an outcome code this library does not know.
pub fn sys_seamcall_collect(cpu: u32) -> Result<SeamcallOutcome, UnknownOutcome> {
    let args = SeamcallArgs {
        cpu: u64::from(cpu),
        leaf: 0,
        inputs: [0; 6],
    };
    seamcall_syscall(Sysnum::SeamcallCollect, args)
}

fn seamcall_syscall(number: Sysnum, args: SeamcallArgs) -> Result<SeamcallOutcome, UnknownOutcome> {
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
    let args = args.to_regs();
    // Safety: as in `syscall`, with the SEAMCALL register convention of
    // `abi::seamcall` (the same for its asynchronous forms): every register
    // the kernel writes is an output here. The argument and result words
    // sit in the registers `abi::syscall` assigns them.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as u64 => code,
            inlateout("rdi") args[0] => o_rax,
            inlateout("rsi") args[1] => o_rcx,
            inlateout("rdx") args[2] => o_rdx,
            inlateout("r10") args[3] => o_r8,
            inlateout("r8") args[4] => o_r9,
            inlateout("r9") args[5] => o_r10,
            inlateout("r12") args[6] => o_r11,
            in("r13") args[7],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    SeamcallOutcome::from_raw([code, o_rax, o_rcx, o_rdx, o_r8, o_r9, o_r10, o_r11])
}
