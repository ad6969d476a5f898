//! hotplug-check: the guest side of the memory-hotplug end-to-end tests.
//!
//! The image has a cold-plugged DIMM in slot 0; `cargo xtask test` hot-adds one in slot 1 and
//! removes DIMMs over QMP. Guest and host meet on console lines: this task prints
//! `hotplug: ready for <step>` and waits (bounded) for the hotplug driver to report the effect
//! through its read-only report operation; the harness waits for that line, acts over QMP, and
//! checks QEMU's side (`ACPI_DEVICE_OST`, `DEVICE_DELETED`, `query-memory-devices`).
//!
//! What is checked here, through tdx-host's client interface only:
//! - `reject`: both DIMMs are refused, non-TDX totals stay 0, no region lies in the hotplug
//!   window, and no allocation (TDX or non-TDX, 4 KiB or 2 MiB, until NoMemory) ever returns a
//!   frame in the window; a remove request for a refused DIMM is ejected at once.
//! - `per-node`: each DIMM becomes a non-TDX region on its node and the node stops being
//!   TDX-capable; TDX allocations never come from the window, non-TDX ones only from it; while
//!   this task holds frames of the hot DIMM a remove is refused and the frames stay valid (the
//!   region stays online with those bytes in use, and freeing them succeeds afterwards); once
//!   idle, both DIMMs are offlined and ejected.
//!
//! - `highmem` (per-node policy): DIMMs above 64 GiB and above 1 TiB, see `highmem.rs`.
//!
//! Prints `test NAME ... ok|FAILED: why` per check and reports the verdict to jefe.

#![no_std]
#![no_main]

use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, region_state, FrameSize, MemClass, ModuleState,
    RegionRecord, TdxHost, TdxHostError, ANY_NODE,
};
use userlib::{hl, sys_get_timer, sys_refresh_task_id, sys_send, ulog};
use zerocopy::FromBytes;

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
include!(concat!(env!("OUT_DIR"), "/check_config.rs"));

use task_gen::notifications::TIMER_MASK;

mod highmem;

/// The hotplug driver's report operation (`drv_acpi_mem_hotplug::report`; not a dependency,
/// because the driver crate's build script reads the driver's manifest config).
mod report {
    pub const OP_REPORT: u16 = 1;
    pub const EMPTY: u8 = 0;
    pub const ONLINE: u8 = 2;
    pub const REFUSED: u8 = 3;
}

const COLD: usize = 0;
const HOT: usize = 1;
/// Bound of every wait for the driver or tdx-host.
const WAIT_MS: u64 = 30_000;
const MAX_HELD: usize = 512;

use test_api::score::Score;

struct Env {
    host: TdxHost,
    window: (u64, u64),
}

impl Env {
    fn in_window(&self, a: u64) -> bool {
        a >= self.window.0 && a - self.window.0 < self.window.1
    }

    /// The driver's per-slot report (state, refused removes).
    fn driver(&self) -> [(u8, u8); 4] {
        let drv = sys_refresh_task_id(task_gen::slots::HOTPLUG);
        let mut buf = [0u8; 64];
        let (rc, n) = sys_send(drv, report::OP_REPORT, &[], &mut buf, &[]);
        let mut out = [(0xff, 0); 4];
        if rc == 0 {
            for (i, o) in out.iter_mut().enumerate() {
                if 2 * i + 1 < n {
                    *o = (buf[2 * i], buf[2 * i + 1]);
                }
            }
        }
        out
    }

    /// Waits until `pred` holds for the driver's report; returns the last report.
    fn wait_driver(&self, pred: impl Fn(&[(u8, u8); 4]) -> bool) -> ([(u8, u8); 4], bool) {
        let start = sys_get_timer().now;
        loop {
            let r = self.driver();
            if pred(&r) {
                return (r, true);
            }
            if sys_get_timer().now - start > WAIT_MS {
                return (r, false);
            }
            hl::sleep_for(50, TIMER_MASK);
        }
    }

    /// Every region record.
    fn regions(&self, out: &mut [RegionRecord; 32]) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 32 * 32];
        while n < out.len() {
            let Ok(r) = self.host.region_map(n as u32, &mut buf) else {
                break;
            };
            if r.written == 0 {
                break;
            }
            for i in 0..r.written as usize {
                if n < out.len() {
                    out[n] = RegionRecord::read_from_bytes(&buf[i * 32..i * 32 + 32])
                        .unwrap_or_default();
                    n += 1;
                }
            }
            if n as u32 >= r.total {
                break;
            }
        }
        n
    }

    /// Online regions inside the hotplug window: (count, non-TDX count, bytes in use).
    fn window_regions(&self) -> (usize, usize, u64, Option<RegionRecord>) {
        let mut recs = [RegionRecord::default(); 32];
        let n = self.regions(&mut recs);
        let mut count = 0;
        let mut non_tdx = 0;
        let mut used = 0;
        let mut first = None;
        for r in recs[..n]
            .iter()
            .filter(|r| self.in_window(r.base) && r.state == region_state::ONLINE)
        {
            count += 1;
            if r.class == MemClass::NonTdx as u8 {
                non_tdx += 1;
            }
            used += r.bytes_in_use;
            first.get_or_insert(*r);
        }
        (count, non_tdx, used, first)
    }

    /// Allocates `class` frames of `size` in batches until NoMemory (at most `MAX_HELD`),
    /// into `held`; returns (frames, frames inside the window, the error that stopped it).
    fn drain(
        &self,
        class: MemClass,
        size: FrameSize,
        held: &mut [u64; MAX_HELD],
    ) -> (usize, usize, Option<TdxHostError>) {
        let mut n = 0;
        let mut stop = None;
        while n < MAX_HELD {
            let batch = (MAX_HELD - n).min(32);
            match self.host.alloc_frames(
                ANY_NODE,
                size,
                class,
                batch as u32,
                addrs_as_bytes(&mut held[n..n + batch]),
            ) {
                Ok(got) => n += got as usize,
                Err(e) => {
                    // All or nothing: retry one by one to fill the last frames.
                    if batch > 1 {
                        match self.host.alloc_frames(
                            ANY_NODE,
                            size,
                            class,
                            1,
                            addrs_as_bytes(&mut held[n..n + 1]),
                        ) {
                            Ok(_) => {
                                n += 1;
                                continue;
                            }
                            Err(e) => stop = Some(e),
                        }
                    } else {
                        stop = Some(e);
                    }
                    break;
                }
            }
        }
        let inside = held[..n].iter().filter(|&&a| self.in_window(a)).count();
        (n, inside, stop)
    }

    /// Frees `addrs`, then waits (at most 20 s) until tdx-host has scrubbed them: freed frames
    /// wait in its quarantine, scrubbed a bounded step per tick, and a region with quarantined
    /// frames is still busy (its remove would be refused).
    fn free(&self, size: FrameSize, addrs: &[u64]) -> Result<u32, TdxHostError> {
        let mut total = 0;
        for chunk in addrs.chunks(512) {
            total += self.host.free_frames(size, addrs_as_bytes_ref(chunk))?;
        }
        for _ in 0..20_000 {
            if self.host.stats().quarantined_bytes == 0 {
                break;
            }
            hl::sleep_for(1, TIMER_MASK);
        }
        Ok(total)
    }

    /// Drains TDX and non-TDX memory in both sizes and frees it again: (TDX frames in the
    /// window, non-TDX frames outside it, non-TDX frames got, TDX frames got).
    fn allocation_sweep(&self) -> (usize, usize, usize, usize) {
        let mut held = [0u64; MAX_HELD];
        let mut tdx_in = 0;
        let mut non_out = 0;
        let mut non_total = 0;
        let mut tdx_total = 0;
        for size in [FrameSize::M2, FrameSize::K4] {
            let (n, inside, _) = self.drain(MemClass::Tdx, size, &mut held);
            tdx_in += inside;
            tdx_total += n;
            let _ = self.free(size, &held[..n]);
            let (n, inside, _) = self.drain(MemClass::NonTdx, size, &mut held);
            non_out += n - inside;
            non_total += n;
            let _ = self.free(size, &held[..n]);
        }
        (tdx_in, non_out, non_total, tdx_total)
    }
}

fn wait_ready(host: &TdxHost) -> Option<tdx_host_api::ModuleStatus> {
    let start = sys_get_timer().now;
    loop {
        let s = host.status();
        match s.state() {
            Some(ModuleState::Ready) => return Some(s),
            Some(ModuleState::Failed | ModuleState::Unavailable) => return None,
            _ => {}
        }
        if sys_get_timer().now - start > 2 * WAIT_MS {
            return None;
        }
        hl::sleep_for(20, TIMER_MASK);
    }
}

fn reject_checks(s: &mut Score, e: &Env) {
    let (r, ok) = e.wait_driver(|r| r[COLD].0 == report::REFUSED);
    s.check(
        "cold_dimm_refused_by_reject_policy",
        ok,
        format_args!("driver report {r:?}"),
    );
    let st = e.host.status();
    let (count, _, _, _) = e.window_regions();
    s.check(
        "refused_dimm_is_not_in_the_region_map",
        count == 0 && st.non_tdx_bytes_total == 0,
        format_args!(
            "{count} regions in the window, non-TDX total {:#x}",
            st.non_tdx_bytes_total
        ),
    );
    let (tdx_in, _, non_total, tdx_total) = e.allocation_sweep();
    s.check(
        "no_frame_ever_comes_from_the_cold_dimm",
        tdx_in == 0 && non_total == 0 && tdx_total > 0,
        format_args!(
            "{tdx_in} TDX frames in the window of {tdx_total}, {non_total} non-TDX frames"
        ),
    );

    ulog!("hotplug: ready for add");
    let (r, ok) = e.wait_driver(|r| r[HOT].0 == report::REFUSED);
    s.check(
        "hot_added_dimm_refused_by_reject_policy",
        ok,
        format_args!("driver report {r:?}"),
    );
    let st = e.host.status();
    let (count, _, _, _) = e.window_regions();
    let (tdx_in, _, non_total, tdx_total) = e.allocation_sweep();
    s.check(
        "no_frame_ever_comes_from_the_hot_added_dimm",
        count == 0 && st.non_tdx_bytes_total == 0 && tdx_in == 0 && non_total == 0 && tdx_total > 0,
        format_args!("{count} regions, non-TDX {:#x}, {tdx_in} TDX frames in the window, {non_total} non-TDX", st.non_tdx_bytes_total),
    );

    ulog!("hotplug: ready for remove");
    let (r, ok) = e.wait_driver(|r| r[COLD].0 == report::EMPTY && r[HOT].0 == report::EMPTY);
    s.check(
        "refused_dimms_are_ejected_on_request",
        ok,
        format_args!("driver report {r:?}"),
    );
}

fn per_node_checks(s: &mut Score, e: &Env) {
    let (r, ok) = e.wait_driver(|r| r[COLD].0 == report::ONLINE);
    let (count, non_tdx, _, rec) = e.window_regions();
    let node = rec.map_or(0, |r| r.node);
    let capable = e.host.node_info(node).map(|n| n.tdx_capable);
    s.check(
        "cold_dimm_online_as_non_tdx_memory",
        ok && count == 1 && non_tdx == 1 && capable == Ok(0),
        format_args!("driver {r:?}, {count} regions ({non_tdx} non-TDX) in the window, node {node} tdx_capable {capable:?}"),
    );
    let (tdx_in, non_out, non_total, tdx_total) = e.allocation_sweep();
    s.check(
        "tdx_frames_never_come_from_the_dimm",
        tdx_in == 0 && tdx_total > 0,
        format_args!("{tdx_in} of {tdx_total} TDX frames in the window"),
    );
    s.check(
        "non_tdx_frames_come_only_from_the_dimm",
        non_out == 0 && non_total > 0,
        format_args!("{non_out} of {non_total} non-TDX frames outside the window"),
    );

    ulog!("hotplug: ready for add");
    let (r, ok) = e.wait_driver(|r| r[HOT].0 == report::ONLINE);
    let (count, non_tdx, _, _) = e.window_regions();
    s.check(
        "hot_added_dimm_online_as_non_tdx_memory",
        ok && count == 2 && non_tdx == 2,
        format_args!("driver {r:?}, {count} regions ({non_tdx} non-TDX) in the window"),
    );

    // Hold every non-TDX 2 MiB frame (both DIMMs), so the hot one is busy.
    let mut held = [0u64; MAX_HELD];
    let (n, inside, stop) = e.drain(MemClass::NonTdx, FrameSize::M2, &mut held);
    let (_, _, used, _) = e.window_regions();
    s.check(
        "frames_of_both_dimms_allocated",
        n > 64 && inside == n && used == n as u64 * (2 << 20),
        format_args!(
            "{n} frames ({inside} in the window), {used:#x} bytes in use, stopped by {stop:?}"
        ),
    );

    ulog!("hotplug: ready for busy remove");
    let (r, ok) = e.wait_driver(|r| r[HOT].1 >= 1);
    s.check(
        "remove_of_busy_dimm_refused",
        ok && r[HOT].0 == report::ONLINE,
        format_args!("driver report {r:?}"),
    );
    let (count, _, used_after, _) = e.window_regions();
    s.check(
        "busy_dimm_frames_stay_valid",
        count == 2 && used_after == used,
        format_args!("{count} regions, {used_after:#x} bytes in use (was {used:#x})"),
    );
    let freed = e.free(FrameSize::M2, &held[..n]);
    s.check(
        "busy_dimm_frames_are_still_ours_to_free",
        freed == Ok(n as u32),
        format_args!("free_frames: {freed:?} for {n}"),
    );

    ulog!("hotplug: ready for remove");
    let (r, ok) = e.wait_driver(|r| r[COLD].0 == report::EMPTY && r[HOT].0 == report::EMPTY);
    let (count, _, _, _) = e.window_regions();
    let st = e.host.status();
    s.check(
        "idle_dimms_offlined_and_ejected",
        ok && count == 0 && st.non_tdx_bytes_total == 0,
        format_args!(
            "driver {r:?}, {count} regions left, non-TDX total {:#x}",
            st.non_tdx_bytes_total
        ),
    );
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let host = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let window = match hl::read_platform() {
        Ok(r) => r
            .hotplug
            .map_or((4 << 30, u64::MAX - (4 << 30)), |h| (h.base, h.size)),
        Err(_) => (4 << 30, u64::MAX - (4 << 30)),
    };
    ulog!(
        "hotplug: policy {}{}, hotplug window {:#x}+{:#x}",
        if PER_NODE { "per-node" } else { "reject" },
        if HIGHMEM { " (high memory)" } else { "" },
        window.0,
        window.1
    );
    let ready = wait_ready(&host);
    s.check(
        "tdx_host_ready",
        ready.is_some(),
        format_args!("status {:?}", host.status()),
    );
    if ready.is_some() {
        let e = Env { host, window };
        if HIGHMEM {
            highmem::checks(&mut s, &e);
        } else if PER_NODE {
            per_node_checks(&mut s, &e);
        } else {
            reject_checks(&mut s, &e);
        }
    }
    s.verdict(task_gen::IMAGE_NAME);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let _ = sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    loop {
        hl::sleep_for(1000, TIMER_MASK);
    }
}
