//! Asynchronous SEAMCALLs: start a call on CPU n, keep running, be told of
//! its end by a notification, collect its result words.
//!
//! Pattern: one slot per CPU, touched only by the boot CPU (system calls
//! and interrupts, both with interrupts off):
//!
//! ```text
//!   Idle ──START──▶ Running{call, ticket} ──answer seen──▶ Done{call, words} ──COLLECT──▶ Idle
//!                        │                        (notification posted)
//!                        └── owner restarted meanwhile: result dropped, slot Idle,
//!                            the owner's new incarnation notified ("CPU free")
//! ```
//!
//! START passes the same gate as the synchronous call (`seamgate::admit`
//! with the CPU's own gate slot and a fresh sequence number) and the same
//! kill hooks (`inject::seamcall`: `before` kills at START without running
//! the call; `after` lets the module run it and kills the owner when its
//! end is seen, so the owner never sees the answer). The call then goes to
//! the CPU's mailbox as `Op::SeamcallAnnounced`: the CPU runs it, answers
//! in the mailbox and interrupts the boot CPU (`smp::DONE_VECTOR`); the
//! boot CPU also looks on every timer tick, so a lost interrupt delays a
//! completion by one tick at most. The boot CPU (index 0) runs a call at
//! START itself, so its end is seen at once.
//!
//! Invariants:
//! - At most one asynchronous call per CPU, from START until COLLECT (or
//!   until it is dropped): a second START on that CPU is `CPU_BUSY`, and a
//!   CPU whose mailbox still owes a timed-out synchronous answer is busy too.
//! - Only leaves without operands in the caller's memory may start
//!   (`seamgate::may_run_async`): the module never writes into a task that
//!   may be restarted while its call runs.
//! - A result is collected only by the task incarnation that started it
//!   (index and generation); anyone else gets `NOTHING_TO_COLLECT`.
//! - A restart of the owner never stops the call (the CPU finishes it: a
//!   SEAMCALL cannot be cancelled); its result is dropped, because the new
//!   incarnation cannot know what it asked. The new incarnation is woken
//!   with the same bit when the CPU is free again, and learns what the
//!   module did by asking it (tdx-host re-attaches through its bring-up
//!   record; TDMR.INIT simply continues from the module's progress).
//! - A synchronous SEAMCALL on a CPU with an asynchronous call in flight
//!   first waits (bounded, like any per-CPU request) for that call to end
//!   and settles it, then runs: the synchronous path behaves as before.

use core::sync::atomic::{AtomicUsize, Ordering};

use abi::seamcall::{self, SeamcallOutcome};
use abi::syscall::{SeamcallArgs as SyscallArgs, SeamcallResult};
use abi::{capability, TaskId, UsageError};
use kerncore::inject::When;

use crate::arch::smp::{self, Op, Posted, Ticket, MAX_CPUS};
use crate::outcome::{Next, UserError};
use crate::seamgate;
use crate::sync::SpinLock;
use crate::task::{self, current_id, Task};

/// Who started a call, whom to tell, and whether to kill them instead.
#[derive(Copy, Clone, Debug)]
struct Call {
    owner: TaskId,
    /// The notification bits posted at the end (one bit).
    bits: u64,
    leaf: u16,
    kill_after: bool,
}

#[derive(Copy, Clone, Debug)]
enum Slot {
    Idle,
    Running { call: Call, ticket: Ticket },
    Done { call: Call, words: [u64; 8] },
}

static SLOTS: SpinLock<[Slot; MAX_CPUS]> = SpinLock::new([Slot::Idle; MAX_CPUS]);
/// Slots in `Running`: the timer tick's cheap test.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

fn respond(tasks: &mut [Task], caller: usize, outcome: SeamcallOutcome) {
    let [outcome, words @ ..] = outcome.to_raw();
    tasks[caller].set_syscall_results(SeamcallResult { outcome, words }.to_regs());
}

/// SEAMCALL_START (register use in `abi::seamcall`).
pub fn start(tasks: &mut [Task], caller: usize, call: &SyscallArgs) -> Result<Next, UserError> {
    if !tasks[caller].has_capability(capability::SEAMCALL) {
        return Err(UserError::Recoverable(seamcall::DENIED as u32));
    }
    if call.cpu & !seamcall::START_RDI_MASK != 0 {
        return Err(UsageError::ReservedBits.into());
    }
    let cpu = (call.cpu & 0xFFFF_FFFF) as usize;
    let bits = 1u64 << (call.cpu >> seamcall::START_BIT_SHIFT);
    if !seamgate::may_run_async(call.leaf) {
        respond(tasks, caller, SeamcallOutcome::LeafRefused);
        return Ok(Next::Same);
    }
    if cpu >= MAX_CPUS || smp::apic_id_of(cpu).is_none() {
        respond(tasks, caller, SeamcallOutcome::NoSuchCpu);
        return Ok(Next::Same);
    }
    let free = SLOTS.with(|s| match s[cpu] {
        Slot::Idle => true,
        // A dead incarnation's uncollected result: nobody can collect it.
        Slot::Done { call, .. }
            if current_id(tasks, usize::from(call.owner.index().0)) != call.owner =>
        {
            s[cpu] = Slot::Idle;
            true
        }
        _ => false,
    });
    if !free || smp::is_busy(cpu) {
        respond(tasks, caller, SeamcallOutcome::CpuBusy);
        return Ok(Next::Same);
    }
    let mut args = seamgate::module_args(call.leaf, call.inputs);
    // No leaf that may run asynchronously takes a KeyID-tagged operand, so
    // the gate needs no KeyID layout here (`None` would refuse one).
    let sequence = match seamgate::admit(&tasks[caller], &mut args, cpu, || None) {
        Ok(s) => s,
        Err(refusal) => {
            let words = refusal.to_words();
            let [outcome, words @ ..] = words;
            tasks[caller].set_syscall_results(SeamcallResult { outcome, words }.to_regs());
            return Ok(Next::Same);
        }
    };
    let leaf = call.leaf as u16;
    let kill = crate::inject::seamcall(caller, leaf, cpu);
    if kill == Some(When::Before) {
        crate::inject::kill_at_seamcall(tasks, caller, leaf, When::Before);
        return Ok(Next::Reschedule);
    }
    let this = Call {
        owner: current_id(tasks, caller),
        bits,
        leaf,
        kill_after: kill == Some(When::After),
    };
    let a = &args;
    let words = [a.rax, a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11, sequence];
    match smp::post_to(cpu, Op::SeamcallAnnounced, words) {
        Ok(Posted::Running(ticket)) => {
            SLOTS.with(|s| s[cpu] = Slot::Running { call: this, ticket });
            RUNNING.fetch_add(1, Ordering::Relaxed);
            respond(tasks, caller, SeamcallOutcome::Started);
            Ok(Next::Same)
        }
        Ok(Posted::Done(w)) => {
            respond(tasks, caller, SeamcallOutcome::Started);
            let killed = this.kill_after;
            finish(tasks, cpu, this, w);
            Ok(if killed { Next::Reschedule } else { Next::Same })
        }
        Err(smp::SmpError::NoSuchCpu) => {
            respond(tasks, caller, SeamcallOutcome::NoSuchCpu);
            Ok(Next::Same)
        }
        Err(smp::SmpError::Timeout) => {
            respond(tasks, caller, SeamcallOutcome::CpuBusy);
            Ok(Next::Same)
        }
    }
}

/// SEAMCALL_COLLECT: RDI = the CPU index.
pub fn collect(tasks: &mut [Task], caller: usize, cpu: u64) -> Result<Next, UserError> {
    if !tasks[caller].has_capability(capability::SEAMCALL) {
        return Err(UserError::Recoverable(seamcall::DENIED as u32));
    }
    // An answer whose interrupt has not arrived yet counts as arrived.
    poll(tasks);
    if !tasks[caller].is_runnable() {
        // Killed by its own call's `after` rule just now.
        return Ok(Next::Reschedule);
    }
    let me = current_id(tasks, caller);
    let cpu = usize::try_from(cpu).unwrap_or(usize::MAX);
    let answer = SLOTS.with(|s| match s.get(cpu).copied() {
        Some(Slot::Done { call, words }) if call.owner == me => {
            s[cpu] = Slot::Idle;
            Ok(words)
        }
        Some(Slot::Running { call, .. }) if call.owner == me => Err(SeamcallOutcome::InProgress),
        _ => Err(SeamcallOutcome::NothingToCollect),
    });
    match answer {
        Ok(w) => {
            let [outcome, words @ ..] = w;
            tasks[caller].set_syscall_results(SeamcallResult { outcome, words }.to_regs());
        }
        Err(o) => respond(tasks, caller, o),
    }
    Ok(Next::Same)
}

/// Settles every call whose CPU has answered. Returns whether a task woke
/// (or was killed): the caller reschedules then.
pub fn poll(tasks: &mut [Task]) -> bool {
    if RUNNING.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let mut changed = false;
    for cpu in 0..smp::cpu_count().min(MAX_CPUS) {
        let ended = SLOTS.with(|s| match s[cpu] {
            Slot::Running { call, ticket } => smp::answer(cpu, ticket).map(|w| (call, w)),
            _ => None,
        });
        if let Some((call, w)) = ended {
            changed |= finish(tasks, cpu, call, w);
        }
    }
    changed
}

/// Before a synchronous call on `cpu`: waits (bounded) for an asynchronous
/// call still running there and settles it. Returns whether a task woke or
/// was killed.
pub fn settle_cpu(tasks: &mut [Task], cpu: usize) -> bool {
    let running = SLOTS.with(|s| match s.get(cpu) {
        Some(&Slot::Running { call, ticket }) => Some((call, ticket)),
        _ => None,
    });
    match running.map(|(call, t)| (call, smp::wait(cpu, t))) {
        Some((call, Ok(w))) => finish(tasks, cpu, call, w),
        // Still running after the bound: the synchronous call finds the
        // mailbox busy and reports a timeout; the slot stays as it is.
        _ => false,
    }
}

/// The call on `cpu` ended with `words`: keep them for its owner and tell
/// it, or kill it (`after` rule), or drop them (the owner restarted).
fn finish(tasks: &mut [Task], cpu: usize, call: Call, words: [u64; 8]) -> bool {
    let was_running = SLOTS.with(|s| {
        let r = matches!(s[cpu], Slot::Running { .. });
        s[cpu] = Slot::Idle;
        r
    });
    if was_running {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
    let index = usize::from(call.owner.index().0);
    if current_id(tasks, index) != call.owner {
        // The result is dropped; the new incarnation may use the CPU now.
        return task::post(tasks, index, call.bits);
    }
    if call.kill_after {
        // The module ran the call; its owner never sees the answer.
        crate::inject::kill_at_seamcall(tasks, index, call.leaf, When::After);
        return true;
    }
    SLOTS.with(|s| s[cpu] = Slot::Done { call, words });
    task::post(tasks, index, call.bits)
}
