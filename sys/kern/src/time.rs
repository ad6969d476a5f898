//! Kernel time and task timers.
//!
//! Time is a count of ticks of the LAPIC timer (one tick = the manifest's
//! `tick-us`, 1 ms by default). Each task has one timer: a deadline and the
//! notification bits to post when it passes. Timers are checked on every
//! tick and whenever a task arms one (a past deadline fires at once).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::task::{self, Task};

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
