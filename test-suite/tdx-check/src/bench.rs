//! tdx-bench: guest instructions of the TdxHost IDL, measured like bench-client: TSC under
//! `-icount shift=0`, calibrated in the same run, median of samples. `status`; one 4 KiB TDX
//! frame allocated, freed (the free only quarantines: its scrub and PAGE.RDMD check run later
//! between requests, and the quarantine is drained before each window so no scrub step falls
//! in it), and both as a round trip, with its address in the message (`alloc_frame`,
//! `free_frame`); the same allocation and free through a lease of one address (`_lease`); 512
//! frames allocated and freed in one request each, per frame; and the background scrub +
//! PAGE.RDMD per 4 KiB, from the time tdx-host reports for its scrub steps
//! (`stats.scrub_step_tsc`) over the bytes they released, with the kernel's clearing method as
//! a note. Every measured call's answer is checked; if any is wrong the
//! bench prints no figure and reports failure.
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

use abi::kipc::ScrubMethod;
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
/// With nothing quarantined tdx-host arms no scrub step, so none can fall into a window that
/// starts after this.
fn drain(t: &TdxHost) -> bool {
    for _ in 0..10_000 {
        if t.stats().quarantined_bytes == 0 {
            return true;
        }
        hl::sleep_for(1, task_gen::notifications::TIMER_MASK);
    }
    false
}

/// Clears `ok` if `good` is false, naming the bench's source line that checked it.
fn check(ok: &mut bool, good: bool, line: u32) {
    if !good {
        ulog!("bench-tdx: wrong answer checked at line {line}");
        *ok = false;
    }
}

/// Frames per bulk request: one full lease of addresses.
const BULK: usize = 512;
/// Bulk samples (each drains 2 MiB of quarantine once more).
const BULK_SAMPLES: usize = 21;

/// Whether `a` holds `a.len()` distinct, 4 KiB-aligned, non-zero addresses.
fn plausible(a: &[u64]) -> bool {
    let mut sorted = [0u64; BULK];
    let Some(s) = sorted.get_mut(..a.len()) else {
        return false;
    };
    s.copy_from_slice(a);
    s.sort_unstable();
    s.iter().all(|&x| x != 0 && x % 4096 == 0) && s.windows(2).all(|w| w[0] != w[1])
}

/// Allocates `a.len()` 4 KiB TDX frames into `a`; true if tdx-host said it wrote that many.
/// The timed windows call this alone and check [`plausible`] after the window closes, so the
/// bench's own check (a 4 KiB sort buffer) is not counted as the allocation's cost.
fn alloc_into(t: &TdxHost, a: &mut [u64]) -> bool {
    let n = a.len() as u32;
    t.alloc_frames(0, FrameSize::K4, MemClass::Tdx, n, addrs_as_bytes(a)) == Ok(n)
}

/// Frees `a`; true if tdx-host freed them all.
fn free_all(t: &TdxHost, a: &[u64]) -> bool {
    t.free_frames(FrameSize::K4, addrs_as_bytes_ref(a)) == Ok(a.len() as u32)
}

/// One 4 KiB TDX frame into `a[0]`, its address in the reply; true if tdx-host allocated it.
fn alloc_reply(t: &TdxHost, a: &mut [u64]) -> bool {
    match (
        t.alloc_frame(0, FrameSize::K4, MemClass::Tdx),
        a.first_mut(),
    ) {
        (Ok(addr), Some(slot)) => {
            *slot = addr;
            true
        }
        _ => false,
    }
}

/// Frees the one frame at `a[0]` by its address in the message; true if tdx-host freed it.
fn free_reply(t: &TdxHost, a: &[u64]) -> bool {
    a.len() == 1 && t.free_frame(FrameSize::K4, a[0]) == Ok(())
}

/// Median guest ticks of one 4 KiB frame allocated with `alloc`, freed with `free`, and both
/// as a round trip; `ok` is cleared if any answer is wrong.
fn one_frame(
    t: &TdxHost,
    ok: &mut bool,
    alloc: impl Fn(&TdxHost, &mut [u64]) -> bool,
    free: impl Fn(&TdxHost, &[u64]) -> bool,
) -> (u64, u64, u64) {
    let mut addr = [0u64; 1];
    let allocated = median::<SAMPLES>(|| {
        check(ok, drain(t), line!());
        let t0 = tsc();
        let got = alloc(t, &mut addr);
        let d = tsc() - t0;
        check(ok, got && plausible(&addr) && free(t, &addr), line!());
        d
    });
    // The free alone: only quarantine, its scrub comes on a later timer tick (drained first,
    // so no step of an earlier free falls in the window either).
    let freed = median::<SAMPLES>(|| {
        check(
            ok,
            alloc(t, &mut addr) && plausible(&addr) && drain(t),
            line!(),
        );
        let t0 = tsc();
        let done = free(t, &addr);
        let d = tsc() - t0;
        check(ok, done, line!());
        d
    });
    let round = median::<SAMPLES>(|| {
        check(ok, drain(t), line!());
        let t0 = tsc();
        let got = alloc(t, &mut addr);
        let mid = addr;
        let done = free(t, &addr);
        let d = tsc() - t0;
        check(ok, got && plausible(&mid) && done, line!());
        d
    });
    (allocated, freed, round)
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let settled = t.status_settled(100_000, || hl::sleep_for(1, 1));
    let ready = settled.state() == Some(ModuleState::Ready);
    let cal = Calibration::measure::<SAMPLES>();
    let to_insn = |ticks: u64| cal.instructions(ticks);
    let mut ok = ready;
    // One frame: the address in the reply (`alloc_frame`, `free_frame`) ...
    let (alloc, free, round) = one_frame(&t, &mut ok, alloc_reply, free_reply);
    // ... and through a lease of one address (`alloc_frames`, `free_frames` with count 1).
    let (alloc_lease, free_lease, _) = one_frame(&t, &mut ok, alloc_into, free_all);
    let status = median::<SAMPLES>(|| {
        let t0 = tsc();
        let s = t.status();
        let d = tsc() - t0;
        check(&mut ok, s.state() == Some(ModuleState::Ready), line!());
        d
    });
    // Bulk: one request for a whole lease of frames, one to free them; the drains between
    // also give the background scrub's cost (kernel scrub + PAGE.RDMD per 4 KiB, timed by
    // tdx-host in its scrub steps).
    let mut bulk = [0u64; BULK];
    check(&mut ok, drain(&t), line!());
    let before = t.stats();
    let bulk_alloc = median::<BULK_SAMPLES>(|| {
        check(&mut ok, drain(&t), line!());
        let t0 = tsc();
        let got = alloc_into(&t, &mut bulk);
        let d = tsc() - t0;
        check(
            &mut ok,
            got && plausible(&bulk) && free_all(&t, &bulk),
            line!(),
        );
        d
    });
    let bulk_free = median::<BULK_SAMPLES>(|| {
        check(
            &mut ok,
            alloc_into(&t, &mut bulk) && plausible(&bulk) && drain(&t),
            line!(),
        );
        let t0 = tsc();
        let freed = free_all(&t, &bulk);
        let d = tsc() - t0;
        check(&mut ok, freed, line!());
        d
    });
    check(&mut ok, drain(&t), line!());
    let after = t.stats();
    let scrubbed = after.scrubbed_bytes - before.scrubbed_bytes;
    // Every freed frame came back clean: nothing retired, all 2 × 21 bulk frees scrubbed.
    let all_clean = after.retired_bytes == before.retired_bytes
        && scrubbed >= (2 * BULK_SAMPLES * BULK * 4096) as u64;
    if !all_clean {
        ulog!(
            "bench-tdx: scrubbed {scrubbed} bytes, retired {} -> {}",
            before.retired_bytes,
            after.retired_bytes
        );
    }
    check(&mut ok, all_clean, line!());
    let scrub_ticks_4k = (after.scrub_step_tsc - before.scrub_step_tsc) * 4096 / scrubbed.max(1);
    let scrub_4k = scrub_ticks_4k * 1000 / cal.ticks_per_1000_insn.max(1);
    let method = ScrubMethod::from_code(u64::from(after.scrub_method));
    check(&mut ok, method.is_some(), line!());
    let mut p = [0u64; 7];
    let got = t.alloc_frames(0, FrameSize::K4, MemClass::Tdx, 7, addrs_as_bytes(&mut p));
    check(&mut ok, got == Ok(7), line!());
    let (create, teardown) = minimal_td(&t, &p, &mut ok);
    check(
        &mut ok,
        t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&p)) == Ok(7),
        line!(),
    );
    check(&mut ok, drain(&t), line!());
    let generation = |id: userlib::TaskId| id.generation().0;
    let gen0 = generation(sys_refresh_task_id(task_gen::slots::TDX_HOST));
    let restart = median::<RESTARTS>(|| {
        let t0 = tsc();
        check(
            &mut ok,
            hl::restart_task(task_gen::slots::TDX_HOST, true).is_ok(),
            line!(),
        );
        check(
            &mut ok,
            t.status().state() == Some(ModuleState::Ready),
            line!(),
        );
        tsc() - t0
    });
    let restarts = generation(sys_refresh_task_id(task_gen::slots::TDX_HOST)).wrapping_sub(gen0);
    check(&mut ok, usize::from(restarts) == RESTARTS, line!());
    // A figure of a wrong answer means nothing: print them only if every call answered right.
    if ok {
        let per_frame = |ticks: u64| to_insn(ticks) / BULK as u64;
        ulog!(
            "bench result: tdx_status_ipc {} instructions",
            to_insn(status)
        );
        ulog!("bench result: tdx_alloc_4k {} instructions", to_insn(alloc));
        ulog!("bench result: tdx_free_4k {} instructions", to_insn(free));
        ulog!(
            "bench result: tdx_alloc_4k_lease {} instructions",
            to_insn(alloc_lease)
        );
        ulog!(
            "bench result: tdx_free_4k_lease {} instructions",
            to_insn(free_lease)
        );
        ulog!(
            "bench result: tdx_alloc_free_4k_round_trip {} instructions",
            to_insn(round)
        );
        ulog!(
            "bench result: tdx_alloc_512x4k_per_frame {} instructions",
            per_frame(bulk_alloc)
        );
        ulog!(
            "bench result: tdx_free_512x4k_per_frame {} instructions",
            per_frame(bulk_free)
        );
        ulog!("bench result: tdx_scrub_check_4k {} instructions", scrub_4k);
        if let Some(m) = method {
            ulog!("bench note: scrub_method {}", m.describe());
        }
        ulog!(
            "bench result: tdx_td_minimal_create {} instructions",
            to_insn(create)
        );
        ulog!(
            "bench result: tdx_td_minimal_teardown {} instructions",
            to_insn(teardown)
        );
        ulog!(
            "bench result: tdx_restart_to_serving {} instructions (median of {restarts} restarts)",
            to_insn(restart)
        );
    } else {
        ulog!("bench failed: a measured call answered wrong; no figures");
    }
    sys_send(jefe, 1, &[u8::from(ok)], &mut [], &[]);
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
