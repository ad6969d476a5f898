//! Kernel time and task timers.
//!
//! Time is a count of ticks of the LAPIC timer (one tick = the manifest's
//! `tick-us`, 1 ms by default). Each task has one timer: a deadline and the
//! notification bits to post when it passes. A task names the deadline as
//! a tick or as a count of ticks from now, which SET_TIMER turns into a
//! tick against this clock (saturating: a count past the end of time never
//! wraps into the past). Timers are checked on every tick and whenever a
//! task arms one (a past deadline, or a count of 0, fires at once).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::syscall::{Response, SetTimerArgs, TimerState};

use crate::outcome::{Next, UserError};
use crate::task::{self, Task, Timer};

static TICKS: AtomicU64 = AtomicU64::new(0);

#[must_use]
pub fn now() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Advances time by one tick and fires due timers. Returns whether any
/// task woke.
pub fn tick(tasks: &mut [Task]) -> bool {
    TICKS.fetch_add(1, Ordering::Relaxed);
    fire_timers(tasks)
}

/// Posts the bits of every timer whose deadline has passed and disarms it.
pub fn fire_timers(tasks: &mut [Task]) -> bool {
    let now = now();
    let mut woke = false;
    for i in 0..tasks.len() {
        if let Some(bits) = tasks[i].take_expired_timer(now) {
            woke |= task::post(tasks, i, bits);
        }
    }
    woke
}

/// SET_TIMER (the generic handler, which the fast path also runs): a
/// relative deadline is taken from the clock here, saturating
/// ([`abi::syscall::Deadline::resolve`]); a deadline already past (or a
/// relative 0) fires at once.
#[inline]
pub fn set_timer(
    tasks: &mut [Task],
    caller: usize,
    args: &SetTimerArgs,
) -> Result<Next, UserError> {
    let now = now();
    let t = &mut tasks[caller];
    t.set_timer(args.deadline.map(|deadline| Timer {
        deadline: deadline.resolve(now),
        notifications: args.notifications,
    }));
    t.respond(Response::OK);
    Ok(if fire_timers(tasks) {
        Next::Reschedule
    } else {
        Next::Same
    })
}

/// GET_TIMER (the generic handler, which the fast path also runs).
#[inline]
pub fn get_timer(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let t = &mut tasks[caller];
    let timer = t.timer();
    let state = TimerState {
        now: now(),
        deadline: timer.map(|t| t.deadline),
        notifications: timer.map_or(0, |t| t.notifications),
    };
    t.set_syscall_results(state.to_regs());
    Ok(Next::Same)
}
