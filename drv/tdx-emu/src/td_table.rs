//! What the emulated module keeps about TDs, vCPUs and secure-EPT entries (§9.2, §9.4).
//!
//! Pattern: three fixed-capacity tables of plain records, owned by the module state (`module`)
//! and changed only by the TD leaves (`leaves_td_mng`, `leaves_td_vp`, `leaves_td_mem`) and by
//! PHYMEM.PAGE.RECLAIM. A TD is found by its TDR PA, a vCPU by its TDVPR PA, an S-EPT entry by
//! `(TDR, level, GPA aligned to the level)`. The secure EPT is modelled as its *entries* only: a
//! non-leaf entry ("table") points at an S-EPT page, a leaf entry maps a private page; the root
//! table lives in the TDCS and exists once TDH.MNG.INIT succeeded.
//!
//! Invariants:
//! - At most one record per key; records of a TD are removed when its TDR is reclaimed.
//! - `TdRecord::child_count` equals the 4 KiB pages (a 2 MiB page counts 512) the PAMT holds
//!   for the TD other than the TDR itself.
//! - Capacities: [`MAX_TDS`] TDs, [`MAX_VCPUS`] vCPUs and [`MAX_SEPT_ENTRIES`] S-EPT entries over
//!   all TDs. A leaf that would need one more record answers `TDX_EMU_CAPACITY_EXCEEDED`
//!   without changing anything.

use tdx_abi::{TdLifecycle, TdOpState};

/// TDs the emulator can hold at once.
pub const MAX_TDS: usize = 16;
/// vCPUs (TDVPR pages) the emulator can hold at once, over all TDs.
pub const MAX_VCPUS: usize = 64;
/// Secure-EPT entries (tables and leaves) the emulator can hold at once, over all TDs.
pub const MAX_SEPT_ENTRIES: usize = 256;

/// One TD (the TDR and TDCS fields the host-side leaves use).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TdRecord {
    pub(crate) tdr: u64,
    pub(crate) hkid: u16,
    pub(crate) lifecycle: TdLifecycle,
    /// Packages on which TDH.MNG.KEY.CONFIG succeeded.
    pub(crate) pkg_config: u8,
    pub(crate) num_tdcx: u8,
    pub(crate) op_state: TdOpState,
    pub(crate) child_count: u64,
    pub(crate) max_vcpus: u16,
    pub(crate) num_l2_vms: u8,
    /// vCPUs that completed TDH.VP.INIT.
    pub(crate) num_vcpus: u32,
    /// vCPUs associated with an LP (VP.INIT associates, VP.FLUSH dissociates).
    pub(crate) num_assoc: u32,
    /// TD epoch (TDH.MEM.TRACK increments it).
    pub(crate) epoch: u64,
}

impl TdRecord {
    pub(crate) const fn new(tdr: u64, hkid: u16) -> Self {
        TdRecord {
            tdr,
            hkid,
            lifecycle: TdLifecycle::HkidAssigned,
            pkg_config: 0,
            num_tdcx: 0,
            op_state: TdOpState::Uninitialized,
            child_count: 0,
            max_vcpus: 0,
            num_l2_vms: 0,
            num_vcpus: 0,
            num_assoc: 0,
            epoch: 1,
        }
    }
}

/// One vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VcpuRecord {
    pub(crate) tdvpr: u64,
    pub(crate) tdr: u64,
    /// TDVPS pages: the TDVPR plus every TDH.VP.ADDCX page.
    pub(crate) pages: u8,
    /// TDH.VP.INIT done.
    pub(crate) ready: bool,
    /// LP the vCPU is associated with.
    pub(crate) assoc_lp: Option<u32>,
}

/// What an S-EPT entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeptKind {
    /// Points at an S-EPT page (PT_EPT) holding the next level's entries.
    Table,
    /// Maps a private page: PAGE.ADD makes it MAPPED, PAGE.AUG PENDING.
    Leaf { pending: bool },
}

/// One S-EPT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeptEntry {
    pub(crate) tdr: u64,
    /// 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB, 3 = 512 GiB entry.
    pub(crate) level: u8,
    /// GPA aligned to the level.
    pub(crate) gpa: u64,
    /// The S-EPT page or the private page.
    pub(crate) hpa: u64,
    pub(crate) kind: SeptKind,
    pub(crate) blocked: bool,
    /// TD epoch at TDH.MEM.RANGE.BLOCK.
    pub(crate) bepoch: u64,
}

/// The three tables.
#[derive(Clone, Debug)]
pub(crate) struct TdTable {
    pub(crate) tds: [Option<TdRecord>; MAX_TDS],
    pub(crate) vcpus: [Option<VcpuRecord>; MAX_VCPUS],
    pub(crate) sept: [Option<SeptEntry>; MAX_SEPT_ENTRIES],
}

fn put<T: Copy>(slots: &mut [Option<T>], v: T) -> bool {
    match slots.iter_mut().find(|s| s.is_none()) {
        Some(s) => {
            *s = Some(v);
            true
        }
        None => false,
    }
}

impl TdTable {
    pub(crate) const fn new() -> Self {
        TdTable {
            tds: [None; MAX_TDS],
            vcpus: [None; MAX_VCPUS],
            sept: [None; MAX_SEPT_ENTRIES],
        }
    }

    pub(crate) fn find(&mut self, tdr: u64) -> Option<&mut TdRecord> {
        self.tds.iter_mut().flatten().find(|t| t.tdr == tdr)
    }

    pub(crate) fn get(&self, tdr: u64) -> Option<&TdRecord> {
        self.tds.iter().flatten().find(|t| t.tdr == tdr)
    }

    pub(crate) fn has_room_for_td(&self) -> bool {
        self.tds.iter().any(Option::is_none)
    }

    /// Add a TD; `false` when the table is full.
    pub(crate) fn insert(&mut self, td: TdRecord) -> bool {
        put(&mut self.tds, td)
    }

    /// Forget a TD and everything recorded for it.
    pub(crate) fn remove(&mut self, tdr: u64) {
        for t in self
            .tds
            .iter_mut()
            .filter(|t| t.is_some_and(|t| t.tdr == tdr))
        {
            *t = None;
        }
        for v in self
            .vcpus
            .iter_mut()
            .filter(|v| v.is_some_and(|v| v.tdr == tdr))
        {
            *v = None;
        }
        for e in self
            .sept
            .iter_mut()
            .filter(|e| e.is_some_and(|e| e.tdr == tdr))
        {
            *e = None;
        }
    }

    pub(crate) fn vcpu(&mut self, tdvpr: u64) -> Option<&mut VcpuRecord> {
        self.vcpus.iter_mut().flatten().find(|v| v.tdvpr == tdvpr)
    }

    pub(crate) fn has_room_for_vcpu(&self) -> bool {
        self.vcpus.iter().any(Option::is_none)
    }

    pub(crate) fn insert_vcpu(&mut self, v: VcpuRecord) -> bool {
        put(&mut self.vcpus, v)
    }

    /// The entry at `(tdr, level, gpa)` with its slot.
    pub(crate) fn sept(&self, tdr: u64, level: u8, gpa: u64) -> Option<(usize, SeptEntry)> {
        self.sept.iter().enumerate().find_map(|(i, e)| {
            e.filter(|e| e.tdr == tdr && e.level == level && e.gpa == gpa)
                .map(|e| (i, e))
        })
    }

    pub(crate) fn has_room_for_sept(&self) -> bool {
        self.sept.iter().any(Option::is_none)
    }

    pub(crate) fn insert_sept(&mut self, e: SeptEntry) -> bool {
        put(&mut self.sept, e)
    }

    /// A reclaimed page no longer backs a vCPU or an S-EPT entry of `tdr`.
    pub(crate) fn forget_page(&mut self, tdr: u64, hpa: u64) {
        for v in self
            .vcpus
            .iter_mut()
            .filter(|v| v.is_some_and(|v| v.tdr == tdr && v.tdvpr == hpa))
        {
            *v = None;
        }
        for e in self
            .sept
            .iter_mut()
            .filter(|e| e.is_some_and(|e| e.tdr == tdr && e.hpa == hpa))
        {
            *e = None;
        }
    }
}
