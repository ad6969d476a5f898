//! Emulated platform and module configuration (§10 item 4) and the fault-injection rule type.
//!
//! Pattern: [`EmuConfig`] is plain data chosen by the test or the kernel before the module
//! exists. It describes what MCHECK and the BIOS fixed (CMRs, LP/package totals, MAX_PA, KeyID
//! partitioning, SEAMRR) and what the module build reports (limits, versions, features).
//! Invariant: nothing here is validated against the *module's* rules — a bad CMR list is a legal
//! configuration and surfaces as TDX_CMR_LIST_INVALID from TDH.SYS.INIT (§3.2), exactly as on
//! hardware. Only shapes the emulator cannot represent (too many LPs, a package id beyond
//! [`MAX_PACKAGES`]) are rejected by [`EmuConfig::validate`].

use tdx_abi::consts::GIB;
use tdx_abi::metadata::features0;
use tdx_abi::{CmrInfo, Leaf, MAX_CMRS, MAX_RESERVED_PER_TDMR, MAX_TDMRS, PAMT_ENTRY_SIZE};

/// Maximum logical processors the emulator tracks (the system limit).
pub const MAX_LPS: usize = abi::limits::MAX_CPUS;
/// Maximum packages the emulator tracks (package ids are `0..MAX_PACKAGES`; the system limit).
pub const MAX_PACKAGES: usize = abi::limits::MAX_PACKAGES;
/// Fault-injection rules per module.
pub const MAX_FAULT_RULES: usize = 16;

/// MSR 0x87 partitioning plus TME_ACTIVATE KeyID bits (§1.1, §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyIdConfig {
    /// TME_ACTIVATE[35:32]: KeyID bits taken from the top of MAX_PA.
    pub keyid_bits: u8,
    /// MSR 0x87 bits 31:0: number of MKTME KeyIDs.
    pub nr_mktme: u32,
    /// MSR 0x87 bits 63:32: number of TDX private KeyIDs.
    pub nr_tdx: u32,
}

impl KeyIdConfig {
    /// First private KeyID: `nr_mktme + 1` (§1.2).
    #[must_use]
    pub const fn private_min(&self) -> u32 {
        self.nr_mktme + 1
    }

    /// Last private KeyID: `nr_mktme + nr_tdx` (§1.2).
    #[must_use]
    pub const fn private_max(&self) -> u32 {
        self.nr_mktme + self.nr_tdx
    }
}

/// Module limits reported through TDH.SYS.RD (§5.3, §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleLimits {
    /// MAX_TDMRS (≤ 64; SYS.CONFIG enforces this value, §6 rule 4).
    pub max_tdmrs: u16,
    /// MAX_RESERVED_PER_TDMR (1..=16). The module always *reads* 16 slots (§10 item 14), but
    /// SYS.CONFIG refuses a non-null slot at or beyond this limit with
    /// TDX_INVALID_RESERVED_IN_TDMR(i, slot): the host was told there are only this many.
    pub max_reserved_per_tdmr: u16,
    /// PAMT entry size for the 4K level.
    pub pamt_4k_entry_size: u16,
    /// PAMT entry size for the 2M level.
    pub pamt_2m_entry_size: u16,
    /// PAMT entry size for the 1G level.
    pub pamt_1g_entry_size: u16,
}

impl Default for ModuleLimits {
    fn default() -> Self {
        ModuleLimits {
            max_tdmrs: MAX_TDMRS as u16,
            max_reserved_per_tdmr: MAX_RESERVED_PER_TDMR as u16,
            pamt_4k_entry_size: PAMT_ENTRY_SIZE as u16,
            pamt_2m_entry_size: PAMT_ENTRY_SIZE as u16,
            pamt_1g_entry_size: PAMT_ENTRY_SIZE as u16,
        }
    }
}

/// Version fields (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ModuleVersion {
    pub major: u16,
    pub minor: u16,
    pub update: u16,
    pub build_num: u16,
    pub build_date: u32,
    /// MODULE_HV handoff version.
    pub module_hv: u16,
}

impl Default for ModuleVersion {
    fn default() -> Self {
        // Shaped like the 1.5.01 release the notes describe; the values are illustrative.
        ModuleVersion {
            major: 1,
            minor: 5,
            update: 1,
            build_num: 0,
            build_date: 2023_0101,
            module_hv: 0,
        }
    }
}

/// SEAM range register (§1.1): 32 MiB-aligned base and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SeamrrRange {
    /// Base PA.
    pub base: u64,
    /// Size in bytes (0 = none).
    pub size: u64,
}

impl SeamrrRange {
    /// True if `[pa, pa + len)` intersects SEAMRR.
    #[must_use]
    pub const fn overlaps(&self, pa: u64, len: u64) -> bool {
        crate::validate::overlaps(self.base, self.size, pa, len)
    }
}

/// How a SEAMCALL can fault instead of returning (§2.1, §10 item 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeamcallFault {
    /// #UD (e.g. not post-VMXON).
    Ud,
    /// #GP (e.g. SEAM disabled).
    Gp,
}

/// One deterministic fault-injection rule (§10 items 5 and 26).
///
/// A rule is *armed* once the leaf's per-module call counter (every SEAMCALL naming that leaf,
/// 1-based, counted at dispatch) reaches `on_call` (`None` = from the first call), and then fires
/// on the next `repeat` calls of that leaf that reach the leaf's injection point and come from
/// `on_lp` (`None` = any LP). `repeat == 0` is treated as 1 so a rule never silently does
/// nothing; use [`FaultRule::FOREVER`] for a permanent fault.
///
/// The injection point is after the dispatcher gates and the leaf's own lock/state/LP checks and
/// before any side effect, so an injected failure leaves the module state untouched — except for
/// TDX_INTERRUPTED_RESUMABLE on TDH.PHYMEM.CACHE.WB, which saves resume state as the real leaf does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// Leaf the rule applies to.
    pub leaf: Leaf,
    /// Status to return (full value, operand bits included).
    pub status: u64,
    /// Nth call of the leaf (1-based) from which the rule is armed.
    pub on_call: Option<u32>,
    /// Only calls from this LP.
    pub on_lp: Option<u32>,
    /// Number of firings.
    pub repeat: u32,
}

impl FaultRule {
    /// `repeat` value that never runs out.
    pub const FOREVER: u32 = u32::MAX;

    /// Fire `status` once on the first call of `leaf`.
    #[must_use]
    pub const fn once(leaf: Leaf, status: u64) -> Self {
        FaultRule {
            leaf,
            status,
            on_call: None,
            on_lp: None,
            repeat: 1,
        }
    }
}

/// Complete emulator configuration.
#[derive(Clone, Debug)]
pub struct EmuConfig {
    /// CMR table as MCHECK reports it; entries beyond `num_cmrs` are ignored (null).
    pub cmrs: [CmrInfo; MAX_CMRS],
    /// Number of meaningful entries in `cmrs` (nulls inside this prefix are allowed only at the tail).
    pub num_cmrs: usize,
    /// MCHECK total LP count; LP ids are `0..num_lps`.
    pub num_lps: u32,
    /// Package of each LP.
    pub lp_package: [u8; MAX_LPS],
    /// MAX_PA (CPUID 0x80000008) in bits.
    pub max_pa: u8,
    /// KeyID partitioning.
    pub keyids: KeyIdConfig,
    /// Module limits.
    pub limits: ModuleLimits,
    /// Version fields.
    pub version: ModuleVersion,
    /// TDX_FEATURES0 (default: NO_RBP_MOD).
    pub features0: u64,
    /// SYS_ATTRIBUTES.
    pub sys_attributes: u32,
    /// SEAMRR.
    pub seamrr: SeamrrRange,
    /// Fault-injection rules (`None` slots are empty).
    pub faults: [Option<FaultRule>; MAX_FAULT_RULES],
    /// Module not loaded: every SEAMCALL is VMfailInvalid (§2.1).
    pub module_absent: bool,
    /// Every SEAMCALL faults this way (checked after `module_absent`).
    pub seamcall_fault: Option<SeamcallFault>,
    /// "Relaxed" LP.INIT (§3.2 divergence note): LP.INIT is also accepted after SYS.CONFIG and
    /// SYS.CONFIG does not wait for all LPs.
    pub relaxed_lp_init: bool,
    /// ATTRIBUTES_FIXED0/1, XFAM_FIXED0/1 as reported by SYS.RD.
    pub td_fixed: [u64; 4],
    /// MAX_VCPUS_PER_TD as reported by SYS.RD.
    pub max_vcpus_per_td: u16,
}

/// Why an [`EmuConfig`] cannot be emulated at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `num_lps` is 0 or above [`MAX_LPS`].
    LpCount(u32),
    /// An LP's package id is `>= MAX_PACKAGES`.
    #[allow(missing_docs)]
    PackageId { lp: u32, package: u8 },
    /// `num_cmrs > MAX_CMRS`.
    CmrCount(usize),
    /// `max_pa` outside 32..=52 or `keyid_bits >= max_pa`.
    #[allow(missing_docs)]
    AddressWidth { max_pa: u8, keyid_bits: u8 },
    /// `limits.max_tdmrs` is 0 or above [`MAX_TDMRS`].
    MaxTdmrs(u16),
    /// `limits.max_reserved_per_tdmr` is 0 or above [`MAX_RESERVED_PER_TDMR`] (a TDMR_INFO
    /// has 16 slots).
    MaxReserved(u16),
}

impl EmuConfig {
    /// A `num_lps`-LP platform whose LPs are spread round-robin over `num_packages` packages,
    /// with two CMRs (`[1 MiB, 2 GiB - 32 MiB)` and `[4 GiB, 16 GiB)`), SEAMRR at the 32 MiB below
    /// 2 GiB, MAX_PA 46 with 6 KeyID bits, and private KeyIDs `[16, 63]` (§1.2 example).
    #[must_use]
    pub fn new(num_lps: u32, num_packages: u8) -> Self {
        let mut lp_package = [0u8; MAX_LPS];
        let pk = num_packages.max(1);
        for (i, p) in lp_package.iter_mut().enumerate() {
            *p = (i % pk as usize) as u8;
        }
        let mut cmrs = [CmrInfo::default(); MAX_CMRS];
        cmrs[0] = CmrInfo::new(0x10_0000, 2 * GIB - 32 * (1 << 20) - 0x10_0000);
        cmrs[1] = CmrInfo::new(4 * GIB, 12 * GIB);
        EmuConfig {
            cmrs,
            num_cmrs: 2,
            num_lps,
            lp_package,
            max_pa: 46,
            keyids: KeyIdConfig {
                keyid_bits: 6,
                nr_mktme: 15,
                nr_tdx: 48,
            },
            limits: ModuleLimits::default(),
            version: ModuleVersion::default(),
            features0: features0::NO_RBP_MOD,
            sys_attributes: 0,
            seamrr: SeamrrRange {
                base: 2 * GIB - 32 * (1 << 20),
                size: 32 * (1 << 20),
            },
            faults: [None; MAX_FAULT_RULES],
            module_absent: false,
            seamcall_fault: None,
            relaxed_lp_init: false,
            td_fixed: [0; 4],
            max_vcpus_per_td: 1024,
        }
    }

    /// Replace the CMR list (at most [`MAX_CMRS`] entries are used).
    #[must_use]
    pub fn with_cmrs(mut self, cmrs: &[CmrInfo]) -> Self {
        self.cmrs = [CmrInfo::default(); MAX_CMRS];
        let n = cmrs.len().min(MAX_CMRS);
        self.cmrs[..n].copy_from_slice(&cmrs[..n]);
        self.num_cmrs = n;
        self
    }

    /// Add a fault rule in the first free slot; returns `false` if all slots are used.
    pub fn add_fault(&mut self, rule: FaultRule) -> bool {
        match self.faults.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(rule);
                true
            }
            None => false,
        }
    }

    /// The meaningful CMR prefix.
    #[must_use]
    pub fn cmr_slice(&self) -> &[CmrInfo] {
        &self.cmrs[..self.num_cmrs.min(MAX_CMRS)]
    }

    /// Number of packages: highest package id among the LPs, plus one.
    #[must_use]
    pub fn num_packages(&self) -> usize {
        let n = (self.num_lps as usize).min(MAX_LPS);
        self.lp_package[..n]
            .iter()
            .map(|&p| p as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// First HKID bit in a PA: `MAX_PA - keyid_bits` (§1.2).
    #[must_use]
    pub const fn hkid_start_bit(&self) -> u32 {
        self.max_pa as u32 - self.keyids.keyid_bits as u32
    }

    /// Check that the emulator can represent this configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.num_lps == 0 || self.num_lps as usize > MAX_LPS {
            return Err(ConfigError::LpCount(self.num_lps));
        }
        for lp in 0..self.num_lps {
            let package = self.lp_package[lp as usize];
            if package as usize >= MAX_PACKAGES {
                return Err(ConfigError::PackageId { lp, package });
            }
        }
        if self.num_cmrs > MAX_CMRS {
            return Err(ConfigError::CmrCount(self.num_cmrs));
        }
        if !(32..=52).contains(&self.max_pa) || self.keyids.keyid_bits >= self.max_pa {
            return Err(ConfigError::AddressWidth {
                max_pa: self.max_pa,
                keyid_bits: self.keyids.keyid_bits,
            });
        }
        if self.limits.max_tdmrs == 0 || self.limits.max_tdmrs as usize > MAX_TDMRS {
            return Err(ConfigError::MaxTdmrs(self.limits.max_tdmrs));
        }
        let rsvd = self.limits.max_reserved_per_tdmr;
        if rsvd == 0 || rsvd as usize > MAX_RESERVED_PER_TDMR {
            return Err(ConfigError::MaxReserved(rsvd));
        }
        Ok(())
    }
}
