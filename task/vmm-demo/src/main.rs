//! vmm-demo: a client that behaves like a VMM preparing TDs. It asks tdx-host for the module
//! state, then on every NUMA node for TD memory in 4 KiB frames (control pages: TDR, TDCS,
//! TDVPR) and 2 MiB frames (private memory), frees part of it as a VMM tearing down a vCPU
//! would, logs what it got, gives everything back, waits for tdx-host to scrub it, and checks
//! that the node totals returned exactly. Finally it reports success or failure to jefe, which ends the run.
//!
//! The default image kills tdx-host once while the demo runs (after its first frees, at the
//! first PAGE.RDMD check of their scrub) and jefe restarts it: every call retries across the
//! restart with its request identity, so the totals must still come back exactly, and the demo
//! checks that tdx-host restarted exactly as often as its config says (its generation's advance).

#![no_std]
#![no_main]

use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, ModuleState, RequestIds, TdxHost,
    TdxHostError,
};
use userlib::{sys_refresh_task_id, sys_send, ulog};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
include!(concat!(env!("OUT_DIR"), "/demo_config.rs"));

const MIB: u64 = 1 << 20;
/// Control pages per TD (TDR + TDCS + one vCPU's TDVPR/TDCX, rounded) and 2 MiB private chunks.
const K4: usize = 16;
const M2: usize = 8;

struct Held {
    k4: [u64; K4],
    m2: [u64; M2],
    k4_n: usize,
    m2_n: usize,
}

fn span(a: &[u64]) -> (u64, u64) {
    let lo = a.iter().copied().min().unwrap_or(0);
    let hi = a.iter().copied().max().unwrap_or(0);
    (lo, hi)
}

/// Frames of `size` tdx-host says this task holds (`owned`, the reconciliation call).
fn owned_frames(tdx: &TdxHost, size: FrameSize) -> u64 {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    let mut first = 0;
    while let Ok(r) = tdx.owned(first, &mut buf) {
        // `OwnedRecord`: base (8 bytes), count (4), request (4), size (1), padding.
        for rec in buf.chunks_exact(24).take(r.written as usize) {
            if rec[16] == size as u8 {
                n += u64::from(u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]));
            }
        }
        first += r.written;
        if r.written == 0 || first >= r.total {
            break;
        }
    }
    n
}

fn run(tdx: &TdxHost) -> bool {
    // Every allocation and free carries an identity: retried across a tdx-host restart, it
    // returns the committed answer instead of being done twice.
    let ids = RequestIds::new();
    // Idempotent: the client retries across a tdx-host restart.
    let st = tdx.status();
    match st.state() {
        Some(ModuleState::Ready) => ulog!(
            "vmm-demo: TDX module {}.{}.{} ready: {} TDMRs, {} MiB TDX memory ({} MiB free), PAMT {} KiB, guest KeyIDs {}..{}",
            st.major,
            st.minor,
            st.update,
            st.num_tdmrs,
            st.tdx_bytes_total / MIB,
            st.tdx_bytes_free / MIB,
            st.pamt_bytes / 1024,
            st.first_tdx_keyid + 1,
            st.first_tdx_keyid + st.nr_tdx_keyids
        ),
        other => {
            ulog!(
                "vmm-demo: TDX is not usable: {other:?} step {} status {:#x} reason {}",
                st.step,
                st.status,
                st.reason
            );
            return false;
        }
    }
    let before = st.tdx_bytes_free;
    let mut ok = true;
    let mut held: [Held; 8] = core::array::from_fn(|_| Held {
        k4: [0; K4],
        m2: [0; M2],
        k4_n: 0,
        m2_n: 0,
    });
    let mut nodes = 0usize;
    for node in 0..8u16 {
        let info = match tdx.node_info(node) {
            Ok(i) => i,
            Err(TdxHostError::NoSuchNode) => break,
            Err(e) => {
                ulog!("vmm-demo: node_info({node}): {e:?}");
                ok = false;
                break;
            }
        };
        nodes += 1;
        ulog!(
            "vmm-demo: node {node}: {} MiB TDX ({} MiB free), {} MiB non-TDX, TDX-capable: {}",
            info.tdx_bytes_total / MIB,
            info.tdx_bytes_free / MIB,
            info.non_tdx_bytes_total / MIB,
            info.tdx_capable != 0
        );
        let h = &mut held[usize::from(node)];
        match tdx.alloc_request(
            ids.next(),
            node,
            FrameSize::K4,
            MemClass::Tdx,
            K4 as u32,
            addrs_as_bytes(&mut h.k4),
        ) {
            Ok(n) => {
                h.k4_n = n as usize;
                let (lo, hi) = span(&h.k4);
                ulog!(
                    "vmm-demo: node {node}: got {n} x 4 KiB TD control pages in [{lo:#x}, {:#x}]",
                    hi + 0xfff
                );
            }
            Err(e) => {
                ulog!("vmm-demo: node {node}: 4 KiB frames refused: {e:?}");
                ok = false;
            }
        }
        match tdx.alloc_request(
            ids.next(),
            node,
            FrameSize::M2,
            MemClass::Tdx,
            M2 as u32,
            addrs_as_bytes(&mut h.m2),
        ) {
            Ok(n) => {
                h.m2_n = n as usize;
                let aligned = h.m2.iter().all(|a| a % (2 * MIB) == 0);
                let (lo, hi) = span(&h.m2);
                ulog!(
                    "vmm-demo: node {node}: got {n} x 2 MiB TD private frames in [{lo:#x}, {:#x}] (2 MiB-aligned: {aligned})",
                    hi + 2 * MIB - 1
                );
                ok &= aligned;
            }
            Err(e) => {
                ulog!("vmm-demo: node {node}: 2 MiB frames refused: {e:?}");
                ok = false;
            }
        }
    }
    // Tear down "one vCPU" per node: half the control pages and a quarter of the private memory.
    for (node, h) in held.iter_mut().enumerate().take(nodes) {
        let (k, m) = (h.k4_n / 2, h.m2_n / 4);
        let k4 = addrs_as_bytes_ref(&h.k4[h.k4_n - k..h.k4_n]);
        let r1 = tdx.free_request(ids.next(), FrameSize::K4, k4);
        let m2 = addrs_as_bytes_ref(&h.m2[h.m2_n - m..h.m2_n]);
        let r2 = tdx.free_request(ids.next(), FrameSize::M2, m2);
        ulog!("vmm-demo: node {node}: freed {r1:?} x 4 KiB and {r2:?} x 2 MiB");
        ok &= r1 == Ok(k as u32) && r2 == Ok(m as u32);
        h.k4_n -= k;
        h.m2_n -= m;
    }
    // Reconcile: what tdx-host says this task owns is exactly what it believes it holds.
    let (k4, m2) = (
        owned_frames(tdx, FrameSize::K4),
        owned_frames(tdx, FrameSize::M2),
    );
    let believed = |f: fn(&Held) -> usize| held.iter().map(|h| f(h) as u64).sum::<u64>();
    let agree = k4 == believed(|h| h.k4_n) && m2 == believed(|h| h.m2_n);
    ulog!("vmm-demo: tdx-host lists {k4} x 4 KiB and {m2} x 2 MiB as ours (agrees: {agree})");
    ok &= agree;
    ulog!(
        "vmm-demo: holding {} KiB of TD memory; {} MiB TDX free",
        held.iter()
            .map(|h| h.k4_n as u64 * 4 + h.m2_n as u64 * 2048)
            .sum::<u64>(),
        tdx.status().tdx_bytes_free / MIB
    );
    // A VMM must not free what it does not own, nor twice: both refused, nothing changes.
    let bogus = [held[0].k4[0] + 0x800];
    let e1 = tdx.free_request(ids.next(), FrameSize::K4, addrs_as_bytes_ref(&bogus));
    let again = [held[0].k4[K4 - 1]];
    let e2 = tdx.free_request(ids.next(), FrameSize::K4, addrs_as_bytes_ref(&again));
    ulog!("vmm-demo: misaligned free: {e1:?}; double free: {e2:?}");
    ok &= e1 == Err(TdxHostError::BadAlignment) && e2 == Err(TdxHostError::DoubleFree);
    // Shut down every TD: everything goes back, and the totals return exactly.
    for h in held.iter().take(nodes) {
        if h.k4_n > 0 {
            let k4 = addrs_as_bytes_ref(&h.k4[..h.k4_n]);
            ok &= tdx.free_request(ids.next(), FrameSize::K4, k4) == Ok(h.k4_n as u32);
        }
        if h.m2_n > 0 {
            let m2 = addrs_as_bytes_ref(&h.m2[..h.m2_n]);
            ok &= tdx.free_request(ids.next(), FrameSize::M2, m2) == Ok(h.m2_n as u32);
        }
    }
    // tdx-host scrubs and checks freed frames between requests, at most 2 MiB per timer
    // tick: the totals come back once its quarantine has drained.
    let t0 = userlib::sys_get_timer().now;
    let mut waits = 0;
    while tdx.stats().quarantined_bytes > 0 && waits < 10_000 {
        userlib::hl::sleep_for(1, 1);
        waits += 1;
    }
    ulog!(
        "vmm-demo: quarantine drained {} ms after the last free",
        userlib::sys_get_timer().now - t0
    );
    let after = tdx.status().tdx_bytes_free;
    let stats = tdx.stats();
    ulog!(
        "vmm-demo: all freed: {} MiB TDX free (before: {} MiB, exact: {}); tdx-host scrubbed {} KiB with {} PAGE.RDMD checks",
        after / MIB,
        before / MIB,
        after == before,
        stats.scrubbed_bytes / 1024,
        stats.rdmd_calls
    );
    ok &= after == before && nodes > 0;
    ok
}

/// tdx-host's generation: its restart count (wrapping), which the kernel advances at each restart.
fn tdx_host_generation() -> u16 {
    sys_refresh_task_id(task_gen::slots::TDX_HOST)
        .generation()
        .0
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let tdx = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let gen0 = tdx_host_generation();
    let mut ok = run(&tdx);
    let restarts = tdx_host_generation().wrapping_sub(gen0);
    ulog!(
        "vmm-demo: tdx-host restarted {restarts} time(s) during the demo (expected {TDX_HOST_RESTARTS})"
    );
    ok &= restarts == TDX_HOST_RESTARTS;
    ulog!(
        "vmm-demo: {}",
        if ok { "demo succeeded" } else { "demo FAILED" }
    );
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    sys_send(jefe, 1, &[u8::from(ok)], &mut [], &[]);
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
