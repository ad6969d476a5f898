//! Frame allocator rules, and a property test against a simple model (no leak, no double
//! ownership, totals return exactly).

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec as StdVec;

use proptest::prelude::{any, prop, prop_oneof, proptest, Just, ProptestConfig, Strategy};
use tdx_host_api::{FrameSize, MemClass};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

use super::{
    bitmap_words, FrameAllocator, FrameError, NodeMask, Owner, PoolId, Request, MAX_RECORDS,
    RESERVED_FOR_FREE,
};

const MIB: u64 = 1 << 20;

fn storage(bytes: u64) -> StdVec<u64> {
    std::vec![0; bitmap_words(bytes, 8)]
}

fn req(node: u16, size: FrameSize, class: MemClass) -> Request {
    Request {
        nodes: NodeMask(1 << node),
        size,
        class,
    }
}

const A: Owner = Owner(5);
const B: Owner = Owner(6);

fn addrs(n: usize) -> StdVec<PhysAddr> {
    std::vec![PhysAddr(0); n]
}

#[test]
fn tdx_frames_only_from_ready_gib_blocks() {
    let mut bits = storage(2 * GIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(GIB, 2 * GIB), 0, MemClass::Tdx, true)
        .unwrap();
    let mut out = addrs(1);
    let r = req(0, FrameSize::K4, MemClass::Tdx);
    assert_eq!(f.allocate(A, r, &mut out), Err(FrameError::NoMemory));
    // Half a GiB initialized is not a usable block (§3.2).
    f.mark_ready(PhysRange::literal(GIB, GIB / 2));
    assert_eq!(f.allocate(A, r, &mut out), Err(FrameError::NoMemory));
    f.mark_ready(PhysRange::literal(2 * GIB, GIB));
    f.allocate(A, r, &mut out).unwrap();
    assert_eq!(out[0], PhysAddr(2 * GIB));
    let mut big = addrs(1);
    let g = req(0, FrameSize::G1, MemClass::Tdx);
    assert_eq!(f.allocate(A, g, &mut big), Err(FrameError::NoMemory));
    f.mark_ready(PhysRange::literal(GIB, GIB));
    f.allocate(A, g, &mut big).unwrap();
    assert_eq!(big[0], PhysAddr(GIB));
}

#[test]
fn sizes_are_aligned_and_class_node_online_respected() {
    let mut bits = storage(4 * GIB);
    let mut f = FrameAllocator::new(&mut bits);
    // Starts 12 KiB past a 2 MiB boundary: the first 2M frame is at the next boundary.
    f.add_pool(
        PhysRange::literal(0x1000_3000, 64 * MIB),
        1,
        MemClass::NonTdx,
        true,
    )
    .unwrap();
    let off = f
        .add_pool(PhysRange::literal(GIB, 8 * MIB), 1, MemClass::NonTdx, false)
        .unwrap();
    let mut out = addrs(3);
    f.allocate(A, req(1, FrameSize::M2, MemClass::NonTdx), &mut out)
        .unwrap();
    assert!(out.iter().all(|a| a.0 % (2 * MIB) == 0));
    assert_eq!(out[0].0, 0x1020_0000);
    let mut one = addrs(1);
    assert_eq!(
        f.allocate(A, req(0, FrameSize::K4, MemClass::NonTdx), &mut one),
        Err(FrameError::NoMemory),
        "wrong node"
    );
    assert_eq!(
        f.allocate(A, req(1, FrameSize::K4, MemClass::Tdx), &mut one),
        Err(FrameError::NoMemory),
        "wrong class"
    );
    // The offline pool is never used: 64 MiB - 12 KiB online holds 30 more 2M frames, not 34.
    let mut many = addrs(31);
    assert_eq!(
        f.allocate(A, req(1, FrameSize::M2, MemClass::NonTdx), &mut many),
        Err(FrameError::NoMemory)
    );
    f.set_online(off, true).unwrap();
    f.allocate(A, req(1, FrameSize::M2, MemClass::NonTdx), &mut many)
        .unwrap();
}

#[test]
fn all_or_nothing_allocation() {
    let mut bits = storage(GIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(
        PhysRange::literal(0, 16 * PAGE_4K),
        0,
        MemClass::NonTdx,
        true,
    )
    .unwrap();
    let mut out = addrs(17);
    let r = req(0, FrameSize::K4, MemClass::NonTdx);
    assert_eq!(f.allocate(A, r, &mut out), Err(FrameError::NoMemory));
    assert_eq!(f.pools()[0].in_use, 0);
    assert!(f.records().is_empty());
    let mut out = addrs(16);
    f.allocate(A, r, &mut out).unwrap();
    assert_eq!(f.records().len(), 1, "one contiguous run, one record");
    assert_eq!(f.usage(A.index()), 16 * PAGE_4K);
}

#[test]
fn free_errors_and_nothing_changes_on_error() {
    let mut bits = storage(GIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 4 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    let k4 = req(0, FrameSize::K4, MemClass::NonTdx);
    let mut a = addrs(4);
    f.allocate(A, k4, &mut a).unwrap();
    let mut b = addrs(1);
    f.allocate(B, k4, &mut b).unwrap();
    let before = (f.records().to_vec(), f.pools().to_vec());
    let k = FrameSize::K4;
    assert_eq!(
        f.free(A, k, &[PhysAddr(a[0].0 + 1)]),
        Err(FrameError::BadAlignment)
    );
    assert_eq!(
        f.free(A, k, &[PhysAddr(GIB)]),
        Err(FrameError::UnknownFrame)
    );
    assert_eq!(
        f.free(A, k, &[PhysAddr(3 * MIB)]),
        Err(FrameError::DoubleFree)
    );
    assert_eq!(f.free(A, k, &[a[1], b[0]]), Err(FrameError::NotOwner));
    assert_eq!(f.free(A, k, &[a[1], a[1]]), Err(FrameError::DoubleFree));
    assert_eq!(
        f.free(A, FrameSize::M2, &[PhysAddr(0)]),
        Err(FrameError::WrongSize)
    );
    // A later incarnation of A is another owner.
    assert_eq!(
        f.free(Owner(A.0 | 1 << 16), k, &[a[0]]),
        Err(FrameError::NotOwner)
    );
    assert_eq!(f.free(A, k, &[]), Err(FrameError::BadArgument));
    assert_eq!((f.records().to_vec(), f.pools().to_vec()), before);
    // A middle frame splits the run; freeing it twice is a double free.
    assert_eq!(f.free(A, k, &[a[1]]), Ok(1));
    assert_eq!(f.free(A, k, &[a[1]]), Err(FrameError::DoubleFree));
    assert_eq!(f.records().len(), 3);
    assert_eq!(f.usage(A.index()), 3 * PAGE_4K);
}

#[test]
fn freed_frames_wait_in_quarantine_until_scrubbed() {
    let mut bits = storage(GIB);
    let mut f = FrameAllocator::new(&mut bits);
    let pool = f
        .add_pool(
            PhysRange::literal(0, 8 * PAGE_4K),
            0,
            MemClass::NonTdx,
            true,
        )
        .unwrap();
    let r = req(0, FrameSize::K4, MemClass::NonTdx);
    let mut a = addrs(8);
    f.allocate(A, r, &mut a).unwrap();
    f.free(A, FrameSize::K4, &a[2..6]).unwrap();
    let mut q = [PhysRange::default(); 4];
    assert_eq!(f.quarantined(&mut q), 1);
    assert_eq!(q[0], PhysRange::literal(2 * PAGE_4K, 4 * PAGE_4K));
    let mut one = addrs(1);
    assert_eq!(f.allocate(B, r, &mut one), Err(FrameError::NoMemory));
    assert_eq!(f.set_online(pool, false), Err(FrameError::Busy(8)));
    assert_eq!(
        f.release_scrubbed(PhysRange::literal(0, 4 * PAGE_4K)),
        Err(FrameError::NotQuarantined)
    );
    f.release_scrubbed(PhysRange::literal(2 * PAGE_4K, 2 * PAGE_4K))
        .unwrap();
    f.retire(PhysRange::literal(4 * PAGE_4K, 2 * PAGE_4K))
        .unwrap();
    assert_eq!(f.quarantined_bytes(), 0);
    f.allocate(B, r, &mut one).unwrap();
    assert_eq!(one[0], PhysAddr(2 * PAGE_4K));
    // Retired frames are never handed out again.
    let mut two = addrs(2);
    assert_eq!(f.allocate(B, r, &mut two), Err(FrameError::NoMemory));
}

#[test]
fn reclaim_takes_only_stale_generations() {
    let mut bits = storage(GIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 4 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    let r = req(0, FrameSize::K4, MemClass::NonTdx);
    let old = Owner(7);
    let new = Owner(7 | 1 << 16);
    let mut a = addrs(3);
    f.allocate(old, r, &mut a).unwrap();
    let mut b = addrs(2);
    f.allocate(new, r, &mut b).unwrap();
    f.allocate(B, r, &mut addrs(1)).unwrap();
    assert_eq!(f.reclaim_stale(new), 3 * PAGE_4K);
    assert_eq!(f.usage(7), 2 * PAGE_4K);
    assert_eq!(f.quarantined_bytes(), 3 * PAGE_4K);
    assert_eq!(f.reclaim_all(7), 2 * PAGE_4K);
    assert_eq!(f.usage(7), 0);
    assert_eq!(f.usage(B.index()), PAGE_4K);
}

#[test]
fn pools_must_be_aligned_disjoint_and_fit_the_bitmap() {
    let mut bits = std::vec![0u64; 4];
    let mut f = FrameAllocator::new(&mut bits);
    let t = MemClass::Tdx;
    assert_eq!(
        f.add_pool(PhysRange::literal(1, PAGE_4K), 0, t, true),
        Err(FrameError::BadAlignment)
    );
    assert_eq!(
        f.add_pool(PhysRange::literal(0, 0), 0, t, true),
        Err(FrameError::BadArgument)
    );
    assert_eq!(
        f.add_pool(PhysRange::literal(0, 64 * PAGE_4K), 0, t, true),
        Ok(PoolId(0))
    );
    assert_eq!(
        f.add_pool(PhysRange::literal(63 * PAGE_4K, PAGE_4K), 0, t, true),
        Err(FrameError::Overlap)
    );
    assert_eq!(
        f.add_pool(PhysRange::literal(GIB, 128 * PAGE_4K), 0, t, true),
        Err(FrameError::NoBitmapSpace)
    );
}

#[test]
fn record_table_keeps_room_for_frees() {
    let mut bits = storage(64 * MIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 64 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    let r = req(0, FrameSize::K4, MemClass::NonTdx);
    // Alternate owners so every frame is its own run.
    let mut k = 0;
    loop {
        let owner = if k % 2 == 0 { A } else { B };
        match f.allocate(owner, r, &mut addrs(1)) {
            Ok(()) => k += 1,
            Err(e) => {
                assert_eq!(e, FrameError::TableFull);
                break;
            }
        }
    }
    assert_eq!(f.records().len(), MAX_RECORDS - RESERVED_FOR_FREE);
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { owner: u8, size: u8, count: u8 },
    Free { owner: u8, pick: u8, n: u8 },
    FreeOther { owner: u8, pick: u8 },
    Restart { owner: u8 },
    Scrub,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..2, 1u8..12).prop_map(|(owner, size, count)| Op::Alloc { owner, size, count }),
        3 => (0u8..3, any::<u8>(), 1u8..6).prop_map(|(owner, pick, n)| Op::Free { owner, pick, n }),
        1 => (0u8..3, any::<u8>()).prop_map(|(owner, pick)| Op::FreeOther { owner, pick }),
        1 => (0u8..3).prop_map(|owner| Op::Restart { owner }),
        1 => Just(Op::Scrub),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random allocate/free/restart/scrub sequences against a model of who owns what.
    #[test]
    fn no_leak_no_double_ownership(ops in prop::collection::vec(op(), 1..60)) {
        let total = 16 * MIB;
        let mut bits = storage(total);
        let mut f = FrameAllocator::new(&mut bits);
        f.add_pool(PhysRange::literal(0, 8 * MIB), 0, MemClass::NonTdx, true).unwrap();
        f.add_pool(PhysRange::literal(32 * MIB, 8 * MIB), 0, MemClass::NonTdx, true).unwrap();
        let mut gens = [0u32; 3];
        let who = |o: u8, g: &[u32; 3]| Owner((10 + u32::from(o)) | (g[o as usize] << 16));
        // Model: frame address -> (owner, size).
        let mut model: BTreeMap<u64, (Owner, FrameSize)> = BTreeMap::new();
        let mut quarantined = 0u64;
        for op in ops {
            match op {
                Op::Alloc { owner, size, count } => {
                    let size = if size == 0 { FrameSize::K4 } else { FrameSize::M2 };
                    let o = who(owner, &gens);
                    let mut out = addrs(usize::from(count));
                    let r = Request { nodes: NodeMask::ALL, size, class: MemClass::NonTdx };
                    if f.allocate(o, r, &mut out).is_ok() {
                        for a in &out {
                            // Never overlapping anything held.
                            for (&b, &(_, s)) in &model {
                                assert!(a.0 + size.bytes() <= b || b + s.bytes() <= a.0);
                            }
                            model.insert(a.0, (o, size));
                        }
                    }
                }
                Op::Free { owner, pick, n } => {
                    let o = who(owner, &gens);
                    let mine: StdVec<(u64, FrameSize)> = model.iter()
                        .filter(|(_, v)| v.0 == o).map(|(&a, v)| (a, v.1)).collect();
                    if mine.is_empty() { continue; }
                    let size = mine[usize::from(pick) % mine.len()].1;
                    let list: StdVec<PhysAddr> = mine.iter().filter(|m| m.1 == size)
                        .skip(usize::from(pick) % 3).take(usize::from(n)).map(|m| PhysAddr(m.0)).collect();
                    if list.is_empty() { continue; }
                    assert_eq!(f.free(o, size, &list), Ok(list.len()));
                    for a in list { model.remove(&a.0); quarantined += size.bytes(); }
                }
                Op::FreeOther { owner, pick } => {
                    let o = who(owner, &gens);
                    let theirs: StdVec<(u64, FrameSize)> = model.iter()
                        .filter(|(_, v)| v.0 != o).map(|(&a, v)| (a, v.1)).collect();
                    if theirs.is_empty() { continue; }
                    let (a, s) = theirs[usize::from(pick) % theirs.len()];
                    assert_eq!(f.free(o, s, &[PhysAddr(a)]), Err(FrameError::NotOwner));
                }
                Op::Restart { owner } => {
                    gens[owner as usize] += 1;
                    let o = who(owner, &gens);
                    let moved = f.reclaim_stale(o);
                    let before = model.len();
                    let mut bytes = 0;
                    model.retain(|_, v| {
                        let stale = v.0.index() == o.index() && v.0 != o;
                        if stale { bytes += v.1.bytes(); }
                        !stale
                    });
                    let _ = before;
                    assert_eq!(moved, bytes);
                    quarantined += bytes;
                }
                Op::Scrub => {
                    let mut q = [PhysRange::default(); 64];
                    let n = f.quarantined(&mut q);
                    for r in &q[..n] {
                        f.release_scrubbed(*r).unwrap();
                        quarantined -= r.size().0;
                    }
                }
            }
            // Accounting: held + quarantined + free = total; usage matches the model.
            let held: u64 = model.values().map(|v| v.1.bytes()).sum();
            let free: u64 = f.pools().iter().map(|p| p.free_bytes()).sum();
            assert_eq!(f.quarantined_bytes(), quarantined);
            // The running total is the pools' own counts summed.
            assert_eq!(f.quarantined_bytes_by_pool(), quarantined);
            assert_eq!(held + quarantined + free, total);
            for o in 0..3u8 {
                let idx = who(o, &gens).index();
                let m: u64 = model.values().filter(|v| v.0.index() == idx).map(|v| v.1.bytes()).sum();
                assert_eq!(f.usage(idx), m);
            }
        }
        // Give everything back: the totals return exactly.
        for o in 0..3u8 {
            f.reclaim_all(who(o, &gens).index());
        }
        let mut q = [PhysRange::default(); 256];
        loop {
            let n = f.quarantined(&mut q);
            if n == 0 { break; }
            for r in &q[..n] { f.release_scrubbed(*r).unwrap(); }
        }
        let free: u64 = f.pools().iter().map(|p| p.free_bytes()).sum();
        assert_eq!(free, total);
        assert!(f.records().is_empty());
        let mut all = addrs(8);
        let r = Request { nodes: NodeMask::ALL, size: FrameSize::G1, class: MemClass::NonTdx };
        assert_eq!(f.allocate(Owner(1), r, &mut all[..1]), Err(FrameError::NoMemory));
    }
}

/// Regression: a request over several nodes whose frames run contiguously across the boundary of
/// two adjacent pools must keep one record (and one pool's counters) per pool; it used to make one
/// record across both, counting every frame in the first pool and writing its bitmap past its end
/// (underflow of `in_use` on release).
#[test]
fn run_across_adjacent_pools_splits_records() {
    let mut bits = storage(2 * GIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(GIB, 4 * MIB), 0, MemClass::Tdx, true)
        .unwrap();
    f.add_pool(
        PhysRange::literal(GIB + 4 * MIB, 4 * MIB),
        1,
        MemClass::Tdx,
        true,
    )
    .unwrap();
    f.mark_ready(PhysRange::literal(GIB, GIB));
    let any = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::M2,
        class: MemClass::Tdx,
    };
    let mut out = addrs(4);
    f.allocate(A, any, &mut out).unwrap();
    assert_eq!(f.records().len(), 2);
    assert_eq!(f.pools()[0].in_use, 1024);
    assert_eq!(f.pools()[1].in_use, 1024);
    assert_eq!(f.free(A, FrameSize::M2, &out), Ok(4));
    let mut runs = [PhysRange::default(); 4];
    let n = f.quarantined(&mut runs);
    for r in &runs[..n] {
        f.release_scrubbed(*r).unwrap();
    }
    assert_eq!(f.pools()[0].in_use + f.pools()[1].in_use, 0);
    // Reclaim takes the same path per record.
    f.allocate(A, any, &mut out).unwrap();
    assert_eq!(f.reclaim_all(A.index()), 8 * MIB);
    let n = f.quarantined(&mut runs);
    for r in &runs[..n] {
        f.release_scrubbed(*r).unwrap();
    }
    assert_eq!(f.pools()[0].in_use + f.pools()[1].in_use, 0);
}

/// The search cursor (`free_from`) is only a lower bound: a 4 KiB frame free in a 1 GiB block
/// that was not ready when a scan skipped it must still be found first once the block is ready.
#[test]
fn cursor_does_not_skip_frames_of_unready_blocks() {
    let mut bits = storage(2 * GIB);
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(GIB, 2 * GIB), 0, MemClass::Tdx, true)
        .unwrap();
    f.mark_ready(PhysRange::literal(2 * GIB, GIB));
    let r = req(0, FrameSize::K4, MemClass::Tdx);
    let mut out = addrs(3);
    f.allocate(A, r, &mut out).unwrap();
    assert_eq!(out[0], PhysAddr(2 * GIB));
    f.mark_ready(PhysRange::literal(GIB, GIB));
    f.allocate(A, r, &mut out).unwrap();
    assert_eq!(out[0], PhysAddr(GIB), "first fit, not next fit");
}

/// Pools whose bases are not multiples of 64 frames are padded to word alignment in the bitmap;
/// `bitmap_words` leaves room for that padding for every pool.
#[test]
fn bitmap_words_covers_alignment_padding() {
    let pools = 100u64;
    let frames = 5u64;
    let mut bits = std::vec![0u64; bitmap_words(pools * frames * PAGE_4K, pools as usize)];
    let mut f = FrameAllocator::new(&mut bits);
    for i in 0..pools {
        // Bases at every residue mod 64 frames, so the padding varies from 0 to 63 bits.
        let base = (i * 64 + 63 - i % 64) * PAGE_4K;
        f.add_pool(
            PhysRange::literal(base, frames * PAGE_4K),
            0,
            MemClass::NonTdx,
            true,
        )
        .unwrap();
    }
    let r = req(0, FrameSize::K4, MemClass::NonTdx);
    let mut n = 0;
    while f.allocate(A, r, &mut addrs(1)).is_ok() {
        n += 1;
    }
    assert_eq!(n, pools * frames);
}

/// Model frame state (one entry per 4 KiB frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Free,
    Held(Owner, FrameSize),
    Quarantined,
    Retired,
}

/// First fit over pools in `PoolId` order: what `allocate` must return.
fn model_alloc(
    pools: &[(u64, u64)],
    st: &BTreeMap<u64, St>,
    size: FrameSize,
    n: usize,
) -> Option<StdVec<u64>> {
    let step = size.bytes();
    let mut out = StdVec::new();
    for &(base, len) in pools {
        let mut c = base.next_multiple_of(step);
        while c + step <= base + len && out.len() < n {
            if (0..step / PAGE_4K).all(|j| st[&(c + j * PAGE_4K)] == St::Free) {
                out.push(c);
            }
            c += step;
        }
    }
    (out.len() == n).then_some(out)
}

/// Maximal quarantined runs, pool by pool in `PoolId` order: what `quarantined` must return.
fn model_runs(pools: &[(u64, u64)], st: &BTreeMap<u64, St>) -> StdVec<PhysRange> {
    let mut runs = StdVec::new();
    for &(base, len) in pools {
        let mut start = None;
        for pa in (base..base + len).step_by(PAGE_4K as usize) {
            match (st[&pa] == St::Quarantined, start) {
                (true, None) => start = Some(pa),
                (false, Some(s)) => {
                    runs.push(PhysRange::literal(s, pa - s));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.push(PhysRange::literal(s, base + len - s));
        }
    }
    runs
}

#[derive(Clone, Debug)]
enum Op2 {
    Alloc {
        owner: u8,
        m2: bool,
        count: u8,
    },
    Free {
        owner: u8,
        pick: u8,
        n: u8,
        reverse: bool,
    },
    Restart {
        owner: u8,
    },
    Scrub {
        retire_mask: u8,
    },
}

fn op2() -> impl Strategy<Value = Op2> {
    prop_oneof![
        5 => (0u8..3, any::<bool>(), 1u8..40).prop_map(|(owner, m2, count)| Op2::Alloc {
            owner,
            m2,
            count: if m2 { count % 3 + 1 } else { count },
        }),
        4 => (0u8..3, any::<u8>(), 1u8..20, any::<bool>())
            .prop_map(|(owner, pick, n, reverse)| Op2::Free { owner, pick, n, reverse }),
        1 => (0u8..3).prop_map(|owner| Op2::Restart { owner }),
        2 => any::<u8>().prop_map(|retire_mask| Op2::Scrub { retire_mask }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The derived caches (free cursor, quarantine counts and first index, sorted records, pool
    /// index) never change an answer: every allocation is exactly the first fit of a per-frame
    /// model, `quarantined` lists exactly the model's runs, records stay sorted and match the
    /// model, and after random frees allocating to exhaustion yields exactly the model's free
    /// frames, lowest first. Pools start off 64-frame and 2 MiB boundaries, are added out of
    /// address order, and two of them touch.
    #[test]
    fn caches_never_change_answers(ops in prop::collection::vec(op2(), 1..80)) {
        // ~1030 frames: one record per frame at exhaustion still fits the record table.
        let pools = [
            (42 * MIB - 3 * PAGE_4K, 2 * MIB + 6 * PAGE_4K),
            (44 * MIB + 3 * PAGE_4K, MIB),
            (3 * PAGE_4K, MIB),
        ];
        let mut bits = storage(10 * MIB);
        let mut f = FrameAllocator::new(&mut bits);
        let mut st = BTreeMap::new();
        for &(base, len) in &pools {
            f.add_pool(PhysRange::literal(base, len), 0, MemClass::NonTdx, true).unwrap();
            for pa in (base..base + len).step_by(PAGE_4K as usize) {
                st.insert(pa, St::Free);
            }
        }
        let mut gens = [0u32; 3];
        let who = |o: u8, g: &[u32; 3]| Owner((20 + u32::from(o)) | (g[o as usize] << 16));
        for op in ops {
            match op {
                Op2::Alloc { owner, m2, count } => {
                    let size = if m2 { FrameSize::M2 } else { FrameSize::K4 };
                    let o = who(owner, &gens);
                    let mut out = addrs(usize::from(count));
                    let r = Request { nodes: NodeMask::ALL, size, class: MemClass::NonTdx };
                    let got = f.allocate(o, r, &mut out);
                    match model_alloc(&pools, &st, size, out.len()) {
                        Some(want) => {
                            assert_eq!(got, Ok(()));
                            let got: StdVec<u64> = out.iter().map(|a| a.0).collect();
                            assert_eq!(got, want);
                            for a in want {
                                for j in 0..size.frames_4k() {
                                    st.insert(a + j * PAGE_4K, St::Held(o, size));
                                }
                            }
                        }
                        None => assert_eq!(got, Err(FrameError::NoMemory)),
                    }
                }
                Op2::Free { owner, pick, n, reverse } => {
                    let o = who(owner, &gens);
                    // Frame bases held by `o` (records tell where frames start).
                    let mut mine: StdVec<(u64, FrameSize)> = StdVec::new();
                    for r in f.records().iter().filter(|r| r.owner == o) {
                        for j in 0..u64::from(r.count) {
                            mine.push((r.base + j * r.size.bytes(), r.size));
                        }
                    }
                    if mine.is_empty() { continue; }
                    let size = mine[usize::from(pick) % mine.len()].1;
                    let mut list: StdVec<PhysAddr> = mine.iter().filter(|m| m.1 == size)
                        .skip(usize::from(pick) % 5).step_by(1 + usize::from(pick % 2))
                        .take(usize::from(n)).map(|m| PhysAddr(m.0)).collect();
                    if list.is_empty() { continue; }
                    if reverse { list.reverse(); }
                    assert_eq!(f.free(o, size, &list), Ok(list.len()));
                    for a in list {
                        for j in 0..size.frames_4k() {
                            st.insert(a.0 + j * PAGE_4K, St::Quarantined);
                        }
                    }
                }
                Op2::Restart { owner } => {
                    gens[owner as usize] += 1;
                    let o = who(owner, &gens);
                    let mut bytes = 0;
                    for v in st.values_mut() {
                        if let St::Held(h, _) = *v {
                            if h.index() == o.index() && h != o {
                                *v = St::Quarantined;
                                bytes += PAGE_4K;
                            }
                        }
                    }
                    assert_eq!(f.reclaim_stale(o), bytes);
                }
                Op2::Scrub { retire_mask } => {
                    // A small buffer: the scan must resume correctly on the next call.
                    let mut q = [PhysRange::default(); 3];
                    let n = f.quarantined(&mut q);
                    let want = model_runs(&pools, &st);
                    assert_eq!(&q[..n], &want[..want.len().min(3)]);
                    for (i, run) in q[..n].iter().enumerate() {
                        // Sometimes in two parts (the server may release part of a run).
                        let cut = if retire_mask & 0x10 != 0 && run.size().0 > PAGE_4K {
                            (run.size().0 / PAGE_4K / 2) * PAGE_4K
                        } else {
                            run.size().0
                        };
                        let first = PhysRange::literal(run.base().0, cut);
                        let rest = PhysRange::literal(run.base().0 + cut, run.size().0 - cut);
                        for (j, r) in [first, rest].into_iter().enumerate() {
                            // The rest may stay quarantined until a later scrub.
                            if r.is_empty() || (j == 1 && retire_mask & 0x20 != 0) { continue; }
                            let retire = retire_mask & (1 << (i + j)) != 0 && retire_mask > 200;
                            if retire { f.retire(r).unwrap() } else { f.release_scrubbed(r).unwrap() }
                            for pa in (r.base().0..r.base().0 + r.size().0).step_by(PAGE_4K as usize) {
                                st.insert(pa, if retire { St::Retired } else { St::Free });
                            }
                        }
                    }
                }
            }
            // Records: sorted, disjoint, and exactly the model's held frames.
            let recs = f.records();
            assert!(recs.windows(2).all(|w| w[0].base + u64::from(w[0].count) * w[0].size.bytes() <= w[1].base));
            let mut held = 0;
            for r in recs {
                for pa in (r.base..r.base + u64::from(r.count) * r.size.bytes()).step_by(PAGE_4K as usize) {
                    assert_eq!(st[&pa], St::Held(r.owner, r.size));
                    held += 1;
                }
            }
            assert_eq!(held, st.values().filter(|v| matches!(v, St::Held(..))).count());
            let q = st.values().filter(|v| **v == St::Quarantined).count() as u64;
            assert_eq!(f.quarantined_bytes(), q * PAGE_4K);
            assert_eq!(f.quarantined_bytes_by_pool(), q * PAGE_4K);
            for (p, &(base, len)) in f.pools().iter().zip(&pools) {
                let free = st.range(base..base + len).filter(|(_, v)| **v == St::Free).count() as u64;
                assert_eq!(p.free_bytes(), free * PAGE_4K);
            }
        }
        // Every quarantined run, listed in one call, is exactly the model's.
        let mut q = [PhysRange::default(); 512];
        let n = f.quarantined(&mut q);
        assert_eq!(&q[..n], &model_runs(&pools, &st)[..]);
        // Exhaustion one frame at a time: exactly the model's free frames, lowest first.
        let r = Request { nodes: NodeMask::ALL, size: FrameSize::K4, class: MemClass::NonTdx };
        let mut one = addrs(1);
        loop {
            let want = model_alloc(&pools, &st, FrameSize::K4, 1);
            let got = f.allocate(Owner(1), r, &mut one);
            match want {
                Some(w) => {
                    assert_eq!((got, one[0].0), (Ok(()), w[0]));
                    st.insert(w[0], St::Held(Owner(1), FrameSize::K4));
                }
                None => {
                    assert_eq!(got, Err(FrameError::NoMemory));
                    break;
                }
            }
        }
    }
}
