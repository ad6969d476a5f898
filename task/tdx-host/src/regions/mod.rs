//! The region map and the onlining policy (§8.1, the LKML thread's options 1 and 2).
//!
//! Pattern: the region map *is* the frame allocator's pool list; this module decides which
//! pools exist and what class they get. Rules:
//! - at build time (after `Ready`, or once TDMR.INIT has begun: then TDX frames come only
//!   from the 1 GiB blocks TDMR.INIT has finished, marked as it advances): online RAM inside the CMRs becomes TDX pools, minus PAMT
//!   blocks, reserved areas, the image and the TDMR_INFO buffer; boot-offline RAM becomes TDX
//!   pools that are offline (not allocatable) until onlined; RAM outside every CMR becomes a
//!   non-TDX pool under `PerNode` and is left unused under `Reject`;
//! - `online(range, node)` accepts only memory: (a) exactly a region tdx-host holds offline
//!   (boot-offline RAM, or hot-plugged memory it took offline), or (b) a new range wholly inside
//!   the platform record's hot-plug window, which the kernel must accept as memory first
//!   ([`MemoryAuthority::online_memory`]) so that it will scrub it. Everything else is refused
//!   with its own error: MMIO or absent memory (NotMemory), a hole inside a CMR or TDMR that is
//!   not RAM (FirmwareHole), boot RAM that is not held offline (NotHeldOffline), an online
//!   region (AlreadyOnline), a partial overlap or system memory (RegionOverlap). Window memory
//!   wholly inside TDMR memory that is not reserved becomes TDX under any policy; otherwise
//!   `Reject` refuses (RegionOutsideTdmrs) and `PerNode` accepts it as non-TDX, after which the
//!   node is no longer wholly TDX-capable;
//! - `offline(range)`: exact match of an online region with nothing allocated or quarantined
//!   (else RegionBusy); nothing is ever forced. Window memory is handed back to the kernel
//!   ([`MemoryAuthority::offline_memory`]).
//!
//! All or nothing: every check, including the allocator's capacity, happens before the kernel
//! is asked; a kernel refusal (MemoryRefused) leaves the tables as they were, and a table change
//! that could still fail after the kernel said yes is undone at the kernel.
//!
//! Bounds: at most [`crate::frames::MAX_POOLS`] regions; [`MAX_HOLES`] excluded ranges
//! (64 TDMRs × 16 reserved areas + PAMT blocks + image + buffer); [`MAX_BOOT_RAM`] boot RAM
//! ranges; [`MAX_CMRS`] CMRs.

use core::cell::Cell;

use heapless::Vec;
use tdx_host_api::{region_state, MemClass, RegionRecord, TdxHostError};
use tdx_planner::addr::{PhysAddr, PhysRange, PAGE_4K};
use tdx_planner::types::{
    MemRange, MAX_CMRS, MAX_MEMORY_RANGES, MAX_PAMT_BLOCKS, MAX_RESERVED_PER_TDMR, MAX_TDMRS,
};

use crate::frames::{FrameAllocator, FrameError, PoolId};
use crate::init::InitStorage;
use crate::seam::KernelError;

/// Excluded ranges tracked: every reserved area, PAMT block, image range and the buffer.
pub const MAX_HOLES: usize = MAX_TDMRS * MAX_RESERVED_PER_TDMR + MAX_PAMT_BLOCKS + 8;
/// Boot RAM ranges tracked: online TDX RAM, boot-offline RAM and RAM outside the CMRs.
pub const MAX_BOOT_RAM: usize = 3 * MAX_MEMORY_RANGES;

/// The kernel's table of onlined hot-plug memory (the memory-authority capability): the kernel
/// scrubs hot-plugged memory only after it was onlined there.
pub trait MemoryAuthority {
    /// Asks the kernel to accept `range` (inside the hot-plug window) as memory.
    ///
    /// # Errors
    /// The kernel's refusal; nothing changed then.
    fn online_memory(&mut self, range: PhysRange) -> Result<(), KernelError>;

    /// Hands `range` (onlined before, nothing of it in use) back to the kernel.
    ///
    /// # Errors
    /// The kernel's refusal; nothing changed then.
    fn offline_memory(&mut self, range: PhysRange) -> Result<(), KernelError>;
}

/// What the platform says is memory, besides the boot RAM the bring-up recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformMemory<'p> {
    /// The platform record's hot-plug window, if any: the only place new memory may appear.
    pub hotplug_window: Option<PhysRange>,
    /// The module's CMRs (to tell a firmware hole from MMIO or absent memory).
    pub cmrs: &'p [PhysRange],
}

/// The manifest's hotplug policy (§8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotplugPolicy {
    /// Every allocatable page is TDX memory: non-TDX memory is refused (option 1).
    Reject,
    /// Non-TDX memory is accepted as its own class; nodes report TDX capability (option 2).
    PerNode,
}

/// Per-node totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeTotals {
    /// Online TDX bytes.
    pub tdx_total: u64,
    /// Free TDX bytes.
    pub tdx_free: u64,
    /// Online non-TDX bytes.
    pub non_tdx_total: u64,
    /// Free non-TDX bytes.
    pub non_tdx_free: u64,
}

impl NodeTotals {
    /// Option 2's flag: has TDX memory and nothing else online.
    #[must_use]
    pub fn tdx_capable(&self) -> bool {
        self.tdx_total > 0 && self.non_tdx_total == 0
    }
}

/// Regions over a frame allocator.
#[derive(Debug)]
pub struct Regions<'a> {
    /// The allocator whose pools are the regions.
    pub frames: FrameAllocator<'a>,
    tdmrs: Vec<PhysRange, MAX_TDMRS>,
    /// Reserved areas (absolute): TDMR memory that is not TDX-usable.
    reserved: Vec<PhysRange, MAX_HOLES>,
    /// Memory in use by the system: PAMTs, image, buffer.
    forbidden: Vec<PhysRange, MAX_HOLES>,
    /// Boot RAM of the platform record (online, boot-offline, outside the CMRs).
    boot_ram: Vec<PhysRange, MAX_BOOT_RAM>,
    hotplug_window: Option<PhysRange>,
    cmrs: Vec<PhysRange, MAX_CMRS>,
    policy: HotplugPolicy,
    nodes: u16,
    /// The last totals and the allocator's pool epoch they were summed at.
    totals_cache: Cell<Option<(u64, NodeTotals)>>,
}

/// Whether `r` lies wholly inside the union of `ranges` (in any order, touching ranges join):
/// nothing of it is left once they are subtracted.
fn covered(ranges: &[PhysRange], r: PhysRange) -> bool {
    let mut uncovered = false;
    r.subtract(ranges.iter().copied(), |_| uncovered = true);
    !uncovered
}

/// Calls `f` with each 4 KiB-trimmed piece of `r` outside every range of `holes`.
fn subtract(r: PhysRange, holes: &[PhysRange], mut f: impl FnMut(PhysRange)) {
    r.subtract(holes.iter().copied(), |piece| {
        if let Some(p) = piece.align_inward(PAGE_4K) {
            f(p);
        }
    });
}

impl<'a> Regions<'a> {
    /// Builds the region map after a successful bring-up; every TDMR is marked initialized.
    /// `frames` is empty, or restored from the ledger: then its first pools must be exactly
    /// the boot pools this plan gives (same order, range, node and class; their online state
    /// and counters are the ledger's), else `RegionOverlap`.
    ///
    /// # Errors
    /// `TableFull` when pools, holes, boot RAM ranges or bitmap storage run out;
    /// `RegionOverlap` for a restored allocator that does not match the plan.
    pub fn build(
        frames: FrameAllocator<'a>,
        storage: &InitStorage,
        platform: PlatformMemory<'_>,
        policy: HotplugPolicy,
        nodes: u16,
    ) -> Result<Self, TdxHostError> {
        let all = &mut storage.plan.tdmrs.iter().map(|t| t.range());
        Self::build_initialized(frames, storage, platform, policy, nodes, all)
    }

    /// [`Regions::build`] while TDMR.INIT still runs: only the whole 1 GiB blocks of
    /// `initialized` (inside the plan's TDMRs) are marked initialized; the rest follows with
    /// [`Regions::mark_initialized`] as TDMR.INIT advances. TDX frames come only from marked
    /// blocks (the module refuses a page of a GiB whose TDMR.INIT is not finished, §3.2, §9.1).
    ///
    /// # Errors
    /// As [`Regions::build`].
    pub fn build_initialized(
        mut frames: FrameAllocator<'a>,
        storage: &InitStorage,
        platform: PlatformMemory<'_>,
        policy: HotplugPolicy,
        nodes: u16,
        initialized: &mut dyn Iterator<Item = PhysRange>,
    ) -> Result<Self, TdxHostError> {
        let full = |_| TdxHostError::TableFull;
        let mut tdmrs: Vec<PhysRange, MAX_TDMRS> = Vec::new();
        let mut reserved: Vec<PhysRange, MAX_HOLES> = Vec::new();
        let mut forbidden: Vec<PhysRange, MAX_HOLES> = Vec::new();
        for t in &storage.plan.tdmrs {
            tdmrs.push(t.range()).map_err(full)?;
            for a in &t.reserved {
                // A verified plan's reserved areas lie inside their TDMR, which does not wrap.
                let abs = PhysRange::saturating(t.base.0.saturating_add(a.offset.0), a.size.0);
                reserved.push(abs).map_err(full)?;
            }
        }
        for b in &storage.plan.pamt_blocks {
            forbidden.push(b.range).map_err(full)?;
        }
        for r in &storage.excluded {
            forbidden.push(*r).map_err(full)?;
        }
        let mut boot_ram: Vec<PhysRange, MAX_BOOT_RAM> = Vec::new();
        for m in storage
            .tdx_ram
            .iter()
            .chain(&storage.tdx_offline)
            .chain(&storage.non_tdx_ram)
        {
            boot_ram.push(m.range).map_err(full)?;
        }
        let mut cmrs: Vec<PhysRange, MAX_CMRS> = Vec::new();
        for c in platform.cmrs {
            cmrs.push(*c).map_err(full)?;
        }
        let mut err = None;
        // A restored allocator (the ledger's, after a restart) already holds the boot pools:
        // they must be exactly the ones this plan gives, in the same order.
        let restored = !frames.pools().is_empty();
        let mut next = 0;
        let mut add = |m: &MemRange, class, online| {
            subtract_both(m.range, &reserved, &forbidden, |p| {
                if restored {
                    let same = frames
                        .pools()
                        .get(next)
                        .is_some_and(|q| q.range == p && q.node == m.node && q.class == class);
                    if !same {
                        err.get_or_insert(FrameError::Overlap);
                    }
                    next += 1;
                } else if let Err(e) = frames.add_pool(p, m.node, class, online) {
                    err.get_or_insert(e);
                }
            });
        };
        for m in &storage.tdx_ram {
            add(m, MemClass::Tdx, true);
        }
        for m in &storage.tdx_offline {
            add(m, MemClass::Tdx, false);
        }
        if policy == HotplugPolicy::PerNode {
            for m in &storage.non_tdx_ram {
                add(m, MemClass::NonTdx, true);
            }
        }
        if let Some(e) = err {
            return Err(frame_error(e));
        }
        for r in initialized {
            if covered(&tdmrs, r) {
                frames.mark_ready(r);
            }
        }
        Ok(Regions {
            frames,
            tdmrs,
            reserved,
            forbidden,
            boot_ram,
            hotplug_window: platform.hotplug_window,
            cmrs,
            policy,
            nodes,
            totals_cache: Cell::new(None),
        })
    }

    /// TDMR.INIT made `range` usable (`[TDMR base, initialized end)`): TDX frames of its
    /// whole 1 GiB blocks may be handed out from now on. A range not inside the plan's TDMRs
    /// is ignored (nothing outside a TDMR is ever initialized).
    pub fn mark_initialized(&mut self, range: PhysRange) {
        if covered(&self.tdmrs, range) {
            self.frames.mark_ready(range);
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> HotplugPolicy {
        self.policy
    }

    /// Number of nodes.
    #[must_use]
    pub fn nodes(&self) -> u16 {
        self.nodes
    }

    /// Whether `r` lies wholly inside TDMR memory that the module will use (not reserved).
    #[must_use]
    pub fn is_tdx_usable(&self, r: PhysRange) -> bool {
        // TDMRs are sorted and disjoint; walk the ones covering r contiguously.
        let end = r.base().0 + r.size().0;
        let mut cursor = r.base().0;
        while cursor < end {
            match self
                .tdmrs
                .iter()
                .find(|t| t.base().0 <= cursor && cursor < t.base().0 + t.size().0)
            {
                Some(t) => cursor = t.base().0 + t.size().0,
                None => return false,
            }
        }
        !self.reserved.iter().any(|h| h.overlaps(r))
    }

    /// Whether `r` lies wholly inside the platform's hot-plug window.
    fn in_window(&self, r: PhysRange) -> bool {
        self.hotplug_window.is_some_and(|w| covered(&[w], r))
    }

    /// Why `r` (overlapping no pool and no system memory) is not memory tdx-host may online,
    /// or `None` when it lies wholly inside the hot-plug window.
    fn not_onlinable(&self, r: PhysRange) -> Option<TdxHostError> {
        if self.boot_ram.iter().any(|m| m.overlaps(r)) {
            return Some(TdxHostError::NotHeldOffline);
        }
        if self.in_window(r) {
            return None;
        }
        if self.cmrs.iter().chain(&self.tdmrs).any(|c| c.overlaps(r)) {
            return Some(TdxHostError::FirmwareHole);
        }
        Some(TdxHostError::NotMemory)
    }

    /// §8.1 onlining; returns the class the memory became. See the module doc for the rules.
    ///
    /// # Errors
    /// BadAlignment, BadArgument, NoSuchNode, AlreadyOnline, WrongNode, RegionOverlap,
    /// NotHeldOffline, FirmwareHole, NotMemory, RegionOutsideTdmrs, TableFull, MemoryRefused.
    pub fn online<M: MemoryAuthority>(
        &mut self,
        range: PhysRange,
        node: u16,
        kernel: &mut M,
    ) -> Result<MemClass, TdxHostError> {
        check_range(range)?;
        if node >= self.nodes {
            return Err(TdxHostError::NoSuchNode);
        }
        let pools = self.frames.pools();
        if let Some(k) = pools.iter().position(|p| p.range == range) {
            let p = pools[k];
            if p.online {
                return Err(TdxHostError::AlreadyOnline);
            }
            if p.node != node {
                return Err(TdxHostError::WrongNode);
            }
            // Hot-plugged memory taken offline earlier went back to the kernel: ask again.
            if self.in_window(range) {
                kernel
                    .online_memory(range)
                    .map_err(|_| TdxHostError::MemoryRefused)?;
            }
            self.frames
                .set_online(PoolId(k), true)
                .map_err(frame_error)?;
            return Ok(p.class);
        }
        if pools.iter().any(|p| p.range.overlaps(range))
            || self.forbidden.iter().any(|f| f.overlaps(range))
        {
            return Err(TdxHostError::RegionOverlap);
        }
        if let Some(e) = self.not_onlinable(range) {
            return Err(e);
        }
        let class = if self.is_tdx_usable(range) {
            MemClass::Tdx
        } else if self.policy == HotplugPolicy::PerNode {
            MemClass::NonTdx
        } else {
            return Err(TdxHostError::RegionOutsideTdmrs);
        };
        // Every way `add_pool` can fail is checked before the kernel is asked.
        self.frames.can_add_pool(range).map_err(frame_error)?;
        kernel
            .online_memory(range)
            .map_err(|_| TdxHostError::MemoryRefused)?;
        if let Err(e) = self.frames.add_pool(range, node, class, true) {
            // Unreachable after `can_add_pool`; keep the kernel's table equal to ours anyway.
            let _ = kernel.offline_memory(range);
            return Err(frame_error(e));
        }
        Ok(class)
    }

    /// Takes an online region out of use; refused while anything in it is allocated or waits
    /// in quarantine. Hot-plugged memory goes back to the kernel.
    ///
    /// # Errors
    /// BadAlignment, BadArgument, UnknownRegion, RegionBusy, MemoryRefused.
    pub fn offline<M: MemoryAuthority>(
        &mut self,
        range: PhysRange,
        kernel: &mut M,
    ) -> Result<(), TdxHostError> {
        check_range(range)?;
        let k = self
            .frames
            .pools()
            .iter()
            .position(|p| p.range == range && p.online)
            .ok_or(TdxHostError::UnknownRegion)?;
        self.frames
            .set_online(PoolId(k), false)
            .map_err(frame_error)?;
        if self.in_window(range) && kernel.offline_memory(range).is_err() {
            // The kernel keeps it: so do we (all or nothing).
            let _ = self.frames.set_online(PoolId(k), true);
            return Err(TdxHostError::MemoryRefused);
        }
        Ok(())
    }

    /// Totals of `node` (online pools only).
    #[must_use]
    pub fn node_totals(&self, node: u16) -> NodeTotals {
        let mut t = NodeTotals::default();
        for p in self
            .frames
            .pools()
            .iter()
            .filter(|p| p.online && p.node == node)
        {
            let (total, free) = match p.class {
                MemClass::Tdx => (&mut t.tdx_total, &mut t.tdx_free),
                MemClass::NonTdx => (&mut t.non_tdx_total, &mut t.non_tdx_free),
            };
            *total += p.range.size().0;
            *free += p.free_bytes();
        }
        t
    }

    /// Totals over all nodes.
    #[must_use]
    pub fn totals(&self) -> NodeTotals {
        // Pools change only by allocator calls that mark them; between such calls (most
        // `status` requests) the last sums still hold.
        let epoch = self.frames.dirty().pool_epoch();
        if let Some((at, t)) = self.totals_cache.get() {
            if at == epoch {
                debug_assert_eq!(t, self.sum_totals(), "stale totals at pool epoch {epoch}");
                return t;
            }
        }
        let t = self.sum_totals();
        self.totals_cache.set(Some((epoch, t)));
        t
    }

    fn sum_totals(&self) -> NodeTotals {
        // One pass over the pools (not one per node): `status` asks on every request. Every
        // pool adds to the sums over both classes, a non-TDX pool also (through a mask, not a
        // branch) to the non-TDX sums; TDX is the difference. The pools are disjoint ranges of
        // physical memory, so no sum reaches 2^64 and the additions need no overflow test.
        let (mut total, mut free, mut non_tdx_total, mut non_tdx_free) = (0u64, 0u64, 0u64, 0u64);
        for p in self
            .frames
            .pools()
            .iter()
            .filter(|p| p.online && p.node < self.nodes)
        {
            let non_tdx = 0u64.wrapping_sub(u64::from(p.class == MemClass::NonTdx));
            let (bytes, free_bytes) = (p.range.size().0, p.free_bytes());
            total = total.wrapping_add(bytes);
            free = free.wrapping_add(free_bytes);
            non_tdx_total = non_tdx_total.wrapping_add(bytes & non_tdx);
            non_tdx_free = non_tdx_free.wrapping_add(free_bytes & non_tdx);
        }
        NodeTotals {
            tdx_total: total.wrapping_sub(non_tdx_total),
            tdx_free: free.wrapping_sub(non_tdx_free),
            non_tdx_total,
            non_tdx_free,
        }
    }

    /// Region `i` as a wire record.
    #[must_use]
    pub fn record(&self, i: usize) -> Option<RegionRecord> {
        let p = self.frames.pools().get(i)?;
        Some(RegionRecord {
            base: p.range.base().0,
            size: p.range.size().0,
            bytes_in_use: p.in_use * PAGE_4K,
            node: p.node,
            class: p.class as u8,
            state: if p.online {
                region_state::ONLINE
            } else {
                region_state::OFFLINE
            },
            _pad: 0,
        })
    }
}

fn subtract_both(r: PhysRange, a: &[PhysRange], b: &[PhysRange], mut f: impl FnMut(PhysRange)) {
    subtract(r, a, |piece| subtract(piece, b, &mut f));
}

fn check_range(r: PhysRange) -> Result<(), TdxHostError> {
    if !r.base().is_aligned(PAGE_4K) || !PhysAddr(r.size().0).is_aligned(PAGE_4K) {
        return Err(TdxHostError::BadAlignment);
    }
    if r.is_empty() {
        return Err(TdxHostError::BadArgument);
    }
    Ok(())
}

/// The wire error for an allocator error. Out of line: only error paths call it, and one copy
/// of its table serves them all (the task's code budget is tight).
#[must_use]
#[inline(never)]
pub fn frame_error(e: FrameError) -> TdxHostError {
    match e {
        FrameError::NoMemory => TdxHostError::NoMemory,
        FrameError::BadAlignment => TdxHostError::BadAlignment,
        FrameError::NotOwner => TdxHostError::NotOwner,
        FrameError::UnknownFrame => TdxHostError::UnknownFrame,
        FrameError::DoubleFree => TdxHostError::DoubleFree,
        FrameError::WrongSize => TdxHostError::WrongSize,
        FrameError::TableFull | FrameError::NoBitmapSpace => TdxHostError::TableFull,
        FrameError::BadArgument | FrameError::NotQuarantined => TdxHostError::BadArgument,
        FrameError::Overlap => TdxHostError::RegionOverlap,
        FrameError::Busy(_) => TdxHostError::RegionBusy,
    }
}

#[cfg(test)]
pub(crate) mod tests;
