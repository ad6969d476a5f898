//! suite: the kernel's in-QEMU test cases.
//!
//! The runner hands out case numbers; each case is a plain function that
//! passes by returning and fails by panicking (the runner sees the fault,
//! prints the panic message, restarts us, and goes on with the next case).
//! Cases drive `assist` and `peer` — more important than the suite, so a
//! request they answer before misbehaving has fully played out by the time
//! the suite looks — and check what the kernel and the supervisor saw.

#![no_std]
#![no_main]

mod cases_durable;
mod cases_faults;
mod cases_idol;
mod cases_ipc;
mod cases_kipc;
mod cases_reply_recv;
mod cases_time;

use abi::{FaultInfo, TaskIndex, TaskState};
use test_api::{runner as rop, word32};
use userlib::{hl, sys_refresh_task_id, sys_send, Lease, TaskId};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

pub use task_gen::tasks::{ASSIST, IDLE, PEER, RUNNER, SUITE};

/// One test case.
pub type Case = (&'static str, fn());

/// The current id of a task.
pub fn id(index: TaskIndex) -> TaskId {
    sys_refresh_task_id(index)
}

/// Sends and asserts success; returns the reply length.
pub fn call(
    index: TaskIndex,
    op: u16,
    args: &[u8],
    reply: &mut [u8],
    leases: &[Lease<'_>],
) -> usize {
    let (rc, n) = sys_send(id(index), op, args, reply, leases);
    assert_eq!(rc, 0, "op {op} to task {} failed with {rc:#x}", index.0);
    n
}

/// Little-endian encoding of u32 words.
pub fn words<const N: usize>(w: [u32; N]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, v) in w.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// The fault the runner (our supervisor) recorded for `index`, if any.
pub fn supervisor_saw(index: TaskIndex) -> Option<FaultInfo> {
    let mut out = [0u8; 24];
    call(
        RUNNER,
        rop::TAKE_FAULT,
        &u32::from(index.0).to_le_bytes(),
        &mut out,
        &[],
    );
    let w = [
        test_api::word64(&out, 0),
        test_api::word64(&out, 1),
        test_api::word64(&out, 2),
    ];
    if w[0] == 0 {
        None
    } else {
        FaultInfo::from_words(w)
    }
}

/// Asserts `index` is faulted, that the supervisor was told, restarts it,
/// and returns the fault.
pub fn collect_fault(index: TaskIndex) -> FaultInfo {
    let (state, _) = hl::read_task_status(index).expect("status");
    let TaskState::Faulted(f) = state else {
        panic!("task {} is not faulted: {state:?}", index.0)
    };
    assert_eq!(
        supervisor_saw(index),
        Some(f),
        "the supervisor did not see the fault"
    );
    hl::restart_task(index, true).expect("restart");
    f
}

/// The state of `index`.
pub fn state(index: TaskIndex) -> TaskState {
    hl::read_task_status(index).expect("status").0
}

static CASES: &[&[Case]] = &[
    cases_ipc::CASES,
    cases_faults::CASES,
    cases_reply_recv::CASES,
    cases_kipc::CASES,
    cases_time::CASES,
    cases_idol::CASES,
    cases_durable::CASES,
];

fn case(mut i: usize) -> Option<Case> {
    for group in CASES {
        if i < group.len() {
            return Some(group[i]);
        }
        i -= group.len();
    }
    None
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let total: usize = CASES.iter().map(|g| g.len()).sum();
    loop {
        let mut reply = [0u8; 4];
        call(
            RUNNER,
            rop::NEXT_CASE,
            &(total as u32).to_le_bytes(),
            &mut reply,
            &[],
        );
        let next = word32(&reply, 0);
        let Some((name, f)) = (next != rop::DONE).then(|| case(next as usize)).flatten() else {
            loop {
                hl::sleep_for(1_000_000, 1 << 63);
            }
        };
        let mut start = [0u8; 68];
        start[..4].copy_from_slice(&next.to_le_bytes());
        let n = name.len().min(64);
        start[4..4 + n].copy_from_slice(&name.as_bytes()[..n]);
        call(RUNNER, rop::START, &start[..4 + n], &mut [], &[]);
        f();
        call(RUNNER, rop::PASSED, &next.to_le_bytes(), &mut [], &[]);
    }
}
