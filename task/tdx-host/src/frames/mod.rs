//! The frame allocator: per-node, per-class (TDX / non-TDX) pools of 4 KiB, 2 MiB and 1 GiB
//! frames, with owners, quotas' bookkeeping and scrub-before-reuse.
//!
//! Pattern: no heap. Free-space metadata is **2 bits per 4 KiB frame** in caller-provided words
//! (one "free" bitmap and one "quarantined" bitmap, each 1 bit per 4 KiB; 16 GiB of pools need
//! 1 MiB, see [`bitmap_words`]). Ownership is one [`Record`] per contiguous
//! run of same-size frames held by one task (at most [`MAX_RECORDS`] slots, 24 bytes each,
//! ~60 KiB).
//! Pools (at most [`MAX_POOLS`]) are the region map: each is a 4 KiB-aligned range on one node of
//! one class, online or offline.
//!
//! Search pattern (hot path O(1) in the common case, never a whole-table scan):
//! - each pool's free bits start at a bit ≡ its first frame number (mod 64), so bit `i` of a word
//!   is frame `64k + i`: a 2 MiB frame is 8 whole words, a 1 GiB frame 4096 (all ones = free);
//! - a second level (`summary`, fixed storage for 64 GiB of pools) keeps two bits per 2 MiB
//!   chunk: some frame free / every frame free. A 4 KiB search is `trailing_zeros` on the first
//!   level, then on at most 8 words of the free bitmap, taking a whole word's free frames at
//!   once; a 2 MiB search is one `trailing_zeros`, a 1 GiB frame 8 whole summary words;
//! - searches start at a per-pool cursor `free_from`, a *lower bound* on the pool's free bits:
//!   a 4 KiB search raises it to the first free bit it meets, release lowers it. So the search
//!   stays first fit (lowest free address), exactly as a scan from the pool start, and never
//!   skips a free frame (also one in a 1 GiB block not yet ready);
//! - per pool, an exact count of quarantined frames and a lower bound on the first one:
//!   [`FrameAllocator::quarantined`] skips pools with none, starts at that bound and stops once
//!   it has seen them all; their sum is kept beside them (changed with them, counted again on
//!   restore), so [`FrameAllocator::quarantined_bytes`], asked after every free, is O(1);
//! - records are slots sorted by base with holes (`records`): the record of an address is a
//!   hinted lookup (a direct-mapped table of recently written slots, checked before use) or a
//!   binary search; a new record takes a hole next to its place, a freed one leaves a hole, so
//!   neither shifts the table (nor makes the ledger journal it). Many runs at once are merged
//!   into the table in one backward pass; a pool index sorted by base finds pools;
//! - bulk calls ([`FrameAllocator::alloc_many`], [`FrameAllocator::free_many`]) work per run of
//!   consecutive frames: one record lookup, one record write, one bit-range write and one dirty
//!   range per run;
//! - a one-frame call skips the run bookkeeping: a 4 KiB allocation first reads the free-bitmap
//!   word at the pool's cursor (its first set bit at or above the cursor *is* the first fit, so
//!   the probe gives the same answer as the search, which runs only when the word has none),
//!   clears one bit, and grows the record ending right below the frame when it has the same
//!   owner, size and tag and lies in the same pool (found through the slot the last such
//!   allocation wrote, checked; one slot written and no slot used). Records are therefore runs
//!   of one owner's frames, not always maximal, never spanning two pools;
//! - a coarse quarantine summary (one bit per 16 MiB, see `summary`) lets `quarantined` and the
//!   quarantine cursor skip empty stretches;
//! - these caches are derived: they never decide an answer, only where to look.
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
use summary::{Change, Span, Summary, CHUNK_FRAMES};

mod bitmap;
mod dirty;
mod quarantine;
mod records;
mod restore;
mod single;
mod summary;

pub use quarantine::Refused;
pub use restore::{PoolImage, RestoreError};
pub use summary::SUMMARY_WORDS;

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
    /// Count zero or too large, empty range, a pool reaching past [`PHYS_END`], task index
    /// out of range.
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

    #[inline(always)]
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

    /// Where its frames are, for the chunk summary (`sbit`: its first summary bit).
    fn span(&self, sbit: u64) -> Span {
        Span {
            bit: self.bit,
            first_frame: self.range.base().0 / PAGE_4K,
            frames: self.frames(),
            sbit,
        }
    }

    /// Where its quarantine bits are, for the chunk summary (`sbit`: its first summary bit).
    fn qspan(&self, sbit: u64) -> Span {
        Span {
            bit: self.bit + self.frames(),
            ..self.span(sbit)
        }
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
    #[inline(always)]
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
/// field can be recomputed from the bitmaps and the ready list). O(1) per pool.
#[derive(Clone, Copy, Debug)]
struct PoolCache {
    /// Lower bound on the pool's free bits: no frame below this pool-relative 4 KiB index is
    /// free. Lowered on release, raised lazily by `allocate`'s own scan.
    free_from: u64,
    /// Exactly the pool's quarantined 4 KiB frames (set bits of its quarantine bitmap).
    quarantined: u64,
    /// Lower bound on the pool's quarantine bits (`frames()` when none): lowered when frames are
    /// quarantined, moved past a released/retired range that covered it.
    q_from: u64,
    /// The pool's first bit in the chunk summary (placed like its free bits, see `summary`).
    sbit: u64,
}

/// `FrameAllocator::ready_block` when no block is known ready (not 1 GiB-aligned, so no
/// block's base).
const NO_BLOCK: u64 = u64::MAX;

impl PoolCache {
    /// The cache of a pool of `frames` frames whose summary starts at `sbit`, knowing nothing
    /// (no free frame below 0, no quarantined frame).
    fn new(frames: u64, sbit: u64) -> Self {
        PoolCache {
            free_from: 0,
            quarantined: 0,
            q_from: frames,
            sbit,
        }
    }
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
    /// Slots sorted by base, disjoint; a slot with `count == 0` is a hole (see `records`).
    records: Vec<Record, MAX_RECORDS>,
    ready: Vec<(u64, u64), MAX_READY>,
    usage: [u64; MAX_TASKS],
    /// What changed since the ledger last took it (bitmap words, pools, records).
    dirty: Dirty,
    /// Per 2 MiB chunk of every pool: some / every frame free (derived from the free bits).
    summary: Summary,
    /// Guesses of the record slot of an address (see `records`); never trusted unchecked.
    hints: [u16; records::HINTS],
    /// Guess of the pool of the next address looked up (the last allocation's); checked.
    last_pool: usize,
    /// Base address of the 1 GiB block a single-frame allocation last found ready
    /// ([`NO_BLOCK`]: none yet). Blocks only ever become ready (`mark_ready` adds, nothing
    /// removes), so the answer stays true.
    ready_block: u64,
    /// Guess of the slot a single-frame allocation wrote last (see `records`), where the next
    /// one usually continues; never trusted unchecked.
    last_alloc: usize,
    /// Quarantined 4 KiB frames of all pools: exactly the sum of the caches' `quarantined`,
    /// kept beside them so the server's question after every free is O(1), not a walk over
    /// the pools.
    quarantined_frames: u64,
}

const _: () = assert!(MAX_RECORDS <= u16::MAX as usize);

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
            summary: Summary::new(),
            hints: [0; records::HINTS],
            last_pool: 0,
            ready_block: NO_BLOCK,
            last_alloc: 0,
            quarantined_frames: 0,
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

    /// The record table: slots sorted by base address and disjoint. A slot with `count == 0`
    /// is a hole (no frames, no owner; kept so that frees and allocations next to it do not
    /// shift the table); every other slot is an ownership record.
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
    /// `BadAlignment`, `BadArgument` (empty, or reaching past [`PHYS_END`]), `Overlap`,
    /// `TableFull`, `NoBitmapSpace`.
    pub fn add_pool(
        &mut self,
        range: PhysRange,
        node: u16,
        class: MemClass,
        online: bool,
    ) -> Result<PoolId, FrameError> {
        let (lead, need, (sbit, sneed)) = self.pool_layout(range)?;
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
        let _ = self.cache.push(PoolCache::new(frames, sbit));
        self.summary.take(sneed);
        let at = self
            .by_base
            .partition_point(|&j| self.pools[usize::from(j)].range.base().0 < range.base().0);
        let _ = self.by_base.insert(at, k as u8);
        self.bits_used += need;
        set_bits(self.bits, pool.bit, frames, true);
        self.summary
            .refresh(self.bits, &pool.span(sbit), 0, frames, Change::Set);
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

    /// Checks a new pool and returns `(lead, bits, (summary bit, summary bits))`: the bits
    /// skipped to align it, the bits it takes, and its place in the chunk summary. Also
    /// refuses a full pool table.
    fn pool_layout(&self, range: PhysRange) -> Result<(u64, u64, (u64, u64)), FrameError> {
        if !range.base().is_aligned(PAGE_4K) || !range.size().0.is_multiple_of(PAGE_4K) {
            return Err(FrameError::BadAlignment);
        }
        let end = range.end().0;
        if range.is_empty() || end > PHYS_END {
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
        let place = self
            .summary
            .place(range.base().0 / PAGE_4K, frames)
            .ok_or(FrameError::NoBitmapSpace)?;
        Ok((lead, need, place))
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

    /// Index of the pool containing `pa`: the last allocation's pool if it does (pools are
    /// disjoint, so then no other does), else a binary search over `by_base`.
    #[inline(always)]
    fn pool_of(&self, pa: u64) -> Option<usize> {
        if self
            .pools
            .get(self.last_pool)
            .is_some_and(|p| p.contains(pa))
        {
            return Some(self.last_pool);
        }
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
        self.alloc_many(owner, req, 0, out).map(|_| ())
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
        self.alloc_many(owner, req, tag, out).map(|_| ())
    }

    /// The bulk allocation: `out.len()` (1..=512) frames of `req` for `owner`, tagged `tag`,
    /// written to `out` (ascending within each pool; pools in `PoolId` order). All or nothing:
    /// on an error nothing changed and `out` holds no frame anyone may use. Returns
    /// `out.len()`.
    ///
    /// Cost: free frames are taken a 64-bit word of the free bitmap at a time (found through
    /// the chunk summary) and each run of free bits is written to `out` by increment; a run's
    /// end is found with a few probes of `out` (`run_end`), not a compare per frame; each
    /// run is cleared with whole-word stores, gets one record and is reported dirty as one bit
    /// range (`take`).
    ///
    /// # Errors
    /// `BadArgument` (empty, more than 512, task index beyond the table), `NoMemory`,
    /// `TableFull`.
    #[inline]
    pub fn alloc_many(
        &mut self,
        owner: Owner,
        req: Request,
        tag: u32,
        out: &mut [PhysAddr],
    ) -> Result<usize, FrameError> {
        if let [one] = out {
            if usize::from(owner.index()) >= MAX_TASKS {
                return Err(FrameError::BadArgument);
            }
            *one = self.alloc_one(owner, req, tag)?;
            return Ok(1);
        }
        self.alloc_bulk(owner, req, tag, out)
    }

    /// [`Self::alloc_many`] of one frame, its address returned (the one-frame request's path,
    /// without an out-list).
    ///
    /// # Errors
    /// As `alloc_many` of one frame.
    #[inline]
    pub fn alloc_single(
        &mut self,
        owner: Owner,
        req: Request,
        tag: u32,
    ) -> Result<PhysAddr, FrameError> {
        if usize::from(owner.index()) >= MAX_TASKS {
            return Err(FrameError::BadArgument);
        }
        self.alloc_one(owner, req, tag)
    }

    /// [`Self::alloc_many`] of any count but one.
    fn alloc_bulk(
        &mut self,
        owner: Owner,
        req: Request,
        tag: u32,
        out: &mut [PhysAddr],
    ) -> Result<usize, FrameError> {
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
        // (first entry of `out`, pool) of each pool that gave frames, in order.
        let mut segs: Vec<(usize, usize), MAX_POOLS> = Vec::new();
        let mut found = 0usize;
        for (k, (pool, cache)) in self.pools.iter().zip(self.cache.iter_mut()).enumerate() {
            if !eligible(pool) {
                continue;
            }
            let got = scan_pool(
                self.bits,
                &self.summary,
                &self.ready,
                pool,
                cache,
                req,
                &mut out[found..],
            );
            if got > 0 {
                // One entry per pool: cannot overflow.
                let _ = segs.push((found, k));
            }
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
        let seg_end = |s: usize| segs.get(s + 1).map_or(n, |next| next.0);
        let joins = |i: usize| out[i].0 == out[i - 1].0 + step && !segs.iter().any(|s| s.0 == i);
        let mut runs = 0;
        for (s, &(start, _)) in segs.iter().enumerate() {
            let end = seg_end(s);
            let mut i = start;
            while i < end {
                i = run_end(out, i, end, step);
                runs += 1;
            }
        }
        if !self.record_room(runs + RESERVED_FOR_FREE) {
            return Err(FrameError::TableFull);
        }
        // Commit, run by run: clear the free bits, refresh their chunks, one record each (a
        // few runs go into holes of the table; many are merged in one pass below).
        let few = runs <= FEW_RUNS;
        for (s, &(start, k)) in segs.iter().enumerate() {
            let end = seg_end(s);
            let mut i = start;
            while i < end {
                let j = run_end(out, i, end, step);
                self.take(k, out[i].0, (j - i) as u64 * per);
                if few {
                    self.insert_record(Record {
                        owner,
                        base: out[i].0,
                        size: req.size,
                        count: (j - i) as u32,
                        tag,
                    });
                }
                i = j;
            }
        }
        self.usage[idx] += n as u64 * step;
        if !few {
            // `out` is ascending within each pool; pools are visited in PoolId order, so it is a
            // few ascending chunks, each merged into the sorted table in one pass.
            let mut hi = n;
            while hi > 0 {
                let mut lo = hi - 1;
                while lo > 0 && out[lo - 1].0 < out[lo].0 {
                    lo -= 1;
                }
                let from = merge_runs(
                    &mut self.records,
                    (owner, req.size, tag),
                    &out[..hi],
                    lo,
                    &joins,
                );
                self.dirty.records(from, self.records.len());
                hi = lo;
            }
        }
        Ok(n)
    }
}

/// End of the run that starts at `i` in `addrs[i..end]`, which is ascending and whose
/// entries are at least `step` apart (one pool's frames): `[i, j)` is one contiguous run iff
/// its last entry is `(j - 1 - i) * step` above its first. So the end is found with a few
/// probes (the whole range first, then galloping and bisecting), not a compare per frame.
fn run_end(addrs: &[PhysAddr], i: usize, end: usize, step: u64) -> usize {
    let fits = |j: usize| addrs[j - 1].0.wrapping_sub(addrs[i].0) == (j - 1 - i) as u64 * step;
    if fits(end) {
        return end;
    }
    // fits(lo), !fits(hi).
    let (mut lo, mut hi) = (i + 1, end);
    loop {
        let j = i + 2 * (lo - i);
        if j >= hi {
            break;
        }
        if fits(j) {
            lo = j;
        } else {
            hi = j;
            break;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Runs an allocation puts into the table one by one (each O(1) next to a hole); more are
/// merged in one pass.
const FEW_RUNS: usize = 16;

/// The end of the physical address space: MAXPHYADDR is at most 52 bits on x86-64
/// (CPUID.80000008H:EAX[7:0]). Pools end at or below it, so the 1 GiB block arithmetic on a
/// pool's addresses (rounding up to the next block) cannot overflow.
pub const PHYS_END: u64 = 1 << 52;

/// Whether the whole 1 GiB blocks around `[pa, pa + len)` finished TDMR init (§3.2).
fn is_ready(ready: &[(u64, u64)], pa: u64, len: u64) -> bool {
    let block = pa & !(GIB - 1);
    let end = (pa + len).next_multiple_of(GIB);
    ready.iter().any(|&(s, e)| s <= block && end <= e)
}

/// Finds up to `out.len()` free frames of `req.size` in `pool` (eligible for `req`), lowest
/// first, and writes them to `out`; returns how many. Reads the bitmaps only: the caller
/// commits.
///
/// The search starts at `cache.free_from` and jumps with the chunk summary: for 4 KiB frames
/// to the next chunk with a free frame (`any`), then takes that chunk's free bits a word at a
/// time; for 2 MiB / 1 GiB frames to the next wholly free chunk (`all`), a 1 GiB frame being
/// 512 such chunks. A 4 KiB search raises `free_from` to the first free bit it meets (nothing
/// below it is free, and nothing is taken here, so it stays a lower bound whatever the caller
/// does next).
fn scan_pool(
    bits: &[u64],
    summary: &Summary,
    ready: &[(u64, u64)],
    pool: &Pool,
    cache: &mut PoolCache,
    req: Request,
    out: &mut [PhysAddr],
) -> usize {
    let per = req.size.frames_4k();
    let frames = pool.frames();
    let base = pool.range.base().0;
    let span = pool.span(cache.sbit);
    // Frame numbers, not pool indices, are aligned (the pool may start off a 2 MiB boundary).
    let first_f = base / PAGE_4K;
    let level = if per == 1 { &summary.any } else { &summary.all };
    let s_end = span.sbit_end();
    let mut n = 0;
    let mut at = cache.free_from;
    let mut first = true;
    // Readiness of the last 1 GiB block looked at (one `is_ready` per block, not per frame).
    let mut block = (u64::MAX, false);
    let mut ready_at = |pa: u64| {
        let blk = pa & !(GIB - 1);
        if block.0 != blk {
            block = (blk, is_ready(ready, blk, GIB));
        }
        block.1
    };
    while n < out.len() && at < frames {
        let Some(s) = find_set(level, span.sbit_of(at), s_end) else {
            if first && per == 1 {
                cache.free_from = frames;
            }
            break;
        };
        let (lo, hi) = span.chunk(s);
        let from = at.max(lo);
        if per > 1 {
            let c = (first_f + from).next_multiple_of(per) - first_f;
            if c + per > frames {
                break;
            }
            let pa = base + c * PAGE_4K;
            if req.class == MemClass::Tdx && !ready_at(pa) {
                at = ((pa & !(GIB - 1)) + GIB - base) / PAGE_4K;
                continue;
            }
            if all_set(level, span.sbit_of(c), per / CHUNK_FRAMES) {
                out[n] = PhysAddr(pa);
                n += 1;
            }
            at = c + per;
            continue;
        }
        let Some(b) = find_set(bits, pool.bit + from, pool.bit + hi) else {
            at = hi;
            continue;
        };
        let f = b - pool.bit;
        if first {
            cache.free_from = f;
            first = false;
        }
        if req.class == MemClass::Tdx && !ready_at(base + f * PAGE_4K) {
            at = (((base + f * PAGE_4K) & !(GIB - 1)) + GIB - base) / PAGE_4K;
            continue;
        }
        // Take the chunk's free frames from `f`, a word at a time.
        let mut w_at = f;
        while w_at < hi && n < out.len() {
            let b = pool.bit + w_at;
            let word_end = ((b / 64 + 1) * 64 - pool.bit).min(hi);
            let mut m = bits[(b / 64) as usize] >> (b % 64);
            let cnt = word_end - w_at;
            if cnt < 64 {
                m &= (1 << cnt) - 1;
            }
            while m != 0 && n < out.len() {
                // Each run of free bits is written with a plain increment, not bit by bit.
                let low = m.trailing_zeros();
                if n + 1 == out.len() {
                    // The last (or only) frame asked for: no run to measure.
                    out[n] = PhysAddr(base + (w_at + u64::from(low)) * PAGE_4K);
                    n += 1;
                    break;
                }
                let ones = (!(m >> low)).trailing_zeros();
                let take = (ones as usize).min(out.len() - n);
                let mut pa = base + (w_at + u64::from(low)) * PAGE_4K;
                for slot in &mut out[n..n + take] {
                    *slot = PhysAddr(pa);
                    pa += PAGE_4K;
                }
                n += take;
                // Clears the bits just written (all of them when the run reached bit 63).
                m &= u64::MAX.checked_shl(low + take as u32).unwrap_or(0);
            }
            w_at = word_end;
        }
        at = hi;
    }
    n
}

/// Inserts one record per run of `addrs[first..]` (ascending; entry `i` continues the run of
/// `i - 1` iff `joins(i)`) into the sorted `records`, merging from the back: O(new + records
/// above them), not a shift per run. The caller checked capacity. Returns the lowest index
/// written (everything from there moved). A hole that ends up above a new run gets its base
/// raised past the run, so slots stay sorted and disjoint.
fn merge_runs(
    records: &mut Vec<Record, MAX_RECORDS>,
    (owner, size, tag): (Owner, FrameSize, u32),
    addrs: &[PhysAddr],
    first: usize,
    joins: &impl Fn(usize) -> bool,
) -> usize {
    let runs = 1 + (first + 1..addrs.len()).filter(|&i| !joins(i)).count();
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
    while hi > first {
        let mut lo = hi - 1;
        while lo > first && joins(lo) {
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
            if records[w].count == 0 && records[w].base < rec.end() {
                records[w].base = rec.end();
            }
        }
        w -= 1;
        records[w] = rec;
        hi = lo;
    }
    w
}
#[cfg(test)]
mod bulk_tests;
#[cfg(test)]
mod tests;
