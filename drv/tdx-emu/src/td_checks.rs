//! Operand checks shared by the TD leaves (§9.1, §9.4): page operands, the TDR, the TD's build
//! state and GPA operands, each answering the module's status with the operand ID it names.
//!
//! Pattern: pure queries on the module state (`&self`) returning `Result<_, TdxStatus>`, called
//! by the leaves in the order the 1.5.01 handlers call their helpers; plus [`TdxModule::give_page`],
//! the one place a page becomes owned by a TD (PAMT record and child count together).
//!
//! Invariants: a page check never changes state; `give_page` either records the page *and* counts
//! it, or does neither; all child-count arithmetic is checked.

use crate::module::TdxModule;
use crate::pamt::PageRecord;
use crate::td_table::{SeptEntry, SeptKind, TdRecord};
use tdx_abi::consts::{GIB, PAGE_SIZE_4K};
use tdx_abi::{Leaf, OperandId, PageSize, PageType, TdLifecycle, TdOpState, TdxStatus};

/// Lowest GPA with the shared bit of a 4-level (GPAW 48) TD set.
pub(crate) const SHARED_GPA_BIT: u64 = 1 << 47;

/// Bytes mapped by one S-EPT entry at `level` (0 = 4 KiB … 3 = 512 GiB).
pub(crate) const fn level_bytes(level: u8) -> u64 {
    PAGE_SIZE_4K << (9 * level as u32)
}

/// 4 KiB pages an entry of `size` counts for in the TDR child count.
pub(crate) const fn child_pages(size: PageSize) -> u64 {
    1 << (9 * size as u32)
}

/// The status naming `op`.
pub(crate) const fn with(s: TdxStatus, op: OperandId) -> TdxStatus {
    s.with_operand(op)
}

/// Op states in which 1.5.01 lets the host call `leaf` (its `seamcall_state_lookup` table,
/// restricted to the three non-migration states).
pub(crate) fn op_state_allows(leaf: Leaf, s: TdOpState) -> bool {
    use TdOpState::{Initialized as I, Runnable as R, Uninitialized as U};
    match leaf {
        Leaf::MngAddcx | Leaf::MngInit => s == U,
        Leaf::MemPageAdd
        | Leaf::VpAddcx
        | Leaf::VpCreate
        | Leaf::VpInit
        | Leaf::MrExtend
        | Leaf::MrFinalize => s == I,
        Leaf::MemSeptAdd
        | Leaf::MemPageAug
        | Leaf::MemRangeBlock
        | Leaf::MemPageRemove
        | Leaf::MemTrack => s == I || s == R,
        _ => true,
    }
}

impl TdxModule {
    /// The TDMR holding `pa` if `pa` is in initialized memory, else
    /// OPERAND_ADDR_RANGE_ERROR naming `op`.
    pub(crate) fn pamt_block_op(&self, pa: u64, op: OperandId) -> Result<usize, TdxStatus> {
        let range_err = with(TdxStatus::OPERAND_ADDR_RANGE_ERROR, op);
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

    /// An explicit page operand of `size`: aligned, HKID bits clear, below MAX_PA
    /// (OPERAND_INVALID); in initialized TDMR memory (OPERAND_ADDR_RANGE_ERROR); its PAMT entry
    /// not locked elsewhere (OPERAND_BUSY); a leaf of exactly `size` and of type `pt`
    /// (PAGE_METADATA_INCORRECT). Every status names `op`.
    pub(crate) fn check_page(
        &self,
        pa: u64,
        op: OperandId,
        size: PageSize,
        pt: PageType,
    ) -> Result<(), TdxStatus> {
        if !pa.is_multiple_of(size.bytes()) || pa >= self.pa_limit() {
            return Err(with(TdxStatus::OPERAND_INVALID, op));
        }
        let idx = self.pamt_block_op(pa, op)?;
        if self.holds.pages.contains(&Some(pa)) {
            return Err(with(TdxStatus::OPERAND_BUSY, op));
        }
        let e = self.walk(idx, pa);
        if e.size != size || e.page_type != pt {
            return Err(with(TdxStatus::PAGE_METADATA_INCORRECT, op));
        }
        Ok(())
    }

    /// A free range for TDH.MEM.PAGE.AUG: like [`TdxModule::check_page`] for PT_NDA, and for
    /// 2 MiB every 4 KiB page beneath it free and not reserved (PAGE_METADATA_INCORRECT).
    pub(crate) fn check_free_range(
        &self,
        pa: u64,
        op: OperandId,
        size: PageSize,
    ) -> Result<(), TdxStatus> {
        if size == PageSize::Size4K {
            return self.check_page(pa, op, size, PageType::Nda);
        }
        if !pa.is_multiple_of(size.bytes()) || pa >= self.pa_limit() {
            return Err(with(TdxStatus::OPERAND_INVALID, op));
        }
        let idx = self.pamt_block_op(pa, op)?;
        if self.holds.pages.contains(&Some(pa)) {
            return Err(with(TdxStatus::OPERAND_BUSY, op));
        }
        let last = pa
            .checked_add(size.bytes() - 1)
            .ok_or(with(TdxStatus::OPERAND_INVALID, op))?;
        if self.pamt_block_op(last, op) != Ok(idx)
            || self.in_reserved(idx, pa, size.bytes())
            || self.pamt.any_in(pa, size.bytes())
        {
            return Err(with(TdxStatus::PAGE_METADATA_INCORRECT, op));
        }
        Ok(())
    }

    /// An explicit TDR operand: a PT_TDR page (as [`TdxModule::check_page`]) and its TD.
    pub(crate) fn check_tdr(&self, pa: u64, op: OperandId) -> Result<TdRecord, TdxStatus> {
        self.check_page(pa, op, PageSize::Size4K, PageType::Tdr)?;
        self.tds
            .get(pa)
            .copied()
            .ok_or(with(TdxStatus::PAGE_METADATA_INCORRECT, op))
    }

    /// The implicit TDR of an owned page (its PAMT owner): OPERAND_BUSY naming TDR if its
    /// PAMT entry is locked elsewhere.
    pub(crate) fn implicit_tdr(&self, owner: u64) -> Result<TdRecord, TdxStatus> {
        if self.holds.pages.contains(&Some(owner)) {
            return Err(with(TdxStatus::OPERAND_BUSY, OperandId::TDR));
        }
        self.tds
            .get(owner)
            .copied()
            .ok_or(with(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::TDR))
    }

    /// PAMT owner of the 4 KiB page at `pa` (already checked by [`TdxModule::check_page`]).
    pub(crate) fn owner_of(&self, pa: u64) -> u64 {
        self.pamt.find(pa).map_or(0, |(_, r)| r.owner)
    }

    /// The TD is buildable and `leaf` may run in its op state (module
    /// `check_state_map_tdcs_and_lock`): keys configured (TD_KEYS_NOT_CONFIGURED), the minimum
    /// TDCS pages added (TDCS_NOT_ALLOCATED), op state allowed (OP_STATE_INCORRECT).
    pub(crate) fn td_build_state(td: &TdRecord, leaf: Leaf) -> Result<(), TdxStatus> {
        if td.lifecycle != TdLifecycle::KeysConfigured {
            return Err(TdxStatus::TD_KEYS_NOT_CONFIGURED);
        }
        if td.num_tdcx < tdx_abi::td::MIN_TDCS_PAGES {
            return Err(TdxStatus::TDCS_NOT_ALLOCATED);
        }
        if !op_state_allows(leaf, td.op_state) {
            return Err(TdxStatus::OP_STATE_INCORRECT);
        }
        Ok(())
    }

    /// Room for one more page record, else TDX_EMU_CAPACITY_EXCEEDED.
    pub(crate) fn page_room(&self) -> Result<(), TdxStatus> {
        if self.pamt.has_room() {
            Ok(())
        } else {
            Err(TdxStatus::EMU_CAPACITY_EXCEEDED)
        }
    }

    /// Make the checked free page at `pa` a `pt` page of the TD at `tdr` and count it. The
    /// caller checked [`TdxModule::page_room`] first; the TD exists.
    pub(crate) fn give_page(&mut self, tdr: u64, pa: u64, size: PageSize, pt: PageType) {
        let rec = PageRecord {
            pa,
            size,
            page_type: pt,
            owner: tdr,
        };
        if self.pamt.insert(rec) {
            if let Some(td) = self.tds.find(tdr) {
                td.child_count = td.child_count.saturating_add(child_pages(size));
            }
        }
    }

    /// A GPA-and-level operand (RCX of the TDH.MEM leaves): reserved bits 11:3 and 63:52 clear,
    /// level in `min..=max`, GPA aligned to the level and private (below the shared bit of a
    /// GPAW-48 TD). Otherwise OPERAND_INVALID naming RCX.
    pub(crate) fn gpa_operand(raw: u64, min: u8, max: u8) -> Result<(u64, u8), TdxStatus> {
        let bad = with(TdxStatus::OPERAND_INVALID, OperandId::RCX);
        let level = (raw & 7) as u8;
        let gpa = raw & 0x000F_FFFF_FFFF_F000;
        if raw & 0xFF8 != 0 || raw >> 52 != 0 || level < min || level > max {
            return Err(bad);
        }
        if !gpa.is_multiple_of(level_bytes(level)) || gpa >= SHARED_GPA_BIT {
            return Err(bad);
        }
        Ok((gpa, level))
    }

    /// Walk the TD's secure EPT from the root to the entry at `level` for `gpa`: every entry
    /// above must be a table. Returns the entry at `level` (if any), or the level at which the
    /// walk stopped (the leaf reports EPT_WALK_FAILED naming RCX with that level in RDX).
    pub(crate) fn sept_walk(
        &self,
        td: &TdRecord,
        gpa: u64,
        level: u8,
    ) -> Result<Option<(usize, SeptEntry)>, u8> {
        let mut k = tdx_abi::td::SEPT_LEVEL_MAX_4LEVEL;
        while k > level {
            let at = gpa & !(level_bytes(k) - 1);
            match self.tds.sept(td.tdr, k, at) {
                Some((_, e)) if e.kind == SeptKind::Table => {}
                _ => return Err(k),
            }
            k -= 1;
        }
        Ok(self
            .tds
            .sept(td.tdr, level, gpa & !(level_bytes(level) - 1)))
    }
}
