//! idle-killer: holds `restart` and `fault` rights over idle and uses them
//! to leave no runnable task (issue 11, item 6). It is the least important
//! task but idle, so it runs only when every other task is blocked; when it
//! then stops or faults idle and sleeps, nothing at all is runnable. The
//! kernel must halt in its own loop until the timer wakes this task, never
//! panic:
//! - `restart_idle_no_panic`: idle restarted and left stopped;
//! - `fault_idle_no_panic`: idle faulted (the referee records it and leaves
//!   it faulted, `hold-faulted`).
//!
//! Each case checks that nothing else was runnable when it slept, that it
//! woke on time, and restarts idle afterwards.

#![no_std]
#![no_main]

use abi::kipc::{KillPoint, KipcError};
use abi::{FaultInfo, TaskState};
use test_api::check;
use test_api::score::Score;
use userlib::hl::{self, KipcFailure};
use userlib::{sys_get_timer, sys_refresh_task_id, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::slots::REFEREE;
use task_gen::tasks::IDLE;

const SLEEP_MS: u64 = 20;
const SLEEP_BIT: u64 = 1 << 60;

/// Tasks other than us that are runnable right now.
fn others_runnable() -> u64 {
    let me = usize::from(task_gen::TASK_INDEX);
    let mut mask = 0;
    for i in 0..task_gen::TASK_NAMES.len() {
        if i != me
            && matches!(
                hl::read_task_status(TaskIndex(i as u16)),
                Ok((TaskState::Runnable, _))
            )
        {
            mask |= 1 << i;
        }
    }
    mask
}

/// Sleeps with idle in `state`; returns (others runnable before, ms slept,
/// idle's state after).
fn sleep_without_idle() -> (u64, u64, Result<(TaskState, abi::Generation), KipcFailure>) {
    let runnable = others_runnable();
    let start = sys_get_timer().now;
    hl::sleep_for(SLEEP_MS, SLEEP_BIT);
    let slept = sys_get_timer().now - start;
    (runnable, slept, hl::read_task_status(IDLE))
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let me = sys_refresh_task_id(TaskIndex(task_gen::TASK_INDEX));

    let stopped = hl::restart_task(IDLE, false);
    let (runnable, slept, state) = sleep_without_idle();
    let restarted = hl::restart_task(IDLE, true);
    check!(
        s,
        "restart_idle_no_panic",
        stopped.is_ok()
            && runnable == 0
            && slept >= SLEEP_MS
            && matches!(state, Ok((TaskState::Stopped, _)))
            && restarted.is_ok(),
        "stop {stopped:?}, others runnable {runnable:#x}, slept {slept} ms, idle {state:?}, restart {restarted:?}"
    );

    let faulted = hl::fault_task(IDLE);
    let (runnable, slept, state) = sleep_without_idle();
    let restarted = hl::restart_task(IDLE, true);
    let after = hl::read_task_status(IDLE);
    check!(
        s,
        "fault_idle_no_panic",
        faulted.is_ok()
            && runnable == 0
            && slept >= SLEEP_MS
            && matches!(state, Ok((TaskState::Faulted(FaultInfo::Injected(by)), _)) if by == me)
            && restarted.is_ok()
            && matches!(after, Ok((TaskState::Runnable, _))),
        "fault {faulted:?}, others runnable {runnable:#x}, slept {slept} ms, idle {state:?}, restart {restarted:?}, then {after:?}"
    );

    // The Fault right over idle is no more than that: idle has no durable memory to damage,
    // and the referee is not idle.
    let gen = sys_refresh_task_id(IDLE);
    let no_durable = hl::arm_kill(IDLE, KillPoint::CorruptDurable { offset: 0 });
    let not_granted = hl::arm_kill(REFEREE, KillPoint::AtSyscall { nth: 1 });
    let unchanged = sys_refresh_task_id(IDLE) == gen;
    check!(
        s,
        "arm_kill_refuses_beyond_its_right",
        matches!(no_durable, Err(KipcFailure::Kernel(KipcError::BadRequest)))
            && matches!(not_granted, Err(KipcFailure::Kernel(KipcError::Denied)))
            && unchanged,
        "durable of idle: {no_durable:?}, the referee: {not_granted:?}, idle unchanged {unchanged}"
    );

    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
