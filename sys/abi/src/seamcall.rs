//! The SEAMCALL system call: its register convention and [`SeamcallOutcome`], the one type that
//! says what a SEAMCALL came back with.
//!
//! Arguments: RDI = target CPU index ([`ANY_CPU`] for the CPU the kernel picks), RSI = the
//! SEAMCALL's RAX (leaf and version), RDX, R10, R8, R9, R12, R13 = its RCX, RDX, R8, R9, R10, R11.
//!
//! Results: eight words in RAX, RDI, RSI, RDX, R10, R8, R9, R12 ([`SeamcallOutcome::to_raw`]):
//! RAX = an outcome code; when the module returned, RDI = its RAX (the status) and RSI, RDX, R10,
//! R8, R9, R12 = its RCX, RDX, R8, R9, R10, R11; for [`OPERAND_REFUSED`], RDI, RSI, RDX = the
//! register, the [`refusal`] code and its detail. Registers an outcome does not use are
//! unspecified.
//!
//! Asynchronous form (system calls `SeamcallStart` and `SeamcallCollect`): START takes the same
//! registers, except that RDI holds the CPU index in bits 31:0 and, in bits 37:32, the number of
//! the caller's notification bit the kernel posts when the call has finished (every other RDI
//! bit must be zero). It answers [`STARTED`] at once (or the refusal: [`DENIED`],
//! [`NO_SUCH_CPU`], [`CPU_BUSY`], [`LEAF_REFUSED`], [`OPERAND_REFUSED`]); the named CPU runs
//! the call. COLLECT (RDI = the CPU index) answers with the finished call's result words, in
//! the layout above, or [`IN_PROGRESS`], or [`NOTHING_TO_COLLECT`] when that CPU holds no call
//! of the caller's (this incarnation). Only leaves without memory operands in the caller's
//! memory may be started (the module must never write into a task that may restart under
//! it): TDH.SYS.INIT, LP.INIT, RD, KEY.CONFIG, TDMR.INIT and TDH.PHYMEM.PAGE.RDMD; others are
//! [`LEAF_REFUSED`].
//!
//! Pattern: the kernel encodes with [`SeamcallOutcome::to_raw`] and userlib decodes with
//! [`SeamcallOutcome::from_raw`], so the codes below are written down once. Decoding is fallible:
//! a code this crate does not know (a newer kernel) is an [`UnknownOutcome`] error, never one of
//! the known outcomes.

/// Run on whichever CPU the kernel chooses (the boot CPU).
pub const ANY_CPU: u64 = u64::MAX;
/// The module ran; the registers hold its outputs.
pub const RETURNED: u64 = 0;
/// VMfailInvalid: no module is loaded (hosts report 0x8000FF00FFFF0000).
pub const VMFAIL_INVALID: u64 = 1;
/// The instruction raised #UD (e.g. not in VMX operation).
pub const FAULT_UD: u64 = 2;
/// The instruction raised #GP (e.g. SEAM not enabled).
pub const FAULT_GP: u64 = 3;
/// No CPU with that index runs.
pub const NO_SUCH_CPU: u64 = 4;
/// The manifest does not grant the caller the SEAMCALL capability.
pub const DENIED: u64 = 5;
/// The CPU did not answer in time.
pub const TIMEOUT: u64 = 6;
/// The kernel's SEAMCALL gate does not allow this leaf (or version, or RAX's bits 63:24 are
/// set); the module was not called.
pub const LEAF_REFUSED: u64 = 7;
/// The gate refused a memory operand; the module was not called. RDI = the input register (1
/// RCX, 2 RDX, 3 R8, 4 R9), RSI = a [`refusal`] code, RDX = for `NOT_TD_MEMORY`, the
/// `kipc::KipcError` code saying what the memory is.
pub const OPERAND_REFUSED: u64 = 8;

/// START: the call was handed to its CPU; its result is collected later.
pub const STARTED: u64 = 9;
/// START: that CPU still runs (or holds the uncollected result of) an asynchronous call.
pub const CPU_BUSY: u64 = 10;
/// COLLECT: the call has not finished yet.
pub const IN_PROGRESS: u64 = 11;
/// COLLECT: that CPU holds no asynchronous call of the caller's.
pub const NOTHING_TO_COLLECT: u64 = 12;

/// Most notification bit numbers START accepts (bits 37:32 of RDI).
pub const START_BIT_SHIFT: u32 = 32;
/// Mask of RDI bits START reads; any other bit set is a usage fault.
pub const START_RDI_MASK: u64 = 0x3F_FFFF_FFFF;

/// Why the gate refused an operand.
pub mod refusal {
    /// Not memory of the calling task.
    pub const NOT_CALLER_MEMORY: u64 = 1;
    /// The caller's, but read-only, and the module would write it.
    pub const NOT_WRITABLE: u64 = 2;
    /// Not TD memory (PAMTs, PHYMEM page operands).
    pub const NOT_TD_MEMORY: u64 = 3;
    /// Not aligned as the structure requires.
    pub const MISALIGNED: u64 = 4;
    /// A count out of range (e.g. TDMRs of TDH.SYS.CONFIG).
    pub const BAD_COUNT: u64 = 5;
    /// Empty or wrapping.
    pub const BAD_RANGE: u64 = 6;
    /// A KeyID-tagged operand whose KeyID is not a TDX private KeyID (or with bits set above
    /// MAXPHYADDR).
    pub const BAD_KEYID: u64 = 7;
}

/// Number of result words of the system call (see [`SeamcallOutcome::to_raw`]).
pub const RESULT_WORDS: usize = 8;

/// What a SEAMCALL system call came back with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SeamcallOutcome {
    /// The module ran: its RAX (status) and output registers RCX, RDX, R8, R9, R10, R11.
    Returned { rax: u64, out: [u64; 6] },
    /// VMfailInvalid: no module loaded.
    VmFailInvalid,
    /// The instruction raised #UD.
    FaultUd,
    /// The instruction raised #GP.
    FaultGp,
    /// No such CPU runs.
    NoSuchCpu,
    /// The manifest does not grant the caller the SEAMCALL capability.
    Denied,
    /// The target CPU did not answer in time.
    Timeout,
    /// The kernel's SEAMCALL gate does not allow this leaf (or version); the module was not
    /// called.
    LeafRefused,
    /// The gate refused a memory operand; the module was not called. `register`: 1 RCX, 2 RDX,
    /// 3 R8, 4 R9; `why`: a [`refusal`] code; `detail`: for `NOT_TD_MEMORY`, the
    /// `kipc::KipcError` code of what the memory is.
    OperandRefused {
        register: u64,
        why: u64,
        detail: u64,
    },
    /// START: the call runs on its CPU; collect it after the notification.
    Started,
    /// START: the CPU is busy with (or holds the uncollected result of) an asynchronous call.
    CpuBusy,
    /// COLLECT: the call has not finished yet.
    InProgress,
    /// COLLECT: that CPU holds no asynchronous call of the caller's.
    NothingToCollect,
}

/// A SEAMCALL outcome code this crate does not know (the raw RAX of the result).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UnknownOutcome(pub u64);

impl SeamcallOutcome {
    /// The outcome code (RAX of the result).
    #[must_use]
    pub const fn code(self) -> u64 {
        match self {
            SeamcallOutcome::Returned { .. } => RETURNED,
            SeamcallOutcome::VmFailInvalid => VMFAIL_INVALID,
            SeamcallOutcome::FaultUd => FAULT_UD,
            SeamcallOutcome::FaultGp => FAULT_GP,
            SeamcallOutcome::NoSuchCpu => NO_SUCH_CPU,
            SeamcallOutcome::Denied => DENIED,
            SeamcallOutcome::Timeout => TIMEOUT,
            SeamcallOutcome::LeafRefused => LEAF_REFUSED,
            SeamcallOutcome::OperandRefused { .. } => OPERAND_REFUSED,
            SeamcallOutcome::Started => STARTED,
            SeamcallOutcome::CpuBusy => CPU_BUSY,
            SeamcallOutcome::InProgress => IN_PROGRESS,
            SeamcallOutcome::NothingToCollect => NOTHING_TO_COLLECT,
        }
    }

    /// The result words, in register order RAX, RDI, RSI, RDX, R10, R8, R9, R12; words an
    /// outcome does not use are zero.
    #[must_use]
    pub const fn to_raw(self) -> [u64; RESULT_WORDS] {
        let code = self.code();
        match self {
            SeamcallOutcome::Returned { rax, out } => {
                [code, rax, out[0], out[1], out[2], out[3], out[4], out[5]]
            }
            SeamcallOutcome::OperandRefused {
                register,
                why,
                detail,
            } => [code, register, why, detail, 0, 0, 0, 0],
            _ => [code, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// Decodes the result words of the system call (see [`SeamcallOutcome::to_raw`]).
    ///
    /// # Errors
    /// [`UnknownOutcome`] when RAX holds no known outcome code.
    pub const fn from_raw(w: [u64; RESULT_WORDS]) -> Result<Self, UnknownOutcome> {
        Ok(match w[0] {
            RETURNED => SeamcallOutcome::Returned {
                rax: w[1],
                out: [w[2], w[3], w[4], w[5], w[6], w[7]],
            },
            VMFAIL_INVALID => SeamcallOutcome::VmFailInvalid,
            FAULT_UD => SeamcallOutcome::FaultUd,
            FAULT_GP => SeamcallOutcome::FaultGp,
            NO_SUCH_CPU => SeamcallOutcome::NoSuchCpu,
            DENIED => SeamcallOutcome::Denied,
            TIMEOUT => SeamcallOutcome::Timeout,
            LEAF_REFUSED => SeamcallOutcome::LeafRefused,
            OPERAND_REFUSED => SeamcallOutcome::OperandRefused {
                register: w[1],
                why: w[2],
                detail: w[3],
            },
            STARTED => SeamcallOutcome::Started,
            CPU_BUSY => SeamcallOutcome::CpuBusy,
            IN_PROGRESS => SeamcallOutcome::InProgress,
            NOTHING_TO_COLLECT => SeamcallOutcome::NothingToCollect,
            other => return Err(UnknownOutcome(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{SeamcallOutcome, UnknownOutcome, NOTHING_TO_COLLECT};

    const EVERY: [SeamcallOutcome; 13] = [
        SeamcallOutcome::Returned {
            rax: 0xC000_0100_0000_0000,
            out: [1, 2, 3, 4, 5, 6],
        },
        SeamcallOutcome::VmFailInvalid,
        SeamcallOutcome::FaultUd,
        SeamcallOutcome::FaultGp,
        SeamcallOutcome::NoSuchCpu,
        SeamcallOutcome::Denied,
        SeamcallOutcome::Timeout,
        SeamcallOutcome::LeafRefused,
        SeamcallOutcome::OperandRefused {
            register: 2,
            why: 3,
            detail: 0xFFFE_0004,
        },
        SeamcallOutcome::Started,
        SeamcallOutcome::CpuBusy,
        SeamcallOutcome::InProgress,
        SeamcallOutcome::NothingToCollect,
    ];

    #[test]
    fn every_outcome_round_trips_through_its_result_words() {
        for o in EVERY {
            assert_eq!(SeamcallOutcome::from_raw(o.to_raw()), Ok(o));
        }
    }

    #[test]
    fn outcome_codes_are_distinct_and_dense() {
        let mut codes = EVERY.map(SeamcallOutcome::code);
        codes.sort_unstable();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    /// Every code past the known ones (and the far end of the space) is an error carrying the
    /// code, not a known outcome.
    #[test]
    fn unknown_codes_are_errors_not_outcomes() {
        for code in (NOTHING_TO_COLLECT + 1..NOTHING_TO_COLLECT + 64).chain([u64::MAX, 1 << 63]) {
            assert_eq!(
                SeamcallOutcome::from_raw([code, 1, 2, 3, 4, 5, 6, 7]),
                Err(UnknownOutcome(code))
            );
        }
    }
}
