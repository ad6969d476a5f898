//! TDH.PHYMEM.* leaves over the PAMT model, plus the debug hooks that stand in for TD-side leaves
//! (§2.3, §9.2, §10 item 20).
//!
//! Pattern: every page leaf resolves its PA in the order the module does — operand shape
//! (4 KiB-aligned, below MAX_PA, HKID 0 → OPERAND_INVALID|RCX), then "PAMT block" (inside a
//! configured TDMR, in a 1 GiB block TDMR.INIT finished → OPERAND_ADDR_RANGE_ERROR|RCX), then the
//! PAMT entry lock (OPERAND_BUSY|RCX), then the page type.
//!
//! TD-side leaves (MNG.CREATE, PAGE.AUG, …; §10 item 24) are out of scope, so pages become owned
//! only through the `debug_*` hooks, which enforce the same "must be PT_NDA, inside initialized
//! TDMR memory" rule the module would. A small TD table (TDR PA, teardown flag, child count)
//! backs RECLAIM's lifecycle rules.

use crate::module::{Call, TdxModule};
use crate::pamt::{PageRecord, PamtEntry};
use crate::td_table::TdRecord;
use tdx_abi::consts::{GIB, PAGE_SIZE_4K};
use tdx_abi::{KotState, OperandId, PageSize, PageType, TdxStatus, MAX_HKIDS};

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
        let range_err = TdxStatus::OPERAND_ADDR_RANGE_ERROR.with_operand(OperandId::RCX);
        let idx = self
            .tdmrs()
            .iter()
            .position(|t| t.base <= pa && pa < t.end())
            .ok_or(range_err)?;
        // §3.2: usable only below next_to_init rounded down to 1 GiB.
        if pa >= self.next_to_init[idx] & !(GIB - 1) {
            return Err(range_err);
        }
        Ok(idx)
    }

    fn in_reserved(&self, idx: usize, pa: u64, len: u64) -> bool {
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
            let Some(td) = self.tds.find(rec.owner) else {
                return TdxStatus::PAGE_METADATA_INCORRECT.with_operand(OperandId::TDR);
            };
            if !td.teardown {
                return TdxStatus::LIFECYCLE_STATE_INCORRECT;
            }
            if td.child_count != 0 {
                return TdxStatus::TD_ASSOCIATED_PAGES_EXIST;
            }
            for t in self
                .tds
                .tds
                .iter_mut()
                .filter(|t| t.is_some_and(|t| t.tdr == rec.owner))
            {
                *t = None;
            }
        } else {
            let Some(td) = self.tds.find(rec.owner) else {
                return TdxStatus::PAGE_METADATA_INCORRECT.with_operand(OperandId::TDR);
            };
            if !td.teardown {
                return TdxStatus::LIFECYCLE_STATE_INCORRECT;
            }
            td.child_count -= 1 << (9 * rec.size as u32);
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
            let mut s = [0u64; MAX_HKIDS as usize / 64];
            for (h, k) in self.kot.iter().enumerate() {
                if *k == KotState::Flushed {
                    s[h / 64] |= 1 << (h % 64);
                }
            }
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
        for h in 0..MAX_HKIDS as usize {
            if snapshot[h / 64] & (1 << (h % 64)) != 0 {
                self.needs_wb[h] &= !(1u8 << pkg);
            }
        }
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

    /// Make `tdr_pa` a TDR page (PT_TDR, owner = itself) of a new, running TD.
    pub fn debug_td_create(&mut self, tdr_pa: u64) -> Result<(), EmuError> {
        self.check_free(tdr_pa, PageSize::Size4K)?;
        let slot = self
            .tds
            .tds
            .iter_mut()
            .find(|t| t.is_none())
            .ok_or(EmuError::TableFull)?;
        let rec = PageRecord {
            pa: tdr_pa,
            size: PageSize::Size4K,
            page_type: PageType::Tdr,
            owner: tdr_pa,
        };
        if !self.pamt.insert(rec) {
            return Err(EmuError::TableFull);
        }
        *slot = Some(TdRecord {
            tdr: tdr_pa,
            teardown: false,
            child_count: 0,
        });
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
        if self.tds.find(tdr_pa).is_none() {
            return Err(EmuError::NoSuchTd);
        }
        let rec = PageRecord {
            pa,
            size,
            page_type,
            owner: tdr_pa,
        };
        if !self.pamt.insert(rec) {
            return Err(EmuError::TableFull);
        }
        if let Some(td) = self.tds.find(tdr_pa) {
            td.child_count += 1 << (9 * size as u32);
        }
        Ok(())
    }

    /// Move the TD to TEARDOWN (what a successful MNG.KEY.FREEID does).
    pub fn debug_td_teardown(&mut self, tdr_pa: u64) -> Result<(), EmuError> {
        let td = self.tds.find(tdr_pa).ok_or(EmuError::NoSuchTd)?;
        td.teardown = true;
        Ok(())
    }

    /// Set a KOT entry; for FLUSHED, every package that has LPs must then run CACHE.WB (§9.2).
    pub fn debug_set_kot(&mut self, hkid: u16, state: KotState) -> Result<(), EmuError> {
        let k = self.kot.get_mut(hkid as usize).ok_or(EmuError::BadHkid)?;
        *k = state;
        self.needs_wb[hkid as usize] = if state == KotState::Flushed {
            self.all_packages_mask()
        } else {
            0
        };
        Ok(())
    }

    /// Packages that still owe a CACHE.WB for `hkid`.
    #[must_use]
    pub fn needs_wbcache(&self, hkid: u16) -> u8 {
        self.needs_wb.get(hkid as usize).copied().unwrap_or(0)
    }
}
