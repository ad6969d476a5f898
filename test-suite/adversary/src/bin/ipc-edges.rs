//! ipc-edges: SEND and POST off the manifest's edges (issue 11, item 4).
//! Its only task slot is the referee and its only POST edge is
//! `lease-server`'s `wake`; everything else must be answered `IPC_REFUSED`
//! with nothing delivered:
//! - `send_off_manifest_refused`: SEND to tdx-host, idle, lease-server and
//!   itself (each a live task, some more important), and to a stale id of a
//!   task it has no edge to (refused, not a dead code: the edge is checked
//!   first); the targets keep their generation; the declared edge works.
//! - `send_to_waiting_receiver_without_edge_refused`: the same for
//!   lease-server while it waits in an open RECV, the one state in which
//!   the kernel's fast path would deliver at once: still `IPC_REFUSED`,
//!   and lease-server still waits (nothing delivered).
//! - `post_off_manifest_refused`: POST of the referee's `fault` bit, of
//!   tdx-host's `client-restarted` bit, to idle, of a bit of lease-server
//!   the edge does not name, and of an allowed bit mixed with a forbidden
//!   one; the declared edge and a post to itself work.

#![no_std]
#![no_main]

use abi::{TaskId, TaskState, IPC_REFUSED};
use test_api::check;
use test_api::score::Score;
use userlib::{hl, sys_post, sys_refresh_task_id, sys_send, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::slots::REFEREE;
use task_gen::tasks::{IDLE, LEASE_SERVER, TDX_HOST};

fn id(i: TaskIndex) -> TaskId {
    sys_refresh_task_id(i)
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let me = TaskIndex(task_gen::TASK_INDEX);
    let victims = [TDX_HOST, IDLE, LEASE_SERVER, me];
    let before = victims.map(id);

    let mut reply = [0u8; 64];
    let refused: [u32; 4] = victims.map(|t| sys_send(id(t), 1, b"hello", &mut reply, &[]).0);
    let stale = TaskId::new(TDX_HOST, id(TDX_HOST).generation().next());
    let (stale_rc, _) = sys_send(stale, 1, b"hello", &mut reply, &[]);
    let after = victims.map(id);
    let (allowed, _) = sys_send(
        id(REFEREE),
        test_adversary::referee::UNSTASH,
        &[],
        &mut reply,
        &[],
    );
    check!(
        s,
        "send_off_manifest_refused",
        refused == [IPC_REFUSED; 4]
            && stale_rc == IPC_REFUSED
            && before == after
            && allowed == 0,
        "SEND to tdx-host/idle/lease-server/self gave {refused:#x?}, to a stale id {stale_rc:#x}, generations {before:?} -> {after:?}, the declared edge {allowed:#x}"
    );

    // lease-server is more important, so it is blocked whenever this task
    // runs; wait (a tick at a time) until that is in its open RECV.
    let status = || hl::read_task_status(LEASE_SERVER).map(|(st, _)| st).ok();
    let mut waiting = status() == Some(TaskState::InRecv(None));
    for _ in 0..100 {
        if waiting {
            break;
        }
        hl::sleep_for(1, 1 << 41);
        waiting = status() == Some(TaskState::InRecv(None));
    }
    let ls = id(LEASE_SERVER);
    let (rc, _) = sys_send(ls, 1, b"hello", &mut reply, &[]);
    let after = status();
    check!(
        s,
        "send_to_waiting_receiver_without_edge_refused",
        waiting && rc == IPC_REFUSED && after == Some(TaskState::InRecv(None)) && id(LEASE_SERVER) == ls,
        "lease-server waiting in RECV: {waiting}; SEND without an edge gave {rc:#x}, lease-server then {after:?}"
    );

    // Bit 0 of the referee is `fault`, of tdx-host `client-restarted`;
    // lease-server declares `wake` (bit 0) only.
    let posts = [
        sys_post(id(REFEREE), 1),
        sys_post(id(TDX_HOST), 1),
        sys_post(id(IDLE), 1),
        sys_post(id(LEASE_SERVER), 1 << 1),
        sys_post(id(LEASE_SERVER), 1 | 1 << 5),
    ];
    let allowed = sys_post(id(LEASE_SERVER), 1);
    let to_self = sys_post(id(me), 1 << 40);
    let got_own =
        userlib::sys_recv_closed(&mut [], 1 << 40, TaskId::KERNEL).map_or(0, |m| m.operation);
    check!(
        s,
        "post_off_manifest_refused",
        posts == [IPC_REFUSED; 5] && allowed == 0 && to_self == 0 && got_own == 1 << 40,
        "POST off the edges gave {posts:#x?}; the declared edge {allowed:#x}, to itself {to_self:#x} (received {got_own:#x})"
    );

    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
