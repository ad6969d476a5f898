//! Timers and notifications.

use abi::{dead_response_code, TaskState, IPC_REFUSED};
use test_api::assist as op;
use userlib::{
    hl, sys_get_timer, sys_post, sys_recv_closed, sys_set_timer, sys_set_timer_after, TaskId,
};

use crate::{call, id, state, Case, ASSIST, RUNNER, SUITE};

pub static CASES: &[Case] = &[
    ("timer_fires_at_its_deadline", timer_fires),
    ("timer_with_past_deadline_fires_at_once", timer_past),
    ("timer_disarmed_does_not_fire", timer_disarm),
    ("timer_state_is_readable", timer_state),
    ("timer_relative_fires_after_its_ticks", timer_after_fires),
    (
        "timer_relative_zero_fires_at_once_like_a_past_deadline",
        timer_after_zero,
    ),
    (
        "timer_relative_huge_saturates_and_never_wraps",
        timer_after_saturates,
    ),
    (
        "timer_relative_and_absolute_give_the_same_deadline",
        timer_after_matches_absolute,
    ),
    ("notification_posted_to_self_is_received", post_self),
    ("notification_bits_wait_until_unmasked", post_masked),
    (
        "notification_wakes_a_more_important_task_at_once",
        post_wakes,
    ),
    ("notification_to_restarted_task_is_dead_code", post_stale),
    ("notification_off_manifest_is_refused", post_off_manifest),
    (
        "irq_device_interrupt_is_delivered_masked_and_rearmed",
        irq_round,
    ),
];

fn irq_round() {
    let mut r = [0u8; 16];
    call(ASSIST, op::IRQ_ROUND, &[], &mut r, &[]);
    let w = |i| test_api::word32(&r, i);
    assert_eq!(
        w(0),
        1,
        "the PIT interrupt reached assist as its `pit` notification"
    );
    assert_eq!(w(1), 0, "the kernel masks a line when it fires");
    assert_eq!(w(2), 1, "and marks it pending until the task re-enables it");
    assert_eq!(w(3), 1, "re-enabling unmasks it");
}

fn wait_kernel(mask: u64) -> u64 {
    sys_recv_closed(&mut [], mask, TaskId::KERNEL)
        .expect("kernel never dies")
        .operation
}

fn timer_fires() {
    let start = sys_get_timer().now;
    sys_set_timer(Some(start + 5), 1 << 5);
    assert_eq!(wait_kernel(1 << 5), 1 << 5);
    assert!(sys_get_timer().now >= start + 5);
}

fn timer_past() {
    sys_set_timer(Some(0), 1 << 6);
    assert_eq!(wait_kernel(1 << 6), 1 << 6);
    assert_eq!(sys_get_timer().deadline, None, "a fired timer is disarmed");
}

fn timer_disarm() {
    let now = sys_get_timer().now;
    sys_set_timer(Some(now + 2), 1 << 7);
    sys_set_timer(None, 0);
    sys_set_timer(Some(now + 10), 1 << 8);
    assert_eq!(wait_kernel((1 << 7) | (1 << 8)), 1 << 8);
}

fn timer_state() {
    let now = sys_get_timer().now;
    sys_set_timer(Some(now + 100_000), 1 << 9);
    let t = sys_get_timer();
    assert_eq!((t.deadline, t.notifications), (Some(now + 100_000), 1 << 9));
    sys_set_timer(None, 0);
    assert_eq!(sys_get_timer().deadline, None);
}

fn timer_after_fires() {
    let start = sys_get_timer().now;
    sys_set_timer_after(5, 1 << 13);
    assert_eq!(wait_kernel(1 << 13), 1 << 13);
    assert!(sys_get_timer().now >= start + 5);
    assert_eq!(sys_get_timer().deadline, None, "a fired timer is disarmed");
}

/// Runs `arm` until no tick falls between the clock read before it and
/// the GET_TIMER after it, and returns that clock and the timer state: the
/// kernel's clock at the SET_TIMER, known exactly.
fn within_one_tick(mut arm: impl FnMut(u64)) -> (u64, userlib::TimerState) {
    loop {
        let before = sys_get_timer().now;
        arm(before);
        let after = sys_get_timer();
        if after.now == before {
            return (before, after);
        }
    }
}

/// Relative 0 behaves as an absolute deadline in the past: it fires inside
/// the SET_TIMER itself (disarmed before any tick could fire it), and its
/// bits wait.
fn timer_after_zero() {
    for relative in [true, false] {
        let (_, t) = within_one_tick(|now| {
            if relative {
                sys_set_timer_after(0, 1 << 14);
            } else {
                sys_set_timer(Some(now.saturating_sub(1)), 1 << 14);
            }
        });
        assert_eq!(t.deadline, None, "fired at once (relative: {relative})");
        assert_eq!(wait_kernel(1 << 14), 1 << 14);
    }
}

/// A relative count that runs past the end of time saturates to the last
/// tick (never fires) instead of wrapping to a tick in the past (fires at
/// once), whichever way it overflows.
fn timer_after_saturates() {
    let now = sys_get_timer().now;
    for ticks in [u64::MAX, u64::MAX - now, u64::MAX - now + 1] {
        sys_set_timer_after(ticks, 1 << 15);
        let t = sys_get_timer();
        assert_eq!(
            (t.deadline, t.notifications),
            (Some(u64::MAX), 1 << 15),
            "{ticks:#x} ticks after {now}"
        );
    }
    sys_set_timer(None, 0);
    assert_eq!(sys_get_timer().deadline, None);
}

/// The relative form arms the deadline the absolute one names, read back
/// with GET_TIMER.
fn timer_after_matches_absolute() {
    let (now, relative) = within_one_tick(|_| sys_set_timer_after(100_000, 1 << 16));
    sys_set_timer(Some(now + 100_000), 1 << 16);
    let absolute = sys_get_timer();
    assert_eq!(relative.deadline, Some(now + 100_000));
    assert_eq!(
        (relative.deadline, relative.notifications),
        (absolute.deadline, absolute.notifications)
    );
    sys_set_timer(None, 0);
}

fn post_self() {
    assert_eq!(sys_post(id(SUITE), 1 << 10), 0);
    assert_eq!(wait_kernel(1 << 10), 1 << 10);
}

fn post_masked() {
    sys_post(id(SUITE), (1 << 11) | (1 << 12));
    assert_eq!(wait_kernel(1 << 11), 1 << 11);
    assert_eq!(wait_kernel(1 << 12), 1 << 12, "bit 12 stayed pending");
}

fn notes() -> u32 {
    let mut r = [0u8; 4];
    call(ASSIST, op::NOTES, &[], &mut r, &[]);
    u32::from_le_bytes(r)
}

/// assist's `wake` notification (bit 1 in the manifest), the one the
/// manifest lets the suite post to it.
const ASSIST_WAKE: u64 = 1 << 1;

fn post_wakes() {
    let before = notes();
    call(
        ASSIST,
        op::WAIT_NOTE,
        &ASSIST_WAKE.to_le_bytes(),
        &mut [],
        &[],
    );
    assert_eq!(state(ASSIST), TaskState::InRecv(Some(TaskId::KERNEL)));
    assert_eq!(sys_post(id(ASSIST), ASSIST_WAKE), 0);
    // assist is more important: it ran before POST returned to us.
    assert_eq!(state(ASSIST), TaskState::InRecv(None));
    assert_eq!(notes(), before + 1);
}

fn post_stale() {
    let old = id(ASSIST);
    hl::restart_task(ASSIST, true).unwrap();
    assert_eq!(
        sys_post(old, ASSIST_WAKE),
        dead_response_code(id(ASSIST).generation())
    );
}

/// POST only along the manifest's `posts` edges: a bit the suite may not
/// post to assist (its IRQ bit), a task it has no edge to, and a mix of an
/// allowed and a forbidden bit are all refused whole, and nothing arrives.
fn post_off_manifest() {
    let before = notes();
    call(
        ASSIST,
        op::WAIT_NOTE,
        &(ASSIST_WAKE | 1).to_le_bytes(),
        &mut [],
        &[],
    );
    assert_eq!(sys_post(id(ASSIST), 1), IPC_REFUSED, "assist's `pit` bit");
    assert_eq!(sys_post(id(ASSIST), ASSIST_WAKE | 1), IPC_REFUSED);
    assert_eq!(
        sys_post(id(RUNNER), 1),
        IPC_REFUSED,
        "the supervisor's fault bit"
    );
    assert_eq!(state(ASSIST), TaskState::InRecv(Some(TaskId::KERNEL)));
    assert_eq!(sys_post(id(ASSIST), ASSIST_WAKE), 0);
    assert_eq!(notes(), before + 1);
}
