//! fuzzer: at least [`TARGET`] random system calls (issue 11: the syscall
//! fuzzer). Call `i` is derived from a fixed seed and `i` alone, so a run
//! can be repeated and resumed. Numbers are mostly real syscalls, some
//! invalid; registers come from pools biased towards this task's own
//! memory, other tasks' memory, the kernel image, 0, non-canonical and
//! wrapping addresses, and lengths from 0 to `u64::MAX`.
//!
//! Random calls mostly fault the caller, and a fault costs a restart by the
//! referee, so the fuzzer predicts each call's outcome from the kernel's
//! documented rules:
//! - predicted to return: made (the bulk of the calls);
//! - predicted to fault: made for a bounded sample ([`FAULT_BUDGET`]), with
//!   its index stashed at the referee first, so after the restart the run
//!   goes on with the next call;
//! - predicted to spam the console or the defmt stream (a valid LOG), or to
//!   block for good: skipped and counted.
//!
//! Progress (index, counts) is stashed at the referee every [`STASH_EVERY`]
//! calls; a fault that was not predicted resumes after the window it
//! happened in and is counted. Output the kernel may write (RECV buffers,
//! reply buffers) only ever lands in [`SCRATCH`], never in live state.
//!
//! `syscall_fuzz` passes when the target is reached with the kernel alive,
//! and afterwards the kernel still answers ordinary calls correctly and
//! neither the referee nor tdx-host was restarted.

#![no_std]
#![no_main]

use abi::{Sysnum, TaskId};
use test_adversary::referee::{self as rop, STASH_WORDS};
use test_api::check;
use test_api::score::Score;
use userlib::{sys_refresh_task_id, ulog, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::slots::REFEREE;
use task_gen::tasks::TDX_HOST;

const SEED: u64 = 0x7d_c0de_11f0_2026;
/// Calls to make.
const TARGET: u64 = 100_000;
/// Calls predicted to fault that are made anyway.
const FAULT_BUDGET: u64 = 200;
const STASH_EVERY: u64 = 256;
const STASH_MAGIC: u64 = 0xf022_5eed;
/// The notification bit the fuzzer posts itself before a RECV, so every
/// RECV ends at once.
const SELF_BIT: u64 = 1 << 63;
/// The kernel's limit for one defmt frame (`klog::FRAME_MAX`).
const LOG_FRAME_MAX: u64 = 256;

/// Where the kernel may write for us.
static mut SCRATCH: [u8; 4096] = [0; 4096];
/// Read-only bytes a call may name.
static READ_ONLY: [u8; 512] = [0xA5; 512];

/// Progress kept at the referee across restarts.
#[derive(Copy, Clone, Default)]
struct Progress {
    index: u64,
    made: u64,
    faults_made: u64,
    unpredicted: u64,
    skipped: u64,
    /// A predicted fault at `index` was in flight.
    in_flight: bool,
}

impl Progress {
    fn words(&self) -> [u64; STASH_WORDS] {
        [
            STASH_MAGIC,
            self.index,
            self.made,
            self.faults_made,
            self.unpredicted,
            self.skipped,
            u64::from(self.in_flight),
            0,
        ]
    }

    fn save(&self) {
        test_adversary::stash(REFEREE, &self.words());
    }

    /// Where to go on after a (re)start.
    fn load() -> (Self, bool) {
        let w = test_adversary::unstash(REFEREE);
        if w[0] != STASH_MAGIC {
            return (Progress::default(), false);
        }
        let mut p = Progress {
            index: w[1],
            made: w[2],
            faults_made: w[3],
            unpredicted: w[4],
            skipped: w[5],
            in_flight: w[6] != 0,
        };
        if p.in_flight {
            // The predicted fault happened: go on after it.
            p.index += 1;
            p.in_flight = false;
        } else {
            // A fault somewhere after the last stash that was not predicted:
            // skip that window.
            p.unpredicted += 1;
            p.index = (p.index / STASH_EVERY + 1) * STASH_EVERY;
        }
        (p, true)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn scratch() -> (u64, u64) {
    (
        (&raw const SCRATCH) as u64,
        core::mem::size_of::<[u8; 4096]>() as u64,
    )
}

fn within(base: u64, len: u64, region: u64, size: u64) -> bool {
    base >= region
        && base
            .checked_add(len)
            .is_some_and(|end| end <= region + size)
}

fn in_scratch(base: u64, len: u64) -> bool {
    let (s, n) = scratch();
    within(base, len, s, n)
}

/// Whether the kernel will let us read `len` bytes at `base`, as far as
/// the fuzzer knows its own memory (SCRATCH and READ_ONLY; a hit elsewhere
/// in its own memory is a rare misprediction).
fn own_readable(base: u64, len: u64) -> bool {
    len == 0
        || in_scratch(base, len)
        || within(base, len, READ_ONLY.as_ptr() as u64, READ_ONLY.len() as u64)
}

fn own_writable(base: u64, len: u64) -> bool {
    len == 0 || in_scratch(base, len)
}

/// A pointer/length pair.
#[derive(Copy, Clone)]
struct Slice {
    base: u64,
    len: u64,
}

fn any_length(r: &mut Rng) -> u64 {
    match r.below(6) {
        0 => 0,
        1 => r.below(64),
        2 => r.below(4096),
        3 => u64::MAX - r.below(4096),
        4 => 1 << r.below(64),
        _ => r.next(),
    }
}

fn slice(r: &mut Rng) -> Slice {
    let (sbase, slen) = scratch();
    let rbase = READ_ONLY.as_ptr() as u64;
    match r.below(10) {
        0..=3 => {
            let off = r.below(slen);
            let len = r.below(slen - off + 1);
            Slice {
                base: sbase + off,
                len,
            }
        }
        4 | 5 => {
            let off = r.below(READ_ONLY.len() as u64);
            let len = r.below(READ_ONLY.len() as u64 - off + 1);
            Slice {
                base: rbase + off,
                len,
            }
        }
        _ => {
            let base = match r.below(6) {
                // Other tasks' memory (the task area starts at 16 MiB).
                0 | 1 => 0x100_0000 + r.below(0x400_0000),
                // The kernel image and the low megabytes.
                2 => 0x10_0000 + r.below(0x40_0000),
                3 => 0,
                // Non-canonical, and the top of the address space.
                4 => 0x8000_0000_0000 + r.below(1 << 20),
                _ => u64::MAX - r.below(1 << 16),
            };
            let len = if r.below(3) == 0 { 0 } else { any_length(r) };
            // Not ours, except by a rare hit in the task area (which is
            // then a misprediction; only SCRATCH is ever written).
            Slice { base, len }
        }
    }
}

/// Task ids: real ones (current, stale), out of range, the kernel.
fn task_id(r: &mut Rng) -> u64 {
    let n = task_gen::TASK_NAMES.len() as u64;
    match r.below(8) {
        0..=3 => u64::from(sys_refresh_task_id(TaskIndex(r.below(n) as u16)).0),
        4 => r.below(n) | (r.below(4) << 16),
        5 => n + r.below(100),
        6 => u64::from(TaskId::KERNEL.0),
        _ => r.next(),
    }
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Outcome {
    Returns,
    Faults,
    Skip,
}

/// RECV's four words (buffer, mask with [`SELF_BIT`], sender) and what
/// they should do; the caller posts [`SELF_BIT`] first, so a well-formed
/// RECV returns at once.
fn recv_words(r: &mut Rng) -> ([u64; 4], Outcome) {
    let buf = slice(r);
    let closed = r.below(2) == 0;
    let sender = if closed {
        abi::RECV_CLOSED | (task_id(r) & 0xFFFF_FFFF)
    } else if r.below(8) == 0 {
        r.next()
    } else {
        0
    };
    let words = [buf.base, buf.len, r.next() | SELF_BIT, sender];
    let reserved = if sender & abi::RECV_CLOSED != 0 {
        sender & !(abi::RECV_CLOSED | 0xFFFF_FFFF) != 0
    } else {
        sender != 0
    };
    if reserved || !own_writable(buf.base, buf.len) {
        (words, Outcome::Faults)
    } else {
        (words, Outcome::Returns)
    }
}

/// REPLY's four words (peer, code, message) and what they should do:
/// nobody waits for our reply, so a well-formed one is ignored.
fn reply_words(r: &mut Rng, n: u64) -> ([u64; 4], Outcome) {
    let m = slice(r);
    let peer = task_id(r);
    let code = if r.below(4) == 0 {
        r.next()
    } else {
        r.below(1 << 32)
    };
    let words = [peer, code, m.base, m.len];
    // A code above 32 bits, or one of the kernel's own answers, faults before anything else.
    if code >= u64::from(abi::FIRST_RESERVED_CODE)
        || !own_readable(m.base, m.len)
        || (peer & 0xFFFF) >= n
    {
        (words, Outcome::Faults)
    } else {
        (words, Outcome::Returns)
    }
}

/// One random call: number, registers, and what should happen.
fn generate(index: u64) -> (u64, [u64; 8], Outcome) {
    let mut r = Rng(SEED ^ splitmix(index));
    let n = task_gen::TASK_NAMES.len() as u64;
    let mut a = [0u64; 8];
    for w in &mut a {
        *w = r.next();
    }
    // Sysnum's numbers are 0..=20.
    let number = if r.below(12) == 0 {
        21 + r.below(1000)
    } else {
        r.below(21)
    };
    let Some(sysnum) = Sysnum::from_raw(number) else {
        return (number, a, Outcome::Faults);
    };
    let outcome = match sysnum {
        Sysnum::Send => {
            let target = task_id(&mut r);
            let (msg, reply) = (slice(&mut r), slice(&mut r));
            let table = slice(&mut r).base;
            let count = if r.below(2) == 0 { 0 } else { r.below(20) };
            let op = if r.below(8) == 0 {
                r.next()
            } else {
                r.below(1 << 16)
            };
            a = [
                target, op, msg.base, msg.len, reply.base, reply.len, table, count,
            ];
            let idx = target & 0xFFFF;
            let table_len = count.saturating_mul(abi::ULEASE_SIZE as u64);
            let buffers_ok = own_readable(msg.base, msg.len) && own_writable(reply.base, reply.len);
            if target == u64::from(TaskId::KERNEL.0) {
                // Kernel IPC: no rights, no capabilities, so a well-formed
                // request is refused and writes nothing back.
                let well_formed = buffers_ok
                    && msg.len.is_multiple_of(8)
                    && msg.len <= 32
                    && count == 0
                    && (1..=12).contains(&op);
                if well_formed {
                    Outcome::Returns
                } else {
                    Outcome::Faults
                }
            } else if op > 0xFFFF
                || count > abi::MAX_LEASES as u64
                || !buffers_ok
                || !own_readable(table, table_len)
            {
                Outcome::Faults
            } else if count > 0 {
                // The lease entries are whatever the memory holds: not
                // predictable.
                Outcome::Skip
            } else if idx == u64::from(REFEREE.0) && target >> 16 == 0 {
                // The only edge (the referee never restarts, generation 0).
                // It answers with data, clipped to the reply buffer, which
                // `own_writable` already limits to SCRATCH. STASH would
                // overwrite our progress and DONE could end the run, so ask
                // for UNSTASH or LAST_FAULT.
                a[1] = if op.is_multiple_of(2) {
                    u64::from(rop::UNSTASH)
                } else {
                    u64::from(rop::LAST_FAULT)
                };
                Outcome::Returns
            } else if idx < n {
                // No edge (refused), or a stale referee id (dead code).
                Outcome::Returns
            } else {
                Outcome::Faults
            }
        }
        Sysnum::Recv => {
            let (words, outcome) = recv_words(&mut r);
            a[..4].copy_from_slice(&words);
            outcome
        }
        Sysnum::Reply => {
            let (words, outcome) = reply_words(&mut r, n);
            a[..4].copy_from_slice(&words);
            outcome
        }
        // REPLY's words four places up, RECV's in RECV's places; the REPLY
        // half is checked (and faults) first.
        Sysnum::ReplyRecv => {
            let (reply, replied) = reply_words(&mut r, n);
            let (recv, received) = recv_words(&mut r);
            a[..4].copy_from_slice(&recv);
            a[4..].copy_from_slice(&reply);
            if replied == Outcome::Faults {
                Outcome::Faults
            } else {
                received
            }
        }
        Sysnum::ReplyFault => {
            a[0] = task_id(&mut r);
            a[1] = r.below(9);
            if !(1..=6).contains(&a[1]) || (a[0] & 0xFFFF) >= n {
                Outcome::Faults
            } else {
                Outcome::Returns
            }
        }
        Sysnum::BorrowRead | Sysnum::BorrowWrite | Sysnum::BorrowInfo => {
            // Nobody ever waits for our reply, so every lender answers
            // DEFECT or a dead code before the buffer is looked at.
            let b = slice(&mut r);
            a[0] = task_id(&mut r);
            a[1] = r.below(20);
            a[2] = any_length(&mut r);
            a[3] = b.base;
            a[4] = b.len;
            if (a[0] & 0xFFFF) >= n {
                Outcome::Faults
            } else {
                Outcome::Returns
            }
        }
        Sysnum::Post => {
            a[0] = task_id(&mut r);
            a[1] = r.next();
            if (a[0] & 0xFFFF) >= n {
                Outcome::Faults
            } else {
                Outcome::Returns
            }
        }
        Sysnum::SetTimer => {
            use abi::set_timer::{ARMED, RELATIVE};
            // Disarm, absolute, relative (near or any count: a huge one
            // saturates), or a flag word with a stray bit (a usage fault).
            let flags = match r.below(8) {
                0 | 1 => 0,
                2..=4 => ARMED,
                5 | 6 => ARMED | RELATIVE,
                _ => r.next() | 1 << (2 + r.below(62)),
            };
            a[0] = flags;
            a[1] = match (flags & RELATIVE != 0, r.below(2)) {
                (true, 0) => r.below(50),
                (false, 0) => userlib::sys_get_timer().now + r.below(50),
                _ => r.next(),
            };
            a[2] = r.next() & !SELF_BIT;
            if flags & !(ARMED | RELATIVE) != 0 {
                Outcome::Faults
            } else {
                Outcome::Returns
            }
        }
        Sysnum::GetTimer => Outcome::Returns,
        // No interrupts are bound to the fuzzer.
        Sysnum::IrqControl | Sysnum::IrqStatus => Outcome::Faults,
        Sysnum::Panic => {
            let m = slice(&mut r);
            a[0] = m.base;
            a[1] = m.len;
            Outcome::Faults
        }
        Sysnum::RefreshTaskId => {
            a[0] = if r.below(2) == 0 {
                r.below(n)
            } else {
                r.next()
            };
            if a[0] >= n {
                Outcome::Faults
            } else {
                Outcome::Returns
            }
        }
        Sysnum::Log | Sysnum::LogFrame => {
            let m = slice(&mut r);
            a[0] = m.base;
            a[1] = m.len;
            // LOG reads at most 256 bytes; LOG_FRAME drops a frame over its
            // limit (with a kernel warning) without reading it.
            let checked = if sysnum == Sysnum::Log {
                m.len.min(256)
            } else {
                m.len
            };
            if sysnum == Sysnum::LogFrame && m.len > LOG_FRAME_MAX {
                Outcome::Skip
            } else if !own_readable(m.base, checked) {
                Outcome::Faults
            } else {
                // A valid log would flood the console or the defmt stream.
                Outcome::Skip
            }
        }
        // Halts until the next tick: rare, or the run would take seconds.
        Sysnum::WaitForInterrupt => {
            if r.below(64) == 0 {
                Outcome::Returns
            } else {
                Outcome::Skip
            }
        }
        // No SEAMCALL capability: refused before anything is read.
        Sysnum::Seamcall | Sysnum::SeamcallStart | Sysnum::SeamcallCollect => Outcome::Returns,
    };
    (number, a, outcome)
}

/// One raw syscall; every argument register may come back changed.
fn raw(number: u64, a: [u64; 8]) {
    // Safety: the registers are the call; the kernel writes only memory
    // it checked is ours and writable, which `generate` limits to SCRATCH
    // (and the stack never, since no pool reaches it but by chance in the
    // task area, which predicts a fault). Every register the kernel may
    // change is an output.
    unsafe {
        core::arch::asm!(
            "syscall",
            inout("rax") number => _,
            inout("rdi") a[0] => _,
            inout("rsi") a[1] => _,
            inout("rdx") a[2] => _,
            inout("r10") a[3] => _,
            inout("r8") a[4] => _,
            inout("r9") a[5] => _,
            inout("r12") a[6] => _,
            inout("r13") a[7] => _,
            out("rcx") _,
            out("r11") _,
        );
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let me = sys_refresh_task_id(TaskIndex(task_gen::TASK_INDEX));
    let referee_before = sys_refresh_task_id(REFEREE);
    let tdx_before = sys_refresh_task_id(TDX_HOST);
    let (mut p, resumed) = Progress::load();
    if !resumed {
        ulog!("syscall_fuzz: seed {SEED:#x}, {TARGET} calls, at most {FAULT_BUDGET} faulting ones");
    }
    let start = userlib::sys_get_timer().now;
    while p.made < TARGET {
        if p.index.is_multiple_of(STASH_EVERY) {
            p.save();
        }
        let (number, a, outcome) = generate(p.index);
        let make = match outcome {
            Outcome::Returns => true,
            Outcome::Faults => p.faults_made < FAULT_BUDGET && splitmix(p.index).is_multiple_of(64),
            Outcome::Skip => false,
        };
        if make {
            if outcome == Outcome::Faults {
                p.faults_made += 1;
                p.made += 1;
                p.in_flight = true;
                p.save();
                p.in_flight = false;
            } else {
                p.made += 1;
            }
            if number == Sysnum::Recv as u64 || number == Sysnum::ReplyRecv as u64 {
                let _ = userlib::sys_post(me, SELF_BIT);
            }
            raw(number, a);
            if outcome == Outcome::Faults {
                // Predicted to fault but returned: the model was wrong (the
                // kernel was not); counted.
                p.unpredicted += 1;
                p.save();
            }
        } else {
            p.skipped += 1;
        }
        p.index += 1;
    }
    p.save();
    let elapsed = userlib::sys_get_timer().now - start;

    // Forget what the random calls left behind: an armed timer and pending
    // notification bits.
    userlib::sys_set_timer(None, 0);
    let _ = userlib::sys_post(me, SELF_BIT);
    let _ = userlib::sys_recv_closed(&mut [], u64::MAX, TaskId::KERNEL);

    // The kernel still does the ordinary things right.
    let mut s = Score::default();
    let pattern: [u64; STASH_WORDS] = core::array::from_fn(|i| 0xF0F0 + i as u64);
    test_adversary::stash(REFEREE, &pattern);
    let round_trip = test_adversary::unstash(REFEREE) == pattern;
    p.save();
    let t0 = userlib::sys_get_timer().now;
    userlib::hl::sleep_for(2, 1 << 62);
    let timer_ok = userlib::sys_get_timer().now >= t0 + 2;
    let others_ok = sys_refresh_task_id(REFEREE) == referee_before
        && sys_refresh_task_id(TDX_HOST) == tdx_before;
    ulog!(
        "syscall_fuzz: seed {SEED:#x}: {} calls made ({} predicted faults), {} skipped, {} mispredicted, {} ms since the last start",
        p.made,
        p.faults_made,
        p.skipped,
        p.unpredicted,
        elapsed
    );
    check!(
        s,
        "syscall_fuzz",
        p.made >= TARGET && round_trip && timer_ok && others_ok,
        "made {} calls; IPC round trip {round_trip}, timer {timer_ok}, referee and tdx-host untouched {others_ok}",
        p.made
    );
    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
