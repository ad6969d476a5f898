//! Private-memory leaves: TDH.MEM.SEPT.ADD, PAGE.ADD, PAGE.AUG, RANGE.BLOCK, TRACK,
//! PAGE.REMOVE and TDH.MR.FINALIZE (§9.2, §9.4, §10 item 24).
//!
//! Pattern: as in `leaves_td_mng`. A GPA operand (RCX: level in bits 2:0) is checked, then the
//! secure EPT is walked from the root (`TdxModule::sept_walk`); a walk that meets a missing or
//! leaf entry above the level answers EPT_WALK_FAILED naming RCX, with the level at which it
//! stopped in RDX (the module puts the S-EPT entry's contents in RCX; the emulator has none and
//! leaves RCX 0). RCX and RDX are cleared at entry, as the module does.
//!
//! Invariants:
//! - A leaf entry's page is PT_REG with the entry's size; a table entry's page is PT_EPT.
//! - TLB tracking: once the TD is RUNNABLE (after MR.FINALIZE) PAGE.REMOVE needs the entry
//!   blocked (GPA_RANGE_NOT_BLOCKED) and a TRACK since the block (TLB_TRACKING_NOT_DONE); before
//!   that neither is required, as in 1.5.01's op-state flags.
//! - The TD epoch starts at 1 and only TRACK raises it (saturating).

use crate::leaves_td_mng::done;
use crate::module::{Call, TdxModule};
use crate::td_checks::{level_bytes, with};
use crate::td_table::{SeptEntry, SeptKind, TdRecord};
use tdx_abi::{OperandId, PageSize, PageType, TdOpState, TdxStatus};

/// What the common prologue of a GPA leaf found: the TD, the GPA and level of the operand, and
/// the S-EPT entry at that level (with its slot) if there is one.
struct Target {
    td: TdRecord,
    gpa: u64,
    level: u8,
    entry: Option<(usize, SeptEntry)>,
}

/// Page size of a leaf at `level` (0 or 1 here).
fn leaf_size(level: u8) -> PageSize {
    if level == 0 {
        PageSize::Size4K
    } else {
        PageSize::Size2M
    }
}

impl TdxModule {
    /// TDR (RDX) and build state, then the GPA operand and the walk to its level: returns the
    /// TD, the GPA, the level and the entry there (if any).
    fn mem_prologue(&self, cx: &mut Call<'_>, min: u8, max: u8) -> Result<Target, TdxStatus> {
        self.lp_gate(cx.lp)?;
        let td = self.check_tdr(cx.args.rdx, OperandId::RDX)?;
        Self::td_build_state(&td, cx.leaf)?;
        let (gpa, level) = Self::gpa_operand(cx.args.rcx, min, max)?;
        match self.sept_walk(&td, gpa, level) {
            Ok(entry) => Ok(Target {
                td,
                gpa,
                level,
                entry,
            }),
            Err(stopped) => {
                cx.out.rdx = u64::from(stopped);
                Err(with(TdxStatus::EPT_WALK_FAILED, OperandId::RCX))
            }
        }
    }

    fn clear_rcx_rdx(cx: &mut Call<'_>) {
        cx.out.rcx = 0;
        cx.out.rdx = 0;
    }

    fn need_sept_room(&self) -> Result<(), TdxStatus> {
        if self.tds.has_room_for_sept() {
            Ok(())
        } else {
            Err(TdxStatus::EMU_CAPACITY_EXCEEDED)
        }
    }

    fn map(&mut self, td: &TdRecord, gpa: u64, level: u8, hpa: u64, kind: SeptKind) {
        self.tds.insert_sept(SeptEntry {
            tdr: td.tdr,
            level,
            gpa,
            hpa,
            kind,
            blocked: false,
            bepoch: 0,
        });
    }

    /// TDH.MEM.SEPT.ADD (RCX = GPA | level 1..=3, RDX = TDR, R8 = new S-EPT page). Version 1's
    /// L2 pages (R9–R11) are not modelled and are ignored.
    pub(crate) fn mem_sept_add(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        Self::clear_rcx_rdx(cx);
        done(self.mem_sept_add_inner(cx))
    }

    fn mem_sept_add_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        let Target {
            td,
            gpa,
            level,
            entry,
        } = self.mem_prologue(cx, 1, 3)?;
        if entry.is_some() {
            return Err(with(TdxStatus::EPT_ENTRY_STATE_INCORRECT, OperandId::RCX));
        }
        let page = cx.args.r8;
        self.check_page(page, OperandId::R8, PageSize::Size4K, PageType::Nda)?;
        let what = (PageSize::Size4K, PageType::Ept, SeptKind::Table);
        self.place(cx, &td, (gpa, level), page, what)
    }

    /// The common end of SEPT.ADD, PAGE.ADD and PAGE.AUG once their operands are checked: room
    /// in the page and S-EPT tables, then an injected fault if one is due, then the page given
    /// to the TD (`size`, `ty`) and mapped at `gpa` as `kind`. Nothing changes on an error.
    fn place(
        &mut self,
        cx: &Call<'_>,
        td: &TdRecord,
        (gpa, level): (u64, u8),
        page: u64,
        (size, ty, kind): (PageSize, PageType, SeptKind),
    ) -> Result<(), TdxStatus> {
        self.page_room()?;
        self.need_sept_room()?;
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        self.give_page(td.tdr, page, size, ty);
        self.map(td, gpa, level, page, kind);
        Ok(())
    }

    /// TDH.MEM.PAGE.ADD (RCX = GPA | level 0, RDX = TDR, R8 = TD page, R9 = source page), before
    /// MR.FINALIZE only. The source's contents are not copied (no encryption is modelled).
    pub(crate) fn mem_page_add(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        Self::clear_rcx_rdx(cx);
        done(self.mem_page_add_inner(cx))
    }

    fn mem_page_add_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        let Target {
            td,
            gpa,
            level,
            entry,
        } = self.mem_prologue(cx, 0, 0)?;
        if entry.is_some() {
            return Err(with(TdxStatus::EPT_ENTRY_STATE_INCORRECT, OperandId::RCX));
        }
        if !self.is_shared_hpa(cx.args.r9, tdx_abi::consts::PAGE_SIZE_4K) {
            return Err(with(TdxStatus::OPERAND_INVALID, OperandId::R9));
        }
        let page = cx.args.r8;
        self.check_page(page, OperandId::R8, PageSize::Size4K, PageType::Nda)?;
        let what = (
            PageSize::Size4K,
            PageType::Reg,
            SeptKind::Leaf { pending: false },
        );
        self.place(cx, &td, (gpa, level), page, what)
    }

    /// TDH.MEM.PAGE.AUG (RCX = GPA | level 0..=1, RDX = TDR, R8 = free 4 KiB or 2 MiB range).
    pub(crate) fn mem_page_aug(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        Self::clear_rcx_rdx(cx);
        done(self.mem_page_aug_inner(cx))
    }

    fn mem_page_aug_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        let Target {
            td,
            gpa,
            level,
            entry,
        } = self.mem_prologue(cx, 0, 1)?;
        if entry.is_some() {
            return Err(with(TdxStatus::EPT_ENTRY_STATE_INCORRECT, OperandId::RCX));
        }
        let page = cx.args.r8;
        self.check_free_range(page, OperandId::R8, leaf_size(level))?;
        let what = (
            leaf_size(level),
            PageType::Reg,
            SeptKind::Leaf { pending: true },
        );
        self.place(cx, &td, (gpa, level), page, what)
    }

    /// TDH.MEM.RANGE.BLOCK (RCX = GPA | level 0..=3, RDX = TDR): the entry records the TD
    /// epoch; an entry already blocked answers the warning GPA_RANGE_ALREADY_BLOCKED.
    pub(crate) fn mem_range_block(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        Self::clear_rcx_rdx(cx);
        done(self.mem_range_block_inner(cx))
    }

    fn mem_range_block_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        let Target { td, entry, .. } = self.mem_prologue(cx, 0, 3)?;
        let Some((slot, mut e)) = entry else {
            return Err(with(TdxStatus::EPT_ENTRY_STATE_INCORRECT, OperandId::RCX));
        };
        if e.blocked {
            return Err(with(TdxStatus::GPA_RANGE_ALREADY_BLOCKED, OperandId::RCX));
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        e.blocked = true;
        e.bepoch = td.epoch;
        self.tds.sept[slot] = Some(e);
        Ok(())
    }

    /// TDH.MEM.TRACK (RCX = TDR): a new TD epoch. No vCPU runs, so the previous epoch is never
    /// busy (TDX_PREVIOUS_TLB_EPOCH_BUSY only through fault injection).
    pub(crate) fn mem_track(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mem_track_inner(cx))
    }

    fn mem_track_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let td = self.check_tdr(cx.args.rcx, OperandId::RCX)?;
        Self::td_build_state(&td, cx.leaf)?;
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        if let Some(td) = self.tds.find(td.tdr) {
            td.epoch = td.epoch.saturating_add(1);
        }
        Ok(())
    }

    /// TDH.MEM.PAGE.REMOVE (RCX = GPA | level 0..=2, RDX = TDR): the private page reverts to
    /// PT_NDA and the TDR child count drops; RCX returns the page's PA.
    pub(crate) fn mem_page_remove(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        Self::clear_rcx_rdx(cx);
        done(self.mem_page_remove_inner(cx))
    }

    fn mem_page_remove_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        let Target { td, entry, .. } = self.mem_prologue(cx, 0, 2)?;
        let Some((slot, e)) = entry.filter(|(_, e)| e.kind != SeptKind::Table) else {
            return Err(with(TdxStatus::EPT_ENTRY_STATE_INCORRECT, OperandId::RCX));
        };
        if self.holds.pages.contains(&Some(e.hpa)) {
            return Err(with(TdxStatus::OPERAND_BUSY, OperandId::RCX));
        }
        if td.op_state == TdOpState::Runnable {
            if !e.blocked {
                return Err(with(TdxStatus::GPA_RANGE_NOT_BLOCKED, OperandId::RCX));
            }
            if e.bepoch >= td.epoch {
                return Err(with(TdxStatus::TLB_TRACKING_NOT_DONE, OperandId::RCX));
            }
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        if let Some((pslot, rec)) = self.pamt.find(e.hpa) {
            self.pamt.remove(pslot);
            if let Some(td) = self.tds.find(td.tdr) {
                td.child_count = td
                    .child_count
                    .saturating_sub(crate::td_checks::child_pages(rec.size));
            }
        }
        self.tds.sept[slot] = None;
        cx.out.rcx = e.hpa;
        debug_assert!(e.hpa.is_multiple_of(level_bytes(e.level)));
        Ok(())
    }

    /// TDH.MR.FINALIZE (RCX = TDR): INITIALIZED with at least one initialized vCPU → RUNNABLE.
    pub(crate) fn mr_finalize(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        done(self.mr_finalize_inner(cx))
    }

    fn mr_finalize_inner(&mut self, cx: &mut Call<'_>) -> Result<(), TdxStatus> {
        self.lp_gate(cx.lp)?;
        let td = self.check_tdr(cx.args.rcx, OperandId::RCX)?;
        Self::td_build_state(&td, cx.leaf)?;
        if td.num_vcpus == 0 {
            return Err(TdxStatus::NO_VCPUS);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return Err(s);
        }
        if let Some(td) = self.tds.find(td.tdr) {
            td.op_state = TdOpState::Runnable;
        }
        Ok(())
    }
}
