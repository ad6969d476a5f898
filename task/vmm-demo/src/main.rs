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
//!
//! After the restart, the demo builds a TD the way a VMM does: it allocates 4 KiB TDX frames,
//! creates a TD on one of them (tdx-host picks a free guest KeyID), adds its TDCS pages and
//! initializes it from TD_PARAMS, creates two vCPUs with their TDCX pages, maps private memory
//! (S-EPT pages, one measured page added, the measurement finalized, more pages augmented),
//! removes one private page, tears the TD down and frees its frames. Free TDX frames and free
//! KeyIDs must then be exactly what they were before, or the demo fails.

#![no_std]
#![no_main]

use tdx_abi::TdParams;
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

fn run(tdx: &TdxHost, ids: &RequestIds) -> bool {
    // Idempotent: the client retries across a tdx-host restart. While TDMR.INIT still runs
    // tdx-host answers Initializing: the demo wants the whole module, so it waits.
    let st = tdx.status_settled(100_000, || userlib::hl::sleep_for(1, 1));
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

/// TD control pages: TDCS pages per TD, TDCX pages per vCPU (besides its TDVPR).
const TDCS: usize = 6;
const TDCX: usize = 5;
const VCPUS: usize = 2;
/// S-EPT pages mapping GPA 0 (levels 3, 2, 1), private pages added (measured) and augmented.
const SEPT: usize = 3;
const ADDED: usize = 1;
const AUGED: usize = 7;
/// Frames of the demo TD: its TDR, TDCS, vCPUs (TDVPR + TDCX), S-EPT and private pages.
const TD_FRAMES: usize = 1 + TDCS + VCPUS * (1 + TDCX) + SEPT + ADDED + AUGED;
/// Where the private pages start in the TD's frames.
const PRIVATE: usize = TD_FRAMES - ADDED - AUGED;
/// The contents of the added (measured) page.
static INITIAL_PAGE: [u8; 4096] = [0x5a; 4096];

/// Builds TD `td` on the frames `p` (`p[0]` is its TDR already): TDCS and TD_PARAMS, two
/// vCPUs, S-EPT, one added and `AUGED` augmented private pages.
fn build_td(tdx: &TdxHost, td: u32, p: &[u64; TD_FRAMES]) -> Result<(), TdxHostError> {
    for &page in &p[1..=TDCS] {
        tdx.td_add_tdcs(td, page)?;
    }
    let params = TdParams::default();
    tdx.td_init(td, &params.to_bytes())?;
    ulog!(
        "vmm-demo: TD {td}: {TDCS} TDCS pages added, initialized (TD_PARAMS: max {} vCPUs, TSC {} MHz)",
        params.max_vcpus,
        u32::from(params.tsc_frequency) * 25
    );
    for v in 0..VCPUS {
        let base = 1 + TDCS + v * (1 + TDCX);
        let id = tdx.vcpu_create(td, p[base])?;
        for &page in &p[base + 1..=base + TDCX] {
            tdx.vcpu_add_tdcx(td, id, page)?;
        }
        tdx.vcpu_init(td, id, v as u32, 0)?;
        ulog!(
            "vmm-demo: TD {td}: vCPU {id} created (TDVPR {:#x}, {TDCX} TDCX pages), initialized on CPU {v}",
            p[base]
        );
    }
    let sept = PRIVATE - SEPT;
    for (i, level) in [3u8, 2, 1].into_iter().enumerate() {
        tdx.sept_add(td, 0, level, p[sept + i])?;
    }
    tdx.page_add(td, 0, p[PRIVATE], &INITIAL_PAGE)?;
    tdx.mr_finalize(td)?;
    for (i, &page) in p[PRIVATE + ADDED..].iter().enumerate() {
        tdx.page_aug(td, (i + ADDED) as u64 * 4096, 0, page)?;
    }
    ulog!(
        "vmm-demo: TD {td}: {SEPT} S-EPT pages, {ADDED} page added (measured), measurement finalized, {AUGED} pages augmented: {} KiB private memory at GPA [0, {:#x}]",
        (ADDED + AUGED) * 4,
        (ADDED + AUGED) * 4096 - 1
    );
    Ok(())
}

/// Builds a TD with two vCPUs and private memory, tears it down, gives its frames back and
/// checks that free frames and free KeyIDs return exactly.
fn td_demo(tdx: &TdxHost, ids: &RequestIds) -> bool {
    let totals0 = tdx.td_totals();
    let frames0 = tdx.status().tdx_bytes_free / 4096;
    let mut p = [0u64; TD_FRAMES];
    let n = TD_FRAMES as u32;
    let got = tdx.alloc_request(
        ids.next(),
        0,
        FrameSize::K4,
        MemClass::Tdx,
        n,
        addrs_as_bytes(&mut p),
    );
    if got != Ok(n) {
        ulog!("vmm-demo: TD: {n} x 4 KiB frames refused: {got:?}");
        return false;
    }
    let (lo, hi) = span(&p);
    ulog!(
        "vmm-demo: TD: got {n} x 4 KiB TDX frames in [{lo:#x}, {:#x}] (TDR, {TDCS} TDCS, {VCPUS} x (TDVPR + {TDCX} TDCX), {SEPT} S-EPT, {} private)",
        hi + 0xfff,
        ADDED + AUGED
    );
    let mut ok = true;
    // The frame back with the caller before the teardown (`page_remove`), if any.
    let mut removed = None;
    match tdx.td_create(p[0]) {
        Ok(c) => {
            ulog!(
                "vmm-demo: TD {}: created on TDR {:#x} with guest KeyID {} ({} KeyIDs free, {} in use)",
                c.td,
                p[0],
                c.hkid,
                tdx.td_totals().keyids_free,
                tdx.td_totals().keyids_in_use
            );
            let built = build_td(tdx, c.td, &p);
            let mid = tdx.td_totals();
            ulog!(
                "vmm-demo: TD {}: built: {built:?}; {} frames in TDs, {} TD(s) ours",
                c.td,
                mid.frames_in_tds,
                mid.mine
            );
            ok &= built.is_ok() && mid.mine == 1 && mid.frames_in_tds == totals0.frames_in_tds + n;
            if built.is_ok() {
                // A VMM gives a private page back while the TD lives.
                let gpa = ADDED as u64 * 4096;
                let r = tdx.page_remove(c.td, gpa, 0);
                let freed = r.ok().map(|pa| {
                    removed = Some(pa);
                    tdx.free_request(ids.next(), FrameSize::K4, addrs_as_bytes_ref(&[pa]))
                });
                match r {
                    Ok(pa) => ulog!(
                        "vmm-demo: TD {}: removed the private page at GPA {gpa:#x} (frame {pa:#x}), freed: {:?}",
                        c.td,
                        freed.unwrap_or(Ok(0))
                    ),
                    Err(e) => ulog!(
                        "vmm-demo: TD {}: page_remove at GPA {gpa:#x} refused: {e:?}",
                        c.td
                    ),
                }
                ok &= r == Ok(p[PRIVATE + ADDED]) && freed == Some(Ok(1));
            }
            let down = tdx.td_teardown(c.td);
            match down {
                Ok(d) => ulog!(
                    "vmm-demo: TD {}: torn down: {} pages reclaimed (TDR last), {} retries, KeyID {} {}",
                    c.td,
                    d.reclaimed,
                    d.retries,
                    c.hkid,
                    if d.keyid_retired != 0 { "retired" } else { "freed" }
                ),
                Err(e) => ulog!("vmm-demo: TD {}: teardown failed: {e:?}", c.td),
            }
            let expect = n - u32::from(removed.is_some());
            ok &= down
                .is_ok_and(|d| d.keyid_retired == 0 && (built.is_err() || d.reclaimed == expect));
        }
        Err(e) => {
            ulog!(
                "vmm-demo: TD: td_create refused: {e:?} (module status {:#x})",
                tdx.td_totals().last_refusal
            );
            ok = false;
        }
    }
    // Every frame is the caller's again: give them all back (the removed one is gone already).
    let mut rest = [0u64; TD_FRAMES];
    let mut k = 0;
    for &pa in &p {
        if Some(pa) != removed {
            rest[k] = pa;
            k += 1;
        }
    }
    let r = tdx.free_request(ids.next(), FrameSize::K4, addrs_as_bytes_ref(&rest[..k]));
    ok &= r == Ok(k as u32);
    let mut waits = 0;
    while tdx.stats().quarantined_bytes > 0 && waits < 10_000 {
        userlib::hl::sleep_for(1, 1);
        waits += 1;
    }
    let totals1 = tdx.td_totals();
    let frames1 = tdx.status().tdx_bytes_free / 4096;
    ulog!(
        "vmm-demo: TD: freed {r:?} x 4 KiB; {} frames in TDs (before: {})",
        totals1.frames_in_tds,
        totals0.frames_in_tds
    );
    let (fx, kx) = (
        frames1 == frames0,
        totals1.keyids_free == totals0.keyids_free,
    );
    ulog!(
        "vmm-demo: frames: {frames0} before, {frames1} after (exact: {fx}); KeyIDs free: {} before, {} after (exact: {kx})",
        totals0.keyids_free,
        totals1.keyids_free
    );
    ok && fx && kx && totals1.frames_in_tds == totals0.frames_in_tds && totals1.mine == 0
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
    // Every allocation and free carries an identity: retried across a tdx-host restart, it
    // returns the committed answer instead of being done twice.
    let ids = RequestIds::new();
    let mut ok = run(&tdx, &ids);
    let restarts = tdx_host_generation().wrapping_sub(gen0);
    ulog!(
        "vmm-demo: tdx-host restarted {restarts} time(s) during the demo (expected {TDX_HOST_RESTARTS})"
    );
    ok &= restarts == TDX_HOST_RESTARTS;
    // TD operations are not idempotent: the TD is built once tdx-host's restart is behind us.
    ok &= td_demo(&tdx, &ids);
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
