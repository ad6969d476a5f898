//! Kernel IPC: status, restart, fault, find-faulted, panic messages — and
//! the manifest's rights, which the kernel enforces.

use abi::kipc::KipcError;
use abi::{FaultInfo, TaskIndex, TaskState};
use test_api::assist as op;
use userlib::hl::{self, KipcFailure};
use userlib::{sys_seamcall, SeamcallOutcome};

use crate::{call, collect_fault, id, state, Case, ASSIST, IDLE, PEER, RUNNER, SUITE};

pub static CASES: &[Case] = &[
    ("kipc_status_of_a_server_waiting_in_recv", status_recv),
    (
        "kipc_restart_bumps_generation_and_resets_memory",
        restart_resets,
    ),
    ("kipc_restart_held_leaves_task_stopped", restart_held),
    (
        "kipc_fault_task_is_injected_and_seen_by_supervisor",
        fault_injected,
    ),
    ("kipc_find_faulted_task", find_faulted),
    ("kipc_restart_without_right_is_denied", restart_denied),
    ("kipc_fault_without_right_is_denied", fault_denied),
    ("kipc_status_without_right_is_denied", status_denied),
    ("kipc_fault_of_self_is_refused", fault_self),
    ("kipc_bad_task_index_is_refused", bad_index),
    ("kipc_refresh_task_id_tracks_generation", refresh_id),
    ("capability_seamcall_without_it_is_denied", seamcall_denied),
    (
        "capability_platform_and_memory_ops_without_it_are_denied",
        platform_denied,
    ),
];

fn seamcall_denied() {
    assert_eq!(
        sys_seamcall(Some(0), 0, [0; 6]),
        Ok(SeamcallOutcome::Denied)
    );
    assert_eq!(sys_seamcall(None, 33, [0; 6]), Ok(SeamcallOutcome::Denied));
}

fn platform_denied() {
    denied(hl::read_platform());
    denied(hl::cpu_apic_id(0));
    denied(hl::cpu_count());
    denied(hl::flush_caches());
    denied(hl::scrub(0x4000_0000, 4096));
    denied(hl::scrub_method());
}

fn denied(r: Result<impl core::fmt::Debug, KipcFailure>) {
    match r {
        Err(KipcFailure::Kernel(KipcError::Denied)) => {}
        other => panic!("expected Denied, got {other:?}"),
    }
}

fn status_recv() {
    assert_eq!(state(PEER), TaskState::InRecv(None));
    assert_eq!(state(SUITE), TaskState::Runnable);
}

fn count() -> u32 {
    let mut r = [0u8; 4];
    call(ASSIST, op::COUNT, &[], &mut r, &[]);
    u32::from_le_bytes(r)
}

fn restart_resets() {
    let before = id(ASSIST).generation();
    let a = count();
    let b = count();
    assert_eq!(b, a + 1);
    hl::restart_task(ASSIST, true).unwrap();
    assert_eq!(count(), 1, "a restart zeroes the task's memory");
    assert_eq!(id(ASSIST).generation(), before.next());
}

fn restart_held() {
    hl::restart_task(PEER, false).unwrap();
    assert_eq!(state(PEER), TaskState::Stopped);
    hl::restart_task(PEER, true).unwrap();
    assert_eq!(state(PEER), TaskState::InRecv(None));
}

fn fault_injected() {
    hl::fault_task(ASSIST).unwrap();
    assert_eq!(collect_fault(ASSIST), FaultInfo::Injected(id(SUITE)));
}

fn find_faulted() {
    assert_eq!(hl::find_faulted_task(1).unwrap(), None);
    hl::fault_task(PEER).unwrap();
    assert_eq!(hl::find_faulted_task(1).unwrap(), Some(PEER));
    assert_eq!(
        hl::find_faulted_task(usize::from(PEER.0) + 1).unwrap(),
        None
    );
    collect_fault(PEER);
}

fn restart_denied() {
    denied(hl::restart_task(RUNNER, true));
    denied(hl::restart_task(IDLE, true));
}

fn fault_denied() {
    denied(hl::fault_task(IDLE));
    denied(hl::fault_task(RUNNER));
    assert!(matches!(
        state(IDLE),
        TaskState::Runnable | TaskState::InRecv(_)
    ));
}

fn status_denied() {
    denied(hl::read_task_status(RUNNER));
    let mut buf = [0u8; 8];
    denied(hl::read_panic_message(IDLE, &mut buf));
}

fn fault_self() {
    match hl::fault_task(SUITE) {
        Err(KipcFailure::Kernel(KipcError::IllegalTarget)) => {}
        other => panic!("expected IllegalTarget, got {other:?}"),
    }
}

fn bad_index() {
    match hl::read_task_status(TaskIndex(60)) {
        Err(KipcFailure::Kernel(KipcError::NoSuchTask)) => {}
        other => panic!("expected NoSuchTask, got {other:?}"),
    }
}

fn refresh_id() {
    let a = id(PEER);
    assert_eq!(a.index(), PEER);
    hl::restart_task(PEER, true).unwrap();
    let b = id(PEER);
    assert_eq!(b.generation(), a.generation().next());
}
