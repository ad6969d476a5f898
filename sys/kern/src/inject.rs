//! Deliberate kills from the manifest, so that restart paths (tdx-host
//! re-attaching to the module, replaying its durable ledger) can be tested
//! at chosen points and at many random ones.
//!
//! - SEAMCALL kill rules: `[kernel.tdx] faults` entries with
//!   `kill = "before" | "after"`. `seam::syscall` asks [`seamcall`] for
//!   every call the gate admitted; a `Before` kill faults the caller
//!   without running the call, an `After` kill runs it and faults the
//!   caller instead of returning the answer.
//! - Chaos: `[kernel.chaos]` names one task; the syscall entry and the
//!   timer-interrupt path report its events to [`chaos`], which says when
//!   to kill it. Without `[kernel.chaos]`, `tables::CHAOS_TASK` is `None`
//!   and both call sites compile away (the syscall benchmarks depend on it).
//!
//! - Armed kills: a task holding the Fault right over another arms one
//!   kill at a point of its work (kernel IPC `ArmKill`, [`arm`]). Only
//!   images where some task holds a Fault right can arm one
//!   (`tables::KILLS_ARMABLE`, a build-time constant); in every other
//!   image the syscall entry's test of [`armed_task`] compiles away.
//!
//! A kill is an ordinary fault (`FaultInfo::Killed`) delivered through
//! `task::force_fault`, so the supervisor sees and restarts it like any
//! other. The decisions themselves are `kerncore::inject` (host-tested);
//! this module only holds their state and logs each kill.

use core::sync::atomic::{AtomicUsize, Ordering};

use abi::kipc::{KillPoint, KipcError};
use abi::{FaultInfo, KillCause};
use kerncore::inject::{
    ArmedKill, ArmedPoint, ArmedSyscall, Chaos, ChaosEvent, ChaosKill, KillRule, KillTable, When,
};

use crate::sync::SpinLock;
use crate::tables::{CHAOS, TDX};
use crate::task::{force_fault, Task};

static KILLS: SpinLock<KillTable> = SpinLock::new(KillTable::new());
static CHAOS_STATE: SpinLock<Option<Chaos>> = SpinLock::new(None);
static ARMED: SpinLock<Option<ArmedKill>> = SpinLock::new(None);
/// The armed kill's target, for the syscall entry's cheap test (`NONE`:
/// nothing armed). Written only with `ARMED` held; the task table lock
/// orders it against the target's syscalls.
static ARMED_TASK: AtomicUsize = AtomicUsize::new(NONE);
const NONE: usize = usize::MAX;

/// Loads the manifest's kill rules and chaos schedule; prints them.
pub fn init() {
    let mut n = 0;
    KILLS.with(|t| {
        for f in TDX.faults {
            if let Some(when) = f.kill {
                let added = t.add(KillRule {
                    leaf: f.leaf,
                    on_call: f.on_call,
                    on_cpu: f.on_cpu,
                    repeat: f.repeat,
                    when,
                });
                n += usize::from(added);
            }
        }
    });
    if n > 0 {
        crate::kprintln!("inject: {n} SEAMCALL kill rules");
    }
    if let Some(c) = &CHAOS {
        CHAOS_STATE.with(|s| *s = Some(Chaos::new(c.seed, c.kills, c.every, c.after)));
        let name = crate::tables::TASK_DESCS
            .get(c.task)
            .map_or("?", |d| d.name);
        crate::kprintln!(
            "[chaos] seed {} task {name}: {} kills, 1..={} events apart, after {} events",
            c.seed,
            c.kills,
            c.every,
            c.after
        );
    }
}

/// Counts an admitted SEAMCALL of `leaf` on CPU `cpu`; whether to kill
/// the caller, and when.
pub fn seamcall(caller: usize, leaf: u16, cpu: usize) -> Option<When> {
    if armed_seamcall(caller, leaf) {
        crate::kprintln!(
            "[kill] SEAMCALL leaf {leaf} on cpu {cpu}: armed kill after the module ran it"
        );
        return Some(When::After);
    }
    let (when, call) = KILLS.with(|t| t.on_call(leaf, cpu as u32));
    if let Some(w) = when {
        crate::kprintln!(
            "[kill] SEAMCALL leaf {leaf} call {call} on cpu {cpu}: killing the caller {}",
            match w {
                When::Before => "before the module runs it",
                When::After => "after the module ran it",
            }
        );
    }
    when
}

/// Faults `caller` for a SEAMCALL kill rule.
pub fn kill_at_seamcall(tasks: &mut [Task], caller: usize, leaf: u16, when: When) {
    let cause = match when {
        When::Before => KillCause::SeamcallBefore,
        When::After => KillCause::SeamcallAfter,
    };
    force_fault(
        tasks,
        caller,
        FaultInfo::Killed {
            cause,
            detail: u64::from(leaf),
        },
    );
}

/// Reports one chaos event of the target; returns the kill to make, if
/// this is a kill point (already logged).
pub fn chaos(event: ChaosEvent, pc: u64) -> Option<(KillCause, u32)> {
    let (kill, progress) = CHAOS_STATE.with(|s| {
        let c = s.as_mut()?;
        let k = c.event(event)?;
        Some((k, c.progress()))
    })?;
    let (ordinal, total) = (kill.1, progress.1);
    let cause = match kill.0 {
        ChaosKill::SyscallBefore => KillCause::ChaosSyscallBefore,
        ChaosKill::SyscallAfter => KillCause::ChaosSyscallAfter,
        ChaosKill::Tick => KillCause::ChaosTick,
    };
    crate::kprintln!("[chaos] kill {ordinal} of {total} at {cause:?} pc={pc:#x}");
    Some((cause, ordinal))
}

/// Faults the chaos target for kill `ordinal`.
pub fn chaos_kill(tasks: &mut [Task], target: usize, cause: KillCause, ordinal: u32) {
    force_fault(
        tasks,
        target,
        FaultInfo::Killed {
            cause,
            detail: u64::from(ordinal),
        },
    );
}

/// Whether an armed kill waits for `task`'s system calls. A constant
/// `false` in images where no task may arm one.
#[inline(always)]
pub fn armed_task(task: usize) -> bool {
    crate::tables::KILLS_ARMABLE && ARMED_TASK.load(Ordering::Relaxed) == task
}

/// Arms (or, with `Disarm`, clears) the kill of `target` that `by` asked
/// for; the caller checked the Fault right. `CorruptDurable` is carried
/// out at once.
///
/// # Errors
/// `IllegalTarget` for oneself or task 0; `BadRequest` for a durable
/// offset outside the target's durable memory (or a task without one).
pub fn arm(
    tasks: &mut [Task],
    by: usize,
    target: usize,
    point: KillPoint,
) -> Result<(), KipcError> {
    if target == by || target == 0 {
        return Err(KipcError::IllegalTarget);
    }
    let armed = match point {
        KillPoint::Disarm => None,
        KillPoint::BeforeReply { operation } => Some(ArmedPoint::BeforeReply(operation)),
        KillPoint::AfterReply { operation } => Some(ArmedPoint::AfterReply(operation)),
        KillPoint::AtSyscall { nth } => Some(ArmedPoint::AtSyscall(nth)),
        KillPoint::AfterSeamcall { leaf } => Some(ArmedPoint::AfterSeamcall(leaf)),
        KillPoint::CorruptDurable { offset } => {
            corrupt_durable(tasks, target, offset)?;
            return Ok(());
        }
    };
    ARMED.with(|a| {
        *a = armed.map(|p| ArmedKill::new(target, p));
        ARMED_TASK.store(if a.is_some() { target } else { NONE }, Ordering::Relaxed);
    });
    let name = tasks[target].name();
    crate::kprintln!("inject: armed a kill of {name}: {point:?}");
    Ok(())
}

/// Inverts byte `offset` of `target`'s durable memory and kills it.
fn corrupt_durable(tasks: &mut [Task], target: usize, offset: u64) -> Result<(), KipcError> {
    let (base, size) = tasks[target].durable();
    if offset >= size {
        return Err(KipcError::BadRequest);
    }
    let at = base + offset;
    // Safety: `at` lies inside the target's durable region (checked just
    // above), RAM the image owns that the direct map covers; the target is
    // not running (the task table is locked and it is about to be faulted).
    unsafe {
        let p = crate::arch::paging::phys_to_virt(at);
        p.write_volatile(!p.read_volatile());
    }
    crate::kprintln!(
        "[kill] {}: inverted durable byte {offset:#x}; killing it",
        tasks[target].name()
    );
    force_fault(
        tasks,
        target,
        FaultInfo::Killed {
            cause: KillCause::CorruptedDurable,
            detail: offset,
        },
    );
    Ok(())
}

/// Counts a system call of the armed target; the kill to make (the armed
/// kill is then spent), if this call is its point.
pub fn armed_syscall(call: ArmedSyscall) -> Option<(When, KillCause)> {
    ARMED.with(|a| {
        let k = a.as_mut()?;
        let when = k.at_syscall(call)?;
        let cause = match (call, when) {
            (ArmedSyscall::Reply(_), When::Before) => KillCause::ArmedBeforeReply,
            (ArmedSyscall::Reply(_), When::After) => KillCause::ArmedAfterReply,
            _ => KillCause::ArmedSyscall,
        };
        *a = None;
        ARMED_TASK.store(NONE, Ordering::Relaxed);
        Some((when, cause))
    })
}

/// Whether `caller`'s admitted SEAMCALL of `leaf` is the armed kill's
/// point (the kill is then spent).
fn armed_seamcall(caller: usize, leaf: u16) -> bool {
    if !armed_task(caller) {
        return false;
    }
    ARMED.with(|a| {
        let hit = a.is_some_and(|k| k.target == caller && k.at_seamcall(leaf));
        if hit {
            *a = None;
            ARMED_TASK.store(NONE, Ordering::Relaxed);
        }
        hit
    })
}

/// Faults the armed kill's target.
pub fn armed_kill(tasks: &mut [Task], target: usize, cause: KillCause, detail: u64) {
    crate::kprintln!("[kill] armed kill of {}: {cause:?}", tasks[target].name());
    force_fault(tasks, target, FaultInfo::Killed { cause, detail });
}
