//! runner: the test image's supervisor and scorekeeper.
//!
//! It hands the suite one case number at a time, prints one line per case
//! (`test NAME ... ok|FAILED`), and ends the QEMU run with the verdict
//! through isa-debug-exit. As supervisor it hears of every fault: a fault
//! of the suite fails the running case (the suite is restarted and goes on
//! with the next one); a fault of any other task is recorded for the suite
//! to inspect. A case that does not finish within its time fails as hung.
//! After a failed case the helper tasks are restarted so the next case
//! starts clean.

#![no_std]
#![no_main]

use abi::{FaultInfo, TaskIndex, TaskState};
use test_api::score::Score;
use test_api::{runner as op, word32};
use userlib::hl;
use userlib::{sys_get_timer, sys_recv_open, sys_reply, sys_set_timer, ulog, TaskId};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::notifications::{FAULT_MASK, TIMER_MASK};

/// Ticks (ms) a case may take.
const CASE_TIMEOUT: u64 = 5000;
const SUITE: TaskIndex = task_gen::tasks::SUITE;
const MAX_TASKS: usize = abi::MAX_TASKS;

const EXIT_PASS: u8 = 0x10;
const EXIT_FAIL: u8 = 0x11;

struct Runner {
    count: u32,
    next: u32,
    current: Option<u32>,
    name: [u8; 64],
    name_len: usize,
    /// The cases so far, for the verdict line.
    score: Score,
    deadline: u64,
    /// Last fault seen per task, and the generation it was seen in (so a
    /// task still faulted at the next scan is not recorded twice).
    faults: [[u64; 3]; MAX_TASKS],
    seen: [Option<u16>; MAX_TASKS],
}

fn exit(value: u8) -> ! {
    // Safety: the manifest grants the runner the isa-debug-exit port.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") 0xf4u16, in("al") value, options(nomem, nostack))
    }
    // No isa-debug-exit device (a rig): the kernel resets or halts.
    let _ = hl::end_run();
    loop {
        hl::sleep_for(1000, TIMER_MASK);
    }
}

impl Runner {
    fn finish_case(&mut self, passed: bool, why: core::fmt::Arguments<'_>) {
        let name = self.name;
        let name = core::str::from_utf8(&name[..self.name_len]).unwrap_or("?");
        if passed {
            self.score.pass(name);
        } else {
            self.score.fail(name, why);
        }
        self.current = None;
        sys_set_timer(None, 0);
        if self.next >= self.count {
            self.score.verdict(task_gen::IMAGE_NAME);
            exit(if self.score.failed() == 0 {
                EXIT_PASS
            } else {
                EXIT_FAIL
            });
        }
    }

    /// Restarts the suite and every other faulted or helper task.
    fn reset_after_failure(&mut self) {
        for (i, _) in task_gen::TASK_NAMES.iter().enumerate().skip(1) {
            let idx = TaskIndex(i as u16);
            if i == usize::from(task_gen::tasks::IDLE.0) {
                continue;
            }
            let _ = hl::restart_task(idx, true);
            self.faults[i] = [0; 3];
        }
    }

    fn on_faults(&mut self) {
        let mut from = 1;
        while let Ok(Some(i)) = hl::find_faulted_task(from) {
            from = usize::from(i.0) + 1;
            let Ok((TaskState::Faulted(f), generation)) = hl::read_task_status(i) else {
                continue;
            };
            if self.seen[usize::from(i.0)] == Some(generation.0) {
                continue;
            }
            self.seen[usize::from(i.0)] = Some(generation.0);
            self.faults[usize::from(i.0)] = f.to_words();
            if i == SUITE {
                let mut msg = [0u8; abi::PANIC_MESSAGE_MAX];
                let n = if f == FaultInfo::Panic {
                    hl::read_panic_message(i, &mut msg).unwrap_or(0)
                } else {
                    0
                };
                let text = core::str::from_utf8(&msg[..n]).unwrap_or("?");
                if self.current.is_some() {
                    self.finish_case(false, format_args!("suite faulted: {f:?} {text}"));
                } else {
                    ulog!("suite faulted between cases: {f:?} {text}");
                }
                self.reset_after_failure();
            }
        }
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut r = Runner {
        count: 0,
        next: 0,
        current: None,
        name: [0; 64],
        name_len: 0,
        score: Score::default(),
        deadline: 0,
        faults: [[0; 3]; MAX_TASKS],
        seen: [None; MAX_TASKS],
    };
    let mut buf = [0u8; 80];
    loop {
        let m = sys_recv_open(&mut buf, FAULT_MASK | TIMER_MASK);
        if m.sender == TaskId::KERNEL {
            if m.operation & FAULT_MASK != 0 {
                r.on_faults();
            }
            if m.operation & TIMER_MASK != 0
                && r.current.is_some()
                && sys_get_timer().now >= r.deadline
            {
                r.finish_case(false, format_args!("timed out after {CASE_TIMEOUT} ms"));
                r.reset_after_failure();
            }
            continue;
        }
        let msg = &buf[..m.message_len.min(buf.len())];
        match m.operation as u16 {
            op::NEXT_CASE => {
                r.count = word32(msg, 0);
                let reply = if r.next < r.count { r.next } else { op::DONE };
                sys_reply(m.sender, 0, &reply.to_le_bytes());
            }
            op::START => {
                let case = word32(msg, 0);
                let name = &msg[4..];
                let n = name.len().min(r.name.len());
                r.name[..n].copy_from_slice(&name[..n]);
                r.name_len = n;
                r.current = Some(case);
                r.next = case + 1;
                r.deadline = sys_get_timer().now + CASE_TIMEOUT;
                sys_set_timer(Some(r.deadline), TIMER_MASK);
                sys_reply(m.sender, 0, &[]);
            }
            op::PASSED => {
                sys_reply(m.sender, 0, &[]);
                if r.current == Some(word32(msg, 0)) {
                    r.finish_case(true, format_args!(""));
                }
            }
            op::TAKE_FAULT => {
                let i = word32(msg, 0) as usize;
                let words = r.faults.get(i).copied().unwrap_or([0; 3]);
                if let Some(f) = r.faults.get_mut(i) {
                    *f = [0; 3];
                }
                let mut out = [0u8; 24];
                for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                sys_reply(m.sender, 0, &out);
            }
            _ => sys_reply(m.sender, 2, &[]),
        }
    }
}
