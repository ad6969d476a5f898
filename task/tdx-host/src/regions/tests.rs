//! Region-map and onlining-policy rules, on a region map built from a real bring-up.

extern crate std;

use tdx_emu::EmuConfig;
use tdx_host_api::{MemClass, TdxHostError};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

use super::{HotplugPolicy, MemoryAuthority, PlatformMemory, Regions};
use crate::frames::{bitmap_words, FrameAllocator, NodeMask, Owner, Request};
use crate::init::tests::{mr, run_with, Fixture, Run, BUF_BASE};
use crate::init::State;
use abi::kipc::KipcError;

use crate::seam::KernelError;

const MIB: u64 = 1 << 20;

/// The test platform's hot-plug window: [20, 24) GiB.
pub(crate) const WINDOW: PhysRange = PhysRange::literal(20 * GIB, 4 * GIB);

/// The kernel's online-memory table as the real kernel keeps it: ranges inside the window,
/// disjoint; offline only of a range onlined before. `refuse` makes it say no to everything.
#[derive(Debug, Default)]
pub(crate) struct FakeKernel {
    pub online: std::vec::Vec<PhysRange>,
    pub refuse: bool,
}

impl MemoryAuthority for FakeKernel {
    fn online_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
        let inside = WINDOW.base().0 <= r.base().0
            && r.base().0 + r.size().0 <= WINDOW.base().0 + WINDOW.size().0;
        if self.refuse || !inside || self.online.iter().any(|o| o.overlaps(r)) {
            return Err(KernelError::Kipc(KipcError::OutsideHotplugWindow));
        }
        self.online.push(r);
        Ok(())
    }

    fn offline_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
        let at = self.online.iter().position(|o| *o == r);
        match at {
            Some(i) if !self.refuse => {
                self.online.remove(i);
                Ok(())
            }
            _ => Err(KernelError::Kipc(KipcError::NotOnline)),
        }
    }
}

/// 4 CPUs, 2 packages, 2 nodes; node 1's top 2 GiB kept offline at boot; plus 1 GiB of RAM on
/// node 1 outside every CMR.
pub(crate) fn ready_run() -> Run {
    let mut fx = Fixture::new(4, 2, 2);
    fx.ram[2] = mr(10 * GIB, 14 * GIB, 1);
    fx.offline.push(mr(14 * GIB, 16 * GIB, 1));
    fx.ram.push(mr(16 * GIB, 17 * GIB, 1));
    let r = run_with(EmuConfig::new(4, 2), &fx, |_| {});
    assert_eq!(r.state, State::Ready);
    r
}

pub(crate) fn build(run: &Run, policy: HotplugPolicy) -> Regions<'static> {
    let words = bitmap_words(20 * GIB, 128);
    let bits = std::boxed::Box::leak(std::vec![0u64; words].into_boxed_slice());
    let platform = PlatformMemory {
        hotplug_window: Some(WINDOW),
        cmrs: &run.bringup.info().cmrs,
    };
    Regions::build(FrameAllocator::new(bits), &run.storage, platform, policy, 2).expect("regions")
}

#[test]
fn build_keeps_pamts_image_and_buffer_out() {
    let run = ready_run();
    let regions = build(&run, HotplugPolicy::Reject);
    let pools = regions.frames.pools();
    for p in pools {
        for b in &run.storage.plan.pamt_blocks {
            assert!(!p.range.overlaps(b.range), "pool {p:?} overlaps PAMT {b:?}");
        }
        assert!(
            !p.range.overlaps(PhysRange::literal(MIB, 16 * MIB)),
            "image"
        );
        assert!(
            !p.range.overlaps(PhysRange::literal(BUF_BASE, 64 * 1024)),
            "buffer"
        );
        assert_eq!(p.class, MemClass::Tdx, "Reject: no non-TDX pool at boot");
    }
    let offline: std::vec::Vec<_> = pools.iter().filter(|p| !p.online).collect();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].range, PhysRange::literal(14 * GIB, 2 * GIB));
    assert!(regions.node_totals(1).tdx_capable());
    let per_node = build(&run, HotplugPolicy::PerNode);
    let t = per_node.node_totals(1);
    assert_eq!(
        t.non_tdx_total, GIB,
        "RAM outside CMRs is non-TDX under per-node"
    );
    assert!(!t.tdx_capable());
    assert!(per_node.node_totals(0).tdx_capable());
}

#[test]
fn boot_offline_memory_is_tdx_but_allocatable_only_after_onlining() {
    let run = ready_run();
    let mut regions = build(&run, HotplugPolicy::Reject);
    let mut k = FakeKernel::default();
    let req = Request {
        nodes: NodeMask(1 << 1),
        size: tdx_host_api::FrameSize::G1,
        class: MemClass::Tdx,
    };
    let before = regions.node_totals(1).tdx_total;
    let mut out = [PhysAddr(0); 4];
    // Node 1 online TDX memory is [10, 14) GiB minus PAMTs: fewer than four whole GiB free.
    assert!(regions.frames.allocate(Owner(9), req, &mut out).is_err());
    let range = PhysRange::literal(14 * GIB, 2 * GIB);
    assert_eq!(regions.online(range, 1, &mut k), Ok(MemClass::Tdx));
    assert_eq!(regions.node_totals(1).tdx_total, before + 2 * GIB);
    regions.frames.allocate(Owner(9), req, &mut out).unwrap();
    assert!(out.iter().any(|a| a.0 >= 14 * GIB));
    assert_eq!(
        regions.online(range, 1, &mut k),
        Err(TdxHostError::AlreadyOnline)
    );
    // Boot RAM: nothing asked of the kernel.
    assert!(k.online.is_empty());
}

#[test]
fn hotplug_outside_tdmrs_follows_the_policy() {
    let run = ready_run();
    let window = PhysRange::literal(20 * GIB, GIB);
    let mut k = FakeKernel::default();
    let mut reject = build(&run, HotplugPolicy::Reject);
    assert_eq!(
        reject.online(window, 1, &mut k),
        Err(TdxHostError::RegionOutsideTdmrs)
    );
    assert!(reject.node_totals(1).tdx_capable());
    assert!(k.online.is_empty(), "a refusal asks nothing of the kernel");

    let mut per_node = build(&run, HotplugPolicy::PerNode);
    assert_eq!(per_node.online(window, 0, &mut k), Ok(MemClass::NonTdx));
    assert_eq!(k.online, [window]);
    let t = per_node.node_totals(0);
    assert_eq!(t.non_tdx_total, GIB);
    assert!(!t.tdx_capable(), "node 0 is no longer wholly TDX-capable");
}

#[test]
fn online_refuses_what_is_not_memory_with_distinct_errors() {
    let run = ready_run();
    for policy in [HotplugPolicy::Reject, HotplugPolicy::PerNode] {
        let mut r = build(&run, policy);
        let mut k = FakeKernel::default();
        let pools_before = r.frames.pools().to_vec();
        let mut e = |b, s| r.online(PhysRange::literal(b, s), 0, &mut k);
        // The local APIC page and 1 TiB of nothing: no RAM, no window, no CMR, no TDMR.
        assert_eq!(e(0xfee0_0000, PAGE_4K), Err(TdxHostError::NotMemory));
        assert_eq!(e(1 << 40, GIB), Err(TdxHostError::NotMemory));
        // Straddling the window's end: part of it is not memory.
        assert_eq!(e(23 * GIB, 2 * GIB), Err(TdxHostError::NotMemory));
        // Below 1 MiB: inside TDMR 0 (reserved), neither RAM nor a CMR: a legacy hole.
        assert_eq!(e(0xa_0000, PAGE_4K), Err(TdxHostError::FirmwareHole));
        // The SEAMRR range below 2 GiB sits in TDMR 0 and is not RAM.
        assert_eq!(
            e(2 * GIB - 32 * MIB, 2 * MIB),
            Err(TdxHostError::FirmwareHole)
        );
        // RAM outside every CMR, and a reserved area: boot RAM tdx-host does not hold offline
        // (under per-node the former is an online region: a partial overlap).
        let outside = e(16 * GIB + 16 * MIB, 2 * MIB);
        if policy == HotplugPolicy::Reject {
            assert_eq!(outside, Err(TdxHostError::NotHeldOffline));
        } else {
            assert_eq!(outside, Err(TdxHostError::RegionOverlap));
        }
        assert_eq!(
            r.frames.pools(),
            &pools_before[..],
            "{policy:?}: tables unchanged"
        );
        assert!(k.online.is_empty());
    }
}

#[test]
fn a_hole_inside_a_cmr_is_a_firmware_hole() {
    // One CMR over [1 MiB, 2 GiB - 32 MiB) but a 64 MiB firmware hole in the RAM at 1 GiB: the
    // planner covers it (holes come from the coarse CMRs), so the old rule called it TDX.
    let mut fx = Fixture::new(4, 2, 1);
    fx.ram = std::vec![
        mr(MIB, GIB, 0),
        mr(GIB + 64 * MIB, 2 * GIB - 32 * MIB, 0),
        mr(4 * GIB, 16 * GIB, 0),
    ];
    let run = run_with(EmuConfig::new(4, 2), &fx, |_| {});
    assert_eq!(run.state, State::Ready);
    let mut r = build(&run, HotplugPolicy::Reject);
    assert!(r.is_tdx_usable(PhysRange::literal(GIB, 2 * MIB)));
    let mut k = FakeKernel::default();
    assert_eq!(
        r.online(PhysRange::literal(GIB, 2 * MIB), 0, &mut k),
        Err(TdxHostError::FirmwareHole)
    );
}

#[test]
fn a_kernel_refusal_changes_nothing() {
    let run = ready_run();
    let mut r = build(&run, HotplugPolicy::PerNode);
    let window = PhysRange::literal(20 * GIB, GIB);
    let mut k = FakeKernel {
        refuse: true,
        ..FakeKernel::default()
    };
    let before = r.frames.pools().to_vec();
    assert_eq!(
        r.online(window, 0, &mut k),
        Err(TdxHostError::MemoryRefused)
    );
    assert_eq!(r.frames.pools(), &before[..]);
    k.refuse = false;
    assert_eq!(r.online(window, 0, &mut k), Ok(MemClass::NonTdx));
    k.refuse = true;
    assert_eq!(r.offline(window, &mut k), Err(TdxHostError::MemoryRefused));
    assert!(r
        .frames
        .pools()
        .iter()
        .any(|p| p.range == window && p.online));
    k.refuse = false;
    assert_eq!(r.offline(window, &mut k), Ok(()));
    assert!(
        k.online.is_empty(),
        "offlined window memory went back to the kernel"
    );
    // Onlining the offline region again asks the kernel again.
    assert_eq!(r.online(window, 0, &mut k), Ok(MemClass::NonTdx));
    assert_eq!(k.online, [window]);
}

#[test]
fn online_validates_its_input() {
    let run = ready_run();
    let mut r = build(&run, HotplugPolicy::PerNode);
    let mut k = FakeKernel::default();
    let mut e = |b, s, n| r.online(PhysRange::literal(b, s), n, &mut k);
    assert_eq!(e(20 * GIB + 1, GIB, 0), Err(TdxHostError::BadAlignment));
    assert_eq!(e(20 * GIB, 100, 0), Err(TdxHostError::BadAlignment));
    assert_eq!(e(20 * GIB, 0, 0), Err(TdxHostError::BadArgument));
    // A wrapping range cannot be built; the server turns that into `BadArgument`.
    assert_eq!(PhysRange::new(!0xFFF, 2 * PAGE_4K), None);
    assert_eq!(e(20 * GIB, GIB, 2), Err(TdxHostError::NoSuchNode));
    // Overlaps online RAM, a PAMT block, the image.
    assert_eq!(e(5 * GIB, GIB, 0), Err(TdxHostError::RegionOverlap));
    let pamt = run.storage.plan.pamt_blocks[0].range;
    assert_eq!(
        e(pamt.base().0, PAGE_4K, 0),
        Err(TdxHostError::RegionOverlap)
    );
    assert_eq!(e(MIB, PAGE_4K, 0), Err(TdxHostError::RegionOverlap));
    // The boot-offline region must be onlined on its own node.
    assert_eq!(e(14 * GIB, 2 * GIB, 0), Err(TdxHostError::WrongNode));
}

#[test]
fn offline_is_refused_while_frames_are_in_use() {
    let run = ready_run();
    let mut r = build(&run, HotplugPolicy::PerNode);
    let mut k = FakeKernel::default();
    let range = PhysRange::literal(20 * GIB, GIB);
    r.online(range, 1, &mut k).unwrap();
    let req = Request {
        nodes: NodeMask(1 << 1),
        size: tdx_host_api::FrameSize::G1,
        class: MemClass::NonTdx,
    };
    // Both non-TDX GiB of node 1: the boot one outside the CMRs and the hot-plugged one.
    let mut out = [PhysAddr(0); 2];
    r.frames.allocate(Owner(4), req, &mut out).unwrap();
    assert_eq!(r.offline(range, &mut k), Err(TdxHostError::RegionBusy));
    r.frames
        .free(Owner(4), tdx_host_api::FrameSize::G1, &out)
        .unwrap();
    // Freed but not yet scrubbed: still busy.
    assert_eq!(r.offline(range, &mut k), Err(TdxHostError::RegionBusy));
    assert_eq!(
        k.online,
        [range],
        "a refused offline keeps the kernel's table"
    );
    let mut q = [PhysRange::default(); 4];
    let n = r.frames.quarantined(&mut q);
    for run in &q[..n] {
        r.frames.release_scrubbed(*run).unwrap();
    }
    assert_eq!(r.offline(range, &mut k), Ok(()));
    assert_eq!(r.offline(range, &mut k), Err(TdxHostError::UnknownRegion));
    // Only the boot RAM outside every CMR is left as non-TDX on node 1.
    assert_eq!(r.node_totals(1).non_tdx_total, GIB);
    // Onlining it again reuses the region.
    assert_eq!(r.online(range, 1, &mut k), Ok(MemClass::NonTdx));
    assert_eq!(
        r.offline(PhysRange::literal(20 * GIB, 2 * MIB), &mut k),
        Err(TdxHostError::UnknownRegion)
    );
}

/// `totals` answers from its cache while no pool changed; every kind of pool change (an
/// allocation, a free into quarantine, a release, a retirement, onlining, offlining) must give
/// the fresh sum, read right after the change, never the cached one.
#[test]
fn totals_follow_every_pool_change() {
    let run = ready_run();
    let mut r = build(&run, HotplugPolicy::PerNode);
    let mut k = FakeKernel::default();
    let check = |r: &Regions<'_>, step: &str| {
        let cached = r.totals();
        assert_eq!(cached, r.sum_totals(), "after {step}");
        assert_eq!(r.totals(), cached, "asked twice after {step}");
    };
    check(&r, "build");
    let req = |class| Request {
        nodes: NodeMask(1 << 1),
        size: tdx_host_api::FrameSize::K4,
        class,
    };
    let mut out = [PhysAddr(0); 8];
    r.frames
        .allocate(Owner(4), req(MemClass::Tdx), &mut out)
        .unwrap();
    check(&r, "allocation");
    r.frames
        .free(Owner(4), tdx_host_api::FrameSize::K4, &out[..4])
        .unwrap();
    check(&r, "free");
    let mut q = [PhysRange::default(); 4];
    let n = r.frames.quarantined(&mut q);
    assert!(n > 0);
    r.frames.release_scrubbed(q[0]).unwrap();
    check(&r, "release");
    r.frames
        .free(Owner(4), tdx_host_api::FrameSize::K4, &out[4..])
        .unwrap();
    let n = r.frames.quarantined(&mut q);
    assert!(n > 0);
    r.frames.retire(q[0]).unwrap();
    check(&r, "retirement");
    let range = PhysRange::literal(20 * GIB, GIB);
    r.online(range, 1, &mut k).unwrap();
    check(&r, "online");
    r.frames
        .allocate(Owner(4), req(MemClass::NonTdx), &mut out[..1])
        .unwrap();
    check(&r, "non-TDX allocation");
    r.frames
        .free(Owner(4), tdx_host_api::FrameSize::K4, &out[..1])
        .unwrap();
    let n = r.frames.quarantined(&mut q);
    for run in &q[..n] {
        r.frames.release_scrubbed(*run).unwrap();
    }
    check(&r, "non-TDX release");
    assert_eq!(r.offline(range, &mut k), Ok(()));
    check(&r, "offline");
}
