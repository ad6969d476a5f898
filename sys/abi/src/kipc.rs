//! Kernel IPC: messages a task SENDs to [`TaskId::KERNEL`](crate::TaskId).
//!
//! The operation number selects the request; arguments and replies are
//! little-endian `u64` words, so neither side needs a serializer. Each
//! request that acts on another task is allowed only if the manifest grants
//! the caller the matching [`Right`]; otherwise the kernel answers
//! [`KipcError::Denied`] and does nothing.

/// Kernel-IPC operation numbers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Kipcnum {
    /// `[index]` → [`TaskState`](crate::TaskState) words + generation.
    ReadTaskStatus = 1,
    /// `[index, start]` → `[]`. Bumps the generation.
    RestartTask = 2,
    /// `[index]` → `[]`. Not allowed on oneself.
    FaultTask = 3,
    /// `[start_index]` → `[index]` of the first faulted task at or after
    /// `start_index`, or `u64::MAX`.
    FindFaultedTask = 4,
    /// `[index]` → the panic message bytes.
    ReadPanicMessage = 5,
    /// `[]` → the encoded platform record (`abi::platform::encode`).
    /// Needs the PLATFORM capability.
    ReadPlatform = 6,
    /// `[cpu]` → `[apic_id]`, answered by that CPU itself. Needs PLATFORM.
    CpuApicId = 7,
    /// `[]` → `[]`: write back and invalidate caches on every CPU (TDX
    /// requires it between TDH.SYS.CONFIG and TDH.SYS.KEY.CONFIG). Needs
    /// MEMORY_AUTHORITY.
    FlushCaches = 8,
    /// `[base, len]` → `[]`: zero physical memory. 4 KiB-aligned and
    /// entirely TD memory: RAM from the platform record or online hot-plug
    /// memory, never the first MiB, the kernel or any task's memory. `len` 0
    /// clears nothing and answers `[method]`, the [`ScrubMethod`] code the
    /// kernel clears with. Needs MEMORY_AUTHORITY.
    Scrub = 9,
    /// `[]` → `[cpus]`: how many CPUs run (boot CPU included). Needs
    /// PLATFORM.
    CpuCount = 10,
    /// `[]` → `[keyid_bits, mktme_keyids, tdx_keyids]`: the KeyID
    /// partitioning (IA32_MKTME_KEYID_PARTITIONING, MSR 0x87), which only
    /// the kernel can read. Needs SEAMCALL.
    KeyIdPartition = 11,
    /// `[]` → `[sci_irq, gpe0_port, gpe0_len, pm1a_event_port,
    /// pm1a_event_len]` from the FADT (0 where absent), for the memory
    /// hot-plug driver. Needs PLATFORM.
    ReadFadt = 12,
    /// `[base, len]` → `[]`: record `[base, base+len)` as present memory
    /// the memory authority may use (scrub, PAMT, PHYMEM page operands).
    /// Page-aligned, not wrapping, entirely inside the firmware's hot-plug
    /// window, overlapping neither boot RAM nor a range already online.
    /// Needs MEMORY_AUTHORITY.
    OnlineMemory = 13,
    /// `[base, len]` → `[]`: forget the online range exactly equal to
    /// `[base, base+len)`. Needs MEMORY_AUTHORITY.
    OfflineMemory = 14,
    /// `[]` → does not return: the image is done; the kernel resets or
    /// halts the machine as the manifest's `[kernel] on-finish` says (for
    /// machines without QEMU's isa-debug-exit). The supervisor only.
    EndRun = 15,
    /// `[index, point, arg]` → `[]`: arms a deliberate kill of the task
    /// ([`KillPoint`] encodes `point` and `arg`), for tests of restart
    /// paths that must land at a chosen point of a server's work. One kill
    /// is armed at a time; arming replaces it, [`KillPoint::Disarm`]
    /// clears it. Needs the Fault right over the task; never oneself or
    /// task 0.
    ArmKill = 16,
}

impl Kipcnum {
    #[must_use]
    pub fn from_raw(raw: u16) -> Option<Self> {
        Some(match raw {
            1 => Kipcnum::ReadTaskStatus,
            2 => Kipcnum::RestartTask,
            3 => Kipcnum::FaultTask,
            4 => Kipcnum::FindFaultedTask,
            5 => Kipcnum::ReadPanicMessage,
            6 => Kipcnum::ReadPlatform,
            7 => Kipcnum::CpuApicId,
            8 => Kipcnum::FlushCaches,
            9 => Kipcnum::Scrub,
            10 => Kipcnum::CpuCount,
            11 => Kipcnum::KeyIdPartition,
            12 => Kipcnum::ReadFadt,
            13 => Kipcnum::OnlineMemory,
            14 => Kipcnum::OfflineMemory,
            15 => Kipcnum::EndRun,
            16 => Kipcnum::ArmKill,
            _ => return None,
        })
    }

    /// What a caller needs for this operation.
    #[must_use]
    pub fn requirement(self) -> Requirement {
        match self {
            Kipcnum::ReadTaskStatus | Kipcnum::FindFaultedTask => Requirement::Right(Right::Status),
            Kipcnum::RestartTask => Requirement::Right(Right::Restart),
            Kipcnum::FaultTask | Kipcnum::ArmKill => Requirement::Right(Right::Fault),
            Kipcnum::ReadPanicMessage => Requirement::Right(Right::PanicMessage),
            Kipcnum::KeyIdPartition => Requirement::Capability(crate::capability::SEAMCALL),
            Kipcnum::ReadPlatform | Kipcnum::CpuApicId | Kipcnum::CpuCount | Kipcnum::ReadFadt => {
                Requirement::Capability(crate::capability::PLATFORM)
            }
            Kipcnum::EndRun => Requirement::Supervisor,
            Kipcnum::FlushCaches
            | Kipcnum::Scrub
            | Kipcnum::OnlineMemory
            | Kipcnum::OfflineMemory => {
                Requirement::Capability(crate::capability::MEMORY_AUTHORITY)
            }
        }
    }
}

/// What a kernel-IPC operation demands of its caller.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// The right over the target task named in the request.
    Right(Right),
    /// A capability bit (`crate::capability`).
    Capability(u32),
    /// Being the supervisor (task 0).
    Supervisor,
}

/// A kernel-IPC right, granted per (holder, target) pair in the manifest.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Right {
    Status = 0,
    Restart = 1,
    Fault = 2,
    PanicMessage = 3,
}

/// Number of distinct [`Right`]s.
pub const NUM_RIGHTS: usize = 4;

/// Response codes of kernel IPC (0 is success).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KipcError {
    /// The manifest does not grant the caller this right over the target.
    Denied = 0xFFFE_0001,
    /// The request names no task (index out of range).
    NoSuchTask = 0xFFFE_0002,
    /// The request is not allowed on this target (e.g. faulting oneself).
    IllegalTarget = 0xFFFE_0003,
    /// The operation number is unknown or the arguments are malformed.
    BadRequest = 0xFFFE_0004,
    /// The reply buffer is too small for the answer.
    ReplyBufferTooSmall = 0xFFFE_0005,
    /// A CPU did not answer, or does not run.
    CpuUnavailable = 0xFFFE_0006,
    /// A physical range is not 4 KiB-aligned (base or length).
    Misaligned = 0xFFFE_0007,
    /// Online: the range is not entirely inside the firmware's hot-plug
    /// window (or the platform has none).
    OutsideHotplugWindow = 0xFFFE_0008,
    /// Online: the range overlaps RAM present at boot (already usable).
    OverlapsBootRam = 0xFFFE_0009,
    /// Online: the range overlaps a range already online.
    OverlapsOnline = 0xFFFE_000A,
    /// Offline: no online range is exactly this one.
    NotOnline = 0xFFFE_000B,
    /// Online: the kernel's table of online ranges is full.
    TableFull = 0xFFFE_000C,
    /// Some of the range is not RAM: MMIO, a firmware hole, absent memory,
    /// or hot-plug memory that is not online.
    NotRam = 0xFFFE_000D,
    /// Some of the range is the kernel (its image, page tables, stacks).
    KernelMemory = 0xFFFE_000E,
    /// Some of the range is a task's memory.
    TaskMemory = 0xFFFE_000F,
    /// Some of the range is in the first MiB, which the kernel leaves to
    /// firmware and the CPU start-up trampoline.
    LowMemory = 0xFFFE_0010,
    /// The range is empty or wraps the address space.
    BadRange = 0xFFFE_0011,
}

impl KipcError {
    #[must_use]
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0xFFFE_0001 => KipcError::Denied,
            0xFFFE_0002 => KipcError::NoSuchTask,
            0xFFFE_0003 => KipcError::IllegalTarget,
            0xFFFE_0004 => KipcError::BadRequest,
            0xFFFE_0005 => KipcError::ReplyBufferTooSmall,
            0xFFFE_0006 => KipcError::CpuUnavailable,
            0xFFFE_0007 => KipcError::Misaligned,
            0xFFFE_0008 => KipcError::OutsideHotplugWindow,
            0xFFFE_0009 => KipcError::OverlapsBootRam,
            0xFFFE_000A => KipcError::OverlapsOnline,
            0xFFFE_000B => KipcError::NotOnline,
            0xFFFE_000C => KipcError::TableFull,
            0xFFFE_000D => KipcError::NotRam,
            0xFFFE_000E => KipcError::KernelMemory,
            0xFFFE_000F => KipcError::TaskMemory,
            0xFFFE_0010 => KipcError::LowMemory,
            0xFFFE_0011 => KipcError::BadRange,
            _ => return None,
        })
    }
}

/// Where an armed kill ([`Kipcnum::ArmKill`]) falls. The kernel kills the
/// task as the point is reached, as an ordinary fault
/// (`FaultInfo::Killed`), and disarms.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KillPoint {
    /// Nothing armed.
    Disarm,
    /// At the task's next REPLY to a caller whose call had this operation
    /// number, before the reply is delivered: the server did the work, the
    /// caller never hears of it.
    BeforeReply { operation: u16 },
    /// Right after that REPLY was delivered.
    AfterReply { operation: u16 },
    /// At the task's `nth` system call from now (1 = the next one), before
    /// it runs.
    AtSyscall { nth: u32 },
    /// After the module ran the task's next SEAMCALL of this leaf.
    AfterSeamcall { leaf: u16 },
    /// Now, after inverting every bit of the byte at `offset` in the task's
    /// durable memory: what a stray write into it would leave.
    CorruptDurable { offset: u64 },
}

impl KillPoint {
    /// The `[point, arg]` words of the request.
    #[must_use]
    pub fn to_words(self) -> [u64; 2] {
        match self {
            KillPoint::Disarm => [0, 0],
            KillPoint::BeforeReply { operation } => [1, u64::from(operation)],
            KillPoint::AfterReply { operation } => [2, u64::from(operation)],
            KillPoint::AtSyscall { nth } => [3, u64::from(nth)],
            KillPoint::AfterSeamcall { leaf } => [4, u64::from(leaf)],
            KillPoint::CorruptDurable { offset } => [5, offset],
        }
    }

    /// Decodes `[point, arg]`; `None` for an unknown point, an argument
    /// that does not fit, or `AtSyscall` with `nth` 0.
    #[must_use]
    pub fn from_words(point: u64, arg: u64) -> Option<Self> {
        let small = u16::try_from(arg).ok();
        Some(match point {
            0 => KillPoint::Disarm,
            1 => KillPoint::BeforeReply { operation: small? },
            2 => KillPoint::AfterReply { operation: small? },
            3 => KillPoint::AtSyscall {
                nth: u32::try_from(arg).ok().filter(|&n| n != 0)?,
            },
            4 => KillPoint::AfterSeamcall { leaf: small? },
            5 => KillPoint::CorruptDurable { offset: arg },
            _ => return None,
        })
    }
}

/// Reply size of [`Kipcnum::ReadTaskStatus`]: five state words and the
/// current generation.
pub const TASK_STATUS_REPLY_WORDS: usize = 6;

/// How the kernel clears memory for `Scrub`, chosen once at boot from
/// CPUID: the fastest the CPU has. MOVDIR64B writes a whole 64-byte line
/// with one direct store, which on TDX hardware also resets the line's
/// integrity metadata before the page is used with another KeyID (Linux
/// clears TDX pages this way: arch/x86/virt/vmx/tdx/tdx.c,
/// `reset_tdx_pages`); without it, 8-byte string stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScrubMethod {
    /// `rep stosq`: wide stores of zero.
    WideStores = 1,
    /// MOVDIR64B of a zeroed 64-byte line, then SFENCE.
    Movdir64b = 2,
}

impl ScrubMethod {
    /// CPUID.(EAX=7,ECX=0):ECX bit 28 reports MOVDIR64B.
    pub const CPUID_7_ECX_MOVDIR64B: u32 = 1 << 28;

    /// The method for a CPU whose CPUID.(EAX=7,ECX=0) returned `ecx` (and
    /// leaf 7 exists when `has_leaf_7`).
    #[must_use]
    pub const fn select(has_leaf_7: bool, ecx: u32) -> Self {
        if has_leaf_7 && ecx & Self::CPUID_7_ECX_MOVDIR64B != 0 {
            ScrubMethod::Movdir64b
        } else {
            ScrubMethod::WideStores
        }
    }

    /// The method with code `code`, as `Scrub` answers it.
    #[must_use]
    pub const fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(ScrubMethod::WideStores),
            2 => Some(ScrubMethod::Movdir64b),
            _ => None,
        }
    }

    /// A one-word name (logs, benchmark notes).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ScrubMethod::WideStores => "rep-stosq",
            ScrubMethod::Movdir64b => "movdir64b",
        }
    }

    /// What the method is, for reports.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            ScrubMethod::WideStores => "wide stores (rep stosq)",
            ScrubMethod::Movdir64b => "movdir64b",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{KipcError, Kipcnum};

    #[test]
    fn operation_numbers_round_trip() {
        for raw in 0..=u16::from(u8::MAX) {
            if let Some(op) = Kipcnum::from_raw(raw) {
                assert_eq!(op as u16, raw);
            }
        }
        assert_eq!(Kipcnum::from_raw(13), Some(Kipcnum::OnlineMemory));
        assert_eq!(Kipcnum::from_raw(14), Some(Kipcnum::OfflineMemory));
        assert_eq!(Kipcnum::from_raw(15), Some(Kipcnum::EndRun));
        assert_eq!(Kipcnum::from_raw(16), Some(Kipcnum::ArmKill));
        assert_eq!(Kipcnum::from_raw(17), None);
    }

    #[test]
    fn kill_points_round_trip_and_reject_what_does_not_fit() {
        use super::KillPoint;
        let all = [
            KillPoint::Disarm,
            KillPoint::BeforeReply { operation: 9 },
            KillPoint::AfterReply {
                operation: u16::MAX,
            },
            KillPoint::AtSyscall { nth: 3 },
            KillPoint::AfterSeamcall { leaf: 34 },
            KillPoint::CorruptDurable { offset: u64::MAX },
        ];
        for p in all {
            let [point, arg] = p.to_words();
            assert_eq!(KillPoint::from_words(point, arg), Some(p));
        }
        assert_eq!(KillPoint::from_words(1, 0x1_0000), None);
        assert_eq!(KillPoint::from_words(3, 0), None);
        assert_eq!(KillPoint::from_words(3, u64::from(u32::MAX) + 1), None);
        assert_eq!(KillPoint::from_words(6, 0), None);
    }

    #[test]
    fn error_codes_are_distinct_and_round_trip() {
        let mut seen = 0;
        for raw in 0xFFFE_0000..=0xFFFE_00FF {
            if let Some(e) = KipcError::from_raw(raw) {
                assert_eq!(e as u32, raw);
                seen += 1;
            }
        }
        assert_eq!(seen, 17, "every KipcError decodes from its own code");
    }

    #[test]
    fn scrub_method_follows_cpuid_bit_28() {
        use super::ScrubMethod;
        assert_eq!(ScrubMethod::select(true, 1 << 28), ScrubMethod::Movdir64b);
        assert_eq!(
            ScrubMethod::select(true, !(1 << 28)),
            ScrubMethod::WideStores
        );
        // Without leaf 7 its registers mean nothing.
        assert_eq!(
            ScrubMethod::select(false, u32::MAX),
            ScrubMethod::WideStores
        );
        for m in [ScrubMethod::WideStores, ScrubMethod::Movdir64b] {
            assert_eq!(ScrubMethod::from_code(m as u64), Some(m));
        }
        assert_eq!(ScrubMethod::from_code(0), None);
        assert_eq!(ScrubMethod::from_code(3), None);
    }
}
