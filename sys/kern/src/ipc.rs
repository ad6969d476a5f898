//! Synchronous IPC: SEND, RECV, REPLY, REPLY_FAULT and the BORROW family.
//! (REPLY_RECV has no handler of its own: the dispatcher runs [`reply`]
//! and then [`recv`], settling each as the separate call; see
//! `syscalls`.)
//!
//! Pattern: each syscall is `fn(tasks, caller, &args) -> Result<Next,
//! UserError>`, with `args` the caller's argument words already decoded
//! into their `abi::syscall` struct by the dispatcher. A blocked task's
//! arguments stay in its saved words, so a delayed delivery decodes them
//! then (`SendArgs`/`RecvArgs::from_regs` of the blocked task); results are
//! written back as words of an `abi::syscall` result. A recoverable answer
//! (a dead code, `IPC_REFUSED`, `DEFECT`) is returned as
//! `UserError::Recoverable` for the dispatcher to hand back, a misuse as
//! `UserError::Fault`.
//!
//! Blame: when a transfer touches two tasks, each side's memory claims are
//! checked when that side makes them (the sender's at SEND, the receiver's
//! at RECV), so a delivery itself cannot fail on memory.
//!
//! Leases are read from the sender's memory exactly once: SEND copies the
//! table into the sender's kernel-side lease store ([`Task::lend`]) and
//! checks each entry there; RECV reports that copy's count and BORROW_*
//! use only that copy. A task (or a server it lent its table to) writing
//! the table afterwards changes nothing the kernel will honour.
//!
//! Edges: SEND goes only to a task the manifest lists in the sender's
//! `task-slots` (or `downhill-slots`); anything else is answered
//! `IPC_REFUSED` without a delivery. REPLY needs no edge: it only ever
//! reaches a task blocked waiting for the caller.

use abi::syscall::{
    BorrowArgs, BorrowInfoArgs, LeaseInfo, Received, RecvArgs, ReplyArgs, ReplyFaultArgs, Response,
    SendArgs,
};
use abi::{lease_attr, TaskId, ULease, UsageError, DEFECT, IPC_REFUSED, MAX_LEASES, ULEASE_SIZE};

use crate::breakdown::{self, Phase};
use crate::outcome::{Next, UserError};
use crate::task::{check_id, current_id, force_fault, IdCheck, SchedState, Task, TaskState};
use crate::umem::{self, USlice};

/// The SEND arguments of a task blocked in SEND or REPLY. Its saved words
/// are kernel storage (the task cannot run while blocked); the lease table
/// is not read from them again: its checked copy is in the task
/// ([`Task::lease`]).
fn blocked_send(t: &Task) -> SendArgs {
    SendArgs::from_regs(&t.syscall_args())
}

/// Copies the lease table `table` (`count` entries, `count <=
/// MAX_LEASES`) out of `lender`'s memory and checks every entry against
/// its regions. `None`: the table or an entry is not the lender's.
pub(crate) fn copy_leases(lender: &Task, table: u64, count: usize) -> Option<[ULease; MAX_LEASES]> {
    let mut out = [ULease::default(); MAX_LEASES];
    let bytes = USlice::new(table, (count * ULEASE_SIZE) as u64);
    if !lender.can_access(bytes, false) {
        return None;
    }
    let mut raw = [0u8; MAX_LEASES * ULEASE_SIZE];
    // Safety: checked readable just above; `count <= MAX_LEASES` keeps the
    // copy inside `raw`. This is the only read of the table.
    unsafe { umem::read_into(table, &mut raw[..count * ULEASE_SIZE]) };
    for (lease, entry) in out
        .iter_mut()
        .zip(raw.chunks_exact(ULEASE_SIZE))
        .take(count)
    {
        *lease = umem::decode_lease(entry);
        if !umem::lease_is_valid(lender, lease) {
            return None;
        }
    }
    Some(out)
}

/// SEND to a task (the dispatcher routes a SEND to the kernel to
/// `kipc`).
#[inline]
pub fn send(tasks: &mut [Task], caller: usize, args: &SendArgs) -> Result<Next, UserError> {
    let target = args.target;
    let (table, count) = (args.leases.base, args.leases.len);
    if args.operation > u64::from(u16::MAX) {
        return Err(UsageError::ReservedBits.into());
    }
    if count > MAX_LEASES as u64 {
        return Err(UsageError::TooManyLeases.into());
    }
    let t = &tasks[caller];
    if !t.can_access(args.message, false) || !t.can_access(args.reply, true) {
        return Err(UsageError::InvalidSlice.into());
    }
    // Most messages carry no lease: skip building an empty copy.
    let leases = if count == 0 {
        None
    } else {
        Some(copy_leases(t, table, count as usize).ok_or(UsageError::InvalidSlice)?)
    };
    // The edge is checked before the generation, so a task without one
    // learns nothing about the target (not even that it restarted).
    let index = usize::from(target.index().0);
    if index < tasks.len() && !tasks[caller].may_send_to(index) {
        return Err(UserError::Recoverable(IPC_REFUSED));
    }
    let callee = match check_id(tasks, target) {
        IdCheck::OutOfRange => return Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(code) => return Err(UserError::Recoverable(code)),
        IdCheck::Live(i) => i,
    };
    breakdown::mark(Phase::Check);
    match &leases {
        Some(l) => tasks[caller].lend(&l[..count as usize]),
        None => tasks[caller].lend(&[]),
    }
    tasks[caller].set_healthy_state(SchedState::InSend(target));
    let me = current_id(tasks, caller);
    if let TaskState::Healthy(SchedState::InRecv(from)) = tasks[callee].state() {
        if from.is_none() || from == Some(me) {
            // The callee's RECV arguments were decoded and checked when it
            // blocked, so they decode again; an empty buffer would be the
            // safe reading if they somehow did not.
            let buffer = RecvArgs::from_regs(&tasks[callee].syscall_args())
                .map_or(USlice::new(0, 0), |r| r.buffer);
            deliver(tasks, caller, callee, buffer);
        }
    }
    breakdown::mark(Phase::Transfer);
    Ok(Next::Reschedule)
}

/// Copies the message of `sender` (blocked in SEND) into `buffer`, the
/// RECV buffer of `receiver` (blocked in RECV, or making that RECV now),
/// and completes the receiver's RECV.
#[inline]
pub(crate) fn deliver(tasks: &mut [Task], sender: usize, receiver: usize, buffer: USlice) {
    let args = blocked_send(&tasks[sender]);
    let n = args.message.len.min(buffer.len);
    if n != 0 {
        // Safety: the sender's message was checked readable at SEND and the
        // receiver's buffer writable at RECV; regions never change.
        unsafe { umem::copy(args.message.base, buffer.base, n as usize) };
    }
    let sender_id = current_id(tasks, sender);
    let receiver_id = current_id(tasks, receiver);
    let lease_count = tasks[sender].lease_count();
    let r = &mut tasks[receiver];
    r.set_syscall_results(
        Received {
            sender: sender_id,
            // Checked to fit 16 bits at SEND.
            operation: args.operation,
            message_len: args.message.len,
            response_capacity: args.reply.len,
            lease_count: lease_count as u64,
        }
        .to_regs(),
    );
    r.set_healthy_state(SchedState::Runnable);
    tasks[sender].set_healthy_state(SchedState::InReply(receiver_id));
}

/// RECV.
#[inline]
pub fn recv(tasks: &mut [Task], caller: usize, args: &RecvArgs) -> Result<Next, UserError> {
    let (buffer, mask, specific) = (args.buffer, args.notification_mask, args.sender);
    if !tasks[caller].can_access(buffer, true) {
        return Err(UsageError::InvalidSlice.into());
    }

    // Notifications first: they are how interrupts and timers get through
    // even to a busy server.
    let fired = tasks[caller].take_notifications(mask);
    if fired != 0 {
        crate::task::deliver_notification(&mut tasks[caller], fired);
        return Ok(Next::Same);
    }

    let me = current_id(tasks, caller);
    match specific {
        Some(TaskId::KERNEL) => {}
        Some(from) => match check_id(tasks, from) {
            IdCheck::OutOfRange => return Err(UsageError::TaskOutOfRange.into()),
            IdCheck::Dead(code) => return Err(UserError::Recoverable(code)),
            IdCheck::Live(i) => {
                if tasks[i].is_sending_to(me) {
                    tasks[caller].set_healthy_state(SchedState::Runnable);
                    deliver(tasks, i, caller, buffer);
                    return Ok(Next::Same);
                }
            }
        },
        None => {
            if let Some(sender) = most_important_sender(tasks, caller, me) {
                tasks[caller].set_healthy_state(SchedState::Runnable);
                deliver(tasks, sender, caller, buffer);
                return Ok(Next::Same);
            }
        }
    }
    breakdown::mark(Phase::Check);
    tasks[caller].block_in_recv(specific, mask);
    breakdown::mark(Phase::Transfer);
    Ok(Next::Reschedule)
}

/// The most important task blocked sending to `me`, round-robin from just
/// after the receiver so equal priorities take turns. Visits only the
/// tasks blocked in SEND (`task::sending_set`).
pub(crate) fn most_important_sender(tasks: &[Task], receiver: usize, me: TaskId) -> Option<usize> {
    let others = crate::task::sending_set() & !(1u64 << receiver);
    kerncore::sched::pick(others, receiver, |i| {
        let t = tasks.get(i)?;
        t.is_sending_to(me).then(|| t.priority().0)
    })
}

/// Finds the peer of a REPLY or REPLY_FAULT: live, and waiting for the
/// caller's reply. `Ok(None)` means "silently ignore".
fn reply_peer(tasks: &[Task], caller: usize, peer: TaskId) -> Result<Option<usize>, UserError> {
    match check_id(tasks, peer) {
        IdCheck::OutOfRange => Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(_) => Ok(None),
        IdCheck::Live(i) => {
            let me = current_id(tasks, caller);
            if tasks[i].is_awaiting_reply_from(me) {
                Ok(Some(i))
            } else {
                Ok(None)
            }
        }
    }
}

/// The operation number of the call `peer` is waiting on `caller` to
/// answer, if it is live and waiting for exactly that (what a REPLY from
/// `caller` to `peer` would answer).
pub fn awaited_operation(tasks: &[Task], caller: usize, peer: TaskId) -> Option<u16> {
    let p = reply_peer(tasks, caller, peer).ok()??;
    u16::try_from(blocked_send(&tasks[p]).operation).ok()
}

/// REPLY.
#[inline]
pub fn reply(tasks: &mut [Task], caller: usize, args: &ReplyArgs) -> Result<Next, UserError> {
    let (peer, code, message) = (args.peer, args.code, args.message);
    if !tasks[caller].can_access(message, false) {
        return Err(UsageError::InvalidSlice.into());
    }
    let Some(p) = reply_peer(tasks, caller, peer)? else {
        return Ok(Next::Same);
    };
    let reply_buf = blocked_send(&tasks[p]).reply;
    if message.len > reply_buf.len {
        // The client said at SEND how much it can take; exceeding it is
        // the server's mistake.
        return Err(UsageError::ReplyTooBig.into());
    }
    breakdown::mark(Phase::Check);
    if message.len != 0 {
        // Safety: the server's message checked readable just above; the
        // client's reply buffer checked writable at its SEND.
        unsafe { umem::copy(message.base, reply_buf.base, message.len as usize) };
    }
    let t = &mut tasks[p];
    t.respond(Response {
        code,
        value: message.len,
    });
    t.set_healthy_state(SchedState::Runnable);
    breakdown::mark(Phase::Transfer);
    Ok(Next::Reschedule)
}

/// REPLY_FAULT.
pub fn reply_fault(
    tasks: &mut [Task],
    caller: usize,
    args: &ReplyFaultArgs,
) -> Result<Next, UserError> {
    let reason = args.reason;
    let Some(p) = reply_peer(tasks, caller, args.peer)? else {
        return Ok(Next::Same);
    };
    let me = current_id(tasks, caller);
    force_fault(tasks, p, abi::FaultInfo::FromServer(me, reason));
    Ok(Next::Reschedule)
}

/// Lease `index` of `lender` with at least the attributes `need`, as
/// checked at the lender's SEND.
pub(crate) fn find_lease(
    tasks: &[Task],
    caller: usize,
    lender: TaskId,
    index: u64,
    need: u32,
) -> Result<ULease, UserError> {
    let l = match check_id(tasks, lender) {
        IdCheck::OutOfRange => return Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(code) => return Err(UserError::Recoverable(code)),
        IdCheck::Live(i) => i,
    };
    let me = current_id(tasks, caller);
    if !tasks[l].is_awaiting_reply_from(me) {
        return Err(UserError::Recoverable(DEFECT));
    }
    // The copy made and checked at the lender's SEND; its memory is never
    // read again for this.
    let Some(lease) = tasks[l].lease(index) else {
        return Err(UsageError::LeaseOutOfRange.into());
    };
    if lease.attributes & need != need {
        return Err(UserError::Recoverable(DEFECT));
    }
    Ok(lease)
}

/// BORROW_READ / BORROW_WRITE: answers the number of bytes copied.
#[inline]
pub fn borrow(
    tasks: &mut [Task],
    caller: usize,
    args: &BorrowArgs,
    write: bool,
) -> Result<Next, UserError> {
    let need = if write {
        lease_attr::WRITE
    } else {
        lease_attr::READ
    };
    let lease = find_lease(tasks, caller, args.lender, args.index, need)?;
    let (offset, local) = (args.offset, args.buffer);
    if offset > lease.len {
        return Err(UsageError::OffsetOutOfRange.into());
    }
    // Reading from the lease means writing into our own buffer.
    if !tasks[caller].can_access(local, !write) {
        return Err(UsageError::InvalidSlice.into());
    }
    let n = local.len.min(lease.len - offset);
    let remote = lease.base + offset;
    // Safety: the lease was checked against the lender's regions at SEND
    // (with its attributes), `offset + n` stays inside it, and the local
    // buffer was checked just above. The lender waits for the caller's
    // reply, so it is another task, whose memory never overlaps the
    // caller's.
    unsafe {
        if write {
            umem::copy_between_tasks(local.base, remote, n as usize);
        } else {
            umem::copy_between_tasks(remote, local.base, n as usize);
        }
    }
    tasks[caller].respond(Response { code: 0, value: n });
    Ok(Next::Same)
}

/// BORROW_INFO.
#[inline]
pub fn borrow_info(
    tasks: &mut [Task],
    caller: usize,
    args: &BorrowInfoArgs,
) -> Result<Next, UserError> {
    let lease = find_lease(tasks, caller, args.lender, args.index, 0)?;
    let info = LeaseInfo {
        attributes: lease.attributes,
        len: lease.len,
    };
    tasks[caller].set_syscall_results(info.to_regs());
    Ok(Next::Same)
}
