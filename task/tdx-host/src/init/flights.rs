//! SEAMCALLs in flight on several CPUs at once: TDMR.INIT of different TDMRs and LP.INIT of
//! different LPs (§3.2: the module allows both concurrently; KEY.CONFIG takes the module's
//! global lock exclusively and stays one package at a time).
//!
//! Pattern: [`Flights`] lists the calls started through [`Seam::start`] and not yet answered,
//! each with the job it belongs to (a worker or an LP) and how often it was tried.
//! [`Bringup::launch`] starts one; [`Bringup::land`] returns the next answer that is not
//! transient ([`Bringup::land_now`]: only if one is there, never waiting), restarting
//! transient ones on the same CPU under the same bounded-retry policy as a synchronous call
//! ([`InitConfig::max_tries`](super::InitConfig)); [`Bringup::drain`]
//! waits for everything still in flight after a failure, so bring-up never stops (or
//! flushes caches) while a CPU still works for it.
//!
//! Invariants: at most one call per CPU in the list (a CPU's next call starts only after its
//! answer landed); every call started is counted in [`StepCounts`](super::StepCounts) and,
//! per CPU, in [`Flights::per_cpu`].

use heapless::Vec;
use tdx_abi::{SeamcallArgs, SeamcallResult};
use tdx_host_api::InitStep;

use super::{fail, is_retryable, Bringup, Stop};
use crate::host_code;
use crate::seam::{CpuIndex, Finished, Seam, MAX_IN_FLIGHT};

/// One call in flight.
#[derive(Clone, Copy, Debug)]
struct Flight {
    cpu: CpuIndex,
    args: SeamcallArgs,
    /// Tries so far, this one included.
    tries: u32,
    /// What the caller started it for (a worker index, an LP index).
    job: usize,
}

/// The calls in flight, and how many each CPU was given.
#[derive(Clone, Debug, Default)]
pub struct Flights {
    list: Vec<Flight, MAX_IN_FLIGHT>,
    /// Calls started per CPU (retries included), in the order the CPUs were first used.
    pub per_cpu: Vec<(CpuIndex, u32), MAX_IN_FLIGHT>,
    /// The most calls that were in flight at once.
    pub peak: usize,
}

impl Flights {
    /// Calls in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    fn count(&mut self, cpu: CpuIndex) {
        match self.per_cpu.iter_mut().find(|(c, _)| *c == cpu) {
            Some((_, n)) => *n += 1,
            // Full: the count of a 65th CPU is not kept (bring-up uses at most 64 at a time).
            None => {
                let _ = self.per_cpu.push((cpu, 1));
            }
        }
    }
}

impl Bringup {
    /// Starts `args` on `cpu` for `job`.
    pub(super) fn launch<S: Seam>(
        &mut self,
        seam: &mut S,
        flights: &mut Flights,
        step: InitStep,
        (cpu, job): (CpuIndex, usize),
        args: SeamcallArgs,
    ) -> Result<(), Stop> {
        self.relaunch(
            seam,
            flights,
            step,
            Flight {
                cpu,
                args,
                tries: 1,
                job,
            },
        )
    }

    fn relaunch<S: Seam>(
        &mut self,
        seam: &mut S,
        flights: &mut Flights,
        step: InitStep,
        f: Flight,
    ) -> Result<(), Stop> {
        if flights.list.iter().any(|g| g.cpu == f.cpu) || flights.list.is_full() {
            return Err(fail(step, host_code::KERNEL_REFUSED));
        }
        self.counts.seamcalls[step as usize] += 1;
        if f.tries > 1 {
            self.counts.retries[step as usize] += 1;
        }
        flights.count(f.cpu);
        seam.start(f.cpu, f.args)
            .map_err(|e| fail(step, e.status()))?;
        // Not full: checked above.
        let _ = flights.list.push(f);
        flights.peak = flights.peak.max(flights.list.len());
        Ok(())
    }

    /// The next answer that is not transient, as (job, CPU, registers); `None` when nothing is
    /// in flight. A transient status starts the same call again on the same CPU, at most
    /// `max_tries` times in all.
    pub(super) fn land<S: Seam>(
        &mut self,
        seam: &mut S,
        flights: &mut Flights,
        step: InitStep,
    ) -> Result<Option<(usize, CpuIndex, SeamcallResult)>, Stop> {
        loop {
            if flights.list.is_empty() {
                return Ok(None);
            }
            let done = seam.finish_one().map_err(|e| fail(step, e.status()))?;
            if let Some(landed) = self.landed(seam, flights, step, done)? {
                return Ok(Some(landed));
            }
        }
    }

    /// [`Bringup::land`] without waiting: the next answer that is not transient among those
    /// that are there now; `None` when none is (or nothing is in flight).
    pub(super) fn land_now<S: Seam>(
        &mut self,
        seam: &mut S,
        flights: &mut Flights,
        step: InitStep,
    ) -> Result<Option<(usize, CpuIndex, SeamcallResult)>, Stop> {
        loop {
            let mut cpus: Vec<CpuIndex, MAX_IN_FLIGHT> = Vec::new();
            for f in &flights.list {
                // Capacity MAX_IN_FLIGHT, as the list's.
                let _ = cpus.push(f.cpu);
            }
            if cpus.is_empty() {
                return Ok(None);
            }
            let Some((cpu, r)) = seam.poll_one(&cpus).map_err(|e| fail(step, e.status()))? else {
                return Ok(None);
            };
            if let Some(landed) = self.landed(seam, flights, step, (cpu, r))? {
                return Ok(Some(landed));
            }
        }
    }

    /// Books one finished call: its answer when it is not transient, else the call started
    /// again (`None`).
    fn landed<S: Seam>(
        &mut self,
        seam: &mut S,
        flights: &mut Flights,
        step: InitStep,
        (cpu, r): Finished,
    ) -> Result<Option<(usize, CpuIndex, SeamcallResult)>, Stop> {
        let Some(pos) = flights.list.iter().position(|f| f.cpu == cpu) else {
            // An answer for a CPU this bring-up did not start: the kernel's bug.
            return Err(fail(step, host_code::KERNEL_REFUSED));
        };
        let f = flights.list.swap_remove(pos);
        let r = r.map_err(|e| fail(step, e.status()))?;
        if !is_retryable(r.status()) {
            return Ok(Some((f.job, cpu, r)));
        }
        if f.tries >= self.config.max_tries.max(1) {
            return Err(fail(step, r.status()));
        }
        let again = Flight {
            tries: f.tries + 1,
            ..f
        };
        self.relaunch(seam, flights, step, again)?;
        Ok(None)
    }

    /// Waits for every call still in flight and drops the answers (after a failure, or once
    /// the step's outcome is known): nothing of this bring-up runs on any CPU afterwards.
    pub(super) fn drain<S: Seam>(&mut self, seam: &mut S, flights: &mut Flights) {
        while !flights.list.is_empty() {
            match seam.finish_one() {
                Ok((cpu, _)) => flights.list.retain(|f| f.cpu != cpu),
                // The kernel keeps nothing for us: nothing left to wait for.
                Err(_) => flights.list.clear(),
            }
        }
    }
}
