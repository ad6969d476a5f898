//! SEAMCALL completion status (RAX out) decoding (§4).
//!
//! Pattern: [`TdxStatus`] is a transparent `u64` newtype. The *code* is the upper half
//! (bits 63:32: error/fatal/non-recoverable/recoverability bits, class, detail L1); the lower half
//! is either an [`OperandId`] or packed config details (§4.1: byte0 = TDMR index i, byte1 = PAMT
//! level or reserved slot j, byte2 = other TDMR index). Hosts must compare codes with
//! [`TdxStatus::code`] (Linux and KVM mask with `0xFFFF_FFFF_0000_0000`), never the whole value.
//!
//! Invariant: every named constant here appears in [`KNOWN`], so [`TdxStatus::name`] knows it and
//! [`core::fmt::Display`] can print details in the right shape.

use core::fmt;

/// Operand IDs placed in bits 31:0 of "+operand" statuses (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OperandId(pub u32);

#[allow(missing_docs)] // register / object names from §4.1
impl OperandId {
    pub const RAX: OperandId = OperandId(0);
    pub const RCX: OperandId = OperandId(1);
    pub const RDX: OperandId = OperandId(2);
    pub const RBX: OperandId = OperandId(3);
    pub const RBP: OperandId = OperandId(5);
    pub const RSI: OperandId = OperandId(6);
    pub const RDI: OperandId = OperandId(7);
    pub const R8: OperandId = OperandId(8);
    pub const R9: OperandId = OperandId(9);
    pub const R10: OperandId = OperandId(10);
    pub const R11: OperandId = OperandId(11);
    pub const R12: OperandId = OperandId(12);
    pub const R13: OperandId = OperandId(13);
    pub const R14: OperandId = OperandId(14);
    pub const R15: OperandId = OperandId(15);
    pub const ATTRIBUTES: OperandId = OperandId(64);
    pub const XFAM: OperandId = OperandId(65);
    pub const EXEC_CONTROLS: OperandId = OperandId(66);
    pub const EPTP_CONTROLS: OperandId = OperandId(67);
    pub const MAX_VCPUS: OperandId = OperandId(68);
    pub const CPUID_CONFIG: OperandId = OperandId(69);
    pub const TSC_FREQUENCY: OperandId = OperandId(70);
    pub const NUM_L2_VMS: OperandId = OperandId(71);
    pub const TDMR_INFO_PA: OperandId = OperandId(96);
    pub const TDR: OperandId = OperandId(128);
    pub const TDCX: OperandId = OperandId(129);
    pub const TDVPR: OperandId = OperandId(130);
    pub const TDCS: OperandId = OperandId(144);
    pub const SEPT_TREE: OperandId = OperandId(146);
    pub const TD_EPOCH: OperandId = OperandId(169);
    pub const OP_STATE: OperandId = OperandId(172);
    pub const SYS: OperandId = OperandId(184);
    pub const TDMR: OperandId = OperandId(185);
    pub const KOT: OperandId = OperandId(186);
    pub const KET: OperandId = OperandId(187);
    pub const WBCACHE: OperandId = OperandId(188);

    /// Spec name, or `None` if unknown.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "RAX",
            1 => "RCX",
            2 => "RDX",
            3 => "RBX",
            5 => "RBP",
            6 => "RSI",
            7 => "RDI",
            8 => "R8",
            9 => "R9",
            10 => "R10",
            11 => "R11",
            12 => "R12",
            13 => "R13",
            14 => "R14",
            15 => "R15",
            64 => "ATTRIBUTES",
            65 => "XFAM",
            66 => "EXEC_CONTROLS",
            67 => "EPTP_CONTROLS",
            68 => "MAX_VCPUS",
            69 => "CPUID_CONFIG",
            70 => "TSC_FREQUENCY",
            71 => "NUM_L2_VMS",
            96 => "TDMR_INFO_PA",
            128 => "TDR",
            129 => "TDCX",
            130 => "TDVPR",
            144 => "TDCS",
            146 => "SEPT_TREE",
            169 => "TD_EPOCH",
            172 => "OP_STATE",
            184 => "SYS",
            185 => "TDMR",
            186 => "KOT",
            187 => "KET",
            188 => "WBCACHE",
            _ => return None,
        })
    }
}

/// Status class, bits 47:40 (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusClass(pub u8);

#[allow(missing_docs)] // class names from §4.1
impl StatusClass {
    pub const GENERAL: StatusClass = StatusClass(0x00);
    pub const OPERAND: StatusClass = StatusClass(0x01);
    pub const BUSY: StatusClass = StatusClass(0x02);
    pub const PAGE_METADATA: StatusClass = StatusClass(0x03);
    pub const TD_PAGES: StatusClass = StatusClass(0x04);
    pub const SYSTEM_STATE: StatusClass = StatusClass(0x05);
    pub const TD_LIFECYCLE: StatusClass = StatusClass(0x06);
    pub const VCPU: StatusClass = StatusClass(0x07);
    pub const KEYS: StatusClass = StatusClass(0x08);
    pub const PLATFORM: StatusClass = StatusClass(0x09);
    pub const TDMR_PAMT_CONFIG: StatusClass = StatusClass(0x0A);
    pub const EPT: StatusClass = StatusClass(0x0B);
    pub const METADATA: StatusClass = StatusClass(0x0C);
    pub const SERVICE_TD: StatusClass = StatusClass(0x0D);
    pub const MIGRATION: StatusClass = StatusClass(0x0E);
    pub const ATTESTATION: StatusClass = StatusClass(0x10);
    pub const L2: StatusClass = StatusClass(0x11);
    /// Never used by the module; Linux uses it for its software codes (§4.1).
    pub const SOFTWARE: StatusClass = StatusClass(0xFF);
}

/// How the low 32 bits of a status are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetailKind {
    /// No defined detail.
    None,
    /// An [`OperandId`].
    Operand,
    /// byte0 = TDMR index.
    Tdmr,
    /// byte0 = TDMR index, byte1 = PAMT level.
    TdmrLevel,
    /// byte0 = TDMR index, byte1 = PAMT level, byte2 = other TDMR index.
    TdmrLevelOther,
    /// byte0 = TDMR index, byte1 = reserved slot.
    TdmrReserved,
    /// A Linux software code; the value is complete as is.
    Software,
}

/// A SEAMCALL completion status (RAX out).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct TdxStatus(pub u64);

macro_rules! codes {
    ($( $(#[$m:meta])* $name:ident = $val:expr, $kind:ident; )*) => {
        #[allow(missing_docs)]
        impl TdxStatus {
            $( $(#[$m])* pub const $name: TdxStatus = TdxStatus($val); )*
        }
        /// Every status this crate names: (value, name, detail kind).
        pub const KNOWN: &[(TdxStatus, &str, DetailKind)] = &[
            $( (TdxStatus($val), concat!("TDX_", stringify!($name)), DetailKind::$kind), )*
        ];
    };
}

codes! {
    SUCCESS = 0x0000_0000_0000_0000, None;
    OPERAND_INVALID = 0xC000_0100_0000_0000, Operand;
    OPERAND_ADDR_RANGE_ERROR = 0xC000_0101_0000_0000, Operand;
    OPERAND_BUSY = 0x8000_0200_0000_0000, Operand;
    PREVIOUS_TLB_EPOCH_BUSY = 0x8000_0201_0000_0000, Operand;
    SYS_BUSY = 0x8000_0202_0000_0000, None;
    /// 1.5+ only.
    RND_NO_ENTROPY = 0x8000_0203_0000_0000, None;
    PAGE_METADATA_INCORRECT = 0xC000_0300_0000_0000, Operand;
    PAGE_ALREADY_FREE = 0x0000_0301_0000_0000, Operand;
    PAGE_NOT_OWNED_BY_TD = 0xC000_0302_0000_0000, Operand;
    PAGE_NOT_FREE = 0xC000_0303_0000_0000, Operand;
    TD_ASSOCIATED_PAGES_EXIST = 0xC000_0400_0000_0000, None;
    SYS_INIT_NOT_PENDING = 0xC000_0500_0000_0000, None;
    SYS_LP_INIT_NOT_DONE = 0xC000_0502_0000_0000, None;
    SYS_LP_INIT_DONE = 0xC000_0503_0000_0000, None;
    SYS_NOT_READY = 0xC000_0505_0000_0000, None;
    SYS_SHUTDOWN = 0xC000_0506_0000_0000, None;
    SYS_KEY_CONFIG_NOT_PENDING = 0xC000_0507_0000_0000, None;
    SYS_STATE_INCORRECT = 0xC000_0508_0000_0000, None;
    SYS_LP_INIT_NOT_PENDING = 0xC000_050B_0000_0000, None;
    SYS_CONFIG_NOT_PENDING = 0xC000_050C_0000_0000, None;
    INCOMPATIBLE_SEAM_CAPABILITIES = 0xC000_050D_0000_0000, None;
    /// Fatal bit set: the TD is unusable.
    TD_FATAL = 0xE000_0604_0000_0000, None;
    TDCS_NOT_ALLOCATED = 0xC000_0606_0000_0000, None;
    LIFECYCLE_STATE_INCORRECT = 0xC000_0607_0000_0000, Operand;
    OP_STATE_INCORRECT = 0xC000_0608_0000_0000, None;
    NO_VCPUS = 0xC000_0609_0000_0000, None;
    TDCX_NUM_INCORRECT = 0xC000_0610_0000_0000, None;
    VCPU_STATE_INCORRECT = 0xC000_0700_0000_0000, None;
    VCPU_ASSOCIATED = 0x8000_0701_0000_0000, None;
    VCPU_NOT_ASSOCIATED = 0x8000_0702_0000_0000, None;
    MAX_VCPUS_EXCEEDED = 0xC000_0705_0000_0000, None;
    KEY_GENERATION_FAILED = 0x8000_0800_0000_0000, None;
    TD_KEYS_NOT_CONFIGURED = 0x8000_0810_0000_0000, None;
    KEY_STATE_INCORRECT = 0xC000_0811_0000_0000, Operand;
    /// Warning class: bit 63 clear.
    KEY_CONFIGURED = 0x0000_0815_0000_0000, None;
    WBCACHE_NOT_COMPLETE = 0x8000_0817_0000_0000, None;
    HKID_NOT_FREE = 0xC000_0820_0000_0000, None;
    /// No error bit.
    NO_HKID_READY_TO_WBCACHE = 0x0000_0821_0000_0000, None;
    WBCACHE_RESUME_ERROR = 0xC000_0823_0000_0000, None;
    FLUSHVP_NOT_DONE = 0x8000_0824_0000_0000, None;
    NUM_ACTIVATED_HKIDS_NOT_SUPPORTED = 0xC000_0825_0000_0000, None;
    INCORRECT_CPUID_VALUE = 0xC000_0900_0000_0000, None;
    /// 1.5.01 name; TDX_BOOT_NT4_SET in the 1.0-era table (§4.2).
    LIMIT_CPUID_MAXVAL_SET = 0xC000_0901_0000_0000, None;
    SMRR_OVERLAPS_CMR = 0xC000_0912_0000_0000, None;
    INCONSISTENT_MSR = 0xC000_0920_0000_0000, None;
    INCORRECT_MSR_VALUE = 0xC000_0921_0000_0000, None;
    INVALID_TDMR = 0xC000_0A00_0000_0000, Tdmr;
    NON_ORDERED_TDMR = 0xC000_0A01_0000_0000, Tdmr;
    TDMR_OUTSIDE_CMRS = 0xC000_0A02_0000_0000, Tdmr;
    /// Warning class: bit 63 clear.
    TDMR_ALREADY_INITIALIZED = 0x0000_0A03_0000_0000, None;
    INVALID_PAMT = 0xC000_0A10_0000_0000, TdmrLevel;
    PAMT_OUTSIDE_CMRS = 0xC000_0A11_0000_0000, TdmrLevel;
    PAMT_OVERLAP = 0xC000_0A12_0000_0000, TdmrLevelOther;
    INVALID_RESERVED_IN_TDMR = 0xC000_0A20_0000_0000, TdmrReserved;
    NON_ORDERED_RESERVED_IN_TDMR = 0xC000_0A21_0000_0000, TdmrReserved;
    CMR_LIST_INVALID = 0xC000_0A22_0000_0000, None;
    INTERRUPTED_RESUMABLE = 0x8000_0003_0000_0000, None;
    EPT_WALK_FAILED = 0xC000_0B00_0000_0000, Operand;
    EPT_ENTRY_STATE_INCORRECT = 0xC000_0B0D_0000_0000, Operand;
    GPA_RANGE_NOT_BLOCKED = 0xC000_0B06_0000_0000, Operand;
    /// Warning class: bit 63 clear.
    GPA_RANGE_ALREADY_BLOCKED = 0x0000_0B07_0000_0000, Operand;
    TLB_TRACKING_NOT_DONE = 0xC000_0B08_0000_0000, Operand;
    METADATA_FIELD_ID_INCORRECT = 0xC000_0C00_0000_0000, None;
    METADATA_LIST_OVERFLOW = 0xC000_0C04_0000_0000, None;
    METADATA_FIRST_FIELD_ID_IN_CONTEXT = 0x0000_0C0B_0000_0000, None;
    /// Linux: SEAMCALL returned VMfailInvalid (module not loaded) (§4.2).
    SEAMCALL_VMFAILINVALID = 0x8000_FF00_FFFF_0000, Software;
    /// Linux: SEAMCALL raised #GP (TDX_SW_ERROR | 13).
    SEAMCALL_GP = 0x8000_FF00_0000_000D, Software;
    /// Linux: SEAMCALL raised #UD (TDX_SW_ERROR | 6).
    SEAMCALL_UD = 0x8000_FF00_0000_0006, Software;
    /// Linux: TDX_ERROR | class 0xFF, the base of software codes.
    SW_ERROR = 0x8000_FF00_0000_0000, Software;
    /// Emulator only (`drv/tdx-emu`), never from a real module or Linux: a fixed-capacity table of
    /// the emulator (page records, TDs, vCPUs, S-EPT entries) is full (§10.2). Class 0xFF, detail
    /// 0xFE, non-recoverable, so no host mistakes it for a module answer or retries it.
    EMU_CAPACITY_EXCEEDED = 0xC000_FFFE_0000_0000, Software;
}

impl TdxStatus {
    /// Bit 63: error.
    pub const ERROR_BIT: u64 = 1 << 63;
    /// Bit 62: non-recoverable.
    pub const NON_RECOVERABLE_BIT: u64 = 1 << 62;
    /// Bit 61: fatal.
    pub const FATAL_BIT: u64 = 1 << 61;
    /// Bit 60: host-recoverability hint.
    pub const HOST_RECOVERABILITY_HINT_BIT: u64 = 1 << 60;
    /// Mask of the code part (what Linux/KVM compare).
    pub const CODE_MASK: u64 = 0xFFFF_FFFF_0000_0000;

    /// Raw value.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The code without operand/detail bits (bits 63:32).
    #[must_use]
    pub const fn code(self) -> TdxStatus {
        TdxStatus(self.0 & Self::CODE_MASK)
    }

    /// True if `self` has the same code as `other` (details ignored).
    #[must_use]
    pub const fn is(self, other: TdxStatus) -> bool {
        self.0 & Self::CODE_MASK == other.0 & Self::CODE_MASK
    }

    /// Class, bits 47:40.
    #[must_use]
    pub const fn class(self) -> StatusClass {
        StatusClass((self.0 >> 40) as u8)
    }

    /// Detail L1, bits 39:32.
    #[must_use]
    pub const fn detail_l1(self) -> u8 {
        (self.0 >> 32) as u8
    }

    /// Detail L2 / operand, bits 31:0.
    #[must_use]
    pub const fn detail_l2(self) -> u32 {
        self.0 as u32
    }

    /// Operand ID in bits 31:0 (meaningful for "+operand" codes).
    #[must_use]
    pub const fn operand(self) -> OperandId {
        OperandId(self.0 as u32)
    }

    /// Detail byte `n` (0..=3) of bits 31:0 (§4.1 packing).
    #[must_use]
    pub const fn detail_byte(self, n: u32) -> u8 {
        (self.0 >> (8 * (n & 3))) as u8
    }

    /// TDMR index of a config error (byte0).
    #[must_use]
    pub const fn tdmr_index(self) -> u8 {
        self.detail_byte(0)
    }

    /// PAMT level or reserved slot of a config error (byte1).
    #[must_use]
    pub const fn level_or_slot(self) -> u8 {
        self.detail_byte(1)
    }

    /// Other TDMR index of a PAMT_OVERLAP error (byte2).
    #[must_use]
    pub const fn other_tdmr(self) -> u8 {
        self.detail_byte(2)
    }

    /// `code | operand` (the "+operand" form).
    #[must_use]
    pub const fn with_operand(self, op: OperandId) -> TdxStatus {
        TdxStatus(self.0 & Self::CODE_MASK | op.0 as u64)
    }

    /// `code | i | a<<8 | b<<16` (§4.1 config detail packing).
    #[must_use]
    pub const fn with_details(self, i: u8, a: u8, b: u8) -> TdxStatus {
        TdxStatus(self.0 & Self::CODE_MASK | i as u64 | (a as u64) << 8 | (b as u64) << 16)
    }

    /// Exactly zero.
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// Bit 63 set.
    #[must_use]
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR_BIT != 0
    }

    /// Non-zero without the error bit (e.g. TDX_KEY_CONFIGURED, TDX_TDMR_ALREADY_INITIALIZED).
    #[must_use]
    pub const fn is_warning(self) -> bool {
        self.0 != 0 && !self.is_error()
    }

    /// Error without the non-recoverable and fatal bits: the host may retry or fix its input.
    #[must_use]
    pub const fn is_recoverable(self) -> bool {
        self.is_error() && self.0 & (Self::NON_RECOVERABLE_BIT | Self::FATAL_BIT) == 0
    }

    /// Bit 61 set.
    #[must_use]
    pub const fn is_fatal(self) -> bool {
        self.0 & Self::FATAL_BIT != 0
    }

    /// A condition that goes away by itself: retrying the identical call is the right response
    /// (busy/resource class, entropy, interrupted-resumable).
    #[must_use]
    pub const fn is_transient(self) -> bool {
        self.is_recoverable()
            && (self.class().0 == StatusClass::BUSY.0 || self.is(TdxStatus::INTERRUPTED_RESUMABLE))
    }

    /// The module's "already done" answers: what the call asked for had been done by an earlier
    /// call, and this one changed nothing (TDX_SYS_INIT_NOT_PENDING, TDX_SYS_LP_INIT_DONE,
    /// TDX_KEY_CONFIGURED, TDX_TDMR_ALREADY_INITIALIZED; §3.4). In 1.5.01 only TDH.SYS.INIT
    /// returns TDX_SYS_INIT_NOT_PENDING, so the code alone says which step was done.
    #[must_use]
    pub const fn is_already_done(self) -> bool {
        self.is(TdxStatus::SYS_INIT_NOT_PENDING)
            || self.is(TdxStatus::SYS_LP_INIT_DONE)
            || self.is(TdxStatus::KEY_CONFIGURED)
            || self.is(TdxStatus::TDMR_ALREADY_INITIALIZED)
    }

    /// A Linux software code (class 0xFF); never produced by the module.
    #[must_use]
    pub const fn is_software(self) -> bool {
        self.class().0 == StatusClass::SOFTWARE.0
    }

    fn lookup(self) -> Option<(&'static str, DetailKind)> {
        if self.is_software() {
            // Software codes are whole values; fall back to the TDX_SW_ERROR base.
            return KNOWN
                .iter()
                .find(|(s, _, _)| s.0 == self.0)
                .or_else(|| KNOWN.iter().find(|(s, _, _)| s.0 == TdxStatus::SW_ERROR.0))
                .map(|(_, n, k)| (*n, *k));
        }
        KNOWN
            .iter()
            .find(|(s, _, k)| s.0 == self.code().0 && !matches!(k, DetailKind::Software))
            .map(|(_, n, k)| (*n, *k))
    }

    /// The spec name (e.g. `"TDX_PAMT_OVERLAP"`), or `"TDX_UNKNOWN"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.lookup().map_or("TDX_UNKNOWN", |(n, _)| n)
    }

    /// How to read the low 32 bits; `None` for unknown codes.
    #[must_use]
    pub fn detail_kind(self) -> Option<DetailKind> {
        self.lookup().map(|(_, k)| k)
    }
}

impl From<u64> for TdxStatus {
    fn from(v: u64) -> Self {
        TdxStatus(v)
    }
}

impl From<TdxStatus> for u64 {
    fn from(s: TdxStatus) -> Self {
        s.0
    }
}

impl fmt::Debug for TdxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TdxStatus({self})")
    }
}

/// `0xC0000A1200000102 TDX_PAMT_OVERLAP tdmr=2 level=1 other=0`.
impl fmt::Display for TdxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016X} {}", self.0, self.name())?;
        let (i, a, b) = (self.tdmr_index(), self.level_or_slot(), self.other_tdmr());
        match self.detail_kind() {
            Some(DetailKind::None) | Some(DetailKind::Software) => {
                if self.detail_l2() != 0 && !self.is_software() {
                    write!(f, " detail={:#x}", self.detail_l2())?;
                }
                Ok(())
            }
            Some(DetailKind::Operand) => {
                if self.detail_l2() == 0 && !self.is(TdxStatus::OPERAND_INVALID) {
                    return Ok(());
                }
                match self.operand().name() {
                    Some(n) => write!(f, " operand={n}"),
                    None => write!(f, " operand={}", self.detail_l2()),
                }
            }
            Some(DetailKind::Tdmr) => write!(f, " tdmr={i}"),
            Some(DetailKind::TdmrLevel) => write!(f, " tdmr={i} level={a}"),
            Some(DetailKind::TdmrLevelOther) => write!(f, " tdmr={i} level={a} other={b}"),
            Some(DetailKind::TdmrReserved) => write!(f, " tdmr={i} rsvd={a}"),
            None => write!(f, " detail={:#x}", self.detail_l2()),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{DetailKind, OperandId, StatusClass, TdxStatus, KNOWN};
    use std::format;

    #[test]
    fn display_config_details() {
        let s = TdxStatus::PAMT_OVERLAP.with_details(2, 1, 0);
        assert_eq!(s.0, 0xC000_0A12_0000_0102);
        assert_eq!(
            format!("{s}"),
            "0xC0000A1200000102 TDX_PAMT_OVERLAP tdmr=2 level=1 other=0"
        );
        let r = TdxStatus::NON_ORDERED_RESERVED_IN_TDMR.with_details(1, 3, 0);
        assert_eq!(
            format!("{r}"),
            "0xC0000A2100000301 TDX_NON_ORDERED_RESERVED_IN_TDMR tdmr=1 rsvd=3"
        );
        let o = TdxStatus::OPERAND_INVALID.with_operand(OperandId::R8);
        assert_eq!(
            format!("{o}"),
            "0xC000010000000008 TDX_OPERAND_INVALID operand=R8"
        );
        assert_eq!(
            format!("{}", TdxStatus::SUCCESS),
            "0x0000000000000000 TDX_SUCCESS"
        );
        assert_eq!(
            format!("{}", TdxStatus(0xC000_0A7F_0000_0000)),
            "0xC0000A7F00000000 TDX_UNKNOWN detail=0x0"
        );
    }

    #[test]
    fn names_and_classes() {
        for (s, n, _) in KNOWN {
            assert_eq!(s.name(), *n, "{:#x}", s.0);
            assert!(n.starts_with("TDX_"));
        }
        assert_eq!(
            TdxStatus(0x8000_FF00_FFFF_0000).name(),
            "TDX_SEAMCALL_VMFAILINVALID"
        );
        assert_eq!(TdxStatus(0x8000_FF00_0000_0042).name(), "TDX_SW_ERROR");
        assert_eq!(
            TdxStatus::INVALID_PAMT.with_details(1, 2, 0).name(),
            "TDX_INVALID_PAMT"
        );
        assert_eq!(
            TdxStatus::INVALID_PAMT.class(),
            StatusClass::TDMR_PAMT_CONFIG
        );
        assert_eq!(TdxStatus::SYS_BUSY.class(), StatusClass::BUSY);
        assert_eq!(
            TdxStatus::PAMT_OVERLAP.detail_kind(),
            Some(DetailKind::TdmrLevelOther)
        );
        assert_eq!(TdxStatus::INVALID_TDMR.detail_l1(), 0);
        assert_eq!(TdxStatus::PAMT_OVERLAP.detail_l1(), 0x12);
    }

    #[test]
    fn predicates() {
        assert!(TdxStatus::SUCCESS.is_success());
        assert!(!TdxStatus::KEY_CONFIGURED.is_error());
        assert!(TdxStatus::KEY_CONFIGURED.is_warning());
        assert!(TdxStatus::TDMR_ALREADY_INITIALIZED.is_warning());
        assert!(TdxStatus::RND_NO_ENTROPY.is_transient());
        assert!(TdxStatus::OPERAND_BUSY
            .with_operand(OperandId::RCX)
            .is_transient());
        assert!(TdxStatus::INTERRUPTED_RESUMABLE.is_transient());
        assert!(!TdxStatus::INVALID_TDMR.is_recoverable());
        assert!(!TdxStatus::KEY_GENERATION_FAILED.is_transient());
        assert!(TdxStatus::KEY_GENERATION_FAILED.is_recoverable());
        assert!(TdxStatus::SEAMCALL_UD.is_software());
        for done in [
            TdxStatus::SYS_INIT_NOT_PENDING,
            TdxStatus::SYS_LP_INIT_DONE,
            TdxStatus::KEY_CONFIGURED,
            TdxStatus::TDMR_ALREADY_INITIALIZED,
        ] {
            assert!(done.is_already_done(), "{done}");
        }
        // The "not pending" codes of later steps say the module is elsewhere, not that the
        // step was done: they stay out.
        for other in [
            TdxStatus::SUCCESS,
            TdxStatus::SYS_LP_INIT_NOT_PENDING,
            TdxStatus::SYS_CONFIG_NOT_PENDING,
            TdxStatus::SYS_KEY_CONFIG_NOT_PENDING,
            TdxStatus::SYS_LP_INIT_NOT_DONE,
            TdxStatus::SYS_BUSY,
        ] {
            assert!(!other.is_already_done(), "{other}");
        }
        assert!(TdxStatus::INVALID_TDMR
            .with_details(5, 0, 0)
            .is(TdxStatus::INVALID_TDMR));
        assert_eq!(
            TdxStatus::OPERAND_BUSY.with_operand(OperandId::KET).0,
            0x8000_0200_0000_00BB
        );
    }
}
