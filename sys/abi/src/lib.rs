//! The contract between the kernel and tasks.
//!
//! Everything a task and the kernel must agree on lives here: task ids and
//! generations, syscall and kernel-IPC numbers, the lease layout, fault
//! records and the reserved response codes. The crate is `no_std`, has no
//! dependencies and no `unsafe`, so the kernel, every task and the host-side
//! tools share one definition.
//!
//! Design rules, carried over from Hubris and widened for a 64-bit machine:
//! - Every number crossing the boundary is converted with a hand-written,
//!   fallible `from_raw`/`TryFrom`; an unknown value is an error the caller
//!   must handle, never a silent default.
//! - Addresses and lengths are `u64` everywhere. Task ids carry a 16-bit
//!   generation, so a wrap needs 65,536 restarts of one task.
//! - Response codes at and above [`FIRST_RESERVED_CODE`] are the kernel's own
//!   answers (`IPC_REFUSED`, the kernel-IPC errors, the dead codes); a REPLY
//!   carrying one faults the server, so a client that sees one knows the
//!   kernel said it.

#![no_std]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

pub mod kipc;
pub mod limits;
pub mod platform;
pub mod seamcall;
pub mod syscall;

/// Number of bits of a [`TaskId`] that hold the task index.
pub const INDEX_BITS: u32 = 16;

/// The largest number of tasks an image may hold. Per-task rights are kept
/// in 64-bit masks, so this is also the width of those masks.
pub const MAX_TASKS: usize = 64;

/// A task's position in the static task table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskIndex(pub u16);

/// How many times a task has been (re)started, modulo 2^16.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Generation(pub u16);

impl Generation {
    /// The generation that follows this one. Wraps, deliberately.
    #[must_use]
    pub fn next(self) -> Self {
        Generation(self.0.wrapping_add(1))
    }
}

/// A task's name on the wire: its index in the low 16 bits and its
/// generation in the high 16 bits.
///
/// A `TaskId` with a stale generation still names the same slot but a dead
/// incarnation; the kernel answers it with a dead code rather than a fault.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u32);

impl TaskId {
    /// The kernel, as the sender of notifications and the target of kernel
    /// IPC.
    pub const KERNEL: TaskId = TaskId(0xFFFF_FFFF);

    /// The placeholder of a task slot that the build has not resolved.
    pub const UNBOUND: TaskId = TaskId(0xFFFF_FFFE);

    #[must_use]
    pub const fn new(index: TaskIndex, generation: Generation) -> Self {
        TaskId((generation.0 as u32) << INDEX_BITS | index.0 as u32)
    }

    #[must_use]
    pub const fn index(self) -> TaskIndex {
        TaskIndex(self.0 as u16)
    }

    #[must_use]
    pub const fn generation(self) -> Generation {
        Generation((self.0 >> INDEX_BITS) as u16)
    }
}

/// The first response code the kernel reserves for its own answers
/// ([`IPC_REFUSED`], the kernel-IPC errors, the dead codes). REPLY refuses
/// them ([`UsageError::ReservedCode`]): otherwise a server could tell its
/// client that it restarted, with a generation of its choosing, or that the
/// manifest refused the call.
pub const FIRST_RESERVED_CODE: u32 = 0xFFFD_0000;

/// The first response code reserved for dead codes: `FIRST_DEAD_CODE |
/// new_generation` tells a caller that its peer restarted and what the peer's
/// generation is now.
pub const FIRST_DEAD_CODE: u32 = 0xFFFF_0000;

/// The response code a peer sees when its counterpart has restarted.
#[must_use]
pub const fn dead_response_code(new_generation: Generation) -> u32 {
    FIRST_DEAD_CODE | new_generation.0 as u32
}

/// If `code` is a dead code, the generation it carries.
#[must_use]
pub const fn extract_new_generation(code: u32) -> Option<Generation> {
    if code & FIRST_DEAD_CODE == FIRST_DEAD_CODE {
        Some(Generation(code as u16))
    } else {
        None
    }
}

/// The response code a borrower gets when the lender no longer lends (it is
/// not waiting for our reply) or the lease lacks the needed attribute.
pub const DEFECT: u32 = 1;

/// The response code of a SEND or POST along an edge the manifest does not
/// declare: SEND to a task outside the caller's task slots, POST of bits
/// the manifest does not let the caller post to that task. Nothing was
/// delivered and the target cannot tell it was tried. Kernel-reserved, like
/// the dead codes and the kernel-IPC errors (`0xFFFE_00xx`).
pub const IPC_REFUSED: u32 = 0xFFFD_0001;

/// Bit of the notification word the kernel posts to the supervisor when a
/// task faults.
pub const FAULT_NOTIFICATION: u64 = 1;

/// Syscall numbers, passed in RAX.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sysnum {
    Send = 0,
    Recv = 1,
    Reply = 2,
    SetTimer = 3,
    BorrowRead = 4,
    BorrowWrite = 5,
    BorrowInfo = 6,
    IrqControl = 7,
    Panic = 8,
    GetTimer = 9,
    RefreshTaskId = 10,
    Post = 11,
    ReplyFault = 12,
    IrqStatus = 13,
    /// Write bytes to the kernel's log transport, tagged with the caller.
    Log = 14,
    /// Give up the CPU until the next interrupt. x86 has no unprivileged
    /// `hlt`, so the idle task asks the kernel to halt on its behalf.
    WaitForInterrupt = 15,
    /// Execute a SEAMCALL (see [`seamcall`]); needs the SEAMCALL
    /// capability.
    Seamcall = 16,
    /// Write one encoded defmt frame to the kernel's binary log port
    /// (COM2), tagged with the caller's index.
    LogFrame = 17,
    /// Start a SEAMCALL on a CPU and return at once (see [`seamcall`]);
    /// needs the SEAMCALL capability.
    SeamcallStart = 18,
    /// Collect the result of a started SEAMCALL (see [`seamcall`]).
    SeamcallCollect = 19,
    /// REPLY, then RECV, in one kernel entry: a server answers one request
    /// and waits for the next (see [`syscall::ReplyRecvArgs`]).
    ReplyRecv = 20,
}

impl Sysnum {
    #[must_use]
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Sysnum::Send,
            1 => Sysnum::Recv,
            2 => Sysnum::Reply,
            3 => Sysnum::SetTimer,
            4 => Sysnum::BorrowRead,
            5 => Sysnum::BorrowWrite,
            6 => Sysnum::BorrowInfo,
            7 => Sysnum::IrqControl,
            8 => Sysnum::Panic,
            9 => Sysnum::GetTimer,
            10 => Sysnum::RefreshTaskId,
            11 => Sysnum::Post,
            12 => Sysnum::ReplyFault,
            13 => Sysnum::IrqStatus,
            14 => Sysnum::Log,
            15 => Sysnum::WaitForInterrupt,
            16 => Sysnum::Seamcall,
            17 => Sysnum::LogFrame,
            18 => Sysnum::SeamcallStart,
            19 => Sysnum::SeamcallCollect,
            20 => Sysnum::ReplyRecv,
            _ => return None,
        })
    }
}

/// Lease attribute bits.
pub mod lease_attr {
    /// The lender allows the borrower to read.
    pub const READ: u32 = 1 << 0;
    /// The lender allows the borrower to write.
    pub const WRITE: u32 = 1 << 1;
}

/// One entry of the lease table a client passes to SEND.
///
/// The kernel copies the table out of client memory once, at SEND, checks
/// every entry's `base..base+len` against the client's regions with its
/// attributes, and from then on uses only its copy: a client or server
/// rewriting the table later changes nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ULease {
    pub attributes: u32,
    pub reserved: u32,
    pub base: u64,
    pub len: u64,
}

/// Size of one [`ULease`] in task memory.
pub const ULEASE_SIZE: usize = 24;

/// Most leases one message may carry.
pub const MAX_LEASES: usize = 16;

/// Most bytes the kernel keeps of a task's panic message.
pub const PANIC_MESSAGE_MAX: usize = 128;

/// What a task did wrong when the kernel faulted it for misusing a syscall.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum UsageError {
    /// RAX named no syscall.
    BadSyscallNumber = 1,
    /// A pointer/length pair does not lie in memory the task may access
    /// with the needed permission, or wraps.
    InvalidSlice = 2,
    /// A task index beyond the task table.
    TaskOutOfRange = 3,
    /// The operation is not allowed on this task (e.g. faulting oneself).
    IllegalTask = 4,
    /// A lease index the lender did not provide.
    LeaseOutOfRange = 5,
    /// An offset beyond the end of a lease.
    OffsetOutOfRange = 6,
    /// IRQ_CONTROL named notification bits bound to no interrupt.
    NoIrq = 7,
    /// A kernel-IPC message the kernel could not decode.
    BadKernelMessage = 8,
    /// A reply longer than the caller said it could take.
    ReplyTooBig = 9,
    /// More leases than [`MAX_LEASES`].
    TooManyLeases = 10,
    /// A reserved bit or field was not zero.
    ReservedBits = 11,
    /// A REPLY's response code is one the kernel reserves for its own
    /// answers (at or above [`FIRST_RESERVED_CODE`]).
    ReservedCode = 12,
}

impl UsageError {
    #[must_use]
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => UsageError::BadSyscallNumber,
            2 => UsageError::InvalidSlice,
            3 => UsageError::TaskOutOfRange,
            4 => UsageError::IllegalTask,
            5 => UsageError::LeaseOutOfRange,
            6 => UsageError::OffsetOutOfRange,
            7 => UsageError::NoIrq,
            8 => UsageError::BadKernelMessage,
            9 => UsageError::ReplyTooBig,
            10 => UsageError::TooManyLeases,
            11 => UsageError::ReservedBits,
            12 => UsageError::ReservedCode,
            _ => return None,
        })
    }
}

/// Why a server reply-faulted its client.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ReplyFaultReason {
    UndefinedOperation = 1,
    BadMessageSize = 2,
    BadMessageContents = 3,
    BadLeases = 4,
    ReplyBufferTooSmall = 5,
    AccessViolation = 6,
}

impl ReplyFaultReason {
    #[must_use]
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => ReplyFaultReason::UndefinedOperation,
            2 => ReplyFaultReason::BadMessageSize,
            3 => ReplyFaultReason::BadMessageContents,
            4 => ReplyFaultReason::BadLeases,
            5 => ReplyFaultReason::ReplyBufferTooSmall,
            6 => ReplyFaultReason::AccessViolation,
            _ => return None,
        })
    }
}

/// Why a task stopped running.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultInfo {
    /// A page fault on an address the task does not own (#PF).
    MemoryAccess { address: u64, error_code: u64 },
    /// A page fault in the guard page below the task's stack.
    StackOverflow { address: u64 },
    /// #GP, e.g. a privileged instruction or a non-canonical address.
    GeneralProtection { error_code: u64 },
    /// #UD.
    IllegalInstruction { rip: u64 },
    /// #DE.
    DivideError { rip: u64 },
    /// Any other CPU exception taken in the task.
    Exception { vector: u8, error_code: u64 },
    /// The task misused a syscall.
    SyscallUsage(UsageError),
    /// The task called PANIC.
    Panic,
    /// Another task faulted this one through kernel IPC.
    Injected(TaskId),
    /// A server reply-faulted this task.
    FromServer(TaskId, ReplyFaultReason),
    /// The kernel killed the task on purpose: fault injection from the
    /// manifest (`[kernel.tdx] faults` with `kill`, or `[kernel.chaos]`),
    /// so restart paths can be tested at chosen and random points.
    /// `detail`: the SEAMCALL leaf, or the chaos kill's ordinal (1-based).
    Killed { cause: KillCause, detail: u64 },
}

/// Where the kernel killed a task ([`FaultInfo::Killed`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KillCause {
    /// At a SEAMCALL, before the module executed it.
    SeamcallBefore = 1,
    /// At a SEAMCALL, after the module executed it (its state changed,
    /// the task never saw the answer).
    SeamcallAfter = 2,
    /// Chaos: on entry to a system call, before it ran.
    ChaosSyscallBefore = 3,
    /// Chaos: after a system call ran, before the task saw its result.
    ChaosSyscallAfter = 4,
    /// Chaos: at the instruction a timer tick interrupted.
    ChaosTick = 5,
    /// An armed kill (`KillPoint::BeforeReply`): at a REPLY, before delivery.
    ArmedBeforeReply = 6,
    /// An armed kill (`KillPoint::AfterReply`): right after a REPLY.
    ArmedAfterReply = 7,
    /// An armed kill (`KillPoint::AtSyscall`): on entry to a system call.
    ArmedSyscall = 8,
    /// An armed kill (`KillPoint::AfterSeamcall`): after the module ran it.
    ArmedAfterSeamcall = 9,
    /// An armed kill (`KillPoint::CorruptDurable`): its durable memory was
    /// damaged first.
    CorruptedDurable = 10,
}

impl KillCause {
    #[must_use]
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => KillCause::SeamcallBefore,
            2 => KillCause::SeamcallAfter,
            3 => KillCause::ChaosSyscallBefore,
            4 => KillCause::ChaosSyscallAfter,
            5 => KillCause::ChaosTick,
            6 => KillCause::ArmedBeforeReply,
            7 => KillCause::ArmedAfterReply,
            8 => KillCause::ArmedSyscall,
            9 => KillCause::ArmedAfterSeamcall,
            10 => KillCause::CorruptedDurable,
            _ => return None,
        })
    }
}

impl FaultInfo {
    /// Encodes into `(kind, a, b)` words for kernel IPC.
    #[must_use]
    pub fn to_words(self) -> [u64; 3] {
        match self {
            FaultInfo::MemoryAccess {
                address,
                error_code,
            } => [1, address, error_code],
            FaultInfo::StackOverflow { address } => [2, address, 0],
            FaultInfo::GeneralProtection { error_code } => [3, error_code, 0],
            FaultInfo::IllegalInstruction { rip } => [4, rip, 0],
            FaultInfo::DivideError { rip } => [5, rip, 0],
            FaultInfo::Exception { vector, error_code } => [6, u64::from(vector), error_code],
            FaultInfo::SyscallUsage(e) => [7, e as u64, 0],
            FaultInfo::Panic => [8, 0, 0],
            FaultInfo::Injected(by) => [9, u64::from(by.0), 0],
            FaultInfo::FromServer(server, why) => [10, u64::from(server.0), why as u64],
            FaultInfo::Killed { cause, detail } => [11, cause as u64, detail],
        }
    }

    /// Decodes what [`FaultInfo::to_words`] produced.
    #[must_use]
    pub fn from_words(w: [u64; 3]) -> Option<Self> {
        Some(match w[0] {
            1 => FaultInfo::MemoryAccess {
                address: w[1],
                error_code: w[2],
            },
            2 => FaultInfo::StackOverflow { address: w[1] },
            3 => FaultInfo::GeneralProtection { error_code: w[1] },
            4 => FaultInfo::IllegalInstruction { rip: w[1] },
            5 => FaultInfo::DivideError { rip: w[1] },
            6 => FaultInfo::Exception {
                vector: u8::try_from(w[1]).ok()?,
                error_code: w[2],
            },
            7 => FaultInfo::SyscallUsage(UsageError::from_raw(u32::try_from(w[1]).ok()?)?),
            8 => FaultInfo::Panic,
            9 => FaultInfo::Injected(TaskId(u32::try_from(w[1]).ok()?)),
            10 => FaultInfo::FromServer(
                TaskId(u32::try_from(w[1]).ok()?),
                ReplyFaultReason::from_raw(u32::try_from(w[2]).ok()?)?,
            ),
            11 => FaultInfo::Killed {
                cause: KillCause::from_raw(w[1])?,
                detail: w[2],
            },
            _ => return None,
        })
    }
}

/// What a task is doing, as reported by kernel IPC.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Not started (or held) and not faulted.
    Stopped,
    /// Runnable.
    Runnable,
    /// Blocked in SEND to a task.
    InSend(TaskId),
    /// Sent, waiting for a reply.
    InReply(TaskId),
    /// In RECV; `Some` for a closed receive naming one sender.
    InRecv(Option<TaskId>),
    /// Faulted; the supervisor decides what happens next.
    Faulted(FaultInfo),
}

impl TaskState {
    /// Encodes into words for kernel IPC: `[kind, a, fault0, fault1, fault2]`.
    #[must_use]
    pub fn to_words(self) -> [u64; 5] {
        match self {
            TaskState::Stopped => [0, 0, 0, 0, 0],
            TaskState::Runnable => [1, 0, 0, 0, 0],
            TaskState::InSend(t) => [2, u64::from(t.0), 0, 0, 0],
            TaskState::InReply(t) => [3, u64::from(t.0), 0, 0, 0],
            TaskState::InRecv(None) => [4, u64::MAX, 0, 0, 0],
            TaskState::InRecv(Some(t)) => [4, u64::from(t.0), 0, 0, 0],
            TaskState::Faulted(f) => {
                let [a, b, c] = f.to_words();
                [5, 0, a, b, c]
            }
        }
    }

    /// Decodes what [`TaskState::to_words`] produced.
    #[must_use]
    pub fn from_words(w: [u64; 5]) -> Option<Self> {
        let task = |v: u64| u32::try_from(v).ok().map(TaskId);
        Some(match w[0] {
            0 => TaskState::Stopped,
            1 => TaskState::Runnable,
            2 => TaskState::InSend(task(w[1])?),
            3 => TaskState::InReply(task(w[1])?),
            4 if w[1] == u64::MAX => TaskState::InRecv(None),
            4 => TaskState::InRecv(Some(task(w[1])?)),
            5 => TaskState::Faulted(FaultInfo::from_words([w[2], w[3], w[4]])?),
            _ => return None,
        })
    }
}

/// Attribute bits of a task's memory region, as the build writes them into
/// the kernel's task table (`build-kconfig` re-exports this module, so the
/// manifest side and the kernel read the same numbers).
pub mod region_attr {
    /// The task may read the region.
    pub const READ: u32 = 1 << 0;
    /// The task may write the region.
    pub const WRITE: u32 = 1 << 1;
    /// The task may execute code from the region.
    pub const EXECUTE: u32 = 1 << 2;
    /// Durable memory (the manifest's `memory.durable`): zeroed once at
    /// boot and never again; the task's restarts keep its contents and
    /// address, where its ordinary RAM is zeroed and `.data` re-copied.
    /// Always with READ and WRITE, never EXECUTE; at most one per task.
    pub const DURABLE: u32 = 1 << 3;
}

/// Capabilities the manifest may grant a task, beyond kernel-IPC rights
/// over other tasks. `build-kconfig` re-exports this module for the
/// manifest side.
pub mod capability {
    /// Read the platform record; ask a CPU for its APIC id.
    pub const PLATFORM: u32 = 1 << 0;
    /// Use the SEAMCALL system call.
    pub const SEAMCALL: u32 = 1 << 1;
    /// Physical-memory authority: scrub frames, flush caches on all CPUs.
    pub const MEMORY_AUTHORITY: u32 = 1 << 2;

    /// Every capability with the name a manifest grants it by.
    pub const BY_NAME: [(&str, u32); 3] = [
        ("platform", PLATFORM),
        ("seamcall", SEAMCALL),
        ("memory-authority", MEMORY_AUTHORITY),
    ];
}

/// Flags for IRQ_CONTROL.
pub mod irq_control {
    /// Enable (unmask) the interrupts behind the mask; clear to disable.
    pub const ENABLE: u64 = 1 << 0;
}

/// Flags of SET_TIMER's first argument word; every other bit is reserved.
pub mod set_timer {
    /// Arm the timer; clear to disarm it (the other words are ignored).
    pub const ARMED: u64 = 1 << 0;
    /// With `ARMED`: the deadline word counts ticks from the kernel's
    /// clock (which adds it, saturating) instead of naming a tick, so a
    /// task arms "k ticks from now" in one syscall, with no GET_TIMER.
    pub const RELATIVE: u64 = 1 << 1;
}

/// Bit 63 of RECV's sender argument: receive only from the named sender.
pub const RECV_CLOSED: u64 = 1 << 63;

#[cfg(test)]
mod tests {
    use super::{
        dead_response_code, extract_new_generation, FaultInfo, Generation, KillCause,
        ReplyFaultReason, TaskId, TaskIndex, TaskState, UsageError,
    };

    #[test]
    fn task_id_round_trips_index_and_generation() {
        let id = TaskId::new(TaskIndex(7), Generation(0xBEEF));
        assert_eq!(id.index(), TaskIndex(7));
        assert_eq!(id.generation(), Generation(0xBEEF));
        assert_eq!(id.0, 0xBEEF_0007);
    }

    #[test]
    fn dead_codes_carry_the_generation_and_nothing_else_is_dead() {
        assert_eq!(
            extract_new_generation(dead_response_code(Generation(3))),
            Some(Generation(3))
        );
        assert_eq!(extract_new_generation(0), None);
        assert_eq!(extract_new_generation(0xFFFE_FFFF), None);
    }

    #[test]
    fn generation_wraps() {
        assert_eq!(Generation(u16::MAX).next(), Generation(0));
    }

    #[test]
    fn fault_and_state_encodings_round_trip() {
        let faults = [
            FaultInfo::MemoryAccess {
                address: 0xdead_0000,
                error_code: 7,
            },
            FaultInfo::StackOverflow { address: 0x1000 },
            FaultInfo::GeneralProtection { error_code: 0 },
            FaultInfo::IllegalInstruction { rip: 5 },
            FaultInfo::DivideError { rip: 6 },
            FaultInfo::Exception {
                vector: 17,
                error_code: 0,
            },
            FaultInfo::SyscallUsage(UsageError::ReplyTooBig),
            FaultInfo::Panic,
            FaultInfo::Injected(TaskId(3)),
            FaultInfo::FromServer(TaskId(2), ReplyFaultReason::BadLeases),
            FaultInfo::Killed {
                cause: KillCause::SeamcallAfter,
                detail: 44,
            },
            FaultInfo::Killed {
                cause: KillCause::ChaosTick,
                detail: 200,
            },
        ];
        for f in faults {
            assert_eq!(FaultInfo::from_words(f.to_words()), Some(f));
            let s = TaskState::Faulted(f);
            assert_eq!(TaskState::from_words(s.to_words()), Some(s));
        }
        for s in [
            TaskState::Stopped,
            TaskState::Runnable,
            TaskState::InSend(TaskId(1)),
            TaskState::InReply(TaskId(2)),
            TaskState::InRecv(None),
            TaskState::InRecv(Some(TaskId(4))),
        ] {
            assert_eq!(TaskState::from_words(s.to_words()), Some(s));
        }
        assert_eq!(FaultInfo::from_words([99, 0, 0]), None);
    }
}
