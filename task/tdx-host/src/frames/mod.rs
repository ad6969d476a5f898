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
//! Search pattern (hot path O(1) in the common case, never a whole-table scan):
//! - each pool's free bits start at a bit ≡ its first frame number (mod 64), so bit `i` of a word
//!   is frame `64k + i`: a 2 MiB frame is 8 whole words, a 1 GiB frame 4096 (all ones = free);
//! - free frames are found a word at a time (`trailing_zeros` on the first non-zero word) from a
//!   per-pool cursor `free_from`, a *lower bound* on the pool's free bits: the scan raises it to
//!   the first free bit it meets, release lowers it. So the search stays first fit (lowest free
//!   address), exactly as a scan from the pool start, and never skips a free frame (also one in
//!   a 1 GiB block not yet ready);
//! - per pool, an exact count of quarantined frames and a lower bound on the first one:
//!   [`FrameAllocator::quarantined`] skips pools with none, starts at that bound and stops once
//!   it has seen them all; [`FrameAllocator::quarantined_bytes`] is a sum over pools;
//! - records are kept sorted by base, so the record of an address is a binary search; a pool
//!   index sorted by base does the same for pools. Allocation merges its new runs into the
//!   table in one backward pass;
//! - these caches are O(pools) and derived: they never decide an answer, only where to look.
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
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

pub use bitmap::bitmap_words;
use bitmap::{all_set, find_set, set_bits};
pub use dirty::Dirty;

mod bitmap;
mod dirty;
mod quarantine;
mod restore;

pub use restore::{PoolImage, RestoreError};

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
    /// First free bit (≡ the base's frame number mod 64); the quarantine bits follow the free
    /// bits directly.
    bit: u64,
}

impl Pool {
    fn frames(&self) -> u64 {
        self.range.size().0 / PAGE_4K
    }

    fn end(&self) -> u64 {
        self.range.base().0 + self.range.size().0
    }

    fn contains(&self, pa: u64) -> bool {
        self.range.base().0 <= pa && pa < self.end()
    }

    /// Free bytes (allocatable when online and, for TDX, ready).
    #[must_use]
    pub fn free_bytes(&self) -> u64 {
        self.free() * PAGE_4K
    }

    /// Free 4 KiB frames (= set bits of the free bitmap).
    fn free(&self) -> u64 {
        self.frames() - self.in_use
    }

    /// Pool-relative 4 KiB index of `pa`.
    fn rel(&self, pa: u64) -> u64 {
        (pa - self.range.base().0) / PAGE_4K
    }

    /// Free bit of `pa`.
    fn bit_of(&self, pa: u64) -> u64 {
        self.bit + self.rel(pa)
    }

    /// Quarantine bit of pool-relative index `rel`.
    fn qbit(&self, rel: u64) -> u64 {
        self.bit + self.frames() + rel
    }

    /// Pool-relative index of quarantine bit `b`.
    fn rel_of_qbit(&self, b: u64) -> u64 {
        b - self.bit - self.frames()
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
    /// The client's request identity that allocated the run (0: none); a split run keeps it.
    pub tag: u32,
}

impl Record {
    fn end(&self) -> u64 {
        self.base + u64::from(self.count) * self.size.bytes()
    }

    fn bytes(&self) -> u64 {
        u64::from(self.count) * self.size.bytes()
    }
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

/// Derived search state of one pool: only speeds searches up, never decides an answer (every
/// field can be recomputed from the bitmaps). O(1) per pool.
#[derive(Clone, Copy, Debug, Default)]
struct PoolCache {
    /// Lower bound on the pool's free bits: no frame below this pool-relative 4 KiB index is
    /// free. Lowered on release, raised lazily by `allocate`'s own scan.
    free_from: u64,
    /// Exactly the pool's quarantined 4 KiB frames (set bits of its quarantine bitmap).
    quarantined: u64,
    /// Lower bound on the pool's quarantine bits (`frames()` when none): lowered when frames are
    /// quarantined, moved past a released/retired range that covered it.
    q_from: u64,
}

/// The allocator. `'a` is the lifetime of the caller's bitmap storage.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    bits_used: u64,
    pools: Vec<Pool, MAX_POOLS>,
    /// `cache[k]` belongs to `pools[k]`.
    cache: Vec<PoolCache, MAX_POOLS>,
    /// Pool indices sorted by base address (pools keep their insertion index as `PoolId`).
    by_base: Vec<u8, MAX_POOLS>,
    /// Sorted by base; runs never overlap.
    records: Vec<Record, MAX_RECORDS>,
    ready: Vec<(u64, u64), MAX_READY>,
    usage: [u64; MAX_TASKS],
    /// What changed since the ledger last took it (bitmap words, pools, records).
    dirty: Dirty,
}

// `by_base` stores pool indices as u8.
const _: () = assert!(MAX_POOLS <= 256);

impl<'a> FrameAllocator<'a> {
    /// An allocator without pools over `bits` (zeroed here).
    pub fn new(bits: &'a mut [u64]) -> Self {
        bits.fill(0);
        FrameAllocator {
            bits,
            bits_used: 0,
            pools: Vec::new(),
            cache: Vec::new(),
            by_base: Vec::new(),
            records: Vec::new(),
            ready: Vec::new(),
            usage: [0; MAX_TASKS],
            dirty: Dirty::new(),
        }
    }

    /// The bitmap words (free and quarantine bits of every pool).
    #[must_use]
    pub fn bitmap(&self) -> &[u64] {
        self.bits
    }

    /// Bitmap bits handed to pools so far.
    #[must_use]
    pub fn bits_used(&self) -> u64 {
        self.bits_used
    }

    /// What changed since the last [`Self::clean`].
    #[must_use]
    pub fn dirty(&self) -> &Dirty {
        &self.dirty
    }

    /// Forgets what changed: the ledger committed it.
    pub fn clean(&mut self) {
        self.dirty.clean();
    }

    /// Pools in the order they were added.
    #[must_use]
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Ownership records (sorted by base address).
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
        let (lead, need) = self.pool_layout(range)?;
        let frames = range.size().0 / PAGE_4K;
        let pool = Pool {
            range,
            node,
            class,
            online,
            in_use: 0,
            retired: 0,
            bit: self.bits_used + lead,
        };
        self.pools.push(pool).map_err(|_| FrameError::TableFull)?;
        let k = self.pools.len() - 1;
        // Same capacity as `pools`: cannot fail after the push above.
        let _ = self.cache.push(PoolCache {
            free_from: 0,
            quarantined: 0,
            q_from: frames,
        });
        let at = self
            .by_base
            .partition_point(|&j| self.pools[usize::from(j)].range.base().0 < range.base().0);
        let _ = self.by_base.insert(at, k as u8);
        self.bits_used += need;
        set_bits(self.bits, pool.bit, frames, true);
        self.dirty.bits(pool.bit, frames);
        self.dirty.pool(k);
        Ok(PoolId(k))
    }

    /// Whether [`Self::add_pool`] would accept `range` (same checks, nothing changes), so a
    /// caller can ask the kernel first and be sure the table change then succeeds.
    ///
    /// # Errors
    /// As `add_pool`.
    pub fn can_add_pool(&self, range: PhysRange) -> Result<(), FrameError> {
        self.pool_layout(range).map(|_| ())
    }

    /// Checks a new pool and returns `(lead, bits)`: the bits skipped to align it and the bits
    /// it takes. Also refuses a full pool table.
    fn pool_layout(&self, range: PhysRange) -> Result<(u64, u64), FrameError> {
        if !range.base().is_aligned(PAGE_4K) || !range.size().0.is_multiple_of(PAGE_4K) {
            return Err(FrameError::BadAlignment);
        }
        let end = range.end().0;
        if range.is_empty() {
            return Err(FrameError::BadArgument);
        }
        if self
            .pools
            .iter()
            .any(|p| p.range.base().0 < end && range.base().0 < p.end())
        {
            return Err(FrameError::Overlap);
        }
        if self.pools.is_full() {
            return Err(FrameError::TableFull);
        }
        let frames = range.size().0 / PAGE_4K;
        // Skip up to 63 bits so that bit ≡ frame number (mod 64): a 2 MiB or 1 GiB frame is then
        // whole words of the free bitmap. `bitmap_words` has two spare words per pool for this.
        let lead = (range.base().0 / PAGE_4K).wrapping_sub(self.bits_used) % 64;
        let need = lead.saturating_add(frames.saturating_mul(2));
        if self.bits_used.saturating_add(need) > self.bits.len() as u64 * 64 {
            return Err(FrameError::NoBitmapSpace);
        }
        Ok((lead, need))
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
        self.dirty.pool(id.0);
        Ok(())
    }

    /// Records that `range` (TDMR memory) finished TDH.SYS.TDMR.INIT. Only whole 1 GiB blocks
    /// count (§3.2); ranges extending an existing one are merged.
    pub fn mark_ready(&mut self, range: PhysRange) {
        let start = range.base().0.next_multiple_of(GIB);
        let end = range.base().0.saturating_add(range.size().0) & !(GIB - 1);
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

    /// Index of the pool containing `pa` (binary search over `by_base`).
    fn pool_of(&self, pa: u64) -> Option<usize> {
        let j = self
            .by_base
            .partition_point(|&k| self.pools[usize::from(k)].range.base().0 <= pa);
        let k = usize::from(*self.by_base.get(j.checked_sub(1)?)?);
        self.pools[k].contains(pa).then_some(k)
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
        self.allocate_tagged(owner, req, 0, out)
    }

    /// [`Self::allocate`] with the client's request identity `tag` kept in the new records, so
    /// a retried request can be answered with the frames it got ([`Self::tagged`]).
    ///
    /// # Errors
    /// As `allocate`.
    pub fn allocate_tagged(
        &mut self,
        owner: Owner,
        req: Request,
        tag: u32,
        out: &mut [PhysAddr],
    ) -> Result<(), FrameError> {
        let n = out.len();
        let idx = usize::from(owner.index());
        if n == 0 || n > MAX_FRAMES_PER_CALL || idx >= MAX_TASKS {
            return Err(FrameError::BadArgument);
        }
        let step = req.size.bytes();
        let per = req.size.frames_4k();
        let eligible =
            |p: &Pool| p.online && p.class == req.class && req.nodes.has(p.node) && p.free() >= per;
        // Counters refuse a request that cannot fit without touching the bitmaps.
        let free: u64 = self
            .pools
            .iter()
            .filter(|p| eligible(p))
            .map(Pool::free)
            .sum();
        if free < n as u64 * per {
            return Err(FrameError::NoMemory);
        }
        let mut pool_ix = [0u8; MAX_FRAMES_PER_CALL];
        let mut found = 0usize;
        for (k, (pool, cache)) in self.pools.iter().zip(self.cache.iter_mut()).enumerate() {
            if !eligible(pool) {
                continue;
            }
            let got = scan_pool(self.bits, &self.ready, pool, cache, req, &mut out[found..]);
            pool_ix[found..found + got].fill(k as u8);
            found += got;
            if found == n {
                break;
            }
        }
        if found < n {
            return Err(FrameError::NoMemory);
        }
        // A run is contiguous *and* inside one pool: adjacent pools (e.g. two nodes meeting at a
        // boundary) have separate bitmaps and counters, so a record never spans two of them.
        let joins = |i: usize| out[i].0 == out[i - 1].0 + step && pool_ix[i] == pool_ix[i - 1];
        let runs = 1 + (1..n).filter(|&i| !joins(i)).count();
        if self.records.len() + runs + RESERVED_FOR_FREE > MAX_RECORDS {
            return Err(FrameError::TableFull);
        }
        // Commit: clear free bits run by run.
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            while j < n && joins(j) {
                j += 1;
            }
            let k = usize::from(pool_ix[i]);
            let p = &mut self.pools[k];
            let frames = (j - i) as u64 * per;
            set_bits(self.bits, p.bit_of(out[i].0), frames, false);
            self.dirty.bits(p.bit_of(out[i].0), frames);
            self.dirty.pool(k);
            p.in_use += frames;
            i = j;
        }
        self.usage[idx] += n as u64 * step;
        // One record per run. `out` is ascending within each pool; pools are visited in PoolId
        // order, so it is a few ascending chunks, each merged into the sorted table in one pass.
        let mut hi = n;
        while hi > 0 {
            let mut lo = hi - 1;
            while lo > 0 && out[lo - 1].0 < out[lo].0 {
                lo -= 1;
            }
            let from = merge_runs(
                &mut self.records,
                (owner, req.size, tag),
                &out[lo..hi],
                &pool_ix[lo..hi],
            );
            self.dirty.records(from, self.records.len());
            hi = lo;
        }
        Ok(())
    }

    /// Index of the record holding `pa` (binary search: records are sorted and disjoint).
    fn record_of(&self, pa: u64) -> Option<usize> {
        let i = self
            .records
            .partition_point(|r| r.base <= pa)
            .checked_sub(1)?;
        (pa < self.records[i].end()).then_some(i)
    }
}

/// Whether the whole 1 GiB blocks around `[pa, pa + len)` finished TDMR init (§3.2).
fn is_ready(ready: &[(u64, u64)], pa: u64, len: u64) -> bool {
    let block = pa & !(GIB - 1);
    let end = (pa + len).next_multiple_of(GIB);
    ready.iter().any(|&(s, e)| s <= block && end <= e)
}

/// Finds up to `out.len()` free frames of `req.size` in `pool` (eligible for `req`), lowest
/// first, and writes them to `out`; returns how many. Reads the bitmap only: the caller commits.
///
/// The scan jumps from free bit to free bit with [`find_set`] (a word at a time), starting at
/// `cache.free_from`, and raises that bound to the first free bit it meets: nothing below it is
/// free, and nothing is taken here, so it stays a lower bound whatever the caller does next.
fn scan_pool(
    bits: &[u64],
    ready: &[(u64, u64)],
    pool: &Pool,
    cache: &mut PoolCache,
    req: Request,
    out: &mut [PhysAddr],
) -> usize {
    let per = req.size.frames_4k();
    let frames = pool.frames();
    // Pool-relative index of the first frame of each aligned frame: frame numbers, not pool
    // indices, are aligned (the pool may start off a 2 MiB boundary).
    let first_f = pool.range.base().0 / PAGE_4K;
    let end = pool.bit + frames;
    let mut n = 0;
    let mut at = cache.free_from;
    let mut first = true;
    // Readiness of the last 1 GiB block looked at (one `is_ready` per block, not per frame).
    let mut block = (u64::MAX, false);
    while n < out.len() {
        let Some(b) = find_set(bits, pool.bit + at, end) else {
            if first {
                cache.free_from = frames;
            }
            break;
        };
        let f = b - pool.bit;
        if first {
            cache.free_from = f;
            first = false;
        }
        // The first aligned candidate that could hold the free frame `f` or later ones.
        let c = (first_f + f).next_multiple_of(per) - first_f;
        if c + per > frames {
            break;
        }
        let pa = pool.range.base().0 + c * PAGE_4K;
        if req.class == MemClass::Tdx {
            let blk = pa & !(GIB - 1);
            if block.0 != blk {
                block = (blk, is_ready(ready, pa, req.size.bytes()));
            }
            if !block.1 {
                at = (blk + GIB - pool.range.base().0) / PAGE_4K;
                continue;
            }
        }
        // 2 MiB / 1 GiB: `per` bits from a word boundary, i.e. whole words all ones.
        if per == 1 || all_set(bits, pool.bit + c, per) {
            out[n] = PhysAddr(pa);
            n += 1;
            // Every free 4 KiB frame of the pool taken: do not scan the rest of it.
            if per == 1 && n as u64 == pool.free() {
                break;
            }
        }
        at = c + per;
    }
    n
}

/// Inserts one record per run of `addrs` (ascending, one pool per entry of `pool_ix`) into the
/// sorted `records`, merging from the back: O(new + records above them), not a shift per run.
/// The caller checked capacity. Returns the lowest index written (everything from there moved).
fn merge_runs(
    records: &mut Vec<Record, MAX_RECORDS>,
    (owner, size, tag): (Owner, FrameSize, u32),
    addrs: &[PhysAddr],
    pool_ix: &[u8],
) -> usize {
    let step = size.bytes();
    let joins = |i: usize| addrs[i].0 == addrs[i - 1].0 + step && pool_ix[i] == pool_ix[i - 1];
    let runs = 1 + (1..addrs.len()).filter(|&i| !joins(i)).count();
    let mut old = records.len();
    let blank = Record {
        owner,
        base: 0,
        size,
        count: 0,
        tag,
    };
    let _ = records.resize(old + runs, blank);
    // records[..old]: not yet moved; records[w..]: final.
    let mut w = old + runs;
    let mut hi = addrs.len();
    while hi > 0 {
        let mut lo = hi - 1;
        while lo > 0 && joins(lo) {
            lo -= 1;
        }
        let rec = Record {
            owner,
            base: addrs[lo].0,
            size,
            count: (hi - lo) as u32,
            tag,
        };
        while old > 0 && records[old - 1].base > rec.base {
            old -= 1;
            w -= 1;
            records[w] = records[old];
        }
        w -= 1;
        records[w] = rec;
        hi = lo;
    }
    w
}

#[cfg(test)]
mod tests;
