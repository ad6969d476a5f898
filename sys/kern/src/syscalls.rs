//! Syscall dispatch.
//!
//! Pattern: `syscall_entry_from_task` is the only function the SYSCALL stub
//! calls. It finds the handler for RAX, runs it against the task table,
//! turns a `UserError` into a fault of the caller, and returns the save
//! area of whichever task should run next. Handlers never switch tasks
//! themselves; they say whether the choice may have changed.

use core::sync::atomic::Ordering;

use abi::{FaultInfo, Sysnum, TaskId, TaskIndex, UsageError};

use crate::arch::entry::SavedState;
use crate::ipc::{self, Next, UserError};
use crate::task::{self, check_id, force_fault, with_tasks, IdCheck, Task, CURRENT};
use crate::umem::{self, USlice};
use crate::{irq, time};

/// Called by the SYSCALL stub with the caller's registers saved. Returns
/// the save area to resume.
pub extern "C" fn syscall_entry_from_task(_save: *mut SavedState) -> *const SavedState {
    crate::arch::cpu::check_entry_flags();
    let caller = CURRENT.load(Ordering::Relaxed);
    let resume = with_tasks(|tasks| {
        tasks[caller].save.resume_with_sysret = 1;
        let number = tasks[caller].save.rax;
        if Sysnum::from_raw(number) == Some(Sysnum::WaitForInterrupt) {
            tasks[caller].set_results(0, 0);
            return None;
        }
        let next = dispatch(tasks, caller, number);
        finish(tasks, caller, next)
    });
    match resume {
        Some(save) => save,
        // Halting must happen without the table borrowed: the interrupt
        // that ends the halt is handled in ring 0 and needs it. The same
        // holds when nothing is runnable after the syscall.
        None => task::halt_until_runnable(caller),
    }
}

/// Applies a syscall's outcome and returns the save area of the task to
/// resume, or `None` if no task is runnable.
fn finish(
    tasks: &mut [Task],
    caller: usize,
    result: Result<Next, UserError>,
) -> Option<*const SavedState> {
    let next = match result {
        Ok(n) => n,
        Err(UserError::Usage(e)) => {
            force_fault(tasks, caller, FaultInfo::SyscallUsage(e));
            Next::Reschedule
        }
    };
    if next == Next::Reschedule || !tasks[caller].is_runnable() {
        let chosen = task::select(tasks, caller)?;
        task::switch_to(tasks, chosen);
        return Some(core::ptr::addr_of!(tasks[chosen].save));
    }
    Some(core::ptr::addr_of!(tasks[caller].save))
}

fn dispatch(tasks: &mut [Task], caller: usize, number: u64) -> Result<Next, UserError> {
    let Some(sysnum) = Sysnum::from_raw(number) else {
        return Err(UsageError::BadSyscallNumber.into());
    };
    match sysnum {
        Sysnum::Send => ipc::send(tasks, caller),
        Sysnum::Recv => ipc::recv(tasks, caller),
        Sysnum::Reply => ipc::reply(tasks, caller),
        Sysnum::ReplyFault => ipc::reply_fault(tasks, caller),
        Sysnum::BorrowRead => ipc::borrow(tasks, caller, false),
        Sysnum::BorrowWrite => ipc::borrow(tasks, caller, true),
        Sysnum::BorrowInfo => ipc::borrow_info(tasks, caller),
        Sysnum::Post => post(tasks, caller),
        Sysnum::SetTimer => set_timer(tasks, caller),
        Sysnum::GetTimer => get_timer(tasks, caller),
        Sysnum::IrqControl => irq::control(tasks, caller),
        Sysnum::IrqStatus => irq::status(tasks, caller),
        Sysnum::Panic => panic(tasks, caller),
        Sysnum::RefreshTaskId => refresh_task_id(tasks, caller),
        Sysnum::Log => log(tasks, caller),
        Sysnum::LogFrame => log_frame(tasks, caller),
        Sysnum::Seamcall => crate::seam::syscall(tasks, caller),
        // Handled before dispatch, since it must not hold the table.
        Sysnum::WaitForInterrupt => Ok(Next::Same),
    }
}

/// POST: `rdi` target, `rsi` bits.
///
/// Only along the manifest's edges (`posts`): every bit must be one the
/// manifest lets the caller post to that target, or nothing is posted and
/// the caller gets `IPC_REFUSED`. A task may post anything to itself. The
/// kernel's own posts (faults, restart notices, IRQs, timers) do not come
/// through here.
fn post(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let target = TaskId(s.rdi as u32);
    let bits = s.rsi;
    let index = usize::from(target.index().0);
    if index < tasks.len() && index != caller && !tasks[caller].may_post(index, bits) {
        tasks[caller].set_results(u64::from(abi::IPC_REFUSED), 0);
        return Ok(Next::Same);
    }
    match check_id(tasks, target) {
        IdCheck::OutOfRange => Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(code) => {
            tasks[caller].set_results(u64::from(code), 0);
            Ok(Next::Same)
        }
        IdCheck::Live(i) => {
            tasks[caller].set_results(0, 0);
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

/// SET_TIMER: `rdi` enabled, `rsi` deadline, `rdx` bits.
fn set_timer(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let (enabled, deadline, bits) = (s.rdi, s.rsi, s.rdx);
    let t = &mut tasks[caller];
    t.timer = if enabled != 0 {
        Some((deadline, bits))
    } else {
        None
    };
    t.set_results(0, 0);
    // A deadline already past fires at once.
    Ok(if time::fire_timers(tasks) {
        Next::Reschedule
    } else {
        Next::Same
    })
}

/// GET_TIMER → `rdi` now, `rsi` deadline, `rdx` armed, `r10` bits.
fn get_timer(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let now = time::now();
    let t = &mut tasks[caller];
    let (deadline, armed, bits) = match t.timer {
        Some((d, b)) => (d, 1, b),
        None => (0, 0, 0),
    };
    t.save.rax = 0;
    t.save.rdi = now;
    t.save.rsi = deadline;
    t.save.rdx = armed;
    t.save.r10 = bits;
    Ok(Next::Same)
}

/// PANIC: `rdi`/`rsi` message.
fn panic(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let message = USlice::new(s.rdi, s.rsi.min(abi::PANIC_MESSAGE_MAX as u64));
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

/// REFRESH_TASK_ID: `rdi` index → `rax` id.
fn refresh_task_id(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let index = tasks[caller].save.rdi;
    let index = usize::try_from(index)
        .ok()
        .filter(|&i| i < tasks.len())
        .ok_or(UsageError::TaskOutOfRange)?;
    let id = TaskId::new(TaskIndex(index as u16), tasks[index].generation());
    tasks[caller].set_results(u64::from(id.0), 0);
    Ok(Next::Same)
}

/// LOG: `rdi`/`rsi` bytes.
fn log(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    const LOG_MAX: usize = 256;
    let s = &tasks[caller].save;
    let bytes = USlice::new(s.rdi, s.rsi.min(LOG_MAX as u64));
    if !tasks[caller].can_access(bytes, false) {
        return Err(UsageError::InvalidSlice.into());
    }
    let mut buf = [0u8; LOG_MAX];
    let n = bytes.len as usize;
    // Safety: checked readable above; bounded by the buffer.
    unsafe { umem::read_into(bytes.base, &mut buf[..n]) };
    crate::console::task_line(tasks[caller].desc.name, &buf[..n]);
    crate::console::klog::announce();
    tasks[caller].set_results(0, 0);
    Ok(Next::Same)
}

/// LOG_FRAME: `rdi`/`rsi` one encoded defmt frame, written to COM2 tagged
/// with the caller's index. A frame over the limit is dropped whole (a cut
/// frame could not be decoded) and the kernel says so in its own log.
fn log_frame(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    use crate::console::klog;
    let (base, len) = (tasks[caller].save.rdi, tasks[caller].save.rsi);
    tasks[caller].set_results(0, 0);
    if len > klog::FRAME_MAX as u64 {
        defmt::warn!(
            "task {=str}: defmt frame of {=u64} bytes dropped (limit {=usize})",
            tasks[caller].desc.name,
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
