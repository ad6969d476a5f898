//! `[kernel.tdx]`: the SEAMCALL backend and the software module's
//! configuration, with leaf and status names resolved through `tdx-abi`.
//!
//! ```toml
//! [kernel.tdx]
//! backend = "emulated"        # or "hardware", "none"
//! tdx-keyids = 48             # KeyID partitioning (MSR 0x87)
//! faults = [{ leaf = "TDH.SYS.LP.INIT", status = "TDX_RND_NO_ENTROPY", on-call = 2 }]
//! ```
//!
//! Every number is range-checked by [`TdxSettings::check`] when the manifest is loaded (all
//! arithmetic on them is checked), so an out-of-range value is an error naming its key, never a
//! panic in xtask, the kernel's build script or the emulator:
//! - `keyid-bits`: 0..=15 (IA32_TME_ACTIVATE bits 35:32 are a 4-bit field);
//! - `mktme-keyids` + `tdx-keyids` < 2^`keyid-bits` (KeyID 0 is the TME key);
//! - `max-tdmrs`: 1..=64, `max-reserved-per-tdmr`: 1..=16 (a TDMR_INFO has 16 slots);
//! - `pamt-entry-size`: 1..=4096 (an entry describes one 4 KiB page);
//! - `faults`: at most 16 rules, each with a known leaf and status, `on-call` and `repeat` ≥ 1.
//!   A rule with `kill = "before" | "after"` instead of `status` kills the calling task
//!   (`FaultInfo::Killed`) before or after the module executes its call
//!   (`kerncore::inject::KillTable`), for restart tests:
//!   `{ leaf = "TDH.SYS.KEY.CONFIG", on-call = 2, kill = "after" }`.

use anyhow::{bail, Result};
use build_kconfig::{FaultRuleDesc, KillWhen, TdxBackend, TdxConfig};
use serde::Deserialize;
use tdx_abi::Leaf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TdxSettings {
    #[serde(default = "default_backend")]
    pub backend: TdxBackend,
    #[serde(default = "default_keyid_bits")]
    pub keyid_bits: u8,
    #[serde(default = "default_mktme")]
    pub mktme_keyids: u32,
    #[serde(default = "default_tdx")]
    pub tdx_keyids: u32,
    #[serde(default = "default_max_tdmrs")]
    pub max_tdmrs: u16,
    #[serde(default = "default_max_reserved")]
    pub max_reserved_per_tdmr: u16,
    #[serde(default = "default_entry")]
    pub pamt_entry_size: u16,
    /// TDX_FEATURES0; default: NO_RBP_MOD (bit 18), which hosts require.
    #[serde(default = "default_features0")]
    pub features0: u64,
    #[serde(default)]
    pub absent: bool,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

fn default_backend() -> TdxBackend {
    TdxBackend::Emulated
}
fn default_keyid_bits() -> u8 {
    6
}
fn default_mktme() -> u32 {
    15
}
fn default_tdx() -> u32 {
    48
}
fn default_max_tdmrs() -> u16 {
    64
}
fn default_max_reserved() -> u16 {
    16
}
fn default_entry() -> u16 {
    16
}
fn default_features0() -> u64 {
    tdx_abi::metadata::features0::NO_RBP_MOD
}

/// A leaf or status given by name or number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NameOrNumber {
    Number(u64),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FaultSpec {
    pub leaf: NameOrNumber,
    /// What the module answers; exactly one of `status` and `kill`.
    #[serde(default)]
    pub status: Option<NameOrNumber>,
    /// Instead of answering: the kernel kills the calling task `before` or
    /// `after` the module executes the call.
    #[serde(default)]
    pub kill: Option<KillWhen>,
    pub on_call: Option<u32>,
    pub on_cpu: Option<u32>,
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

fn leaf(n: &NameOrNumber) -> Result<u16> {
    let found = match n {
        NameOrNumber::Number(v) => u16::try_from(*v).ok().and_then(Leaf::from_number),
        NameOrNumber::Name(s) => Leaf::ALL
            .iter()
            .copied()
            .find(|l| l.name().eq_ignore_ascii_case(s)),
    };
    match found {
        Some(l) => Ok(l.number()),
        None => {
            let names: Vec<&str> = Leaf::ALL.iter().map(|l| l.name()).collect();
            let hint = match n {
                NameOrNumber::Name(s) => names
                    .iter()
                    .map(|k| (strsim::jaro_winkler(s, k), k))
                    .filter(|(sc, _)| *sc > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default(),
                NameOrNumber::Number(_) => String::new(),
            };
            bail!("kernel.tdx.faults: unknown SEAMCALL leaf {n:?}{hint}")
        }
    }
}

fn status(n: &NameOrNumber) -> Result<u64> {
    match n {
        NameOrNumber::Number(v) => Ok(*v),
        NameOrNumber::Name(s) => {
            if let Some(hex) = s.strip_prefix("0x") {
                return Ok(u64::from_str_radix(&hex.replace('_', ""), 16)?);
            }
            match tdx_abi::status::KNOWN
                .iter()
                .find(|(_, name, _)| name.eq_ignore_ascii_case(s))
            {
                Some((st, _, _)) => Ok(st.0),
                None => {
                    let hint = tdx_abi::status::KNOWN
                        .iter()
                        .map(|(_, k, _)| (strsim::jaro_winkler(s, k), k))
                        .filter(|(sc, _)| *sc > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    bail!("kernel.tdx.faults: unknown TDX status `{s}`{hint}")
                }
            }
        }
    }
}

/// Largest `keyid-bits`: IA32_TME_ACTIVATE[35:32] is four bits wide.
const MAX_KEYID_BITS: u8 = 15;
/// Largest PAMT entry size: an entry describes one 4 KiB page.
const MAX_PAMT_ENTRY_SIZE: u16 = 4096;
/// Fault-injection rules the emulated module holds.
const MAX_FAULT_RULES: usize = 16;

fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
    why: &str,
) -> Result<()> {
    if v < lo || v > hi {
        bail!("kernel.tdx.{key} = {v} is out of range {lo}..={hi} ({why})");
    }
    Ok(())
}

impl TdxSettings {
    /// Range-checks every number; the error names the key and its allowed range.
    pub fn check(&self) -> Result<()> {
        in_range(
            "keyid-bits",
            self.keyid_bits,
            0,
            MAX_KEYID_BITS,
            "IA32_TME_ACTIVATE[35:32] is a 4-bit field",
        )?;
        let keyids = u64::from(self.mktme_keyids) + u64::from(self.tdx_keyids);
        let room = 1u64 << self.keyid_bits; // keyid_bits <= 15 here
        if keyids >= room {
            bail!(
                "kernel.tdx.mktme-keyids = {} plus kernel.tdx.tdx-keyids = {} is {keyids} KeyIDs, \
                 which do not fit in kernel.tdx.keyid-bits = {} (at most {} besides KeyID 0)",
                self.mktme_keyids,
                self.tdx_keyids,
                self.keyid_bits,
                room - 1
            );
        }
        in_range(
            "max-tdmrs",
            self.max_tdmrs,
            1,
            tdx_abi::MAX_TDMRS as u16,
            "the module's TDMR table",
        )?;
        in_range(
            "max-reserved-per-tdmr",
            self.max_reserved_per_tdmr,
            1,
            tdx_abi::MAX_RESERVED_PER_TDMR as u16,
            "a TDMR_INFO has 16 reserved-area slots",
        )?;
        in_range(
            "pamt-entry-size",
            self.pamt_entry_size,
            1,
            MAX_PAMT_ENTRY_SIZE,
            "one entry describes one 4 KiB page",
        )?;
        if self.faults.len() > MAX_FAULT_RULES {
            bail!(
                "kernel.tdx.faults: {} rules; the module holds at most {MAX_FAULT_RULES}",
                self.faults.len()
            );
        }
        for (i, f) in self.faults.iter().enumerate() {
            leaf(&f.leaf)?;
            match (&f.status, f.kill) {
                (Some(s), None) => {
                    status(s)?;
                }
                (None, Some(_)) => {}
                (Some(_), Some(_)) => bail!(
                    "kernel.tdx.faults[{i}]: `status` and `kill` together; a rule either makes the module answer a status or kills the caller"
                ),
                (None, None) => bail!(
                    "kernel.tdx.faults[{i}]: needs `status = \"NAME\"` (the module answers it) or `kill = \"before\" | \"after\"` (the kernel kills the caller)"
                ),
            }
            // Both count from 1; the emulator would silently read 0 as "from the start"/"once".
            if f.on_call == Some(0) {
                bail!("kernel.tdx.faults[{i}].on-call = 0 is out of range 1..=4294967295 (calls count from 1)");
            }
            if f.repeat == 0 {
                bail!("kernel.tdx.faults[{i}].repeat = 0 is out of range 1..=4294967295 (4294967295 = forever)");
            }
        }
        Ok(())
    }

    /// Checks ([`TdxSettings::check`]) and resolves names.
    pub fn resolve(&self) -> Result<TdxConfig> {
        self.check()?;
        if self.tdx_keyids < 2 && !self.absent {
            // Allowed (tdx-host must then refuse), but say what it means.
            eprintln!(
                "xtask: note: kernel.tdx.tdx-keyids = {} (< 2): tdx-host will refuse to initialize",
                self.tdx_keyids
            );
        }
        let mut faults = vec![];
        for f in &self.faults {
            faults.push(FaultRuleDesc {
                leaf: leaf(&f.leaf)?,
                status: f.status.as_ref().map(status).transpose()?.unwrap_or(0),
                on_call: f.on_call,
                on_cpu: f.on_cpu,
                repeat: f.repeat,
                kill: f.kill,
            });
        }
        Ok(TdxConfig {
            backend: self.backend,
            keyid_bits: self.keyid_bits,
            mktme_keyids: self.mktme_keyids,
            tdx_keyids: self.tdx_keyids,
            max_tdmrs: self.max_tdmrs,
            max_reserved_per_tdmr: self.max_reserved_per_tdmr,
            pamt_entry_size: self.pamt_entry_size,
            features0: self.features0,
            absent: self.absent,
            faults,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{leaf, status, NameOrNumber};

    #[test]
    fn names_resolve_and_typos_are_explained() {
        assert_eq!(
            leaf(&NameOrNumber::Name("TDH.SYS.LP.INIT".into())).unwrap(),
            35
        );
        let e = leaf(&NameOrNumber::Name("TDH.SYS.LP.INT".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `TDH.SYS.LP.INIT`"), "{e}");
        assert_eq!(
            status(&NameOrNumber::Name("TDX_SYS_BUSY".into())).unwrap(),
            0x8000_0202_0000_0000
        );
        assert!(status(&NameOrNumber::Name("TDX_SYS_BSY".into()))
            .unwrap_err()
            .to_string()
            .contains("TDX_SYS_BUSY"));
        assert_eq!(
            status(&NameOrNumber::Name("0x8000_0000_0000_0001".into())).unwrap(),
            0x8000_0000_0000_0001
        );
    }
}
