//! bench-client: measures costs in guest instructions.
//!
//! Under `-icount shift=0` QEMU advances virtual time by one nanosecond
//! per instruction and derives the TSC from it, so a TSC delta is an
//! instruction count times a constant. The constant is measured in the
//! same run with a loop of known length, and the cost of reading the TSC
//! is measured and subtracted. Each figure is the median of many samples.

#![no_std]
#![no_main]

use userlib::{sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

const SAMPLES: usize = 501;

fn tsc() -> u64 {
    let (lo, hi): (u32, u32);
    // Safety: RDTSC is allowed in ring 3 (CR4.TSD is clear) and only reads.
    unsafe {
        core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

fn median(mut f: impl FnMut() -> u64) -> u64 {
    let mut s = [0u64; SAMPLES];
    for v in s.iter_mut() {
        *v = f();
    }
    s.sort_unstable();
    s[SAMPLES / 2]
}

/// TSC ticks for a loop of exactly `2 * n` instructions.
fn spin(n: u64) -> u64 {
    let t0 = tsc();
    // Safety: a register-only countdown loop.
    unsafe {
        core::arch::asm!("2:", "dec {0}", "jnz 2b", inout(reg) n => _, options(nomem, nostack))
    };
    tsc() - t0
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let server = sys_refresh_task_id(task_gen::slots::BENCH_SERVER);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    // Warm up everything once.
    sys_send(server, 0, &[], &mut [], &[]);
    let empty = median(|| {
        let t0 = tsc();
        tsc() - t0
    });
    // Two loop lengths so the TSC overhead cancels: ticks per instruction.
    let (a, b) = (median(|| spin(1000)), median(|| spin(11000)));
    let ticks_per_1000_insn = (b - a) / 20;
    let to_insn = |ticks: u64| ticks.saturating_sub(empty) * 1000 / ticks_per_1000_insn.max(1);
    let null = median(|| {
        let t0 = tsc();
        sys_refresh_task_id(task_gen::slots::BENCH_SERVER);
        tsc() - t0
    });
    let ipc = median(|| {
        let t0 = tsc();
        sys_send(server, 0, &[], &mut [], &[]);
        tsc() - t0
    });
    ulog!("bench calibration: tsc-read={empty} ticks, {ticks_per_1000_insn} ticks per 1000 instructions");
    ulog!("bench result: null_syscall {} instructions", to_insn(null));
    ulog!("bench result: ipc_round_trip {} instructions", to_insn(ipc));
    sys_send(jefe, 1, &[1], &mut [], &[]);
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
