//! The register layout of every syscall, as types.
//!
//! A syscall passes its number in RAX and up to eight argument words in
//! the argument registers; it answers in up to eight result registers.
//! Neither side names a register outside this module's documentation and
//! the two places that move words in and out of registers (userlib's
//! `syscall` stubs and the kernel's saved-register area):
//!
//! - argument word `i` is `[RDI, RSI, RDX, R10, R8, R9, R12, R13][i]`;
//! - result word `i` is `[RAX, RDI, RSI, RDX, R10, R8, R9, R12][i]`.
//!
//! The kernel reads only the argument words a syscall's struct defines
//! and ignores the others, so a stub need not set them (an argument
//! struct with a `WORDS` constant says how many it defines; the tests
//! hold `from_regs` and `to_regs` to it). Registers a syscall does not
//! answer in keep the caller's values: the callee-saved RBX, RBP, R13,
//! R14 and R15 always, and of the result registers those past the
//! answer's own words; RCX and R11 are lost to SYSCALL itself.
//!
//! Each syscall has an argument struct with `from_regs` (the kernel
//! decodes) and `to_regs` (userlib encodes), and a result struct with
//! `to_regs` (the kernel answers) and `from_regs` (userlib decodes). A
//! result writes only its own `N` words, so the other registers keep
//! whatever the task had in them, as before there were types.
//!
//! Decoding arguments that can be malformed regardless of any state (a
//! reserved bit set, an unknown reason) returns the [`UsageError`] the
//! kernel faults the caller with; everything that needs the task table
//! (is the target alive, may the caller touch this memory) stays with the
//! kernel.

use crate::{ReplyFaultReason, TaskId, UsageError, RECV_CLOSED};

/// How many argument words a syscall can carry.
pub const ARG_WORDS: usize = 8;

/// How many result words a syscall can answer with.
pub const RESULT_WORDS: usize = 8;

/// The argument words of a syscall, in the order described in the module
/// documentation.
pub type ArgRegs = [u64; ARG_WORDS];

/// A task's claim to `len` bytes at `base` of its own memory.
///
/// Only a claim: the kernel checks it against the task's regions before it
/// touches a byte.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct USlice {
    pub base: u64,
    pub len: u64,
}

impl USlice {
    #[must_use]
    pub const fn new(base: u64, len: u64) -> Self {
        USlice { base, len }
    }
}

/// The words of a result whose only content is a response code (0 for
/// success) and one value; the answer every syscall gives when it has
/// nothing more specific to say.
///
/// Registers: RAX = code, RDI = value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u32,
    pub value: u64,
}

impl Response {
    /// Success with nothing to report.
    pub const OK: Response = Response { code: 0, value: 0 };

    /// A response code with no value, as every recoverable error returns.
    #[must_use]
    pub const fn code(code: u32) -> Self {
        Response { code, value: 0 }
    }

    #[must_use]
    pub const fn to_regs(self) -> [u64; 2] {
        [self.code as u64, self.value]
    }

    /// Decodes the words; the kernel only ever writes 32-bit codes, so the
    /// upper half of RAX is ignored.
    #[must_use]
    pub const fn from_regs(r: [u64; 2]) -> Self {
        Response {
            code: r[0] as u32,
            value: r[1],
        }
    }
}

/// SEND: target, operation, message, reply buffer and lease table.
///
/// Registers: RDI = target, RSI = operation, RDX/R10 = message, R8/R9 =
/// reply buffer, R12/R13 = lease table (address, entry count).
/// Result: a [`Response`] whose code is the server's response code and
/// whose value is the reply length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SendArgs {
    pub target: TaskId,
    /// Must fit in 16 bits. Kept wide so the kernel can tell which check
    /// failed: a SEND to a task faults with `ReservedBits`, a SEND to the
    /// kernel with `BadKernelMessage`.
    pub operation: u64,
    pub message: USlice,
    pub reply: USlice,
    /// Address of the [`ULease`](crate::ULease) table and its entry count
    /// (the `len` of this slice counts entries, not bytes).
    pub leases: USlice,
}

impl SendArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        SendArgs {
            target: TaskId(r[0] as u32),
            operation: r[1],
            message: USlice::new(r[2], r[3]),
            reply: USlice::new(r[4], r[5]),
            leases: USlice::new(r[6], r[7]),
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [
            self.target.0 as u64,
            self.operation,
            self.message.base,
            self.message.len,
            self.reply.base,
            self.reply.len,
            self.leases.base,
            self.leases.len,
        ]
    }
}

/// RECV: buffer, notification mask and (for a closed receive) the one
/// sender accepted.
///
/// Registers: RDI/RSI = buffer, RDX = notification mask, R10 = sender
/// with [`RECV_CLOSED`] set for a closed receive, else 0.
/// Result: [`Received`], or a [`Response`] carrying a dead code when the
/// named sender is stale or restarts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RecvArgs {
    pub buffer: USlice,
    pub notification_mask: u64,
    /// `Some`: a closed receive; `TaskId::KERNEL` takes notifications only.
    pub sender: Option<TaskId>,
}

impl RecvArgs {
    /// The argument words RECV defines (RDI, RSI, RDX, R10).
    pub const WORDS: usize = 4;

    /// # Errors
    /// `ReservedBits` if the sender word has bits set besides
    /// [`RECV_CLOSED`] and a task id, or a task id without `RECV_CLOSED`.
    pub const fn from_regs(r: &ArgRegs) -> Result<Self, UsageError> {
        let word = r[3];
        let sender = if word & RECV_CLOSED != 0 {
            if word & !(RECV_CLOSED | 0xFFFF_FFFF) != 0 {
                return Err(UsageError::ReservedBits);
            }
            Some(TaskId(word as u32))
        } else if word != 0 {
            return Err(UsageError::ReservedBits);
        } else {
            None
        };
        Ok(RecvArgs {
            buffer: USlice::new(r[0], r[1]),
            notification_mask: r[2],
            sender,
        })
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        let sender = match self.sender {
            Some(t) => RECV_CLOSED | t.0 as u64,
            None => 0,
        };
        [
            self.buffer.base,
            self.buffer.len,
            self.notification_mask,
            sender,
            0,
            0,
            0,
            0,
        ]
    }
}

/// What a successful RECV delivered: a message, or notifications (then
/// `sender` is `TaskId::KERNEL`, `operation` the bits that fired and the
/// rest zero).
///
/// Registers: RAX = 0, RDI = sender, RSI = operation, RDX = message
/// length, R10 = reply capacity, R8 = lease count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub sender: TaskId,
    pub operation: u64,
    /// The length the sender sent, which may exceed the buffer.
    pub message_len: u64,
    /// How many bytes of reply the sender can take.
    pub response_capacity: u64,
    pub lease_count: u64,
}

impl Received {
    /// The delivery of notification bits `fired`.
    #[must_use]
    pub const fn notification(fired: u64) -> Self {
        Received {
            sender: TaskId::KERNEL,
            operation: fired,
            message_len: 0,
            response_capacity: 0,
            lease_count: 0,
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> [u64; 6] {
        [
            0,
            self.sender.0 as u64,
            self.operation,
            self.message_len,
            self.response_capacity,
            self.lease_count,
        ]
    }

    /// # Errors
    /// The response code (a dead code) when RAX is not 0.
    pub const fn from_regs(r: [u64; 6]) -> Result<Self, u32> {
        if r[0] != 0 {
            return Err(r[0] as u32);
        }
        Ok(Received {
            sender: TaskId(r[1] as u32),
            operation: r[2],
            message_len: r[3],
            response_capacity: r[4],
            lease_count: r[5],
        })
    }
}

/// REPLY: peer, response code and message.
///
/// Registers: RDI = peer, RSI = response code (32 bits), RDX/R10 = message.
/// Result: none (the caller's registers other than RCX/R11 are kept).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReplyArgs {
    pub peer: TaskId,
    pub code: u32,
    pub message: USlice,
}

impl ReplyArgs {
    /// The argument words REPLY defines (RDI, RSI, RDX, R10).
    pub const WORDS: usize = 4;

    /// # Errors
    /// `ReservedBits` if the code does not fit 32 bits, `ReservedCode` if it
    /// is one of the kernel's own ([`crate::FIRST_RESERVED_CODE`] and up).
    pub const fn from_regs(r: &ArgRegs) -> Result<Self, UsageError> {
        // One compare on the way through: every code word the two errors refuse lies at or
        // above the first reserved code.
        if r[1] >= crate::FIRST_RESERVED_CODE as u64 {
            return Err(if r[1] > u32::MAX as u64 {
                UsageError::ReservedBits
            } else {
                UsageError::ReservedCode
            });
        }
        Ok(ReplyArgs {
            peer: TaskId(r[0] as u32),
            code: r[1] as u32,
            message: USlice::new(r[2], r[3]),
        })
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [
            self.peer.0 as u64,
            self.code as u64,
            self.message.base,
            self.message.len,
            0,
            0,
            0,
            0,
        ]
    }
}

/// REPLY_RECV: a REPLY, then a RECV, in one call (a server answers one
/// request and waits for the next with one kernel entry).
///
/// Registers: RDI/RSI = receive buffer, RDX = notification mask, R10 =
/// sender (RECV's four words, in RECV's registers, so a task blocked in
/// this call is read back exactly as one blocked in RECV); R8 = peer, R9 =
/// response code, R12/R13 = reply message (REPLY's four words, four
/// places up). Result: RECV's ([`Received`], or a [`Response`] with a dead
/// code); R9, R12 and R13 keep the caller's values.
///
/// The two halves decode separately, in order: the kernel finishes the
/// REPLY (or faults the caller for it) before it reads the RECV words, as
/// a REPLY followed by a RECV would.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReplyRecvArgs {
    pub reply: ReplyArgs,
    pub recv: RecvArgs,
}

impl ReplyRecvArgs {
    /// The argument words REPLY_RECV defines (all eight).
    pub const WORDS: usize = RecvArgs::WORDS + ReplyArgs::WORDS;

    /// The REPLY half (words 4..8).
    ///
    /// # Errors
    /// As [`ReplyArgs::from_regs`].
    pub const fn reply_from_regs(r: &ArgRegs) -> Result<ReplyArgs, UsageError> {
        ReplyArgs::from_regs(&[r[4], r[5], r[6], r[7], 0, 0, 0, 0])
    }

    /// The RECV half (words 0..4).
    ///
    /// # Errors
    /// As [`RecvArgs::from_regs`].
    pub const fn recv_from_regs(r: &ArgRegs) -> Result<RecvArgs, UsageError> {
        RecvArgs::from_regs(r)
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        let recv = self.recv.to_regs();
        let reply = self.reply.to_regs();
        [
            recv[0], recv[1], recv[2], recv[3], reply[0], reply[1], reply[2], reply[3],
        ]
    }
}

/// REPLY_FAULT: peer and reason.
///
/// Registers: RDI = peer, RSI = [`ReplyFaultReason`]. Result: none.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReplyFaultArgs {
    pub peer: TaskId,
    pub reason: ReplyFaultReason,
}

impl ReplyFaultArgs {
    /// # Errors
    /// `ReservedBits` if the reason is not a [`ReplyFaultReason`].
    pub fn from_regs(r: &ArgRegs) -> Result<Self, UsageError> {
        let reason = u32::try_from(r[1])
            .ok()
            .and_then(ReplyFaultReason::from_raw)
            .ok_or(UsageError::ReservedBits)?;
        Ok(ReplyFaultArgs {
            peer: TaskId(r[0] as u32),
            reason,
        })
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [self.peer.0 as u64, self.reason as u64, 0, 0, 0, 0, 0, 0]
    }
}

/// BORROW_READ and BORROW_WRITE: a lease of a lender, an offset into it
/// and the caller's own buffer.
///
/// Registers: RDI = lender, RSI = lease index, RDX = offset, R10/R8 = the
/// caller's buffer. Result: a [`Response`] whose value is the number of
/// bytes copied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BorrowArgs {
    pub lender: TaskId,
    pub index: u64,
    pub offset: u64,
    pub buffer: USlice,
}

impl BorrowArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        BorrowArgs {
            lender: TaskId(r[0] as u32),
            index: r[1],
            offset: r[2],
            buffer: USlice::new(r[3], r[4]),
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [
            self.lender.0 as u64,
            self.index,
            self.offset,
            self.buffer.base,
            self.buffer.len,
            0,
            0,
            0,
        ]
    }
}

/// BORROW_INFO: a lease of a lender.
///
/// Registers: RDI = lender, RSI = lease index. Result: [`LeaseInfo`], or a
/// [`Response`] with `DEFECT` or a dead code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BorrowInfoArgs {
    pub lender: TaskId,
    pub index: u64,
}

impl BorrowInfoArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        BorrowInfoArgs {
            lender: TaskId(r[0] as u32),
            index: r[1],
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [self.lender.0 as u64, self.index, 0, 0, 0, 0, 0, 0]
    }
}

/// Attributes and length of a lease, from BORROW_INFO.
///
/// Registers: RAX = 0, RDI = attributes, RSI = length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub attributes: u32,
    pub len: u64,
}

impl LeaseInfo {
    #[must_use]
    pub const fn to_regs(&self) -> [u64; 3] {
        [0, self.attributes as u64, self.len]
    }

    /// # Errors
    /// The response code when RAX is not 0.
    pub const fn from_regs(r: [u64; 3]) -> Result<Self, u32> {
        if r[0] != 0 {
            return Err(r[0] as u32);
        }
        Ok(LeaseInfo {
            attributes: r[1] as u32,
            len: r[2],
        })
    }
}

/// POST: target and notification bits.
///
/// Registers: RDI = target, RSI = bits. Result: a [`Response`] (0,
/// `IPC_REFUSED` or a dead code).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PostArgs {
    pub target: TaskId,
    pub bits: u64,
}

impl PostArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        PostArgs {
            target: TaskId(r[0] as u32),
            bits: r[1],
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [self.target.0 as u64, self.bits, 0, 0, 0, 0, 0, 0]
    }
}

/// When an armed timer fires: at an absolute tick, or a number of ticks
/// after the kernel's clock at the SET_TIMER.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// At this tick (one already past fires at once).
    At(u64),
    /// This many ticks from now (0 fires at once).
    After(u64),
}

impl Deadline {
    /// The absolute tick, given the kernel's clock `now`. A relative
    /// deadline saturates at `u64::MAX` (a timer that never fires) rather
    /// than wrapping into the past, where it would fire at once.
    #[must_use]
    pub const fn resolve(self, now: u64) -> u64 {
        match self {
            Deadline::At(tick) => tick,
            Deadline::After(ticks) => now.saturating_add(ticks),
        }
    }
}

/// SET_TIMER: arm the caller's timer at a [`Deadline`] to post
/// `notifications`, or disarm it.
///
/// Registers: RDI = flags ([`set_timer`](crate::set_timer): `ARMED`, and
/// `RELATIVE` with it), RSI = deadline (a tick, or with `RELATIVE` a
/// count of ticks), RDX = bits. With `ARMED` clear the other words are
/// ignored. Result: [`Response::OK`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SetTimerArgs {
    pub deadline: Option<Deadline>,
    pub notifications: u64,
}

impl SetTimerArgs {
    /// # Errors
    /// `ReservedBits` for a flag word with an unknown bit, or `RELATIVE`
    /// without `ARMED` (a disarm has no deadline to be relative).
    pub const fn from_regs(r: &ArgRegs) -> Result<Self, UsageError> {
        use crate::set_timer::{ARMED, RELATIVE};
        let flags = r[0];
        if flags & !(ARMED | RELATIVE) != 0 || flags == RELATIVE {
            return Err(UsageError::ReservedBits);
        }
        let deadline = if flags == ARMED {
            Some(Deadline::At(r[1]))
        } else if flags == ARMED | RELATIVE {
            Some(Deadline::After(r[1]))
        } else {
            None
        };
        Ok(SetTimerArgs {
            deadline,
            notifications: r[2],
        })
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        use crate::set_timer::{ARMED, RELATIVE};
        let (flags, deadline) = match self.deadline {
            Some(Deadline::At(tick)) => (ARMED, tick),
            Some(Deadline::After(ticks)) => (ARMED | RELATIVE, ticks),
            None => (0, 0),
        };
        [flags, deadline, self.notifications, 0, 0, 0, 0, 0]
    }
}

/// The state of a task's timer, from GET_TIMER (which takes no arguments).
///
/// Registers: RAX = 0, RDI = now, RSI = deadline (0 when disarmed), RDX =
/// armed, R10 = bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimerState {
    /// Kernel ticks since boot.
    pub now: u64,
    /// The armed deadline, if any.
    pub deadline: Option<u64>,
    /// Bits posted when the deadline passes.
    pub notifications: u64,
}

impl TimerState {
    #[must_use]
    pub const fn to_regs(&self) -> [u64; 5] {
        let (deadline, armed) = match self.deadline {
            Some(d) => (d, 1),
            None => (0, 0),
        };
        [0, self.now, deadline, armed, self.notifications]
    }

    #[must_use]
    pub const fn from_regs(r: [u64; 5]) -> Self {
        TimerState {
            now: r[1],
            deadline: if r[3] != 0 { Some(r[2]) } else { None },
            notifications: r[4],
        }
    }
}

/// IRQ_CONTROL: enable or disable the interrupts bound to notification
/// bits `mask`.
///
/// Registers: RDI = mask, RSI = flags ([`crate::irq_control`]).
/// Result: [`Response::OK`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IrqControlArgs {
    pub mask: u64,
    pub enable: bool,
}

impl IrqControlArgs {
    /// # Errors
    /// `ReservedBits` for an unknown flag.
    pub const fn from_regs(r: &ArgRegs) -> Result<Self, UsageError> {
        let flags = r[1];
        if flags & !crate::irq_control::ENABLE != 0 {
            return Err(UsageError::ReservedBits);
        }
        Ok(IrqControlArgs {
            mask: r[0],
            enable: flags & crate::irq_control::ENABLE != 0,
        })
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        let flags = if self.enable {
            crate::irq_control::ENABLE
        } else {
            0
        };
        [self.mask, flags, 0, 0, 0, 0, 0, 0]
    }
}

/// IRQ_STATUS: the interrupts bound to notification bits `mask`.
///
/// Registers: RDI = mask. Result: [`IrqStatus`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IrqStatusArgs {
    pub mask: u64,
}

impl IrqStatusArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        IrqStatusArgs { mask: r[0] }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [self.mask, 0, 0, 0, 0, 0, 0, 0]
    }
}

/// Which of the asked interrupts are enabled and which are pending, in the
/// caller's notification bits.
///
/// Registers: RAX = 0, RDI = enabled, RSI = pending.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IrqStatus {
    pub enabled: u64,
    pub pending: u64,
}

impl IrqStatus {
    #[must_use]
    pub const fn to_regs(&self) -> [u64; 3] {
        [0, self.enabled, self.pending]
    }

    #[must_use]
    pub const fn from_regs(r: [u64; 3]) -> Self {
        IrqStatus {
            enabled: r[1],
            pending: r[2],
        }
    }
}

/// REFRESH_TASK_ID: the task at `index`.
///
/// Registers: RDI = index. Result: [`RefreshedTaskId`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RefreshTaskIdArgs {
    /// Checked by the kernel against the task table.
    pub index: u64,
}

impl RefreshTaskIdArgs {
    /// The argument words REFRESH_TASK_ID defines (RDI).
    pub const WORDS: usize = 1;

    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        RefreshTaskIdArgs { index: r[0] }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [self.index, 0, 0, 0, 0, 0, 0, 0]
    }
}

/// The current id of a task, from REFRESH_TASK_ID.
///
/// Registers: RAX = id, RDI = 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RefreshedTaskId {
    pub id: TaskId,
}

impl RefreshedTaskId {
    #[must_use]
    pub const fn to_regs(&self) -> [u64; 2] {
        [self.id.0 as u64, 0]
    }

    #[must_use]
    pub const fn from_regs(r: [u64; 2]) -> Self {
        RefreshedTaskId {
            id: TaskId(r[0] as u32),
        }
    }
}

/// PANIC, LOG and LOG_FRAME: bytes of the caller's memory (the panic
/// message, a log line, one encoded defmt frame).
///
/// Registers: RDI/RSI = bytes. Result: [`Response::OK`] (PANIC never
/// returns).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BytesArgs {
    pub bytes: USlice,
}

impl BytesArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        BytesArgs {
            bytes: USlice::new(r[0], r[1]),
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        [self.bytes.base, self.bytes.len, 0, 0, 0, 0, 0, 0]
    }
}

/// SEAMCALL: the CPU to run on and the module's input registers
/// (described in [`crate::seamcall`]).
///
/// Registers: RDI = CPU index ([`crate::seamcall::ANY_CPU`]: the kernel's
/// choice), RSI = the SEAMCALL's RAX, RDX, R10, R8, R9, R12, R13 = its
/// RCX, RDX, R8, R9, R10, R11. Result: [`SeamcallResult`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SeamcallArgs {
    pub cpu: u64,
    /// The SEAMCALL's RAX: leaf and version.
    pub leaf: u64,
    /// The SEAMCALL's RCX, RDX, R8, R9, R10, R11.
    pub inputs: [u64; 6],
}

impl SeamcallArgs {
    #[must_use]
    pub const fn from_regs(r: &ArgRegs) -> Self {
        SeamcallArgs {
            cpu: r[0],
            leaf: r[1],
            inputs: [r[2], r[3], r[4], r[5], r[6], r[7]],
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> ArgRegs {
        let i = &self.inputs;
        [self.cpu, self.leaf, i[0], i[1], i[2], i[3], i[4], i[5]]
    }
}

/// What SEAMCALL answered: an outcome code ([`crate::seamcall`]) and seven
/// words whose meaning depends on it (for `RETURNED`, the module's RAX,
/// RCX, RDX, R8, R9, R10, R11; for `OPERAND_REFUSED`, register, reason and
/// detail).
///
/// Registers: RAX = outcome, RDI, RSI, RDX, R10, R8, R9, R12 = the words.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SeamcallResult {
    pub outcome: u64,
    pub words: [u64; 7],
}

impl SeamcallResult {
    /// An outcome with no words (the module was not run).
    #[must_use]
    pub const fn outcome_only(outcome: u64) -> Self {
        SeamcallResult {
            outcome,
            words: [0; 7],
        }
    }

    #[must_use]
    pub const fn to_regs(&self) -> [u64; RESULT_WORDS] {
        let w = &self.words;
        [self.outcome, w[0], w[1], w[2], w[3], w[4], w[5], w[6]]
    }

    #[must_use]
    pub const fn from_regs(r: [u64; RESULT_WORDS]) -> Self {
        SeamcallResult {
            outcome: r[0],
            words: [r[1], r[2], r[3], r[4], r[5], r[6], r[7]],
        }
    }
}

#[cfg(test)]
mod tests;
