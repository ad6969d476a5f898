//! Global-metadata field IDs for TDH.SYS.RD / RDALL and TDX_FEATURES0 bits (§5.4).
//!
//! Pattern: [`FieldId`] is a `u64` newtype with accessors for the §5.4 bit layout
//! (code 23:0, element size 33:32, last element 37:34, last field 46:38, inc_size 50,
//! write-mask-valid 51, context 54:52, class 61:56, non-arch 63). The `field` module holds the
//! named IDs; array fields are functions of their index.

/// A metadata field identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FieldId(pub u64);

impl FieldId {
    /// All-ones: "no next field" / error (§2.3).
    pub const NONE: FieldId = FieldId(u64::MAX);
    /// The null field ID: SYS.RD answers with the first ID (§2.3).
    pub const NULL: FieldId = FieldId(0);

    /// Field code, bits 23:0.
    #[must_use]
    pub const fn code(self) -> u32 {
        (self.0 & 0xFF_FFFF) as u32
    }

    /// Element size code, bits 33:32 (0 = 1B, 1 = 2B, 2 = 4B, 3 = 8B).
    #[must_use]
    pub const fn element_size_code(self) -> u8 {
        ((self.0 >> 32) & 3) as u8
    }

    /// Element size in bytes.
    #[must_use]
    pub const fn element_bytes(self) -> u32 {
        1 << self.element_size_code()
    }

    /// Last element in field, bits 37:34.
    #[must_use]
    pub const fn last_element(self) -> u8 {
        ((self.0 >> 34) & 0xF) as u8
    }

    /// Last field in sequence, bits 46:38 (must be 0 for SYS.RD).
    #[must_use]
    pub const fn last_field_in_sequence(self) -> u16 {
        ((self.0 >> 38) & 0x1FF) as u16
    }

    /// Context, bits 54:52 (0 = SYS).
    #[must_use]
    pub const fn context(self) -> u8 {
        ((self.0 >> 52) & 7) as u8
    }

    /// Class, bits 61:56.
    #[must_use]
    pub const fn class(self) -> u8 {
        ((self.0 >> 56) & 0x3F) as u8
    }

    /// Non-architectural, bit 63.
    #[must_use]
    pub const fn is_non_arch(self) -> bool {
        self.0 >> 63 != 0
    }

    /// Single-element, single-field ID (what SYS.RD accepts).
    #[must_use]
    pub const fn is_single(self) -> bool {
        self.last_element() == 0 && self.last_field_in_sequence() == 0
    }

    /// Mask of valid value bits for the element size.
    #[must_use]
    pub const fn value_mask(self) -> u64 {
        match self.element_size_code() {
            0 => 0xFF,
            1 => 0xFFFF,
            2 => 0xFFFF_FFFF,
            _ => u64::MAX,
        }
    }
}

/// Named global-metadata fields (§5.4).
pub mod field {
    use super::FieldId;

    /// Minor version (2B).
    pub const MINOR_VERSION: FieldId = FieldId(0x0800_0001_0000_0003);
    /// Major version (2B).
    pub const MAJOR_VERSION: FieldId = FieldId(0x0800_0001_0000_0004);
    /// Update version (2B).
    pub const UPDATE_VERSION: FieldId = FieldId(0x0800_0001_0000_0005);
    /// Build date (4B).
    pub const BUILD_DATE: FieldId = FieldId(0x8800_0002_0000_0001);
    /// Build number (2B).
    pub const BUILD_NUM: FieldId = FieldId(0x8800_0001_0000_0002);
    /// SYS_ATTRIBUTES (4B).
    pub const SYS_ATTRIBUTES: FieldId = FieldId(0x0A00_0002_0000_0000);
    /// TDX_FEATURES0 (8B).
    pub const TDX_FEATURES0: FieldId = FieldId(0x0A00_0003_0000_0008);
    /// NUM_CMRS (2B); 1.5.01 reports MAX_CMR (32).
    pub const NUM_CMRS: FieldId = FieldId(0x9000_0001_0000_0000);
    /// MAX_TDMRS (2B).
    pub const MAX_TDMRS: FieldId = FieldId(0x9100_0001_0000_0008);
    /// MAX_RESERVED_PER_TDMR (2B).
    pub const MAX_RESERVED_PER_TDMR: FieldId = FieldId(0x9100_0001_0000_0009);
    /// PAMT_4K_ENTRY_SIZE (2B).
    pub const PAMT_4K_ENTRY_SIZE: FieldId = FieldId(0x9100_0001_0000_0010);
    /// PAMT_2M_ENTRY_SIZE (2B).
    pub const PAMT_2M_ENTRY_SIZE: FieldId = FieldId(0x9100_0001_0000_0011);
    /// PAMT_1G_ENTRY_SIZE (2B).
    pub const PAMT_1G_ENTRY_SIZE: FieldId = FieldId(0x9100_0001_0000_0012);
    /// PAMT_PAGE_BITMAP_ENTRY_BITS (Dynamic PAMT, in-flight [S9]; size assumed 2B).
    pub const PAMT_PAGE_BITMAP_ENTRY_BITS: FieldId = FieldId(0x9100_0001_0000_0013);
    /// TDR_BASE_SIZE (2B).
    pub const TDR_BASE_SIZE: FieldId = FieldId(0x9800_0001_0000_0000);
    /// TDCS_BASE_SIZE (2B).
    pub const TDCS_BASE_SIZE: FieldId = FieldId(0x9800_0001_0000_0100);
    /// TDVPS_BASE_SIZE (2B).
    pub const TDVPS_BASE_SIZE: FieldId = FieldId(0x9800_0001_0000_0200);
    /// ATTRIBUTES_FIXED0 (8B).
    pub const ATTRIBUTES_FIXED0: FieldId = FieldId(0x1900_0003_0000_0000);
    /// ATTRIBUTES_FIXED1 (8B).
    pub const ATTRIBUTES_FIXED1: FieldId = FieldId(0x1900_0003_0000_0001);
    /// XFAM_FIXED0 (8B).
    pub const XFAM_FIXED0: FieldId = FieldId(0x1900_0003_0000_0002);
    /// XFAM_FIXED1 (8B).
    pub const XFAM_FIXED1: FieldId = FieldId(0x1900_0003_0000_0003);
    /// NUM_CPUID_CONFIG (2B).
    pub const NUM_CPUID_CONFIG: FieldId = FieldId(0x9900_0001_0000_0004);
    /// MAX_VCPUS_PER_TD (2B).
    pub const MAX_VCPUS_PER_TD: FieldId = FieldId(0x9900_0001_0000_0008);
    /// MODULE_HV, the handoff version (2B).
    pub const MODULE_HV: FieldId = FieldId(0x8900_0001_0000_0000);

    /// CMR_BASE[i] (8B).
    #[must_use]
    pub const fn cmr_base(i: u16) -> FieldId {
        FieldId(0x9000_0003_0000_0080 + i as u64)
    }

    /// CMR_SIZE[i] (8B).
    #[must_use]
    pub const fn cmr_size(i: u16) -> FieldId {
        FieldId(0x9000_0003_0000_0100 + i as u64)
    }

    /// CPUID_CONFIG_LEAVES[i] (8B).
    #[must_use]
    pub const fn cpuid_config_leaf(i: u16) -> FieldId {
        FieldId(0x9900_0003_0000_0400 + i as u64)
    }

    /// CPUID_CONFIG_VALUES[i][j], j in 0..2 (8B).
    #[must_use]
    pub const fn cpuid_config_value(i: u16, j: u16) -> FieldId {
        FieldId(0x9900_0003_0000_0500 + 2 * i as u64 + j as u64)
    }
}

/// TDX_FEATURES0 bits (§5.4).
pub mod features0 {
    /// TD migration.
    pub const TD_MIGRATION: u64 = 1 << 0;
    /// TD-preserving update.
    pub const TD_PRESERVING: u64 = 1 << 1;
    /// Service TD.
    pub const SERVICE_TD: u64 = 1 << 2;
    /// TDG.VP.RD/WR.
    pub const TDG_VP_RDWR: u64 = 1 << 3;
    /// Relaxed memory-management concurrency.
    pub const RELAXED_MEM_MNG_CONCURRENCY: u64 = 1 << 4;
    /// CPUID virtualization guest control.
    pub const CPUID_VIRT_GUEST_CTRL: u64 = 1 << 5;
    /// TD partitioning.
    pub const TD_PARTITIONING: u64 = 1 << 7;
    /// Local attestation.
    pub const LOCAL_ATTESTATION: u64 = 1 << 8;
    /// TD entry enhancements.
    pub const TD_ENTRY_ENHANCEMENTS: u64 = 1 << 9;
    /// Host-priority locks.
    pub const HOST_PRIORITY_LOCKS: u64 = 1 << 10;
    /// Configurable IA32_ARCH_CAPABILITIES.
    pub const CONFIG_IA32_ARCH_CAPABILITIES: u64 = 1 << 11;
    /// Pending EPT violation v2.
    pub const PENDING_EPT_VIOLATION_V2: u64 = 1 << 16;
    /// FMS config.
    pub const FMS_CONFIG: u64 = 1 << 17;
    /// NO_RBP_MOD: Linux refuses a module without it (§3.3 b).
    pub const NO_RBP_MOD: u64 = 1 << 18;
    /// CLFLUSH_BEFORE_ALLOC.
    pub const CLFLUSH_BEFORE_ALLOC: u64 = 1 << 23;
    /// Dynamic PAMT (in-flight).
    pub const DYNAMIC_PAMT: u64 = 1 << 36;
    /// Update compatibility (in-flight).
    pub const UPDATE_COMPATIBILITY: u64 = 1 << 47;
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn layout_decoding() {
        assert_eq!(field::MAJOR_VERSION.element_bytes(), 2);
        assert_eq!(field::BUILD_DATE.element_bytes(), 4);
        assert!(field::BUILD_DATE.is_non_arch());
        assert_eq!(field::TDX_FEATURES0.element_bytes(), 8);
        assert_eq!(field::MAX_TDMRS.class(), 0x11);
        assert_eq!(field::MAX_TDMRS.context(), 0);
        assert!(field::MAX_TDMRS.is_single());
        assert_eq!(field::cmr_size(3).0, 0x9000_0003_0000_0103);
        assert_eq!(field::cpuid_config_value(2, 1).0, 0x9900_0003_0000_0505);
    }
}
