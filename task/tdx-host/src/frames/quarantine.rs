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

use super::bitmap::{all_set, find_clear, find_set, set_bits};
use super::{FrameAllocator, FrameError, Owner, Record};

impl FrameAllocator<'_> {
    /// Frees `addrs` (frames of `size` owned by `owner`) into quarantine. All or nothing.
    ///
    /// # Errors
    /// `BadArgument` (empty or more than 512), `BadAlignment`, `UnknownFrame`, `DoubleFree`,
    /// `NotOwner`, `WrongSize`.
    pub fn free(
        &mut self,
        owner: Owner,
        size: FrameSize,
        addrs: &[PhysAddr],
    ) -> Result<usize, FrameError> {
        if addrs.is_empty() || addrs.len() > MAX_FRAMES_PER_CALL {
            return Err(FrameError::BadArgument);
        }
        // Strictly ascending lists (what `allocate` hands out) cannot repeat an address: skip
        // the quadratic duplicate check for them.
        let ascending = addrs.windows(2).all(|w| w[0].0 < w[1].0);
        for (i, a) in addrs.iter().enumerate() {
            self.check_free(owner, size, a.0)?;
            if !ascending && addrs[..i].contains(a) {
                return Err(FrameError::DoubleFree);
            }
        }
        for a in addrs {
            self.quarantine_frame(a.0, size);
        }
        Ok(addrs.len())
    }

    fn check_free(&self, owner: Owner, size: FrameSize, pa: u64) -> Result<(), FrameError> {
        if !pa.is_multiple_of(size.bytes()) {
            return Err(FrameError::BadAlignment);
        }
        self.pool_of(pa).ok_or(FrameError::UnknownFrame)?;
        let Some(r) = self.record_of(pa).map(|i| self.records[i]) else {
            // Free, quarantined or retired: not held by anyone.
            return Err(FrameError::DoubleFree);
        };
        if r.size != size || !(pa - r.base).is_multiple_of(size.bytes()) {
            return Err(FrameError::WrongSize);
        }
        if r.owner != owner {
            return Err(FrameError::NotOwner);
        }
        Ok(())
    }

    /// Moves one frame from its record into quarantine (splitting the record if needed).
    fn quarantine_frame(&mut self, pa: u64, size: FrameSize) {
        let Some(i) = self.record_of(pa) else { return };
        let r = self.records[i];
        let step = size.bytes();
        if r.count == 1 {
            self.records.remove(i);
            self.dirty.records(i, self.records.len());
        } else if pa == r.base {
            self.records[i].base += step;
            self.records[i].count -= 1;
        } else if pa + step == r.end() {
            self.records[i].count -= 1;
        } else {
            let left = ((pa - r.base) / step) as u32;
            self.records[i].count = left;
            let right = Record {
                owner: r.owner,
                base: pa + step,
                size,
                count: r.count - left - 1,
                tag: r.tag,
            };
            // Right after its left part keeps the table sorted. RESERVED_FOR_FREE slots
            // guarantee room.
            let _ = self.records.insert(i + 1, right);
        }
        self.dirty.records(i, self.records.len().max(i + 1));
        if let Some(u) = self.usage.get_mut(usize::from(r.owner.index())) {
            *u -= step;
        }
        self.quarantine_run(pa, size.frames_4k());
    }

    /// Sets the quarantine bits of `frames` 4 KiB frames from `pa` (inside one pool, held).
    fn quarantine_run(&mut self, pa: u64, frames: u64) {
        if let Some(k) = self.pool_of(pa) {
            let p = &self.pools[k];
            let rel = p.rel(pa);
            set_bits(self.bits, p.qbit(rel), frames, true);
            self.dirty.bits(p.qbit(rel), frames);
            let c = &mut self.cache[k];
            c.quarantined += frames;
            c.q_from = c.q_from.min(rel);
        }
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

    /// One compacting pass: kept records slide down in order, so the table stays sorted.
    fn reclaim_where(&mut self, pred: impl Fn(Owner) -> bool) -> u64 {
        let mut moved = 0;
        let mut kept = 0;
        let len = self.records.len();
        for i in 0..len {
            let r = self.records[i];
            if !pred(r.owner) {
                self.records[kept] = r;
                kept += 1;
                continue;
            }
            if moved == 0 {
                self.dirty.records(kept, len);
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
            let mut at = p.qbit(c.q_from);
            let mut left = c.quarantined;
            while left > 0 && n < out.len() {
                let Some(s) = find_set(self.bits, at, end) else {
                    break;
                };
                let e = find_clear(self.bits, s, end).unwrap_or(end);
                // A run of quarantine bits lies inside its pool, which does not wrap.
                out[n] = PhysRange::saturating(
                    p.range.base().0 + p.rel_of_qbit(s) * PAGE_4K,
                    (e - s) * PAGE_4K,
                );
                n += 1;
                left -= e - s;
                at = e;
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

    /// Quarantined bytes in total.
    #[must_use]
    pub fn quarantined_bytes(&self) -> u64 {
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
        self.dirty.pool(k);
        let c = &mut self.cache[k];
        c.quarantined -= frames;
        if c.quarantined == 0 {
            c.q_from = p.frames();
        } else if rel <= c.q_from && c.q_from < rel + frames {
            // The range covered the bound: nothing below `q_from` is set and the range is now
            // clear, so the next quarantined frame lies past it (found with a word scan; servers
            // release runs in the order `quarantined` lists them, so this is the next run).
            let end = p.qbit(p.frames());
            c.q_from = find_set(self.bits, p.qbit(rel + frames), end)
                .map_or(p.frames(), |b| p.rel_of_qbit(b));
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
        Ok(())
    }
}
