//! TDH.SYS.TDMR.INIT on several CPUs at once (§3.2, §7.5), run to completion or a step at a
//! time while the server already serves.
//!
//! Pattern: the schedule ([`super::schedule`]) decides which TDMR each CPU works on; the calls
//! fly through [`super::flights`]; every answer is booked here: the initialized end (1 GiB
//! granular), a bounded number of calls per TDMR (`size / 4 MiB + 1`), the record after
//! every chunk, and a progress report to the observer. [`Bringup::tdmr_init_begin`] starts
//! the first chunks and keeps the run ([`TdmrRun`]) in the bring-up; each
//! [`Bringup::tdmr_advance`] books the answers there are (waiting for one only when asked to)
//! and starts the next chunks, so a caller that serves requests between two calls does
//! bounded work per call: at most one answer per call in flight when it began. Requests are
//! never starved: notifications are received before requests, and answers can come faster
//! than the caller books them (the boot CPU's even come before the kernel returns from the
//! start), so after [`TURN_CHUNKS`] chunks started since the caller last served a request,
//! the next ones are held back until it has served one or a tick passed
//! ([`Bringup::release_held`]).
//!
//! Invariants: a TDMR is on at most one CPU at a time (the module answers TDX_OPERAND_BUSY to
//! two LPs on one TDMR); the record is updated only after the module's answer, and the
//! observer hears of progress only after the record holds it, so a block the observer was told
//! is initialized is in the record too (a restarted instance never knows less than what was
//! served); on any failure every call still in flight is waited for before bring-up stops.

use heapless::Vec;
use tdx_abi::{Leaf, OperandId, SeamcallArgs, SeamcallResult, TdxStatus};
use tdx_host_api::InitStep;
use tdx_planner::addr::{PhysAddr, PhysRange};
use tdx_planner::types::{Plan, MAX_TDMRS};

use super::flights::Flights;
use super::record::{Marks, Record, RecordError};
use super::schedule::{self, TdmrSchedule};
use super::{fail, Bringup, Observer, Progress, Stop};
use crate::host_code;
use crate::seam::{CpuIndex, PlatformView, Seam};

/// A TDMR.INIT that has begun and not finished: everything [`Bringup::advance`] needs
/// between two calls (about 9 KiB, kept by the caller).
#[derive(Clone, Debug)]
pub struct TdmrRun {
    /// The plan's TDMRs (base and size), in plan order.
    tdmrs: Vec<PhysRange, MAX_TDMRS>,
    /// The CPUs the workers use.
    cpus: Vec<CpuIndex, { schedule::MAX_WORKERS }>,
    sched: TdmrSchedule,
    flights: Flights,
    t: TdmrProgress,
    /// The record's marks as last written (the record is re-opened over them per call).
    pub(super) marks: Marks,
    /// Chunks started since the caller last served a request (or a tick passed).
    burst: u32,
    /// (worker, TDMR) of chunks held back for the caller to start ([`Bringup::release_held`]).
    held: Vec<(usize, usize), { schedule::MAX_WORKERS }>,
}

/// Chunks started while serving before the next ones are held back for requests: a request
/// waits for at most this many answers to be booked (4 MiB of TDMR each), and an idle server
/// still starts this many per timer tick (256 MiB per tick).
pub const TURN_CHUNKS: u32 = 64;

impl TdmrRun {
    /// Chunks wait for [`Bringup::release_held`].
    #[must_use]
    pub fn holds_back(&self) -> bool {
        !self.held.is_empty()
    }

    /// `[base, initialized end)` of each TDMR in plan order, the end 1 GiB granular as the
    /// module reports it (§3.2), so every byte of it is usable.
    pub fn initialized(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.tdmrs
            .iter()
            .zip(self.t.done_to.iter())
            .map(|(r, &end)| PhysRange::saturating(r.base().0, end - r.base().0))
    }
}

impl Bringup {
    /// Begins TDH.SYS.TDMR.INIT for different TDMRs concurrently on different CPUs (§3.2,
    /// §7.5): one TDMR per CPU at a time, a CPU keeps its TDMR chunk after chunk until the
    /// module reports it initialized, then takes the next TDMR nobody holds ([`schedule`]).
    /// The record is updated after every chunk, so a restart resumes from the last recorded
    /// chunk (the module's own progress may be further, §3.4). Returns the run (none when
    /// every TDMR was recorded done).
    pub(super) fn tdmr_init_begin<S: Seam>(
        &mut self,
        seam: &mut S,
        p: &PlatformView<'_>,
        plan: &Plan,
        rec: &mut Record<'_>,
    ) -> Result<Option<TdmrRun>, Stop> {
        let cpus = workers(p);
        // Per TDMR: initialized end (1 GiB granular as the module reports it) and calls left.
        let mut t = TdmrProgress {
            done_to: [0; MAX_TDMRS],
            budget: [0; MAX_TDMRS],
        };
        let mut unfinished = [false; MAX_TDMRS];
        let mut tdmrs = Vec::new();
        for (i, tdmr) in plan.tdmrs.iter().enumerate() {
            // Resume where the record says; the module's own progress may be further (§3.4).
            let end = tdmr.base.0 + tdmr.size.0;
            t.done_to[i] = rec.marks().tdmr_end[i].clamp(tdmr.base.0, end);
            self.tdmr_bytes_done += t.done_to[i] - tdmr.base.0;
            t.budget[i] = tdmr.size.0.div_ceil(tdx_abi::consts::TDMR_INIT_CHUNK) + 1;
            unfinished[i] = t.done_to[i] < end;
            // Capacity MAX_TDMRS, and a plan has at most that many.
            let _ = tdmrs.push(tdmr.range());
        }
        self.reattach.tdmr_bytes_recorded = self.tdmr_bytes_done;
        let sched = TdmrSchedule::new(&unfinished[..plan.tdmrs.len()], cpus.len());
        let mut run = TdmrRun {
            tdmrs,
            cpus,
            sched,
            flights: Flights::default(),
            t,
            marks: rec.marks().clone(),
            burst: 0,
            held: Vec::new(),
        };
        let mut r = Ok(());
        for w in 0..run.sched.workers() {
            if let Some(i) = run.sched.take(w) {
                r = self.start_chunk(seam, &mut run, w, i);
                if r.is_err() {
                    break;
                }
            }
        }
        self.note_flights(&run.flights);
        if let Err(stop) = r {
            self.drain(seam, &mut run.flights);
            return Err(stop);
        }
        if run.flights.len() > 0 {
            return Ok(Some(run));
        }
        rec.update(|m| m.set_done(InitStep::TdmrInit));
        Ok(None)
    }

    /// Books the answers of the run's calls that are there (with `wait`, at least one: blocks
    /// until it lands) and starts each answering CPU's next chunk. Returns true when every
    /// TDMR is initialized (the record then says so and the run is gone). On a failure every
    /// call still in flight is waited for and the run is gone.
    pub(super) fn tdmr_advance<S: Seam>(
        &mut self,
        seam: &mut S,
        slot: &mut Option<TdmrRun>,
        rec: &mut Record<'_>,
        observer: &mut dyn Observer,
        wait: bool,
    ) -> Result<bool, Stop> {
        let Some(mut run) = slot.take() else {
            return Ok(true);
        };
        // Waiting for answers: nobody else would start the held-back chunks.
        let r = if wait {
            self.start_held(seam, &mut run)
        } else {
            Ok(())
        };
        let r = r.and_then(|()| self.advance_run(seam, &mut run, rec, observer, wait));
        self.note_flights(&run.flights);
        run.marks = rec.marks().clone();
        if r.is_err() {
            self.drain(seam, &mut run.flights);
        }
        r?;
        if run.flights.len() == 0 && run.held.is_empty() {
            rec.update(|m| m.set_done(InitStep::TdmrInit));
            return Ok(true);
        }
        *slot = Some(run);
        Ok(false)
    }

    /// A new turn (the caller served a request, or a tick passed): starts the chunks held
    /// back, if any. On a failure every call still in flight is waited for and the run is
    /// gone.
    pub(super) fn tdmr_release<S: Seam>(
        &mut self,
        seam: &mut S,
        slot: &mut Option<TdmrRun>,
    ) -> Result<(), Stop> {
        let Some(run) = slot.as_mut() else {
            return Ok(());
        };
        run.burst = 0;
        let r = self.start_held(seam, run);
        self.note_flights(&run.flights);
        if r.is_err() {
            self.drain(seam, &mut run.flights);
            *slot = None;
        }
        r
    }

    fn start_held<S: Seam>(&mut self, seam: &mut S, run: &mut TdmrRun) -> Result<(), Stop> {
        while let Some((w, i)) = run.held.pop() {
            self.start_chunk(seam, run, w, i)?;
        }
        Ok(())
    }

    fn note_flights(&mut self, flights: &Flights) {
        self.tdmr_calls = flights.per_cpu.clone();
        self.tdmr_peak_in_flight = flights.peak;
    }

    /// Starts the next chunk of TDMR `i` on worker `w`.
    fn start_chunk<S: Seam>(
        &mut self,
        seam: &mut S,
        run: &mut TdmrRun,
        w: usize,
        i: usize,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        if run.t.budget[i] == 0 {
            return Err(fail(step, host_code::NO_PROGRESS));
        }
        run.t.budget[i] -= 1;
        let args = SeamcallArgs::leaf(Leaf::SysTdmrInit).rcx(run.tdmrs[i].base().0);
        let cpu = run.cpus[w];
        self.launch(seam, &mut run.flights, step, (cpu, w), args)
    }

    /// The answers there are (with `wait`, at least one), at most one per call in flight at
    /// the start, each booked and its worker given its next chunk.
    fn advance_run<S: Seam>(
        &mut self,
        seam: &mut S,
        run: &mut TdmrRun,
        rec: &mut Record<'_>,
        observer: &mut dyn Observer,
        wait: bool,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        let mut first = wait;
        // At most one answer per call in flight now: a CPU whose next chunk finishes at once
        // (the boot CPU runs it before the kernel returns) waits for the next call.
        for _ in 0..run.flights.len() {
            let landed = if first {
                self.land(seam, &mut run.flights, step)?
            } else {
                self.land_now(seam, &mut run.flights, step)?
            };
            first = false;
            let Some((w, _cpu, r)) = landed else {
                return Ok(());
            };
            self.book(run, w, r, rec, observer)?;
            if let Some(j) = run.sched.take(w) {
                if !wait {
                    // A worker holds one TDMR: at most one entry per worker, so it fits.
                    if run.burst >= TURN_CHUNKS && run.held.push((w, j)).is_ok() {
                        continue;
                    }
                    run.burst += 1;
                }
                self.start_chunk(seam, run, w, j)?;
            }
        }
        Ok(())
    }

    /// One answer of worker `w`: the TDMR's new initialized end, recorded, then reported.
    fn book(
        &mut self,
        run: &mut TdmrRun,
        w: usize,
        r: SeamcallResult,
        rec: &mut Record<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        let i = run
            .sched
            .held(w)
            .ok_or(fail(step, host_code::KERNEL_REFUSED))?;
        let tdmr = run.tdmrs[i];
        let (base, end) = (tdmr.base().0, tdmr.base().0 + tdmr.size().0);
        let s = r.status();
        let next = if s.is(TdxStatus::TDMR_ALREADY_INITIALIZED) {
            end
        } else if s.is_success() {
            r.rdx
        } else if self.reattach.plan_from_record
            && s.is(TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX))
        {
            return Err(self.record_fail(step, RecordError::PlanNotModules));
        } else {
            return Err(fail(step, s));
        };
        let t = &mut run.t;
        if next < t.done_to[i] || next > end || next < base {
            return Err(fail(step, host_code::NO_PROGRESS));
        }
        if next > t.done_to[i] {
            self.tdmr_bytes_done += next - t.done_to[i];
            t.done_to[i] = next;
            rec.update(|m| m.tdmr_end[i] = next);
            observer.tdmr_progress(&Progress {
                tdmr: i,
                tdmr_base: PhysAddr(base),
                initialized_end: PhysAddr(next),
                bytes_done: self.tdmr_bytes_done,
                bytes_total: self.tdmr_bytes_total,
            });
        }
        if next >= end {
            run.sched.release(w);
        }
        Ok(())
    }
}

/// Per TDMR: where its initialized part ends, and how many more calls it may take.
#[derive(Clone, Debug)]
struct TdmrProgress {
    done_to: [u64; MAX_TDMRS],
    budget: [u64; MAX_TDMRS],
}

/// The CPUs TDMR.INIT runs on, in the order workers take them: every enabled CPU, the first
/// (the kernel's boot CPU, where the kernel runs a call before it returns to this task) last,
/// so with fewer TDMRs than CPUs the work goes to CPUs that run it in the background.
fn workers(p: &PlatformView<'_>) -> Vec<CpuIndex, { schedule::MAX_WORKERS }> {
    let mut cpus: Vec<CpuIndex, { schedule::MAX_WORKERS }> = Vec::new();
    let enabled = || {
        p.cpus
            .iter()
            .enumerate()
            .filter(|(_, c)| c.enabled)
            .map(|(i, _)| CpuIndex(i as u32))
    };
    for c in enabled().skip(1).chain(enabled().take(1)) {
        if cpus.push(c).is_err() {
            break;
        }
    }
    cpus
}
