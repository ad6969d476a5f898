//! Synchronous IPC: SEND, RECV, REPLY, REPLY_FAULT and the BORROW family.
//!
//! Pattern: each syscall is `fn(tasks, caller) -> Result<Next, UserError>`.
//! Arguments are read from the caller's saved registers (they stay there
//! while a task is blocked, so a delayed delivery reads them then); results
//! are written back into saved registers. A `UserError::Usage` faults the
//! caller; everything recoverable is a response code.
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

use abi::{
    lease_attr, ReplyFaultReason, TaskId, ULease, UsageError, DEFECT, IPC_REFUSED, MAX_LEASES,
    ULEASE_SIZE,
};

use crate::task::{check_id, current_id, force_fault, IdCheck, SchedState, Task, TaskState};
use crate::umem::{self, USlice};

/// What the dispatcher does after a syscall.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// Return to the caller.
    Same,
    /// Something changed; pick the most important runnable task.
    Reschedule,
}

/// A syscall the caller got wrong.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserError {
    Usage(UsageError),
}

impl From<UsageError> for UserError {
    fn from(e: UsageError) -> Self {
        UserError::Usage(e)
    }
}

/// The saved SEND arguments of a task blocked in SEND or REPLY. They are
/// kernel storage (the task cannot run while blocked); the lease table is
/// not among them: its checked copy is in the task ([`Task::lease`]).
struct SendArgs {
    operation: u16,
    message: USlice,
    reply: USlice,
}

fn send_args(t: &Task) -> SendArgs {
    let s = &t.save;
    SendArgs {
        operation: s.rsi as u16,
        message: USlice::new(s.rdx, s.r10),
        reply: USlice::new(s.r8, s.r9),
    }
}

/// Copies the lease table `table` (`count` entries, `count <=
/// MAX_LEASES`) out of `lender`'s memory and checks every entry against
/// its regions. `None`: the table or an entry is not the lender's.
fn copy_leases(lender: &Task, table: u64, count: usize) -> Option<[ULease; MAX_LEASES]> {
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

/// SEND: `rdi` target, `rsi` operation, `rdx`/`r10` message, `r8`/`r9`
/// reply buffer, `r12`/`r13` lease table.
pub fn send(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let target = TaskId(tasks[caller].save.rdi as u32);
    if target == TaskId::KERNEL {
        return crate::kipc::handle(tasks, caller);
    }
    let args = send_args(&tasks[caller]);
    let (table, count) = (tasks[caller].save.r12, tasks[caller].save.r13);
    if tasks[caller].save.rsi > u64::from(u16::MAX) {
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
        tasks[caller].set_results(u64::from(IPC_REFUSED), 0);
        return Ok(Next::Same);
    }
    let callee = match check_id(tasks, target) {
        IdCheck::OutOfRange => return Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(code) => {
            tasks[caller].set_results(u64::from(code), 0);
            return Ok(Next::Same);
        }
        IdCheck::Live(i) => i,
    };
    match &leases {
        Some(l) => tasks[caller].lend(&l[..count as usize]),
        None => tasks[caller].lend(&[]),
    }
    tasks[caller].set_healthy_state(SchedState::InSend(target));
    let me = current_id(tasks, caller);
    if let TaskState::Healthy(SchedState::InRecv(from)) = tasks[callee].state() {
        if from.is_none() || from == Some(me) {
            deliver(tasks, caller, callee);
        }
    }
    Ok(Next::Reschedule)
}

/// Copies the message of `sender` (blocked in SEND) into the RECV buffer
/// of `receiver` (blocked in RECV) and completes the receiver's RECV.
fn deliver(tasks: &mut [Task], sender: usize, receiver: usize) {
    let args = send_args(&tasks[sender]);
    let r = &tasks[receiver].save;
    let buffer = USlice::new(r.rdi, r.rsi);
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
    r.save.rax = 0;
    r.save.rdi = u64::from(sender_id.0);
    r.save.rsi = u64::from(args.operation);
    r.save.rdx = args.message.len;
    r.save.r10 = args.reply.len;
    r.save.r8 = lease_count as u64;
    r.set_healthy_state(SchedState::Runnable);
    tasks[sender].set_healthy_state(SchedState::InReply(receiver_id));
}

/// RECV: `rdi`/`rsi` buffer, `rdx` notification mask, `r10` sender
/// (bit 63 set for a closed receive).
pub fn recv(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let buffer = USlice::new(s.rdi, s.rsi);
    let mask = s.rdx;
    let specific = if s.r10 & abi::RECV_CLOSED != 0 {
        if s.r10 & !(abi::RECV_CLOSED | 0xFFFF_FFFF) != 0 {
            return Err(UsageError::ReservedBits.into());
        }
        Some(TaskId(s.r10 as u32))
    } else if s.r10 != 0 {
        return Err(UsageError::ReservedBits.into());
    } else {
        None
    };
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
            IdCheck::Dead(code) => {
                tasks[caller].set_results(u64::from(code), 0);
                return Ok(Next::Same);
            }
            IdCheck::Live(i) => {
                if tasks[i].is_sending_to(me) {
                    tasks[caller].set_healthy_state(SchedState::Runnable);
                    deliver(tasks, i, caller);
                    return Ok(Next::Same);
                }
            }
        },
        None => {
            if let Some(sender) = most_important_sender(tasks, caller, me) {
                tasks[caller].set_healthy_state(SchedState::Runnable);
                deliver(tasks, sender, caller);
                return Ok(Next::Same);
            }
        }
    }
    tasks[caller].block_in_recv(specific, mask);
    Ok(Next::Reschedule)
}

/// The most important task blocked sending to `me`, scanning round-robin
/// from just after the receiver so equal priorities take turns.
fn most_important_sender(tasks: &[Task], receiver: usize, me: TaskId) -> Option<usize> {
    let n = tasks.len();
    let mut best: Option<usize> = None;
    for k in 1..n {
        let i = (receiver + k) % n;
        if !tasks[i].is_sending_to(me) {
            continue;
        }
        match best {
            Some(b)
                if !tasks[i]
                    .priority()
                    .is_more_important_than(tasks[b].priority()) => {}
            _ => best = Some(i),
        }
    }
    best
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

/// REPLY: `rdi` peer, `rsi` response code, `rdx`/`r10` message.
pub fn reply(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let peer = TaskId(s.rdi as u32);
    let code = s.rsi;
    let message = USlice::new(s.rdx, s.r10);
    if code > u64::from(u32::MAX) {
        return Err(UsageError::ReservedBits.into());
    }
    if !tasks[caller].can_access(message, false) {
        return Err(UsageError::InvalidSlice.into());
    }
    let Some(p) = reply_peer(tasks, caller, peer)? else {
        return Ok(Next::Same);
    };
    let reply_buf = send_args(&tasks[p]).reply;
    if message.len > reply_buf.len {
        // The client said at SEND how much it can take; exceeding it is
        // the server's mistake.
        return Err(UsageError::ReplyTooBig.into());
    }
    if message.len != 0 {
        // Safety: the server's message checked readable just above; the
        // client's reply buffer checked writable at its SEND.
        unsafe { umem::copy(message.base, reply_buf.base, message.len as usize) };
    }
    let t = &mut tasks[p];
    t.set_results(code, message.len);
    t.set_healthy_state(SchedState::Runnable);
    Ok(Next::Reschedule)
}

/// REPLY_FAULT: `rdi` peer, `rsi` reason.
pub fn reply_fault(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let peer = TaskId(s.rdi as u32);
    let reason = u32::try_from(s.rsi)
        .ok()
        .and_then(ReplyFaultReason::from_raw)
        .ok_or(UsageError::ReservedBits)?;
    let Some(p) = reply_peer(tasks, caller, peer)? else {
        return Ok(Next::Same);
    };
    let me = current_id(tasks, caller);
    force_fault(tasks, p, abi::FaultInfo::FromServer(me, reason));
    Ok(Next::Reschedule)
}

/// The lender of a borrow and its lease, or the response code to return.
fn find_lease(
    tasks: &[Task],
    caller: usize,
    need: u32,
) -> Result<Result<(usize, abi::ULease), u32>, UserError> {
    let s = &tasks[caller].save;
    let lender = TaskId(s.rdi as u32);
    let index = s.rsi;
    let l = match check_id(tasks, lender) {
        IdCheck::OutOfRange => return Err(UsageError::TaskOutOfRange.into()),
        IdCheck::Dead(code) => return Ok(Err(code)),
        IdCheck::Live(i) => i,
    };
    let me = current_id(tasks, caller);
    if !tasks[l].is_awaiting_reply_from(me) {
        return Ok(Err(DEFECT));
    }
    // The copy made and checked at the lender's SEND; its memory is never
    // read again for this.
    let Some(lease) = tasks[l].lease(index) else {
        return Err(UsageError::LeaseOutOfRange.into());
    };
    if lease.attributes & need != need {
        return Ok(Err(DEFECT));
    }
    Ok(Ok((l, lease)))
}

/// BORROW_READ / BORROW_WRITE: `rdi` lender, `rsi` lease index, `rdx`
/// offset, `r10`/`r8` the caller's buffer. Returns `rax` code, `rdi` bytes.
pub fn borrow(tasks: &mut [Task], caller: usize, write: bool) -> Result<Next, UserError> {
    let need = if write {
        lease_attr::WRITE
    } else {
        lease_attr::READ
    };
    let (lender, lease) = match find_lease(tasks, caller, need)? {
        Ok(found) => found,
        Err(code) => {
            tasks[caller].set_results(u64::from(code), 0);
            return Ok(Next::Same);
        }
    };
    let s = &tasks[caller].save;
    let offset = s.rdx;
    let local = USlice::new(s.r10, s.r8);
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
    // buffer was checked just above.
    unsafe {
        if write {
            umem::copy(local.base, remote, n as usize);
        } else {
            umem::copy(remote, local.base, n as usize);
        }
    }
    let _ = lender;
    tasks[caller].set_results(0, n);
    Ok(Next::Same)
}

/// BORROW_INFO: `rdi` lender, `rsi` index → `rax` code, `rdi` attributes,
/// `rsi` length.
pub fn borrow_info(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    match find_lease(tasks, caller, 0)? {
        Ok((_, lease)) => {
            let s = &mut tasks[caller].save;
            s.rax = 0;
            s.rdi = u64::from(lease.attributes);
            s.rsi = lease.len;
        }
        Err(code) => tasks[caller].set_results(u64::from(code), 0),
    }
    Ok(Next::Same)
}
