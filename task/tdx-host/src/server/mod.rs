//! Request handlers of the TdxHost interface, as pure functions over the bring-up, the regions
//! and the per-client policy; the server binary only glues IPC (leases, reply codes) to them.
//!
//! Pattern: every handler takes the caller's [`Owner`] (its `TaskId`) and the decoded
//! arguments, and returns `Result<_, TdxHostError>`; lease contents are passed as byte slices
//! the binary copies in or out. Handlers never panic on client input: every length, count,
//! alignment and node is checked, and arithmetic on client values is checked or saturating.
//!
//! Rules:
//! - before `Ready` only `status` is served, and, once TDMR.INIT has begun, TDX frames from
//!   the 1 GiB blocks it has finished and their free ([`Server::advance_init`] marks blocks as
//!   the module reports them, §3.2); everything else answers NotReady while initializing,
//!   Failed and Unavailable afterwards — never a frame of a block TDMR.INIT has not finished;
//! - allocation needs a [`ClientPolicy`]: the class must be granted (AccessDenied), the node in
//!   the client's mask (NodeNotAllowed), and usage + request within the quota (QuotaExceeded);
//! - anyone may free, but only its own frames (the allocator checks owner and generation);
//! - online/offline need the `hotplug` right, and accept only memory (see [`Regions::online`]);
//! - freed and reclaimed frames are reused only after [`Server::scrub_step`] scrubbed them
//!   and TDH.PHYMEM.PAGE.RDMD reported PT_NDA for every TDX page (§8.4, §9.1);
//! - bounded work per request: a free or a reclaim only moves frames to quarantine (the
//!   caller's usage drops at once); no handler scrubs or checks anything. The binary calls
//!   [`Server::scrub_step`] between requests, which scrubs and checks at most
//!   [`SCRUB_STEP_BYTES`] (2 MiB: one kernel scrub and 512 RDMD calls), so a 1 GiB frame is
//!   512 steps, never one long request at tdx-host's priority.
//!
//! Size: the struct is small apart from its [`Regions`] (pool and record tables, ~70 KiB, keep it
//! in a `static`); handlers use at most 4 KiB of stack (512 decoded addresses).

use core::cell::Cell;
use core::fmt;

use heapless::Vec;
use tdx_abi::{Leaf, PageType, SeamcallArgs};
use tdx_host_api::{
    FrameSize, InitStep, MemClass, ModuleState, ModuleStatus, NodeInfo, OnlineReply,
    RegionMapReply, RegionRecord, ServerStats, TdxHostError, ADDR_BYTES, ANY_NODE,
    MAX_FRAMES_PER_CALL, SCRUB_STEP_BYTES,
};
use tdx_planner::addr::{PhysAddr, PhysRange, PAGE_4K};

use crate::frames::{NodeMask, Owner, Request};
use crate::init::record::{AtomicWords, Durable, RecordWords};
use crate::init::{initialized_range, Bringup, Observer, Progress, State, TdmrRun};
use crate::ledger::{Ledger, LedgerError, LedgerState};
use crate::regions::{frame_error, MemoryAuthority, Regions};
use crate::seam::{KernelError, Seam};

mod durable;
pub mod pacing;
pub mod service;
pub mod start;
pub mod td;

pub use durable::{counters_from, Attached, OWNED_RECORD_BYTES};
pub use td::DeadTds;

/// What [`Server::client_restarted`] did for one client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// The dead incarnations' TDs.
    pub tds: DeadTds,
    /// Bytes moved into quarantine.
    pub bytes: u64,
}

/// Most clients with a policy.
pub const MAX_CLIENTS: usize = 32;

/// What one client task may do (from the manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientPolicy {
    /// The client's task index.
    pub task_index: u16,
    /// Most bytes it may hold at once (allocated, all classes).
    pub quota_bytes: u64,
    /// Nodes it may allocate from.
    pub nodes: NodeMask,
    /// May allocate TDX memory.
    pub tdx: bool,
    /// May allocate non-TDX memory.
    pub non_tdx: bool,
    /// May online/offline regions (a hotplug driver).
    pub hotplug: bool,
    /// Most guest KeyIDs (TDs) it may hold at once (0: it may create no TD).
    pub keyids: u16,
}

/// Zeroes physical memory with the right key (the kernel's "scrub physical range" op).
pub trait Scrubber {
    /// Scrubs `range` (4 KiB-aligned).
    ///
    /// # Errors
    /// The kernel's refusal; the range then stays quarantined.
    fn scrub(&mut self, range: PhysRange) -> Result<(), KernelError>;
}

/// What [`Server::scrub_step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Bytes back in the free pool.
    pub released: u64,
    /// Bytes retired for good: the kernel refused to scrub them, or a page was not PT_NDA.
    pub retired: u64,
    /// TDH.PHYMEM.PAGE.RDMD calls made.
    pub rdmd_calls: u64,
}

/// The server's state.
#[derive(Debug)]
pub struct Server<'a> {
    /// The bring-up (state, counts, module info).
    pub bringup: Bringup,
    /// The regions, once `Ready`.
    pub regions: Option<Regions<'a>>,
    clients: Vec<ClientPolicy, MAX_CLIENTS>,
    pamt_bytes: u64,
    num_tdmrs: u16,
    /// The durable ledger, once attached (see [`crate::ledger`]).
    ledger: Option<Ledger<'a>>,
    /// What the ledger keeps besides the allocator: clients' last requests, counters, intent.
    lstate: LedgerState,
    /// The ledger was refused (or could not commit): the server serves nothing, `Failed`.
    ledger_error: Option<LedgerError>,
    /// Where TD operations run.
    td_cpus: td::TdCpus,
    /// TD SEAMCALLs made again after a busy or interrupted answer.
    td_retries: u32,
    /// The module's status for the last TD operation it refused.
    last_td_status: tdx_abi::TdxStatus,
    /// Room for one request's frame addresses, cleared once at start: a request for one frame
    /// must not pay for clearing room for [`MAX_FRAMES_PER_CALL`].
    addrs: [PhysAddr; MAX_FRAMES_PER_CALL],
    /// The bring-up record's durable words, for TDMR.INIT steps taken while serving.
    record: Option<&'a RecordWords>,
    /// The bring-up's part of `status` once it is `Ready` (it never changes after that), so a
    /// `status` request rebuilds only the parts that move (ledger failure, byte totals).
    ready_status: Cell<Option<ModuleStatus>>,
}

impl<'a> Server<'a> {
    /// A server over a finished (or failed) bring-up. Clients beyond [`MAX_CLIENTS`] are dropped
    /// (they get AccessDenied).
    #[must_use]
    pub fn new(
        bringup: Bringup,
        regions: Option<Regions<'a>>,
        clients: &[ClientPolicy],
        pamt_bytes: u64,
        num_tdmrs: u16,
    ) -> Self {
        let mut v = Vec::new();
        for c in clients.iter().take(MAX_CLIENTS) {
            let _ = v.push(*c);
        }
        Server {
            bringup,
            regions,
            clients: v,
            pamt_bytes,
            num_tdmrs,
            ledger: None,
            lstate: LedgerState::default(),
            ledger_error: None,
            td_cpus: td::TdCpus::default(),
            td_retries: 0,
            last_td_status: tdx_abi::TdxStatus::SUCCESS,
            addrs: [PhysAddr(0); MAX_FRAMES_PER_CALL],
            record: None,
            ready_status: Cell::new(None),
        }
    }

    /// Keeps the bring-up record's words (given to the bring-up) for [`Server::advance_init`].
    pub fn keep_record(&mut self, words: Option<&'a RecordWords>) {
        self.record = words;
    }

    /// TDMR.INIT runs while the server serves: the regions exist, TDX frames come from the
    /// blocks already initialized.
    #[must_use]
    pub fn initializing(&self) -> bool {
        self.bringup.tdmr_init_running()
    }

    /// One bounded TDMR.INIT step of `run` (from [`start`](start::start)) while serving (a
    /// `seam-done` arrived): the answers there are, booked in the record; every block they
    /// finish is marked initialized in the regions (after the record holds it), then reported
    /// to `progress`. Returns the state.
    pub fn advance_init<S: Seam>(
        &mut self,
        seam: &mut S,
        run: &mut Option<TdmrRun>,
        progress: &mut dyn FnMut(&Progress),
    ) -> State {
        struct Marking<'r, 'b, 'p> {
            regions: Option<&'r mut Regions<'b>>,
            progress: &'p mut dyn FnMut(&Progress),
        }
        impl Observer for Marking<'_, '_, '_> {
            fn tdmr_progress(&mut self, p: &Progress) {
                if let Some(r) = self.regions.as_deref_mut() {
                    r.mark_initialized(initialized_range(p));
                }
                (self.progress)(p);
            }
        }
        let mut words = self.record.map(|r| AtomicWords(r.words()));
        let durable = words.as_mut().map(|w| w as &mut dyn Durable);
        let mut observer = Marking {
            regions: self.regions.as_mut(),
            progress,
        };
        self.bringup.advance(seam, run, durable, &mut observer)
    }

    /// The regions are built (after `Ready`): from now on memory is served.
    pub fn serve(&mut self, regions: Regions<'a>) {
        self.regions = Some(regions);
    }

    /// `stats` for the task with index `caller`: the server's `counters` plus what the caller
    /// holds, its quota, and what waits in quarantine.
    #[must_use]
    pub fn stats(&self, caller: u16, counters: ServerStats) -> ServerStats {
        let mut s = counters;
        // TDMR.INIT may still retry while serving: the bring-up's counts as they are now.
        s.init_retries = self.initial_stats().init_retries;
        if let Some(r) = self.regions.as_ref() {
            s.caller_usage_bytes = r.frames.usage(caller);
            s.quarantined_bytes = r.frames.quarantined_bytes();
        }
        s.caller_quota_bytes = self
            .clients
            .iter()
            .find(|c| c.task_index == caller)
            .map_or(0, |c| c.quota_bytes);
        s
    }

    /// The server's counters at the start: the bring-up's retries per step.
    #[must_use]
    pub fn initial_stats(&self) -> ServerStats {
        let mut s = ServerStats::default();
        let retries = self.bringup.counts().retries;
        for (slot, n) in s.init_retries.iter_mut().zip(retries) {
            *slot = u16::try_from(n).unwrap_or(u16::MAX);
        }
        s
    }

    /// 4 KiB frames in use (allocated, quarantined or retired) in the region exactly `range`,
    /// if there is one: why an offline was refused.
    #[must_use]
    pub fn frames_in_use(&self, range: PhysRange) -> Option<u64> {
        let r = self.regions.as_ref()?;
        r.frames
            .pools()
            .iter()
            .find(|p| p.range == range)
            .map(|p| p.in_use)
    }

    /// Hands the region summary to `out`, one line per node and a total (nothing before the
    /// regions are built).
    pub fn write_regions(&self, out: &mut dyn FnMut(fmt::Arguments<'_>)) {
        const MIB: u64 = 1 << 20;
        let Some(r) = self.regions.as_ref() else {
            return;
        };
        for n in 0..r.nodes() {
            let t = r.node_totals(n);
            out(format_args!(
                "node {n}: {} MiB TDX ({} MiB free), {} MiB non-TDX, TDX-capable: {}",
                t.tdx_total / MIB,
                t.tdx_free / MIB,
                t.non_tdx_total / MIB,
                t.tdx_capable()
            ));
        }
        let pools = r.frames.pools();
        let offline: u64 = pools
            .iter()
            .filter(|p| !p.online)
            .map(|p| p.range.size().0)
            .sum();
        out(format_args!(
            "{} regions ({} MiB offline until onlined); serving",
            pools.len(),
            offline / MIB
        ));
    }

    fn policy(&self, caller: Owner) -> Option<&ClientPolicy> {
        self.clients.iter().find(|c| c.task_index == caller.index())
    }

    fn ready(&self) -> Result<&Regions<'a>, TdxHostError> {
        if self.ledger_error.is_some() {
            return Err(TdxHostError::Failed);
        }
        match self.bringup.state() {
            State::Ready => self.regions.as_ref().ok_or(TdxHostError::NotReady),
            State::NotStarted | State::Initializing(_) => Err(TdxHostError::NotReady),
            State::Failed { .. } => Err(TdxHostError::Failed),
            State::Unavailable(_) => Err(TdxHostError::Unavailable),
        }
    }

    /// Starts the TDMR.INIT chunks `run` held back for requests ([`TdmrRun::holds_back`]),
    /// and begins a new turn: a request was served. Returns the state.
    pub fn release_init<S: Seam>(&mut self, seam: &mut S, run: &mut Option<TdmrRun>) -> State {
        self.bringup.release_held(seam, run, &mut |_: &Progress| {})
    }

    /// The regions for what is served while TDMR.INIT runs (TDX frames of initialized blocks
    /// and their free); otherwise as [`Self::ready`].
    fn early(&self) -> Result<&Regions<'a>, TdxHostError> {
        if self.ledger_error.is_none() && self.initializing() {
            return self.regions.as_ref().ok_or(TdxHostError::NotReady);
        }
        self.ready()
    }

    /// `status`: always answers. Once Ready, the bring-up part is a cached copy and only the
    /// totals are summed; inlined into the dispatch, so the reply is built where it is sent.
    #[inline]
    #[must_use]
    pub fn status(&self) -> ModuleStatus {
        let mut s = match self.ready_status.get() {
            Some(s) => s,
            None => {
                let s = self.bringup_status();
                if matches!(self.bringup.state(), State::Ready) {
                    self.ready_status.set(Some(s));
                }
                s
            }
        };
        if let Some(e) = self.ledger_error {
            s.state = ModuleState::Failed as u8;
            s.step = InitStep::TdmrInit as u8;
            s.status = e.code();
        }
        if let Some(r) = self.regions.as_ref() {
            let t = r.totals();
            s.tdx_bytes_total = t.tdx_total;
            s.tdx_bytes_free = t.tdx_free;
            s.non_tdx_bytes_total = t.non_tdx_total;
            s.non_tdx_bytes_free = t.non_tdx_free;
        }
        s
    }

    /// What `status` reports of the bring-up (state, step, counts, module identity). Out of
    /// line: once Ready, `status` uses the cached copy.
    #[inline(never)]
    fn bringup_status(&self) -> ModuleStatus {
        let b = &self.bringup;
        let info = b.info();
        let (done, total) = b.tdmr_bytes();
        let per_cpu = b.tdmr_init_per_cpu();
        let mut s = ModuleStatus {
            init_seamcalls: b.counts().total(),
            tdmr_init_calls: per_cpu.iter().map(|&(_, n)| n).sum(),
            tdmr_init_most_on_one_cpu: per_cpu.iter().map(|&(_, n)| n).max().unwrap_or(0),
            tdmr_init_cpus: per_cpu.len() as u16,
            tdmr_init_peak_in_flight: b.tdmr_init_peak_in_flight() as u16,
            tdmr_bytes_initialized: done,
            tdmr_bytes_total: total,
            first_tdx_keyid: info.keyids.first_tdx(),
            nr_tdx_keyids: info.keyids.nr_tdx,
            major: info.major,
            minor: info.minor,
            update: info.update,
            build_num: info.build_num,
            global_keyid: info.global_keyid,
            ..ModuleStatus::default()
        };
        match b.state() {
            State::NotStarted => s.state = ModuleState::NotStarted as u8,
            State::Initializing(step) => {
                s.state = ModuleState::Initializing as u8;
                s.step = step as u8;
            }
            State::Ready => {
                s.state = ModuleState::Ready as u8;
                s.step = InitStep::TdmrInit as u8;
                s.pamt_bytes = self.pamt_bytes;
                s.num_tdmrs = self.num_tdmrs;
            }
            State::Failed { step, status, .. } => {
                s.state = ModuleState::Failed as u8;
                s.step = step as u8;
                s.status = status.0;
            }
            State::Unavailable(reason) => {
                s.state = ModuleState::Unavailable as u8;
                s.reason = reason as u8;
            }
        }
        s
    }

    /// `alloc_frames`: writes `count` little-endian addresses to the start of `out`.
    ///
    /// # Errors
    /// See the IDL: NotReady/Failed/Unavailable, BadArgument, AccessDenied, NoSuchNode,
    /// NodeNotAllowed, QuotaExceeded, NoMemory, TableFull.
    pub fn alloc_frames(
        &mut self,
        caller: Owner,
        node: u16,
        size: FrameSize,
        class: MemClass,
        count: u32,
        out: &mut [u8],
    ) -> Result<u32, TdxHostError> {
        self.alloc_tagged(caller, (node, size, class), count, 0, out)
    }

    /// `alloc_frame`: [`Self::alloc_frames`] of one frame, its address returned as a number
    /// (no address list written and read back); the same checks in the same order.
    ///
    /// # Errors
    /// As [`Self::alloc_frames`] of count 1.
    pub fn alloc_frame(
        &mut self,
        caller: Owner,
        what: (u16, FrameSize, MemClass),
    ) -> Result<u64, TdxHostError> {
        let req = self.admit(caller, what, 1, ADDR_BYTES)?;
        let regions = self.regions.as_mut().ok_or(TdxHostError::NotReady)?;
        regions
            .frames
            .alloc_single(caller, req, 0)
            .map(|a| a.0)
            .map_err(frame_error)
    }

    /// `alloc_frames` whose new records carry the request identity `tag`.
    fn alloc_tagged(
        &mut self,
        caller: Owner,
        what: (u16, FrameSize, MemClass),
        count: u32,
        tag: u32,
        out: &mut [u8],
    ) -> Result<u32, TdxHostError> {
        let req = self.admit(caller, what, count, out.len())?;
        let regions = self.regions.as_mut().ok_or(TdxHostError::NotReady)?;
        let addrs = &mut self.addrs[..count as usize];
        regions
            .frames
            .allocate_tagged(caller, req, tag, addrs)
            .map_err(frame_error)?;
        for (chunk, a) in out.chunks_exact_mut(ADDR_BYTES).zip(addrs.iter()) {
            chunk.copy_from_slice(&a.0.to_le_bytes());
        }
        Ok(count)
    }

    /// The checks of an allocation of `count` frames of `size` and `class` on `node` for
    /// `caller` into `room` bytes, in order: served at all, the count and room, the caller's
    /// policy (class granted, node allowed), its quota. Returns the allocator's request. Out
    /// of line: one copy for both callers (the task's code budget is tight).
    #[inline(never)]
    fn admit(
        &self,
        caller: Owner,
        (node, size, class): (u16, FrameSize, MemClass),
        count: u32,
        room: usize,
    ) -> Result<Request, TdxHostError> {
        let nodes = self.early()?.nodes();
        if class != MemClass::Tdx {
            // Non-TDX memory is served from `Ready` on, as everything but TDX frames.
            self.ready()?;
        }
        if !batch_fits(count, room) {
            return Err(TdxHostError::BadArgument);
        }
        let p = *self.policy(caller).ok_or(TdxHostError::AccessDenied)?;
        let granted = match class {
            MemClass::Tdx => p.tdx,
            MemClass::NonTdx => p.non_tdx,
        };
        if !granted {
            return Err(TdxHostError::AccessDenied);
        }
        let mask = if node == ANY_NODE {
            p.nodes
        } else if node >= nodes {
            return Err(TdxHostError::NoSuchNode);
        } else if !p.nodes.has(node) {
            return Err(TdxHostError::NodeNotAllowed);
        } else {
            NodeMask(1 << node)
        };
        let regions = self.regions.as_ref().ok_or(TdxHostError::NotReady)?;
        let want = u64::from(count).saturating_mul(size.bytes());
        if regions.frames.usage(caller.index()).saturating_add(want) > p.quota_bytes {
            return Err(TdxHostError::QuotaExceeded);
        }
        Ok(Request {
            nodes: mask,
            size,
            class,
        })
    }

    /// `free_frames`: `addrs` holds little-endian addresses, 8 bytes each.
    ///
    /// # Errors
    /// NotReady/Failed/Unavailable, BadArgument (empty, not a multiple of 8, over 512),
    /// BadAlignment, UnknownFrame, DoubleFree, NotOwner, WrongSize.
    pub fn free_frames(
        &mut self,
        caller: Owner,
        size: FrameSize,
        addrs: &[u8],
    ) -> Result<u32, TdxHostError> {
        self.early()?;
        let n = addrs.len() / ADDR_BYTES;
        if n == 0 || n > MAX_FRAMES_PER_CALL || !addrs.len().is_multiple_of(ADDR_BYTES) {
            return Err(TdxHostError::BadArgument);
        }
        let list = &mut self.addrs[..n];
        for (slot, chunk) in list.iter_mut().zip(addrs.chunks_exact(ADDR_BYTES)) {
            let mut b = [0u8; ADDR_BYTES];
            b.copy_from_slice(chunk);
            *slot = PhysAddr(u64::from_le_bytes(b));
        }
        if self.any_in_td(caller, size, &self.addrs[..n]) {
            return Err(TdxHostError::PageInTd);
        }
        let list = &self.addrs[..n];
        let regions = self.regions.as_mut().ok_or(TdxHostError::NotReady)?;
        let freed = regions
            .frames
            .free(caller, size, list)
            .map_err(frame_error)?;
        Ok(freed as u32)
    }

    /// `free_frame`: [`Self::free_frames`] of the one address `addr`, taken as a number (no
    /// byte list to copy and parse); the same checks in the same order.
    ///
    /// # Errors
    /// As [`Self::free_frames`] (but BadArgument: one address is always a valid list).
    pub fn free_frame(
        &mut self,
        caller: Owner,
        size: FrameSize,
        addr: u64,
    ) -> Result<(), TdxHostError> {
        self.early()?;
        if self.held_in_td(caller, addr, size) {
            return Err(TdxHostError::PageInTd);
        }
        let regions = self.regions.as_mut().ok_or(TdxHostError::NotReady)?;
        regions
            .frames
            .free_single(caller, size, addr)
            .map_err(frame_error)
    }

    /// `node_info`.
    ///
    /// # Errors
    /// NotReady/Failed/Unavailable, NoSuchNode.
    pub fn node_info(&self, node: u16) -> Result<NodeInfo, TdxHostError> {
        let r = self.ready()?;
        if node >= r.nodes() {
            return Err(TdxHostError::NoSuchNode);
        }
        let t = r.node_totals(node);
        Ok(NodeInfo {
            tdx_bytes_total: t.tdx_total,
            tdx_bytes_free: t.tdx_free,
            non_tdx_bytes_total: t.non_tdx_total,
            non_tdx_bytes_free: t.non_tdx_free,
            node,
            tdx_capable: u8::from(t.tdx_capable()),
            _pad: [0; 5],
        })
    }

    /// `region_map`: whole 32-byte records from region `first` into `out`.
    ///
    /// # Errors
    /// NotReady/Failed/Unavailable, BadArgument (`first` past the end).
    pub fn region_map(&self, first: u32, out: &mut [u8]) -> Result<RegionMapReply, TdxHostError> {
        let r = self.ready()?;
        let total = r.frames.pools().len();
        let first = first as usize;
        if first > total {
            return Err(TdxHostError::BadArgument);
        }
        let rec = core::mem::size_of::<RegionRecord>();
        let mut written = 0;
        for (i, chunk) in (first..total).zip(out.chunks_exact_mut(rec)) {
            if let Some(record) = r.record(i) {
                chunk.copy_from_slice(zerocopy_bytes(&record));
                written += 1;
            }
        }
        Ok(RegionMapReply {
            written,
            total: total as u32,
        })
    }

    /// `online_region`.
    ///
    /// # Errors
    /// AccessDenied without the hotplug right; otherwise see [`Regions::online`].
    pub fn online_region<M: MemoryAuthority>(
        &mut self,
        caller: Owner,
        base: u64,
        size: u64,
        node: u16,
        kernel: &mut M,
    ) -> Result<OnlineReply, TdxHostError> {
        self.ready()?;
        if !self.policy(caller).is_some_and(|p| p.hotplug) {
            return Err(TdxHostError::AccessDenied);
        }
        self.ready()?;
        let range = PhysRange::new(base, size).ok_or(TdxHostError::BadArgument)?;
        let regions = self.regions.as_mut().ok_or(TdxHostError::NotReady)?;
        let mut k = durable::Intending::new(kernel, self.ledger.as_mut(), &mut self.lstate);
        let class = regions.online(range, node, &mut k)?;
        Ok(OnlineReply {
            class: class as u8,
            node_tdx_capable: u8::from(regions.node_totals(node).tdx_capable()),
        })
    }

    /// `offline_region`.
    ///
    /// # Errors
    /// AccessDenied without the hotplug right; otherwise see [`Regions::offline`].
    pub fn offline_region<M: MemoryAuthority>(
        &mut self,
        caller: Owner,
        base: u64,
        size: u64,
        kernel: &mut M,
    ) -> Result<(), TdxHostError> {
        self.ready()?;
        if !self.policy(caller).is_some_and(|p| p.hotplug) {
            return Err(TdxHostError::AccessDenied);
        }
        self.ready()?;
        let regions = self.regions.as_mut().ok_or(TdxHostError::NotReady)?;
        let mut k = durable::Intending::new(kernel, self.ledger.as_mut(), &mut self.lstate);
        regions.offline(
            PhysRange::new(base, size).ok_or(TdxHostError::BadArgument)?,
            &mut k,
        )
    }

    /// The kernel reported that task `current.index()` restarted as `current`: every TD its
    /// older incarnations held is torn down first ([`Server::reap_dead_tds`]), then everything
    /// they held goes to quarantine. If a TD could not be torn down, nothing of theirs is
    /// reclaimed (a frame the module still holds never reaches quarantine): a later
    /// notification tries again. Returns what was torn down and the bytes reclaimed.
    pub fn client_restarted<S: Seam>(&mut self, seam: &mut S, current: Owner) -> Reclaimed {
        let tds = self.reap_dead_tds(seam, current);
        let stale_td = self
            .lstate
            .tds
            .stale_slots(current.index(), Some(current))
            .next()
            .is_some();
        let bytes = match self.regions.as_mut() {
            Some(r) if !stale_td => r.frames.reclaim_stale(current),
            _ => 0,
        };
        Reclaimed { tds, bytes }
    }

    /// Bytes waiting in quarantine (freed or reclaimed, not yet scrubbed and checked).
    #[must_use]
    pub fn quarantined_bytes(&self) -> u64 {
        self.regions
            .as_ref()
            .map_or(0, |r| r.frames.quarantined_bytes())
    }

    /// One bounded step of quarantine hygiene: takes at most `max_bytes` (rounded down to
    /// 4 KiB, at least 4 KiB, never more than [`SCRUB_STEP_BYTES`]) from the start of the first
    /// quarantined run, has the kernel scrub it, checks every TDX page with
    /// TDH.PHYMEM.PAGE.RDMD (PT_NDA expected, §9.1), and frees the piece, or retires it if the
    /// kernel refused the scrub or a page was not PT_NDA (§9.2: leak rather than reuse). Does
    /// nothing when the quarantine is empty; the caller repeats while
    /// [`Self::quarantined_bytes`] is not zero.
    pub fn scrub_step<S: Seam, K: Scrubber>(
        &mut self,
        seam: &mut S,
        scrubber: &mut K,
        max_bytes: u64,
    ) -> ScrubReport {
        let mut report = ScrubReport::default();
        let Some(regions) = self.regions.as_mut() else {
            return report;
        };
        let mut first = [PhysRange::default(); 1];
        if regions.frames.quarantined(&mut first) == 0 {
            return report;
        }
        let budget = (max_bytes.min(SCRUB_STEP_BYTES) & !(PAGE_4K - 1)).max(PAGE_4K);
        let piece = PhysRange::saturating(first[0].base().0, first[0].size().0.min(budget));
        let mut clean = scrubber.scrub(piece).is_ok();
        if clean && regions.is_tdx_usable(piece) {
            let mut pa = piece.base().0;
            while pa < piece.base().0 + piece.size().0 {
                report.rdmd_calls += 1;
                let args = SeamcallArgs::leaf(Leaf::PhymemPageRdmd).rcx(pa);
                match seam.seamcall(None, args) {
                    Ok(r) if r.status().is_success() && r.rcx == PageType::Nda as u64 => {}
                    _ => {
                        clean = false;
                        break;
                    }
                }
                pa += PAGE_4K;
            }
        }
        let done = if clean {
            regions.frames.release_scrubbed(piece)
        } else {
            regions.frames.retire(piece)
        };
        if done.is_ok() {
            if clean {
                report.released = piece.size().0;
            } else {
                report.retired = piece.size().0;
            }
        }
        report
    }
}

/// The log line of an `online_region` request: what it asked and what came of it.
#[derive(Clone, Copy, Debug)]
pub struct OnlineLine<'r> {
    /// The range asked for.
    pub range: PhysRange,
    /// The node asked for.
    pub node: u16,
    /// The answer.
    pub result: &'r Result<OnlineReply, TdxHostError>,
}

impl fmt::Display for OnlineLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, size, node) = (self.range.base().0, self.range.size().0, self.node);
        match self.result {
            Ok(o) => {
                let class = if o.class == MemClass::Tdx as u8 {
                    "TDX"
                } else {
                    "non-TDX"
                };
                let capable = o.node_tdx_capable != 0;
                let mib = size >> 20;
                write!(f, "online [{base:#x}, +{mib} MiB) node {node}: {class} (node TDX-capable: {capable})")
            }
            Err(e) => write!(
                f,
                "online [{base:#x}, +{size:#x}) node {node} refused: {e:?}"
            ),
        }
    }
}

fn zerocopy_bytes(r: &RegionRecord) -> &[u8] {
    tdx_host_api::record_bytes(r)
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod early_tests;
#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod single_tests;
#[cfg(test)]
mod td_tests;
#[cfg(test)]
mod tests;

/// Whether an allocation of `count` frames is a batch the IDL allows (1..=512) whose addresses
/// fit `room` bytes of the caller's lease.
fn batch_fits(count: u32, room: usize) -> bool {
    let n = count as usize;
    (1..=MAX_FRAMES_PER_CALL).contains(&n) && room >= n * ADDR_BYTES
}
