//! The high-memory checks (`highmem = true`, `test-suite/tdx-highmem.toml`): DIMMs far above
//! 64 GiB and above 1 TiB become memory the system really uses.
//!
//! The image cold-plugs a DIMM at 65 GiB (slot 0) and one at 1 TiB + 1 GiB (slot 1); the harness
//! hot-adds one at 1 TiB + 2 GiB (slot 2) when this task prints `hotplug: ready for add`, and
//! removes all three on `hotplug: ready for remove`. For each stage this task checks, through
//! tdx-host's client interface only, that the DIMMs are online as non-TDX regions where QEMU put
//! them, that non-TDX frames come from each of them (2 MiB and 4 KiB frames), and that freeing
//! them has the kernel scrub every byte (tdx-host's `scrubbed_bytes` grows by what was freed,
//! nothing is retired for a refused scrub, the quarantine drains) and gives them back.

use tdx_host_api::{addrs_as_bytes, FrameSize, MemClass, RegionRecord, ANY_NODE};
use test_api::score::Score;
use userlib::ulog;

use super::{report, Env, MAX_HELD};

/// Where the image places its DIMMs (see the manifest).
const DIMM_AT_65G: u64 = 65 << 30;
const DIMM_AT_1T_1G: u64 = (1 << 40) + (1 << 30);
const DIMM_AT_1T_2G: u64 = (1 << 40) + (2 << 30);
const DIMM_SIZE: u64 = 64 << 20;
const HOT_SLOT: usize = 2;
/// 4 KiB frames taken per sweep (enough to see each DIMM serve small frames, little to scrub).
const SMALL_FRAMES: usize = 64;

fn dimm_of(a: u64, dimms: &[u64]) -> Option<usize> {
    dimms.iter().position(|&d| a >= d && a - d < DIMM_SIZE)
}

/// Online non-TDX regions in the hotplug window.
fn online_bases(e: &Env, out: &mut [u64; 8]) -> usize {
    let mut recs = [RegionRecord::default(); 32];
    let n = e.regions(&mut recs);
    let mut k = 0;
    for r in recs[..n].iter().filter(|r| {
        e.in_window(r.base)
            && r.state == tdx_host_api::region_state::ONLINE
            && r.class == MemClass::NonTdx as u8
    }) {
        if k < out.len() {
            out[k] = r.base;
            k += 1;
        }
    }
    k
}

/// Takes `SMALL_FRAMES` 4 KiB frames and every non-TDX 2 MiB frame left, checks each lies in one of
/// `dimms` and every DIMM served some of each size, then frees them all and checks the kernel
/// scrubbed them.
fn sweep(s: &mut Score, e: &Env, stage: &str, dimms: &[u64]) {
    let mut small = [0u64; SMALL_FRAMES];
    let nsmall = e
        .host
        .alloc_frames(
            ANY_NODE,
            FrameSize::K4,
            MemClass::NonTdx,
            SMALL_FRAMES as u32,
            addrs_as_bytes(&mut small),
        )
        .map_or(0, |n| n as usize);
    // Then every 2 MiB frame left (the small ones took part of one).
    let mut big = [0u64; MAX_HELD];
    let (nbig, _, stop) = e.drain(MemClass::NonTdx, FrameSize::M2, &mut big);
    let mut big_per = [0usize; 3];
    let mut small_per = [0usize; 3];
    let mut stray = 0;
    for (frames, per) in [
        (&big[..nbig], &mut big_per),
        (&small[..nsmall], &mut small_per),
    ] {
        for &a in frames {
            match dimm_of(a, dimms) {
                Some(i) => per[i] += 1,
                None => stray += 1,
            }
        }
    }
    let every = |per: &[usize; 3]| per[..dimms.len()].iter().all(|&n| n > 0);
    // 2 MiB frames: each DIMM is 32 of them (less what the region keeps for itself).
    s.check(
        &alloc_name(stage),
        stray == 0 && every(&big_per) && nsmall == SMALL_FRAMES,
        format_args!(
            "{nbig} 2 MiB frames per DIMM {big_per:?} (stopped by {stop:?}), {nsmall} 4 KiB frames per DIMM {small_per:?}, {stray} outside the DIMMs"
        ),
    );
    let before = e.host.stats();
    let freed_big = e.free(FrameSize::M2, &big[..nbig]);
    let freed_small = e.free(FrameSize::K4, &small[..nsmall]);
    let after = e.host.stats();
    let bytes = nbig as u64 * (2 << 20) + nsmall as u64 * 4096;
    let scrubbed = after.scrubbed_bytes - before.scrubbed_bytes;
    let mut bases = [0u64; 8];
    let n = online_bases(e, &mut bases);
    let (_, _, in_use, _) = e.window_regions();
    s.check(
        &free_name(stage),
        freed_big == Ok(nbig as u32)
            && freed_small == Ok(nsmall as u32)
            && scrubbed >= bytes
            && after.retired_bytes == before.retired_bytes
            && after.quarantined_bytes == 0
            && in_use == 0
            && n == dimms.len(),
        format_args!(
            "freed {freed_big:?}/{freed_small:?}, scrubbed {scrubbed:#x} of {bytes:#x}, retired {:#x} (was {:#x}), quarantined {:#x}, {in_use:#x} in use, {n} regions online",
            after.retired_bytes, before.retired_bytes, after.quarantined_bytes
        ),
    );
}

fn alloc_name(stage: &str) -> &'static str {
    if stage == "cold" {
        "frames_of_dimms_at_65g_and_1t_allocated"
    } else {
        "frames_of_hot_dimm_above_1t_allocated"
    }
}

fn free_name(stage: &str) -> &'static str {
    if stage == "cold" {
        "frames_at_65g_and_1t_scrubbed_and_freed"
    } else {
        "frames_of_hot_dimm_above_1t_scrubbed_and_freed"
    }
}

pub fn checks(s: &mut Score, e: &Env) {
    let (r, ok) = e.wait_driver(|r| r[0].0 == report::ONLINE && r[1].0 == report::ONLINE);
    let mut bases = [0u64; 8];
    let n = online_bases(e, &mut bases);
    let found = |at: u64| bases[..n].iter().any(|&b| dimm_of(b, &[at]).is_some());
    s.check(
        "cold_dimms_at_65g_and_1t_online",
        ok && n == 2 && found(DIMM_AT_65G) && found(DIMM_AT_1T_1G),
        format_args!("driver {r:?}, non-TDX regions at {:x?}", &bases[..n]),
    );
    sweep(s, e, "cold", &[DIMM_AT_65G, DIMM_AT_1T_1G]);

    ulog!("hotplug: ready for add");
    let (r, ok) = e.wait_driver(|r| r[HOT_SLOT].0 == report::ONLINE);
    let n = online_bases(e, &mut bases);
    let found = |at: u64| bases[..n].iter().any(|&b| dimm_of(b, &[at]).is_some());
    s.check(
        "hot_added_dimm_above_1t_online",
        ok && n == 3 && found(DIMM_AT_1T_2G),
        format_args!("driver {r:?}, non-TDX regions at {:x?}", &bases[..n]),
    );
    sweep(s, e, "hot", &[DIMM_AT_65G, DIMM_AT_1T_1G, DIMM_AT_1T_2G]);

    ulog!("hotplug: ready for remove");
    let (r, ok) = e.wait_driver(|r| r[..3].iter().all(|slot| slot.0 == report::EMPTY));
    let n = online_bases(e, &mut bases);
    let st = e.host.status();
    s.check(
        "high_dimms_offlined_and_ejected",
        ok && n == 0 && st.non_tdx_bytes_total == 0,
        format_args!(
            "driver {r:?}, {n} regions left, non-TDX total {:#x}",
            st.non_tdx_bytes_total
        ),
    );
}
