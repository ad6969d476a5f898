//! TDH.PHYMEM.* leaves over the PAMT model, plus the debug hooks that stand in for TD-side leaves
//! (§2.3, §9.2, §10 item 20).
//!
//! Pattern: every page leaf resolves its PA in the order the module does — operand shape
//! (4 KiB-aligned, below MAX_PA, HKID 0 → OPERAND_INVALID|RCX), then "PAMT block" (inside a
//! configured TDMR, in a 1 GiB block TDMR.INIT finished → OPERAND_ADDR_RANGE_ERROR|RCX), then the
//! PAMT entry lock (OPERAND_BUSY|RCX), then the page type.
//!
//! Pages become owned through the TD leaves (`leaves_td_*`) or, for tests that need ownership
//! without building a TD, through the `debug_*` hooks, which enforce the same "must be PT_NDA,
//! inside initialized TDMR memory" rule. RECLAIM follows the TD table's life-cycle state
//! (TEARDOWN only), lowers the TDR child count and takes the TDR last (§9.2).

use crate::module::{Call, TdxModule};
use crate::pamt::{PageRecord, PamtEntry};
use crate::td_table::TdRecord;
use tdx_abi::consts::PAGE_SIZE_4K;
use tdx_abi::{KotState, OperandId, PageSize, PageType, TdLifecycle, TdOpState, TdxStatus};

/// Why a debug hook refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmuError {
    /// The PA is not aligned to the page size or has HKID bits.
    Misaligned,
    /// Not inside a configured TDMR, or in a 1 GiB block TDMR.INIT has not finished.
    NotUsable,
    /// Some page in the range is not PT_NDA.
    NotFree,
    /// A fixed-capacity table is full.
    TableFull,
    /// No TD with this TDR.
    NoSuchTd,
    /// HKID out of range.
    BadHkid,
}

fn op_invalid() -> TdxStatus {
    TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX)
}

impl TdxModule {
    /// The TDMR holding `pa` if `pa` is in initialized memory (module `pamt_get_block`).
    pub(crate) fn pamt_block(&self, pa: u64) -> Result<usize, TdxStatus> {
        self.pamt_block_op(pa, OperandId::RCX)
    }

    pub(crate) fn in_reserved(&self, idx: usize, pa: u64, len: u64) -> bool {
        let t = &self.tdmrs[idx];
        t.reserved
            .iter()
            .take_while(|r| r.size != 0)
            .any(|r| crate::validate::overlaps(pa, len, t.base + r.offset, r.size))
    }

    /// PAMT walk result for `pa` (which must be in a usable block of TDMR `idx`).
    pub(crate) fn walk(&self, idx: usize, pa: u64) -> PamtEntry {
        if let Some((_, r)) = self.pamt.find(pa) {
            return PamtEntry {
                page_type: r.page_type,
                owner: r.owner,
                size: r.size,
                bepoch: 0,
            };
        }
        let page_type = if self.in_reserved(idx, pa, PAGE_SIZE_4K) {
            PageType::Rsvd
        } else {
            PageType::Nda
        };
        PamtEntry {
            page_type,
            owner: 0,
            size: PageSize::Size4K,
            bepoch: 0,
        }
    }

    /// Public view of the PAMT model: the entry for `pa`, or the status a page leaf would return.
    pub fn pamt_entry(&self, pa: u64) -> Result<PamtEntry, TdxStatus> {
        if !pa.is_multiple_of(PAGE_SIZE_4K) || pa >= self.pa_limit() {
            return Err(op_invalid());
        }
        let idx = self.pamt_block(pa)?;
        Ok(self.walk(idx, pa))
    }

    fn page_shape_ok(&self, pa: u64) -> bool {
        pa.is_multiple_of(PAGE_SIZE_4K) && pa < self.pa_limit()
    }

    fn page_held(&self, pa: u64) -> bool {
        self.holds.pages.contains(&Some(pa & !(PAGE_SIZE_4K - 1)))
    }

    /// TDH.PHYMEM.PAGE.RDMD (§2.3): RCX = type, RDX = owner, R8 = size, R9 = BEPOCH. Like
    /// `tdh_phymem_page_rdmd.c` it clears RCX, RDX and R8–R11 at entry, on every path.
    pub(crate) fn phymem_page_rdmd(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        let o = &mut *cx.out;
        (o.rcx, o.rdx, o.r8, o.r9, o.r10, o.r11) = (0, 0, 0, 0, 0, 0);
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let pa = cx.args.rcx;
        if !self.page_shape_ok(pa) {
            return op_invalid();
        }
        let idx = match self.pamt_block(pa) {
            Ok(i) => i,
            Err(s) => return s,
        };
        if self.page_held(pa) {
            return TdxStatus::OPERAND_BUSY.with_operand(OperandId::RCX);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        let e = self.walk(idx, pa);
        let o = &mut *cx.out;
        (o.rcx, o.rdx, o.r8, o.r9) = (e.page_type as u64, e.owner, e.size as u64, e.bepoch);
        TdxStatus::SUCCESS
    }

    /// TDH.PHYMEM.PAGE.RECLAIM (§2.3, §9.2): only TEARDOWN TDs, child counts, TDR last.
    pub(crate) fn phymem_page_reclaim(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        let o = &mut *cx.out;
        (o.rcx, o.rdx, o.r8, o.r9, o.r10, o.r11) = (0, 0, 0, 0, 0, 0);
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let pa = cx.args.rcx;
        if !self.page_shape_ok(pa) {
            return op_invalid();
        }
        if let Err(s) = self.pamt_block(pa) {
            return s;
        }
        if self.page_held(pa) {
            return TdxStatus::OPERAND_BUSY.with_operand(OperandId::RCX);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        let Some((slot, rec)) = self.pamt.find(pa) else {
            // PT_NDA and PT_RSVD pages cannot be reclaimed.
            return TdxStatus::PAGE_METADATA_INCORRECT.with_operand(OperandId::RCX);
        };
        let o = &mut *cx.out;
        (o.rcx, o.rdx, o.r8) = (rec.page_type as u64, rec.owner, rec.size as u64);
        if !pa.is_multiple_of(rec.size.bytes()) {
            return op_invalid();
        }
        if rec.page_type == PageType::Tdr {
            // The TDR's own PAMT owner is 0; the TD is the one whose TDR this is.
            let Some(td) = self.tds.get(rec.pa) else {
                return TdxStatus::PAGE_METADATA_INCORRECT.with_operand(OperandId::TDR);
            };
            if td.lifecycle != TdLifecycle::Teardown {
                return TdxStatus::LIFECYCLE_STATE_INCORRECT;
            }
            if td.child_count != 0 {
                return TdxStatus::TD_ASSOCIATED_PAGES_EXIST;
            }
            self.tds.remove(rec.pa);
        } else {
            let td = match self.implicit_tdr(rec.owner) {
                Ok(td) => td,
                Err(s) => return s,
            };
            if td.lifecycle != TdLifecycle::Teardown {
                return TdxStatus::LIFECYCLE_STATE_INCORRECT;
            }
            if let Some(td) = self.tds.find(rec.owner) {
                td.child_count = td
                    .child_count
                    .saturating_sub(crate::td_checks::child_pages(rec.size));
            }
            self.tds.forget_page(rec.owner, rec.pa);
        }
        self.pamt.remove(slot);
        TdxStatus::SUCCESS
    }

    /// TDH.PHYMEM.PAGE.WBINVD (§2.3): RCX = page PA tagged with a private KeyID.
    pub(crate) fn phymem_page_wbinvd(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let pa = cx.args.rcx;
        if !pa.is_multiple_of(PAGE_SIZE_4K)
            || pa >> self.cfg.max_pa != 0
            || !self.is_private_hkid(self.hkid_of(pa))
        {
            return op_invalid();
        }
        if let Err(s) = self.pamt_block(self.strip_hkid(pa)) {
            return s;
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        TdxStatus::SUCCESS
    }

    /// TDH.PHYMEM.CACHE.WB (§8.3): per package, FLUSHED HKIDs only, resumable.
    pub(crate) fn phymem_cache_wb(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let resume = match cx.args.rcx {
            0 => false,
            1 => true,
            _ => return op_invalid(),
        };
        let pkg = self.package_of(cx.lp) as usize;
        if self.holds.pkg_wbcache & (1 << pkg) != 0 {
            return TdxStatus::OPERAND_BUSY.with_operand(OperandId::WBCACHE);
        }
        let snapshot = if resume {
            match self.wb_resume[pkg].take() {
                Some(s) => s,
                None => return TdxStatus::WBCACHE_RESUME_ERROR,
            }
        } else {
            self.wb_resume[pkg] = None;
            let s = self.kot.flushed_set();
            if s.iter().all(|w| *w == 0) {
                return TdxStatus::NO_HKID_READY_TO_WBCACHE;
            }
            s
        };
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            if s.is(TdxStatus::INTERRUPTED_RESUMABLE) {
                self.wb_resume[pkg] = Some(snapshot);
            }
            return s;
        }
        self.kot.written_back(pkg, &snapshot);
        TdxStatus::SUCCESS
    }

    // ---- debug hooks standing in for TD-side leaves (§10 item 24 is out of scope) ----

    fn check_free(&self, pa: u64, size: PageSize) -> Result<(), EmuError> {
        if !pa.is_multiple_of(size.bytes()) || pa >= self.pa_limit() {
            return Err(EmuError::Misaligned);
        }
        let last = pa + size.bytes() - 1;
        let idx = self.pamt_block(pa).map_err(|_| EmuError::NotUsable)?;
        if self.pamt_block(last) != Ok(idx) {
            return Err(EmuError::NotUsable);
        }
        if self.in_reserved(idx, pa, size.bytes()) || self.pamt.any_in(pa, size.bytes()) {
            return Err(EmuError::NotFree);
        }
        Ok(())
    }

    /// Make `tdr_pa` a TDR page (PT_TDR, PAMT owner 0) of a new TD whose keys are configured
    /// and which is runnable, without a KeyID (no KOT entry changes).
    pub fn debug_td_create(&mut self, tdr_pa: u64) -> Result<(), EmuError> {
        self.check_free(tdr_pa, PageSize::Size4K)?;
        if !self.tds.has_room_for_td() || !self.pamt.has_room() {
            return Err(EmuError::TableFull);
        }
        let rec = PageRecord {
            pa: tdr_pa,
            size: PageSize::Size4K,
            page_type: PageType::Tdr,
            owner: 0,
        };
        let mut td = TdRecord::new(tdr_pa, 0);
        td.lifecycle = TdLifecycle::KeysConfigured;
        td.op_state = TdOpState::Runnable;
        if !self.pamt.insert(rec) || !self.tds.insert(td) {
            return Err(EmuError::TableFull);
        }
        Ok(())
    }

    /// Give a free page of `size` to the TD at `tdr_pa` as `page_type` (what ADDCX/AUG/… would do).
    pub fn debug_td_add_page(
        &mut self,
        tdr_pa: u64,
        pa: u64,
        size: PageSize,
        page_type: PageType,
    ) -> Result<(), EmuError> {
        self.check_free(pa, size)?;
        if self.tds.get(tdr_pa).is_none() {
            return Err(EmuError::NoSuchTd);
        }
        if !self.pamt.has_room() {
            return Err(EmuError::TableFull);
        }
        self.give_page(tdr_pa, pa, size, page_type);
        Ok(())
    }

    /// Move the TD to TEARDOWN (what a successful MNG.KEY.FREEID does).
    pub fn debug_td_teardown(&mut self, tdr_pa: u64) -> Result<(), EmuError> {
        let td = self.tds.find(tdr_pa).ok_or(EmuError::NoSuchTd)?;
        td.lifecycle = TdLifecycle::Teardown;
        Ok(())
    }

    /// Set a KOT entry; for FLUSHED, every package that has LPs must then run CACHE.WB (§9.2).
    pub fn debug_set_kot(&mut self, hkid: u16, state: KotState) -> Result<(), EmuError> {
        let all = self.all_packages_mask();
        if self.kot.force(hkid, state, all) {
            Ok(())
        } else {
            Err(EmuError::BadHkid)
        }
    }

    /// Packages that still owe a CACHE.WB for `hkid`.
    #[must_use]
    pub fn needs_wbcache(&self, hkid: u16) -> u8 {
        self.kot.needs_wb(hkid)
    }
}
