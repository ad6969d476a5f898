//! Scrub pacing: how many quarantined bytes the server scrubs per timer tick.
//!
//! Scheduling rule (bounded work per request, enforced by the binary): handlers never scrub.
//! While anything waits in quarantine the server keeps its timer armed for the next tick and,
//! on the timer notification, does one [`super::Server::scrub_step`] of
//! [`ScrubPacer::step_bytes`], then re-arms. So it does at most one step per tick and sleeps in
//! between: a lower-priority task waits for at most one step, and so does a request (the kernel
//! delivers a pending notification before a waiting message).
//!
//! Step size (adaptive): at most [`SCRUB_STEP_BYTES`] (one kernel scrub and 512 RDMD checks),
//! and less where a step is slow (under TCG the kernel's 2 MiB scrub alone takes about three
//! 1 ms ticks): a step that saw the tick change halves the next one, down to
//! [`MIN_STEP_BYTES`]; [`QUIET_STEPS_TO_GROW`] in a row that did not double it again, up to
//! [`SCRUB_STEP_BYTES`]. A step then stays under a tick whatever the machine, and
//! lower-priority tasks get the rest of each tick.
//!
//! Invariant: `MIN_STEP_BYTES <= step_bytes() <= SCRUB_STEP_BYTES` at all times.

use tdx_host_api::{ServerStats, SCRUB_STEP_BYTES};
use tdx_planner::addr::PhysRange;

use super::{ScrubReport, Scrubber, Server};
use crate::seam::{KernelError, Seam};

/// The task's timer, in ticks; its notification is the pacing's clock.
pub trait Timer {
    /// The current tick.
    fn now(&self) -> u64;
    /// Asks for the timer notification at `tick`.
    fn arm(&mut self, tick: u64);
    /// Asks for the timer notification `ticks` from now (saturating). The task's timer
    /// overrides this with the kernel's relative SET_TIMER, one syscall where reading the
    /// clock and arming take two; a fake keeps this `now() + ticks`.
    fn arm_after(&mut self, ticks: u64) {
        let at = self.now().saturating_add(ticks);
        self.arm(at);
    }
}

/// A scrubber whose calls are timed with `clock` (the drain report's "scrub" share).
struct Timed<'k, K, C> {
    inner: &'k mut K,
    clock: &'k mut C,
    ticks: u64,
}

impl<K: Scrubber, C: FnMut() -> u64> Scrubber for Timed<'_, K, C> {
    fn scrub(&mut self, range: PhysRange) -> Result<(), KernelError> {
        let t0 = (self.clock)();
        let r = self.inner.scrub(range);
        self.ticks += (self.clock)().saturating_sub(t0);
        r
    }
}

/// The smallest step the pacing shrinks to.
pub const MIN_STEP_BYTES: u64 = 64 * 1024;
/// Steps in a row within one tick before the step size doubles.
pub const QUIET_STEPS_TO_GROW: u32 = 4;

/// Cost of the scrub steps since the quarantine was last empty (reported when it drains).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainCost {
    /// Steps taken.
    pub steps: u64,
    /// Bytes released or retired.
    pub bytes: u64,
    /// Clock ticks of the whole steps.
    pub step_ticks: u64,
    /// Of those, ticks in the kernel's scrub.
    pub scrub_ticks: u64,
    /// The slowest step.
    pub worst_step_ticks: u64,
}

impl DrainCost {
    /// Average ticks per step: (whole step, kernel scrub, the rest = RDMD checks).
    #[must_use]
    pub fn per_step(&self) -> (u64, u64, u64) {
        let n = self.steps.max(1);
        let rest = self.step_ticks.saturating_sub(self.scrub_ticks);
        (self.step_ticks / n, self.scrub_ticks / n, rest / n)
    }
}

/// The adaptive step size and the cost of the current drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrubPacer {
    step_bytes: u64,
    quiet_steps: u32,
    drain: DrainCost,
    /// The timer is armed for a step.
    armed: bool,
}

impl Default for ScrubPacer {
    fn default() -> Self {
        Self::new()
    }
}

impl ScrubPacer {
    /// Full-size steps to start with.
    #[must_use]
    pub const fn new() -> Self {
        ScrubPacer {
            step_bytes: SCRUB_STEP_BYTES,
            quiet_steps: 0,
            drain: DrainCost {
                steps: 0,
                bytes: 0,
                step_ticks: 0,
                scrub_ticks: 0,
                worst_step_ticks: 0,
            },
            armed: false,
        }
    }

    /// After anything that may have quarantined memory: arms `timer` for a step at the next
    /// tick if anything waits (once; the step re-arms), and updates the quarantine counter.
    pub fn schedule<T: Timer>(
        &mut self,
        server: &Server<'_>,
        timer: &mut T,
        stats: &mut ServerStats,
    ) {
        stats.quarantined_bytes = server.quarantined_bytes();
        if stats.quarantined_bytes > 0 && !self.armed {
            self.armed = true;
            timer.arm_after(1);
        }
    }

    /// The timer fired: one scrub step of at most [`Self::step_bytes`], timed with `clock`
    /// (whole step and the scrubber's share) and against `timer`'s tick, then the next one is
    /// scheduled. Returns the drain's cost when the quarantine is now empty.
    pub fn tick<S: Seam, K: Scrubber, T: Timer, C: FnMut() -> u64>(
        &mut self,
        server: &mut Server<'_>,
        (seam, scrubber): (&mut S, &mut K),
        timer: &mut T,
        mut clock: C,
        stats: &mut ServerStats,
    ) -> Option<DrainCost> {
        self.armed = false;
        if server.quarantined_bytes() == 0 {
            return None;
        }
        let (tick0, t0) = (timer.now(), clock());
        let mut timed = Timed {
            inner: scrubber,
            clock: &mut clock,
            ticks: 0,
        };
        let r = server.scrub_step(seam, &mut timed, self.step_bytes);
        let scrub_ticks = timed.ticks;
        let cost = (clock().saturating_sub(t0), scrub_ticks);
        let left = server.quarantined_bytes();
        let drained = self.step_done(&r, cost, timer.now() != tick0, left, stats);
        self.schedule(server, timer, stats);
        drained
    }

    /// Bytes the next step may take.
    #[must_use]
    pub fn step_bytes(&self) -> u64 {
        self.step_bytes
    }

    /// One step is done: it did `report` in `step_ticks` (`scrub_ticks` of them in the kernel's
    /// scrub), the timer tick changed during it when `tick_changed`, and `left` bytes are still
    /// quarantined. Adapts the step size, counts the step into `stats`, and returns the drain's
    /// cost when the quarantine is now empty.
    pub fn step_done(
        &mut self,
        report: &ScrubReport,
        (step_ticks, scrub_ticks): (u64, u64),
        tick_changed: bool,
        left: u64,
        stats: &mut ServerStats,
    ) -> Option<DrainCost> {
        if tick_changed {
            self.step_bytes = (self.step_bytes / 2).max(MIN_STEP_BYTES);
            self.quiet_steps = 0;
        } else {
            self.quiet_steps += 1;
            if self.quiet_steps >= QUIET_STEPS_TO_GROW {
                self.step_bytes = (self.step_bytes * 2).min(SCRUB_STEP_BYTES);
                self.quiet_steps = 0;
            }
        }
        let done = report.released + report.retired;
        let d = &mut self.drain;
        d.steps += 1;
        d.bytes += done;
        d.step_ticks += step_ticks;
        d.scrub_ticks += scrub_ticks;
        d.worst_step_ticks = d.worst_step_ticks.max(step_ticks);
        stats.scrubbed_bytes += report.released;
        stats.retired_bytes += report.retired;
        stats.rdmd_calls += report.rdmd_calls;
        if done > 0 {
            stats.scrub_runs += 1;
            stats.scrub_step_tsc += step_ticks;
        }
        stats.quarantined_bytes = left;
        (left == 0).then(|| core::mem::take(&mut self.drain))
    }
}

#[cfg(test)]
mod tests {
    use tdx_host_api::{ServerStats, SCRUB_STEP_BYTES};

    use super::{DrainCost, ScrubPacer, MIN_STEP_BYTES, QUIET_STEPS_TO_GROW};
    use crate::server::ScrubReport;

    const STEP: ScrubReport = ScrubReport {
        released: 64 * 1024,
        retired: 0,
        rdmd_calls: 16,
    };

    /// A slow step halves the next, down to the floor; enough quiet steps in a row double it
    /// back, never past the ceiling, and a slow step in between restarts the count.
    #[test]
    fn slow_steps_shrink_and_quiet_runs_grow_within_bounds() {
        let mut p = ScrubPacer::new();
        let mut s = ServerStats::default();
        assert_eq!(p.step_bytes(), SCRUB_STEP_BYTES);
        for _ in 0..10 {
            p.step_done(&STEP, (10, 5), true, 1, &mut s);
        }
        assert_eq!(p.step_bytes(), MIN_STEP_BYTES);
        for _ in 0..QUIET_STEPS_TO_GROW - 1 {
            p.step_done(&STEP, (10, 5), false, 1, &mut s);
        }
        p.step_done(&STEP, (10, 5), true, 1, &mut s);
        assert_eq!(
            p.step_bytes(),
            MIN_STEP_BYTES,
            "a slow step restarts the quiet run"
        );
        for _ in 0..QUIET_STEPS_TO_GROW {
            p.step_done(&STEP, (10, 5), false, 1, &mut s);
        }
        assert_eq!(p.step_bytes(), 2 * MIN_STEP_BYTES);
        for _ in 0..20 * QUIET_STEPS_TO_GROW {
            p.step_done(&STEP, (10, 5), false, 1, &mut s);
        }
        assert_eq!(p.step_bytes(), SCRUB_STEP_BYTES);
    }

    /// The counters take every step; the drain cost is returned once, when nothing is left,
    /// and starts over afterwards.
    #[test]
    fn drain_cost_is_reported_when_the_quarantine_empties() {
        let mut p = ScrubPacer::new();
        let mut s = ServerStats::default();
        let retired = ScrubReport {
            released: 0,
            retired: 4096,
            rdmd_calls: 1,
        };
        assert_eq!(p.step_done(&STEP, (30, 10), false, 4096, &mut s), None);
        let d = p.step_done(&retired, (10, 4), false, 0, &mut s);
        let want = DrainCost {
            steps: 2,
            bytes: 64 * 1024 + 4096,
            step_ticks: 40,
            scrub_ticks: 14,
            worst_step_ticks: 30,
        };
        assert_eq!(d, Some(want));
        assert_eq!(want.per_step(), (20, 7, 13));
        assert_eq!(
            (
                s.scrubbed_bytes,
                s.retired_bytes,
                s.rdmd_calls,
                s.scrub_runs
            ),
            (64 * 1024, 4096, 17, 2)
        );
        let empty = ScrubReport::default();
        let d = p.step_done(&empty, (5, 0), false, 0, &mut s);
        assert_eq!(d.map(|d| (d.steps, d.bytes)), Some((1, 0)));
        assert_eq!(s.scrub_runs, 2, "a step that did nothing is no run");
    }
}
