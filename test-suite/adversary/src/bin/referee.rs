//! referee: supervisor and scorekeeper of the hostile image.
//!
//! It is task 0, so the kernel tells it of every fault. A fault in a task
//! the config lists as `may-fault` (an attacker that faults by design, such
//! as the syscall fuzzer) is recorded and the task restarted at once; any
//! other fault is an unexpected one and fails the image, though the task is
//! still restarted so the other attacks run to the end. A task listed as
//! `hold-faulted` (idle, which an attacker faults to leave nothing
//! runnable) is recorded and left faulted for that attacker. The referee never
//! SENDs: a hostile task could otherwise wedge it by not answering.
//!
//! The run ends when every attacker has reported DONE (verdict from the
//! attackers' counts and the unexpected faults), or at the deadline (the
//! missing attackers are named, and the run fails).

#![no_std]
#![no_main]

use abi::TaskState;
use test_adversary::referee as op;
use test_api::score::Score;
use test_api::{word32, word64};
use userlib::hl;
use userlib::{sys_recv_open, sys_reply, sys_set_timer, ulog, TaskId};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
mod config {
    include!(concat!(env!("OUT_DIR"), "/referee_config.rs"));
}

use task_gen::notifications::{FAULT_MASK, TIMER_MASK};

const MAX_TASKS: usize = abi::MAX_TASKS;
/// How often a task that faults unexpectedly is restarted before it is
/// left faulted (a crash loop must not starve the attackers).
const UNEXPECTED_RESTARTS: u64 = 3;
const EXIT_PASS: u8 = 0x10;
const EXIT_FAIL: u8 = 0x11;

struct Referee {
    done: [bool; MAX_TASKS],
    /// The attackers' cases and the referee's own.
    score: Score,
    unexpected_faults: u32,
    last_fault: [[u64; 3]; MAX_TASKS],
    fault_count: [u64; MAX_TASKS],
    stash: [[u64; op::STASH_WORDS]; MAX_TASKS],
}

fn name(i: usize) -> &'static str {
    task_gen::TASK_NAMES.get(i).copied().unwrap_or("?")
}

fn exit(value: u8) -> ! {
    if config::EXIT_PORT != 0 {
        // Safety: the manifest grants the referee this port (the kernel
        // faults it otherwise), and it is QEMU's isa-debug-exit device.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") config::EXIT_PORT, in("al") value, options(nomem, nostack))
        }
    }
    // No isa-debug-exit device (a rig): the kernel resets or halts.
    let _ = hl::end_run();
    loop {
        hl::sleep_for(1000, TIMER_MASK);
    }
}

impl Referee {
    fn on_faults(&mut self) {
        let mut from = 1;
        while let Ok(Some(i)) = hl::find_faulted_task(from) {
            from = usize::from(i.0) + 1;
            let index = usize::from(i.0);
            let Ok((TaskState::Faulted(f), _)) = hl::read_task_status(i) else {
                continue;
            };
            self.last_fault[index] = f.to_words();
            self.fault_count[index] += 1;
            if config::HOLD_FAULTED.contains(&i.0) {
                // Faulted on purpose by an attacker, which restarts it once
                // it has seen the kernel survive the state.
                continue;
            }
            if !config::MAY_FAULT.contains(&i.0) {
                self.unexpected_faults += 1;
                let mut msg = [0u8; abi::PANIC_MESSAGE_MAX];
                let n = hl::read_panic_message(i, &mut msg).unwrap_or(0);
                let text = core::str::from_utf8(&msg[..n]).unwrap_or("<not UTF-8>");
                ulog!("unexpected fault in {}: {f:?} {text}", name(index));
                if self.fault_count[index] > UNEXPECTED_RESTARTS {
                    ulog!("{} keeps faulting: left faulted", name(index));
                    continue;
                }
            }
            if let Err(e) = hl::restart_task(i, true) {
                ulog!("cannot restart {}: {e:?}", name(index));
            }
        }
    }

    fn all_done(&self) -> bool {
        config::ATTACKERS.iter().all(|&a| self.done[usize::from(a)])
    }

    fn finish(&mut self) -> ! {
        let missing = config::ATTACKERS
            .iter()
            .filter(|&&a| !self.done[usize::from(a)])
            .count();
        let attackers_failed = self.score.failed();
        if missing == 0 {
            let n = config::ATTACKERS.len();
            self.score.case(&"all_attackers_finished", Ok(()));
            ulog!("({n} attackers reported)");
        } else {
            for &a in config::ATTACKERS {
                if !self.done[usize::from(a)] {
                    ulog!("attacker {} did not finish", name(usize::from(a)));
                }
            }
            self.score.fail(
                "all_attackers_finished",
                format_args!(
                    "{missing} attackers did not report within {} ms",
                    config::TIMEOUT_MS
                ),
            );
        }
        let faults = self.unexpected_faults;
        self.score.check(
            "no_unexpected_faults",
            faults == 0,
            format_args!("{faults} unexpected faults (see above)"),
        );
        let ok = missing == 0 && faults == 0 && attackers_failed == 0;
        self.score.verdict(task_gen::IMAGE_NAME);
        exit(if ok { EXIT_PASS } else { EXIT_FAIL })
    }

    /// Serves one request. Replies are clipped to what the client said it
    /// can take: a longer reply would be a usage fault of the referee, and
    /// a fault of the supervisor stops the kernel.
    fn serve(&mut self, sender: TaskId, operation: u64, msg: &[u8], capacity: usize) {
        let index = usize::from(sender.index().0);
        match u16::try_from(operation).unwrap_or(0) {
            op::DONE if word32(msg, 0) == op::DONE_MAGIC => {
                if config::ATTACKERS.contains(&sender.index().0) && !self.done[index] {
                    self.done[index] = true;
                    self.score.absorb(
                        u64::from(word32(msg, 1)),
                        u64::from(word32(msg, 2)),
                        word32(msg, 3),
                    );
                    sys_reply(sender, 0, &[]);
                } else {
                    sys_reply(sender, op::BAD_OPERATION, &[]);
                }
            }
            op::STASH => {
                let slot = &mut self.stash[index];
                for (i, w) in slot.iter_mut().enumerate() {
                    *w = word64(msg, i);
                }
                sys_reply(sender, 0, &[]);
            }
            op::UNSTASH => {
                let mut out = [0u8; op::STASH_WORDS * 8];
                for (chunk, w) in out.chunks_exact_mut(8).zip(self.stash[index]) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                sys_reply(sender, 0, &out[..out.len().min(capacity)]);
            }
            op::LAST_FAULT => {
                let t = word32(msg, 0) as usize;
                let (f, count) = match (self.last_fault.get(t), self.fault_count.get(t)) {
                    (Some(f), Some(&c)) => (*f, c),
                    _ => ([0; 3], 0),
                };
                let mut out = [0u8; 32];
                for (chunk, w) in out.chunks_exact_mut(8).zip([f[0], f[1], f[2], count]) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                sys_reply(sender, 0, &out[..out.len().min(capacity)]);
            }
            _ => sys_reply(sender, op::BAD_OPERATION, &[]),
        }
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut r = Referee {
        done: [false; MAX_TASKS],
        score: Score::default(),
        unexpected_faults: 0,
        last_fault: [[0; 3]; MAX_TASKS],
        fault_count: [0; MAX_TASKS],
        stash: [[0; op::STASH_WORDS]; MAX_TASKS],
    };
    ulog!(
        "adversary: {} attackers, deadline {} ms",
        config::ATTACKERS.len(),
        config::TIMEOUT_MS
    );
    let deadline = userlib::sys_get_timer().now + config::TIMEOUT_MS;
    sys_set_timer(Some(deadline), TIMER_MASK);
    let mut buf = [0u8; op::STASH_WORDS * 8];
    loop {
        let m = sys_recv_open(&mut buf, FAULT_MASK | TIMER_MASK);
        if m.sender == TaskId::KERNEL {
            if m.operation & FAULT_MASK != 0 {
                r.on_faults();
            }
            if m.operation & TIMER_MASK != 0 && userlib::sys_get_timer().now >= deadline {
                r.finish();
            }
            continue;
        }
        let n = m.message_len.min(buf.len());
        let msg = buf;
        r.serve(m.sender, m.operation, &msg[..n], m.response_capacity);
        if r.all_done() {
            r.finish();
        }
    }
}
