//! REPLY_RECV under attack: every case makes `peer` answer a request (from
//! `assist`, through RAW_SEND) with one malformed or unusual REPLY_RECV,
//! and then with the REPLY and the RECV it stands for, with the same
//! words, and checks that both did the same: what the client got, whether
//! and how the server faulted, and what its receive took. Each case also
//! states the outcome, so two equally wrong answers do not pass.
//!
//! The well-formed answer goes through the kernel's fast path (the client
//! waits for exactly this reply, the receive is open); each attack makes
//! one of the fast path's checks fail, so the call is declined to the
//! generic REPLY and RECV, whose answer is the one checked.

use abi::{FaultInfo, Generation, TaskId, TaskIndex, TaskState, UsageError};
use test_api::{assist as op, reply_recv as rr, word32};

use crate::{call, collect_fault, id, state, Case, ASSIST, PEER, SUITE};

pub static CASES: &[Case] = &[
    ("reply_recv_answers_and_takes_the_next_request", plain),
    ("reply_recv_takes_a_request_already_queued", queued),
    ("reply_recv_reply_in_kernel_memory_faults", reply_in_kernel),
    (
        "reply_recv_reply_past_the_end_of_ram_faults",
        reply_past_ram_end,
    ),
    (
        "reply_recv_reply_from_rodata_is_delivered",
        reply_from_rodata,
    ),
    ("reply_recv_reply_too_big_faults", reply_too_big),
    (
        "reply_recv_reply_code_over_32_bits_faults",
        reply_code_too_wide,
    ),
    (
        "reply_recv_reply_with_a_kernel_reserved_code_faults",
        reply_kernel_code,
    ),
    (
        "reply_recv_reply_to_a_task_that_never_called",
        reply_to_non_caller,
    ),
    ("reply_recv_reply_to_a_stale_generation", reply_to_stale),
    ("reply_recv_reply_to_a_restarted_client", reply_to_restarted),
    (
        "reply_recv_reply_to_an_index_out_of_range_faults",
        reply_out_of_range,
    ),
    (
        "reply_recv_buffer_in_kernel_memory_faults_after_the_reply",
        recv_into_kernel,
    ),
    (
        "reply_recv_buffer_in_rodata_faults_after_the_reply",
        recv_into_rodata,
    ),
    (
        "reply_recv_reserved_sender_bits_fault_after_the_reply",
        recv_reserved,
    ),
    ("reply_recv_pending_notification_comes_first", notified),
    ("reply_recv_closed_receive", closed),
    ("reply_recv_closed_receive_from_a_stale_task", closed_stale),
];

/// What one answer did, as the suite can see it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// The client's response code (a dead code reads as `DEAD`, its
    /// generation differing between runs) and reply bytes.
    code: u32,
    reply: [u8; 16],
    reply_len: u32,
    /// The server's fault, if it faulted (it is restarted).
    fault: Option<FaultInfo>,
    /// What the server's receive took (`op::RR_RESULT`), if it did not
    /// fault.
    received: Option<[u32; 4]>,
}

/// The code a dead client answer is recorded as.
const DEAD: u32 = 0xDEAD;
/// The code of an answer the client never got (RAW_RESULT's "none").
const NONE: u32 = u32::MAX;

/// What the client gets from the well-formed answer.
const ANSWER: &[u8; 8] = b"rr-reply";

/// Runs `case` once (as one REPLY_RECV, or `split`); `before_result` runs
/// while the server, if it did not fault, waits or sleeps.
fn run(case: u32, split: bool, arg: u32, before_result: impl FnOnce()) -> Seen {
    let mut request = [0u8; op::RAW_HEADER + 12];
    let header = [
        u32::from(PEER.0),
        u32::from(op::REPLY_RECV),
        12,
        16,
        0,
        0,
        0,
        0,
    ];
    let payload = [case, u32::from(split), arg];
    for (i, w) in header.iter().chain(payload.iter()).enumerate() {
        request[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    call(ASSIST, op::RAW_SEND, &request, &mut [], &[]);
    // assist and peer are more important: by now peer has answered and
    // faulted, or waits in its receive (or sleeps before answering).
    let (fault, received) = match state(PEER) {
        TaskState::Faulted(_) => (Some(collect_fault(PEER)), None),
        _ => {
            before_result();
            let mut out = [0u8; 16];
            call(PEER, op::RR_RESULT, &[], &mut out, &[]);
            (None, Some(core::array::from_fn(|i| word32(&out, i))))
        }
    };
    let mut out = [0u8; 40];
    call(ASSIST, op::RAW_RESULT, &[], &mut out, &[]);
    let code = word32(&out, 0);
    let mut reply = [0u8; 16];
    reply.copy_from_slice(&out[8..24]);
    Seen {
        code: if abi::extract_new_generation(code).is_some() && code != NONE {
            DEAD
        } else {
            code
        },
        reply,
        reply_len: word32(&out, 1),
        fault,
        received,
    }
}

/// Runs `case` as one REPLY_RECV and as REPLY then RECV, asserts both saw
/// the same, and returns it.
fn both(case: u32, arg: impl Fn() -> u32, before_result: impl Fn()) -> Seen {
    let combined = run(case, false, arg(), &before_result);
    let split = run(case, true, arg(), &before_result);
    assert_eq!(combined, split, "REPLY_RECV and REPLY + RECV differ");
    combined
}

/// The receive took the suite's RR_RESULT.
fn took_result() -> Option<[u32; 4]> {
    Some([1, id(SUITE).0, u32::from(op::RR_RESULT), 0])
}

/// The client got `bytes` with code 0.
fn answered(s: &Seen, bytes: &[u8]) {
    assert_eq!((s.code, s.reply_len), (0, bytes.len() as u32), "{s:?}");
    assert_eq!(&s.reply[..bytes.len()], bytes);
}

fn plain() {
    let s = both(rr::PLAIN, || 0, || {});
    answered(&s, ANSWER);
    assert_eq!((s.fault, s.received), (None, took_result()));
}

/// The suite's RR_RESULT is queued while peer sleeps, so the receive takes
/// it at once.
fn queued() {
    let s = both(rr::QUEUED, || 0, || {});
    answered(&s, ANSWER);
    assert_eq!((s.fault, s.received), (None, took_result()));
}

/// A fault of the REPLY half: the client is never answered (it gets the
/// dead code when the server restarts) and nothing is received.
fn reply_faults(case: u32, usage: UsageError) {
    let s = both(case, || 0, || {});
    assert_eq!(s.code, DEAD, "{s:?}");
    assert_eq!(s.fault, Some(FaultInfo::SyscallUsage(usage)));
}

fn reply_in_kernel() {
    reply_faults(rr::REPLY_IN_KERNEL, UsageError::InvalidSlice);
}

fn reply_past_ram_end() {
    reply_faults(rr::REPLY_PAST_RAM_END, UsageError::InvalidSlice);
}

/// A reply is only read: read-only data is a good source.
fn reply_from_rodata() {
    let s = both(rr::REPLY_FROM_RODATA, || 0, || {});
    answered(&s, b"assist-lease-ok!");
    assert_eq!((s.fault, s.received), (None, took_result()));
}

fn reply_too_big() {
    reply_faults(rr::REPLY_TOO_BIG, UsageError::ReplyTooBig);
}

fn reply_code_too_wide() {
    reply_faults(rr::REPLY_CODE_TOO_WIDE, UsageError::ReservedBits);
}

/// A server cannot speak for the kernel: a forged dead code (with a generation of its
/// choosing) or `IPC_REFUSED` faults it, and the client gets the real dead code.
fn reply_kernel_code() {
    for code in [
        abi::dead_response_code(Generation(0x1234)),
        abi::IPC_REFUSED,
        abi::FIRST_RESERVED_CODE,
    ] {
        let s = both(rr::REPLY_KERNEL_CODE, || code, || {});
        assert_eq!(s.code, DEAD, "{code:#x}: {s:?}");
        assert_eq!(
            s.fault,
            Some(FaultInfo::SyscallUsage(UsageError::ReservedCode)),
            "{code:#x}"
        );
    }
}

/// A reply to a task not waiting for it is ignored and the receive goes
/// on; the real client is answered later by RR_RESULT.
fn reply_ignored(case: u32, peer: impl Fn() -> u32) {
    let s = both(case, peer, || {});
    assert_eq!((s.code, s.reply_len), (op::RR_OWED_CODE, 4), "{s:?}");
    assert_eq!(&s.reply[..4], b"owed");
    assert_eq!((s.fault, s.received), (None, took_result()));
}

/// The suite is runnable, not waiting for peer.
fn reply_to_non_caller() {
    reply_ignored(rr::REPLY_TO_OTHER, || id(SUITE).0);
}

/// The client's index with the next generation: what a reply to a client
/// that restarted since looks like.
fn reply_to_stale() {
    reply_ignored(rr::REPLY_TO_OTHER, || {
        let a = id(ASSIST);
        TaskId::new(a.index(), Generation(a.generation().0.wrapping_add(1))).0
    });
}

/// The client really restarts while peer sleeps before answering: the
/// answer goes to its dead incarnation, and the receive takes the suite's
/// RR_RESULT, queued meanwhile. The new client never saw a RAW_SEND.
fn reply_to_restarted() {
    let s = both(
        rr::QUEUED,
        || 0,
        || {
            userlib::hl::restart_task(ASSIST, true).expect("restart assist");
        },
    );
    assert_eq!(s.code, NONE, "{s:?}");
    assert_eq!((s.fault, s.received), (None, took_result()));
}

fn reply_out_of_range() {
    let s = both(rr::REPLY_TO_OTHER, || 0x00FF, || {});
    assert_eq!(
        s.fault,
        Some(FaultInfo::SyscallUsage(UsageError::TaskOutOfRange))
    );
    // The owed client waited for the faulted server: its dead code.
    assert_eq!(s.code, DEAD, "{s:?}");
}

/// A fault of the RECV half: the client was answered first.
fn recv_faults(case: u32, usage: UsageError) {
    let s = both(case, || 0, || {});
    answered(&s, ANSWER);
    assert_eq!(s.fault, Some(FaultInfo::SyscallUsage(usage)));
}

fn recv_into_kernel() {
    recv_faults(rr::RECV_INTO_KERNEL, UsageError::InvalidSlice);
}

fn recv_into_rodata() {
    recv_faults(rr::RECV_INTO_RODATA, UsageError::InvalidSlice);
}

fn recv_reserved() {
    recv_faults(rr::RECV_RESERVED_BITS, UsageError::ReservedBits);
}

/// The notification posted before the call is delivered by its receive,
/// after the reply.
fn notified() {
    let s = both(rr::NOTIFIED, || 0, || {});
    answered(&s, ANSWER);
    assert_eq!((s.fault, s.received), (None, Some([3, 40, 0, 0])));
}

fn closed() {
    let s = both(rr::CLOSED, || id(SUITE).0, || {});
    answered(&s, ANSWER);
    assert_eq!((s.fault, s.received), (None, took_result()));
}

/// A closed receive from a stale id answers its dead code, after the
/// reply.
fn closed_stale() {
    let stale = || {
        let me = id(SUITE);
        TaskId::new(TaskIndex(me.index().0), Generation(me.generation().0 + 1)).0
    };
    let s = both(rr::CLOSED, stale, || {});
    answered(&s, ANSWER);
    let dead = abi::dead_response_code(id(SUITE).generation());
    assert_eq!((s.fault, s.received), (None, Some([2, dead, 0, 0])));
}
