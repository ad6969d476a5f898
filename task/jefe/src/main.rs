//! jefe, the supervisor.
//!
//! Task 0 at priority 0. The kernel posts the `fault` notification to it
//! whenever a task faults; jefe finds every faulted task, logs why (the
//! fault and any panic message), and restarts it. A task that faults again
//! soon after a restart is held for a back-off that doubles on each quick
//! fault (up to a cap), so a crash loop cannot starve the system. A
//! deliberate kill by the kernel (`FaultInfo::Killed`: the manifest's kill
//! rules and chaos) is restarted at once and is no sign of a crash loop.
//!
//! `fail-on-fault` ends the run at the first fault, except for the tasks
//! the config lists in `restart` (`ALWAYS_RESTART`): the images that test a
//! task's restart set both. Each restart is logged with the task's restart
//! count, which kernel IPC status also shows as the task's generation.
//!
//! jefe never SENDs to another task — a server could refuse to answer and
//! wedge the supervisor — it only receives and talks to the kernel. Its one
//! IPC operation lets a task named in its config report that the image has
//! done its job, which ends a QEMU run through isa-debug-exit.

#![no_std]
#![no_main]
#![forbid(clippy::wildcard_imports)]

use abi::{FaultInfo, TaskIndex, TaskState};
use userlib::hl::{self, KipcFailure};
use userlib::{sys_get_timer, sys_recv_open, sys_reply, sys_set_timer, ulog, TaskId};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
include!(concat!(env!("OUT_DIR"), "/jefe_config.rs"));

use task_gen::notifications::{FAULT_MASK, TIMER_MASK};

/// A task that faults within this many ticks of starting is crash-looping.
const MIN_RUN_TICKS: u64 = 50;
const FIRST_BACKOFF: u64 = 10;
const MAX_BACKOFF: u64 = 1000;
const MAX_TASKS: usize = abi::MAX_TASKS;

/// IPC operation: the image is done; one byte, 1 = success.
const OP_IMAGE_DONE: u64 = 1;
/// isa-debug-exit values (QEMU exits with `(v << 1) | 1`).
const EXIT_SUCCESS: u8 = 0x10;
const EXIT_FAILURE: u8 = 0x11;

#[derive(Copy, Clone)]
struct Record {
    started_at: u64,
    backoff: u64,
    /// Restart when the clock reaches this, if held.
    restart_at: Option<u64>,
    restarts: u32,
}

const FRESH: Record = Record {
    started_at: 0,
    backoff: FIRST_BACKOFF,
    restart_at: None,
    restarts: 0,
};

fn exit_qemu(value: u8) {
    if let Some(port) = EXIT_PORT {
        // Safety: the manifest grants jefe this port (the kernel faults us
        // otherwise), and it is QEMU's isa-debug-exit device.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
        }
    }
    // No isa-debug-exit device took the write (a rig): the kernel ends the
    // run as the manifest says, or lets the machine stay up.
    let _ = hl::end_run();
}

fn describe(fault: FaultInfo, index: TaskIndex) {
    let name = task_gen::TASK_NAMES
        .get(usize::from(index.0))
        .copied()
        .unwrap_or("?");
    match fault {
        FaultInfo::Panic => {
            let mut msg = [0u8; abi::PANIC_MESSAGE_MAX];
            let n = hl::read_panic_message(index, &mut msg).unwrap_or(0);
            let text = core::str::from_utf8(&msg[..n]).unwrap_or("<not UTF-8>");
            ulog!("task {name} panicked: {text}");
        }
        other => ulog!("task {name} faulted: {other:?}"),
    }
}

fn handle_faults(records: &mut [Record; MAX_TASKS], now: u64) {
    let mut next = 1;
    loop {
        let found = match hl::find_faulted_task(next) {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(e) => {
                ulog!("cannot scan for faulted tasks: {e:?}");
                break;
            }
        };
        next = usize::from(found.0) + 1;
        let fault = match hl::read_task_status(found) {
            Ok((TaskState::Faulted(f), _)) => f,
            _ => continue,
        };
        describe(fault, found);
        let killed = matches!(fault, FaultInfo::Killed { .. });
        if FAIL_ON_FAULT && !ALWAYS_RESTART.contains(&found.0) {
            ulog!("fail-on-fault is set: ending the run");
            exit_qemu(EXIT_FAILURE);
        }
        let r = &mut records[usize::from(found.0)];
        if r.restart_at.is_some() {
            continue;
        }
        if !killed && now.saturating_sub(r.started_at) < MIN_RUN_TICKS {
            r.restart_at = Some(now + r.backoff);
            ulog!(
                "holding it {} ticks before restarting (crash loop back-off)",
                r.backoff
            );
            r.backoff = (r.backoff * 2).min(MAX_BACKOFF);
        } else {
            r.backoff = FIRST_BACKOFF;
            r.restart_at = Some(now);
        }
    }
}

fn restart_due(records: &mut [Record; MAX_TASKS], now: u64) -> Option<u64> {
    let mut earliest: Option<u64> = None;
    for (i, r) in records.iter_mut().enumerate() {
        match r.restart_at {
            Some(t) if t <= now => {
                r.restart_at = None;
                r.started_at = now;
                r.restarts += 1;
                match hl::restart_task(TaskIndex(i as u16), true) {
                    Ok(()) => defmt::warn!(
                        "restarted {=str} (restart #{=u32})",
                        task_gen::TASK_NAMES[i],
                        r.restarts
                    ),
                    Err(KipcFailure::Kernel(e)) => {
                        ulog!("cannot restart {}: {e:?}", task_gen::TASK_NAMES[i])
                    }
                    Err(e) => ulog!("cannot restart {}: {e:?}", task_gen::TASK_NAMES[i]),
                }
            }
            Some(t) => earliest = Some(earliest.map_or(t, |e: u64| e.min(t))),
            None => {}
        }
    }
    earliest
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut records = [FRESH; MAX_TASKS];
    defmt::info!("supervising {=usize} tasks", task_gen::TASK_NAMES.len());
    let mut buf = [0u8; 8];
    loop {
        let msg = sys_recv_open(&mut buf, FAULT_MASK | TIMER_MASK);
        let now = sys_get_timer().now;
        if msg.sender == TaskId::KERNEL {
            if msg.operation & FAULT_MASK != 0 {
                handle_faults(&mut records, now);
            }
            if let Some(at) = restart_due(&mut records, now) {
                sys_set_timer(Some(at), TIMER_MASK);
            }
            continue;
        }
        let allowed = MAY_FINISH.contains(&msg.sender.index().0);
        if msg.operation == OP_IMAGE_DONE && allowed && msg.message_len == 1 {
            let ok = buf[0] == 1;
            let name = task_gen::TASK_NAMES[usize::from(msg.sender.index().0)];
            if ok {
                defmt::info!("{=str} reports the image succeeded", name);
            } else {
                defmt::error!("{=str} reports the image FAILED", name);
            }
            sys_reply(msg.sender, 0, &[]);
            exit_qemu(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
        } else {
            // Not a request jefe serves (or not from a task allowed to make
            // it): refuse without faulting anyone.
            sys_reply(msg.sender, 1, &[]);
        }
    }
}
