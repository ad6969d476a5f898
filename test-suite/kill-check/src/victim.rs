//! chaos-victim: the target of the kill image's `[kernel.chaos]`. It only
//! runs: short stretches of work (so timer ticks land on its instructions)
//! between system calls (so kills land before and after them), and counts
//! its incarnations in durable memory. The kernel kills it at seeded
//! points; jefe restarts it each time; kill-check counts the restarts.

#![no_std]
#![no_main]

use userlib::durable::Durable;
use userlib::{sys_get_timer, sys_refresh_task_id, TaskIndex};

/// `[incarnations, work done over all incarnations]`.
#[link_section = ".durable"]
static COUNTS: Durable<[u64; 2]> = Durable::zeroed();

#[unsafe(no_mangle)]
pub fn main() -> ! {
    // Safety: the only reference to COUNTS in this incarnation.
    let counts = unsafe { COUNTS.get_mut() };
    counts[0] += 1;
    let mut x: u64 = counts[1] | 1;
    loop {
        for _ in 0..2000 {
            x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        counts[1] = counts[1].wrapping_add(1);
        let _ = sys_get_timer();
        let _ = sys_refresh_task_id(TaskIndex(0));
    }
}
