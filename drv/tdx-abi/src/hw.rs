//! Whether a CPU can run SEAMCALL at all: the checks a host makes before
//! VMXON, from CPUID and MSRs (§1.1).
//!
//! Pure, so the hardware backend's decision is host-tested even on a
//! machine without VMX; the kernel only reads the registers and asks.

/// CPUID.1:ECX bit 5.
pub const CPUID1_ECX_VMX: u32 = 1 << 5;
/// IA32_FEATURE_CONTROL (MSR 0x3A).
pub const MSR_IA32_FEATURE_CONTROL: u32 = 0x3A;
/// Firmware locked IA32_FEATURE_CONTROL (VMXON #GPs otherwise).
pub const FEATURE_CONTROL_LOCKED: u64 = 1 << 0;
/// VMXON is allowed outside SMX.
pub const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;
/// IA32_MTRRCAP (MSR 0xFE).
pub const MSR_IA32_MTRRCAP: u32 = 0xFE;
/// IA32_MTRRCAP bit 15: the SEAM range register exists.
pub const MTRRCAP_SEAMRR: u64 = 1 << 15;
/// IA32_SEAMRR_PHYS_BASE.
pub const MSR_IA32_SEAMRR_PHYS_BASE: u32 = 0x1400;
/// IA32_SEAMRR_PHYS_MASK.
pub const MSR_IA32_SEAMRR_PHYS_MASK: u32 = 0x1401;
/// SEAMRR mask bit 11: the range is enabled (the BIOS set up SEAM).
pub const SEAMRR_MASK_ENABLED: u64 = 1 << 11;

/// Why SEAMCALL cannot be used on this CPU.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SeamUnsupported {
    /// The CPU has no VMX (e.g. QEMU TCG).
    NoVmx,
    /// Firmware left IA32_FEATURE_CONTROL unlocked (VMXON would #GP).
    FeatureControlUnlocked,
    /// Firmware disabled VMX outside SMX.
    VmxDisabledByFirmware,
    /// No SEAM range register: not a TDX-capable CPU.
    NoSeamrr,
    /// SEAMRR exists but the BIOS did not enable it (TDX off in setup).
    SeamrrDisabled,
}

impl core::fmt::Display for SeamUnsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SeamUnsupported::NoVmx => "the CPU has no VMX",
            SeamUnsupported::FeatureControlUnlocked => {
                "IA32_FEATURE_CONTROL is not locked by firmware"
            }
            SeamUnsupported::VmxDisabledByFirmware => "firmware disabled VMX outside SMX",
            SeamUnsupported::NoSeamrr => "the CPU has no SEAM range register (not TDX-capable)",
            SeamUnsupported::SeamrrDisabled => {
                "the BIOS did not enable the SEAM range (TDX disabled)"
            }
        })
    }
}

/// Whether SEAMCALL can be used, decided from the registers, in the order a host must read them (the
/// MSRs are only read when CPUID says VMX exists; pass 0 otherwise).
#[must_use = "the check decides whether the backend may be used"]
pub fn check_seam_support(
    cpuid1_ecx: u32,
    feature_control: u64,
    mtrrcap: u64,
    seamrr_mask: u64,
) -> Result<(), SeamUnsupported> {
    if cpuid1_ecx & CPUID1_ECX_VMX == 0 {
        return Err(SeamUnsupported::NoVmx);
    }
    if feature_control & FEATURE_CONTROL_LOCKED == 0 {
        return Err(SeamUnsupported::FeatureControlUnlocked);
    }
    if feature_control & FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
        return Err(SeamUnsupported::VmxDisabledByFirmware);
    }
    if mtrrcap & MTRRCAP_SEAMRR == 0 {
        return Err(SeamUnsupported::NoSeamrr);
    }
    if seamrr_mask & SEAMRR_MASK_ENABLED == 0 {
        return Err(SeamUnsupported::SeamrrDisabled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        check_seam_support, SeamUnsupported, CPUID1_ECX_VMX, MTRRCAP_SEAMRR, SEAMRR_MASK_ENABLED,
    };

    const FC_OK: u64 = 0b101;

    #[test]
    fn a_tdx_capable_cpu_passes() {
        assert_eq!(
            check_seam_support(CPUID1_ECX_VMX, FC_OK, MTRRCAP_SEAMRR, SEAMRR_MASK_ENABLED),
            Ok(())
        );
    }

    #[test]
    fn each_missing_piece_is_named() {
        assert_eq!(
            check_seam_support(0, FC_OK, MTRRCAP_SEAMRR, SEAMRR_MASK_ENABLED),
            Err(SeamUnsupported::NoVmx)
        );
        assert_eq!(
            check_seam_support(CPUID1_ECX_VMX, 0b100, MTRRCAP_SEAMRR, SEAMRR_MASK_ENABLED),
            Err(SeamUnsupported::FeatureControlUnlocked)
        );
        assert_eq!(
            check_seam_support(CPUID1_ECX_VMX, 0b001, MTRRCAP_SEAMRR, SEAMRR_MASK_ENABLED),
            Err(SeamUnsupported::VmxDisabledByFirmware)
        );
        assert_eq!(
            check_seam_support(CPUID1_ECX_VMX, FC_OK, 0, SEAMRR_MASK_ENABLED),
            Err(SeamUnsupported::NoSeamrr)
        );
        assert_eq!(
            check_seam_support(CPUID1_ECX_VMX, FC_OK, MTRRCAP_SEAMRR, 0),
            Err(SeamUnsupported::SeamrrDisabled)
        );
    }
}
