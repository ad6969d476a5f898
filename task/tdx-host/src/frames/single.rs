//! The one-frame path of the allocator: [`FrameAllocator::alloc_many`] of a single frame,
//! without the bookkeeping of runs and pool segments, and the writes both paths share.
//!
//! Pattern: a 4 KiB request reads the free-bitmap word at the first eligible pool's cursor;
//! its first free bit at or above the cursor is exactly the first fit (no frame below the
//! cursor is free), so this probe answers like the search (`scan_pool`), which runs only when
//! the word has no free, ready frame. The frame is taken with one bit write, and the record
//! ending right below it grows by it when it is the same owner's, of the same size and tag and
//! in the same pool (found through the slot the last such allocation wrote, checked), else the
//! frame gets a record of its own.
//!
//! Invariants: the answer is the one the bulk path would give (first eligible pool in `PoolId`
//! order, its lowest free frame, TDX frames only from ready 1 GiB blocks); a grown record stays
//! inside one pool and the table stays sorted and disjoint (holes it covers move to its end);
//! every write is reported to the ledger's [`super::Dirty`] marks.

use tdx_host_api::FrameSize;
use tdx_planner::addr::{PhysAddr, GIB, PAGE_4K};

use super::bitmap::set_bits;
use super::summary::Change;
use super::{
    is_ready, scan_pool, FrameAllocator, FrameError, MemClass, Owner, Record, Request,
    RESERVED_FOR_FREE,
};

impl FrameAllocator<'_> {
    /// [`Self::alloc_many`] of one frame (the common request), without the bookkeeping of
    /// runs and pool segments: the first pool (in `PoolId` order) with an eligible frame gives
    /// its lowest one, exactly as the bulk path would. Same checks, same errors, same order of
    /// errors (`NoMemory` before `TableFull`); nothing changes on an error.
    ///
    /// Cost: a 4 KiB request first probes the word of the free bitmap at the pool's cursor
    /// (`probe_4k`), which answers alone while the pool's lowest free frames are dense; the
    /// frame is then taken with one bit write (`take_one`) and, when it continues the caller's
    /// last run, its record grows by one frame in place (`add_record`).
    #[inline(never)]
    pub(super) fn alloc_one(
        &mut self,
        owner: Owner,
        req: Request,
        tag: u32,
    ) -> Result<PhysAddr, FrameError> {
        if req.size == FrameSize::K4 {
            let first = self
                .pools
                .iter()
                .position(|p| p.online && p.class == req.class && req.nodes.has(p.node));
            // A frame the probe finds is free (so the pool has the one free frame asked for)
            // and the lowest of the first eligible pool: the search's answer, taken at once.
            if let Some(k) = first {
                if let Some(rel) = self.probe_4k(k) {
                    return self.commit_4k(owner, tag, k, rel);
                }
            }
        }
        self.alloc_one_searching(owner, req, tag)
    }

    /// [`Self::alloc_one`] when the probe did not answer: the first eligible pool in order
    /// whose search (`scan_pool`) finds a frame gives it.
    #[inline(never)]
    fn alloc_one_searching(
        &mut self,
        owner: Owner,
        req: Request,
        tag: u32,
    ) -> Result<PhysAddr, FrameError> {
        let per = req.size.frames_4k();
        let mut got = None;
        for k in 0..self.pools.len() {
            let pool = &self.pools[k];
            if !(pool.online && pool.class == req.class && req.nodes.has(pool.node))
                || pool.free() < per
            {
                continue;
            }
            let mut one = [PhysAddr(0)];
            let cache = &mut self.cache[k];
            if scan_pool(
                self.bits,
                &self.summary,
                &self.ready,
                pool,
                cache,
                req,
                &mut one,
            ) == 1
            {
                got = Some((k, one[0]));
                break;
            }
        }
        let (k, pa) = got.ok_or(FrameError::NoMemory)?;
        if !self.record_room(1 + RESERVED_FOR_FREE) {
            return Err(FrameError::TableFull);
        }
        self.last_pool = k;
        if per == 1 {
            let rel = self.pools[k].rel(pa.0);
            self.take_one(k, rel);
        } else {
            self.take(k, pa.0, per);
        }
        let rec = Record {
            owner,
            base: pa.0,
            size: req.size,
            count: 1,
            tag,
        };
        if !self.grow_last(k, &rec) {
            self.add_record(k, rec);
        }
        self.usage[usize::from(owner.index())] += req.size.bytes();
        Ok(pa)
    }

    /// The lowest free 4 KiB frame of pool `k` if the word of the free bitmap at the pool's
    /// cursor holds it; `None` sends the caller to the full search (`scan_pool`), which then
    /// finds the same answer the long way. Exact, not a guess: no frame below `free_from` is
    /// free, so the first free bit at or above it in its word is the pool's lowest free frame;
    /// a TDX frame also needs its 1 GiB block ready (the last block found ready is remembered).
    /// Raises `free_from` to that frame, as `scan_pool` would, and returns its pool-relative
    /// index.
    #[inline(always)]
    fn probe_4k(&mut self, k: usize) -> Option<u64> {
        let p = &self.pools[k];
        let c = &mut self.cache[k];
        let b = p.bit + c.free_from;
        let m = self.bits.get((b / 64) as usize)? & (u64::MAX << (b % 64));
        if m == 0 {
            return None;
        }
        // Bits past the pool's last frame in this word are its first quarantine bits.
        let f = (b | 63) - 63 + u64::from(m.trailing_zeros()) - p.bit;
        if f >= p.frames() {
            return None;
        }
        if p.class == MemClass::Tdx {
            let block = (p.range.base().0 + f * PAGE_4K) & !(GIB - 1);
            if block != self.ready_block {
                if !is_ready(&self.ready, block, GIB) {
                    return None;
                }
                self.ready_block = block;
            }
        }
        c.free_from = f;
        Some(f)
    }

    /// The rest of [`Self::alloc_one`] for the free 4 KiB frame `rel` of pool `k` that
    /// `probe_4k` found: the same steps and the same `TableFull` check as the general path.
    #[inline(always)]
    fn commit_4k(
        &mut self,
        owner: Owner,
        tag: u32,
        k: usize,
        rel: u64,
    ) -> Result<PhysAddr, FrameError> {
        if !self.record_room(1 + RESERVED_FOR_FREE) {
            return Err(FrameError::TableFull);
        }
        self.last_pool = k;
        self.take_one(k, rel);
        let pa = self.pools[k].range.base().0 + rel * PAGE_4K;
        let rec = Record {
            owner,
            base: pa,
            size: FrameSize::K4,
            count: 1,
            tag,
        };
        if !self.grow_last(k, &rec) {
            self.add_record(k, rec);
        }
        self.usage[usize::from(owner.index())] += PAGE_4K;
        Ok(PhysAddr(pa))
    }

    /// Takes the `frames` free 4 KiB frames from `pa` in pool `k` (the caller found them free
    /// and checked room for their record): clears their free bits, reports them and the
    /// pool's counters dirty, and refreshes the chunk summary over them.
    #[inline]
    pub(super) fn take(&mut self, k: usize, pa: u64, frames: u64) {
        let p = &mut self.pools[k];
        let (bit, rel) = (p.bit_of(pa), p.rel(pa));
        set_bits(self.bits, bit, frames, false);
        self.dirty.bits(bit, frames);
        self.dirty.pool_in_use();
        p.in_use += frames;
        let span = p.span(self.cache[k].sbit);
        self.summary
            .refresh(self.bits, &span, rel, frames, Change::Cleared);
    }

    /// [`Self::take`] of the one free 4 KiB frame with pool-relative index `rel`: one bit
    /// cleared, its chunk's summary bits updated from the word it was in when that word
    /// decides them.
    #[inline(always)]
    fn take_one(&mut self, k: usize, rel: u64) {
        let p = &mut self.pools[k];
        let bit = p.bit + rel;
        let w = &mut self.bits[(bit / 64) as usize];
        *w &= !(1 << (bit % 64));
        let word = *w;
        self.dirty.bits(bit, 1);
        self.dirty.pool_in_use();
        p.in_use += 1;
        let span = p.span(self.cache[k].sbit);
        self.summary.cleared_one(self.bits, &span, rel, word);
    }

    /// Records that `rec` (one frame, just taken from pool `k` for `rec.owner`) is held: the
    /// record ending right below it grows by that frame when it is the same owner's, of the
    /// same size and tag and in the same pool (one slot written, no slot used, so a caller
    /// allocating frame after frame keeps one record); else `rec` gets a slot of its own
    /// (`insert_record`). The record below is looked up through `last_alloc` (checked) or
    /// from the insertion point, past at most `records::NEAR` holes at `rec.base`; missing
    /// it only costs a slot.
    #[inline(never)]
    fn add_record(&mut self, k: usize, rec: Record) {
        let len = self.records.len();
        // Above every record, the last slot a live one (the usual first fit): only that record
        // may grow by the frame, and else a push places it (the general path's answer, without
        // its search). A hole at the end (one a grown record moved there) takes the general
        // path.
        if self
            .records
            .last()
            .is_none_or(|r| r.count != 0 && r.base < rec.base)
        {
            if let Some(j) = len.checked_sub(1) {
                if self.records[j].end() == rec.base && self.grows(j, k, &rec) {
                    self.grow_record(j, rec.end());
                    self.last_alloc = j;
                    return;
                }
            }
            // The caller made room (`record_room`), so the push succeeds.
            if self.push_record(rec) {
                self.last_alloc = len;
                return;
            }
        }
        let pos = self.insertion_point(rec.base);
        if let Some(j) = self.record_ending_at(rec.base, pos) {
            if self.grows(j, k, &rec) {
                self.grow_record(j, rec.end());
                self.last_alloc = j;
                return;
            }
        }
        self.last_alloc = self.insert_at(pos, rec);
    }

    /// [`Self::add_record`]'s common case: the slot `last_alloc` names is the record ending
    /// at `rec.base` and may grow by it (then it did). `false`: nothing changed.
    #[inline(always)]
    fn grow_last(&mut self, k: usize, rec: &Record) -> bool {
        let j = self.last_alloc;
        let pool_base = self.pools[k].range.base().0;
        let Some(r) = self.records.get(j) else {
            return false;
        };
        // The checks of `grows`, and that slot `j` ends at `rec.base` (a hole has count 0).
        if r.owner != rec.owner
            || r.size != rec.size
            || r.tag != rec.tag
            || r.count == 0
            || r.count == u32::MAX
            || r.base < pool_base
            || r.end() != rec.base
        {
            return false;
        }
        self.grow_record(j, rec.end());
        true
    }

    /// Whether record slot `j`, which ends at `rec.base`, may take `rec`'s frame: same owner,
    /// size and tag, and the same pool `k` (a record never spans two pools).
    #[inline(always)]
    fn grows(&self, j: usize, k: usize, rec: &Record) -> bool {
        let r = &self.records[j];
        r.owner == rec.owner
            && r.size == rec.size
            && r.tag == rec.tag
            && r.count < u32::MAX
            && r.base >= self.pools[k].range.base().0
    }
}
