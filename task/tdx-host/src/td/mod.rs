//! Guest KeyIDs, TDs and the TD state of pages: the book tdx-host keeps of everything it has
//! handed to the TDX module on a client's behalf (docs/tdx-module.md §9).
//!
//! Pattern: one fixed-capacity [`TdTable`] with no pointers, so it maps one-to-one onto ledger
//! words ([`TdTable::word`], [`TdTable::from_words`]) and is committed with every operation
//! like the allocator. It holds
//! - the **KeyID pool**: the TDX private KeyIDs minus the global one; a KeyID is *in use* while
//!   a TD record holds it, *retired* when a teardown could not free it (never reused), free
//!   otherwise;
//! - the **TD records**: id (never reused while tdx-host lives: a serial), owner with
//!   generation, HKID, TDR, life-cycle state, the packages keyed, TDCS count, and per vCPU its
//!   TDVPR and the CPU it was initialized on (VP.FLUSH must run there);
//! - the **TD pages**: every page (4 KiB, or 2 MiB for a level-1 private page) the module holds
//!   for a TD, with its kind. A frame's state is therefore: free or quarantined (allocator
//!   bitmaps), allocated (an allocator record, no TD page), or in a TD (TD control = TDR, TDCS,
//!   TDVPR, TDCX; S-EPT; private), and [`TdTable::page_in_td`] answers "is any byte of this
//!   range in a TD" for the free path.
//!
//! Invariants: every TD page and TDR lies in a frame the TD's owner holds in the allocator (the
//! server checks before the module is called); the TDR is recorded in the TD record, never as a
//! TD page; a TD's KeyID is in use exactly while its record exists; at most
//! [`MAX_TDS`] TDs, [`MAX_TD_PAGES`] TD pages and [`MAX_VCPUS`] vCPUs per TD.

use crate::frames::Owner;

/// Most TDs at once.
pub const MAX_TDS: usize = 16;
/// Most pages (besides TDRs) held by TDs at once.
pub const MAX_TD_PAGES: usize = 512;
/// Most pages one TD may hold (bounds one teardown: see `server::td`).
pub const MAX_PAGES_PER_TD: usize = 96;
/// Most vCPUs per TD.
pub const MAX_VCPUS: usize = 8;
/// Most guest KeyIDs tracked (those beyond are never handed out).
pub const MAX_KEYIDS: usize = 128;
/// Ledger words per TD record.
pub const TD_WORDS: usize = 4 + MAX_VCPUS;
/// Ledger words of the whole table: the retired-KeyID bitmap (2), the id serial (1), a spare
/// word, the TD records and the TD pages.
pub const TABLE_WORDS: usize = 4 + MAX_TDS * TD_WORDS + MAX_TD_PAGES;

/// Where a TD is in its life cycle (the module's TD state as tdx-host last saw it succeed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum TdState {
    /// MNG.CREATE done: KeyID assigned, keys not on every package yet.
    Created = 1,
    /// MNG.KEY.CONFIG done on every package: TDCS pages may be added.
    Keyed = 2,
    /// MNG.INIT done: vCPUs, S-EPT and initial pages may be added.
    Initialized = 3,
    /// MR.FINALIZE done.
    Runnable = 4,
    /// Teardown: every vCPU flushed and MNG.VPFLUSHDONE done.
    Blocked = 5,
    /// Teardown: KEY.FREEID done; only reclaiming pages is left.
    KeyFreed = 6,
}

impl TdState {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => TdState::Created,
            2 => TdState::Keyed,
            3 => TdState::Initialized,
            4 => TdState::Runnable,
            5 => TdState::Blocked,
            6 => TdState::KeyFreed,
            _ => return None,
        })
    }
}

/// What a page does in its TD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// A TDCS page (MNG.ADDCX).
    Tdcs = 1,
    /// A vCPU's root page (VP.CREATE).
    Tdvpr = 2,
    /// A vCPU's extra page (VP.ADDCX).
    Tdcx = 3,
    /// A secure-EPT page (MEM.SEPT.ADD).
    Sept = 4,
    /// A 4 KiB private page (MEM.PAGE.ADD or AUG).
    Private = 5,
    /// A 2 MiB private page (MEM.PAGE.AUG at level 1).
    Private2M = 6,
}

impl PageKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => PageKind::Tdcs,
            2 => PageKind::Tdvpr,
            3 => PageKind::Tdcx,
            4 => PageKind::Sept,
            5 => PageKind::Private,
            6 => PageKind::Private2M,
            _ => return None,
        })
    }

    /// Bytes of the page.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        match self {
            PageKind::Private2M => 2 << 20,
            _ => 4096,
        }
    }

    /// TD control structures (TDCS, TDVPR, TDCX) as opposed to S-EPT and private pages.
    #[must_use]
    pub const fn is_control(self) -> bool {
        matches!(self, PageKind::Tdcs | PageKind::Tdvpr | PageKind::Tdcx)
    }
}

/// One vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vcpu {
    /// Its TDVPR page.
    pub tdvpr: u64,
    /// The CPU VP.INIT ran on, plus one (0: not initialized).
    pub cpu_plus_one: u16,
    /// TDCX pages added.
    pub tdcx: u8,
}

/// One TD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Td {
    /// Its id as clients name it (a serial, never 0).
    pub id: u32,
    /// The client that created it (index and generation).
    pub owner: Owner,
    /// Its private KeyID.
    pub hkid: u16,
    /// The TDR page.
    pub tdr: u64,
    /// Where it is.
    pub state: TdState,
    /// Packages MNG.KEY.CONFIG succeeded on (bit per package leader).
    pub keyed: u16,
    /// TDCS pages added.
    pub tdcs: u8,
    /// vCPUs created.
    pub nvcpus: u8,
    /// The vCPUs.
    pub vcpus: [Vcpu; MAX_VCPUS],
}

/// One page held by a TD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdPage {
    /// Its physical address (aligned to its size).
    pub pa: u64,
    /// What it is.
    pub kind: PageKind,
    /// The TD's slot in the table.
    pub slot: u8,
}

/// A frame's state as tdx-host's books say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// Free for allocation.
    Free,
    /// Allocated to a client, in no TD.
    Allocated,
    /// A TDR of a TD.
    TdRoot,
    /// A TD control page (TDCS, TDVPR, TDCX).
    TdControl,
    /// A secure-EPT page.
    Sept,
    /// A private page of a TD.
    Private,
    /// Waiting for its scrub and PT_NDA check.
    Quarantined,
    /// Neither free nor allocated (retired, or not managed).
    Other,
}

/// Why the table refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdError {
    /// No such TD, or not the caller's.
    NoSuchTd,
    /// No free guest KeyID.
    NoKeyId,
    /// A table (TDs, pages, vCPUs) is full.
    TableFull,
}

/// Guest KeyIDs, TDs and TD pages (see the module doc).
#[derive(Clone, Debug)]
pub struct TdTable {
    /// First guest KeyID (the one after the global KeyID); 0 before `set_keyids`.
    first_keyid: u16,
    /// Guest KeyIDs (at most [`MAX_KEYIDS`]).
    nkeyids: u16,
    /// Retired KeyIDs, bit `k - first_keyid`.
    retired: [u64; 2],
    /// The last TD id given.
    serial: u32,
    tds: [Option<Td>; MAX_TDS],
    /// TDs in `tds` (its `Some` slots), kept so that [`TdTable::no_tds`], which every free
    /// asks, is one compare and not a walk over the slots. Not part of the words.
    live: u8,
    pages: [Option<TdPage>; MAX_TD_PAGES],
    /// Changed since the ledger last copied it ([`TdTable::take_unsynced`]): every commit
    /// would otherwise compare all [`TABLE_WORDS`] words, a cost every allocation would pay.
    /// Not part of the words; a new or loaded table starts unsynced.
    unsynced: core::cell::Cell<bool>,
}

impl Default for TdTable {
    fn default() -> Self {
        TdTable {
            first_keyid: 0,
            nkeyids: 0,
            retired: [0; 2],
            serial: 0,
            tds: [None; MAX_TDS],
            live: 0,
            pages: [None; MAX_TD_PAGES],
            unsynced: core::cell::Cell::new(true),
        }
    }
}

/// KeyID counts: free, in use, retired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyIdCounts {
    /// Free guest KeyIDs.
    pub free: u16,
    /// KeyIDs held by TDs.
    pub in_use: u16,
    /// KeyIDs that could not be freed, never reused.
    pub retired: u16,
}

impl TdTable {
    /// The guest KeyIDs: the TDX private range `first_tdx..=last_tdx` minus the global KeyID
    /// `global` (the first), at most [`MAX_KEYIDS`] of them.
    pub fn set_keyids(&mut self, global: u16, last_tdx: u16) {
        self.unsynced.set(true);
        self.first_keyid = global.saturating_add(1);
        let n = last_tdx.saturating_sub(global);
        self.nkeyids = n.min(MAX_KEYIDS as u16);
    }

    fn keyid_in_use(&self, k: u16) -> bool {
        self.tds.iter().flatten().any(|t| t.hkid == k)
    }

    fn is_retired(&self, k: u16) -> bool {
        let i = usize::from(k.wrapping_sub(self.first_keyid));
        i < MAX_KEYIDS && self.retired[i / 64] >> (i % 64) & 1 == 1
    }

    /// The KeyID counts.
    #[must_use]
    pub fn keyid_counts(&self) -> KeyIdCounts {
        let in_use = self.tds.iter().flatten().count() as u16;
        let retired = (self.retired[0].count_ones() + self.retired[1].count_ones()) as u16;
        KeyIdCounts {
            free: self.nkeyids.saturating_sub(in_use + retired),
            in_use,
            retired,
        }
    }

    /// KeyIDs `owner`'s index holds (any generation: a dead owner's count until reclaimed).
    #[must_use]
    pub fn keyids_of(&self, index: u16) -> u16 {
        self.tds
            .iter()
            .flatten()
            .filter(|t| t.owner.index() == index)
            .count() as u16
    }

    /// A free guest KeyID, lowest first.
    fn free_keyid(&self) -> Option<u16> {
        (0..self.nkeyids)
            .map(|i| self.first_keyid + i)
            .find(|&k| !self.keyid_in_use(k) && !self.is_retired(k))
    }

    /// Whether the table changed since the ledger last copied it (without taking the mark).
    #[must_use]
    pub fn unsynced(&self) -> bool {
        self.unsynced.get()
    }

    /// Whether the table changed since the last call (and forgets it): the ledger's sync
    /// copies the table's words only then.
    pub fn take_unsynced(&self) -> bool {
        self.unsynced.replace(false)
    }

    /// Records a new TD of `owner` on `tdr` with a free KeyID; returns its slot. The record is
    /// made before MNG.CREATE (so a crash after the module's answer still finds the TDR and
    /// KeyID booked) and removed again by [`TdTable::remove`] if the module refuses.
    ///
    /// # Errors
    /// `NoKeyId`, `TableFull`.
    pub fn create(&mut self, owner: Owner, tdr: u64) -> Result<usize, TdError> {
        self.unsynced.set(true);
        let hkid = self.free_keyid().ok_or(TdError::NoKeyId)?;
        let slot = self
            .tds
            .iter()
            .position(Option::is_none)
            .ok_or(TdError::TableFull)?;
        self.serial = self.serial.wrapping_add(1).max(1);
        self.live += 1;
        self.tds[slot] = Some(Td {
            id: self.serial,
            owner,
            hkid,
            tdr,
            state: TdState::Created,
            keyed: 0,
            tdcs: 0,
            nvcpus: 0,
            vcpus: [Vcpu::default(); MAX_VCPUS],
        });
        Ok(slot)
    }

    /// The slot of TD `id` if `owner` owns it.
    ///
    /// # Errors
    /// `NoSuchTd`.
    pub fn find(&self, owner: Owner, id: u32) -> Result<usize, TdError> {
        self.tds
            .iter()
            .position(|t| t.is_some_and(|t| t.id == id && t.owner == owner))
            .ok_or(TdError::NoSuchTd)
    }

    /// TD in `slot`.
    #[must_use]
    pub fn td(&self, slot: usize) -> Option<&Td> {
        self.tds.get(slot).and_then(Option::as_ref)
    }

    /// TD in `slot`, to change.
    pub fn td_mut(&mut self, slot: usize) -> Option<&mut Td> {
        self.unsynced.set(true);
        self.tds.get_mut(slot).and_then(Option::as_mut)
    }

    /// Slots of the TDs whose owner has task index `index` but not generation `current`
    /// (a restarted client's), or of every TD of `index` when `current` is `None`.
    pub fn stale_slots(
        &self,
        index: u16,
        current: Option<Owner>,
    ) -> impl Iterator<Item = usize> + '_ {
        self.tds.iter().enumerate().filter_map(move |(i, t)| {
            let t = t.as_ref()?;
            (t.owner.index() == index && Some(t.owner) != current).then_some(i)
        })
    }

    /// Slots of every TD.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.tds
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.is_some().then_some(i))
    }

    /// Forgets the TD in `slot` and every page it held (after its teardown, or when MNG.CREATE
    /// was refused); `retire_keyid` retires its KeyID instead of returning it to the pool.
    pub fn remove(&mut self, slot: usize, retire_keyid: bool) {
        self.unsynced.set(true);
        let Some(td) = self.tds.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.live -= 1;
        if retire_keyid {
            let i = usize::from(td.hkid.wrapping_sub(self.first_keyid));
            if i < MAX_KEYIDS {
                self.retired[i / 64] |= 1 << (i % 64);
            }
        }
        for p in &mut self.pages {
            if p.is_some_and(|p| usize::from(p.slot) == slot) {
                *p = None;
            }
        }
    }

    /// Pages TD `slot` holds.
    pub fn pages_of(&self, slot: usize) -> impl Iterator<Item = TdPage> + '_ {
        self.pages
            .iter()
            .flatten()
            .copied()
            .filter(move |p| usize::from(p.slot) == slot)
    }

    /// Whether TD `slot` may take one more page (its own limit and the table's).
    #[must_use]
    pub fn has_room(&self, slot: usize) -> bool {
        self.pages_of(slot).count() < MAX_PAGES_PER_TD && self.pages.iter().any(Option::is_none)
    }

    /// Records `pa` as a page of TD `slot`.
    ///
    /// # Errors
    /// `TableFull`.
    pub fn add_page(&mut self, slot: usize, pa: u64, kind: PageKind) -> Result<(), TdError> {
        self.unsynced.set(true);
        if !self.has_room(slot) {
            return Err(TdError::TableFull);
        }
        let free = self
            .pages
            .iter_mut()
            .find(|p| p.is_none())
            .ok_or(TdError::TableFull)?;
        *free = Some(TdPage {
            pa,
            kind,
            slot: slot as u8,
        });
        Ok(())
    }

    /// Forgets TD page `pa` (after MEM.PAGE.REMOVE or RECLAIM).
    pub fn remove_page(&mut self, pa: u64) {
        self.unsynced.set(true);
        for p in &mut self.pages {
            if p.is_some_and(|p| p.pa == pa) {
                *p = None;
            }
        }
    }

    /// The TD page or TDR at `pa`, if `pa` is the start of one: `(slot, kind)`, kind `None` for
    /// a TDR.
    #[must_use]
    pub fn at(&self, pa: u64) -> Option<(usize, Option<PageKind>)> {
        if let Some(s) = self.tds.iter().position(|t| t.is_some_and(|t| t.tdr == pa)) {
            return Some((s, None));
        }
        self.pages
            .iter()
            .flatten()
            .find(|p| p.pa == pa)
            .map(|p| (usize::from(p.slot), Some(p.kind)))
    }

    /// Whether no TD exists (so no page is a TDR or a TD page): a free of many frames asks
    /// this once instead of [`Self::page_in_td`] per frame.
    #[must_use]
    pub fn no_tds(&self) -> bool {
        self.live == 0
    }

    /// Whether any byte of `[base, base + len)` is a TDR or a TD page.
    #[must_use]
    pub fn page_in_td(&self, base: u64, len: u64) -> bool {
        // Pages belong to TDs: with none (the common case of a plain free) neither the TD
        // slots nor the page list is scanned.
        if self.no_tds() {
            return false;
        }
        let end = base.saturating_add(len);
        let hit = |pa: u64, n: u64| pa < end && base < pa.saturating_add(n);
        self.tds.iter().flatten().any(|t| hit(t.tdr, 4096))
            || self
                .pages
                .iter()
                .flatten()
                .any(|p| hit(p.pa, p.kind.bytes()))
    }

    /// Pages held by all TDs (TDRs included), in 4 KiB frames.
    #[must_use]
    pub fn frames_in_tds(&self) -> u64 {
        let tdrs = self.tds.iter().flatten().count() as u64;
        tdrs + self
            .pages
            .iter()
            .flatten()
            .map(|p| p.kind.bytes() / 4096)
            .sum::<u64>()
    }

    /// Ledger word `i` (`0..TABLE_WORDS`) of the table.
    #[must_use]
    pub fn word(&self, i: usize) -> u64 {
        match i {
            0 | 1 => self.retired[i],
            2 => u64::from(self.serial),
            3 => u64::from(self.first_keyid) | u64::from(self.nkeyids) << 16,
            _ if i < 4 + MAX_TDS * TD_WORDS => {
                let k = (i - 4) / TD_WORDS;
                self.tds[k].map_or(0, |t| td_words(&t)[(i - 4) % TD_WORDS])
            }
            _ => {
                let k = i - 4 - MAX_TDS * TD_WORDS;
                self.pages
                    .get(k)
                    .copied()
                    .flatten()
                    .map_or(0, |p| p.pa | p.kind as u64 | u64::from(p.slot) << 4)
            }
        }
    }

    /// The table from its ledger words.
    ///
    /// # Errors
    /// `None` if a word is malformed (unknown state or kind, slot out of range).
    pub fn from_words(w: impl Fn(usize) -> u64) -> Option<Self> {
        let mut t = TdTable {
            retired: [w(0), w(1)],
            serial: u32::try_from(w(2)).ok()?,
            first_keyid: w(3) as u16,
            nkeyids: (w(3) >> 16) as u16,
            ..TdTable::default()
        };
        if w(3) >> 32 != 0 || usize::from(t.nkeyids) > MAX_KEYIDS {
            return None;
        }
        for k in 0..MAX_TDS {
            let words: [u64; TD_WORDS] = core::array::from_fn(|j| w(4 + k * TD_WORDS + j));
            t.tds[k] = td_from_words(&words)?;
            t.live += u8::from(t.tds[k].is_some());
        }
        for k in 0..MAX_TD_PAGES {
            let v = w(4 + MAX_TDS * TD_WORDS + k);
            if v == 0 {
                continue;
            }
            let kind = PageKind::from_u8((v & 0xF) as u8)?;
            let slot = ((v >> 4) & 0xFF) as u8;
            let pa = v & !0xFFF;
            if usize::from(slot) >= MAX_TDS || t.tds[usize::from(slot)].is_none() {
                return None;
            }
            t.pages[k] = Some(TdPage { pa, kind, slot });
        }
        Some(t)
    }
}

fn td_words(t: &Td) -> [u64; TD_WORDS] {
    let mut w = [0u64; TD_WORDS];
    w[0] = t.tdr | t.state as u64 | u64::from(t.nvcpus) << 4;
    w[1] = u64::from(t.owner.0) | u64::from(t.hkid) << 32 | u64::from(t.keyed) << 48;
    w[2] = u64::from(t.id) | u64::from(t.tdcs) << 32;
    for (slot, v) in w[4..].iter_mut().zip(&t.vcpus) {
        *slot = v.tdvpr | u64::from(v.cpu_plus_one) | u64::from(v.tdcx) << 52;
    }
    w
}

fn td_from_words(w: &[u64; TD_WORDS]) -> Option<Option<Td>> {
    if w.iter().all(|x| *x == 0) {
        return Some(None);
    }
    let state = TdState::from_u8((w[0] & 0xF) as u8)?;
    let nvcpus = ((w[0] >> 4) & 0xFF) as u8;
    if usize::from(nvcpus) > MAX_VCPUS || w[2] as u32 == 0 {
        return None;
    }
    let mut vcpus = [Vcpu::default(); MAX_VCPUS];
    for (v, x) in vcpus.iter_mut().zip(&w[4..]) {
        *v = Vcpu {
            tdvpr: x & 0x000F_FFFF_FFFF_F000,
            cpu_plus_one: (x & 0xFFF) as u16,
            tdcx: (x >> 52) as u8,
        };
    }
    Some(Some(Td {
        id: w[2] as u32,
        owner: Owner(w[1] as u32),
        hkid: (w[1] >> 32) as u16,
        tdr: w[0] & !0xFFF,
        state,
        keyed: (w[1] >> 48) as u16,
        tdcs: (w[2] >> 32) as u8,
        nvcpus,
        vcpus,
    }))
}

#[cfg(test)]
mod tests;
