//! Heap-free PAMT model (§5.5, §3.2, §10 item 20).
//!
//! Design (chosen for no heap and O(records) lookups):
//! - *Reserved* pages are not stored: a 4 KiB page is PT_RSVD iff it lies in a reserved area of
//!   its TDMR, which the module already holds in its TDMR table (this is what TDMR.INIT writes,
//!   §3.2, and PAMTs live inside reserved areas or outside all TDMRs, §6).
//! - *Readiness* is not stored per page: TDMR `k`'s memory below
//!   `next_to_init[k] & !(1 GiB - 1)` is initialized (§3.2, 1 GiB granular).
//! - *Owned* pages (anything not PT_NDA / PT_RSVD) are sparse records `{pa, size, type, owner}`
//!   in a fixed-capacity table. A 2M/1G record covers all 4K pages below it, as a PAMT walk
//!   stops at the level holding the leaf entry.
//! - Everything else is PT_NDA (4K level).
//!
//! Invariants: records never overlap each other or reserved areas (enforced by [`PamtModel::insert`]
//! callers: the TD leaves and the `debug_*` hooks check the range is PT_NDA first); capacity is
//! [`MAX_PAGE_RECORDS`], and a leaf that needs a record beyond it answers
//! `TDX_EMU_CAPACITY_EXCEEDED`. A TDR's record has owner 0, as in the module's PAMT.

use tdx_abi::{PageSize, PageType};

/// Owned-page records the model can hold.
pub const MAX_PAGE_RECORDS: usize = 512;

/// One PAMT leaf entry as reported by TDH.PHYMEM.PAGE.RDMD (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PamtEntry {
    /// Page type.
    pub page_type: PageType,
    /// Owner (TDR PA, HKID stripped); 0 for NDA/RSVD.
    pub owner: u64,
    /// Level the walk reached.
    pub size: PageSize,
    /// BEPOCH (always 0 here; TD-side epochs are not modelled).
    pub bepoch: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRecord {
    pub pa: u64,
    pub size: PageSize,
    pub page_type: PageType,
    pub owner: u64,
}

impl PageRecord {
    const fn end(&self) -> u64 {
        self.pa + self.size.bytes()
    }
}

/// Sparse table of owned pages.
#[derive(Clone, Debug)]
pub(crate) struct PamtModel {
    recs: [Option<PageRecord>; MAX_PAGE_RECORDS],
}

impl PamtModel {
    pub(crate) const fn new() -> Self {
        PamtModel {
            recs: [None; MAX_PAGE_RECORDS],
        }
    }

    /// The record covering `pa`, with its slot.
    pub(crate) fn find(&self, pa: u64) -> Option<(usize, PageRecord)> {
        self.recs
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.filter(|r| r.pa <= pa && pa < r.end()).map(|r| (i, r)))
    }

    /// Any record intersecting `[pa, pa + len)`.
    pub(crate) fn any_in(&self, pa: u64, len: u64) -> bool {
        self.recs
            .iter()
            .flatten()
            .any(|r| r.pa < pa.saturating_add(len) && pa < r.end())
    }

    /// Records held.
    pub(crate) fn count(&self) -> usize {
        self.recs.iter().flatten().count()
    }

    /// True if one more record fits.
    pub(crate) fn has_room(&self) -> bool {
        self.recs.iter().any(Option::is_none)
    }

    /// Store a record; `false` when full.
    pub(crate) fn insert(&mut self, rec: PageRecord) -> bool {
        match self.recs.iter_mut().find(|s| s.is_none()) {
            Some(s) => {
                *s = Some(rec);
                true
            }
            None => false,
        }
    }

    /// Free slot `i` (the page becomes PT_NDA).
    pub(crate) fn remove(&mut self, i: usize) {
        self.recs[i] = None;
    }

    /// Forget everything (used when SYS.CONFIG succeeds on a fresh TDMR table).
    pub(crate) fn clear(&mut self) {
        self.recs = [None; MAX_PAGE_RECORDS];
    }
}
