//! vCPU leaves: TDH.VP.CREATE, VP.ADDCX, VP.INIT and VP.FLUSH (§9.2, §9.4, §10 item 24).
//!
//! Pattern: as in `leaves_td_mng` — `lp_gate`, checks in the 1.5.01 handler's order
//! (`tdh_vp_*.c`), the fault-injection point, then the side effects. VP.ADDCX, VP.INIT and
//! VP.FLUSH name the vCPU by its TDVPR page and find the TD through that page's PAMT owner
//! (the "implicit TDR", busy → OPERAND_BUSY naming TDR).
//!
//! Invariants: a vCPU has 1..=15 TDVPS pages and is READY only after VP.INIT, which associates
//! it with the calling LP; `TdRecord::num_assoc` counts associated vCPUs and only VP.INIT
//! (up) and VP.FLUSH (down) change it. No execution (TDH.VP.ENTER) is modelled.

use crate::leaves_td_mng::done;
use crate::module::{Call, TdxModule};
use crate::td_table::{TdRecord, VcpuRecord};
use tdx_abi::td::{MAX_TDVPS_PAGES, MIN_TDVPS_PAGES};
use tdx_abi::{OperandId, PageSize, PageType, TdLifecycle, TdxStatus};

impl TdxModule {
    /// The TDVPR page operand `pa` (named `op`), its vCPU record and its TD.
    fn tdvpr_operand(&self, pa: u64, op: OperandId) -> Result<(VcpuRecord, TdRecord), TdxStatus> {
        self.check_page(pa, op, PageSize::Size4K, PageType::Tdvpr)?;
        let td = self.implicit_tdr(self.owner_of(pa))?;
        let v = self
            .tds
            .vcpus
            .iter()
            .flatten()
            .find(|v| v.tdvpr == pa)
            .copied()
            .ok_or(TdxStatus::PAGE_METADATA_INCORRECT.with_operand(op))?;
        Ok((v, td))
    }

    /// TDVPS pages a vCPU of `td` needs before VP.INIT (and before VP.FLUSH can map it).
    fn tdvps_pages_needed(td: &TdRecord) -> u32 {
        u32::from(MIN_TDVPS_PAGES) + 3 * u32::from(td.num_l2_vms)
    }

    /// TDH.VP.CREATE (RCX = TDVPR page PA, RDX = TDR PA).
    pub(crate) fn vp_create(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.vp_create_inner(cx))
    }

    fn vp_create_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let (page, tdr) = (cx.args.rcx, cx.args.rdx);
        let td = self.check_tdr(tdr, OperandId::RDX)?;
        Self::td_build_state(&td, cx.leaf)?;
        self.check_page(page, OperandId::RCX, PageSize::Size4K, PageType::Nda)?;
        self.page_room()?;
        if !self.tds.has_room_for_vcpu() {
            return Err(TdxStatus::EMU_CAPACITY_EXCEEDED);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        self.give_page(tdr, page, PageSize::Size4K, PageType::Tdvpr);
        self.tds.insert_vcpu(VcpuRecord {
            tdvpr: page,
            tdr,
            pages: 1,
            ready: false,
            assoc_lp: None,
        });
        Ok(())
    }

    /// TDH.VP.ADDCX (RCX = TDCX page PA, RDX = TDVPR PA).
    pub(crate) fn vp_addcx(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.vp_addcx_inner(cx))
    }

    fn vp_addcx_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let (page, tdvpr) = (cx.args.rcx, cx.args.rdx);
        let (v, td) = self.tdvpr_operand(tdvpr, OperandId::RDX)?;
        Self::td_build_state(&td, cx.leaf)?;
        if v.ready {
            return Err(TdxStatus::VCPU_STATE_INCORRECT);
        }
        if v.pages >= MAX_TDVPS_PAGES {
            return Err(TdxStatus::TDCX_NUM_INCORRECT);
        }
        self.check_page(page, OperandId::RCX, PageSize::Size4K, PageType::Nda)?;
        self.page_room()?;
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        self.give_page(td.tdr, page, PageSize::Size4K, PageType::Tdcx);
        if let Some(v) = self.tds.vcpu(tdvpr) {
            v.pages += 1;
        }
        Ok(())
    }

    /// TDH.VP.INIT (RCX = TDVPR PA, RDX = initial guest RCX): the vCPU becomes READY and
    /// associated with the calling LP.
    pub(crate) fn vp_init(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.vp_init_inner(cx))
    }

    fn vp_init_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let tdvpr = cx.args.rcx;
        let (v, td) = self.tdvpr_operand(tdvpr, OperandId::RCX)?;
        Self::td_build_state(&td, cx.leaf)?;
        if u32::from(v.pages) < Self::tdvps_pages_needed(&td) {
            return Err(TdxStatus::TDCX_NUM_INCORRECT);
        }
        if v.ready {
            return Err(TdxStatus::VCPU_STATE_INCORRECT);
        }
        if td.num_vcpus >= u32::from(td.max_vcpus) {
            return Err(TdxStatus::MAX_VCPUS_EXCEEDED);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        if let Some(v) = self.tds.vcpu(tdvpr) {
            v.ready = true;
            v.assoc_lp = Some(cx.lp);
        }
        if let Some(td) = self.tds.find(td.tdr) {
            td.num_vcpus = td.num_vcpus.saturating_add(1);
            td.num_assoc = td.num_assoc.saturating_add(1);
        }
        Ok(())
    }

    /// TDH.VP.FLUSH (RCX = TDVPR PA), on the LP the vCPU is associated with.
    pub(crate) fn vp_flush(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.vp_flush_inner(cx))
    }

    fn vp_flush_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let tdvpr = cx.args.rcx;
        let (v, td) = self.tdvpr_operand(tdvpr, OperandId::RCX)?;
        if td.lifecycle != TdLifecycle::KeysConfigured {
            return Err(TdxStatus::TD_KEYS_NOT_CONFIGURED);
        }
        if u32::from(v.pages) < Self::tdvps_pages_needed(&td) {
            return Err(TdxStatus::TDCX_NUM_INCORRECT);
        }
        // Never associated, already flushed, or associated with another LP.
        if v.assoc_lp != Some(cx.lp) {
            return Err(TdxStatus::VCPU_NOT_ASSOCIATED);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        if let Some(v) = self.tds.vcpu(tdvpr) {
            v.assoc_lp = None;
        }
        if let Some(td) = self.tds.find(td.tdr) {
            td.num_assoc = td.num_assoc.saturating_sub(1);
        }
        Ok(())
    }
}
