//! Syscall dispatch.
//!
//! Pattern: the SYSCALL stub calls `syscall_fast_entry` first, and
//! `syscall_slow_entry` only when the fast path declined (by then the
//! stub has completed the caller's save area: see `arch::entry`). In the
//! slow path `dispatch` decodes the caller's argument words into the
//! syscall's `abi::syscall` struct, runs its handler against the task
//! table and hands the handler's result to `settle`, which alone applies a
//! `UserError` (a recoverable code written back, or a fault of the caller;
//! see `outcome`); `resume` then returns the save area of whichever task
//! should run next. Handlers never switch tasks themselves; they say
//! whether the choice may have changed.
//!
//! The common calls (the null syscall, SEND to a waiting receiver, open
//! RECV, REPLY, REPLY_RECV) are finished first by `fastpath`, which takes a call only
//! when every check of the generic handler passes and otherwise leaves it
//! untouched for `dispatch`; see there. The fast path never touches the
//! caller's lazy registers (RBX, RBP, R14, R15, RSP), which are not in its
//! save area yet; the slow path runs only after they are.
//!
//! Each dispatch arm settles its own handler's result instead of merging
//! all arms' `Result`s into one value first: per arm the compiler sees the
//! handler's few constant outcomes and the common `Ok` needs no packing
//! (the null-syscall and IPC figures of `cargo xtask bench` depend on it).

use core::sync::atomic::Ordering;

use abi::syscall::{
    ArgRegs, BorrowArgs, BorrowInfoArgs, BytesArgs, IrqControlArgs, IrqStatusArgs, PostArgs,
    RecvArgs, RefreshTaskIdArgs, RefreshedTaskId, ReplyArgs, ReplyFaultArgs, ReplyRecvArgs,
    Response, SeamcallArgs, SendArgs, SetTimerArgs,
};
use abi::{FaultInfo, Sysnum, TaskId, TaskIndex, UsageError};

use kerncore::inject::{ArmedSyscall, When};

use crate::arch::entry::{SavedState, SyscallExit};
use crate::breakdown::{self, Phase};
use crate::fastpath::{self, Fast};
use crate::outcome::{Next, UserError};
use crate::task::{self, check_id, force_fault, with_tasks, IdCheck, Task, CURRENT};
use crate::umem::{self, USlice};
use crate::{ipc, irq, kipc, time};

/// Called by the SYSCALL stub with the caller's number and argument words
/// saved (its lazy registers still in the CPU: see `arch::entry`). Finishes
/// the call by the fast path or declines it; the stub then completes the
/// caller's save area unless the caller goes on, and runs
/// [`syscall_slow_entry`] after a decline.
///
/// Kept small: the fast path (`fastpath`) is inlined here, and everything
/// else is in [`syscall_slow_entry`], so the common calls do not pay for
/// the generic dispatcher's stack frame.
pub extern "C" fn syscall_fast_entry(save: *mut SavedState) -> SyscallExit {
    breakdown::begin();
    crate::arch::cpu::check_entry_flags();
    let caller = CURRENT.load(Ordering::Relaxed);
    // The kill injectors must see every syscall of their target, so it
    // never takes the fast path. Without `[kernel.chaos]` the first test
    // is a constant `false`, and without a Fault right in the image the
    // second one too.
    if crate::tables::CHAOS_TASK == Some(caller) || crate::inject::armed_task(caller) {
        return SyscallExit::slow(save);
    }
    let exit = with_tasks(|tasks| {
        let number = tasks[caller].syscall_number();
        breakdown::enter(number);
        match fastpath::try_fast(tasks, caller, number) {
            Fast::Declined => SyscallExit::slow(save),
            Fast::Same => SyscallExit::same(save),
            Fast::Switch(next) => SyscallExit::switch(save, tasks[next].save_area()),
        }
    });
    if !exit.resume.is_null() {
        breakdown::end();
    }
    exit
}

/// Called by the SYSCALL stub for every call the fast path declined, with
/// the caller's registers all saved. Returns the save area to resume.
pub extern "C" fn syscall_slow_entry(_save: *mut SavedState) -> *const SavedState {
    let caller = CURRENT.load(Ordering::Relaxed);
    let resume = with_tasks(|tasks| {
        let number = tasks[caller].syscall_number();
        if number == Sysnum::WaitForInterrupt as u64 {
            tasks[caller].respond(Response::OK);
            return None;
        }
        generic(tasks, caller, number)
    });
    match resume {
        Some(save) => {
            breakdown::end();
            save
        }
        // Halting must happen without the table borrowed: the interrupt
        // that ends the halt is handled in ring 0 and needs it. The same
        // holds when nothing is runnable after the syscall.
        None => task::halt_until_runnable(caller),
    }
}

/// Every syscall the fast path declined, and every syscall of a kill
/// injector's target: decoded, run and settled by `dispatch` (or through
/// an injector), then the task to resume chosen. `None`: nothing is
/// runnable.
#[inline(never)]
fn generic(tasks: &mut [Task], caller: usize, number: u64) -> Option<*const SavedState> {
    let next = if crate::tables::CHAOS_TASK == Some(caller) {
        chaos_dispatch(tasks, caller, number)
    } else if crate::inject::armed_task(caller) {
        armed_dispatch(tasks, caller, number)
    } else {
        dispatch(tasks, caller, number)
    };
    let r = resume(tasks, caller, next);
    breakdown::mark(Phase::Schedule);
    r
}

/// `dispatch` for the chaos target (`inject`): its syscall may be a kill
/// point, before the call runs or after it ran (its effects happened, the
/// task never sees the result).
#[cold]
#[inline(never)]
fn chaos_dispatch(tasks: &mut [Task], caller: usize, number: u64) -> Next {
    let pc = tasks[caller].saved_instruction_pointer();
    let Some((cause, ordinal)) = crate::inject::chaos(kerncore::inject::ChaosEvent::Syscall, pc)
    else {
        return dispatch(tasks, caller, number);
    };
    if cause == abi::KillCause::ChaosSyscallAfter {
        let _ = dispatch(tasks, caller, number);
        if !matches!(tasks[caller].state(), task::TaskState::Healthy(_)) {
            // The call itself faulted the task: keep that fault (the
            // restart that follows is the same).
            crate::kprintln!("[chaos] kill {ordinal}: the task's own fault came first");
            return Next::Reschedule;
        }
    }
    crate::inject::chaos_kill(tasks, caller, cause, ordinal);
    Next::Reschedule
}

/// `dispatch` for the target of an armed kill (`inject::arm`): this call
/// may be its point. A REPLY (or the REPLY half of a REPLY_RECV) is
/// identified by the operation of the call it answers, read from the
/// waiting caller's saved SEND arguments. A kill after the REPLY half of a
/// REPLY_RECV comes before its RECV half, as a kill between a REPLY and
/// the RECV that follows it would.
#[cold]
#[inline(never)]
fn armed_dispatch(tasks: &mut [Task], caller: usize, number: u64) -> Next {
    let sysnum = Sysnum::from_raw(number);
    let words = tasks[caller].syscall_args();
    let reply = match sysnum {
        Some(Sysnum::Reply) => ReplyArgs::from_regs(&words).ok(),
        Some(Sysnum::ReplyRecv) => ReplyRecvArgs::reply_from_regs(&words).ok(),
        _ => None,
    };
    let call = reply
        .and_then(|a| ipc::awaited_operation(tasks, caller, a.peer))
        .map_or(ArmedSyscall::Other, ArmedSyscall::Reply);
    let Some((when, cause)) = crate::inject::armed_syscall(call) else {
        return dispatch(tasks, caller, number);
    };
    if when == When::After {
        let _ = if sysnum == Some(Sysnum::ReplyRecv) {
            reply_half(tasks, caller, &words)
        } else {
            dispatch(tasks, caller, number)
        };
        if !matches!(tasks[caller].state(), task::TaskState::Healthy(_)) {
            return Next::Reschedule;
        }
    }
    crate::inject::armed_kill(tasks, caller, cause, number);
    Next::Reschedule
}

/// Applies a handler's result and says what the dispatcher does next.
///
/// The one place a `UserError` takes effect (through `apply_error`): a
/// recoverable code becomes the caller's result and it runs on; a usage
/// error faults it. Inlined into every dispatch arm so an `Ok` costs a
/// branch at most.
#[inline(always)]
fn settle(tasks: &mut [Task], caller: usize, result: Result<Next, UserError>) -> Next {
    match result {
        Ok(n) => n,
        Err(e) => apply_error(tasks, caller, e),
    }
}

/// The error half of `settle`, kept out of line: errors are rare and the
/// fault path is long.
#[cold]
#[inline(never)]
fn apply_error(tasks: &mut [Task], caller: usize, error: UserError) -> Next {
    match error {
        UserError::Recoverable(code) => {
            tasks[caller].respond(Response::code(code));
            Next::Same
        }
        UserError::Fault(e) => {
            force_fault(tasks, caller, FaultInfo::SyscallUsage(e));
            Next::Reschedule
        }
    }
}

/// Returns the save area of the task to resume after a syscall, or `None`
/// if no task is runnable.
#[inline(always)]
fn resume(tasks: &mut [Task], caller: usize, next: Next) -> Option<*const SavedState> {
    if next == Next::Reschedule || !tasks[caller].is_runnable() {
        let chosen = task::select(tasks, caller)?;
        task::switch_to(tasks, chosen);
        return Some(tasks[chosen].save_area());
    }
    Some(tasks[caller].save_area())
}

/// Decodes the caller's arguments for syscall `number` and runs its
/// handler. Decoding checks what the words alone can show (reserved bits,
/// unknown values) before the handler sees anything.
#[inline(always)]
fn dispatch(tasks: &mut [Task], caller: usize, number: u64) -> Next {
    let Some(sysnum) = Sysnum::from_raw(number) else {
        return settle(tasks, caller, Err(UsageError::BadSyscallNumber.into()));
    };
    // Each arm decodes its own words, so only the registers a syscall
    // uses are read (the null-syscall and IPC figures of `cargo xtask
    // bench` depend on it).
    let regs = |tasks: &[Task]| tasks[caller].syscall_args();
    // Runs one arm's handler (`?` on decoding included) and settles its
    // result right there.
    macro_rules! settled {
        ($body:block) => {{
            #[allow(clippy::redundant_closure_call)]
            let result: Result<Next, UserError> = (|| $body)();
            settle(tasks, caller, result)
        }};
    }
    match sysnum {
        Sysnum::Send => settled!({
            let args = SendArgs::from_regs(&regs(tasks));
            breakdown::mark(Phase::Decode);
            if args.target == TaskId::KERNEL {
                kipc::handle(tasks, caller, &args)
            } else {
                ipc::send(tasks, caller, &args)
            }
        }),
        Sysnum::Recv => settled!({
            let args = RecvArgs::from_regs(&regs(tasks))?;
            breakdown::mark(Phase::Decode);
            ipc::recv(tasks, caller, &args)
        }),
        Sysnum::Reply => settled!({
            let args = ReplyArgs::from_regs(&regs(tasks))?;
            breakdown::mark(Phase::Decode);
            ipc::reply(tasks, caller, &args)
        }),
        Sysnum::ReplyRecv => {
            let words = regs(tasks);
            let replied = reply_half(tasks, caller, &words);
            // A REPLY that faulted the caller ends the call: no RECV.
            if !tasks[caller].is_runnable() {
                return replied;
            }
            let received = recv_half(tasks, caller, &words);
            // The REPLY may have woken a more important client; the RECV's
            // own answer (even an error code) does not undo that.
            if replied == Next::Reschedule {
                Next::Reschedule
            } else {
                received
            }
        }
        Sysnum::ReplyFault => settled!({
            let args = ReplyFaultArgs::from_regs(&regs(tasks))?;
            ipc::reply_fault(tasks, caller, &args)
        }),
        Sysnum::BorrowRead | Sysnum::BorrowWrite => settled!({
            let args = BorrowArgs::from_regs(&regs(tasks));
            ipc::borrow(tasks, caller, &args, sysnum == Sysnum::BorrowWrite)
        }),
        Sysnum::BorrowInfo => settled!({
            let args = BorrowInfoArgs::from_regs(&regs(tasks));
            ipc::borrow_info(tasks, caller, &args)
        }),
        Sysnum::Post => settled!({
            let args = PostArgs::from_regs(&regs(tasks));
            post(tasks, caller, &args)
        }),
        Sysnum::SetTimer => settled!({
            let args = SetTimerArgs::from_regs(&regs(tasks))?;
            time::set_timer(tasks, caller, &args)
        }),
        Sysnum::GetTimer => settled!({ time::get_timer(tasks, caller) }),
        Sysnum::IrqControl => settled!({
            let args = IrqControlArgs::from_regs(&regs(tasks))?;
            irq::control(tasks, caller, &args)
        }),
        Sysnum::IrqStatus => settled!({
            let args = IrqStatusArgs::from_regs(&regs(tasks));
            irq::status(tasks, caller, &args)
        }),
        Sysnum::Panic => settled!({
            let args = BytesArgs::from_regs(&regs(tasks));
            panic(tasks, caller, &args)
        }),
        Sysnum::RefreshTaskId => settled!({
            let args = RefreshTaskIdArgs::from_regs(&regs(tasks));
            breakdown::mark(Phase::Decode);
            refresh_task_id(tasks, caller, &args)
        }),
        Sysnum::Log => settled!({
            let args = BytesArgs::from_regs(&regs(tasks));
            log(tasks, caller, &args)
        }),
        Sysnum::LogFrame => settled!({
            let args = BytesArgs::from_regs(&regs(tasks));
            log_frame(tasks, caller, &args)
        }),
        Sysnum::Seamcall => settled!({
            let args = SeamcallArgs::from_regs(&regs(tasks));
            crate::seam::syscall(tasks, caller, &args)
        }),
        Sysnum::SeamcallStart => settled!({
            let args = SeamcallArgs::from_regs(&regs(tasks));
            crate::seam_async::start(tasks, caller, &args)
        }),
        Sysnum::SeamcallCollect => settled!({
            let args = SeamcallArgs::from_regs(&regs(tasks));
            crate::seam_async::collect(tasks, caller, args.cpu)
        }),
        // Handled before dispatch, since it must not hold the table.
        Sysnum::WaitForInterrupt => Next::Same,
    }
}

/// The REPLY half of REPLY_RECV: REPLY's decoding and handler, settled
/// as a REPLY (a fault of the caller included).
#[inline(always)]
fn reply_half(tasks: &mut [Task], caller: usize, words: &ArgRegs) -> Next {
    let result = ReplyRecvArgs::reply_from_regs(words)
        .map_err(UserError::from)
        .and_then(|args| {
            breakdown::mark(Phase::Decode);
            ipc::reply(tasks, caller, &args)
        });
    settle(tasks, caller, result)
}

/// The RECV half of REPLY_RECV, run once the REPLY half has left the
/// caller runnable: RECV's decoding and handler, settled as a RECV.
#[inline(always)]
fn recv_half(tasks: &mut [Task], caller: usize, words: &ArgRegs) -> Next {
    let result = ReplyRecvArgs::recv_from_regs(words)
        .map_err(UserError::from)
        .and_then(|args| ipc::recv(tasks, caller, &args));
    settle(tasks, caller, result)
}

/// POST.
///
/// Only along the manifest's edges (`posts`): every bit must be one the
/// manifest lets the caller post to that target, or nothing is posted and
/// the caller gets `IPC_REFUSED`. A task may post anything to itself. The
/// kernel's own posts (faults, restart notices, IRQs, timers) do not come
/// through here.
fn post(tasks: &mut [Task], caller: usize, args: &PostArgs) -> Result<Next, UserError> {
    let (target, bits) = (args.target, args.bits);
    let index = usize::from(target.index().0);
    if index < tasks.len() && index != caller && !tasks[caller].may_post(index, bits) {
        return Err(UserError::Recoverable(abi::IPC_REFUSED));
    }
    match check_id(tasks, target) {
        IdCheck::OutOfRange => Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(code) => Err(UserError::Recoverable(code)),
        IdCheck::Live(i) => {
            tasks[caller].respond(Response::OK);
            let woke = task::post(tasks, i, bits);
            Ok(
                if woke
                    && tasks[i]
                        .priority()
                        .is_more_important_than(tasks[caller].priority())
                {
                    Next::Reschedule
                } else {
                    Next::Same
                },
            )
        }
    }
}

/// PANIC: the message is kept (up to `PANIC_MESSAGE_MAX` bytes) for the
/// supervisor.
fn panic(tasks: &mut [Task], caller: usize, args: &BytesArgs) -> Result<Next, UserError> {
    let message = USlice::new(
        args.bytes.base,
        args.bytes.len.min(abi::PANIC_MESSAGE_MAX as u64),
    );
    if !tasks[caller].can_access(message, false) {
        return Err(UsageError::InvalidSlice.into());
    }
    let mut buf = [0u8; abi::PANIC_MESSAGE_MAX];
    let n = message.len as usize;
    // Safety: checked readable above; `n` is bounded by the buffer.
    unsafe { umem::read_into(message.base, &mut buf[..n]) };
    tasks[caller].set_panic_message(&buf[..n]);
    force_fault(tasks, caller, FaultInfo::Panic);
    Ok(Next::Reschedule)
}

/// REFRESH_TASK_ID.
fn refresh_task_id(
    tasks: &mut [Task],
    caller: usize,
    args: &RefreshTaskIdArgs,
) -> Result<Next, UserError> {
    let index = usize::try_from(args.index)
        .ok()
        .filter(|&i| i < tasks.len())
        .ok_or(UsageError::TaskOutOfRange)?;
    breakdown::mark(Phase::Check);
    let id = TaskId::new(TaskIndex(index as u16), tasks[index].generation());
    tasks[caller].set_syscall_results(RefreshedTaskId { id }.to_regs());
    breakdown::mark(Phase::Transfer);
    Ok(Next::Same)
}

/// LOG: one line (up to 256 bytes kept), tagged with the caller's name.
fn log(tasks: &mut [Task], caller: usize, args: &BytesArgs) -> Result<Next, UserError> {
    const LOG_MAX: usize = 256;
    let bytes = USlice::new(args.bytes.base, args.bytes.len.min(LOG_MAX as u64));
    if !tasks[caller].can_access(bytes, false) {
        return Err(UsageError::InvalidSlice.into());
    }
    let mut buf = [0u8; LOG_MAX];
    let n = bytes.len as usize;
    // Safety: checked readable above; bounded by the buffer.
    unsafe { umem::read_into(bytes.base, &mut buf[..n]) };
    crate::console::task_line(tasks[caller].name(), &buf[..n]);
    crate::console::klog::announce();
    tasks[caller].respond(Response::OK);
    Ok(Next::Same)
}

/// LOG_FRAME: one encoded defmt frame, written to COM2 tagged
/// with the caller's index. A frame over the limit is dropped whole (a cut
/// frame could not be decoded) and the kernel says so in its own log.
fn log_frame(tasks: &mut [Task], caller: usize, args: &BytesArgs) -> Result<Next, UserError> {
    use crate::console::klog;
    let (base, len) = (args.bytes.base, args.bytes.len);
    tasks[caller].respond(Response::OK);
    if len > klog::FRAME_MAX as u64 {
        defmt::warn!(
            "task {=str}: defmt frame of {=u64} bytes dropped (limit {=usize})",
            tasks[caller].name(),
            len,
            klog::FRAME_MAX
        );
        return Ok(Next::Same);
    }
    let bytes = USlice::new(base, len);
    if !tasks[caller].can_access(bytes, false) {
        return Err(UsageError::InvalidSlice.into());
    }
    let mut buf = [0u8; klog::FRAME_MAX];
    let n = bytes.len as usize;
    // Safety: checked readable above; bounded by the buffer.
    unsafe { umem::read_into(bytes.base, &mut buf[..n]) };
    klog::task_frame(caller, &buf[..n]);
    Ok(Next::Same)
}
