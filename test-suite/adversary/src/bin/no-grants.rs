//! no-grants: an attacker holding no right and no capability asks the
//! kernel for everything a supervisor, the memory authority or tdx-host
//! may do — restart, fault, arm a kill of and inspect other tasks, scrub physical memory,
//! flush caches, read the platform record, make a SEAMCALL — and checks that
//! each request is refused with `Denied` and changed nothing (the targets
//! keep their generation).

#![no_std]
#![no_main]

use abi::kipc::{KillPoint, KipcError};
use test_api::check;
use test_api::score::Score;
use userlib::hl::{self, KipcFailure};
use userlib::{
    sys_refresh_task_id, sys_seamcall, sys_seamcall_collect, sys_seamcall_start, SeamcallOutcome,
    TaskIndex,
};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::slots::REFEREE;
use task_gen::tasks::{IDLE, TDX_HOST};

fn denied<T>(r: Result<T, KipcFailure>) -> bool {
    matches!(r, Err(KipcFailure::Kernel(KipcError::Denied)))
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let targets: [TaskIndex; 3] = [TDX_HOST, IDLE, REFEREE];
    let before = targets.map(sys_refresh_task_id);

    let refused = targets.iter().all(|&t| {
        denied(hl::restart_task(t, true))
            && denied(hl::fault_task(t))
            && denied(hl::read_task_status(t))
    });
    // An armed kill or a damaged durable byte is the Fault right's too.
    let arm_refused = targets.iter().all(|&t| {
        denied(hl::arm_kill(t, KillPoint::AtSyscall { nth: 1 }))
            && denied(hl::arm_kill(t, KillPoint::CorruptDurable { offset: 0 }))
    });
    let after = targets.map(sys_refresh_task_id);
    check!(
        s,
        "arm_kill_without_fault_right_refused",
        arm_refused && before == after,
        "an armed kill or a durable-memory corruption of tdx-host, idle or the referee was not refused ({before:?} -> {after:?})"
    );
    check!(
        s,
        "kipc_without_rights_refused",
        refused && before == after,
        "restart/fault/status of tdx-host, idle or the referee was not refused, or a generation changed ({before:?} -> {after:?})"
    );

    // The first MiB of RAM and the kernel image: what a scrub would destroy.
    let scrub_refused = denied(hl::scrub(0x100000, 0x1000)) && denied(hl::scrub(0x9000, 0x1000));
    check!(
        s,
        "scrub_without_authority_refused",
        scrub_refused,
        "a task without memory-authority could scrub"
    );
    check!(
        s,
        "flush_without_authority_refused",
        denied(hl::flush_caches()),
        "a task without memory-authority could flush every CPU's caches"
    );
    check!(
        s,
        "platform_without_capability_refused",
        denied(hl::read_platform()),
        "a task without the platform capability read the platform record"
    );
    // TDH.SYS.INFO aimed at the kernel image.
    let seam = sys_seamcall(None, 32, [0x100000, 1024, 0x101000, 32, 0, 0]);
    check!(
        s,
        "seamcall_without_capability_refused",
        seam == Ok(SeamcallOutcome::Denied),
        "a task without the seamcall capability got {seam:?}"
    );

    let start = sys_seamcall_start(1, 0, 36, [0x100000, 0, 0, 0, 0, 0]);
    let collect = sys_seamcall_collect(0);
    check!(
        s,
        "async_seamcall_without_capability_refused",
        start == Ok(SeamcallOutcome::Denied) && collect == Ok(SeamcallOutcome::Denied),
        "a task without the seamcall capability got START {start:?}, COLLECT {collect:?}"
    );

    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
