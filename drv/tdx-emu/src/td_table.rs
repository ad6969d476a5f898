//! The debug TD table: the few facts about each TD (TDR PA, teardown flag,
//! child count) that TDH.PHYMEM.PAGE.RECLAIM's lifecycle rules need, since
//! the TD-side leaves themselves are not emulated.
//!
//! Its own module so that the module state (`module`) can hold it without
//! depending on the leaves that use it (`leaves_phymem`).

/// TDs the debug TD table can hold.
pub const MAX_TDS: usize = 16;

/// One TD.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TdRecord {
    pub(crate) tdr: u64,
    pub(crate) teardown: bool,
    pub(crate) child_count: u64,
}

/// Debug TD table.
#[derive(Clone, Debug)]
pub(crate) struct TdTable {
    pub(crate) tds: [Option<TdRecord>; MAX_TDS],
}

impl TdTable {
    pub(crate) const fn new() -> Self {
        TdTable {
            tds: [None; MAX_TDS],
        }
    }

    pub(crate) fn find(&mut self, tdr: u64) -> Option<&mut TdRecord> {
        self.tds.iter_mut().flatten().find(|t| t.tdr == tdr)
    }
}
