//! tdx-bench: guest instructions for an allocate + free round trip of one 4 KiB TDX frame
//! through the TdxHost IDL (the free includes tdx-host's scrub and PAGE.RDMD check), measured
//! like bench-client: TSC under `-icount shift=0`, calibrated in the same run, median of samples.

#![no_std]
#![no_main]

use tdx_host_api::{addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, TdxHost};
use test_api::measure::{median, tsc, Calibration};
use userlib::{sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

const SAMPLES: usize = 201;

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let ready = t.status().state() == Some(tdx_host_api::ModuleState::Ready);
    let cal = Calibration::measure::<SAMPLES>();
    let to_insn = |ticks: u64| cal.instructions(ticks);
    let mut addr = [0u64; 1];
    let mut ok = ready;
    let alloc = median::<SAMPLES>(|| {
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
    let round = median::<SAMPLES>(|| {
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
    let status = median::<SAMPLES>(|| {
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
