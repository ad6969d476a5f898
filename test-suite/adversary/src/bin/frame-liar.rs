//! frame-liar: a tdx-host client that sends the one-frame operations (`alloc_frame`,
//! `free_frame`: the address in the message) bytes their IDL does not allow: a size byte or a
//! class byte that names no `FrameSize` or `MemClass`, and a message one byte short.
//!
//! tdx-host's generated dispatch must refuse each before any handler runs: it reply-faults this
//! task (`FromServer(tdx-host, BadMessageContents)`, the message-size refusal for the short one),
//! stays the same incarnation, keeps serving, and allocates nothing for it. Every attack faults
//! this task; the referee restarts it at once (`may-fault`) and keeps its stage and score
//! (STASH), and the next life checks what the referee saw. Last, a well-formed `alloc_frame` and
//! `free_frame` show the operations serve this task as the manifest grants.

#![no_std]
#![no_main]

use abi::ReplyFaultReason;
use tdx_host_api::{FrameSize, MemClass, ModuleState, TdxHost, TdxHostError, ANY_NODE};
use test_adversary::referee::STASH_WORDS;
use test_api::score::Score;
use userlib::{hl, sys_refresh_task_id, sys_send, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::notifications::TIMER_MASK;
use task_gen::slots::{REFEREE, TDX_HOST};

/// Word 0 of this task's stash.
const MAGIC: u64 = 0xf7a3_e11a;
/// `FaultInfo::FromServer`'s kind word.
const FROM_SERVER: u64 = 10;

/// One lie: what it sends and why tdx-host must fault it.
struct Lie {
    name: &'static str,
    op: u16,
    message: &'static [u8],
    reason: ReplyFaultReason,
}

/// The lies, in the order of this task's lives. Wire layouts (packed, little-endian):
/// `alloc_frame` = node u16, size u8, class u8; `free_frame` = size u8, addr u64.
const LIES: [Lie; 4] = [
    Lie {
        name: "alloc_frame_bad_size_byte_faults_the_caller",
        op: TdxHost::OP_ALLOC_FRAME,
        message: &[0, 0, 3, 0],
        reason: ReplyFaultReason::BadMessageContents,
    },
    Lie {
        name: "alloc_frame_bad_class_byte_faults_the_caller",
        op: TdxHost::OP_ALLOC_FRAME,
        message: &[0, 0, 0, 2],
        reason: ReplyFaultReason::BadMessageContents,
    },
    Lie {
        name: "free_frame_bad_size_byte_faults_the_caller",
        op: TdxHost::OP_FREE_FRAME,
        message: &[0xff, 0, 0, 0x10, 0, 0, 0, 0, 0],
        reason: ReplyFaultReason::BadMessageContents,
    },
    Lie {
        name: "free_frame_short_message_faults_the_caller",
        op: TdxHost::OP_FREE_FRAME,
        message: &[0, 0, 0, 0x10, 0, 0, 0, 0],
        reason: ReplyFaultReason::BadMessageSize,
    },
];

/// Saved at the referee before each lie: the stage, the score so far and tdx-host's id.
fn save(stage: u64, s: &Score, tdx_host: u32) {
    let (passed, failed, crc) = s.parts();
    let mut w = [0u64; STASH_WORDS];
    w[..6].copy_from_slice(&[
        MAGIC,
        stage,
        passed,
        failed,
        u64::from(crc),
        u64::from(tdx_host),
    ]);
    test_adversary::stash(REFEREE, &w);
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let t = TdxHost::from_index(TDX_HOST);
    let w = test_adversary::unstash(REFEREE);
    let stage = if w[0] == MAGIC { w[1] } else { 0 };
    if stage == 0 {
        // The lies go to a serving tdx-host (`status` is idempotent: it follows restarts).
        let mut waited = 0;
        while t.status().state() != Some(ModuleState::Ready) && waited < 30_000 {
            hl::sleep_for(10, TIMER_MASK);
            waited += 10;
        }
    } else {
        s.absorb(w[2], w[3], w[4] as u32);
        // The lie of the last life: refused by the dispatch with the fault it names, by the
        // incarnation it was sent to, which still serves and holds nothing of ours.
        let lie = &LIES[(stage - 1) as usize];
        let me = TaskIndex(task_gen::TASK_INDEX);
        let seen = test_adversary::last_fault(REFEREE, me);
        let want = [FROM_SERVER, w[5], lie.reason as u64];
        let now = sys_refresh_task_id(TDX_HOST).0;
        let usage = t.stats().caller_usage_bytes;
        s.check(
            lie.name,
            seen[..3] == want && seen[3] == stage && u64::from(now) == w[5] && usage == 0,
            format_args!(
                "fault {seen:?} (want {want:?}, count {stage}), tdx-host {now:#x} was {:#x}, usage {usage}",
                w[5]
            ),
        );
    }
    if let Some(lie) = LIES.get(stage as usize) {
        let tdx_host = sys_refresh_task_id(TDX_HOST);
        save(stage + 1, &s, tdx_host.0);
        // Room for any reply, so the dispatch's reply-size check passes and decoding is next.
        let mut reply = [0u8; 8];
        let (code, _) = sys_send(tdx_host, lie.op, lie.message, &mut reply, &[]);
        // Not reached: the dispatch faults this task before any reply.
        s.check(
            lie.name,
            false,
            format_args!("tdx-host answered {code:#x} instead of faulting the caller"),
        );
    }
    // A well-formed pair serves this task as the manifest grants it.
    let got = t.alloc_frame(ANY_NODE, FrameSize::K4, MemClass::Tdx);
    let freed = got.map(|a| t.free_frame(FrameSize::K4, a));
    let denied = t.alloc_frame(ANY_NODE, FrameSize::K4, MemClass::NonTdx);
    s.check(
        "one_frame_operations_still_serve_the_liar",
        matches!(freed, Ok(Ok(()))) && denied == Err(TdxHostError::AccessDenied),
        format_args!("{got:?} -> {freed:?}, non-TDX {denied:?}"),
    );
    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
