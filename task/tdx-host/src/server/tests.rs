//! Handler rules: state gating, quotas, access, ownership, bad input → errors (never panics),
//! and scrub-before-reuse checked against the emulated module's PAMT.

extern crate std;

use tdx_abi::{Leaf, PageType, SeamcallArgs};
use tdx_emu::EmuConfig;
use tdx_host_api::{
    FrameSize, InitStep, MemClass, ModuleState, RegionRecord, ServerStats, TdxHostError,
    UnavailableReason, ANY_NODE, SCRUB_STEP_BYTES,
};
use tdx_planner::addr::{PhysRange, GIB, PAGE_4K};

use super::pacing::{ScrubPacer, Timer, MIN_STEP_BYTES};
use super::{ClientPolicy, ScrubReport, Scrubber, Server};
use crate::frames::{NodeMask, Owner};
use crate::init::tests::{run_with, EmuSeam, Fixture};
use crate::init::{Bringup, InitConfig};
use crate::regions::tests::{build, ready_run, FakeKernel};
use crate::regions::HotplugPolicy;
use abi::kipc::KipcError;

use crate::seam::{KernelError, Seam};

const MIB: u64 = 1 << 20;
pub(super) const VMM: Owner = Owner(3 | 1 << 16);
pub(super) const OTHER: Owner = Owner(4);
const HOTPLUG: Owner = Owner(5);
const STRANGER: Owner = Owner(9);

fn policies() -> [ClientPolicy; 3] {
    [
        ClientPolicy {
            task_index: 3,
            quota_bytes: 64 * MIB,
            nodes: NodeMask(0b01),
            tdx: true,
            non_tdx: false,
            hotplug: false,
            keyids: 2,
        },
        ClientPolicy {
            task_index: 4,
            quota_bytes: 2 * GIB,
            nodes: NodeMask::ALL,
            tdx: true,
            non_tdx: true,
            hotplug: false,
            keyids: 2,
        },
        ClientPolicy {
            task_index: 5,
            quota_bytes: 0,
            nodes: NodeMask::ALL,
            tdx: false,
            non_tdx: false,
            hotplug: true,
            keyids: 2,
        },
    ]
}

pub(super) fn ready_server(policy: HotplugPolicy) -> (Server<'static>, EmuSeam) {
    let run = ready_run();
    let regions = build(&run, policy);
    let n = run.storage.plan.tdmrs.len() as u16;
    let pamt = run.storage.plan.pamt_bytes.0;
    (
        Server::new(run.bringup, Some(regions), &policies(), pamt, n),
        run.seam,
    )
}

fn addrs(buf: &[u8]) -> std::vec::Vec<u64> {
    buf.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn nothing_but_status_before_ready() {
    let s = Server::new(Bringup::new(InitConfig::default()), None, &policies(), 0, 0);
    let mut buf = [0u8; 8];
    assert_eq!(s.status().state(), Some(ModuleState::NotStarted));
    assert_eq!(s.node_info(0), Err(TdxHostError::NotReady));
    let mut s = s;
    assert_eq!(
        s.alloc_frames(VMM, 0, FrameSize::K4, MemClass::Tdx, 1, &mut buf),
        Err(TdxHostError::NotReady)
    );

    let mut cfg = EmuConfig::new(1, 1);
    cfg.module_absent = true;
    let run = run_with(cfg, &Fixture::new(1, 1, 1), |_| {});
    let mut s = Server::new(run.bringup, None, &policies(), 0, 0);
    let st = s.status();
    assert_eq!(st.state(), Some(ModuleState::Unavailable));
    assert_eq!(st.reason, UnavailableReason::ModuleNotLoaded as u8);
    assert_eq!(
        s.free_frames(VMM, FrameSize::K4, &buf),
        Err(TdxHostError::Unavailable)
    );

    let mut cfg = EmuConfig::new(1, 1);
    cfg.features0 = 0;
    let run = run_with(cfg, &Fixture::new(1, 1, 1), |_| {});
    let mut s = Server::new(run.bringup, None, &policies(), 0, 0);
    let st = s.status();
    assert_eq!(st.state(), Some(ModuleState::Failed));
    assert_eq!(st.step, InitStep::ReadMetadata as u8);
    assert_eq!(st.status, crate::host_code::MISSING_NO_RBP_MOD.0);
    assert_eq!(
        s.online_region(HOTPLUG, 20 * GIB, GIB, 0, &mut FakeKernel::default()),
        Err(TdxHostError::Failed)
    );
}

#[test]
fn status_reports_the_ready_module() {
    let (s, _) = ready_server(HotplugPolicy::Reject);
    let st = s.status();
    assert_eq!(st.state(), Some(ModuleState::Ready));
    assert_eq!((st.major, st.minor), (1, 5));
    assert_eq!(
        (st.first_tdx_keyid, st.nr_tdx_keyids, st.global_keyid),
        (16, 48, 16)
    );
    assert!(st.tdx_bytes_total > 11 * GIB && st.tdx_bytes_free == st.tdx_bytes_total);
    assert_eq!(st.tdmr_bytes_initialized, st.tdmr_bytes_total);
    assert!(st.init_seamcalls > 0 && st.pamt_bytes > 0 && st.num_tdmrs > 0);
}

#[test]
fn allocation_enforces_access_nodes_and_quota() {
    let (mut s, _) = ready_server(HotplugPolicy::PerNode);
    let mut buf = [0u8; 4096];
    let t = MemClass::Tdx;
    let a = |s: &mut Server<'_>, o, node, size, class, n, buf: &mut [u8]| {
        s.alloc_frames(o, node, size, class, n, buf)
    };
    assert_eq!(
        a(&mut s, STRANGER, 0, FrameSize::K4, t, 1, &mut buf),
        Err(TdxHostError::AccessDenied)
    );
    assert_eq!(
        a(&mut s, VMM, 0, FrameSize::K4, MemClass::NonTdx, 1, &mut buf),
        Err(TdxHostError::AccessDenied)
    );
    assert_eq!(
        a(&mut s, VMM, 1, FrameSize::K4, t, 1, &mut buf),
        Err(TdxHostError::NodeNotAllowed)
    );
    assert_eq!(
        a(&mut s, VMM, 7, FrameSize::K4, t, 1, &mut buf),
        Err(TdxHostError::NoSuchNode)
    );
    assert_eq!(
        a(&mut s, VMM, 0, FrameSize::K4, t, 0, &mut buf),
        Err(TdxHostError::BadArgument)
    );
    assert_eq!(
        a(&mut s, VMM, 0, FrameSize::K4, t, 513, &mut buf),
        Err(TdxHostError::BadArgument)
    );
    assert_eq!(
        a(&mut s, VMM, 0, FrameSize::K4, t, 2, &mut buf[..15]),
        Err(TdxHostError::BadArgument)
    );
    assert_eq!(
        a(&mut s, VMM, 0, FrameSize::G1, t, 1, &mut buf),
        Err(TdxHostError::QuotaExceeded)
    );
    // 64 MiB quota: 32 × 2 MiB fit, the 33rd does not.
    assert_eq!(
        a(&mut s, VMM, ANY_NODE, FrameSize::M2, t, 32, &mut buf),
        Ok(32)
    );
    let got = addrs(&buf[..32 * 8]);
    assert!(
        got.iter().all(|&pa| pa % (2 * MIB) == 0 && pa < 10 * GIB),
        "node 0 only"
    );
    assert_eq!(
        a(&mut s, VMM, 0, FrameSize::K4, t, 1, &mut buf),
        Err(TdxHostError::QuotaExceeded)
    );
    // Node 1 has no non-TDX memory at 2 MiB granularity beyond its outside-CMR GiB.
    assert_eq!(
        a(
            &mut s,
            OTHER,
            1,
            FrameSize::G1,
            MemClass::NonTdx,
            2,
            &mut buf
        ),
        Err(TdxHostError::NoMemory)
    );
    assert_eq!(
        a(
            &mut s,
            OTHER,
            1,
            FrameSize::G1,
            MemClass::NonTdx,
            1,
            &mut buf
        ),
        Ok(1)
    );
}

#[test]
fn free_checks_ownership_and_input() {
    let (mut s, _) = ready_server(HotplugPolicy::Reject);
    let mut buf = [0u8; 64];
    s.alloc_frames(VMM, 0, FrameSize::K4, MemClass::Tdx, 4, &mut buf)
        .unwrap();
    let mine = buf;
    let mut theirs = [0u8; 8];
    s.alloc_frames(
        OTHER,
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        1,
        &mut theirs,
    )
    .unwrap();
    let f = |s: &mut Server<'_>, o, size, b: &[u8]| s.free_frames(o, size, b);
    assert_eq!(
        f(&mut s, VMM, FrameSize::K4, &[]),
        Err(TdxHostError::BadArgument)
    );
    assert_eq!(
        f(&mut s, VMM, FrameSize::K4, &mine[..7]),
        Err(TdxHostError::BadArgument)
    );
    assert_eq!(
        f(&mut s, VMM, FrameSize::K4, &theirs),
        Err(TdxHostError::NotOwner)
    );
    assert_eq!(
        f(&mut s, OTHER, FrameSize::K4, &mine[..8]),
        Err(TdxHostError::NotOwner)
    );
    let two_mib_aligned = addrs(&mine[..8])[0].is_multiple_of(2 * MIB);
    let want = if two_mib_aligned {
        TdxHostError::WrongSize
    } else {
        TdxHostError::BadAlignment
    };
    assert_eq!(f(&mut s, VMM, FrameSize::M2, &mine[..8]), Err(want));
    assert_eq!(
        f(&mut s, VMM, FrameSize::K4, &u64::MAX.to_le_bytes()),
        Err(TdxHostError::BadAlignment)
    );
    assert_eq!(
        f(&mut s, VMM, FrameSize::K4, &(1u64 << 40).to_le_bytes()),
        Err(TdxHostError::UnknownFrame)
    );
    // The old incarnation of the VMM (generation 0) no longer owns anything.
    assert_eq!(
        f(&mut s, Owner(3), FrameSize::K4, &mine[..8]),
        Err(TdxHostError::NotOwner)
    );
    assert_eq!(f(&mut s, VMM, FrameSize::K4, &mine[..32]), Ok(4));
    assert_eq!(
        f(&mut s, VMM, FrameSize::K4, &mine[..8]),
        Err(TdxHostError::DoubleFree)
    );
}

struct CountingScrubber {
    bytes: u64,
    refuse: bool,
}

impl Scrubber for CountingScrubber {
    fn scrub(&mut self, range: PhysRange) -> Result<(), KernelError> {
        if self.refuse {
            return Err(KernelError::Kipc(KipcError::BadRange));
        }
        self.bytes += range.size().0;
        Ok(())
    }
}

#[test]
fn handed_out_tdx_frames_are_pt_nda_and_come_back_after_scrub() {
    let (mut s, mut seam) = ready_server(HotplugPolicy::Reject);
    let free_before = s.status().tdx_bytes_free;
    let mut buf = [0u8; 4096];
    for size in [FrameSize::K4, FrameSize::M2] {
        let n = if size == FrameSize::K4 { 512 } else { 16 };
        assert_eq!(
            s.alloc_frames(OTHER, ANY_NODE, size, MemClass::Tdx, n, &mut buf),
            Ok(n)
        );
        for pa in addrs(&buf[..n as usize * 8]) {
            // The module agrees: inside an initialized TDMR block, not reserved, not owned.
            for off in (0..size.bytes()).step_by((size.bytes() / 4).max(PAGE_4K) as usize) {
                let args = SeamcallArgs::leaf(Leaf::PhymemPageRdmd).rcx(pa + off);
                let r = seam.seamcall(None, args).unwrap();
                assert!(r.status().is_success(), "{:#x}: {:?}", pa + off, r.status());
                assert_eq!(r.rcx, PageType::Nda as u64);
            }
        }
        assert_eq!(s.free_frames(OTHER, size, &buf[..n as usize * 8]), Ok(n));
    }
    // Quarantined until scrubbed, each step at most 2 MiB.
    let quarantined = 512 * PAGE_4K + 16 * 2 * MIB;
    assert_eq!(s.quarantined_bytes(), quarantined);
    assert!(s.status().tdx_bytes_free < free_before);
    let mut scrub = CountingScrubber {
        bytes: 0,
        refuse: false,
    };
    let mut released = 0;
    let mut steps = 0;
    while s.quarantined_bytes() > 0 {
        let r = s.scrub_step(&mut seam, &mut scrub, SCRUB_STEP_BYTES);
        assert!(r.released <= SCRUB_STEP_BYTES && r.released > 0);
        assert_eq!(r.rdmd_calls, r.released / PAGE_4K);
        released += r.released;
        steps += 1;
    }
    assert_eq!(released, quarantined);
    assert_eq!(steps, 1 + 16);
    assert_eq!(scrub.bytes, released);
    assert_eq!(s.status().tdx_bytes_free, free_before);
    assert_eq!(
        s.scrub_step(&mut seam, &mut scrub, SCRUB_STEP_BYTES),
        ScrubReport::default()
    );
}

#[test]
fn a_refused_scrub_retires_the_piece_and_moves_on() {
    let (mut s, mut seam) = ready_server(HotplugPolicy::Reject);
    let mut buf = [0u8; 16];
    s.alloc_frames(OTHER, ANY_NODE, FrameSize::M2, MemClass::Tdx, 2, &mut buf)
        .unwrap();
    s.free_frames(OTHER, FrameSize::M2, &buf).unwrap();
    let mut refuse = CountingScrubber {
        bytes: 0,
        refuse: true,
    };
    let r = s.scrub_step(&mut seam, &mut refuse, SCRUB_STEP_BYTES);
    assert_eq!((r.released, r.retired, r.rdmd_calls), (0, 2 * MIB, 0));
    assert_eq!(
        s.quarantined_bytes(),
        2 * MIB,
        "the next piece is still waiting"
    );
}

#[test]
fn freeing_a_gib_is_one_cheap_request_and_512_steps() {
    let (mut s, mut seam) = ready_server(HotplugPolicy::Reject);
    let mut buf = [0u8; 8];
    s.alloc_frames(OTHER, ANY_NODE, FrameSize::G1, MemClass::Tdx, 1, &mut buf)
        .unwrap();
    let mut scrub = CountingScrubber {
        bytes: 0,
        refuse: false,
    };
    assert_eq!(s.free_frames(OTHER, FrameSize::G1, &buf), Ok(1));
    // The request scrubbed nothing, and the quota is back at once.
    assert_eq!(scrub.bytes, 0);
    assert_eq!(s.quarantined_bytes(), GIB);
    assert!(s
        .alloc_frames(OTHER, ANY_NODE, FrameSize::M2, MemClass::Tdx, 1, &mut buf)
        .is_ok());
    let mut steps = 0;
    while s.quarantined_bytes() > 0 {
        let r = s.scrub_step(&mut seam, &mut scrub, SCRUB_STEP_BYTES);
        assert_eq!((r.released, r.rdmd_calls), (2 * MIB, 512));
        steps += 1;
    }
    assert_eq!((steps, scrub.bytes), (512, GIB));
}

#[test]
fn a_step_takes_no_more_than_asked_and_at_least_a_page() {
    let (mut s, mut seam) = ready_server(HotplugPolicy::Reject);
    let mut buf = [0u8; 8];
    s.alloc_frames(OTHER, ANY_NODE, FrameSize::M2, MemClass::Tdx, 1, &mut buf)
        .unwrap();
    s.free_frames(OTHER, FrameSize::M2, &buf).unwrap();
    let mut scrub = CountingScrubber {
        bytes: 0,
        refuse: false,
    };
    let r = s.scrub_step(&mut seam, &mut scrub, 64 * 1024 + 123);
    assert_eq!((r.released, r.rdmd_calls), (64 * 1024, 16));
    let r = s.scrub_step(&mut seam, &mut scrub, 0);
    assert_eq!(r.released, PAGE_4K);
    let r = s.scrub_step(&mut seam, &mut scrub, u64::MAX);
    assert_eq!(r.released, 2 * MIB - 64 * 1024 - PAGE_4K);
    assert_eq!(s.quarantined_bytes(), 0);
}

#[test]
fn restarted_client_frames_are_reclaimed() {
    let (mut s, mut seam) = ready_server(HotplugPolicy::Reject);
    let mut buf = [0u8; 80];
    s.alloc_frames(VMM, 0, FrameSize::K4, MemClass::Tdx, 10, &mut buf)
        .unwrap();
    let restarted = Owner(3 | 2 << 16);
    assert_eq!(s.client_restarted(&mut seam, restarted).bytes, 10 * PAGE_4K);
    assert_eq!(s.client_restarted(&mut seam, restarted).bytes, 0);
    assert_eq!(
        s.free_frames(restarted, FrameSize::K4, &buf[..8]),
        Err(TdxHostError::DoubleFree)
    );
    // Quota is free again for the new incarnation.
    assert!(s
        .alloc_frames(
            restarted,
            0,
            FrameSize::M2,
            MemClass::Tdx,
            32,
            &mut [0u8; 256]
        )
        .is_ok());
}

#[test]
fn hotplug_ops_need_the_right_and_report_capability() {
    let (mut s, _) = ready_server(HotplugPolicy::PerNode);
    let k = &mut FakeKernel::default();
    assert_eq!(
        s.online_region(VMM, 20 * GIB, GIB, 0, k),
        Err(TdxHostError::AccessDenied)
    );
    assert_eq!(
        s.offline_region(OTHER, 14 * GIB, 2 * GIB, k),
        Err(TdxHostError::AccessDenied)
    );
    let r = s.online_region(HOTPLUG, 14 * GIB, 2 * GIB, 1, k).unwrap();
    assert_eq!((r.class, r.node_tdx_capable), (MemClass::Tdx as u8, 0));
    assert_eq!(s.node_info(0).unwrap().tdx_capable, 1);
    let r = s.online_region(HOTPLUG, 20 * GIB, GIB, 0, k).unwrap();
    assert_eq!((r.class, r.node_tdx_capable), (MemClass::NonTdx as u8, 0));
    let n0 = s.node_info(0).unwrap();
    assert_eq!((n0.tdx_capable, n0.non_tdx_bytes_total), (0, GIB));
    assert_eq!(s.node_info(2), Err(TdxHostError::NoSuchNode));
    assert_eq!(s.offline_region(HOTPLUG, 20 * GIB, GIB, k), Ok(()));
    assert_eq!(s.node_info(0).unwrap().tdx_capable, 1);
}

#[test]
fn region_map_pages_through_whole_records() {
    let (s, _) = ready_server(HotplugPolicy::Reject);
    let rec = core::mem::size_of::<RegionRecord>();
    let mut out = [0u8; 100];
    let first = s.region_map(0, &mut out).unwrap();
    assert_eq!(first.written, 3);
    assert!(first.total >= 3);
    let base = u64::from_le_bytes(out[..8].try_into().unwrap());
    assert!(base >= 16 * MIB);
    let mut all = std::vec![0u8; rec * first.total as usize];
    assert_eq!(s.region_map(0, &mut all).unwrap().written, first.total);
    assert_eq!(&all[..3 * rec], &out[..3 * rec]);
    assert_eq!(s.region_map(first.total, &mut out).unwrap().written, 0);
    assert_eq!(
        s.region_map(first.total + 1, &mut out),
        Err(TdxHostError::BadArgument)
    );
}

/// The task's timer as the pacing sees it: `slow` makes every step see the tick change.
struct FakeTimer {
    now: core::cell::Cell<u64>,
    slow: bool,
    armed: std::vec::Vec<u64>,
}

impl Timer for FakeTimer {
    fn now(&self) -> u64 {
        let t = self.now.get();
        if self.slow {
            self.now.set(t + 1);
        }
        t
    }

    fn arm(&mut self, tick: u64) {
        self.armed.push(tick);
    }
}

/// Freeing arms the timer once for the next tick; each timer tick does one step and re-arms
/// while anything is left; the last step reports the drain. Steps that overrun a tick shrink.
#[test]
fn pacing_scrubs_one_step_per_tick_until_drained() {
    for slow in [false, true] {
        let (mut s, mut seam) = ready_server(HotplugPolicy::Reject);
        let mut buf = [0u8; 16];
        s.alloc_frames(OTHER, ANY_NODE, FrameSize::M2, MemClass::Tdx, 2, &mut buf)
            .unwrap();
        s.free_frames(OTHER, FrameSize::M2, &buf).unwrap();
        let mut timer = FakeTimer {
            now: core::cell::Cell::new(100),
            slow,
            armed: std::vec::Vec::new(),
        };
        let (mut pacer, mut stats) = (ScrubPacer::new(), ServerStats::default());
        pacer.schedule(&s, &mut timer, &mut stats);
        pacer.schedule(&s, &mut timer, &mut stats);
        assert_eq!(timer.armed.len(), 1, "armed once while a step is pending");
        assert_eq!(stats.quarantined_bytes, 4 * MIB);
        let mut scrub = CountingScrubber {
            bytes: 0,
            refuse: false,
        };
        let mut clock = 0u64;
        let mut drained = None;
        let mut ticks = 0;
        while drained.is_none() {
            assert_eq!(timer.armed.len(), ticks + 1, "one armed tick per step");
            let tsc = || {
                clock += 10;
                clock
            };
            drained = pacer.tick(&mut s, (&mut seam, &mut scrub), &mut timer, tsc, &mut stats);
            ticks += 1;
            assert!(ticks <= 64, "4 MiB drain in at most 64 steps of 64 KiB");
        }
        let d = drained.unwrap();
        assert_eq!(
            (d.bytes, d.steps, scrub.bytes),
            (4 * MIB, ticks as u64, 4 * MIB)
        );
        assert_eq!(
            (stats.scrubbed_bytes, stats.quarantined_bytes),
            (4 * MIB, 0)
        );
        assert!(d.scrub_ticks > 0 && d.scrub_ticks < d.step_ticks);
        if slow {
            // Halving after every step: 2 + 1 + 1/2 + 1/4 + 1/8 + 1/16 + 1/16 MiB.
            assert_eq!((ticks, pacer.step_bytes()), (7, MIN_STEP_BYTES));
        } else {
            assert_eq!((ticks, pacer.step_bytes()), (2, SCRUB_STEP_BYTES));
        }
        assert_eq!(timer.armed.len(), ticks, "nothing armed once drained");
    }
}

/// A request identity answers only its own request. The last allocation's identity with other
/// arguments (size, class, count, a short lease) is refused, not answered with that
/// allocation's frames; a new request may not take an identity that still tags frames the
/// caller holds (a retry would answer those too); and a free's identity with another address
/// list is refused rather than answered "freed" while the frame stays held.
#[test]
fn a_request_identity_answers_only_its_own_request() {
    let (mut s, _) = ready_server(HotplugPolicy::PerNode);
    let mut buf = [0u8; 4096];
    let k4 = (ANY_NODE, FrameSize::K4, MemClass::Tdx);
    let m2 = (ANY_NODE, FrameSize::M2, MemClass::NonTdx);
    let n = s.alloc_request((OTHER, 5), k4, 4, &mut buf).expect("alloc");
    let first = addrs(&buf[..8 * n as usize]);
    for (what, count, room) in [(m2, 1, 4096), (k4, 3, 4096), (k4, 0, 4096), (k4, 4, 8)] {
        assert_eq!(
            s.alloc_request((OTHER, 5), what, count, &mut buf[..room]),
            Err(TdxHostError::BadArgument),
            "{what:?} × {count} into {room} bytes"
        );
    }
    let n = s.alloc_request((OTHER, 5), k4, 4, &mut buf).expect("retry");
    assert_eq!(addrs(&buf[..8 * n as usize]), first, "the retry");

    // Identity 5 still tags the four frames: a new request cannot take it.
    s.alloc_request((OTHER, 6), k4, 1, &mut buf)
        .expect("another");
    assert_eq!(
        s.alloc_request((OTHER, 5), m2, 1, &mut buf),
        Err(TdxHostError::BadArgument)
    );
    let list: std::vec::Vec<u8> = first.iter().flat_map(|a| a.to_le_bytes()).collect();
    assert_eq!(s.free_request((OTHER, 7), FrameSize::K4, &list[..8]), Ok(1));
    assert_eq!(
        s.free_request((OTHER, 7), FrameSize::K4, &list[8..16]),
        Err(TdxHostError::BadArgument),
        "another list under the last free's identity"
    );
    assert_eq!(s.free_request((OTHER, 7), FrameSize::K4, &list[..8]), Ok(1));
    assert_eq!(s.free_frames(OTHER, FrameSize::K4, &list[8..]), Ok(3));
    // Once nothing carries identity 5, a new request may use it, and its retry answers it alone.
    let n = s
        .alloc_request((OTHER, 5), m2, 1, &mut buf)
        .expect("reused");
    let again = addrs(&buf[..8 * n as usize]);
    let n = s.alloc_request((OTHER, 5), m2, 1, &mut buf).expect("retry");
    assert_eq!(addrs(&buf[..8 * n as usize]), again);
    assert_eq!(n, 1);
}
