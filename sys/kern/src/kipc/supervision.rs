//! Task supervision over kernel IPC: reading a task's status and panic
//! message, restarting it, faulting it, finding faulted tasks.
//!
//! Every request names its target by index and needs the matching
//! [`Right`] over that target from the manifest ([`target`]); the scan for
//! faulted tasks reports only tasks the caller holds the status right
//! over, since finding one reveals its state.

use abi::kipc::{KillPoint, KipcError, Right};
use abi::FaultInfo;

use super::answer::{arg, Answer};
use crate::outcome::Next;
use crate::task::{current_id, force_fault, restart, Task, TaskState};

/// The supervision requests (`abi::kipc::Kipcnum` documents each).
pub enum Request {
    ReadTaskStatus,
    RestartTask,
    FaultTask,
    FindFaultedTask,
    ReadPanicMessage,
    /// Arms a kill of a task at a point of its work (`crate::inject`).
    ArmKill,
    /// The supervisor says the run is over (the image's verdict is out):
    /// the kernel ends it as the manifest's `on-finish` says.
    EndRun,
}

/// The task named by request word `index`, if `caller` holds `right` over
/// it.
fn target(
    tasks: &[Task],
    caller: usize,
    right: Right,
    args: &[u64],
    index: usize,
) -> Result<usize, KipcError> {
    let target = usize::try_from(arg(args, index)?).map_err(|_| KipcError::NoSuchTask)?;
    if target >= tasks.len() {
        return Err(KipcError::NoSuchTask);
    }
    if !tasks[caller].holds_right(right, target) {
        return Err(KipcError::Denied);
    }
    Ok(target)
}

/// Carries out one supervision request from `caller`.
///
/// # Errors
/// The [`KipcError`] the caller gets; nothing happened.
pub fn execute<'a>(
    tasks: &mut [Task],
    caller: usize,
    request: Request,
    args: &[u64],
    out: &'a mut [u8],
) -> Result<Answer<'a>, KipcError> {
    match request {
        Request::ReadTaskStatus => {
            let i = target(tasks, caller, Right::Status, args, 0)?;
            let w = tasks[i].abi_state().to_words();
            let generation = u64::from(tasks[i].generation().0);
            Ok(Answer::words(
                out,
                &[w[0], w[1], w[2], w[3], w[4], generation],
            ))
        }
        Request::RestartTask => {
            let i = target(tasks, caller, Right::Restart, args, 0)?;
            let start = arg(args, 1)? != 0;
            restart(tasks, i, start);
            Ok(Answer::empty(Next::Reschedule))
        }
        Request::FaultTask => {
            let i = target(tasks, caller, Right::Fault, args, 0)?;
            if i == caller || i == 0 {
                return Err(KipcError::IllegalTarget);
            }
            let by = current_id(tasks, caller);
            force_fault(tasks, i, FaultInfo::Injected(by));
            Ok(Answer::empty(Next::Reschedule))
        }
        Request::ArmKill => {
            let i = target(tasks, caller, Right::Fault, args, 0)?;
            let point =
                KillPoint::from_words(arg(args, 1)?, arg(args, 2)?).ok_or(KipcError::BadRequest)?;
            crate::inject::arm(tasks, caller, i, point)?;
            Ok(Answer::empty(Next::Reschedule))
        }
        Request::FindFaultedTask => {
            let start = arg(args, 0)?;
            let t = &tasks[caller];
            let found = (usize::try_from(start).unwrap_or(usize::MAX)..tasks.len())
                .find(|&i| {
                    t.holds_right(Right::Status, i)
                        && matches!(tasks[i].state(), TaskState::Faulted { .. })
                })
                .map_or(u64::MAX, |i| i as u64);
            Ok(Answer::words(out, &[found]))
        }
        Request::ReadPanicMessage => {
            let i = target(tasks, caller, Right::PanicMessage, args, 0)?;
            let m = tasks[i].panic_message();
            let n = m.len().min(out.len());
            out[..n].copy_from_slice(&m[..n]);
            Ok(Answer::bytes(&out[..n]))
        }
        Request::EndRun => {
            crate::fail::end_run();
            Ok(Answer::empty(Next::Same))
        }
    }
}
