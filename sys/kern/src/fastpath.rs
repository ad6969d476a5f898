//! The syscall fast path: the null syscall and the common SEND, RECV and
//! REPLY, finished without the generic dispatcher.
//!
//! Pattern: [`try_fast`] runs before the generic dispatch (and only when
//! neither kill injector watches the caller: the chaos target and an
//! armed kill's target always go the generic way, so they still see every
//! syscall). Each fast handler decodes its argument words once, then tests
//! everything the generic handler would test for this case. If any test
//! fails, or the call is one it does not handle, it answers
//! [`Fast::Declined`] having changed nothing, and the generic path runs
//! the call from the start and gives the exact answer (the error code or
//! fault, in the generic order of checks). So the fast path never decides
//! an error; it only finishes calls that succeed.
//!
//! What each handler takes, and why that is enough:
//! - REFRESH_TASK_ID with an index in the table.
//! - SEND to a task (not the kernel) with at most `MAX_LEASES` leases (the
//!   table copied once out of the caller's memory and every entry checked
//!   against its regions by the generic `ipc::copy_leases`; a table or an
//!   entry that is not the caller's is generic), an operation that fits 16
//!   bits, message
//!   readable and reply buffer writable by the caller, a manifest edge
//!   (`may_send_to`), the target's generation current, and the target
//!   already blocked in an open RECV or one closed on the caller, whose
//!   buffer was checked writable when it blocked. Anything else (a dead
//!   code, `IPC_REFUSED`, a usage fault, a target not waiting) is generic.
//! - Open RECV with a writable buffer and no pending notification in its
//!   mask (notifications come first: generic). It takes the most important
//!   waiting sender by the generic rule, or blocks if another task is
//!   runnable.
//! - REPLY to a live task awaiting the caller's reply, with a readable
//!   message that fits the reply buffer the client gave at SEND (too big
//!   is a fault: generic; a stale or not-waiting peer is silently ignored:
//!   generic).
//! - REPLY_RECV whose REPLY half the REPLY handler would take and whose
//!   RECV half the open-RECV handler would (both checked before either
//!   commits, with the same helpers); the RECV then takes a waiting sender
//!   or blocks (the client just answered is runnable, so it never halts).
//!
//! - BORROW_READ / BORROW_WRITE / BORROW_INFO, GET_TIMER and SET_TIMER:
//!   the generic handlers themselves (`ipc::borrow`, `ipc::borrow_info`,
//!   `time::get_timer`, `time::set_timer`, which also turns a relative
//!   deadline into a tick), which check everything before they change
//!   anything; only the generic entry is skipped (a SET_TIMER flag word
//!   with a reserved bit is declined before the handler runs). A
//!   refusal (a dead or stale lender, DEFECT, a fault of the borrower) is
//!   declined and reported by the generic path. A lease is the copy checked
//!   at the lender's SEND, so a lying lender cannot change it.
//!
//! Invariants: the state changes are the generic ones (`Task` methods),
//! so the runnable and sending sets stay exact; the next task is chosen
//! by `task::select`, the scheduler's one rule, whenever the generic path
//! would reschedule, and the caller resumes directly only where the
//! generic path answers `Next::Same` with the caller still runnable (or
//! the rule picks the caller again).
//!
//! The fast path runs while the caller's lazy registers (RBX, RBP, R14,
//! R15, RSP; `arch::entry`) are still in the CPU, not in its save area:
//! it reads only the caller's number and argument words and writes only
//! its result words, and it never halts (a RECV that would block with
//! nothing else runnable is declined: the generic path halts). Its answer
//! says whether the caller goes on ([`Fast::Same`]) or which task was
//! switched to ([`Fast::Switch`]); the entry stub completes the caller's
//! save area in the second case before the other task runs.

use abi::syscall::{
    BorrowArgs, BorrowInfoArgs, Received, RecvArgs, RefreshTaskIdArgs, RefreshedTaskId, ReplyArgs,
    ReplyRecvArgs, Response, SendArgs, SetTimerArgs, USlice,
};
use abi::{Sysnum, TaskId, TaskIndex, MAX_LEASES};

use crate::breakdown::{self, Phase};
use crate::outcome::{Next, UserError};
use crate::task::{self, current_id, SchedState, Task, TaskState};
use crate::umem;

/// What the fast path did with a syscall.
pub enum Fast {
    /// Not taken; nothing changed. The generic path handles the call.
    Declined,
    /// Done, and the caller goes on (by the entry stub's short exit).
    Same,
    /// Done, and this other task runs next (already switched to).
    Switch(usize),
}

const SEND: u64 = Sysnum::Send as u64;
const RECV: u64 = Sysnum::Recv as u64;
const REPLY: u64 = Sysnum::Reply as u64;
const REPLY_RECV: u64 = Sysnum::ReplyRecv as u64;
const REFRESH_TASK_ID: u64 = Sysnum::RefreshTaskId as u64;
const BORROW_READ: u64 = Sysnum::BorrowRead as u64;
const BORROW_WRITE: u64 = Sysnum::BorrowWrite as u64;
const BORROW_INFO: u64 = Sysnum::BorrowInfo as u64;
const GET_TIMER: u64 = Sysnum::GetTimer as u64;
const SET_TIMER: u64 = Sysnum::SetTimer as u64;

/// Finishes syscall `number` of `caller` if it is one the fast path
/// handles and every check passes; see the module doc. Never reads or
/// writes the caller's lazy registers (`arch::entry`): they are not in its
/// save area while this runs.
#[inline(always)]
pub fn try_fast(tasks: &mut [Task], caller: usize, number: u64) -> Fast {
    match number {
        REFRESH_TASK_ID => refresh_task_id(tasks, caller),
        SEND => send(tasks, caller),
        RECV => recv(tasks, caller),
        REPLY => reply(tasks, caller),
        REPLY_RECV => reply_recv(tasks, caller),
        BORROW_READ => borrow(tasks, caller, false),
        BORROW_WRITE => borrow(tasks, caller, true),
        BORROW_INFO => borrow_info(tasks, caller),
        GET_TIMER => get_timer(tasks, caller),
        SET_TIMER => set_timer(tasks, caller),
        _ => Fast::Declined,
    }
}

/// The caller goes on (the generic `Next::Same` with the caller runnable).
#[inline(always)]
fn same() -> Fast {
    breakdown::mark(Phase::Schedule);
    Fast::Same
}

/// The generic `Next::Reschedule`: the scheduler's choice, switched to.
/// Only called with a runnable task in the table (each handler makes sure
/// of it before it changes anything), so there is always a choice.
#[inline(always)]
fn reschedule(tasks: &mut [Task], caller: usize) -> Fast {
    let Some(chosen) = task::select(tasks, caller) else {
        nothing_runnable()
    };
    let next = if chosen == caller {
        Fast::Same
    } else {
        task::switch_to(tasks, chosen);
        Fast::Switch(chosen)
    };
    breakdown::mark(Phase::Schedule);
    next
}

/// A fast handler found nothing runnable after it had committed: it checks
/// for a runnable task before changing anything, so this is a kernel bug.
#[cold]
#[inline(never)]
fn nothing_runnable() -> ! {
    panic!("syscall fast path: nothing runnable after a committed call");
}

/// REFRESH_TASK_ID, the null syscall: an index in the table.
#[inline(always)]
fn refresh_task_id(tasks: &mut [Task], caller: usize) -> Fast {
    let args = RefreshTaskIdArgs::from_regs(&tasks[caller].syscall_args());
    breakdown::mark(Phase::Decode);
    let Some(index) = usize::try_from(args.index)
        .ok()
        .filter(|&i| i < tasks.len())
    else {
        return Fast::Declined;
    };
    breakdown::mark(Phase::Check);
    let id = TaskId::new(TaskIndex(index as u16), tasks[index].generation());
    tasks[caller].set_syscall_results(RefreshedTaskId { id }.to_regs());
    breakdown::mark(Phase::Transfer);
    same()
}

/// SEND to a task already waiting in RECV.
#[inline(always)]
fn send(tasks: &mut [Task], caller: usize) -> Fast {
    let args = SendArgs::from_regs(&tasks[caller].syscall_args());
    breakdown::mark(Phase::Decode);
    // Two copies of the handler, so a message without leases (the bare
    // round trip, `status`) carries no lease code at all.
    if args.leases.len == 0 {
        send_with::<false>(tasks, caller, args)
    } else {
        send_with::<true>(tasks, caller, args)
    }
}

/// [`send`] of a message with leases (`LEASED`) or without.
#[inline(always)]
fn send_with<const LEASED: bool>(tasks: &mut [Task], caller: usize, args: SendArgs) -> Fast {
    if args.target == TaskId::KERNEL
        || (LEASED && args.leases.len > MAX_LEASES as u64)
        || args.operation > u64::from(u16::MAX)
    {
        return Fast::Declined;
    }
    let callee = usize::from(args.target.index().0);
    let me = current_id(tasks, caller);
    let (Some(c), true) = (tasks.get(callee), tasks[caller].may_send_to(callee)) else {
        return Fast::Declined;
    };
    // Only a live target (a stale generation is the generic dead code)
    // that waits for this sender.
    if c.generation() != args.target.generation() {
        return Fast::Declined;
    }
    let TaskState::Healthy(SchedState::InRecv(from)) = c.state() else {
        return Fast::Declined;
    };
    if from.is_some() && from != Some(me) {
        return Fast::Declined;
    }
    // Checked writable when the callee blocked; a word that no longer
    // decodes would be a kernel bug, and the generic path copes with it.
    let Ok(recv) = RecvArgs::from_regs(&c.syscall_args()) else {
        return Fast::Declined;
    };
    let t = &tasks[caller];
    if !t.can_access(args.message, false) || !t.can_access(args.reply, true) {
        return Fast::Declined;
    }
    // Checked not to exceed `MAX_LEASES` above (0 without `LEASED`).
    let count = if LEASED { args.leases.len as usize } else { 0 };
    let leases = if LEASED {
        let Some(table) = crate::ipc::copy_leases(t, args.leases.base, count) else {
            return Fast::Declined;
        };
        Some(table)
    } else {
        None
    };
    breakdown::mark(Phase::Check);
    let n = args.message.len.min(recv.buffer.len);
    // Most requests carry no message (`status`): no copy to set up.
    if n != 0 {
        // Safety: the message was checked readable by the caller just above,
        // the buffer writable by the callee when it blocked in RECV; regions
        // never change. The callee waits in RECV, so it is not the caller.
        unsafe { umem::copy_between_tasks(args.message.base, recv.buffer.base, n as usize) };
    }
    let s = &mut tasks[caller];
    // The checked copy is what BORROW uses from now on; without leases the
    // copy of the last table is emptied, as the generic SEND does, so
    // BORROW finds nothing stale.
    match &leases {
        Some(table) => s.lend(&table[..count]),
        None => s.lend(&[]),
    }
    s.set_healthy_state(SchedState::InReply(args.target));
    let r = &mut tasks[callee];
    r.set_syscall_results(
        Received {
            sender: me,
            // Checked to fit 16 bits above.
            operation: args.operation,
            message_len: args.message.len,
            response_capacity: args.reply.len,
            lease_count: count as u64,
        }
        .to_regs(),
    );
    r.set_healthy_state(SchedState::Runnable);
    breakdown::mark(Phase::Transfer);
    reschedule(tasks, caller)
}

/// Open RECV: takes a waiting sender, or blocks.
#[inline(always)]
fn recv(tasks: &mut [Task], caller: usize) -> Fast {
    let Ok(args) = RecvArgs::from_regs(&tasks[caller].syscall_args()) else {
        return Fast::Declined;
    };
    breakdown::mark(Phase::Decode);
    if !open_recv_checked(&tasks[caller], &args) {
        return Fast::Declined;
    }
    let sender = crate::ipc::most_important_sender(tasks, caller, current_id(tasks, caller));
    // Blocking with nothing else runnable halts in the kernel: the
    // generic path's business (the fast path never halts).
    if sender.is_none() && !task::any_runnable_but(caller) {
        return Fast::Declined;
    }
    breakdown::mark(Phase::Check);
    take_or_block(tasks, caller, sender, &args);
    breakdown::mark(Phase::Transfer);
    match sender {
        Some(_) => same(),
        None => reschedule(tasks, caller),
    }
}

/// RECV's checks for the fast path: an open receive into a buffer the
/// caller may write, with no notification pending in its mask
/// (notifications come first: generic).
#[inline(always)]
fn open_recv_checked(t: &Task, args: &RecvArgs) -> bool {
    args.sender.is_none()
        && t.can_access(args.buffer, true)
        && t.pending_notifications(args.notification_mask) == 0
}

/// Completes an open RECV that passed [`open_recv_checked`]: takes
/// `sender` (the most important waiting sender, by the generic rule) or,
/// with none, blocks the caller.
#[inline(always)]
fn take_or_block(tasks: &mut [Task], caller: usize, sender: Option<usize>, args: &RecvArgs) {
    match sender {
        Some(s) => crate::ipc::deliver(tasks, s, caller, args.buffer),
        None => tasks[caller].block_in_recv(None, args.notification_mask),
    }
}

/// REPLY to a task waiting for it.
#[inline(always)]
fn reply(tasks: &mut [Task], caller: usize) -> Fast {
    let Ok(args) = ReplyArgs::from_regs(&tasks[caller].syscall_args()) else {
        return Fast::Declined;
    };
    breakdown::mark(Phase::Decode);
    let Some((client, reply_buf)) = reply_checked(tasks, caller, &args) else {
        return Fast::Declined;
    };
    breakdown::mark(Phase::Check);
    deliver_reply(tasks, client, &args, reply_buf);
    breakdown::mark(Phase::Transfer);
    reschedule(tasks, caller)
}

/// REPLY's checks for the fast path: the peer is live and waits for the
/// caller's reply, and the message is the caller's to read and fits the
/// reply buffer the client gave at SEND (too big is a fault: generic; a
/// stale or not-waiting peer is silently ignored: generic). Returns the
/// client and that buffer.
#[inline(always)]
fn reply_checked(tasks: &[Task], caller: usize, args: &ReplyArgs) -> Option<(usize, USlice)> {
    let (peer, message) = (args.peer, args.message);
    let p = usize::from(peer.index().0);
    let me = current_id(tasks, caller);
    let client = tasks.get(p)?;
    if client.generation() != peer.generation() || !client.is_awaiting_reply_from(me) {
        return None;
    }
    // The client's reply buffer, checked writable at its SEND.
    let reply_buf = SendArgs::from_regs(&client.syscall_args()).reply;
    if message.len > reply_buf.len || !tasks[caller].can_access(message, false) {
        return None;
    }
    Some((p, reply_buf))
}

/// Completes a REPLY that passed [`reply_checked`]: the message into the
/// client's reply buffer, its response, and the client runnable.
#[inline(always)]
fn deliver_reply(tasks: &mut [Task], client: usize, args: &ReplyArgs, reply_buf: USlice) {
    let message = args.message;
    // An empty reply (a bare acknowledgement) has no copy to set up.
    if message.len != 0 {
        // Safety: the message checked readable by the caller in
        // `reply_checked`; the client's reply buffer writable at its SEND;
        // regions never change. The client waits for the caller's reply,
        // so it is not the caller.
        unsafe { umem::copy_between_tasks(message.base, reply_buf.base, message.len as usize) };
    }
    let c = &mut tasks[client];
    c.respond(Response {
        code: args.code,
        value: message.len,
    });
    c.set_healthy_state(SchedState::Runnable);
}

/// REPLY_RECV: a REPLY the fast path takes followed by an open RECV it
/// takes. Both halves are checked before either changes anything (the
/// REPLY changes nothing the RECV's checks read: the client waited in
/// REPLY, not in SEND, and the notifications are the caller's own), so a
/// call with a half the generic path must answer is declined whole, and
/// the generic path runs REPLY then RECV from the start. The client just
/// answered is runnable, so the RECV may always block here.
#[inline(always)]
fn reply_recv(tasks: &mut [Task], caller: usize) -> Fast {
    let words = tasks[caller].syscall_args();
    let (Ok(reply), Ok(recv)) = (
        ReplyRecvArgs::reply_from_regs(&words),
        ReplyRecvArgs::recv_from_regs(&words),
    ) else {
        return Fast::Declined;
    };
    breakdown::mark(Phase::Decode);
    let Some((client, reply_buf)) = reply_checked(tasks, caller, &reply) else {
        return Fast::Declined;
    };
    if !open_recv_checked(&tasks[caller], &recv) {
        return Fast::Declined;
    }
    breakdown::mark(Phase::Check);
    deliver_reply(tasks, client, &reply, reply_buf);
    let sender = crate::ipc::most_important_sender(tasks, caller, current_id(tasks, caller));
    take_or_block(tasks, caller, sender, &recv);
    breakdown::mark(Phase::Transfer);
    reschedule(tasks, caller)
}

/// A generic handler that changes nothing before it refuses (BORROW_*,
/// GET_TIMER, SET_TIMER), run from the fast path so the call skips the
/// generic entry (the lazy registers' spill and the dispatcher): one copy
/// of each rule. A refusal is declined, and the generic path runs the
/// handler again to report it.
#[inline(always)]
fn finish(tasks: &mut [Task], caller: usize, done: Result<Next, UserError>) -> Fast {
    breakdown::mark(Phase::Transfer);
    match done {
        Ok(Next::Same) => same(),
        Ok(Next::Reschedule) => reschedule(tasks, caller),
        Err(_) => Fast::Declined,
    }
}

/// BORROW_READ (`write` false) or BORROW_WRITE.
#[inline(always)]
fn borrow(tasks: &mut [Task], caller: usize, write: bool) -> Fast {
    let args = BorrowArgs::from_regs(&tasks[caller].syscall_args());
    breakdown::mark(Phase::Decode);
    let done = crate::ipc::borrow(tasks, caller, &args, write);
    finish(tasks, caller, done)
}

/// BORROW_INFO.
#[inline(always)]
fn borrow_info(tasks: &mut [Task], caller: usize) -> Fast {
    let args = BorrowInfoArgs::from_regs(&tasks[caller].syscall_args());
    breakdown::mark(Phase::Decode);
    let done = crate::ipc::borrow_info(tasks, caller, &args);
    finish(tasks, caller, done)
}

/// GET_TIMER.
#[inline(always)]
fn get_timer(tasks: &mut [Task], caller: usize) -> Fast {
    let done = crate::time::get_timer(tasks, caller);
    finish(tasks, caller, done)
}

/// SET_TIMER (which fires every timer already due; the scheduler chooses
/// again if one fired). A malformed flag word is declined: the generic
/// path faults the caller.
#[inline(always)]
fn set_timer(tasks: &mut [Task], caller: usize) -> Fast {
    let Ok(args) = SetTimerArgs::from_regs(&tasks[caller].syscall_args()) else {
        return Fast::Declined;
    };
    breakdown::mark(Phase::Decode);
    let done = crate::time::set_timer(tasks, caller, &args);
    finish(tasks, caller, done)
}
