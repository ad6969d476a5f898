//! The hostile test image (`test-suite/adversary.toml`): shared protocol.
//!
//! Pattern: the **referee** is task 0 (the supervisor). Every other task of
//! the image is either a victim the attacks are aimed at (tdx-host, idle, a
//! peer) or an **attacker**: a task that lies to the kernel or to tdx-host
//! in one way and checks that the lie is refused and that nothing it should
//! not reach changed. An attacker prints one `test NAME ... ok|FAILED: why`
//! line per attack (through [`test_api::score::Score`]), then reports
//! [`referee::DONE`] with its counts. The referee ends the run once every
//! attacker named in its config has reported, or fails it at the deadline.
//!
//! Invariants the referee keeps:
//! - a fault in a task not listed as `may-fault` is a failure of the image
//!   (`test no_unexpected_faults`), whatever the attackers printed;
//! - a task listed as `may-fault` is restarted at once (no back-off), and can
//!   keep state across its restarts with [`referee::STASH`]/[`referee::UNSTASH`]
//!   (the referee, not the attacker's own memory, holds it);
//! - a task listed as `hold-faulted` (idle) is recorded and left faulted:
//!   the attacker that faulted it restarts it;
//! - a DONE counts only from a task named as an attacker, once, and only with
//!   the [`referee::DONE_MAGIC`] word, so a random SEND cannot end the run.
//!
//! To add an attacker: a file in `src/bin/`, a `[tasks.NAME]` entry in
//! `test-suite/adversary.toml` with `binary = "FILE"` and `task-slots =
//! ["referee", ...]`, and its name in the referee's `attackers` list.

#![no_std]

use test_api::score::Score;
use userlib::{sys_refresh_task_id, sys_send, TaskIndex};

/// Operations the referee serves. Messages are little-endian words.
pub mod referee {
    /// `[DONE_MAGIC: u32, passed: u32, failed: u32, crc: u32]` → `[]`: the
    /// attacker's cases, for the verdict line (`crc` as `verdict::Tally`).
    pub const DONE: u16 = 1;
    /// `[up to STASH_WORDS u64]` → `[]`: keep these words for the caller's
    /// task index, across the caller's restarts.
    pub const STASH: u16 = 2;
    /// `[]` → `[STASH_WORDS u64]`: the words last stashed (zeros if none).
    pub const UNSTASH: u16 = 3;
    /// `[task_index: u32]` → `[kind, a, b, count]` (u64 each): the last fault
    /// the referee saw in that task (kind 0 = none) and how many it has seen.
    pub const LAST_FAULT: u16 = 4;
    /// Word 0 of a DONE message.
    pub const DONE_MAGIC: u32 = 0xad7e_25a1;
    /// Words a task may stash.
    pub const STASH_WORDS: usize = 8;
    /// The referee's answer to an operation it does not serve.
    pub const BAD_OPERATION: u32 = 2;
}

/// Operations of the `ticker` task (a timer-keeping victim below tdx-host's priority).
pub mod ticker {
    /// `[]` → `[]`: forget the lateness seen so far.
    pub const START: u64 = 1;
    /// `[]` → `[worst_late_ticks, worst_gap_tsc, wakes, tick_tsc]` (u64 each) since the last
    /// START: the most ticks a wake came after its deadline, the longest TSC gap between two
    /// wakes, the number of wakes, and the median gap (one tick in TSC units).
    pub const REPORT: u64 = 2;
}

/// Operations of `lease-server`, the server half of the lease attacks. Its
/// client lends, as lease 0, its own lease table (read-write) and, as lease
/// 1, a data buffer; the server then rewrites entry 1 of that table through
/// lease 0 and borrows lease 1 again. The kernel must go on using the
/// lease 1 it checked at SEND.
pub mod lease_server {
    /// Rewrites entry 1 to `{READ, base, len}` (message: `[base: u64, len:
    /// u64]`), then BORROW_READs lease 1 → `[rc: u32, n: u32, bytes
    /// (READ_LEN)]`.
    pub const REWRITE_THEN_READ: u16 = 1;
    /// Rewrites entry 1 to `{READ|WRITE, &VICTIM (the server's own
    /// read-only data), len}`, then BORROW_WRITEs `WRITE_BYTES` to lease 1
    /// → `[rc: u32, n: u32, victim_changed: u32]`.
    pub const REWRITE_THEN_WRITE: u16 = 2;
    /// An honest server: learns lease 1's length (BORROW_INFO), stores the
    /// message bytes into lease 0 at offset `[offset: u32]` as its client
    /// asked (which shrinks entry 1's length), then reads the last 8 bytes of
    /// lease 1 by the length it learned → `[rc: u32, n: u32, len_before:
    /// u32, len_after: u32]`.
    pub const HONEST_STORE_THEN_READ: u16 = 3;
    /// Bytes REWRITE_THEN_READ reads.
    pub const READ_LEN: usize = 16;
    /// What REWRITE_THEN_WRITE writes.
    pub const WRITE_BYTES: [u8; 16] = *b"lease-overwrite!";
}

fn referee_id(referee: TaskIndex) -> userlib::TaskId {
    sys_refresh_task_id(referee)
}

/// Reports an attacker's score to the referee. Returns the response code
/// (0 when the referee counted it).
pub fn report_done(referee: TaskIndex, score: &Score) -> u32 {
    let (passed, failed, crc) = score.parts();
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&referee::DONE_MAGIC.to_le_bytes());
    m[4..8].copy_from_slice(&u32::try_from(passed).unwrap_or(u32::MAX).to_le_bytes());
    m[8..12].copy_from_slice(&u32::try_from(failed).unwrap_or(u32::MAX).to_le_bytes());
    m[12..].copy_from_slice(&crc.to_le_bytes());
    sys_send(referee_id(referee), referee::DONE, &m, &mut [], &[]).0
}

/// Keeps `words` at the referee across this task's restarts.
pub fn stash(referee: TaskIndex, words: &[u64; referee::STASH_WORDS]) -> u32 {
    let mut m = [0u8; referee::STASH_WORDS * 8];
    for (chunk, w) in m.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    sys_send(referee_id(referee), referee::STASH, &m, &mut [], &[]).0
}

/// The words this task last stashed (zeros if none, or if the referee
/// could not be reached).
#[must_use]
pub fn unstash(referee: TaskIndex) -> [u64; referee::STASH_WORDS] {
    let mut r = [0u8; referee::STASH_WORDS * 8];
    let (code, _) = sys_send(referee_id(referee), referee::UNSTASH, &[], &mut r, &[]);
    let mut words = [0u64; referee::STASH_WORDS];
    if code == 0 {
        for (w, i) in words.iter_mut().zip(0..) {
            *w = test_api::word64(&r, i);
        }
    }
    words
}

/// The last fault the referee saw in `task`: `(kind, a, b, count)` as in
/// `abi::FaultInfo::to_words`, kind 0 when none.
#[must_use]
pub fn last_fault(referee: TaskIndex, task: TaskIndex) -> [u64; 4] {
    let mut r = [0u8; 32];
    let m = u32::from(task.0).to_le_bytes();
    let (code, _) = sys_send(referee_id(referee), referee::LAST_FAULT, &m, &mut r, &[]);
    if code != 0 {
        return [u64::MAX; 4];
    }
    core::array::from_fn(|i| test_api::word64(&r, i))
}

/// Blocks forever (an attacker that has reported stays out of the way).
pub fn park() -> ! {
    loop {
        // A closed receive from the kernel with an empty mask never ends.
        let _ = userlib::sys_recv_closed(&mut [], 0, userlib::TaskId::KERNEL);
    }
}
