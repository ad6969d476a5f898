//! bench-client: measures costs in guest instructions.
//!
//! Under `-icount shift=0` QEMU advances virtual time by one nanosecond
//! per instruction and derives the TSC from it, so a TSC delta is an
//! instruction count times a constant. The constant is measured in the
//! same run with a loop of known length, and the cost of reading the TSC
//! is measured and subtracted. Each figure is the median of many samples.

#![no_std]
#![no_main]

use test_api::measure::{median, tsc, Calibration};
use userlib::{sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

const SAMPLES: usize = 501;

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let server = sys_refresh_task_id(task_gen::slots::BENCH_SERVER);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    // Warm up everything once.
    sys_send(server, 0, &[], &mut [], &[]);
    let cal = Calibration::measure::<SAMPLES>();
    let to_insn = |ticks: u64| cal.instructions(ticks);
    let null = median::<SAMPLES>(|| {
        let t0 = tsc();
        sys_refresh_task_id(task_gen::slots::BENCH_SERVER);
        tsc() - t0
    });
    let ipc = median::<SAMPLES>(|| {
        let t0 = tsc();
        sys_send(server, 0, &[], &mut [], &[]);
        tsc() - t0
    });
    ulog!(
        "bench calibration: tsc-read={} ticks, {} ticks per 1000 instructions",
        cal.empty,
        cal.ticks_per_1000_insn
    );
    ulog!("bench result: null_syscall {} instructions", to_insn(null));
    ulog!("bench result: ipc_round_trip {} instructions", to_insn(ipc));
    sys_send(jefe, 1, &[1], &mut [], &[]);
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
