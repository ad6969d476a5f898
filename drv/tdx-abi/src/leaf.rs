//! SEAMCALL leaf numbers and the RAX leaf/version word (§2.1, §2.2).
//!
//! Pattern: [`Leaf`] is the closed set of host leaves this project names; [`LeafWord`] is the raw
//! RAX input (`leaf[15:0] | version[23:16]`, bits 63:24 must be zero) and can hold numbers the
//! enum does not know, because the module's dispatcher, not the host, decides what is valid.
//!
//! Leaf 42 is TDH.MEM.SEPT.WR in 1.5.01 but TDH.SYS.RDM in a third-party header (§2.2); it is
//! deliberately named after 1.5.01 and nothing in this project depends on it.

use core::fmt;

/// Host-side SEAMCALL leaves (RAX[15:0]) from §2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
#[allow(missing_docs)] // the names are the spec names
pub enum Leaf {
    VpEnter = 0,
    MngAddcx = 1,
    MemPageAdd = 2,
    MemSeptAdd = 3,
    VpAddcx = 4,
    MemPageRelocate = 5,
    MemPageAug = 6,
    MemRangeBlock = 7,
    MngKeyConfig = 8,
    MngCreate = 9,
    VpCreate = 10,
    MngRd = 11,
    MemRd = 12,
    MngWr = 13,
    MemWr = 14,
    MemPageDemote = 15,
    MrExtend = 16,
    MrFinalize = 17,
    VpFlush = 18,
    MngVpflushdone = 19,
    MngKeyFreeid = 20,
    MngInit = 21,
    VpInit = 22,
    MemPagePromote = 23,
    PhymemPageRdmd = 24,
    MemSeptRd = 25,
    VpRd = 26,
    MngKeyReclaimid = 27,
    PhymemPageReclaim = 28,
    MemPageRemove = 29,
    MemSeptRemove = 30,
    SysKeyConfig = 31,
    SysInfo = 32,
    SysInit = 33,
    SysRd = 34,
    SysLpInit = 35,
    SysTdmrInit = 36,
    SysRdall = 37,
    MemTrack = 38,
    MemRangeUnblock = 39,
    PhymemCacheWb = 40,
    PhymemPageWbinvd = 41,
    /// 1.5.01 numbering; a third-party header calls 42 TDH.SYS.RDM (§2.2).
    MemSeptWr = 42,
    VpWr = 43,
    SysLpShutdown = 44,
    SysConfig = 45,
    ServtdBind = 48,
    ServtdPrebind = 49,
    SysShutdown = 52,
    SysUpdate = 53,
    /// From the ABI-spec-derived header [S16] only.
    SysS4End = 54,
    /// Dynamic PAMT (in-flight series [S9]).
    PhymemPamtAdd = 58,
    /// Dynamic PAMT (in-flight series [S9]).
    PhymemPamtRemove = 59,
    /// From [S16] only.
    ExtInit = 60,
    /// From [S16] only.
    ExtMemAdd = 61,
    /// In-flight kexec series [S15].
    SysDisable = 69,
}

impl Leaf {
    /// Every named leaf, in numeric order.
    pub const ALL: [Leaf; 56] = [
        Leaf::VpEnter,
        Leaf::MngAddcx,
        Leaf::MemPageAdd,
        Leaf::MemSeptAdd,
        Leaf::VpAddcx,
        Leaf::MemPageRelocate,
        Leaf::MemPageAug,
        Leaf::MemRangeBlock,
        Leaf::MngKeyConfig,
        Leaf::MngCreate,
        Leaf::VpCreate,
        Leaf::MngRd,
        Leaf::MemRd,
        Leaf::MngWr,
        Leaf::MemWr,
        Leaf::MemPageDemote,
        Leaf::MrExtend,
        Leaf::MrFinalize,
        Leaf::VpFlush,
        Leaf::MngVpflushdone,
        Leaf::MngKeyFreeid,
        Leaf::MngInit,
        Leaf::VpInit,
        Leaf::MemPagePromote,
        Leaf::PhymemPageRdmd,
        Leaf::MemSeptRd,
        Leaf::VpRd,
        Leaf::MngKeyReclaimid,
        Leaf::PhymemPageReclaim,
        Leaf::MemPageRemove,
        Leaf::MemSeptRemove,
        Leaf::SysKeyConfig,
        Leaf::SysInfo,
        Leaf::SysInit,
        Leaf::SysRd,
        Leaf::SysLpInit,
        Leaf::SysTdmrInit,
        Leaf::SysRdall,
        Leaf::MemTrack,
        Leaf::MemRangeUnblock,
        Leaf::PhymemCacheWb,
        Leaf::PhymemPageWbinvd,
        Leaf::MemSeptWr,
        Leaf::VpWr,
        Leaf::SysLpShutdown,
        Leaf::SysConfig,
        Leaf::ServtdBind,
        Leaf::ServtdPrebind,
        Leaf::SysShutdown,
        Leaf::SysUpdate,
        Leaf::SysS4End,
        Leaf::PhymemPamtAdd,
        Leaf::PhymemPamtRemove,
        Leaf::ExtInit,
        Leaf::ExtMemAdd,
        Leaf::SysDisable,
    ];

    /// The leaf number (RAX[15:0]).
    #[must_use]
    pub const fn number(self) -> u16 {
        self as u16
    }

    /// Decode a leaf number; `None` for numbers this crate does not name.
    #[must_use]
    pub fn from_number(n: u16) -> Option<Leaf> {
        // The table is small and sorted; a linear scan keeps this obviously correct.
        Leaf::ALL.iter().copied().find(|l| l.number() == n)
    }

    /// Highest RAX version (bits 23:16) the 1.5.01 module accepts for this leaf (§2.1).
    ///
    /// 1.5.01 accepts version 1 on MEM.PAGE.PROMOTE, MEM.SEPT.ADD, MEM.SEPT.REMOVE, MNG.RD and
    /// VP.RD only (`tdx_vmm_dispatcher.c`). TDH.VP.INIT version 1, which newer Linux issues,
    /// comes with later modules; the emulated module reports 1.5.01, so version 1 of VP.INIT
    /// gets TDX_OPERAND_INVALID naming RAX, as on 1.5.01.
    #[must_use]
    pub const fn max_version(self) -> u8 {
        match self {
            Leaf::MemPagePromote
            | Leaf::MemSeptAdd
            | Leaf::MemSeptRemove
            | Leaf::MngRd
            | Leaf::VpRd => 1,
            _ => 0,
        }
    }

    /// Leaves the dispatcher allows before SYS_READY (§3.1 gate 3, §10 item 6).
    #[must_use]
    pub const fn allowed_before_ready(self) -> bool {
        matches!(
            self,
            Leaf::SysInfo
                | Leaf::SysRd
                | Leaf::SysRdall
                | Leaf::SysInit
                | Leaf::SysLpInit
                | Leaf::SysConfig
                | Leaf::SysKeyConfig
                | Leaf::SysLpShutdown
                | Leaf::SysUpdate
        )
    }

    /// The spec name, e.g. `"TDH.SYS.CONFIG"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Leaf::VpEnter => "TDH.VP.ENTER",
            Leaf::MngAddcx => "TDH.MNG.ADDCX",
            Leaf::MemPageAdd => "TDH.MEM.PAGE.ADD",
            Leaf::MemSeptAdd => "TDH.MEM.SEPT.ADD",
            Leaf::VpAddcx => "TDH.VP.ADDCX",
            Leaf::MemPageRelocate => "TDH.MEM.PAGE.RELOCATE",
            Leaf::MemPageAug => "TDH.MEM.PAGE.AUG",
            Leaf::MemRangeBlock => "TDH.MEM.RANGE.BLOCK",
            Leaf::MngKeyConfig => "TDH.MNG.KEY.CONFIG",
            Leaf::MngCreate => "TDH.MNG.CREATE",
            Leaf::VpCreate => "TDH.VP.CREATE",
            Leaf::MngRd => "TDH.MNG.RD",
            Leaf::MemRd => "TDH.MEM.RD",
            Leaf::MngWr => "TDH.MNG.WR",
            Leaf::MemWr => "TDH.MEM.WR",
            Leaf::MemPageDemote => "TDH.MEM.PAGE.DEMOTE",
            Leaf::MrExtend => "TDH.MR.EXTEND",
            Leaf::MrFinalize => "TDH.MR.FINALIZE",
            Leaf::VpFlush => "TDH.VP.FLUSH",
            Leaf::MngVpflushdone => "TDH.MNG.VPFLUSHDONE",
            Leaf::MngKeyFreeid => "TDH.MNG.KEY.FREEID",
            Leaf::MngInit => "TDH.MNG.INIT",
            Leaf::VpInit => "TDH.VP.INIT",
            Leaf::MemPagePromote => "TDH.MEM.PAGE.PROMOTE",
            Leaf::PhymemPageRdmd => "TDH.PHYMEM.PAGE.RDMD",
            Leaf::MemSeptRd => "TDH.MEM.SEPT.RD",
            Leaf::VpRd => "TDH.VP.RD",
            Leaf::MngKeyReclaimid => "TDH.MNG.KEY.RECLAIMID",
            Leaf::PhymemPageReclaim => "TDH.PHYMEM.PAGE.RECLAIM",
            Leaf::MemPageRemove => "TDH.MEM.PAGE.REMOVE",
            Leaf::MemSeptRemove => "TDH.MEM.SEPT.REMOVE",
            Leaf::SysKeyConfig => "TDH.SYS.KEY.CONFIG",
            Leaf::SysInfo => "TDH.SYS.INFO",
            Leaf::SysInit => "TDH.SYS.INIT",
            Leaf::SysRd => "TDH.SYS.RD",
            Leaf::SysLpInit => "TDH.SYS.LP.INIT",
            Leaf::SysTdmrInit => "TDH.SYS.TDMR.INIT",
            Leaf::SysRdall => "TDH.SYS.RDALL",
            Leaf::MemTrack => "TDH.MEM.TRACK",
            Leaf::MemRangeUnblock => "TDH.MEM.RANGE.UNBLOCK",
            Leaf::PhymemCacheWb => "TDH.PHYMEM.CACHE.WB",
            Leaf::PhymemPageWbinvd => "TDH.PHYMEM.PAGE.WBINVD",
            Leaf::MemSeptWr => "TDH.MEM.SEPT.WR",
            Leaf::VpWr => "TDH.VP.WR",
            Leaf::SysLpShutdown => "TDH.SYS.LP.SHUTDOWN",
            Leaf::SysConfig => "TDH.SYS.CONFIG",
            Leaf::ServtdBind => "TDH.SERVTD.BIND",
            Leaf::ServtdPrebind => "TDH.SERVTD.PREBIND",
            Leaf::SysShutdown => "TDH.SYS.SHUTDOWN",
            Leaf::SysUpdate => "TDH.SYS.UPDATE",
            Leaf::SysS4End => "TDH.SYS.S4.END",
            Leaf::PhymemPamtAdd => "TDH.PHYMEM.PAMT.ADD",
            Leaf::PhymemPamtRemove => "TDH.PHYMEM.PAMT.REMOVE",
            Leaf::ExtInit => "TDH.EXT.INIT",
            Leaf::ExtMemAdd => "TDH.EXT.MEM.ADD",
            Leaf::SysDisable => "TDH.SYS.DISABLE",
        }
    }
}

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Raw SEAMCALL RAX input: leaf[15:0] | version[23:16], bits 63:24 reserved (§2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LeafWord(pub u64);

impl LeafWord {
    /// Bits 63:24 must be zero for host leaves (§2.1).
    pub const RESERVED_MASK: u64 = !0x00FF_FFFF;
    /// RAX bit 63 selects P-SEAMLDR leaves (§2.1).
    pub const SEAMLDR_BIT: u64 = 1 << 63;
    /// P-SEAMLDR SEAMLDR.INFO.
    pub const SEAMLDR_INFO: u64 = 0x8000_0000_0000_0000;
    /// P-SEAMLDR SEAMLDR.INSTALL.
    pub const SEAMLDR_INSTALL: u64 = 0x8000_0000_0000_0001;
    /// P-SEAMLDR SEAMLDR.SHUTDOWN.
    pub const SEAMLDR_SHUTDOWN: u64 = 0x8000_0000_0000_0002;
    /// P-SEAMLDR SEAMLDR.SEAMINFO.
    pub const SEAMLDR_SEAMINFO: u64 = 0x8000_0000_0000_0003;
    /// P-SEAMLDR SEAMLDR.CLEANUP.
    pub const SEAMLDR_CLEANUP: u64 = 0x8000_0000_0000_0004;

    /// Encode a leaf at a version.
    #[must_use]
    pub const fn new(leaf: Leaf, version: u8) -> Self {
        LeafWord(leaf as u64 | (version as u64) << 16)
    }

    /// Leaf number, RAX[15:0].
    #[must_use]
    pub const fn number(self) -> u16 {
        self.0 as u16
    }

    /// Version, RAX[23:16].
    #[must_use]
    pub const fn version(self) -> u8 {
        (self.0 >> 16) as u8
    }

    /// True if any of RAX[63:24] is set (the module rejects it with OPERAND_INVALID|RAX).
    #[must_use]
    pub const fn has_reserved_bits(self) -> bool {
        self.0 & Self::RESERVED_MASK != 0
    }

    /// The named leaf, if known.
    #[must_use]
    pub fn leaf(self) -> Option<Leaf> {
        Leaf::from_number(self.number())
    }
}

impl From<Leaf> for LeafWord {
    fn from(leaf: Leaf) -> Self {
        LeafWord::new(leaf, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::{Leaf, LeafWord};

    #[test]
    fn numbers_roundtrip_and_are_sorted() {
        for w in Leaf::ALL.windows(2) {
            assert!(w[0].number() < w[1].number());
        }
        for l in Leaf::ALL {
            assert_eq!(Leaf::from_number(l.number()), Some(l));
        }
        assert_eq!(Leaf::from_number(46), None);
        assert_eq!(Leaf::SysConfig.number(), 45);
        assert_eq!(Leaf::SysTdmrInit.number(), 36);
        assert_eq!(Leaf::PhymemPageWbinvd.number(), 41);
    }

    #[test]
    fn leaf_word_fields() {
        let w = LeafWord::new(Leaf::VpInit, 1);
        assert_eq!(w.0, 0x1_0016);
        assert_eq!(w.number(), 22);
        assert_eq!(w.version(), 1);
        assert!(!w.has_reserved_bits());
        assert!(LeafWord(1 << 24 | 33).has_reserved_bits());
        assert_eq!(LeafWord(33).leaf(), Some(Leaf::SysInit));
    }

    #[test]
    fn allow_list_matches_spec() {
        let allowed: usize = Leaf::ALL
            .iter()
            .filter(|l| l.allowed_before_ready())
            .count();
        assert_eq!(allowed, 9);
        assert!(!Leaf::SysTdmrInit.allowed_before_ready());
        assert!(Leaf::SysKeyConfig.allowed_before_ready());
    }
}
