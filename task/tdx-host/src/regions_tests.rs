//! Region-map and onlining-policy rules, on a region map built from a real bring-up.

extern crate std;

use tdx_emu::EmuConfig;
use tdx_host_api::{MemClass, TdxHostError};

use super::{HotplugPolicy, Regions};
use crate::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};
use crate::frames::{bitmap_words, FrameAllocator, NodeMask, Owner, Request};
use crate::init::tests::{mr, run_with, Fixture, Run, BUF_BASE};
use crate::init::State;

const MIB: u64 = 1 << 20;

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
    Regions::build(FrameAllocator::new(bits), &run.storage, policy, 2).expect("regions")
}

fn overlaps(a: PhysRange, b: PhysRange) -> bool {
    a.base.0 < b.base.0 + b.size.0 && b.base.0 < a.base.0 + a.size.0
}

#[test]
fn build_keeps_pamts_image_and_buffer_out() {
    let run = ready_run();
    let regions = build(&run, HotplugPolicy::Reject);
    let pools = regions.frames.pools();
    for p in pools {
        for b in &run.storage.plan.pamt_blocks {
            assert!(
                !overlaps(p.range, b.range),
                "pool {p:?} overlaps PAMT {b:?}"
            );
        }
        assert!(!overlaps(p.range, PhysRange::new(MIB, 16 * MIB)), "image");
        assert!(
            !overlaps(p.range, PhysRange::new(BUF_BASE, 64 * 1024)),
            "buffer"
        );
        assert_eq!(p.class, MemClass::Tdx, "Reject: no non-TDX pool at boot");
    }
    let offline: std::vec::Vec<_> = pools.iter().filter(|p| !p.online).collect();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].range, PhysRange::new(14 * GIB, 2 * GIB));
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
    let req = Request {
        nodes: NodeMask(1 << 1),
        size: tdx_host_api::FrameSize::G1,
        class: MemClass::Tdx,
    };
    let before = regions.node_totals(1).tdx_total;
    let mut out = [PhysAddr(0); 4];
    // Node 1 online TDX memory is [10, 14) GiB minus PAMTs: fewer than four whole GiB free.
    assert!(regions.frames.allocate(Owner(9), req, &mut out).is_err());
    let range = PhysRange::new(14 * GIB, 2 * GIB);
    assert_eq!(regions.online(range, 1), Ok(MemClass::Tdx));
    assert_eq!(regions.node_totals(1).tdx_total, before + 2 * GIB);
    regions.frames.allocate(Owner(9), req, &mut out).unwrap();
    assert!(out.iter().any(|a| a.0 >= 14 * GIB));
    assert_eq!(regions.online(range, 1), Err(TdxHostError::RegionOverlap));
}

#[test]
fn hotplug_outside_tdmrs_follows_the_policy() {
    let run = ready_run();
    let window = PhysRange::new(20 * GIB, GIB);
    let mut reject = build(&run, HotplugPolicy::Reject);
    assert_eq!(
        reject.online(window, 1),
        Err(TdxHostError::RegionOutsideTdmrs)
    );
    assert!(reject.node_totals(1).tdx_capable());
    // The SEAMRR/MMIO hole below 4 GiB is reserved (or outside every TDMR): never TDX.
    let hole = PhysRange::new(3 * GIB, 2 * MIB);
    assert_eq!(
        reject.online(hole, 0),
        Err(TdxHostError::RegionOutsideTdmrs)
    );

    let mut per_node = build(&run, HotplugPolicy::PerNode);
    assert_eq!(per_node.online(window, 0), Ok(MemClass::NonTdx));
    let t = per_node.node_totals(0);
    assert_eq!(t.non_tdx_total, GIB);
    assert!(!t.tdx_capable(), "node 0 is no longer wholly TDX-capable");
}

#[test]
fn online_validates_its_input() {
    let run = ready_run();
    let mut r = build(&run, HotplugPolicy::PerNode);
    let e = |r: &mut Regions<'_>, b, s, n| r.online(PhysRange::new(b, s), n);
    assert_eq!(
        e(&mut r, 20 * GIB + 1, GIB, 0),
        Err(TdxHostError::BadAlignment)
    );
    assert_eq!(e(&mut r, 20 * GIB, 100, 0), Err(TdxHostError::BadAlignment));
    assert_eq!(e(&mut r, 20 * GIB, 0, 0), Err(TdxHostError::BadArgument));
    assert_eq!(
        e(&mut r, !0xFFF, 2 * PAGE_4K, 0),
        Err(TdxHostError::BadArgument)
    );
    assert_eq!(e(&mut r, 20 * GIB, GIB, 2), Err(TdxHostError::NoSuchNode));
    // Overlaps online RAM, a PAMT block, the image.
    assert_eq!(e(&mut r, 5 * GIB, GIB, 0), Err(TdxHostError::RegionOverlap));
    let pamt = run.storage.plan.pamt_blocks[0].range;
    assert_eq!(
        e(&mut r, pamt.base.0, PAGE_4K, 0),
        Err(TdxHostError::RegionOverlap)
    );
    assert_eq!(e(&mut r, MIB, PAGE_4K, 0), Err(TdxHostError::RegionOverlap));
    // The boot-offline region must be onlined on its own node.
    assert_eq!(
        e(&mut r, 14 * GIB, 2 * GIB, 0),
        Err(TdxHostError::RegionOverlap)
    );
}

#[test]
fn offline_is_refused_while_frames_are_in_use() {
    let run = ready_run();
    let mut r = build(&run, HotplugPolicy::PerNode);
    let range = PhysRange::new(20 * GIB, GIB);
    r.online(range, 1).unwrap();
    let req = Request {
        nodes: NodeMask(1 << 1),
        size: tdx_host_api::FrameSize::G1,
        class: MemClass::NonTdx,
    };
    // Both non-TDX GiB of node 1: the boot one outside the CMRs and the hot-plugged one.
    let mut out = [PhysAddr(0); 2];
    r.frames.allocate(Owner(4), req, &mut out).unwrap();
    assert_eq!(r.offline(range), Err(TdxHostError::RegionBusy));
    r.frames
        .free(Owner(4), tdx_host_api::FrameSize::G1, &out)
        .unwrap();
    // Freed but not yet scrubbed: still busy.
    assert_eq!(r.offline(range), Err(TdxHostError::RegionBusy));
    let mut q = [PhysRange::default(); 4];
    let n = r.frames.quarantined(&mut q);
    for run in &q[..n] {
        r.frames.release_scrubbed(*run).unwrap();
    }
    assert_eq!(r.offline(range), Ok(()));
    assert_eq!(r.offline(range), Err(TdxHostError::UnknownRegion));
    // Only the boot RAM outside every CMR is left as non-TDX on node 1.
    assert_eq!(r.node_totals(1).non_tdx_total, GIB);
    // Onlining it again reuses the region.
    assert_eq!(r.online(range, 1), Ok(MemClass::NonTdx));
    assert_eq!(
        r.offline(PhysRange::new(20 * GIB, 2 * MIB)),
        Err(TdxHostError::UnknownRegion)
    );
}
