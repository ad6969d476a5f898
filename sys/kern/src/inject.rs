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
//! A kill is an ordinary fault (`FaultInfo::Killed`) delivered through
//! `task::force_fault`, so the supervisor sees and restarts it like any
//! other. The decisions themselves are `kerncore::inject` (host-tested);
//! this module only holds their state and logs each kill.

use abi::{FaultInfo, KillCause};
use kerncore::inject::{Chaos, ChaosEvent, ChaosKill, KillRule, KillTable, When};

use crate::sync::SpinLock;
use crate::tables::{CHAOS, TDX};
use crate::task::{force_fault, Task};

static KILLS: SpinLock<KillTable> = SpinLock::new(KillTable::new());
static CHAOS_STATE: SpinLock<Option<Chaos>> = SpinLock::new(None);

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
pub fn seamcall(leaf: u16, cpu: usize) -> Option<When> {
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
