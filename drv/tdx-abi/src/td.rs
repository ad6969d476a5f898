//! TD construction vocabulary: TD_PARAMS layout, TD-structure page counts, GPA/level operands
//! and the TD life-cycle states (§9.2, §9.4).
//!
//! Pattern: plain constants plus [`TdParams`], a host-side image of the 1024-byte TD_PARAMS
//! structure TDH.MNG.INIT reads, serialized with [`TdParams::to_bytes`] at the offsets below.
//! Invariant: every offset, size and limit is the 1.5.01 module's (`docs/tdx-module.md §9.4`);
//! fields the module requires to be zero are not represented in [`TdParams`] and are always
//! written as zero.

use crate::consts::PAGE_SIZE_4K;

/// Size of TD_PARAMS in bytes.
pub const TD_PARAMS_SIZE: usize = 1024;
/// Required alignment of the TD_PARAMS physical address.
pub const TD_PARAMS_ALIGNMENT: u64 = 1024;

/// Byte offsets of the TD_PARAMS fields (§9.4).
pub mod td_params_offset {
    /// ATTRIBUTES (8 bytes).
    pub const ATTRIBUTES: usize = 0;
    /// XFAM (8 bytes).
    pub const XFAM: usize = 8;
    /// MAX_VCPUS (2 bytes).
    pub const MAX_VCPUS: usize = 16;
    /// NUM_L2_VMS (1 byte).
    pub const NUM_L2_VMS: usize = 18;
    /// MSR_CONFIG_CTLS (1 byte): bit 0 IA32_ARCH_CAPABILITIES config, bits 7:1 reserved.
    pub const MSR_CONFIG_CTLS: usize = 19;
    /// First reserved area (4 bytes, must be zero).
    pub const RESERVED0: usize = 20;
    /// EPTP_CONTROLS (8 bytes).
    pub const EPTP_CONTROLS: usize = 24;
    /// CONFIG_FLAGS (8 bytes).
    pub const CONFIG_FLAGS: usize = 32;
    /// TSC_FREQUENCY in units of 25 MHz (2 bytes).
    pub const TSC_FREQUENCY: usize = 40;
    /// Second reserved area (38 bytes, must be zero).
    pub const RESERVED1: usize = 42;
    /// MR_CONFIG_ID, MR_OWNER, MR_OWNER_CONFIG (3 × 48 bytes).
    pub const MEASUREMENTS: usize = 80;
    /// IA32_ARCH_CAPABILITIES_CONFIG (8 bytes).
    pub const IA32_ARCH_CAPABILITIES_CONFIG: usize = 224;
    /// Third reserved area (24 bytes, must be zero).
    pub const RESERVED2: usize = 232;
    /// CPUID configuration values, then reserved bytes up to 1024.
    pub const CPUID_CONFIG: usize = 256;
}

/// Lowest accepted TSC_FREQUENCY (× 25 MHz = 100 MHz).
pub const TSC_FREQUENCY_MIN: u16 = 4;
/// Highest accepted TSC_FREQUENCY (× 25 MHz = 10 GHz).
pub const TSC_FREQUENCY_MAX: u16 = 400;
/// Most L2 VMs a TD may ask for.
pub const MAX_L2_VMS: u8 = 3;
/// TDCS pages (TDH.MNG.ADDCX calls) a TD without L2 VMs needs.
pub const MIN_TDCS_PAGES: u8 = 6;
/// Upper bound of TDCS pages (one more per L2 VM).
pub const MAX_TDCS_PAGES: u8 = 9;
/// TDVPS pages of a vCPU without L2 VMs: the TDVPR plus 5 TDCX pages.
pub const MIN_TDVPS_PAGES: u8 = 6;
/// Upper bound of TDVPS pages (three more per L2 VM).
pub const MAX_TDVPS_PAGES: u8 = 15;
/// ATTRIBUTES.DEBUG.
pub const ATTR_DEBUG: u64 = 1 << 0;
/// ATTRIBUTES.MIGRATABLE.
pub const ATTR_MIGRATABLE: u64 = 1 << 29;
/// ATTRIBUTES.PERFMON.
pub const ATTR_PERFMON: u64 = 1 << 63;
/// XFAM bits every TD must have (x87 and SSE state).
pub const XFAM_REQUIRED: u64 = 0b11;
/// CONFIG_FLAGS bits 1.5.01 defines (GPAW, FLEXIBLE_PENDING_VE, NO_RBP_MOD); the rest must be 0.
pub const CONFIG_FLAGS_DEFINED: u64 = 0b111;
/// EPTP_CONTROLS for a 4-level, write-back secure EPT (memory type 6, walk length − 1 = 3).
pub const EPTP_4LEVEL_WB: u64 = 6 | 3 << 3;

/// TD life-cycle state held in the TDR (§9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TdLifecycle {
    /// After TDH.MNG.CREATE: the KeyID is assigned, keys not yet on every package.
    HkidAssigned = 0,
    /// After TDH.MNG.KEY.CONFIG on the last package.
    KeysConfigured = 1,
    /// After TDH.MNG.VPFLUSHDONE: the KeyID is FLUSHED.
    Blocked = 2,
    /// After TDH.MNG.KEY.FREEID: only reclaiming pages is left.
    Teardown = 3,
}

/// TD operation state held in the TDCS (§9.2; migration states are not listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TdOpState {
    /// Before TDH.MNG.INIT.
    Uninitialized = 0,
    /// After TDH.MNG.INIT: vCPUs and initial pages may be added.
    Initialized = 1,
    /// After TDH.MR.FINALIZE.
    Runnable = 2,
}

/// Secure-EPT level of a GPA operand: 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB, 3 = 512 GiB.
pub const SEPT_LEVEL_MAX_4LEVEL: u8 = 3;

/// The GPA-and-level operand of the TDH.MEM leaves: `level[2:0] | gpa[51:12]`, bits 11:3 and
/// 63:52 reserved.
#[must_use]
pub const fn gpa_operand(gpa: u64, level: u8) -> u64 {
    (gpa & !(PAGE_SIZE_4K - 1)) | (level as u64 & 7)
}

/// A host-side image of TD_PARAMS; reserved fields and CPUID configuration are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdParams {
    /// ATTRIBUTES.
    pub attributes: u64,
    /// XFAM.
    pub xfam: u64,
    /// MAX_VCPUS.
    pub max_vcpus: u16,
    /// NUM_L2_VMS.
    pub num_l2_vms: u8,
    /// EPTP_CONTROLS.
    pub eptp_controls: u64,
    /// CONFIG_FLAGS.
    pub config_flags: u64,
    /// TSC_FREQUENCY (× 25 MHz).
    pub tsc_frequency: u16,
}

impl Default for TdParams {
    /// A minimal valid TD: no attributes, x87+SSE, 2 vCPUs, 4-level EPT, 2.5 GHz TSC.
    fn default() -> Self {
        TdParams {
            attributes: 0,
            xfam: XFAM_REQUIRED,
            max_vcpus: 2,
            num_l2_vms: 0,
            eptp_controls: EPTP_4LEVEL_WB,
            config_flags: 0,
            tsc_frequency: 100,
        }
    }
}

impl TdParams {
    /// The 1024 bytes TDH.MNG.INIT reads.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; TD_PARAMS_SIZE] {
        use td_params_offset as o;
        let mut b = [0u8; TD_PARAMS_SIZE];
        b[o::ATTRIBUTES..o::ATTRIBUTES + 8].copy_from_slice(&self.attributes.to_le_bytes());
        b[o::XFAM..o::XFAM + 8].copy_from_slice(&self.xfam.to_le_bytes());
        b[o::MAX_VCPUS..o::MAX_VCPUS + 2].copy_from_slice(&self.max_vcpus.to_le_bytes());
        b[o::NUM_L2_VMS] = self.num_l2_vms;
        b[o::EPTP_CONTROLS..o::EPTP_CONTROLS + 8]
            .copy_from_slice(&self.eptp_controls.to_le_bytes());
        b[o::CONFIG_FLAGS..o::CONFIG_FLAGS + 8].copy_from_slice(&self.config_flags.to_le_bytes());
        b[o::TSC_FREQUENCY..o::TSC_FREQUENCY + 2]
            .copy_from_slice(&self.tsc_frequency.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::{gpa_operand, td_params_offset as o, TdParams, TD_PARAMS_SIZE};

    #[test]
    fn td_params_fields_land_at_their_offsets() {
        let b = TdParams::default().to_bytes();
        assert_eq!(b.len(), TD_PARAMS_SIZE);
        assert_eq!(b[o::XFAM], 3);
        assert_eq!(b[o::MAX_VCPUS], 2);
        assert_eq!(b[o::EPTP_CONTROLS], 0x1E);
        assert_eq!(b[o::TSC_FREQUENCY], 100);
        assert!(b[o::RESERVED1..].iter().all(|x| *x == 0));
    }

    #[test]
    fn gpa_operand_packs_level_in_the_low_bits() {
        assert_eq!(gpa_operand(0x20_0000, 1), 0x20_0001);
        assert_eq!(gpa_operand(0x1234, 0), 0x1000);
    }
}
