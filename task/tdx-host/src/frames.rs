//! The frame allocator: per-node, per-class (TDX / non-TDX) pools of 4 KiB, 2 MiB and 1 GiB
//! frames, with owners, quotas' bookkeeping and scrub-before-reuse.
//!
//! Pattern: no heap. Free-space metadata is **2 bits per 4 KiB frame** in caller-provided words
//! (one "free" bitmap and one "quarantined" bitmap, each 1 bit per 4 KiB; 16 GiB of pools need
//! 1 MiB, see [`bitmap_words`]). Ownership is one [`Record`] per contiguous
//! run of same-size frames held by one task (at most [`MAX_RECORDS`], 24 bytes each, ~60 KiB).
//! Pools (at most [`MAX_POOLS`]) are the region map: each is a 4 KiB-aligned range on one node of
//! one class, online or offline.
//!
//! Frame life cycle: free → allocated (a record) → quarantined (freed or reclaimed; the server
//! must scrub it and check TDH.PHYMEM.PAGE.RDMD = PT_NDA, §8.4, §9.1) → free again
//! ([`FrameAllocator::release_scrubbed`]) or retired for good ([`FrameAllocator::retire`], as KVM
//! leaks pages it could not reclaim, §9.2).
//!
//! Invariants (checked by the property tests):
//! - a 4 KiB frame is in exactly one state: free (free bit), quarantined (quarantine bit),
//!   retired, or inside exactly one record; `pool.in_use` counts all but the free ones;
//! - TDX frames are handed out only from 1 GiB blocks marked ready (TDH.SYS.TDMR.INIT finished,
//!   §3.2) and only from online pools; pools never contain PAMTs, reserved areas or the image (the
//!   region builder carves those out; `add_pool` refuses overlaps with each other);
//! - allocation is all-or-nothing and leaves [`RESERVED_FOR_FREE`] record slots unused, so a free
//!   of up to 512 frames (the most one request carries) can always split records;
//! - `usage[task index]` equals the bytes of that index's records.

use heapless::Vec;
use tdx_host_api::{FrameSize, MemClass, MAX_FRAMES_PER_CALL};

use crate::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

/// Most pools (regions).
pub const MAX_POOLS: usize = 128;
/// Most ownership records.
pub const MAX_RECORDS: usize = 2560;
/// Record slots allocation never uses, so frees can always split runs.
pub const RESERVED_FOR_FREE: usize = MAX_FRAMES_PER_CALL;
/// Task indices tracked for usage (the kernel's `MAX_TASKS`).
pub const MAX_TASKS: usize = 64;
/// Ranges of initialized TDMR memory tracked (one per TDMR suffices, §3.2).
pub const MAX_READY: usize = 64;

/// A task as an owner: the kernel's `TaskId` (index in bits 15:0, generation in 31:16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner(pub u32);

impl Owner {
    /// Task index.
    #[must_use]
    pub const fn index(self) -> u16 {
        self.0 as u16
    }

    /// Generation.
    #[must_use]
    pub const fn generation(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Why an allocator operation was refused. Nothing changed when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not enough free frames matching node, size and class.
    NoMemory,
    /// Address or range not aligned to its size.
    BadAlignment,
    /// The frame belongs to another task (or another incarnation of this one).
    NotOwner,
    /// No pool contains the address.
    UnknownFrame,
    /// The frame is free or quarantined already, or listed twice.
    DoubleFree,
    /// The frame was allocated with another size.
    WrongSize,
    /// No record (or pool) slot left.
    TableFull,
    /// Count zero or too large, empty range, task index out of range.
    BadArgument,
    /// The new pool overlaps an existing one.
    Overlap,
    /// The bitmap storage cannot hold the new pool.
    NoBitmapSpace,
    /// The pool still has this many 4 KiB frames allocated or quarantined.
    Busy(u64),
    /// `release_scrubbed`/`retire` named frames that are not all quarantined.
    NotQuarantined,
}

/// Handle of a pool (its index; pools are never removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolId(pub usize);

/// One pool: a region of memory on one node of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// The memory (4 KiB-aligned).
    pub range: PhysRange,
    /// NUMA node.
    pub node: u16,
    /// TDX or not.
    pub class: MemClass,
    /// Frames may be allocated.
    pub online: bool,
    /// 4 KiB frames allocated, quarantined or retired.
    pub in_use: u64,
    /// 4 KiB frames retired (never reused).
    pub retired: u64,
    bit: u64,
}

impl Pool {
    fn frames(&self) -> u64 {
        self.range.size.0 / PAGE_4K
    }

    fn end(&self) -> u64 {
        self.range.base.0 + self.range.size.0
    }

    fn contains(&self, pa: u64) -> bool {
        self.range.base.0 <= pa && pa < self.end()
    }

    /// Free bytes (allocatable when online and, for TDX, ready).
    #[must_use]
    pub fn free_bytes(&self) -> u64 {
        (self.frames() - self.in_use) * PAGE_4K
    }
}

/// A run of `count` frames of `size` starting at `base`, owned by `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Holder.
    pub owner: Owner,
    /// First frame.
    pub base: u64,
    /// Frame size.
    pub size: FrameSize,
    /// Frames in the run (≥ 1).
    pub count: u32,
}

impl Record {
    fn end(&self) -> u64 {
        self.base + u64::from(self.count) * self.size.bytes()
    }

    fn bytes(&self) -> u64 {
        u64::from(self.count) * self.size.bytes()
    }
}

/// Words of bitmap storage needed for `bytes` of pools (2 bits per 4 KiB, plus one spare word
/// per pool for rounding).
#[must_use]
pub const fn bitmap_words(bytes: u64, pools: usize) -> usize {
    (2 * (bytes / PAGE_4K)).div_ceil(64) as usize + 2 * pools
}

/// Which nodes a request may use (bit n = node n; nodes ≥ 64 are never allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMask(pub u64);

impl NodeMask {
    /// Every node.
    pub const ALL: NodeMask = NodeMask(u64::MAX);

    /// Whether `node` is in the mask.
    #[must_use]
    pub const fn has(self, node: u16) -> bool {
        node < 64 && self.0 & (1 << node) != 0
    }
}

/// What to allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Nodes to take frames from (a single node, or all the caller may use).
    pub nodes: NodeMask,
    /// Frame size.
    pub size: FrameSize,
    /// Memory class.
    pub class: MemClass,
}

/// The allocator. `'a` is the lifetime of the caller's bitmap storage.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    bits_used: u64,
    pools: Vec<Pool, MAX_POOLS>,
    records: Vec<Record, MAX_RECORDS>,
    ready: Vec<(u64, u64), MAX_READY>,
    usage: [u64; MAX_TASKS],
}

impl<'a> FrameAllocator<'a> {
    /// An allocator without pools over `bits` (zeroed here).
    pub fn new(bits: &'a mut [u64]) -> Self {
        bits.fill(0);
        FrameAllocator {
            bits,
            bits_used: 0,
            pools: Vec::new(),
            records: Vec::new(),
            ready: Vec::new(),
            usage: [0; MAX_TASKS],
        }
    }

    /// Pools in the order they were added.
    #[must_use]
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Ownership records.
    #[must_use]
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Bytes held by task index `index` (all generations).
    #[must_use]
    pub fn usage(&self, index: u16) -> u64 {
        self.usage.get(usize::from(index)).copied().unwrap_or(0)
    }

    /// Adds a pool with every frame free. TDX pools still need [`Self::mark_ready`].
    ///
    /// # Errors
    /// `BadAlignment`, `BadArgument` (empty/wrapping), `Overlap`, `TableFull`, `NoBitmapSpace`.
    pub fn add_pool(
        &mut self,
        range: PhysRange,
        node: u16,
        class: MemClass,
        online: bool,
    ) -> Result<PoolId, FrameError> {
        if !range.base.is_aligned(PAGE_4K) || !range.size.0.is_multiple_of(PAGE_4K) {
            return Err(FrameError::BadAlignment);
        }
        let end = range.end().ok_or(FrameError::BadArgument)?.0;
        if range.is_empty() {
            return Err(FrameError::BadArgument);
        }
        if self
            .pools
            .iter()
            .any(|p| p.range.base.0 < end && range.base.0 < p.end())
        {
            return Err(FrameError::Overlap);
        }
        let frames = range.size.0 / PAGE_4K;
        let need = 2 * frames;
        if self.bits_used + need > self.bits.len() as u64 * 64 {
            return Err(FrameError::NoBitmapSpace);
        }
        let pool = Pool {
            range,
            node,
            class,
            online,
            in_use: 0,
            retired: 0,
            bit: self.bits_used,
        };
        self.pools.push(pool).map_err(|_| FrameError::TableFull)?;
        self.bits_used += need;
        set_bits(self.bits, pool.bit, frames, true);
        Ok(PoolId(self.pools.len() - 1))
    }

    /// Sets a pool online or offline. Offlining is refused while frames are in use.
    ///
    /// # Errors
    /// `Busy(in_use)`, or `BadArgument` for an unknown pool.
    pub fn set_online(&mut self, id: PoolId, online: bool) -> Result<(), FrameError> {
        let p = self.pools.get_mut(id.0).ok_or(FrameError::BadArgument)?;
        if !online && p.in_use > 0 {
            return Err(FrameError::Busy(p.in_use));
        }
        p.online = online;
        Ok(())
    }

    /// Records that `range` (TDMR memory) finished TDH.SYS.TDMR.INIT. Only whole 1 GiB blocks
    /// count (§3.2); ranges extending an existing one are merged.
    pub fn mark_ready(&mut self, range: PhysRange) {
        let start = range.base.0.next_multiple_of(GIB);
        let end = range.base.0.saturating_add(range.size.0) & !(GIB - 1);
        if start >= end {
            return;
        }
        for r in self.ready.iter_mut() {
            if r.0 <= end && start <= r.1 {
                *r = (r.0.min(start), r.1.max(end));
                return;
            }
        }
        // Full table: stay conservative (memory is simply not allocatable).
        let _ = self.ready.push((start, end));
    }

    fn is_ready(&self, pa: u64, len: u64) -> bool {
        let block = pa & !(GIB - 1);
        let end = (pa + len).next_multiple_of(GIB);
        self.ready.iter().any(|&(s, e)| s <= block && end <= e)
    }

    fn bit_of(&self, pool: &Pool, pa: u64) -> u64 {
        pool.bit + (pa - pool.range.base.0) / PAGE_4K
    }

    fn qbit_of(&self, pool: &Pool, pa: u64) -> u64 {
        pool.bit + pool.frames() + (pa - pool.range.base.0) / PAGE_4K
    }

    fn pool_of(&self, pa: u64) -> Option<usize> {
        self.pools.iter().position(|p| p.contains(pa))
    }

    /// Allocates `out.len()` frames for `owner` and writes their addresses (ascending) to `out`.
    /// All or nothing.
    ///
    /// # Errors
    /// `BadArgument` (empty or more than 512), `NoMemory`, `TableFull`.
    pub fn allocate(
        &mut self,
        owner: Owner,
        req: Request,
        out: &mut [PhysAddr],
    ) -> Result<(), FrameError> {
        let n = out.len();
        let idx = usize::from(owner.index());
        if n == 0 || n > MAX_FRAMES_PER_CALL || idx >= MAX_TASKS {
            return Err(FrameError::BadArgument);
        }
        let step = req.size.bytes();
        let mut found = 0usize;
        'pools: for pool in self.pools.iter() {
            if !pool.online || pool.class != req.class || !req.nodes.has(pool.node) {
                continue;
            }
            let mut pa = pool.range.base.0.next_multiple_of(step);
            while pa + step <= pool.end() {
                if req.class == MemClass::Tdx && !self.is_ready(pa, step) {
                    pa = (pa | (GIB - 1)) + 1;
                    pa = pa.next_multiple_of(step);
                    continue;
                }
                let bit = self.bit_of(pool, pa);
                let frames = req.size.frames_4k();
                if req.size == FrameSize::K4
                    && bit.is_multiple_of(64)
                    && self.bits[(bit / 64) as usize] == 0
                {
                    // A whole word of allocated frames: skip it.
                    pa += 64 * PAGE_4K;
                    continue;
                }
                if all_set(self.bits, bit, frames) {
                    out[found] = PhysAddr(pa);
                    found += 1;
                    if found == n {
                        break 'pools;
                    }
                }
                pa += step;
            }
        }
        if found < n {
            return Err(FrameError::NoMemory);
        }
        // A run is contiguous *and* inside one pool: adjacent pools (e.g. two nodes meeting at a
        // boundary) have separate bitmaps and counters, so a record never spans two of them.
        let mut pool_ix = [u8::MAX; MAX_FRAMES_PER_CALL];
        for (slot, a) in pool_ix.iter_mut().zip(out.iter()) {
            *slot = self.pool_of(a.0).map_or(u8::MAX, |k| k as u8);
        }
        let joins = |i: usize| out[i].0 == out[i - 1].0 + step && pool_ix[i] == pool_ix[i - 1];
        let runs = 1 + (1..n).filter(|&i| !joins(i)).count();
        if self.records.len() + runs + RESERVED_FOR_FREE > MAX_RECORDS {
            return Err(FrameError::TableFull);
        }
        // Commit: clear free bits, one record per contiguous run.
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            while j < n && joins(j) {
                j += 1;
            }
            let rec = Record {
                owner,
                base: out[i].0,
                size: req.size,
                count: (j - i) as u32,
            };
            self.take_run(rec.base, rec.end());
            // Capacity checked above.
            let _ = self.records.push(rec);
            self.usage[idx] += rec.bytes();
            i = j;
        }
        Ok(())
    }

    /// Marks `[base, end)` (inside one pool, all free) as in use.
    fn take_run(&mut self, base: u64, end: u64) {
        if let Some(k) = self.pool_of(base) {
            let p = self.pools[k];
            set_bits(
                self.bits,
                self.bit_of(&p, base),
                (end - base) / PAGE_4K,
                false,
            );
            self.pools[k].in_use += (end - base) / PAGE_4K;
        }
    }

    /// Index of the record holding `pa`.
    fn record_of(&self, pa: u64) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.base <= pa && pa < r.end())
    }

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
        for (i, a) in addrs.iter().enumerate() {
            self.check_free(owner, size, a.0)?;
            if addrs[..i].contains(a) {
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
        let k = self.pool_of(pa).ok_or(FrameError::UnknownFrame)?;
        let Some(r) = self.record_of(pa).map(|i| self.records[i]) else {
            // Free, quarantined or retired: not held by anyone.
            let _ = k;
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
        let idx = usize::from(r.owner.index());
        if r.count == 1 {
            self.records.swap_remove(i);
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
            };
            // RESERVED_FOR_FREE slots guarantee room.
            let _ = self.records.push(right);
        }
        if let Some(u) = self.usage.get_mut(idx) {
            *u -= step;
        }
        if let Some(k) = self.pool_of(pa) {
            let p = self.pools[k];
            set_bits(self.bits, self.qbit_of(&p, pa), size.frames_4k(), true);
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

    fn reclaim_where(&mut self, pred: impl Fn(Owner) -> bool) -> u64 {
        let mut moved = 0;
        let mut i = 0;
        while i < self.records.len() {
            let r = self.records[i];
            if !pred(r.owner) {
                i += 1;
                continue;
            }
            self.records.swap_remove(i);
            moved += r.bytes();
            if let Some(u) = self.usage.get_mut(usize::from(r.owner.index())) {
                *u -= r.bytes();
            }
            if let Some(k) = self.pool_of(r.base) {
                let p = self.pools[k];
                set_bits(
                    self.bits,
                    self.qbit_of(&p, r.base),
                    r.bytes() / PAGE_4K,
                    true,
                );
            }
        }
        moved
    }

    /// Writes up to `out.len()` maximal runs of quarantined frames (each inside one pool) that
    /// the server must scrub and verify; returns how many were written.
    pub fn quarantined(&self, out: &mut [PhysRange]) -> usize {
        let mut n = 0;
        for p in &self.pools {
            let q0 = p.bit + p.frames();
            let mut f = 0;
            while f < p.frames() && n < out.len() {
                if !get_bit(self.bits, q0 + f) {
                    f += 1;
                    continue;
                }
                let start = f;
                while f < p.frames() && get_bit(self.bits, q0 + f) {
                    f += 1;
                }
                out[n] = PhysRange::new(p.range.base.0 + start * PAGE_4K, (f - start) * PAGE_4K);
                n += 1;
            }
        }
        n
    }

    /// Quarantined bytes in total.
    #[must_use]
    pub fn quarantined_bytes(&self) -> u64 {
        self.pools
            .iter()
            .map(|p| count_set(self.bits, p.bit + p.frames(), p.frames()) * PAGE_4K)
            .sum()
    }

    fn check_quarantined(&self, range: PhysRange) -> Result<usize, FrameError> {
        if !range.base.is_aligned(PAGE_4K)
            || !range.size.0.is_multiple_of(PAGE_4K)
            || range.is_empty()
        {
            return Err(FrameError::BadAlignment);
        }
        let k = self.pool_of(range.base.0).ok_or(FrameError::UnknownFrame)?;
        let p = &self.pools[k];
        let end = range.end().ok_or(FrameError::BadArgument)?.0;
        if end > p.end()
            || !all_set(
                self.bits,
                self.qbit_of(p, range.base.0),
                range.size.0 / PAGE_4K,
            )
        {
            return Err(FrameError::NotQuarantined);
        }
        Ok(k)
    }

    /// The server scrubbed `range` and found every page PT_NDA: it becomes free.
    ///
    /// # Errors
    /// `NotQuarantined` unless every frame of `range` is quarantined (inside one pool).
    pub fn release_scrubbed(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let k = self.check_quarantined(range)?;
        let p = self.pools[k];
        let frames = range.size.0 / PAGE_4K;
        set_bits(self.bits, self.qbit_of(&p, range.base.0), frames, false);
        set_bits(self.bits, self.bit_of(&p, range.base.0), frames, true);
        self.pools[k].in_use -= frames;
        Ok(())
    }

    /// Scrub or verification failed: the frames are never handed out again (§9.2: leak rather
    /// than reuse memory that may still be private).
    ///
    /// # Errors
    /// `NotQuarantined` unless every frame of `range` is quarantined (inside one pool).
    pub fn retire(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let k = self.check_quarantined(range)?;
        let p = self.pools[k];
        let frames = range.size.0 / PAGE_4K;
        set_bits(self.bits, self.qbit_of(&p, range.base.0), frames, false);
        self.pools[k].retired += frames;
        Ok(())
    }
}

fn get_bit(bits: &[u64], i: u64) -> bool {
    bits[(i / 64) as usize] & (1 << (i % 64)) != 0
}

/// Sets or clears `n` bits from bit `start`, a word at a time where possible.
fn set_bits(bits: &mut [u64], start: u64, n: u64, value: bool) {
    let mut i = start;
    let end = start + n;
    while i < end {
        let w = (i / 64) as usize;
        let lo = i % 64;
        let take = (64 - lo).min(end - i);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << lo
        };
        if value {
            bits[w] |= mask;
        } else {
            bits[w] &= !mask;
        }
        i += take;
    }
}

/// Whether all `n` bits from `start` are set.
fn all_set(bits: &[u64], start: u64, n: u64) -> bool {
    let mut i = start;
    let end = start + n;
    while i < end {
        let w = (i / 64) as usize;
        let lo = i % 64;
        let take = (64 - lo).min(end - i);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << lo
        };
        if bits[w] & mask != mask {
            return false;
        }
        i += take;
    }
    true
}

fn count_set(bits: &[u64], start: u64, n: u64) -> u64 {
    let mut i = start;
    let end = start + n;
    let mut c = 0;
    while i < end {
        let w = (i / 64) as usize;
        let lo = i % 64;
        let take = (64 - lo).min(end - i);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << lo
        };
        c += u64::from((bits[w] & mask).count_ones());
        i += take;
    }
    c
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
