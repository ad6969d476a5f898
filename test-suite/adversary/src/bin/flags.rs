//! flags: enters the kernel with RFLAGS.DF and AC set (issue 11, item 5).
//! Both flags are writable in ring 3 and the CPU clears neither on an
//! interrupt or exception; the kernel must clear them on entry (it checks
//! that it did on every entry and stops if not) and give the task its own
//! flags back on return.
//! - `df_ac_across_syscall`: a SEND to the referee (UNSTASH, a 64-byte
//!   copy by the kernel) made with DF and AC set returns the right bytes,
//!   and DF and AC are still set after it;
//! - `df_ac_across_short_exit`: the null syscall (finished on the fast
//!   path and left by the short exit, which returns RFLAGS from the save
//!   area while the lazy registers never left the CPU) made with DF, AC
//!   and every arithmetic flag set gives all of them back, with RSP and
//!   every register it does not answer in;
//! - `df_ac_across_interrupt`: spins with DF and AC set across several
//!   timer interrupts; the flags stay set throughout and the kernel
//!   survives.
//!
//! Between setting and clearing the flags only inline assembly runs: the
//! compiled Rust of this task assumes DF clear, like the kernel's.

#![no_std]
#![no_main]

use abi::Sysnum;
use test_adversary::referee::{STASH_WORDS, UNSTASH};
use test_api::check;
use test_api::regs::{self, AllRegs, Probe};
use test_api::score::Score;
use userlib::sys_refresh_task_id;

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::slots::REFEREE;

const DF: u64 = 1 << 10;
const AC: u64 = 1 << 18;
/// Spin iterations for the interrupt case: long enough for several 1 ms
/// ticks under QEMU's TCG, short enough to take well under a second.
const SPINS: u64 = 3_000_000;

/// SEND(referee, UNSTASH) into `reply` with DF and AC set. Returns the
/// response code and RFLAGS as seen right after the syscall.
fn unstash_with_flags_set(reply: &mut [u8; STASH_WORDS * 8]) -> (u64, u64) {
    let referee = u64::from(sys_refresh_task_id(REFEREE).0);
    let (code, flags): (u64, u64);
    // Safety: a SEND with valid buffers (an empty message, `reply`, no
    // leases); the flags are set and cleared inside this block, so no
    // compiled code runs with them. SYSCALL clobbers RCX and R11.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "or qword ptr [rsp], {set}",
            "popfq",
            "syscall",
            "pushfq",
            "pop {flags}",
            "push {flags}",
            "and qword ptr [rsp], {clear}",
            "popfq",
            set = const (DF | AC) as i32,
            clear = const !(DF | AC) as i32,
            flags = out(reg) flags,
            inout("rax") Sysnum::Send as u64 => code,
            inout("rdi") referee => _,
            inout("rsi") u64::from(UNSTASH) => _,
            inout("rdx") 0u64 => _,
            inout("r10") 0u64 => _,
            inout("r8") reply.as_mut_ptr() as u64 => _,
            inout("r9") reply.len() as u64 => _,
            inout("r12") 0u64 => _,
            inout("r13") 0u64 => _,
            out("rcx") _,
            out("r11") _,
        );
    }
    (code, flags)
}

/// Spins `SPINS` times with DF and AC set, checking them every time round.
/// Returns how many checks found either flag clear.
fn spin_with_flags_set() -> u64 {
    let lost: u64;
    // Safety: only registers and the stack are used while the flags are
    // set; they are cleared before the block ends.
    unsafe {
        core::arch::asm!(
            "xor {lost:e}, {lost:e}",
            "pushfq",
            "or qword ptr [rsp], {set}",
            "popfq",
            "2:",
            "pushfq",
            "pop {f}",
            "and {f}, {both}",
            "cmp {f}, {both}",
            "je 3f",
            "inc {lost}",
            "3:",
            "dec {n}",
            "jnz 2b",
            "pushfq",
            "and qword ptr [rsp], {clear}",
            "popfq",
            set = const (DF | AC) as i32,
            both = const (DF | AC) as i32,
            clear = const !(DF | AC) as i32,
            lost = out(reg) lost,
            f = out(reg) _,
            n = inout(reg) SPINS => _,
        );
    }
    lost
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();

    let mut pattern = [0u64; STASH_WORDS];
    for (i, w) in pattern.iter_mut().enumerate() {
        *w = (0x0101_0101_0101_0101 * (i as u64 + 1)) ^ 0xDF;
    }
    test_adversary::stash(REFEREE, &pattern);
    let mut reply = [0u8; STASH_WORDS * 8];
    let (code, flags) = unstash_with_flags_set(&mut reply);
    let got: [u64; STASH_WORDS] = core::array::from_fn(|i| test_api::word64(&reply, i));
    check!(
        s,
        "df_ac_across_syscall",
        code == 0 && got == pattern && flags & (DF | AC) == DF | AC,
        "code {code:#x}, reply {}, flags after the syscall {flags:#x}",
        if got == pattern { "intact" } else { "garbled" }
    );

    let before = Probe {
        regs: AllRegs {
            rax: Sysnum::RefreshTaskId as u64,
            rdi: u64::from(REFEREE.0),
            ..AllRegs::filled(regs::marker)
        },
        flags: regs::USER_FLAGS,
        ..Probe::default()
    };
    let mut after = before;
    regs::syscall_probe(&mut after);
    // REFRESH_TASK_ID answers in RAX and RDI (words 0 and 4).
    let changed = before
        .regs
        .words()
        .iter()
        .zip(after.regs.words())
        .enumerate()
        .filter(|&(i, (b, a))| i != 0 && i != 4 && *b != a)
        .count();
    check!(
        s,
        "df_ac_across_short_exit",
        after.flags & regs::USER_FLAGS == regs::USER_FLAGS
            && after.rsp_after == after.rsp_before
            && changed == 0,
        "flags after {:#x} (set {:#x}), rsp {:#x} -> {:#x}, {changed} registers changed",
        after.flags,
        regs::USER_FLAGS,
        after.rsp_before,
        after.rsp_after
    );

    let start = userlib::sys_get_timer().now;
    let lost = spin_with_flags_set();
    let ticks = userlib::sys_get_timer().now - start;
    check!(
        s,
        "df_ac_across_interrupt",
        lost == 0 && ticks >= 2,
        "{lost} of {SPINS} checks found DF/AC cleared; {ticks} timer ticks passed while spinning (need >= 2)"
    );

    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
