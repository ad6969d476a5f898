//! tdx-bench: guest instructions for an allocate + free round trip of one 4 KiB TDX frame
//! through the TdxHost IDL (the free includes tdx-host's scrub and PAGE.RDMD check), measured
//! like bench-client: TSC under `-icount shift=0`, calibrated in the same run, median of samples.
//!
//! Then a minimal TD (TDR, 6 TDCS pages, MNG.INIT; no vCPU, no memory) built and torn down
//! through the TD operations, on the same 7 frames every sample: guest instructions to create
//! it and to tear it down (VPFLUSHDONE, CACHE.WB, KEY.FREEID, 7 RECLAIM + WBINVD).
//!
//! Then the restart-to-serving cost of a Ready tdx-host: from the kernel-IPC restart (this task
//! holds the right over tdx-host) until `status` answers Ready again, through the client's
//! retry of the stale task id. tdx-host outranks this task, so the window holds its whole new
//! instance: the kernel's restart, re-attaching to the module through the durable bring-up
//! record, restoring the ledger, and the reply. Its quarantine is drained first, so no scrub
//! step falls inside the window.

#![no_std]
#![no_main]

use tdx_abi::TdParams;
use tdx_host_api::{addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, ModuleState, TdxHost};
use test_api::measure::{median, tsc, Calibration};
use userlib::{hl, sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

const SAMPLES: usize = 201;
/// Restarts measured (each re-runs tdx-host's start-up, tens of millions of instructions).
const RESTARTS: usize = 5;
/// Minimal TDs built and torn down.
const TDS: usize = 21;

/// Median guest ticks to create and to tear down a minimal TD on `p` (TDR, then 6 TDCS pages);
/// `ok` is cleared if any step fails.
fn minimal_td(t: &TdxHost, p: &[u64; 7], ok: &mut bool) -> (u64, u64) {
    let params = TdParams::default().to_bytes();
    let mut down = [0u64; TDS];
    let mut k = 0;
    let create = median::<TDS>(|| {
        let t0 = tsc();
        let made = t.td_create(p[0]).and_then(|c| {
            p[1..].iter().try_for_each(|&pa| t.td_add_tdcs(c.td, pa))?;
            t.td_init(c.td, &params).map(|()| c.td)
        });
        let d = tsc() - t0;
        *ok &= made.is_ok();
        let t1 = tsc();
        *ok &= made.and_then(|td| t.td_teardown(td)).is_ok();
        if let Some(slot) = down.get_mut(k) {
            *slot = tsc() - t1;
        }
        k += 1;
        d
    });
    down.sort_unstable();
    (create, down[TDS / 2])
}

/// Waits (one timer tick at a time) until tdx-host's quarantine is drained; false if it never is.
fn drain(t: &TdxHost) -> bool {
    for _ in 0..10_000 {
        if t.stats().quarantined_bytes == 0 {
            return true;
        }
        hl::sleep_for(1, task_gen::notifications::TIMER_MASK);
    }
    false
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let settled = t.status_settled(100_000, || hl::sleep_for(1, 1));
    let ready = settled.state() == Some(ModuleState::Ready);
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
    let mut p = [0u64; 7];
    let got = t.alloc_frames(0, FrameSize::K4, MemClass::Tdx, 7, addrs_as_bytes(&mut p));
    ok &= got == Ok(7);
    let (create, teardown) = minimal_td(&t, &p, &mut ok);
    ulog!(
        "bench result: tdx_td_minimal_create {} instructions",
        to_insn(create)
    );
    ulog!(
        "bench result: tdx_td_minimal_teardown {} instructions",
        to_insn(teardown)
    );
    ok &= t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&p)) == Ok(7);
    ok &= drain(&t);
    let generation = |id: userlib::TaskId| id.generation().0;
    let gen0 = generation(sys_refresh_task_id(task_gen::slots::TDX_HOST));
    let restart = median::<RESTARTS>(|| {
        let t0 = tsc();
        ok &= hl::restart_task(task_gen::slots::TDX_HOST, true).is_ok();
        ok &= t.status().state() == Some(ModuleState::Ready);
        tsc() - t0
    });
    let restarts = generation(sys_refresh_task_id(task_gen::slots::TDX_HOST)).wrapping_sub(gen0);
    ok &= usize::from(restarts) == RESTARTS;
    ulog!(
        "bench result: tdx_restart_to_serving {} instructions (median of {restarts} restarts)",
        to_insn(restart)
    );
    sys_send(jefe, 1, &[u8::from(ok)], &mut [], &[]);
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
