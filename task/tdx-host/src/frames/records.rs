//! The record table: one slot per ownership record, sorted by base, with holes.
//!
//! Pattern: a fixed array (the ledger stores it slot by slot and journals the slots that
//! changed), kept sorted so that the record of an address is one binary search. Removing a
//! record leaves a *hole* (a slot with `count == 0`, no owner) instead of shifting the slots
//! above it; a new record next to a hole, or a few slots from one, takes it. So the steady
//! state of allocations and frees costs O(log n) per lookup and O(1) slot writes (and the
//! ledger journals one or a few slots), where a dense sorted array moves every slot above the
//! change. Holes at the end are dropped; when the table would be full, holes are squeezed out
//! in one pass (the only O(n) step, and only then).
//!
//! A single-frame allocation that continues its owner's run grows that record instead
//! ([`FrameAllocator::grow_record`]): one slot written, holes it now covers move to its end.
//!
//! Lookups first try a *hint*: a small direct-mapped table from a frame (its number mod
//! [`HINTS`]) to the slot last written for a record starting there. A hint is only a guess:
//! it is used when the slot it names checks out (it holds the address, or is exactly the
//! insertion point), else the binary search answers; moving slots never has to update it.
//!
//! Invariant: for slots `i < j`, `slot[i].end() <= slot[j].base` (a hole is the empty interval
//! at its base). So slots are sorted by base, live records are disjoint, and the last slot with
//! `base <= pa` is the only one that can hold `pa`.

use tdx_host_api::FrameSize;
use tdx_planner::addr::PAGE_4K;

use super::{FrameAllocator, Owner, Record, MAX_RECORDS};

/// Entries of the slot hint table.
pub(super) const HINTS: usize = 512;

/// Hint entry of a record starting at `pa`.
fn hint_of(pa: u64) -> usize {
    (pa / PAGE_4K) as usize % HINTS
}

/// Slots searched on each side of the insertion point for a hole to shift into.
const NEAR: usize = 16;

/// A hole at `base`.
fn hole(base: u64) -> Record {
    Record {
        owner: Owner(0),
        base,
        size: FrameSize::K4,
        count: 0,
        tag: 0,
    }
}

impl FrameAllocator<'_> {
    /// Index of the record holding `pa` (binary search; holes hold nothing).
    #[inline(always)]
    pub(super) fn record_of(&self, pa: u64) -> Option<usize> {
        let h = usize::from(self.hints[hint_of(pa)]);
        if self
            .records
            .get(h)
            .is_some_and(|r| r.base <= pa && pa < r.end())
        {
            return Some(h);
        }
        let i = self
            .records
            .partition_point(|r| r.base <= pa)
            .checked_sub(1)?;
        (pa < self.records[i].end()).then_some(i)
    }

    /// Whether `slots` more slots can be had (squeezing the holes out if that is what it
    /// takes; nothing changes otherwise).
    #[inline(always)]
    pub(super) fn record_room(&mut self, slots: usize) -> bool {
        if self.records.len() + slots <= MAX_RECORDS {
            return true;
        }
        self.record_room_squeezing(slots)
    }

    /// [`Self::record_room`] when the table is nearly full.
    #[inline(never)]
    fn record_room_squeezing(&mut self, slots: usize) -> bool {
        let holes = self.records.iter().filter(|r| r.count == 0).count();
        if self.records.len() - holes + slots > MAX_RECORDS {
            return false;
        }
        self.squeeze_holes();
        true
    }

    /// Drops every hole, keeping the order (one pass).
    fn squeeze_holes(&mut self) {
        let len = self.records.len();
        let mut kept = 0;
        for i in 0..len {
            if self.records[i].count != 0 {
                self.records[kept] = self.records[i];
                kept += 1;
            } else if kept == i {
                self.dirty.records(i, len);
            }
        }
        self.records.truncate(kept);
    }

    /// The insertion point of a record at `base` (frames no record holds): the first slot
    /// starting above `base`.
    pub(super) fn insertion_point(&self, base: u64) -> usize {
        let len = self.records.len();
        // The insertion point is the hinted slot's successor if the hinted slot starts at or
        // below `base` and its successor above. Two guesses: the slot last written for a
        // record starting at `base`, and the one for a record starting a frame below it (a
        // first-fit allocation usually follows the previous one). Either is used only if it
        // checks out.
        let fits = |h: usize| {
            h < len
                && self.records[h].base <= base
                && self.records.get(h + 1).is_none_or(|r| r.base > base)
        };
        let h = usize::from(self.hints[hint_of(base)]);
        let h2 = usize::from(self.hints[hint_of(base.wrapping_sub(PAGE_4K))]);
        if fits(h) {
            h + 1
        } else if fits(h2) {
            h2 + 1
        } else {
            self.records.partition_point(|r| r.base <= base)
        }
    }

    /// The slot of the record ending exactly at `base` (a frame no record holds), if there is
    /// one no more than [`NEAR`] holes below `pos`, the insertion point of `base` (holes
    /// between it and `base` all start at `base`).
    pub(super) fn record_ending_at(&self, base: u64, pos: usize) -> Option<usize> {
        let mut i = pos.checked_sub(1)?;
        let stop = pos.saturating_sub(NEAR);
        while self.records[i].count == 0 && self.records[i].base == base && i > stop {
            i -= 1;
        }
        let r = &self.records[i];
        (r.count != 0 && r.end() == base).then_some(i)
    }

    /// Record slot `j` grows by one frame, up to `end` (the frame was free, so no record
    /// starts below `end`): holes after it that now lie inside it move to its end.
    #[inline(always)]
    pub(super) fn grow_record(&mut self, j: usize, end: u64) {
        self.records[j].count += 1;
        let len = self.records.len();
        let mut i = j + 1;
        while i < len && self.records[i].count == 0 && self.records[i].base < end {
            self.records[i].base = end;
            i += 1;
        }
        self.dirty.records(j, i);
    }

    /// Puts `rec` (frames that no record holds; a free slot exists) into the table: into a
    /// hole next to its place, at the end by a push, or by shifting the slots up to a hole at
    /// most [`NEAR`] slots away, or (no hole near) by shifting every slot above it. Returns
    /// its slot.
    pub(super) fn insert_record(&mut self, rec: Record) -> usize {
        let pos = self.insertion_point(rec.base);
        self.insert_at(pos, rec)
    }

    /// [`Self::insert_record`] with its insertion point `pos` known.
    pub(super) fn insert_at(&mut self, pos: usize, rec: Record) -> usize {
        let len = self.records.len();
        let is_hole = |r: &[Record], i: usize| r.get(i).is_some_and(|s| s.count == 0);
        let at = if pos > 0 && is_hole(&self.records, pos - 1) {
            pos - 1
        } else if is_hole(&self.records, pos) {
            pos
        } else if pos == len {
            // Above every record (the usual first fit): a push moves nothing, where shifting
            // the slots below down into a hole would move and rewrite them all.
            let _ = self.push_record(rec);
            return pos;
        } else if let Some(h) = (pos + 1..len.min(pos + NEAR)).find(|&h| is_hole(&self.records, h))
        {
            self.records.copy_within(pos..h, pos + 1);
            self.dirty.records(pos, h + 1);
            self.place(pos, rec);
            return pos;
        } else if let Some(h) = (pos.saturating_sub(NEAR)..pos.saturating_sub(1))
            .rev()
            .find(|&h| is_hole(&self.records, h))
        {
            self.records.copy_within(h + 1..pos, h);
            self.dirty.records(h, pos);
            self.place(pos - 1, rec);
            return pos - 1;
        } else {
            // The caller made room.
            let _ = self.records.insert(pos, rec);
            self.dirty.records(pos, self.records.len());
            self.hint(pos, rec.base);
            return pos;
        };
        // A hole: the slot before it ends at or below `rec.base`; holes after it that now lie
        // inside `rec` move to its end (the next record starts there or later).
        self.place(at, rec);
        let mut j = at + 1;
        while j < len && self.records[j].count == 0 && self.records[j].base < rec.end() {
            self.records[j].base = rec.end();
            j += 1;
        }
        self.dirty.records(at, j);
        at
    }

    /// Writes `rec` into slot `i` and remembers where it is.
    fn place(&mut self, i: usize, rec: Record) {
        self.records[i] = rec;
        self.hint(i, rec.base);
    }

    /// Appends `rec` (above every record) as the table's last slot, marked and hinted; false
    /// (nothing changed) if the table is full, which callers rule out with `record_room`.
    #[inline(always)]
    pub(super) fn push_record(&mut self, rec: Record) -> bool {
        let len = self.records.len();
        if self.records.push(rec).is_err() {
            return false;
        }
        self.dirty.records(len, len + 1);
        self.hint(len, rec.base);
        true
    }

    /// Slot `i` now starts at `base`.
    pub(super) fn hint(&mut self, i: usize, base: u64) {
        // MAX_RECORDS fits u16.
        self.hints[hint_of(base)] = i as u16;
    }

    /// Puts `rec`, the upper part of a split record in slot `i`, right after it (into a hole
    /// there if there is one). The caller made room.
    pub(super) fn insert_after(&mut self, i: usize, rec: Record) {
        // A hole right after slot `i` starts at or after its old end, i.e. `rec`'s end.
        if self.records.get(i + 1).is_some_and(|r| r.count == 0) {
            self.records[i + 1] = rec;
            self.dirty.records(i + 1, i + 2);
        } else {
            let _ = self.records.insert(i + 1, rec);
            self.dirty.records(i + 1, self.records.len());
        }
        self.hint(i + 1, rec.base);
    }

    /// Slot `i` lost its last frame: it becomes a hole (dropped with the holes below it if it
    /// is the last slot).
    pub(super) fn vacate(&mut self, i: usize) {
        self.records[i] = hole(self.records[i].base);
        self.dirty.records(i, i + 1);
        // A later record at this address (the frame comes back from quarantine) goes here.
        self.hint(i, self.records[i].base);
        while self.records.last().is_some_and(|r| r.count == 0) {
            self.records.pop();
        }
    }
}
