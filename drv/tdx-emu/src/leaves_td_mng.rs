//! TD management leaves: TDH.MNG.CREATE, KEY.CONFIG, ADDCX, INIT, VPFLUSHDONE and KEY.FREEID
//! (§9.2, §9.4, §10 item 24).
//!
//! Pattern: each leaf is `lp_gate`, then an inner function returning `Result<(), TdxStatus>`
//! that checks its operands in the order of the 1.5.01 handler (`tdh_mng_*.c`), asks the fault
//! table at its injection point (after every check, before any side effect), and only then
//! changes state. TD_PARAMS validation is the pure function [`check_td_params`].
//!
//! Invariants:
//! - Life cycle only moves HKID_ASSIGNED → KEYS_CONFIGURED → BLOCKED → TEARDOWN (VPFLUSHDONE
//!   may also start from HKID_ASSIGNED), and the KOT entry moves with it (`kot`).
//! - A refused call, including an injected failure, changes nothing.

use crate::module::{Call, HostBug, TdxModule};
use crate::td_checks::with;
use crate::td_table::TdRecord;
use tdx_abi::td::{
    td_params_offset as o, ATTR_DEBUG, ATTR_MIGRATABLE, ATTR_PERFMON, CONFIG_FLAGS_DEFINED,
    MAX_L2_VMS, MAX_TDCS_PAGES, MIN_TDCS_PAGES, TD_PARAMS_ALIGNMENT, TD_PARAMS_SIZE,
    TSC_FREQUENCY_MAX, TSC_FREQUENCY_MIN, XFAM_REQUIRED,
};
use tdx_abi::{OperandId, PageSize, PageType, TdLifecycle, TdOpState, TdxStatus};

/// Turn an inner result into the leaf's status.
pub(crate) fn done(r: Result<(), TdxStatus>) -> TdxStatus {
    r.err().unwrap_or(TdxStatus::SUCCESS)
}

fn u64_at(b: &[u8; TD_PARAMS_SIZE], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u16_at(b: &[u8; TD_PARAMS_SIZE], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// The TD_PARAMS values TDH.MNG.INIT keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TdConfig {
    pub(crate) max_vcpus: u16,
    pub(crate) num_l2_vms: u8,
}

/// XFAM combinations the module refuses: AVX-512 state (bits 5–7) all or none and only with
/// AVX (bit 2); CET user/supervisor (bits 11, 12) together; AMX (bits 17, 18) together.
fn xfam_combination_ok(x: u64) -> bool {
    let bit = |n: u32| x >> n & 1;
    let avx512 = bit(5);
    !(avx512 == 1 && bit(2) == 0)
        && bit(6) == avx512
        && bit(7) == avx512
        && bit(11) == bit(12)
        && bit(17) == bit(18)
}

/// TD_PARAMS checks of TDH.MNG.INIT in the module's order (`read_and_set_td_configurations`,
/// then the CPUID area). `fixed` is ATTRIBUTES_FIXED0/1, XFAM_FIXED0/1 as SYS.RD reports them;
/// `num_tdcx` the TDCS pages added so far. The emulated module lists no configurable CPUID
/// leaves, so every byte from offset 256 on is reserved.
pub(crate) fn check_td_params(
    b: &[u8; TD_PARAMS_SIZE],
    fixed: [u64; 4],
    num_tdcx: u8,
) -> Result<TdConfig, TdxStatus> {
    let invalid = |op| Err(with(TdxStatus::OPERAND_INVALID, op));
    let attributes = u64_at(b, o::ATTRIBUTES);
    if attributes & !fixed[0] != 0
        || attributes & fixed[1] != fixed[1]
        || (attributes & ATTR_MIGRATABLE != 0 && attributes & (ATTR_DEBUG | ATTR_PERFMON) != 0)
    {
        return invalid(OperandId::ATTRIBUTES);
    }
    let xfam = u64_at(b, o::XFAM);
    if xfam & !fixed[2] != 0
        || xfam & (fixed[3] | XFAM_REQUIRED) != (fixed[3] | XFAM_REQUIRED)
        || !xfam_combination_ok(xfam)
    {
        return invalid(OperandId::XFAM);
    }
    let max_vcpus = u16_at(b, o::MAX_VCPUS);
    if max_vcpus == 0 {
        return invalid(OperandId::MAX_VCPUS);
    }
    let num_l2_vms = b[o::NUM_L2_VMS];
    if num_l2_vms > MAX_L2_VMS {
        return invalid(OperandId::NUM_L2_VMS);
    }
    if u32::from(num_tdcx) < u32::from(MIN_TDCS_PAGES) + u32::from(num_l2_vms) {
        return Err(TdxStatus::TDCS_NOT_ALLOCATED);
    }
    if !zero(&b[o::RESERVED0..o::EPTP_CONTROLS]) {
        return invalid(OperandId::RDX);
    }
    let config_flags = u64_at(b, o::CONFIG_FLAGS);
    if config_flags & !CONFIG_FLAGS_DEFINED != 0 {
        return invalid(OperandId::EXEC_CONTROLS);
    }
    // EPTP_CONTROLS: write-back, 4-level walk (the emulated platform has no 5-level EPT), no
    // A/D or supervisor-shadow-stack bits, reserved and address bits zero; GPAW 52 (CONFIG_FLAGS
    // bit 0) needs a 5-level walk and so is always refused here.
    let eptp = u64_at(b, o::EPTP_CONTROLS);
    if eptp != tdx_abi::td::EPTP_4LEVEL_WB || config_flags & 1 != 0 {
        return invalid(OperandId::EPTP_CONTROLS);
    }
    let tsc = u16_at(b, o::TSC_FREQUENCY);
    if !(TSC_FREQUENCY_MIN..=TSC_FREQUENCY_MAX).contains(&tsc) {
        return invalid(OperandId::TSC_FREQUENCY);
    }
    if !zero(&b[o::RESERVED1..o::MEASUREMENTS]) || b[o::MSR_CONFIG_CTLS] & 0xFE != 0 {
        return invalid(OperandId::RDX);
    }
    if !zero(&b[o::RESERVED2..o::CPUID_CONFIG]) || !zero(&b[o::CPUID_CONFIG..]) {
        return invalid(OperandId::RDX);
    }
    Ok(TdConfig {
        max_vcpus,
        num_l2_vms,
    })
}

impl TdxModule {
    /// TDH.MNG.CREATE (RCX = TDR PA, RDX = HKID).
    pub(crate) fn mng_create(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mng_create_inner(cx))
    }

    fn mng_create_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let (tdr, raw_hkid) = (cx.args.rcx, cx.args.rdx);
        let hkid = (raw_hkid & 0xFFFF) as u16;
        if raw_hkid >> 16 != 0 || !self.is_private_hkid(u64::from(hkid)) {
            return Err(with(TdxStatus::OPERAND_INVALID, OperandId::RDX));
        }
        self.check_page(tdr, OperandId::RCX, PageSize::Size4K, PageType::Nda)?;
        // The global KeyID is RESERVED, an in-use KeyID ASSIGNED or FLUSHED: none is free.
        if self.kot.state(hkid) != Some(tdx_abi::KotState::HkidFree) {
            return Err(TdxStatus::HKID_NOT_FREE);
        }
        if !self.tds.has_room_for_td() {
            return Err(TdxStatus::EMU_CAPACITY_EXCEEDED);
        }
        self.page_room()?;
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        self.kot.assign(hkid);
        self.tds.insert(TdRecord::new(tdr, hkid));
        // The TDR does not count itself, and its PAMT owner is 0 (`tdh_mng_create.c`).
        self.pamt.insert(crate::pamt::PageRecord {
            pa: tdr,
            size: PageSize::Size4K,
            page_type: PageType::Tdr,
            owner: 0,
        });
        Ok(())
    }

    /// TDH.MNG.KEY.CONFIG (RCX = TDR PA), once on each package.
    pub(crate) fn mng_key_config(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mng_key_config_inner(cx))
    }

    fn mng_key_config_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let tdr = cx.args.rcx;
        let td = self.check_tdr(tdr, OperandId::RCX)?;
        if td.lifecycle != TdLifecycle::HkidAssigned {
            return Err(TdxStatus::LIFECYCLE_STATE_INCORRECT);
        }
        let bit = 1u8 << self.package_of(cx.lp);
        if td.pkg_config & bit != 0 {
            return Err(TdxStatus::KEY_CONFIGURED);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        let all = self.all_packages_mask();
        if let Some(td) = self.tds.find(tdr) {
            td.pkg_config |= bit;
            if td.pkg_config == all {
                td.lifecycle = TdLifecycle::KeysConfigured;
            }
        }
        Ok(())
    }

    /// TDH.MNG.ADDCX (RCX = TDCX page PA, RDX = TDR PA).
    pub(crate) fn mng_addcx(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mng_addcx_inner(cx))
    }

    fn mng_addcx_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let (page, tdr) = (cx.args.rcx, cx.args.rdx);
        let td = self.check_tdr(tdr, OperandId::RDX)?;
        if td.lifecycle != TdLifecycle::KeysConfigured {
            return Err(TdxStatus::TD_KEYS_NOT_CONFIGURED);
        }
        if td.num_tdcx >= MAX_TDCS_PAGES {
            return Err(TdxStatus::TDCX_NUM_INCORRECT);
        }
        self.check_page(page, OperandId::RCX, PageSize::Size4K, PageType::Nda)?;
        // The op state lives in the TDCS, so it is only checked once the TDCS exists.
        if td.num_tdcx >= MIN_TDCS_PAGES && td.op_state != TdOpState::Uninitialized {
            return Err(TdxStatus::OP_STATE_INCORRECT);
        }
        self.page_room()?;
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        self.give_page(tdr, page, PageSize::Size4K, PageType::Tdcx);
        if let Some(td) = self.tds.find(tdr) {
            td.num_tdcx += 1;
        }
        Ok(())
    }

    /// TDH.MNG.INIT (RCX = TDR PA, RDX = TD_PARAMS PA). RCX is cleared at entry.
    pub(crate) fn mng_init(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        cx.out.rcx = 0;
        done(self.mng_init_inner(cx))
    }

    fn mng_init_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let (tdr, params_pa) = (cx.args.rcx, cx.args.rdx);
        let td = self.check_tdr(tdr, OperandId::RCX)?;
        Self::td_build_state(&td, cx.leaf)?;
        // TD_PARAMS is read as shared memory: 1024-aligned, below MAX_PA, outside SEAMRR, with a
        // shared (non-private) KeyID.
        if !self.is_shared_hpa(params_pa, TD_PARAMS_ALIGNMENT) {
            return Err(with(TdxStatus::OPERAND_INVALID, OperandId::RDX));
        }
        let mut b = [0u8; TD_PARAMS_SIZE];
        let at = self.strip_hkid(params_pa);
        if cx.mem.read(at, &mut b).is_err() {
            self.record_bug(HostBug::MemRead(at));
            return Err(with(TdxStatus::OPERAND_INVALID, OperandId::RDX));
        }
        let c = check_td_params(&b, self.cfg.td_fixed, td.num_tdcx)?;
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        if let Some(td) = self.tds.find(tdr) {
            td.op_state = TdOpState::Initialized;
            td.max_vcpus = c.max_vcpus;
            td.num_l2_vms = c.num_l2_vms;
        }
        Ok(())
    }

    /// TDH.MNG.VPFLUSHDONE (RCX = TDR PA): every vCPU flushed → TD BLOCKED, KeyID FLUSHED and
    /// owing a CACHE.WB on every package.
    pub(crate) fn mng_vpflushdone(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mng_vpflushdone_inner(cx))
    }

    fn mng_vpflushdone_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let tdr = cx.args.rcx;
        let td = self.check_tdr(tdr, OperandId::RCX)?;
        if !matches!(
            td.lifecycle,
            TdLifecycle::HkidAssigned | TdLifecycle::KeysConfigured
        ) {
            return Err(TdxStatus::LIFECYCLE_STATE_INCORRECT);
        }
        if td.num_tdcx >= MIN_TDCS_PAGES
            && td.op_state != TdOpState::Uninitialized
            && td.num_assoc != 0
        {
            return Err(TdxStatus::FLUSHVP_NOT_DONE);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        let all = self.all_packages_mask();
        self.kot.flush(td.hkid, all);
        if let Some(td) = self.tds.find(tdr) {
            td.lifecycle = TdLifecycle::Blocked;
        }
        Ok(())
    }

    /// TDH.MNG.KEY.FREEID (RCX = TDR PA): BLOCKED and written back everywhere → KeyID FREE,
    /// TD in TEARDOWN.
    pub(crate) fn mng_key_freeid(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mng_key_freeid_inner(cx))
    }

    fn mng_key_freeid_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let tdr = cx.args.rcx;
        let td = self.check_tdr(tdr, OperandId::RCX)?;
        if td.lifecycle != TdLifecycle::Blocked {
            return Err(TdxStatus::LIFECYCLE_STATE_INCORRECT);
        }
        if self.kot.needs_wb(td.hkid) != 0 {
            return Err(TdxStatus::WBCACHE_NOT_COMPLETE);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        self.kot.free(td.hkid);
        if let Some(td) = self.tds.find(tdr) {
            td.lifecycle = TdLifecycle::Teardown;
        }
        Ok(())
    }
}
