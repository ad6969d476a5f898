//! The typed IDL in QEMU: the generated client of `idl/test.idol`
//! (`idol-test-api`) against `idol-test-server`, whose operations answer
//! deterministically (see the `doc` of each in the `.idol` file).
//!
//! Well-formed calls go from the suite through the generated stub. Malformed
//! ones are built by hand and sent by `assist` or `peer` (`RAW_SEND`), since
//! the server answers them with REPLY_FAULT, which faults the *sender*; the
//! cases then check the sender's fault names the server and the right
//! reason, and that the server keeps serving.

use abi::{lease_attr, FaultInfo, ReplyFaultReason, TaskIndex, TaskState};
use idol_runtime::ServerRestarted;
use idol_test_api::{ComplexError, Message, Mode, Point, Test, TestError};
use test_api::{assist as op, word32};
use userlib::{hl, sys_post};

use crate::{call, collect_fault, id, state, Case, ASSIST, PEER};

/// The server's task index.
const IDOL: TaskIndex = crate::task_gen::tasks::IDOL_TEST;

/// Operation numbers, from `idl/test.idol.lock`.
mod num {
    pub const ADD: u16 = 1;
    pub const MIX: u16 = 2;
    pub const FAIL_CLIKE: u16 = 4;
    pub const SUM_BYTES: u16 = 6;
    pub const FILL: u16 = 7;
    pub const REVERSE: u16 = 8;
    pub const SCALE_POINT: u16 = 9;
    pub const ECHO_POSTCARD: u16 = 10;
    pub const SET_MODE: u16 = 11;
    pub const RESTRICTED_PING: u16 = 40;
}

const R: u32 = lease_attr::READ;
const W: u32 = lease_attr::WRITE;
const RW: u32 = lease_attr::READ | lease_attr::WRITE;

pub static CASES: &[Case] = &[
    ("idol_zerocopy_u32_args_and_reply", add_round_trip),
    ("idol_zerocopy_mixed_width_and_bool_args", mix_round_trip),
    ("idol_from_primitive_enum_arg", set_mode_round_trip),
    ("idol_result_reply_ok_and_clike_error", divide_result),
    ("idol_clike_error_codes", clike_errors),
    ("idol_complex_error_is_postcard", complex_errors),
    ("idol_postcard_struct_arg_and_reply", postcard_round_trip),
    ("idol_read_lease", read_lease),
    ("idol_write_lease", write_lease),
    ("idol_read_write_lease", read_write_lease),
    ("idol_typed_leases", typed_leases),
    (
        "idol_max_len_lease_over_limit_faults_client",
        max_len_over_limit,
    ),
    ("idol_hand_built_requests_are_served", raw_requests_served),
    ("idol_wrong_message_size_faults_client", bad_message_size),
    ("idol_unknown_operation_faults_client", unknown_operation),
    ("idol_wrong_lease_count_faults_client", bad_lease_count),
    ("idol_bad_bool_byte_faults_client", bad_bool),
    ("idol_bad_contents_fault_client", bad_contents),
    (
        "idol_lease_missing_attribute_faults_client",
        lease_attributes,
    ),
    ("idol_reply_buffer_too_small_faults_client", reply_too_small),
    ("idol_access_list_allows_listed_caller", access_allowed),
    ("idol_access_list_refuses_other_caller", access_refused),
    (
        "idol_server_restart_is_an_error_value",
        restart_not_idempotent,
    ),
    (
        "idol_server_restarted_mid_call_gives_server_restarted",
        restart_mid_call,
    ),
    (
        "idol_server_restart_retries_idempotent_ops",
        restart_idempotent,
    ),
    ("idol_notifications_reach_the_server_hook", notifications),
];

fn server() -> Test {
    Test::from_index(IDOL)
}

/// Restarts the server, so state-dependent cases start from scratch.
fn fresh_server() -> Test {
    hl::restart_task(IDOL, true).expect("restart idol-test");
    server()
}

/// What a RAW_SEND should send.
struct Raw<'a> {
    op: u16,
    payload: &'a [u8],
    /// Message length; the payload is zero-padded to it.
    len: usize,
    capacity: usize,
    /// `(attributes, len)` of each lease.
    leases: &'a [(u32, usize)],
}

impl<'a> Raw<'a> {
    fn new(op: u16, payload: &'a [u8], capacity: usize) -> Self {
        Raw {
            op,
            payload,
            len: payload.len(),
            capacity,
            leases: &[],
        }
    }

    fn leases(self, leases: &'a [(u32, usize)]) -> Self {
        Raw { leases, ..self }
    }

    fn len(self, len: usize) -> Self {
        Raw { len, ..self }
    }
}

/// The outcome of a RAW_SEND, as assist/peer recorded it.
#[derive(Debug)]
struct Outcome {
    rc: u32,
    len: usize,
    reply: [u8; 16],
    lease: [u8; 16],
}

/// Has `via` send `raw` to the server; returns once the SEND is over
/// (`via` and the server are both more important than the suite).
fn raw_send(via: TaskIndex, raw: &Raw<'_>) {
    assert!(raw.payload.len() <= op::RAW_PAYLOAD_MAX && raw.leases.len() <= 3);
    let mut msg = [0u8; op::RAW_HEADER + op::RAW_PAYLOAD_MAX];
    let mut header = [
        u32::from(IDOL.0),
        u32::from(raw.op),
        raw.len as u32,
        raw.capacity as u32,
        raw.leases.len() as u32,
        0,
        0,
        0,
    ];
    for (w, &(attributes, len)) in header[5..].iter_mut().zip(raw.leases) {
        *w = attributes | (len as u32) << 16;
    }
    for (chunk, w) in msg.chunks_exact_mut(4).zip(header) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    msg[op::RAW_HEADER..op::RAW_HEADER + raw.payload.len()].copy_from_slice(raw.payload);
    call(
        via,
        op::RAW_SEND,
        &msg[..op::RAW_HEADER + raw.payload.len()],
        &mut [],
        &[],
    );
}

fn raw_outcome(via: TaskIndex) -> Outcome {
    let mut out = [0u8; 40];
    assert_eq!(call(via, op::RAW_RESULT, &[], &mut out, &[]), 40);
    let mut reply = [0u8; 16];
    reply.copy_from_slice(&out[8..24]);
    let mut lease = [0u8; 16];
    lease.copy_from_slice(&out[24..40]);
    Outcome {
        rc: word32(&out, 0),
        len: word32(&out, 1) as usize,
        reply,
        lease,
    }
}

/// A RAW_SEND that the server must answer normally (code 0).
fn raw_ok(via: TaskIndex, raw: &Raw<'_>) -> Outcome {
    raw_send(via, raw);
    assert_eq!(
        state(via),
        TaskState::InRecv(None),
        "a well-formed request must not fault its sender"
    );
    let o = raw_outcome(via);
    assert_eq!(o.rc, 0, "op {} answered {:#x}", raw.op, o.rc);
    o
}

/// A RAW_SEND that the server must reply-fault with `reason`; checks the
/// sender's fault and that the same server incarnation still serves.
fn raw_faults(via: TaskIndex, raw: &Raw<'_>, reason: ReplyFaultReason) {
    let before = id(IDOL);
    raw_send(via, raw);
    assert_eq!(
        collect_fault(via),
        FaultInfo::FromServer(before, reason),
        "op {} len {} leases {:?}",
        raw.op,
        raw.len,
        raw.leases
    );
    assert_eq!(id(IDOL), before, "the server must not restart");
    assert_eq!(state(IDOL), TaskState::InRecv(None));
    assert_eq!(
        server().add(40, 2),
        42,
        "the server keeps serving after a bad request"
    );
}

fn add_round_trip() {
    let t = server();
    assert_eq!(t.add(2, 3), 5);
    assert_eq!(t.add(0x8000_0000, 0x1234), 0x8000_1234);
    assert_eq!(t.add(u32::MAX, 2), 1, "add wraps");
    assert_eq!(t.task_id(), id(IDOL));
}

fn mix_round_trip() {
    let t = server();
    // 0xFE + 0xFFFF + 2^32 - 3: every argument lands in its own field.
    assert_eq!(t.mix(0xFE, 0xFFFF, 1 << 32, -3, false), Ok(0x1_0001_00FA));
    assert_eq!(
        t.mix(0xFE, 0xFFFF, 1 << 32, -3, true),
        Ok(0xFFFF_FFFE_FFFE_FF06)
    );
    assert_eq!(t.mix(0, 0, 0, i32::MIN, false), Ok(0xFFFF_FFFF_8000_0000));
    assert_eq!(t.mix(1, 0, u64::MAX, 0, false), Ok(0), "wraps");
    assert_eq!(t.mix(0, 0, 7, 0, true), Ok(7u64.wrapping_neg()));
}

fn set_mode_round_trip() {
    let t = fresh_server();
    assert_eq!(
        t.set_mode(Mode::Fast),
        Ok(Mode::Slow as u8),
        "initially Slow"
    );
    assert_eq!(t.set_mode(Mode::Fast), Ok(Mode::Fast as u8));
    assert_eq!(t.set_mode(Mode::Slow), Ok(Mode::Fast as u8));
    assert_eq!(t.set_mode(Mode::Slow), Ok(1));
}

fn divide_result() {
    let t = server();
    assert_eq!(t.divide(7, 2), Ok(3));
    assert_eq!(t.divide(u32::MAX, 1), Ok(u32::MAX));
    assert_eq!(t.divide(0, 9), Ok(0));
    assert_eq!(t.divide(1, 0), Err(TestError::DivideByZero));
}

fn clike_errors() {
    let t = server();
    assert_eq!(t.fail_clike(0), Ok(()));
    assert_eq!(t.fail_clike(3), Err(TestError::DivideByZero));
    assert_eq!(t.fail_clike(4), Err(TestError::ZeroFactor));
    assert_eq!(t.fail_clike(5), Err(TestError::Unlucky));
    assert_eq!(t.fail_clike(0x1234), Err(TestError::Distant));
    // The variant `clike_error!` adds is representable on the wire too.
    assert_eq!(t.fail_clike(0xFFFF), Err(TestError::ServerRestarted));
}

fn named(s: &str) -> heapless::String<16> {
    heapless::String::try_from(s).expect("fits")
}

fn complex_errors() {
    let t = server();
    assert_eq!(t.fail_complex(0, 21), Ok(42));
    assert_eq!(t.fail_complex(0, 0x8000_0001), Ok(2), "wraps");
    assert_eq!(
        t.fail_complex(1, 500),
        Err(ComplexError::TooBig {
            limit: 100,
            got: 500
        })
    );
    assert_eq!(
        t.fail_complex(2, 7),
        Err(ComplexError::Named(named("value-7")))
    );
    // The longest name: 16 bytes, the most the type holds.
    assert_eq!(
        t.fail_complex(2, u32::MAX),
        Err(ComplexError::Named(named("value-4294967295")))
    );
    assert_eq!(t.fail_complex(9, 1), Err(ComplexError::UnknownKind(9)));
    assert_eq!(t.fail_complex(255, 0), Err(ComplexError::UnknownKind(255)));
}

fn message(id: u32, tag: Option<u8>, name: &str, values: &[u16]) -> Message {
    Message {
        id,
        tag,
        name: named(name),
        values: heapless::Vec::from_slice(values).expect("fits"),
    }
}

fn postcard_round_trip() {
    let t = server();
    assert_eq!(
        t.echo_postcard(message(41, Some(7), "hello", &[1, 2, 300])),
        message(42, Some(7), "HELLO", &[300, 2, 1])
    );
    assert_eq!(
        t.echo_postcard(message(0, None, "", &[])),
        message(1, None, "", &[])
    );
    // The largest message: every field at its widest, so both buffers are
    // exactly as large as the derived MaxSize says.
    let big = [u16::MAX, 0x8000, 3, 4, 5, 6, 7, 0x4000];
    let rev = [0x4000, 7, 6, 5, 4, 3, 0x8000, u16::MAX];
    assert_eq!(
        t.echo_postcard(message(u32::MAX, Some(255), "abcdefghijklmnop", &big)),
        message(0, Some(255), "ABCDEFGHIJKLMNOP", &rev)
    );
}

fn read_lease() {
    let t = server();
    let mut data = [0u8; 64];
    for (i, b) in data.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    assert_eq!(t.sum_bytes(&data), 64 * 65 / 2, "exactly max_len");
    assert_eq!(t.sum_bytes(&data[..17]), 17 * 18 / 2, "crosses a chunk");
    assert_eq!(t.sum_bytes(&[0xFF; 3]), 3 * 255);
    assert_eq!(t.sum_bytes(&[]), 0);
    assert_eq!(data[63], 64, "a read lease is not written");
}

fn write_lease() {
    let t = server();
    let mut buf = [0x11u8; 48];
    assert_eq!(t.fill(0xAB, &mut buf[4..44]), 40);
    assert!(buf[4..44].iter().all(|&b| b == 0xAB), "{buf:?}");
    assert!(buf[..4].iter().chain(&buf[44..]).all(|&b| b == 0x11));
    let mut big = [0u8; 300];
    assert_eq!(t.fill(7, &mut big), 300, "no max_len on fill");
    assert!(big.iter().all(|&b| b == 7));
    assert_eq!(t.fill(9, &mut []), 0);
}

fn read_write_lease() {
    let t = server();
    let mut small = *b"abcde";
    assert_eq!(t.reverse(&mut small), Ok(5));
    assert_eq!(&small, b"edcba");
    let mut full = [0u8; 256];
    for (i, b) in full.iter_mut().enumerate() {
        *b = i as u8;
    }
    assert_eq!(t.reverse(&mut full), Ok(256), "exactly max_len");
    assert!(full.iter().enumerate().all(|(i, &b)| b == 255 - i as u8));
}

fn typed_leases() {
    let t = server();
    let mut out = Point { x: 99, y: 99 };
    assert_eq!(t.scale_point(5, &Point { x: 3, y: -4 }, &mut out), Ok(()));
    assert_eq!(out, Point { x: 15, y: -20 });
    assert_eq!(
        t.scale_point(-2, &Point { x: i32::MIN, y: 1 }, &mut out),
        Ok(())
    );
    assert_eq!(out, Point { x: 0, y: -2 }, "wrapping");
    let mut untouched = Point { x: 1234, y: -5678 };
    assert_eq!(
        t.scale_point(0, &Point { x: 1, y: 1 }, &mut untouched),
        Err(TestError::ZeroFactor)
    );
    assert_eq!(untouched, Point { x: 1234, y: -5678 });
}

fn max_len_over_limit() {
    // At the limit it is served (and the lease really was read)...
    let o = raw_ok(ASSIST, &Raw::new(num::SUM_BYTES, &[], 4).leases(&[(R, 64)]));
    assert_eq!((o.len, word32(&o.reply, 0)), (4, 63 * 64 / 2));
    // ...one byte over is the client's fault.
    raw_faults(
        ASSIST,
        &Raw::new(num::SUM_BYTES, &[], 4).leases(&[(R, 65)]),
        ReplyFaultReason::BadLeases,
    );
    raw_faults(
        PEER,
        &Raw::new(num::REVERSE, &[], 4).leases(&[(RW, 257)]),
        ReplyFaultReason::BadLeases,
    );
}

fn raw_requests_served() {
    // The wire format the stubs agree on, seen from outside: packed
    // little-endian zerocopy arguments...
    let o = raw_ok(ASSIST, &Raw::new(num::ADD, &[2, 0, 0, 0, 3, 0, 0, 0], 4));
    assert_eq!((o.len, word32(&o.reply, 0)), (4, 5));
    // ...postcard arguments and replies...
    let o = raw_ok(ASSIST, &Raw::new(num::ECHO_POSTCARD, &[1, 0, 0, 0], 64));
    assert_eq!(&o.reply[..o.len], &[2, 0, 0, 0]);
    // ...and a read-write lease written in place.
    let o = raw_ok(PEER, &Raw::new(num::REVERSE, &[], 4).leases(&[(RW, 256)]));
    assert_eq!(word32(&o.reply, 0), 256);
    assert_eq!(o.lease[..3], [255, 254, 253]);
}

fn bad_message_size() {
    let add = [1u8; 9];
    raw_faults(
        ASSIST,
        &Raw::new(num::ADD, &add[..7], 4),
        ReplyFaultReason::BadMessageSize,
    );
    raw_faults(
        ASSIST,
        &Raw::new(num::ADD, &add, 4),
        ReplyFaultReason::BadMessageSize,
    );
    raw_faults(
        PEER,
        &Raw::new(num::MIX, &[], 8),
        ReplyFaultReason::BadMessageSize,
    );
    // Longer than the server's receive buffer (the largest message of any
    // operation), so it arrived truncated.
    raw_faults(
        ASSIST,
        &Raw::new(num::ECHO_POSTCARD, &[1, 0, 0, 0], 64).len(60),
        ReplyFaultReason::BadMessageSize,
    );
}

fn unknown_operation() {
    for number in [0, 15, 39, 41, u16::MAX] {
        raw_faults(
            ASSIST,
            &Raw::new(number, &[], 64),
            ReplyFaultReason::UndefinedOperation,
        );
    }
}

fn bad_lease_count() {
    raw_faults(
        ASSIST,
        &Raw::new(num::SUM_BYTES, &[], 4),
        ReplyFaultReason::BadLeases,
    );
    raw_faults(
        PEER,
        &Raw::new(num::ADD, &[0; 8], 4).leases(&[(R, 4)]),
        ReplyFaultReason::BadLeases,
    );
    raw_faults(
        ASSIST,
        &Raw::new(num::SCALE_POINT, &[1, 0, 0, 0], 0).leases(&[(R, 8)]),
        ReplyFaultReason::BadLeases,
    );
}

/// `mix`'s packed arguments with the given `flag` byte.
fn mix_args(flag: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 5;
    a[3..11].copy_from_slice(&10u64.to_le_bytes());
    a[15] = flag;
    a
}

fn bad_bool() {
    let o = raw_ok(ASSIST, &Raw::new(num::MIX, &mix_args(0), 8));
    assert_eq!(o.reply[..8], 15u64.to_le_bytes());
    let o = raw_ok(ASSIST, &Raw::new(num::MIX, &mix_args(1), 8));
    assert_eq!(o.reply[..8], 15u64.wrapping_neg().to_le_bytes());
    for flag in [2, 0xFF] {
        raw_faults(
            ASSIST,
            &Raw::new(num::MIX, &mix_args(flag), 8),
            ReplyFaultReason::BadMessageContents,
        );
    }
}

fn bad_contents() {
    // Not a `Mode` (FromPrimitive refuses).
    raw_faults(
        ASSIST,
        &Raw::new(num::SET_MODE, &[3], 1),
        ReplyFaultReason::BadMessageContents,
    );
    // Postcard must use every byte.
    raw_faults(
        PEER,
        &Raw::new(num::ECHO_POSTCARD, &[1, 0, 0, 0, 0], 64),
        ReplyFaultReason::BadMessageContents,
    );
    // A handler's own verdict (`RequestError::Fail`): an unknown code.
    raw_faults(
        ASSIST,
        &Raw::new(num::FAIL_CLIKE, &[7, 0], 0),
        ReplyFaultReason::BadMessageContents,
    );
}

fn lease_attributes() {
    raw_faults(
        ASSIST,
        &Raw::new(num::FILL, &[1], 4).leases(&[(R, 8)]),
        ReplyFaultReason::BadLeases,
    );
    raw_faults(
        ASSIST,
        &Raw::new(num::SUM_BYTES, &[], 4).leases(&[(W, 8)]),
        ReplyFaultReason::BadLeases,
    );
    raw_faults(
        PEER,
        &Raw::new(num::REVERSE, &[], 4).leases(&[(R, 8)]),
        ReplyFaultReason::BadLeases,
    );
    // A typed lease of the wrong size.
    raw_faults(
        ASSIST,
        &Raw::new(num::SCALE_POINT, &[1, 0, 0, 0], 0).leases(&[(R, 4), (W, 8)]),
        ReplyFaultReason::BadLeases,
    );
    // With the right attributes and sizes, the same hand-built call works.
    let o = raw_ok(ASSIST, &Raw::new(num::FILL, &[0x5A], 4).leases(&[(W, 8)]));
    assert_eq!(word32(&o.reply, 0), 8);
    assert_eq!(
        o.lease[..9],
        [0x5A, 0x5A, 0x5A, 0x5A, 0x5A, 0x5A, 0x5A, 0x5A, 8]
    );
}

fn reply_too_small() {
    raw_faults(
        ASSIST,
        &Raw::new(num::ADD, &[0; 8], 3),
        ReplyFaultReason::ReplyBufferTooSmall,
    );
    // fail_complex can answer with a 22-byte error, so a buffer that would
    // hold its ok value is still too small.
    raw_faults(
        PEER,
        &Raw::new(5, &[0, 1], 5),
        ReplyFaultReason::ReplyBufferTooSmall,
    );
}

fn access_allowed() {
    let token = 0x1234_5678u32;
    let o = raw_ok(
        ASSIST,
        &Raw::new(num::RESTRICTED_PING, &token.to_le_bytes(), 4),
    );
    assert_eq!((o.len, word32(&o.reply, 0)), (4, token ^ 0x5A5A_5A5A));
}

fn access_refused() {
    raw_faults(
        PEER,
        &Raw::new(num::RESTRICTED_PING, &7u32.to_le_bytes(), 4),
        ReplyFaultReason::AccessViolation,
    );
    // The access list is checked first: a refused caller learns nothing
    // about the rest of its request.
    raw_faults(
        PEER,
        &Raw::new(num::RESTRICTED_PING, &[], 0),
        ReplyFaultReason::AccessViolation,
    );
    // The listed caller is still served.
    access_allowed();
}

/// The server is restarted (by assist, on a timer) while this client is
/// blocked inside a call: the kernel wakes the client with a dead code and
/// the generated stub turns it into `ServerRestarted` — no fault, no hang.
fn restart_mid_call() {
    let t = fresh_server();
    let before = t.task_id();
    let mut args = [0u8; 8];
    args[..4].copy_from_slice(&u32::from(IDOL.0).to_le_bytes());
    args[4..].copy_from_slice(&20u32.to_le_bytes());
    call(ASSIST, op::RESTART_LATER, &args, &mut [], &[]);
    let start = userlib::sys_get_timer().now;
    assert_eq!(t.stall(2000), Err(ServerRestarted));
    let waited = userlib::sys_get_timer().now - start;
    assert!(
        waited < 2000,
        "the call ended by the restart ({waited} ms), not by the server answering"
    );
    assert_eq!(t.task_id().generation(), before.generation().next());
    assert_eq!(t.add(2, 3), 5, "the new server serves");
}

fn restart_not_idempotent() {
    let t = fresh_server();
    assert_eq!(t.bump_counter(), Ok(1));
    assert_eq!(t.bump_counter(), Ok(2));
    let before = t.task_id();
    hl::restart_task(IDOL, true).expect("restart");
    assert_eq!(t.bump_counter(), Err(ServerRestarted));
    assert_eq!(t.task_id(), id(IDOL), "the handle follows the server");
    assert_eq!(t.task_id().generation(), before.generation().next());
    assert_eq!(t.bump_counter(), Ok(1), "the new incarnation starts at 0");
    // The same for each kind of error type.
    hl::restart_task(IDOL, true).expect("restart");
    assert_eq!(t.fail_clike(0), Err(TestError::ServerRestarted));
    hl::restart_task(IDOL, true).expect("restart");
    assert_eq!(t.fail_complex(0, 1), Err(ComplexError::ServerRestarted));
    hl::restart_task(IDOL, true).expect("restart");
    let mut out = Point::default();
    assert_eq!(
        t.scale_point(2, &Point { x: 1, y: 2 }, &mut out),
        Err(TestError::ServerRestarted)
    );
    assert_eq!(out, Point::default());
    assert_eq!(t.scale_point(2, &Point { x: 1, y: 2 }, &mut out), Ok(()));
    assert_eq!(out, Point { x: 2, y: 4 });
}

fn restart_idempotent() {
    let t = fresh_server();
    let g = t.task_id().generation();
    hl::restart_task(IDOL, true).expect("restart");
    assert_eq!(t.add(20, 22), 42, "retried on the new incarnation");
    assert_eq!(t.task_id().generation(), g.next());
    hl::restart_task(IDOL, true).expect("restart");
    assert_eq!(t.divide(9, 0), Err(TestError::DivideByZero));
    hl::restart_task(IDOL, true).expect("restart");
    let mut buf = [0u8; 5];
    assert_eq!(t.fill(3, &mut buf), 5, "a lent buffer is lent again");
    assert_eq!(buf, [3; 5]);
    hl::restart_task(IDOL, true).expect("restart");
    assert_eq!(
        t.echo_postcard(message(1, None, "a", &[2])),
        message(2, None, "A", &[2])
    );
    assert_eq!(t.task_id().generation(), g.next().next().next().next());
    // The retries really reached new incarnations: the counter is fresh.
    assert_eq!(t.bump_counter(), Ok(1));
}

fn notifications() {
    let t = fresh_server();
    assert_eq!(t.notifications_seen(), 0);
    // Bit 1 is in the server's mask; bits 0 and 2 are not.
    assert_eq!(sys_post(id(IDOL), 0b101), 0);
    assert_eq!(t.notifications_seen(), 0);
    assert_eq!(sys_post(id(IDOL), 0b010), 0);
    assert_eq!(t.notifications_seen(), 0b010);
    // Requests and notifications interleave without disturbing each other.
    assert_eq!(t.add(1, 1), 2);
    assert_eq!(t.notifications_seen(), 0b010);
}
