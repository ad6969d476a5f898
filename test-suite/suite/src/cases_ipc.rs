//! IPC semantics: send/receive/reply, open and closed receive, priorities,
//! dead codes, reply-fault, and leases in and out of bounds.

use abi::Sysnum;
use abi::{
    dead_response_code, extract_new_generation, lease_attr, FaultInfo, ReplyFaultReason, TaskState,
    UsageError, DEFECT, IPC_REFUSED,
};
use test_api::regs::{self, AllRegs};
use test_api::{assist as op, word32, word64};
use userlib::{
    hl, sys_borrow_read, sys_borrow_write, sys_recv, sys_recv_closed, sys_recv_open, sys_reply,
    sys_reply_fault, sys_send, Lease,
};

use crate::{call, collect_fault, id, state, words, Case, ASSIST, IDLE, PEER};

pub static CASES: &[Case] = &[
    ("ipc_send_reply_round_trip", send_reply_round_trip),
    (
        "ipc_registers_never_cross_between_tasks",
        registers_stay_with_their_task,
    ),
    (
        "ipc_server_sees_the_clients_reply_capacity",
        reply_capacity_respected,
    ),
    (
        "ipc_open_recv_takes_most_important_sender",
        open_recv_priority,
    ),
    ("ipc_closed_recv_takes_only_named_sender", closed_recv_named),
    (
        "ipc_closed_recv_from_stale_task_is_dead_code",
        closed_recv_stale,
    ),
    (
        "ipc_recv_reports_true_length_of_long_message",
        recv_truncation,
    ),
    ("ipc_send_to_restarted_task_is_dead_code", send_stale),
    (
        "ipc_send_to_waiting_receiver_by_stale_id_is_dead_code",
        send_stale_to_waiting_receiver,
    ),
    ("ipc_send_without_task_slot_is_refused", send_off_manifest),
    (
        "ipc_reply_to_restarted_client_is_ignored",
        reply_stale_ignored,
    ),
    (
        "ipc_client_of_restarted_server_wakes_with_dead_code",
        client_wakes_dead_code,
    ),
    ("ipc_reply_fault_faults_the_client", reply_fault_client),
    ("ipc_reply_too_big_faults_the_server", reply_too_big),
    ("lease_borrow_read_in_bounds", borrow_read),
    ("lease_borrow_write_in_bounds", borrow_write),
    (
        "lease_borrow_read_at_end_copies_what_is_left",
        borrow_partial,
    ),
    (
        "lease_borrow_info_reports_attributes_and_length",
        borrow_info,
    ),
    (
        "lease_write_to_read_only_lease_is_defect",
        write_read_only_defect,
    ),
    (
        "lease_read_from_write_only_lease_is_defect",
        read_write_only_defect,
    ),
    (
        "lease_borrow_from_task_not_waiting_is_defect",
        borrow_not_waiting,
    ),
    (
        "lease_offset_past_end_faults_the_borrower",
        borrow_offset_fault,
    ),
    ("lease_bad_index_faults_the_borrower", borrow_index_fault),
    ("lease_to_a_dead_client_gives_dead_code", lease_dead_client),
    (
        "lease_from_client_read_and_written_by_server",
        lease_server_side,
    ),
];

fn send_reply_round_trip() {
    let mut reply = [0u8; 8];
    let n = call(ASSIST, op::ECHO, b"abcdef", &mut reply, &[]);
    assert_eq!(&reply[..n], b"abcdef");
}

fn reply_capacity_respected() {
    // The echo server clips its reply to what we said we can take.
    let mut reply = [0u8; 3];
    let n = call(ASSIST, op::ECHO, b"abcdef", &mut reply, &[]);
    assert_eq!(n, 3);
    assert_eq!(&reply, b"abc");
}

/// Makes `index` send `back_op` (with `len` bytes) to us; it blocks in
/// SEND until we receive.
fn send_back(index: abi::TaskIndex, back_op: u16, len: u32) {
    call(
        index,
        op::SEND_BACK,
        &words([u32::from(back_op), len])[..8],
        &mut [],
        &[],
    );
}

fn open_recv_priority() {
    send_back(PEER, 71, 4);
    send_back(ASSIST, 72, 4);
    let mut buf = [0u8; 8];
    let first = sys_recv_open(&mut buf, 0);
    assert_eq!(
        (first.sender, first.operation),
        (id(ASSIST), 72),
        "assist is more important"
    );
    sys_reply(first.sender, 0, &[]);
    let second = sys_recv_open(&mut buf, 0);
    assert_eq!((second.sender, second.operation), (id(PEER), 71));
    sys_reply(second.sender, 0, &[]);
}

fn closed_recv_named() {
    send_back(PEER, 73, 4);
    send_back(ASSIST, 74, 4);
    let mut buf = [0u8; 8];
    let m = sys_recv_closed(&mut buf, 0, id(PEER)).expect("peer is alive");
    assert_eq!(
        (m.sender, m.operation),
        (id(PEER), 73),
        "closed receive must skip assist"
    );
    sys_reply(m.sender, 0, &[]);
    let m = sys_recv_open(&mut buf, 0);
    assert_eq!((m.sender, m.operation), (id(ASSIST), 74));
    sys_reply(m.sender, 0, &[]);
}

fn closed_recv_stale() {
    let old = id(PEER);
    hl::restart_task(PEER, true).unwrap();
    let err = sys_recv_closed(&mut [], 0, old).unwrap_err();
    assert_eq!(extract_new_generation(err), Some(id(PEER).generation()));
}

fn recv_truncation() {
    send_back(ASSIST, 75, 32);
    let mut buf = [0u8; 8];
    let m = sys_recv_open(&mut buf, 0);
    assert_eq!(m.message_len, 32, "RECV must report the length sent");
    assert_eq!(
        buf,
        [0, 1, 2, 3, 4, 5, 6, 7],
        "the buffer holds the first bytes"
    );
    sys_reply(m.sender, 0, &[]);
}

fn send_stale() {
    let old = id(ASSIST);
    hl::restart_task(ASSIST, true).unwrap();
    let (rc, n) = sys_send(old, op::ECHO, b"x", &mut [0; 4], &[]);
    assert_eq!(rc, dead_response_code(id(ASSIST).generation()));
    assert_eq!(n, 0);
    assert_eq!(
        id(ASSIST).generation().0,
        old.generation().0.wrapping_add(1)
    );
}

/// The kernel's fast path finishes a SEND to a task already waiting in
/// RECV; the generation check is one it must keep. A stale id of a task
/// that waits in an open RECV gets the dead code, and nothing is delivered.
fn send_stale_to_waiting_receiver() {
    let old = id(ASSIST);
    hl::restart_task(ASSIST, true).unwrap();
    // assist, more important than the suite, is back in its RECV already.
    assert_eq!(state(ASSIST), TaskState::InRecv(None));
    let (rc, n) = sys_send(old, op::ECHO, b"x", &mut [0; 4], &[]);
    assert_eq!(rc, dead_response_code(id(ASSIST).generation()));
    assert_eq!(n, 0);
    assert_eq!(state(ASSIST), TaskState::InRecv(None), "nothing delivered");
    // The live id still takes the fast path's way and is answered.
    call(ASSIST, op::ECHO, b"ok", &mut [0; 4], &[]);
}

/// SEND only along task slots: the suite has none to idle, and none to
/// itself. Refused at once, nothing delivered, the target undisturbed.
fn send_off_manifest() {
    let mut reply = [0u8; 4];
    let idle_before = state(IDLE);
    assert_eq!(
        sys_send(id(IDLE), 1, b"x", &mut reply, &[]),
        (IPC_REFUSED, 0)
    );
    assert_eq!(state(IDLE), idle_before);
    assert_eq!(
        sys_send(id(crate::SUITE), 1, b"x", &mut reply, &[]),
        (IPC_REFUSED, 0)
    );
    // A stale id to a task without an edge is refused too: the edge is
    // checked first, so the caller learns nothing about the target.
    let stale = abi::TaskId::new(IDLE, id(IDLE).generation().next());
    assert_eq!(sys_send(stale, 1, b"x", &mut reply, &[]), (IPC_REFUSED, 0));
}

fn reply_stale_ignored() {
    send_back(ASSIST, 76, 1);
    let mut buf = [0u8; 4];
    let m = sys_recv_open(&mut buf, 0);
    hl::restart_task(ASSIST, true).unwrap();
    // Must neither fault us nor disturb the new assist.
    sys_reply(m.sender, 0, b"late");
    sys_reply_fault(m.sender, ReplyFaultReason::BadMessageContents);
    assert_eq!(state(ASSIST), TaskState::InRecv(None));
}

fn client_wakes_dead_code() {
    // assist asks peer for a reply bigger than assist's 4-byte buffer: peer
    // faults, and assist sits in InReply(peer) until peer restarts.
    call(
        ASSIST,
        op::RELAY,
        &words([u32::from(PEER.0), u32::from(op::REPLY_TOO_BIG), 0, 0, 0])[..20],
        &mut [],
        &[],
    );
    assert_eq!(state(ASSIST), TaskState::InReply(id(PEER)));
    let f = collect_fault(PEER);
    assert_eq!(f, FaultInfo::SyscallUsage(UsageError::ReplyTooBig));
    // The restart woke assist with a dead code; it went back to its loop.
    assert_eq!(state(ASSIST), TaskState::InRecv(None));
}

fn reply_fault_client() {
    send_back(ASSIST, 77, 1);
    let mut buf = [0u8; 4];
    let m = sys_recv_open(&mut buf, 0);
    sys_reply_fault(m.sender, ReplyFaultReason::BadMessageContents);
    let f = collect_fault(ASSIST);
    assert_eq!(
        f,
        FaultInfo::FromServer(id(crate::SUITE), ReplyFaultReason::BadMessageContents)
    );
}

fn reply_too_big() {
    call(
        ASSIST,
        op::RELAY,
        &words([u32::from(PEER.0), u32::from(op::REPLY_TOO_BIG), 0, 0, 0])[..20],
        &mut [],
        &[],
    );
    assert_eq!(
        collect_fault(PEER),
        FaultInfo::SyscallUsage(UsageError::ReplyTooBig)
    );
}

fn borrow_read() {
    let data = *b"hello world";
    let mut out = [0u8; 40];
    let n = call(
        ASSIST,
        op::BORROW_READ,
        &words([0, 2, 5])[..12],
        &mut out,
        &[Lease::read_only(&data)],
    );
    assert_eq!((word32(&out, 0), word32(&out, 1)), (0, 5));
    assert_eq!(&out[8..n], b"llo w");
}

fn borrow_write() {
    let mut data = [0u8; 8];
    let mut msg = words([0, 3]);
    msg[8..10].copy_from_slice(b"XY");
    let mut out = [0u8; 8];
    call(
        ASSIST,
        op::BORROW_WRITE,
        &msg[..10],
        &mut out,
        &[Lease::write_only(&mut data)],
    );
    assert_eq!((word32(&out, 0), word32(&out, 1)), (0, 2));
    assert_eq!(&data, b"\0\0\0XY\0\0\0");
}

fn borrow_partial() {
    let data = *b"hello world";
    let mut out = [0u8; 40];
    let n = call(
        ASSIST,
        op::BORROW_READ,
        &words([0, 9, 10])[..12],
        &mut out,
        &[Lease::read_only(&data)],
    );
    assert_eq!(word32(&out, 1), 2);
    assert_eq!(&out[8..n], b"ld");
}

fn borrow_info() {
    let mut data = [0u8; 7];
    let mut out = [0u8; 12];
    call(
        ASSIST,
        op::BORROW_INFO,
        &words([0])[..4],
        &mut out,
        &[Lease::read_write(&mut data)],
    );
    assert_eq!(word32(&out, 0), 0);
    assert_eq!(word32(&out, 1), lease_attr::READ | lease_attr::WRITE);
    assert_eq!(word32(&out, 2), 7);
}

fn write_read_only_defect() {
    let data = [0u8; 4];
    let mut msg = words([0, 0]);
    msg[8] = b'x';
    let mut out = [0u8; 8];
    call(
        ASSIST,
        op::BORROW_WRITE,
        &msg[..9],
        &mut out,
        &[Lease::read_only(&data)],
    );
    assert_eq!(word32(&out, 0), DEFECT);
    assert_eq!(data, [0; 4]);
}

fn read_write_only_defect() {
    let mut data = *b"secret";
    let mut out = [0u8; 40];
    call(
        ASSIST,
        op::BORROW_READ,
        &words([0, 0, 6])[..12],
        &mut out,
        &[Lease::write_only(&mut data)],
    );
    assert_eq!(word32(&out, 0), DEFECT);
    assert_eq!(word32(&out, 1), 0);
}

fn borrow_not_waiting() {
    let mut buf = [0u8; 4];
    let (rc, n) = sys_borrow_read(id(ASSIST), 0, 0, &mut buf);
    assert_eq!((rc, n), (DEFECT, 0));
}

fn relay_borrow(index: u32, offset: u32) {
    call(
        ASSIST,
        op::RELAY,
        &words([
            u32::from(PEER.0),
            u32::from(op::BORROW_READ),
            index,
            offset,
            4,
        ])[..20],
        &mut [],
        &[],
    );
}

fn borrow_offset_fault() {
    relay_borrow(0, 100);
    assert_eq!(
        collect_fault(PEER),
        FaultInfo::SyscallUsage(UsageError::OffsetOutOfRange)
    );
    assert_eq!(state(ASSIST), TaskState::InRecv(None));
}

fn borrow_index_fault() {
    relay_borrow(3, 0);
    assert_eq!(
        collect_fault(PEER),
        FaultInfo::SyscallUsage(UsageError::LeaseOutOfRange)
    );
}

fn lease_dead_client() {
    call(
        ASSIST,
        op::SEND_BACK_LEASED,
        &words([78])[..4],
        &mut [],
        &[],
    );
    let m = sys_recv_open(&mut [], 0);
    assert_eq!((m.operation, m.lease_count), (78, 1));
    hl::restart_task(ASSIST, true).unwrap();
    let mut buf = [0u8; 16];
    let (rc, n) = sys_borrow_read(m.sender, 0, 0, &mut buf);
    assert_eq!(rc, dead_response_code(id(ASSIST).generation()));
    assert_eq!(n, 0);
    let (rc, _) = sys_borrow_write(m.sender, 0, 0, b"x");
    assert!(extract_new_generation(rc).is_some());
}

fn lease_server_side() {
    call(
        ASSIST,
        op::SEND_BACK_LEASED,
        &words([79])[..4],
        &mut [],
        &[],
    );
    let mut buf = [0u8; 4];
    let m = sys_recv(&mut buf, 0, None).unwrap();
    let mut got = [0u8; 16];
    let (rc, n) = sys_borrow_read(m.sender, 0, 0, &mut got);
    assert_eq!((rc, n), (0, 16));
    assert_eq!(&got, b"assist-lease-ok!");
    let (rc, n) = sys_borrow_write(m.sender, 0, 15, b"?!");
    assert_eq!((rc, n), (0, 1), "a write is clipped at the lease end");
    sys_reply(m.sender, 0, &[]);
}

/// The kernel keeps part of a task's registers in the CPU while its
/// syscall runs (RBX, RBP, R14, R15, RSP: `kern::arch::entry`), saving
/// them only when it leaves the task. Every register of both sides is
/// marked: our SEND (marked) ends assist's RECV (made with its sentinels,
/// after a null syscall made the same way), and assist's REPLY (with its
/// sentinels) and next RECV end our SEND. Each side must see exactly its
/// own values in every register the call does not answer in.
fn registers_stay_with_their_task() {
    call(ASSIST, op::REG_PROBE, &[], &mut [], &[]);
    // assist is more important: it now waits in its marked RECV.
    let mut report = [0u8; 2 * regs::WORDS * 8];
    let before = AllRegs {
        rax: Sysnum::Send as u64,
        rdi: u64::from(id(ASSIST).0),
        rsi: u64::from(op::REG_PROBE),
        rdx: 0,
        r10: 0,
        r8: report.as_mut_ptr() as u64,
        r9: report.len() as u64,
        r12: 0,
        r13: 0,
        ..AllRegs::filled(regs::marker)
    };
    let mut after = before;
    regs::syscall_all(&mut after);
    assert_eq!((after.rax, after.rdi), (0, report.len() as u64), "SEND");
    // SEND answers in RAX and RDI only.
    for (i, (b, a)) in before.words().iter().zip(after.words()).enumerate().skip(1) {
        if AllRegs::NAMES[i] != "rdi" {
            assert_eq!(a, *b, "our {} changed across SEND", AllRegs::NAMES[i]);
        }
    }
    let seen = |k: usize| AllRegs::from_words(core::array::from_fn(|i| word64(&report, k + i)));
    let (null, recv) = (seen(0), seen(regs::WORDS));
    // REFRESH_TASK_ID answers in RAX and RDI, RECV in RAX, RDI, RSI, RDX,
    // R10 and R8; every other register must be assist's own.
    let answered = [
        &["rax", "rdi"][..],
        &["rax", "rdi", "rsi", "rdx", "r10", "r8"][..],
    ];
    for (call, (regs_seen, answers)) in ["null syscall", "RECV"]
        .iter()
        .zip([null, recv].iter().zip(answered))
    {
        for (i, w) in regs_seen.words().iter().enumerate() {
            let name = AllRegs::NAMES[i];
            assert!(
                !(0..regs::WORDS).any(|j| *w == regs::marker(j)),
                "assist saw our {} in its {name} after its {call}",
                AllRegs::NAMES[(*w & 0xFF) as usize % regs::WORDS]
            );
            if !answers.contains(&name) {
                assert_eq!(*w, regs::sentinel(i), "assist's {name} after its {call}");
            }
        }
    }
    assert_eq!(recv.rdi, u64::from(id(crate::SUITE).0), "RECV sender");
}
