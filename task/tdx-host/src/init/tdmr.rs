//! TDH.SYS.TDMR.INIT on several CPUs at once (§3.2, §7.5).
//!
//! Pattern: the schedule ([`super::schedule`]) decides which TDMR each CPU works on; the calls
//! fly through [`super::flights`]; every answer is booked here as before: the initialized end
//! (1 GiB granular), a bounded number of calls per TDMR (`size / 4 MiB + 1`), the record after
//! every chunk, and a progress report to the observer.
//!
//! Invariants: a TDMR is on at most one CPU at a time (the module answers TDX_OPERAND_BUSY to
//! two LPs on one TDMR); the record is updated only after the module's answer, so it may be
//! behind the module, never ahead; on any failure every call still in flight is waited for
//! before bring-up stops.

use heapless::Vec;
use tdx_abi::{Leaf, OperandId, SeamcallArgs, TdxStatus};
use tdx_host_api::InitStep;
use tdx_planner::addr::PhysAddr;
use tdx_planner::types::{Plan, MAX_TDMRS};

use super::flights::Flights;
use super::record::{Record, RecordError};
use super::schedule::{self, TdmrSchedule};
use super::{fail, Bringup, Observer, Progress, Stop};
use crate::host_code;
use crate::seam::{CpuIndex, PlatformView, Seam};

impl Bringup {
    /// TDH.SYS.TDMR.INIT for different TDMRs concurrently on different CPUs (§3.2, §7.5): one
    /// TDMR per CPU at a time, a CPU keeps its TDMR chunk after chunk until the module reports
    /// it initialized, then takes the next TDMR nobody holds ([`schedule`]). The record is
    /// updated after every chunk, so a restart resumes from the last recorded chunk (the
    /// module's own progress may be further, §3.4).
    pub(super) fn tdmr_init<S: Seam>(
        &mut self,
        seam: &mut S,
        p: &PlatformView<'_>,
        plan: &Plan,
        rec: &mut Record<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        let cpus = workers(p);
        // Per TDMR: initialized end (1 GiB granular as the module reports it) and calls left.
        let mut t = TdmrProgress {
            done_to: [0; MAX_TDMRS],
            budget: [0; MAX_TDMRS],
        };
        let mut unfinished = [false; MAX_TDMRS];
        for (i, tdmr) in plan.tdmrs.iter().enumerate() {
            // Resume where the record says; the module's own progress may be further (§3.4).
            let end = tdmr.base.0 + tdmr.size.0;
            t.done_to[i] = rec.marks().tdmr_end[i].clamp(tdmr.base.0, end);
            self.tdmr_bytes_done += t.done_to[i] - tdmr.base.0;
            t.budget[i] = tdmr.size.0.div_ceil(tdx_abi::consts::TDMR_INIT_CHUNK) + 1;
            unfinished[i] = t.done_to[i] < end;
        }
        self.reattach.tdmr_bytes_recorded = self.tdmr_bytes_done;
        let mut sched = TdmrSchedule::new(&unfinished[..plan.tdmrs.len()], cpus.len());
        let mut flights = Flights::default();
        let r = self.tdmr_rounds(
            seam,
            (plan, &cpus),
            rec,
            observer,
            (&mut sched, &mut flights),
            &mut t,
        );
        if r.is_err() {
            self.drain(seam, &mut flights);
        }
        self.tdmr_calls = flights.per_cpu.clone();
        self.tdmr_peak_in_flight = flights.peak;
        r?;
        rec.update(|m| m.set_done(step));
        Ok(())
    }

    /// Starts the next chunk of TDMR `i` on worker `w`.
    fn start_chunk<S: Seam>(
        &mut self,
        seam: &mut S,
        flights: &mut Flights,
        (cpu, w): (CpuIndex, usize),
        (i, base): (usize, PhysAddr),
        t: &mut TdmrProgress,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        if t.budget[i] == 0 {
            return Err(fail(step, host_code::NO_PROGRESS));
        }
        t.budget[i] -= 1;
        let args = SeamcallArgs::leaf(Leaf::SysTdmrInit).rcx(base.0);
        self.launch(seam, flights, step, (cpu, w), args)
    }

    /// The rounds of [`Bringup::tdmr_init`]: every worker starts on a TDMR, then each answer
    /// is booked and its worker given its next chunk, until no call is in flight.
    fn tdmr_rounds<S: Seam>(
        &mut self,
        seam: &mut S,
        (plan, cpus): (&Plan, &[CpuIndex]),
        rec: &mut Record<'_>,
        observer: &mut dyn Observer,
        (sched, flights): (&mut TdmrSchedule, &mut Flights),
        t: &mut TdmrProgress,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        for (w, &cpu) in cpus.iter().enumerate().take(sched.workers()) {
            if let Some(i) = sched.take(w) {
                self.start_chunk(seam, flights, (cpu, w), (i, plan.tdmrs[i].base), t)?;
            }
        }
        while let Some((w, cpu, r)) = self.land(seam, flights, step)? {
            let i = sched.held(w).ok_or(fail(step, host_code::KERNEL_REFUSED))?;
            let tdmr = &plan.tdmrs[i];
            let end = tdmr.base.0 + tdmr.size.0;
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
            if next < t.done_to[i] || next > end || next < tdmr.base.0 {
                return Err(fail(step, host_code::NO_PROGRESS));
            }
            if next > t.done_to[i] {
                self.tdmr_bytes_done += next - t.done_to[i];
                t.done_to[i] = next;
                rec.update(|m| m.tdmr_end[i] = next);
                observer.tdmr_progress(&Progress {
                    tdmr: i,
                    tdmr_base: tdmr.base,
                    initialized_end: PhysAddr(next),
                    bytes_done: self.tdmr_bytes_done,
                    bytes_total: self.tdmr_bytes_total,
                });
            }
            if next >= end {
                sched.release(w);
            }
            if let Some(j) = sched.take(w) {
                self.start_chunk(seam, flights, (cpu, w), (j, plan.tdmrs[j].base), t)?;
            }
        }
        Ok(())
    }
}

/// Per TDMR: where its initialized part ends, and how many more calls it may take.
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
