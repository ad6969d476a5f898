//! tdx-bench: guest instructions for an allocate + free round trip of one 4 KiB TDX frame
//! through the TdxHost IDL (the free includes tdx-host's scrub and PAGE.RDMD check), measured
//! like bench-client: TSC under `-icount shift=0`, calibrated in the same run, median of samples.

#![no_std]
#![no_main]

use tdx_host_api::{addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, TdxHost};
use userlib::{sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

const SAMPLES: usize = 201;

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
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let ready = t
        .status()
        .is_ok_and(|s| s.state() == Some(tdx_host_api::ModuleState::Ready));
    let empty = median(|| {
        let t0 = tsc();
        tsc() - t0
    });
    let (a, b) = (median(|| spin(1000)), median(|| spin(11000)));
    let per_1000 = (b - a) / 20;
    let to_insn = |ticks: u64| ticks.saturating_sub(empty) * 1000 / per_1000.max(1);
    let mut addr = [0u64; 1];
    let mut ok = ready;
    let alloc = median(|| {
        let t0 = tsc();
        ok &= t.alloc_frames(
            0,
            FrameSize::K4,
            MemClass::Tdx,
            1,
            addrs_as_bytes(&mut addr),
        ) == Ok(1);
        let d = tsc() - t0;
        ok &= t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&addr)) == Ok(1);
        d
    });
    let round = median(|| {
        let t0 = tsc();
        ok &= t.alloc_frames(
            0,
            FrameSize::K4,
            MemClass::Tdx,
            1,
            addrs_as_bytes(&mut addr),
        ) == Ok(1);
        ok &= t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&addr)) == Ok(1);
        tsc() - t0
    });
    let status = median(|| {
        let t0 = tsc();
        let _ = t.status();
        tsc() - t0
    });
    ulog!(
        "bench result: tdx_status_ipc {} instructions",
        to_insn(status)
    );
    ulog!("bench result: tdx_alloc_4k {} instructions", to_insn(alloc));
    ulog!(
        "bench result: tdx_alloc_free_4k_round_trip {} instructions",
        to_insn(round)
    );
    sys_send(jefe, 1, &[u8::from(ok)], &mut [], &[]);
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
