//! A software Intel TDX module at the host-facing SEAMCALL boundary.
//!
//! Pattern: a deterministic, heap-free state machine ([`TdxModule`]) driven one SEAMCALL at a
//! time ([`TdxModule::seamcall`]) on a named LP, reading and writing host memory only through
//! [`PhysMem`], as the real module does. It implements the global and per-LP init state machine,
//! TDH.SYS.INIT / LP.INIT / RD / RDALL / INFO / CONFIG (every §6 rule, in order, with §4.1 detail
//! bytes) / KEY.CONFIG / TDMR.INIT / SHUTDOWN, a PAMT model, the PHYMEM page and cache leaves,
//! the host-side TD life-cycle leaves (§9.4: MNG.*, VP.*, MEM.*, MR.FINALIZE, with a KOT and
//! bounded TD, vCPU and secure-EPT tables), deterministic fault injection and forced lock
//! contention — checklist items 1–20, 24 and 26 of §10 in `docs/tdx-module.md` (every § in
//! this crate refers to that file). Every init leaf answers a
//! repeated or out-of-order call in every state as 1.5.01 does, without changing state when the
//! module would not (§3.4, §10 item 27), so a host's re-attach logic can be tested against it.
//!
//! Module map: [`config`] (platform inputs, fault rules), `module` (state, dispatcher),
//! `validate` (pure §6 checks), `leaves_sys`, `leaves_phymem`, `leaves_td_mng`, `leaves_td_vp`,
//! `leaves_td_mem` (TD leaves), `td_checks` (their shared operand checks), `td_table` (TDs,
//! vCPUs, S-EPT entries), `kot` (KeyID ownership), `pamt` (PAMT model), `metadata` (SYS.RD
//! table), `fault` (injection/contention), [`physmem`] (memory access).
//!
//! Invariants: no `unsafe`, no heap, no panics on host input (all arithmetic on register and
//! memory values is checked or saturating); identical call sequences give identical results.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod fault;
mod kot;
mod leaves_phymem;
mod leaves_sys;
mod leaves_td_mem;
mod leaves_td_mng;
mod leaves_td_vp;
mod metadata;
mod module;
mod pamt;
pub mod physmem;
mod td_checks;
mod td_table;
mod validate;

pub use config::{
    ConfigError, EmuConfig, FaultRule, KeyIdConfig, ModuleLimits, ModuleVersion, SeamcallFault,
    SeamrrRange, MAX_FAULT_RULES, MAX_LPS, MAX_PACKAGES,
};
pub use fault::Contention;
pub use leaves_phymem::EmuError;
pub use module::{HostBug, InstructionOutcome, SysState, TdxModule, MAX_HOST_BUGS};
pub use pamt::{PamtEntry, MAX_PAGE_RECORDS};
pub use physmem::{NoMem, PhysMem, PhysMemError, SliceMem};
pub use td_table::{MAX_SEPT_ENTRIES, MAX_TDS, MAX_VCPUS};

use tdx_abi::{Leaf, OperandId, SeamcallArgs, TdmrInfo, TdxStatus, MAX_TDMRS, TDMR_INFO_SIZE};

/// Scratch memory for [`check_config`]: a 512-byte PA array followed by 64 × 512-byte TDMR_INFOs.
const SCRATCH_BYTES: usize = 512 + MAX_TDMRS * TDMR_INFO_SIZE;

/// Run exactly the TDH.SYS.CONFIG validation for `tdmrs` and `global_keyid` on the platform in
/// `config`, through the real leaf path: build a module (faults and absence switched off), run
/// SYS.INIT and LP.INIT on every LP, lay the TDMR_INFOs and PA array into scratch memory at a
/// valid shared HPA, and call SYS.CONFIG.
///
/// Returns the SYS.CONFIG status (TDX_SUCCESS if the module would accept the configuration), or
/// the SYS.INIT status if the platform itself is rejected (e.g. TDX_CMR_LIST_INVALID). An empty
/// slice or more than 64 TDMRs gives OPERAND_INVALID|RDX, as SYS.CONFIG would for that count.
/// An `EmuConfig` the emulator cannot represent gives TDX_SYS_STATE_INCORRECT.
#[must_use]
pub fn check_config(config: &EmuConfig, tdmrs: &[TdmrInfo], global_keyid: u16) -> TdxStatus {
    if tdmrs.is_empty() || tdmrs.len() > MAX_TDMRS {
        return TdxStatus::OPERAND_INVALID.with_operand(OperandId::RDX);
    }
    let mut cfg = config.clone();
    cfg.faults = [None; MAX_FAULT_RULES];
    cfg.module_absent = false;
    cfg.seamcall_fault = None;
    let Ok(mut m) = TdxModule::new(cfg) else {
        return TdxStatus::SYS_STATE_INCORRECT;
    };
    // Scratch placement: PA 0 unless SEAMRR covers it, then just above SEAMRR (both 512-aligned).
    let base = if m.config().seamrr.overlaps(0, SCRATCH_BYTES as u64) {
        let s = m.config().seamrr;
        (s.base + s.size).next_multiple_of(512)
    } else {
        0
    };
    let mut bytes = [0u8; SCRATCH_BYTES];
    for (i, t) in tdmrs.iter().enumerate() {
        let pa = base + 512 + (i * TDMR_INFO_SIZE) as u64;
        bytes[8 * i..8 * i + 8].copy_from_slice(&pa.to_le_bytes());
        let at = 512 + i * TDMR_INFO_SIZE;
        bytes[at..at + tdx_abi::TDMR_INFO_READ_BYTES].copy_from_slice(&t.to_bytes());
    }
    let mut mem = SliceMem {
        base,
        bytes: &mut bytes,
    };
    let call = |m: &mut TdxModule, lp: u32, a: SeamcallArgs, mem: &mut SliceMem<'_>| {
        m.seamcall(lp, &a, mem).host_status()
    };
    let s = call(&mut m, 0, SeamcallArgs::leaf(Leaf::SysInit), &mut mem);
    if !s.is_success() {
        return s;
    }
    for lp in 0..m.config().num_lps {
        let s = call(&mut m, lp, SeamcallArgs::leaf(Leaf::SysLpInit), &mut mem);
        if !s.is_success() {
            return s;
        }
    }
    let args = SeamcallArgs::leaf(Leaf::SysConfig)
        .rcx(base)
        .rdx(tdmrs.len() as u64)
        .r8(u64::from(global_keyid));
    call(&mut m, 0, args, &mut mem)
}
