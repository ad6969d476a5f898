//! nmi-check: the guest side of the NMI end-to-end test.
//!
//! `cargo xtask test` (build/xtask/src/nmi_test.rs) injects NMIs over QMP
//! while this task works; they meet on console lines. This task prints
//! `nmi: ready for busy`, then for [`BUSY_TICKS`] makes IPC round trips
//! with `pong` (op 1, which answers the message reversed), each message
//! drawn from a generator in ring 3 and each answer checked; then it prints
//! `nmi: busy done`, `nmi: ready for idle`, and sleeps [`IDLE_TICKS`] (every
//! task blocked, so the kernel halts on idle's behalf and the NMIs land in
//! ring 0), and prints `nmi: idle done`. The harness injects NMIs between
//! each `ready` and its `done`.
//!
//! Checked here: every answer was right (an NMI that clobbered a register
//! or a save area shows as a wrong answer, a fault or a restart), and
//! neither `pong` nor this task was restarted (their generations did not
//! change). jefe runs with `fail-on-fault`, so any fault ends the run
//! without a verdict. The harness checks the kernel's NMI reports.

#![no_std]
#![no_main]

use test_api::check;
use test_api::score::Score;
use userlib::{hl, sys_get_timer, sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::notifications::TIMER_MASK;

/// How long the IPC workload runs (kernel ticks of 1 ms).
const BUSY_TICKS: u64 = 4000;
/// How long every task stays blocked.
const IDLE_TICKS: u64 = 2000;
/// Ticks after the idle spell before the verdict, so that the kernel's
/// report of the last NMIs (at a timer tick) comes before it.
const SETTLE_TICKS: u64 = 50;
/// pong's operation that answers the message reversed.
const OP_REVERSE: u16 = 1;
/// xorshift rounds of ring-3 work per round trip.
const RING3_ROUNDS: u32 = 2000;
/// Bytes per message (pong takes up to 64).
const MESSAGE: usize = 48;

/// xorshift64: ring-3 work between the round trips, and messages that
/// differ every time.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Round trips with pong until `ticks` pass: (round trips, wrong answers,
/// the first wrong one's description).
fn workload(ticks: u64) -> (u64, u64, Option<(u64, u32, usize)>) {
    let pong = sys_refresh_task_id(task_gen::slots::PONG);
    let end = sys_get_timer().now + ticks;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (mut rounds, mut wrong, mut first) = (0u64, 0u64, None);
    while sys_get_timer().now < end {
        let mut out = [0u8; MESSAGE];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&next(&mut state).to_le_bytes());
        }
        // Most of each round stays in ring 3, so that most busy-phase NMIs land in a task
        // (with IPC alone about one in six did, and a run with none there was possible).
        let mut spin = state;
        for _ in 0..RING3_ROUNDS {
            next(&mut spin);
        }
        core::hint::black_box(spin);
        let mut back = [0u8; MESSAGE];
        let (rc, n) = sys_send(pong, OP_REVERSE, &out, &mut back, &[]);
        let right = rc == 0 && n == MESSAGE && out.iter().rev().eq(back.iter());
        if !right {
            wrong += 1;
            first.get_or_insert((rounds, rc, n));
        }
        rounds += 1;
    }
    (rounds, wrong, first)
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let me = sys_refresh_task_id(userlib::TaskIndex(task_gen::TASK_INDEX));
    let pong = sys_refresh_task_id(task_gen::slots::PONG);

    ulog!("nmi: ready for busy");
    let (rounds, wrong, first) = workload(BUSY_TICKS);
    ulog!("nmi: busy done after {rounds} round trips");
    check!(
        s,
        "ipc_answers_right_under_nmis",
        rounds > 0 && wrong == 0,
        "{wrong} of {rounds} round trips answered wrong; first (round, rc, length): {first:?}"
    );

    ulog!("nmi: ready for idle");
    hl::sleep_for(IDLE_TICKS, TIMER_MASK);
    ulog!("nmi: idle done");
    hl::sleep_for(SETTLE_TICKS, TIMER_MASK);

    let (me_now, pong_now) = (
        sys_refresh_task_id(userlib::TaskIndex(task_gen::TASK_INDEX)),
        sys_refresh_task_id(task_gen::slots::PONG),
    );
    check!(
        s,
        "no_task_restarted_under_nmis",
        me_now == me && pong_now == pong,
        "ids before {me:?} {pong:?}, after {me_now:?} {pong_now:?}"
    );
    s.verdict(task_gen::IMAGE_NAME);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let _ = sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    loop {
        hl::sleep_for(1000, TIMER_MASK);
    }
}
