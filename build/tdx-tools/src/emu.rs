//! Bridge to `tdx-emu`'s TDH.SYS.CONFIG validation (§6).
//!
//! Pattern: build an [`EmuConfig`] whose CMRs, limits and address width come from the INPUT and
//! whose platform shape cannot get in the way of a plan: MAX_PA = `pa_bits` + 6 KeyID bits (by
//! default 52, so HKID bits start at 64 TiB and multi-TiB fixtures are addressable), SEAMRR in the
//! last 32 MiB below the HKID bits, and the global KeyID is the first private KeyID (§1.2).

use anyhow::{anyhow, Result};
use tdx_abi::{CmrInfo, TdmrInfo, TdxStatus};
use tdx_emu::EmuConfig;

use crate::format::{Input, EMU_KEYID_BITS};

/// The emulator configuration for `input`.
///
/// # Errors
/// More CMRs than the emulator holds, or an unrepresentable configuration.
pub fn emu_config(input: &Input) -> Result<EmuConfig> {
    let cmrs: Vec<CmrInfo> = input
        .cmrs
        .iter()
        .map(|c| CmrInfo::new(c.base().0, c.size().0))
        .collect();
    anyhow::ensure!(
        cmrs.len() <= tdx_abi::MAX_CMRS,
        "{} CMRs; the module holds at most 32",
        cmrs.len()
    );
    let mut cfg = EmuConfig::new(1, 1).with_cmrs(&cmrs);
    // The module's usable width (below the HKID bits) is the INPUT's `pa_bits`.
    cfg.max_pa = input.pa_bits.0 + EMU_KEYID_BITS;
    cfg.keyids.keyid_bits = EMU_KEYID_BITS;
    // SEAMRR lives in memory that is never in a CMR (§1.1); park it at the top of the PA space.
    cfg.seamrr.base = (1u64 << input.pa_bits.0) - (32 << 20);
    cfg.limits.max_tdmrs = input.limits.max_tdmrs;
    cfg.limits.max_reserved_per_tdmr = input.limits.max_reserved_per_tdmr;
    cfg.limits.pamt_4k_entry_size = input.limits.pamt_entry_size[0];
    cfg.limits.pamt_2m_entry_size = input.limits.pamt_entry_size[1];
    cfg.limits.pamt_1g_entry_size = input.limits.pamt_entry_size[2];
    cfg.validate()
        .map_err(|e| anyhow!("emulator cannot represent this input: {e:?}"))?;
    Ok(cfg)
}

/// Runs SYS.CONFIG validation of `tdmrs` against `input`'s CMRs and limits.
///
/// # Errors
/// See [`emu_config`].
pub fn check(input: &Input, tdmrs: &[TdmrInfo]) -> Result<TdxStatus> {
    let cfg = emu_config(input)?;
    let global_keyid = u16::try_from(cfg.keyids.private_min())?;
    Ok(tdx_emu::check_config(&cfg, tdmrs, global_keyid))
}
