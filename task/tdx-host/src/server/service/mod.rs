//! The service between IPC and the handlers: counts refusals and keeps the server's counters,
//! schedules a scrub step after anything that quarantines memory, and moves lease bytes
//! through closures, so the binary only turns leases and reply codes into calls.
//!
//! Pattern: each operation takes the client's lease as a closure over a local buffer (at most
//! 4 KiB: 512 addresses or 128 region records) and answers [`Answer`]: the handler's refusal,
//! or the lease's own failure, which the binary turns into its IPC error.
//!
//! Rules: every refusal counts once in `ServerStats::refused`; frames handed out to a client
//! that then cannot take their addresses go straight back (into quarantine), so an allocation
//! either reaches the client or leaves nothing held.

use core::fmt;

use tdx_host_api::{
    FrameSize, MemClass, ModuleStatus, NodeInfo, OnlineReply, OwnedReply, RegionMapReply,
    RegionRecord, ServerStats, TdxHostError, ADDR_BYTES,
};
use tdx_planner::addr::PhysRange;

use super::pacing::{DrainCost, ScrubPacer, Timer};
use super::start::TdmrInitDone;
use crate::init::TdmrRun;

mod td;
use super::{counters_from, OnlineLine, Scrubber, Server, OWNED_RECORD_BYTES};
use crate::frames::Owner;
use crate::regions::MemoryAuthority;
use crate::seam::Seam;
pub use td::{TdStaging, SOURCE_BYTES, TD_PARAMS_BYTES};

/// Bytes of lease one request moves at most.
pub const LEASE_BYTES: usize = 4096;

/// Why a leased operation did not answer with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<E> {
    /// The handler refused (the reply code).
    Refused(TdxHostError),
    /// The client's lease could not be read or written.
    Lease(E),
}

impl<E> Answer<E> {
    /// `refused` of the refusal or `lease` of the lease's failure.
    pub fn either<R>(
        self,
        refused: impl FnOnce(TdxHostError) -> R,
        lease: impl FnOnce(E) -> R,
    ) -> R {
        match self {
            Answer::Refused(e) => refused(e),
            Answer::Lease(e) => lease(e),
        }
    }
}

/// A log sink: one line per call.
pub type Log = fn(fmt::Arguments<'_>);

/// The server with its counters, scrub pacing and log.
pub struct Service<'s, 'a> {
    server: &'s mut Server<'a>,
    stats: ServerStats,
    /// A counter the ledger keeps (`counters_from`) changed since the last commit: set
    /// wherever one changes, so a request that changes none does not offer them to the
    /// ledger (debug builds check after every commit that none was missed).
    counters_changed: bool,
    pacer: ScrubPacer,
    log: Log,
    /// Where TD_PARAMS and PAGE.ADD sources are copied for the module (see [`td`]).
    staging: Option<&'s mut TdStaging>,
    /// The lease bytes of the request being served (addresses or records), cleared once at
    /// start: each request moves only the bytes it names, never the whole buffer.
    lease: [u8; LEASE_BYTES],
    /// TDMR.INIT still running while serving (see [`Self::advance_init`]).
    tdmr_run: Option<TdmrRun>,
    /// Chunks were held back by the last dispatch: the next request goes first.
    fresh_hold: bool,
}

impl<'s, 'a> Service<'s, 'a> {
    /// Serves `server`, logging hotplug requests to `log`; the counters start with the
    /// bring-up's retries.
    pub fn new(server: &'s mut Server<'a>, log: Log) -> Self {
        let mut stats = server.initial_stats();
        server.restore_counters(&mut stats);
        Service {
            server,
            stats,
            counters_changed: false,
            pacer: ScrubPacer::new(),
            log,
            staging: None,
            lease: [0; LEASE_BYTES],
            tdmr_run: None,
            fresh_hold: false,
        }
    }

    /// Goes on with the TDMR.INIT that [`start`](super::start::start) left running.
    #[must_use]
    pub fn with_tdmr_run(mut self, run: Option<TdmrRun>) -> Self {
        self.tdmr_run = run;
        self
    }

    /// Copies TD_PARAMS and PAGE.ADD sources into `staging` (this task's memory, named to the
    /// module by its own address); without it `td_init` and `page_add` answer NotReady.
    #[must_use]
    pub fn with_td_staging(mut self, staging: &'s mut TdStaging) -> Self {
        self.staging = Some(staging);
        self
    }

    /// Logs this instance's recovery time: from its first instruction (`started`, as timer
    /// ticks and TSC) to `now`, when it is about to serve (bring-up or re-attach, the ledger's
    /// restore and the reclaim of clients that restarted meanwhile all done).
    pub fn log_serving(&self, started: (u64, u64), now: (u64, u64)) {
        let (ticks, tsc) = (
            now.0.saturating_sub(started.0),
            now.1.saturating_sub(started.1),
        );
        let r = self.server.bringup.reattach();
        if r.found {
            (self.log)(format_args!(
                "re-attach #{}: serving {ticks} ticks ({tsc} tsc) after this instance started",
                r.attaches
            ));
        } else {
            (self.log)(format_args!(
                "first start: serving {ticks} ticks ({tsc} tsc) after it started"
            ));
        }
    }

    /// Records how the kernel clears memory (`abi::kipc::ScrubMethod` code), for `stats`.
    pub fn set_scrub_method(&mut self, code: u8) {
        self.stats.scrub_method = code;
    }

    /// The pacing (its step size).
    #[must_use]
    pub fn pacer(&self) -> &ScrubPacer {
        &self.pacer
    }

    /// The server.
    #[must_use]
    pub fn server(&self) -> &Server<'a> {
        self.server
    }

    fn count<T>(&mut self, r: Result<T, TdxHostError>) -> Result<T, TdxHostError> {
        if r.is_err() {
            self.stats.refused = self.stats.refused.wrapping_add(1);
            self.counters_changed = true;
        }
        r
    }

    /// Commits the operation's changes and the counters (if they changed) to the ledger:
    /// before the answer. Out of line: every request handler ends with it.
    #[inline(never)]
    fn commit(&mut self) {
        let stats = self.counters_changed.then_some(&self.stats);
        self.server.commit(stats);
        self.counters_changed = false;
        debug_assert_eq!(
            self.server.committed_counters(),
            counters_from(&self.stats),
            "a counter changed without being marked"
        );
    }

    /// [`Self::count`] for an operation that changes nothing but the refusal counter.
    fn count_read<T>(&mut self, r: Result<T, TdxHostError>) -> Result<T, TdxHostError> {
        let r = self.count(r);
        if r.is_err() {
            self.commit();
        }
        r
    }

    fn schedule<T: Timer>(&mut self, timer: &mut T) {
        self.pacer.schedule(self.server, timer, &mut self.stats);
    }

    /// `status`.
    #[must_use]
    pub fn status(&self) -> ModuleStatus {
        self.server.status()
    }

    /// `stats` for the task with index `caller`.
    #[must_use]
    pub fn stats(&self, caller: u16) -> ServerStats {
        self.server.stats(caller, self.stats)
    }

    /// `node_info`.
    ///
    /// # Errors
    /// See [`Server::node_info`].
    pub fn node_info(&mut self, node: u16) -> Result<NodeInfo, TdxHostError> {
        let r = self.server.node_info(node);
        self.count_read(r)
    }

    /// `alloc_frames` into a lease of `room` bytes: `write` gets the addresses; if it fails,
    /// the frames go back at once.
    ///
    /// # Errors
    /// See [`Server::alloc_frames`]; the lease's failure.
    pub fn alloc_frames<E, T: Timer>(
        &mut self,
        timer: &mut T,
        (caller, node, size, class): (Owner, u16, FrameSize, MemClass),
        count: u32,
        room: usize,
        write: impl FnOnce(&[u8]) -> Result<(), E>,
    ) -> Result<u32, Answer<E>> {
        let len = room.min(LEASE_BYTES);
        let r = self
            .server
            .alloc_frames(caller, node, size, class, count, &mut self.lease[..len]);
        let n = self.count(r);
        self.delivered(timer, (caller, 0, size), n, write)
    }

    /// `alloc_frame`: [`Self::alloc_frames`] of one frame, whose address travels in the reply
    /// instead of a lease: no lease write can fail after the allocation, so the give-back of
    /// `delivered` has nothing to do here (a client that dies before the reply loses the
    /// frame to the reclaim of its restart, as after any reply).
    ///
    /// # Errors
    /// See [`Server::alloc_frames`].
    pub fn alloc_frame(
        &mut self,
        (caller, node, size, class): (Owner, u16, FrameSize, MemClass),
    ) -> Result<u64, TdxHostError> {
        let r = self.server.alloc_frame(caller, (node, size, class));
        let r = self.count(r);
        self.commit();
        r
    }

    /// `alloc_request` (an allocation with the caller's identity `request`) into a lease of
    /// `room` bytes: as [`Self::alloc_frames`]; a retried identity gets the committed frames.
    ///
    /// # Errors
    /// See [`Server::alloc_request`]; the lease's failure.
    pub fn alloc_request<E, T: Timer>(
        &mut self,
        timer: &mut T,
        (caller, request, node, size, class): (Owner, u32, u16, FrameSize, MemClass),
        count: u32,
        room: usize,
        write: impl FnOnce(&[u8]) -> Result<(), E>,
    ) -> Result<u32, Answer<E>> {
        let len = room.min(LEASE_BYTES);
        let what = (node, size, class);
        let r = self
            .server
            .alloc_request((caller, request), what, count, &mut self.lease[..len]);
        let n = self.count(r);
        self.delivered(timer, (caller, request, size), n, write)
    }

    /// Hands an allocation's addresses (at the start of the lease buffer) to the client; if
    /// its lease fails they go back (with the same identity as a free, so a retry allocates
    /// anew). Commits either way.
    fn delivered<E, T: Timer>(
        &mut self,
        timer: &mut T,
        (caller, request, size): (Owner, u32, FrameSize),
        r: Result<u32, TdxHostError>,
        write: impl FnOnce(&[u8]) -> Result<(), E>,
    ) -> Result<u32, Answer<E>> {
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                self.commit();
                return Err(Answer::Refused(e));
            }
        };
        let local = &self.lease[..n as usize * ADDR_BYTES];
        if let Err(e) = write(local) {
            let _ = if request == 0 {
                self.server.free_frames(caller, size, local)
            } else {
                self.server.free_request((caller, request), size, local)
            };
            self.commit();
            self.schedule(timer);
            return Err(Answer::Lease(e));
        }
        self.commit();
        Ok(n)
    }

    /// `free_frames` from a lease of `len` bytes that `read` copies in.
    ///
    /// # Errors
    /// The lease's failure; see [`Server::free_frames`].
    pub fn free_frames<E, T: Timer>(
        &mut self,
        timer: &mut T,
        (caller, size): (Owner, FrameSize),
        len: usize,
        read: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<u32, Answer<E>> {
        let local = &mut self.lease[..len.min(LEASE_BYTES)];
        read(local).map_err(Answer::Lease)?;
        let r = self.server.free_frames(caller, size, local);
        let n = self.count(r);
        self.commit();
        self.schedule(timer);
        n.map_err(Answer::Refused)
    }

    /// `free_frame`: [`Self::free_frames`] of the one address `addr`, from the message.
    ///
    /// # Errors
    /// See [`Server::free_frames`].
    pub fn free_frame<T: Timer>(
        &mut self,
        timer: &mut T,
        (caller, size): (Owner, FrameSize),
        addr: u64,
    ) -> Result<(), TdxHostError> {
        let r = self.server.free_frame(caller, size, addr);
        let r = self.count(r);
        self.commit();
        self.schedule(timer);
        r
    }

    /// `free_request` (a free with the caller's identity `request`) from a lease of `len`
    /// bytes: as [`Self::free_frames`]; a retried identity gets the committed count.
    ///
    /// # Errors
    /// The lease's failure; see [`Server::free_request`].
    pub fn free_request<E, T: Timer>(
        &mut self,
        timer: &mut T,
        (caller, request, size): (Owner, u32, FrameSize),
        len: usize,
        read: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<u32, Answer<E>> {
        let local = &mut self.lease[..len.min(LEASE_BYTES)];
        read(local).map_err(Answer::Lease)?;
        let r = self.server.free_request((caller, request), size, local);
        let n = self.count(r);
        self.commit();
        self.schedule(timer);
        n.map_err(Answer::Refused)
    }

    /// `owned`: the caller's runs from `first` into a lease of `room` bytes that `write` fills.
    ///
    /// # Errors
    /// See [`Server::owned`]; the lease's failure.
    pub fn owned<E>(
        &mut self,
        caller: Owner,
        first: u32,
        room: usize,
        write: impl FnOnce(&[u8]) -> Result<(), E>,
    ) -> Result<OwnedReply, Answer<E>> {
        let len = room.min(LEASE_BYTES);
        let r = self.server.owned(caller, first, &mut self.lease[..len]);
        let reply = self.count_read(r).map_err(Answer::Refused)?;
        let bytes = reply.written as usize * OWNED_RECORD_BYTES;
        write(&self.lease[..bytes]).map_err(Answer::Lease)?;
        Ok(reply)
    }

    /// `region_map` into a lease of `room` bytes that `write` fills.
    ///
    /// # Errors
    /// See [`Server::region_map`]; the lease's failure.
    pub fn region_map<E>(
        &mut self,
        first: u32,
        room: usize,
        write: impl FnOnce(&[u8]) -> Result<(), E>,
    ) -> Result<RegionMapReply, Answer<E>> {
        let len = room.min(LEASE_BYTES);
        let r = self.server.region_map(first, &mut self.lease[..len]);
        let reply = self.count_read(r).map_err(Answer::Refused)?;
        let bytes = reply.written as usize * core::mem::size_of::<RegionRecord>();
        write(&self.lease[..bytes]).map_err(Answer::Lease)?;
        Ok(reply)
    }

    /// `online_region` of `[base, base + size)` on `node`, logged with its outcome.
    ///
    /// # Errors
    /// See [`Server::online_region`].
    pub fn online_region<M: MemoryAuthority>(
        &mut self,
        caller: Owner,
        (base, size, node): (u64, u64, u16),
        kernel: &mut M,
    ) -> Result<OnlineReply, TdxHostError> {
        let result = self.server.online_region(caller, base, size, node, kernel);
        let range = PhysRange::saturating(base, size);
        let line = OnlineLine {
            range,
            node,
            result: &result,
        };
        (self.log)(format_args!("{line}"));
        let r = self.count(result);
        self.commit();
        r
    }

    /// `offline_region` of `[base, base + size)`; a RegionBusy refusal is logged with the
    /// frames still in use.
    ///
    /// # Errors
    /// See [`Server::offline_region`].
    pub fn offline_region<M: MemoryAuthority>(
        &mut self,
        caller: Owner,
        (base, size): (u64, u64),
        kernel: &mut M,
    ) -> Result<(), TdxHostError> {
        let r = self.server.offline_region(caller, base, size, kernel);
        if r == Err(TdxHostError::RegionBusy) {
            let busy = self.server.frames_in_use(PhysRange::saturating(base, size));
            let busy = busy.unwrap_or(0);
            (self.log)(format_args!(
                "offline [{base:#x}, +{size:#x}) refused: {busy} frames of 4 KiB in use"
            ));
        }
        let r = self.count(r);
        self.commit();
        r
    }

    /// A `seam-done` arrived: while TDMR.INIT runs, one bounded step of it
    /// ([`Server::advance_init`]), each 1 GiB block it finishes logged; its end is logged with
    /// [`TdmrInitDone`]. Nothing otherwise (a late `seam-done` of a dead incarnation's call).
    /// Chunks held back for requests are started after the next dispatch
    /// ([`Self::after_dispatch`]) or at the next tick of `timer`, whichever comes first.
    pub fn advance_init<S: Seam, T: Timer>(&mut self, seam: &mut S, timer: &mut T) {
        if !self.server.initializing() {
            return;
        }
        let log = self.log;
        self.server
            .advance_init(seam, &mut self.tdmr_run, &mut |p| {
                log(format_args!(
                    "TDMR.INIT: TDMR {} at {:#x} initialized to {:#x} ({} of {} MiB), serving it",
                    p.tdmr,
                    p.tdmr_base.0,
                    p.initialized_end.0,
                    p.bytes_done >> 20,
                    p.bytes_total >> 20
                ));
            });
        if self.tdmr_run.as_ref().is_some_and(TdmrRun::holds_back) {
            self.fresh_hold = true;
            timer.arm_after(1);
        }
        self.init_ended();
    }

    /// After every dispatch (a request or a notification): starts the TDMR.INIT chunks held
    /// back and begins a new turn, unless they were held back by this very dispatch (then a
    /// request waiting goes first; without one, the timer starts them).
    #[inline]
    pub fn after_dispatch<S: Seam>(&mut self, seam: &mut S) {
        if core::mem::take(&mut self.fresh_hold) {
            return;
        }
        self.release_init(seam);
    }

    /// The tick after a hold-back: starts the chunks held back, if still held.
    #[inline]
    pub fn release_init<S: Seam>(&mut self, seam: &mut S) {
        if self.tdmr_run.is_some() {
            self.server.release_init(seam, &mut self.tdmr_run);
            self.init_ended();
        }
    }

    /// Logs the end of TDMR.INIT (called only by steps that found it running).
    fn init_ended(&mut self) {
        if !self.server.initializing() {
            let log = self.log;
            TdmrInitDone(self.server).write(&mut |a| log(a));
        }
    }

    /// The timer fired: one paced scrub step (see [`ScrubPacer::tick`]); when it emptied
    /// the quarantine, the drain's cost is logged.
    pub fn timer_fired<S: Seam, K: Scrubber, T: Timer>(
        &mut self,
        kernel: (&mut S, &mut K),
        timer: &mut T,
        clock: impl FnMut() -> u64,
    ) -> Option<DrainCost> {
        let drained = self
            .pacer
            .tick(self.server, kernel, timer, clock, &mut self.stats);
        // A step counts its bytes, runs and RDMD calls.
        self.counters_changed = true;
        self.commit();
        // Off the callers' path: the one-frame operations since the last tick are settled.
        self.server.settle();
        let drained = drained?;
        let (d, now) = (drained, self.pacer.step_bytes() / 1024);
        let (each, scrub, rdmd) = d.per_step();
        (self.log)(format_args!(
            "quarantine drained: {} KiB in {} steps (now {now} KiB each); per step {each} tsc ({scrub} scrub, {rdmd} RDMD checks), worst {} tsc",
            d.bytes / 1024,
            d.steps,
            d.worst_step_ticks
        ));
        Some(d)
    }

    /// The kernel reported restarts: every task of `current` (as it runs now, with its name)
    /// loses what its older incarnations held: their TDs torn down at `seam` first, then
    /// their frames into quarantine, logged per task; then a scrub step is scheduled.
    pub fn clients_restarted<'n, S: Seam, T: Timer>(
        &mut self,
        (seam, timer): (&mut S, &mut T),
        current: impl IntoIterator<Item = (Owner, &'n str)>,
    ) {
        self.stats.restarts_seen = self.stats.restarts_seen.wrapping_add(1);
        self.counters_changed = true;
        let log = self.log;
        for (owner, name) in current {
            let got = self.server.client_restarted(seam, owner);
            let t = got.tds;
            if t.torn_down + t.failed > 0 {
                log(format_args!(
                    "{name} restarted: {} TDs torn down ({} KeyIDs retired), {} could not be (its frames stay held)",
                    t.torn_down, t.keyids_retired, t.failed
                ));
            }
            if got.bytes > 0 {
                let kib = got.bytes / 1024;
                log(format_args!(
                    "{name} restarted: reclaimed {kib} KiB into quarantine"
                ));
            }
            self.stats.reclaimed_bytes += got.bytes;
        }
        self.commit();
        self.schedule(timer);
    }
}

#[cfg(test)]
mod cost_tests;
