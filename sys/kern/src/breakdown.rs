//! Where the instructions of a syscall go: per-phase counts for
//! `cargo xtask bench --breakdown`.
//!
//! Pattern: the syscall path calls [`begin`] when Rust is entered,
//! [`enter`] once the syscall number is known, [`mark`] at the end of each
//! later phase and [`end`] just before it returns to the entry stub. Each
//! mark reads the TSC, charges the ticks since the previous mark to its
//! phase (for the syscall being made) and reads the TSC again, so the
//! bookkeeping itself lands in no phase but a small constant, measured at
//! the first use ([`Calibration`]) and subtracted. Under QEMU `-icount
//! shift=0` the TSC counts guest instructions times a constant, also
//! measured then, so the printed figures are instructions.
//!
//! Every `WINDOW` calls of one syscall the kernel prints one line, the mean
//! instructions of each phase over those calls, and starts the window
//! again:
//! `kernel breakdown: NAME n=256 probe=P span=S enter=… decode=… check=… transfer=… schedule=… leave=…`
//! (one decimal). `span` is the whole instrumented Rust part, from
//! [`begin`] to the end of [`end`]'s bookkeeping, probes included, so the
//! client's total less `span` is what lies outside the Rust entry (task
//! stubs, SYSCALL/SYSRET, the asm entry and exit, to within the two or
//! three instructions of the Rust prologue before `begin` and after the
//! last TSC read). `cargo xtask bench --breakdown` reads the last line of
//! each syscall and sets it beside the client's total.
//!
//! Invariants: all of this is behind the build-time constant
//! `config::BREAKDOWN` (the `[kernel] breakdown` manifest key), so in every
//! other image each call below is an empty inline function. Only the boot
//! CPU makes syscalls, with interrupts off, so the counters need no lock;
//! they are relaxed atomics only to be shareable statics.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::BREAKDOWN;

/// The phases of one syscall in the kernel's Rust code. The entry and exit
/// stubs (asm) and the task's own stub are outside them: the benchmark
/// reports them as its measured total less these.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// From the Rust entry to the syscall number: the entry-flag check,
    /// the caller, the table borrow, the kill-injection tests.
    Enter = 0,
    /// The argument words decoded into the syscall's struct.
    Decode = 1,
    /// The checks: slices, edge, generation, the peer's state.
    Check = 2,
    /// The copy, and the results and states written.
    Transfer = 3,
    /// Choosing the task to resume and switching to it.
    Schedule = 4,
    /// The table released, up to the return to the stub.
    Leave = 5,
}

const PHASES: usize = 6;
const NAMES: [&str; PHASES] = ["enter", "decode", "check", "transfer", "schedule", "leave"];
/// Syscall numbers counted separately: `abi::Sysnum` (0..=20) fits below
/// the last slot, which is the calibration's scratch (`calibrate`).
const SYSNUMS: usize = 22;
/// Calls per printed line.
const WINDOW: u64 = 256;

static LAST: AtomicU64 = AtomicU64::new(0);
/// The TSC at [`begin`] of the current syscall.
static START: AtomicU64 = AtomicU64::new(0);
/// Ticks from [`begin`] to the end of [`end`]'s bookkeeping, summed over
/// the window: the instrumented syscall's whole Rust part, probes included.
static SPAN: [AtomicU64; SYSNUMS] = [const { AtomicU64::new(0) }; SYSNUMS];
static SYSNUM: AtomicUsize = AtomicUsize::new(SYSNUMS);
static TICKS: [[AtomicU64; PHASES]; SYSNUMS] =
    [const { [const { AtomicU64::new(0) }; PHASES] }; SYSNUMS];
static CALLS: [AtomicU64; SYSNUMS] = [const { AtomicU64::new(0) }; SYSNUMS];
/// TSC ticks per 1000 instructions (0: not measured yet).
static TICKS_PER_1000: AtomicU64 = AtomicU64::new(0);
/// Instructions one mark adds to the phase it closes, in tenths.
static PROBE_TENTHS: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn rdtsc() -> u64 {
    // Safety: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Starts counting a syscall: called first thing in the Rust entry.
#[inline(always)]
pub fn begin() {
    if BREAKDOWN {
        let now = rdtsc();
        START.store(now, Ordering::Relaxed);
        LAST.store(now, Ordering::Relaxed);
    }
}

/// Ends the `Enter` phase of syscall `number`.
#[inline(always)]
pub fn enter(number: u64) {
    if BREAKDOWN {
        let n = usize::try_from(number).map_or(SYSNUMS, |n| n.min(SYSNUMS));
        SYSNUM.store(n, Ordering::Relaxed);
        mark(Phase::Enter);
    }
}

/// Ends phase `phase` of the current syscall.
#[inline(always)]
pub fn mark(phase: Phase) {
    if BREAKDOWN {
        record(phase);
    }
}

/// Ends the syscall (its `Leave` phase) and prints a line every `WINDOW`
/// calls of the same number.
#[inline(always)]
pub fn end() {
    if BREAKDOWN {
        record(Phase::Leave);
        finish();
    }
}

/// Out of line so every mark costs the same few instructions wherever it
/// is called from (the constant [`calibrate`] measures).
#[inline(never)]
fn record(phase: Phase) {
    let now = rdtsc();
    let s = SYSNUM.load(Ordering::Relaxed);
    if let Some(row) = TICKS.get(s) {
        let delta = now.wrapping_sub(LAST.load(Ordering::Relaxed));
        let slot = &row[phase as usize];
        slot.store(slot.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }
    LAST.store(rdtsc(), Ordering::Relaxed);
}

#[cold]
#[inline(never)]
fn finish() {
    let s = SYSNUM.swap(SYSNUMS, Ordering::Relaxed);
    let Some(calls) = CALLS.get(s) else {
        return;
    };
    let n = calls.load(Ordering::Relaxed) + 1;
    calls.store(n, Ordering::Relaxed);
    let span = &SPAN[s];
    let ticks = rdtsc().wrapping_sub(START.load(Ordering::Relaxed));
    span.store(span.load(Ordering::Relaxed) + ticks, Ordering::Relaxed);
    if n < WINDOW {
        return;
    }
    calls.store(0, Ordering::Relaxed);
    if TICKS_PER_1000.load(Ordering::Relaxed) == 0 {
        calibrate();
    }
    let per_1000 = TICKS_PER_1000.load(Ordering::Relaxed).max(1);
    let probe = PROBE_TENTHS.load(Ordering::Relaxed);
    let name = abi::Sysnum::from_raw(s as u64).map_or("?", sysnum_name);
    let span = Tenths(span.swap(0, Ordering::Relaxed) * 10_000 / per_1000 / n);
    let mut v = [Tenths(0); PHASES];
    for (out, slot) in v.iter_mut().zip(&TICKS[s]) {
        let tenths = slot.swap(0, Ordering::Relaxed) * 10_000 / per_1000 / n;
        *out = Tenths(tenths.saturating_sub(probe));
    }
    crate::kprintln!(
        "kernel breakdown: {name} n={n} probe={} span={span} {}={} {}={} {}={} {}={} {}={} {}={}",
        Tenths(probe),
        NAMES[0],
        v[0],
        NAMES[1],
        v[1],
        NAMES[2],
        v[2],
        NAMES[3],
        v[3],
        NAMES[4],
        v[4],
        NAMES[5],
        v[5]
    );
}

/// A count in tenths, printed with one decimal.
#[derive(Copy, Clone)]
struct Tenths(u64);

impl core::fmt::Display for Tenths {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

/// Measures the TSC's ticks per 1000 instructions (a countdown loop of
/// known length, as the benchmark client does) and what one mark adds to
/// the phase it closes (two marks in a row: the second phase holds only
/// that).
fn calibrate() {
    let spin = |n: u64| {
        let t0 = rdtsc();
        // Safety: a register-only countdown loop of exactly 2n instructions.
        unsafe {
            core::arch::asm!("2:", "dec {0}", "jnz 2b", inout(reg) n => _, options(nomem, nostack));
        }
        rdtsc() - t0
    };
    let per_1000 = (spin(11_000).saturating_sub(spin(1_000)) / 20).max(1);
    TICKS_PER_1000.store(per_1000, Ordering::Relaxed);
    let saved = SYSNUM.swap(SYSNUMS - 1, Ordering::Relaxed);
    let slot = &TICKS[SYSNUMS - 1][Phase::Leave as usize];
    let before = slot.load(Ordering::Relaxed);
    record(Phase::Enter);
    record(Phase::Leave);
    let ticks = slot.load(Ordering::Relaxed) - before;
    slot.store(before, Ordering::Relaxed);
    SYSNUM.store(saved, Ordering::Relaxed);
    PROBE_TENTHS.store(ticks * 10_000 / per_1000, Ordering::Relaxed);
}

fn sysnum_name(s: abi::Sysnum) -> &'static str {
    use abi::Sysnum as S;
    match s {
        S::Send => "send",
        S::Recv => "recv",
        S::Reply => "reply",
        S::ReplyRecv => "reply_recv",
        S::RefreshTaskId => "refresh_task_id",
        S::Post => "post",
        S::BorrowRead | S::BorrowWrite | S::BorrowInfo => "borrow",
        _ => "other",
    }
}
