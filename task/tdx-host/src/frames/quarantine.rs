//! The quarantine half of the frame allocator: frees and reclaims move frames from their
//! records into quarantine (the caller's usage drops at once); the server scrubs and checks
//! them, then [`FrameAllocator::release_scrubbed`] frees them or [`FrameAllocator::retire`]
//! keeps them out for good.
//!
//! Invariants: a quarantined 4 KiB frame has its quarantine bit set and belongs to no record;
//! each pool's `PoolCache::quarantined` is exactly its count of set quarantine bits and
//! `PoolCache::q_from` a lower bound on the first of them.

use tdx_host_api::{FrameSize, MAX_FRAMES_PER_CALL};
use tdx_planner::addr::{PhysAddr, PhysRange, PAGE_4K};

use super::bitmap::{all_set, find_clear, set_bits};
use super::summary::Change;
use super::{FrameAllocator, FrameError, Owner, Record};

/// Why a list free was refused, and which entry of the list (in the caller's order) is at
/// fault: `None` when the list as a whole is (empty, too long, or it would need more record
/// slots than the table has). Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The first entry (lowest index) that cannot be freed, if one entry is the reason.
    pub index: Option<usize>,
    /// What is wrong with it.
    pub error: FrameError,
}

/// Entries of `list` from `i` that are consecutive frames (`step` apart) below `end`.
fn run_len(list: &[PhysAddr], i: usize, step: u64, end: u64) -> usize {
    let mut j = i + 1;
    while j < list.len() && list[j].0 == list[j - 1].0 + step && list[j].0 < end {
        j += 1;
    }
    j - i
}

impl FrameAllocator<'_> {
    /// Frees `addrs` (frames of `size` owned by `owner`) into quarantine. All or nothing.
    /// [`Self::free_many`] without the entry's index.
    ///
    /// # Errors
    /// `BadArgument` (empty or more than 512), `BadAlignment`, `UnknownFrame`, `DoubleFree`,
    /// `NotOwner`, `WrongSize`, `TableFull`.
    pub fn free(
        &mut self,
        owner: Owner,
        size: FrameSize,
        addrs: &[PhysAddr],
    ) -> Result<usize, FrameError> {
        self.free_many(owner, size, addrs).map_err(|r| r.error)
    }

    /// [`Self::free`] of the one frame at `pa` (the one-frame request's path, without a list).
    ///
    /// # Errors
    /// As [`Self::free`] of `[pa]`.
    #[inline]
    pub fn free_single(
        &mut self,
        owner: Owner,
        size: FrameSize,
        pa: u64,
    ) -> Result<(), FrameError> {
        self.free_one(owner, size, pa).map_err(|r| r.error)
    }

    /// The bulk free: moves `addrs` (1..=512 frames of `size`, each held by exactly `owner` —
    /// index and generation — in any order) into quarantine and returns how many. All or
    /// nothing: if any entry is misaligned, outside every pool, not held (free, quarantined,
    /// retired, or listed twice), of another size or another owner, nothing changes and the
    /// first such entry in the list is named.
    ///
    /// Cost: the list is copied once (so it is read once) and sorted unless already ascending;
    /// consecutive frames of one record are checked as one run (one record lookup) and each
    /// run is one record update, one whole-word write of the quarantine bits and one dirty
    /// range.
    ///
    /// # Errors
    /// [`Refused`]: `BadArgument` (empty or more than 512), `BadAlignment`, `UnknownFrame`,
    /// `DoubleFree`, `NotOwner`, `WrongSize`; `TableFull` (no entry) if splitting the records
    /// needs more slots than the table has.
    #[inline]
    pub fn free_many(
        &mut self,
        owner: Owner,
        size: FrameSize,
        addrs: &[PhysAddr],
    ) -> Result<usize, Refused> {
        if let [one] = addrs {
            return self.free_one(owner, size, one.0).map(|()| 1);
        }
        self.free_bulk(owner, size, addrs)
    }

    /// [`Self::free_many`] of any count but one.
    fn free_bulk(
        &mut self,
        owner: Owner,
        size: FrameSize,
        addrs: &[PhysAddr],
    ) -> Result<usize, Refused> {
        let n = addrs.len();
        if n == 0 || n > MAX_FRAMES_PER_CALL {
            return Err(Refused {
                index: None,
                error: FrameError::BadArgument,
            });
        }
        // An ascending list (what `alloc_many` hands out) is used in place: it cannot repeat
        // an entry, and the caller's borrow keeps it from changing. Any other order is
        // copied once and sorted, which also puts duplicates side by side.
        let mut copy;
        let list = if addrs.windows(2).all(|w| w[0].0 < w[1].0) {
            addrs
        } else {
            copy = [PhysAddr(0); MAX_FRAMES_PER_CALL];
            let c = &mut copy[..n];
            c.copy_from_slice(addrs);
            c.sort_unstable_by_key(|a| a.0);
            c
        };
        let splits = match self.free_runs(owner, size, list) {
            Ok(s) => s,
            Err(error) => return Err(self.first_refused(owner, size, addrs, error)),
        };
        if !self.record_room(splits) {
            return Err(Refused {
                index: None,
                error: FrameError::TableFull,
            });
        }
        // The same runs again (the checks held, so each lies inside one record; a split
        // leaves the next run of that record in the upper part, which `record_of` finds).
        let mut i = 0;
        while i < list.len() {
            let Some(k) = self.record_of(list[i].0) else {
                break;
            };
            let count = run_len(list, i, size.bytes(), self.records[k].end());
            self.quarantine_frames(k, list[i].0, size, count as u32);
            i += count;
        }
        Ok(n)
    }

    /// [`Self::free_many`] of one frame: one check (one pool and one record lookup), then the
    /// record update and the quarantine bits in the pool the check found.
    #[inline(never)]
    fn free_one(&mut self, owner: Owner, size: FrameSize, pa: u64) -> Result<(), Refused> {
        // The 4 KiB frame (the common free) gets its own copy of the path with the size a
        // constant, so its byte and frame counts, alignment test and bit writes fold to the
        // one-bit forms; same checks, same order.
        if size == FrameSize::K4 {
            self.free_one_of(owner, FrameSize::K4, pa)
        } else {
            self.free_one_of(owner, size, pa)
        }
    }

    /// [`Self::free_one`] with `size` given (a constant in the 4 KiB copy).
    #[inline(always)]
    fn free_one_of(&mut self, owner: Owner, size: FrameSize, pa: u64) -> Result<(), Refused> {
        let (i, k) = match self.check_free_in(owner, size, pa) {
            Ok(found) => found,
            Err(error) => {
                return Err(Refused {
                    index: Some(0),
                    error,
                })
            }
        };
        let r = &self.records[i];
        if pa != r.base && pa + size.bytes() != r.end() {
            return self.free_one_splitting(k, i, size, pa);
        }
        self.quarantine_frames_in(k, i, pa, size, 1);
        Ok(())
    }

    /// [`Self::free_one`] of a frame inside its record (checked: slot `i`, pool `k`), which
    /// splits the record in two.
    #[inline(never)]
    fn free_one_splitting(
        &mut self,
        k: usize,
        mut i: usize,
        size: FrameSize,
        pa: u64,
    ) -> Result<(), Refused> {
        // A split needs a slot; making room may squeeze holes out and move the record.
        if !self.record_room(1) {
            return Err(Refused {
                index: None,
                error: FrameError::TableFull,
            });
        }
        i = self.record_of(pa).unwrap_or(i);
        self.quarantine_frames_in(k, i, pa, size, 1);
        Ok(())
    }

    /// Checks the ascending `list`, a run of consecutive frames inside one record at a time
    /// (one lookup per run). Returns the record splits freeing it needs, or the first error
    /// met in address order.
    fn free_runs(
        &self,
        owner: Owner,
        size: FrameSize,
        list: &[PhysAddr],
    ) -> Result<usize, FrameError> {
        let step = size.bytes();
        let (mut i, mut splits) = (0, 0);
        while i < list.len() {
            let pa = list[i].0;
            if i > 0 && list[i - 1].0 == pa {
                return Err(FrameError::DoubleFree);
            }
            let r = self.records[self.check_free(owner, size, pa)?];
            let count = run_len(list, i, step, r.end());
            if pa != r.base && pa + count as u64 * step != r.end() {
                splits += 1;
            }
            i += count;
        }
        Ok(splits)
    }

    /// The refusal for a list `free_runs` found `error` in: the first entry of `addrs`, in
    /// the caller's order, that fails on its own or repeats an earlier one (error path only).
    fn first_refused(
        &self,
        owner: Owner,
        size: FrameSize,
        addrs: &[PhysAddr],
        error: FrameError,
    ) -> Refused {
        for (i, a) in addrs.iter().enumerate() {
            if let Err(e) = self.check_free(owner, size, a.0) {
                return Refused {
                    index: Some(i),
                    error: e,
                };
            }
            if addrs[..i].contains(a) {
                return Refused {
                    index: Some(i),
                    error: FrameError::DoubleFree,
                };
            }
        }
        Refused { index: None, error }
    }

    /// The record slot holding `pa`, if `owner` may free it as a frame of `size`.
    fn check_free(&self, owner: Owner, size: FrameSize, pa: u64) -> Result<usize, FrameError> {
        self.check_free_in(owner, size, pa).map(|(i, _)| i)
    }

    /// [`Self::check_free`], also naming the pool of `pa`.
    #[inline(always)]
    fn check_free_in(
        &self,
        owner: Owner,
        size: FrameSize,
        pa: u64,
    ) -> Result<(usize, usize), FrameError> {
        if !pa.is_multiple_of(size.bytes()) {
            return Err(FrameError::BadAlignment);
        }
        let k = self.pool_of(pa).ok_or(FrameError::UnknownFrame)?;
        let Some(i) = self.record_of(pa) else {
            // Free, quarantined or retired: not held by anyone.
            return Err(FrameError::DoubleFree);
        };
        let r = self.records[i];
        if r.size != size || !(pa - r.base).is_multiple_of(size.bytes()) {
            return Err(FrameError::WrongSize);
        }
        if r.owner != owner {
            return Err(FrameError::NotOwner);
        }
        Ok((i, k))
    }

    /// Moves `count` frames of `size` from `pa` (checked: inside record slot `i`) from their
    /// record into quarantine, shrinking, splitting or vacating the record.
    fn quarantine_frames(&mut self, i: usize, pa: u64, size: FrameSize, count: u32) {
        if let Some(k) = self.pool_of(pa) {
            self.quarantine_frames_in(k, i, pa, size, count);
        }
    }

    /// [`Self::quarantine_frames`] with `pa`'s pool `k` known.
    #[inline(always)]
    fn quarantine_frames_in(&mut self, k: usize, i: usize, pa: u64, size: FrameSize, count: u32) {
        let r = self.records[i];
        let step = size.bytes();
        let bytes = u64::from(count) * step;
        if count == r.count {
            self.vacate(i);
        } else if pa == r.base {
            self.records[i].base += bytes;
            self.records[i].count -= count;
            self.dirty.records(i, i + 1);
            self.hint(i, pa + bytes);
        } else if pa + bytes == r.end() {
            self.records[i].count -= count;
            self.dirty.records(i, i + 1);
        } else {
            let left = ((pa - r.base) / step) as u32;
            self.records[i].count = left;
            self.dirty.records(i, i + 1);
            let right = Record {
                owner: r.owner,
                base: pa + bytes,
                size,
                count: r.count - left - count,
                tag: r.tag,
            };
            self.insert_after(i, right);
        }
        if let Some(u) = self.usage.get_mut(usize::from(r.owner.index())) {
            *u -= bytes;
        }
        self.quarantine_run_in(k, pa, bytes / PAGE_4K);
    }

    /// Sets the quarantine bits of `frames` 4 KiB frames from `pa` (inside one pool, held).
    fn quarantine_run(&mut self, pa: u64, frames: u64) {
        if let Some(k) = self.pool_of(pa) {
            self.quarantine_run_in(k, pa, frames);
        }
    }

    /// [`Self::quarantine_run`] in pool `k` (which holds `pa`).
    #[inline(always)]
    fn quarantine_run_in(&mut self, k: usize, pa: u64, frames: u64) {
        let p = &self.pools[k];
        let rel = p.rel(pa);
        set_bits(self.bits, p.qbit(rel), frames, true);
        self.dirty.bits(p.qbit(rel), frames);
        let c = &mut self.cache[k];
        c.quarantined += frames;
        self.quarantined_frames += frames;
        c.q_from = c.q_from.min(rel);
        self.summary.quarantined(&p.span(c.sbit), rel, frames);
    }

    /// Moves every record of task index `owner.index()` whose generation differs from
    /// `owner`'s (a restarted client's old incarnations) into quarantine. Returns bytes moved.
    pub fn reclaim_stale(&mut self, owner: Owner) -> u64 {
        self.reclaim_where(|r| r.index() == owner.index() && r != owner)
    }

    /// Moves every record of task index `index` (any generation) into quarantine.
    pub fn reclaim_all(&mut self, index: u16) -> u64 {
        self.reclaim_where(|r| r.index() == index)
    }

    /// One compacting pass: kept records slide down in order, so the table stays sorted (holes
    /// are dropped on the way).
    fn reclaim_where(&mut self, pred: impl Fn(Owner) -> bool) -> u64 {
        let mut moved = 0;
        let mut kept = 0;
        let len = self.records.len();
        for i in 0..len {
            let r = self.records[i];
            let hole = r.count == 0;
            if !hole && !pred(r.owner) {
                self.records[kept] = r;
                kept += 1;
                continue;
            }
            if kept == i {
                // First slot dropped: everything from here moves.
                self.dirty.records(kept, len);
            }
            if hole {
                continue;
            }
            moved += r.bytes();
            if let Some(u) = self.usage.get_mut(usize::from(r.owner.index())) {
                *u -= r.bytes();
            }
            self.quarantine_run(r.base, r.bytes() / PAGE_4K);
        }
        self.records.truncate(kept);
        moved
    }

    /// Writes up to `out.len()` maximal runs of quarantined frames (each inside one pool) that
    /// the server must scrub and verify; returns how many were written.
    pub fn quarantined(&self, out: &mut [PhysRange]) -> usize {
        let mut n = 0;
        for (p, c) in self.pools.iter().zip(self.cache.iter()) {
            // Start at the pool's first quarantined frame; stop once all of them were reported.
            let end = p.qbit(p.frames());
            let q = p.qspan(c.sbit);
            let mut at = c.q_from;
            let mut left = c.quarantined;
            while left > 0 && n < out.len() {
                let Some(first) = self.summary.next_quarantined(self.bits, &q, at) else {
                    break;
                };
                let s = p.qbit(first);
                let e = find_clear(self.bits, s, end).unwrap_or(end);
                // A run of quarantine bits lies inside its pool, which does not wrap.
                out[n] = PhysRange::saturating(
                    p.range.base().0 + p.rel_of_qbit(s) * PAGE_4K,
                    (e - s) * PAGE_4K,
                );
                n += 1;
                left -= e - s;
                at = p.rel_of_qbit(e);
            }
        }
        n
    }

    /// Whether every 4 KiB frame of `range` is quarantined.
    #[must_use]
    pub fn is_quarantined(&self, range: PhysRange) -> bool {
        self.check_quarantined(range).is_ok()
    }

    /// Whether every 4 KiB frame of `range` (inside one pool) is free.
    #[must_use]
    pub fn is_free(&self, range: PhysRange) -> bool {
        let Some(k) = self.pool_of(range.base().0) else {
            return false;
        };
        let p = &self.pools[k];
        range.end().0 <= p.end()
            && range.base().is_aligned(PAGE_4K)
            && all_set(
                self.bits,
                p.bit_of(range.base().0),
                range.size().0 / PAGE_4K,
            )
    }

    /// Quarantined bytes in total (the running count, not a walk over the pools).
    #[must_use]
    pub fn quarantined_bytes(&self) -> u64 {
        self.quarantined_frames * PAGE_4K
    }

    /// Quarantined bytes summed over the pools' own counts (what
    /// [`Self::quarantined_bytes`] keeps as a running total; tests compare the two).
    #[cfg(test)]
    #[must_use]
    pub fn quarantined_bytes_by_pool(&self) -> u64 {
        self.cache.iter().map(|c| c.quarantined * PAGE_4K).sum()
    }

    fn check_quarantined(&self, range: PhysRange) -> Result<usize, FrameError> {
        if !range.base().is_aligned(PAGE_4K)
            || !range.size().0.is_multiple_of(PAGE_4K)
            || range.is_empty()
        {
            return Err(FrameError::BadAlignment);
        }
        let k = self
            .pool_of(range.base().0)
            .ok_or(FrameError::UnknownFrame)?;
        let p = &self.pools[k];
        let end = range.end().0;
        if end > p.end()
            || !all_set(
                self.bits,
                p.qbit(p.rel(range.base().0)),
                range.size().0 / PAGE_4K,
            )
        {
            return Err(FrameError::NotQuarantined);
        }
        Ok(k)
    }

    /// Clears the quarantine bits of `range` (checked: all set, one pool `k`), keeping the pool's
    /// quarantine count exact and its lower bound tight. Returns (first index, frames).
    fn unquarantine(&mut self, k: usize, range: PhysRange) -> (u64, u64) {
        let p = &self.pools[k];
        let (rel, frames) = (p.rel(range.base().0), range.size().0 / PAGE_4K);
        set_bits(self.bits, p.qbit(rel), frames, false);
        self.dirty.bits(p.qbit(rel), frames);
        // `release_scrubbed` then lowers `in_use`, `retire` raises `retired` (and marks it).
        self.dirty.pool_in_use();
        let c = &mut self.cache[k];
        let q = p.qspan(c.sbit);
        self.summary.unquarantined(self.bits, &q, rel, frames);
        c.quarantined -= frames;
        self.quarantined_frames -= frames;
        if c.quarantined == 0 {
            c.q_from = p.frames();
        } else if rel <= c.q_from && c.q_from < rel + frames {
            // The range covered the bound: nothing below `q_from` is set and the range is now
            // clear, so the next quarantined frame lies past it (found through the summary;
            // servers release runs in the order `quarantined` lists them, so this is the next
            // run).
            c.q_from = self
                .summary
                .next_quarantined(self.bits, &q, rel + frames)
                .unwrap_or(p.frames());
        }
        (rel, frames)
    }

    /// The server scrubbed `range` and found every page PT_NDA: it becomes free.
    ///
    /// # Errors
    /// `NotQuarantined` unless every frame of `range` is quarantined (inside one pool).
    pub fn release_scrubbed(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let k = self.check_quarantined(range)?;
        let (rel, frames) = self.unquarantine(k, range);
        let p = &mut self.pools[k];
        set_bits(self.bits, p.bit + rel, frames, true);
        self.dirty.bits(p.bit + rel, frames);
        p.in_use -= frames;
        let c = &mut self.cache[k];
        c.free_from = c.free_from.min(rel);
        let span = p.span(c.sbit);
        self.summary
            .refresh(self.bits, &span, rel, frames, Change::Set);
        Ok(())
    }

    /// Scrub or verification failed: the frames are never handed out again (§9.2: leak rather
    /// than reuse memory that may still be private).
    ///
    /// # Errors
    /// `NotQuarantined` unless every frame of `range` is quarantined (inside one pool).
    pub fn retire(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let k = self.check_quarantined(range)?;
        let (_, frames) = self.unquarantine(k, range);
        self.pools[k].retired += frames;
        self.dirty.pool_retired(k);
        Ok(())
    }
}
