//! The bulk calls (`alloc_many`, `free_many`) under attack: lists with duplicates, foreign
//! frames, mixed sizes and invalid tails are refused whole, naming the first bad entry; the
//! summary-driven search finds the same frames as a plain scan would; holes in the record
//! table survive a restore.

extern crate std;

use std::vec::Vec as StdVec;

use tdx_host_api::{FrameSize, MemClass, MAX_FRAMES_PER_CALL};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

use super::{
    bitmap_words, FrameAllocator, FrameError, NodeMask, Owner, PoolImage, Record, Refused, Request,
    RestoreError, PHYS_END,
};

const MIB: u64 = 1 << 20;
const A: Owner = Owner(5);
const B: Owner = Owner(6);

fn req(size: FrameSize) -> Request {
    Request {
        nodes: NodeMask::ALL,
        size,
        class: MemClass::NonTdx,
    }
}

fn alloc(f: &mut FrameAllocator<'_>, o: Owner, size: FrameSize, n: usize) -> StdVec<PhysAddr> {
    let mut out = std::vec![PhysAddr(0); n];
    assert_eq!(f.alloc_many(o, req(size), 0, &mut out), Ok(n));
    out
}

type Snapshot = (StdVec<Record>, StdVec<u64>, u64, u64);

fn snapshot(f: &FrameAllocator<'_>) -> Snapshot {
    (
        f.records().to_vec(),
        f.bitmap().to_vec(),
        f.usage(A.index()),
        f.quarantined_bytes(),
    )
}

/// What the ledger keeps of `f` (pool images, records, bits in use, a copy of the bitmap), for
/// a `FrameAllocator::restore`.
fn image_of(f: &FrameAllocator<'_>) -> (StdVec<PoolImage>, StdVec<Record>, u64, StdVec<u64>) {
    let pools = (0..f.pools().len())
        .map(|k| f.pool_image(k).unwrap())
        .collect();
    (
        pools,
        f.records().to_vec(),
        f.bits_used(),
        f.bitmap().to_vec(),
    )
}

#[test]
fn bulk_free_is_refused_whole_and_names_the_entry() {
    let mut bits = std::vec![0; bitmap_words(64 * MIB, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 64 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    let a = alloc(&mut f, A, FrameSize::K4, 512);
    let big = alloc(&mut f, A, FrameSize::M2, 1);
    let b = alloc(&mut f, B, FrameSize::K4, 4);
    let before = snapshot(&f);
    let refused = |index, error| Err(Refused { index, error });
    let k4 = FrameSize::K4;
    // A duplicate far from its twin in an unsorted list.
    let mut dup: StdVec<PhysAddr> = a[..300].iter().rev().copied().collect();
    dup.push(a[7]);
    assert_eq!(
        f.free_many(A, k4, &dup),
        refused(Some(300), FrameError::DoubleFree)
    );
    // Another task's frame in the middle.
    let mut foreign = a[..100].to_vec();
    foreign.insert(50, b[2]);
    assert_eq!(
        f.free_many(A, k4, &foreign),
        refused(Some(50), FrameError::NotOwner)
    );
    // The same task, another incarnation.
    assert_eq!(
        f.free_many(Owner(A.0 | 1 << 16), k4, &a[..10]),
        refused(Some(0), FrameError::NotOwner)
    );
    // Mixed sizes: a 4 KiB frame inside the 2 MiB frame, and the 2 MiB frame as 4 KiB.
    let mut mixed = a[..10].to_vec();
    mixed.push(PhysAddr(big[0].0 + PAGE_4K));
    assert_eq!(
        f.free_many(A, k4, &mixed),
        refused(Some(10), FrameError::WrongSize)
    );
    assert_eq!(
        f.free_many(A, FrameSize::M2, &[big[0], a[1]]),
        refused(Some(1), FrameError::BadAlignment)
    );
    assert_eq!(
        f.free_many(A, FrameSize::M2, &[big[0], a[0]]),
        refused(Some(1), FrameError::WrongSize)
    );
    // A valid head with an invalid tail: unknown, misaligned, already free.
    for (bad, e) in [
        (PhysAddr(GIB), FrameError::UnknownFrame),
        (PhysAddr(a[3].0 + 8), FrameError::BadAlignment),
        (PhysAddr(63 * MIB), FrameError::DoubleFree),
    ] {
        let mut l = a[..511].to_vec();
        l.push(bad);
        assert_eq!(f.free_many(A, k4, &l), refused(Some(511), e));
    }
    // The list as a whole: empty, too long.
    assert_eq!(
        f.free_many(A, k4, &[]),
        refused(None, FrameError::BadArgument)
    );
    let long = std::vec![a[0]; MAX_FRAMES_PER_CALL + 1];
    assert_eq!(
        f.free_many(A, k4, &long),
        refused(None, FrameError::BadArgument)
    );
    assert_eq!(snapshot(&f), before, "a refused call changes nothing");
    // Done whole: every other frame, shuffled, then the rest (the record splits 256 times).
    let mut odd: StdVec<PhysAddr> = a.iter().copied().step_by(2).collect();
    odd.reverse();
    odd.swap(3, 200);
    assert_eq!(f.free_many(A, k4, &odd), Ok(256));
    assert_eq!(f.usage(A.index()), 256 * PAGE_4K + 2 * MIB);
    assert_eq!(f.quarantined_bytes(), 256 * PAGE_4K);
    let even: StdVec<PhysAddr> = a.iter().copied().skip(1).step_by(2).collect();
    assert_eq!(f.free_many(A, k4, &even), Ok(256));
    assert_eq!(f.free_many(A, FrameSize::M2, &big), Ok(1));
    assert_eq!(f.usage(A.index()), 0);
    assert_eq!(f.owned(A).count(), 0);
    assert_eq!(f.owned(B).count(), 1, "B's run untouched");
}

#[test]
fn bulk_alloc_takes_whole_words_and_one_record_per_run() {
    let mut bits = std::vec![0; bitmap_words(64 * MIB, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 64 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    // Fragment: B holds every third frame of the first 3 MiB.
    let mut first = alloc(&mut f, A, FrameSize::K4, 512);
    first.extend(alloc(&mut f, A, FrameSize::K4, 256));
    let keep: StdVec<PhysAddr> = first.iter().copied().step_by(3).collect();
    let drop: StdVec<PhysAddr> = first
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, a)| *a)
        .collect();
    for c in drop.chunks(MAX_FRAMES_PER_CALL) {
        assert_eq!(f.free_many(A, FrameSize::K4, c).map(|_| ()), Ok(()));
    }
    let mut runs = [PhysRange::default(); 64];
    loop {
        let n = f.quarantined(&mut runs);
        for r in &runs[..n] {
            f.release_scrubbed(*r).unwrap();
        }
        if n < runs.len() {
            break;
        }
    }
    assert_eq!(f.quarantined_bytes(), 0);
    let got = alloc(&mut f, B, FrameSize::K4, 512);
    // Lowest first: exactly the freed frames, ascending, then nothing skipped.
    assert_eq!(got, drop[..512].to_vec());
    let b_runs = f.owned(B).count();
    assert_eq!(b_runs, 256, "one record per run of two frames");
    assert_eq!(f.owned(A).count(), 256, "A keeps its single frames");
    assert_eq!(f.usage(B.index()), 512 * PAGE_4K);
    // A 2 MiB frame now comes from the first wholly free chunk.
    let m2 = alloc(&mut f, B, FrameSize::M2, 1);
    assert_eq!(
        m2[0].0,
        4 * MIB,
        "chunks 0-2 fragmented, chunk 3 holds the rest"
    );
    assert_eq!(keep.len(), 256);
    // Freed in reverse order, all at once.
    let mut back = got.clone();
    back.reverse();
    assert_eq!(f.free_many(B, FrameSize::K4, &back), Ok(512));
    assert_eq!(f.owned(B).count(), 1);
}

#[test]
fn holes_in_the_record_table_survive_a_restore() {
    let mut bits = std::vec![0; bitmap_words(64 * MIB, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 64 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    let mut held = StdVec::new();
    for i in 0..40 {
        held.push(alloc(
            &mut f,
            if i % 2 == 0 { A } else { B },
            FrameSize::K4,
            3,
        ));
    }
    // Whole records go: their slots stay as holes below live records.
    for run in held.iter().skip(2).step_by(4) {
        assert_eq!(
            f.free_many(B, FrameSize::K4, run),
            Err(Refused {
                index: Some(0),
                error: FrameError::NotOwner
            })
        );
        assert_eq!(f.free_many(A, FrameSize::K4, run), Ok(3));
    }
    assert!(f.records().iter().any(|r| r.count == 0), "holes kept");
    let (pools, records, used, mut copy) = image_of(&f);
    let mut g = FrameAllocator::restore(&mut copy, used, pools, records.clone()).unwrap();
    assert_eq!(g.records(), &records[..]);
    assert_eq!(g.usage(A.index()), 10 * 3 * PAGE_4K);
    // A hole out of order is refused.
    let mut bad = records.clone();
    let h = bad.iter().position(|r| r.count == 0).unwrap();
    bad[h].base = bad[h + 1].base + PAGE_4K;
    let pools: StdVec<PoolImage> = (0..g.pools().len())
        .map(|k| g.pool_image(k).unwrap())
        .collect();
    let mut copy2 = g.bitmap().to_vec();
    assert!(FrameAllocator::restore(&mut copy2, used, pools, bad).is_err());
    // The restored allocator reuses the holes.
    let again = alloc(&mut g, A, FrameSize::K4, 1);
    assert_eq!(g.free_many(A, FrameSize::K4, &again), Ok(1));
}

/// Taking frames one by one from the first word of a pool's free bits, which it shares with
/// the previous pool's quarantine bits, and from its last, which it shares with its own (both
/// set here), keeps the chunk summary exactly what a rebuild from the bits gives: quarantine
/// bits in the word do not count as the pool's free frames.
#[test]
fn one_frame_takes_in_a_shared_word_keep_the_summary_exact() {
    let mut bits = std::vec![0; bitmap_words(8 * MIB, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    // 100 frames at frame 0 (free bits 0..100, quarantine bits 100..200), then 200 frames at
    // frame 1000, whose free bits start at 232 (≡ 1000 mod 64): bits 192..256 are one word.
    f.add_pool(
        PhysRange::literal(0, 100 * PAGE_4K),
        0,
        MemClass::NonTdx,
        true,
    )
    .unwrap();
    f.add_pool(
        PhysRange::literal(1000 * PAGE_4K, 200 * PAGE_4K),
        0,
        MemClass::NonTdx,
        true,
    )
    .unwrap();
    assert_eq!(f.pools[1].bit, 232);
    let first = alloc(&mut f, A, FrameSize::K4, 100);
    assert_eq!(f.free_many(A, FrameSize::K4, &first[92..]), Ok(8));
    // The second pool's last word (bits 384..448) holds its free bits 384..432 and its own
    // first quarantine bits, set by quarantining its first 16 frames.
    let lead = alloc(&mut f, B, FrameSize::K4, 16);
    assert_eq!(f.free_many(B, FrameSize::K4, &lead), Ok(16));
    let summary_of = |f: &FrameAllocator<'_>| {
        let (pools, records, used, mut copy) = image_of(f);
        let g = FrameAllocator::restore(&mut copy, used, pools, records).unwrap();
        (g.summary.any, g.summary.all)
    };
    for i in 16..200 {
        let got = alloc(&mut f, B, FrameSize::K4, 1);
        assert_eq!(
            got[0].0,
            (1000 + i) * PAGE_4K,
            "first fit in the second pool"
        );
        assert!(
            (f.summary.any, f.summary.all) == summary_of(&f),
            "summary after frame {i}"
        );
    }
}

/// The image stores no pool's `in_use` (format 6): restore counts it from the free bits and
/// still refuses a pool whose frames do not add up: a `retired` count off by one either way or
/// huge (no overflow), and frames that are neither free, quarantined, held nor retired (a
/// record dropped from the table).
#[test]
fn restore_counts_in_use_and_refuses_frames_that_do_not_add_up() {
    let mut bits = std::vec![0; bitmap_words(64 * MIB, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(0, 64 * MIB), 0, MemClass::NonTdx, true)
        .unwrap();
    let held = alloc(&mut f, A, FrameSize::K4, 8);
    let gone = alloc(&mut f, B, FrameSize::K4, 4);
    assert_eq!(f.free_many(A, FrameSize::K4, &held[..3]), Ok(3));
    let first = PhysRange::new(held[0].0, PAGE_4K).unwrap();
    assert_eq!(f.retire(first), Ok(()));
    let in_use = f.pools()[0].in_use;
    let (pools, records, used, copy) = image_of(&f);
    let restore = |pools: &[PoolImage], records: &[Record]| {
        let mut bits = copy.clone();
        FrameAllocator::restore(&mut bits, used, pools.to_vec(), records.to_vec())
            .map(|g| g.pools()[0].in_use)
    };
    assert_eq!(restore(&pools, &records), Ok(in_use));
    for retired in [0, 2, u64::MAX] {
        let mut p = pools.clone();
        p[0].pool.retired = retired;
        assert_eq!(
            restore(&p, &records),
            Err(RestoreError::PoolCounts(0)),
            "retired {retired}"
        );
    }
    let dropped: StdVec<Record> = records
        .iter()
        .copied()
        .filter(|r| r.owner != B || r.count == 0)
        .collect();
    assert!(dropped.len() < records.len(), "{gone:?} had a record");
    assert_eq!(restore(&pools, &dropped), Err(RestoreError::PoolCounts(0)));
}

/// A caller allocating frame after frame keeps one record that grows in place, but only while
/// the frames continue its own run: another owner, another tag or the next pool (two pools
/// touching) starts a record of its own, and the table restores as it is.
#[test]
fn single_frames_grow_a_record_only_within_owner_tag_and_pool() {
    let mut bits = std::vec![0; bitmap_words(MIB, 4)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(
        PhysRange::literal(0, 16 * PAGE_4K),
        0,
        MemClass::NonTdx,
        true,
    )
    .unwrap();
    f.add_pool(
        PhysRange::literal(16 * PAGE_4K, 16 * PAGE_4K),
        1,
        MemClass::NonTdx,
        true,
    )
    .unwrap();
    let one = |f: &mut FrameAllocator<'_>, o: Owner, tag: u32| {
        let mut out = [PhysAddr(0)];
        assert_eq!(f.alloc_many(o, req(FrameSize::K4), tag, &mut out), Ok(1));
        out[0].0
    };
    for i in 0..16 {
        assert_eq!(one(&mut f, A, 0), i * PAGE_4K);
    }
    assert_eq!(f.records().len(), 1, "one run, one record");
    assert_eq!(f.records()[0].count, 16);
    // The next frame continues the address run but lies in the next pool.
    assert_eq!(one(&mut f, A, 0), 16 * PAGE_4K);
    assert_eq!(f.records().len(), 2);
    one(&mut f, B, 0);
    one(&mut f, A, 0);
    one(&mut f, A, 7);
    one(&mut f, A, 7);
    let live: StdVec<Record> = f
        .records()
        .iter()
        .filter(|r| r.count > 0)
        .copied()
        .collect();
    let counts: StdVec<(Owner, u32, u32)> =
        live.iter().map(|r| (r.owner, r.tag, r.count)).collect();
    assert_eq!(
        counts,
        [(A, 0, 16), (A, 0, 1), (B, 0, 1), (A, 0, 1), (A, 7, 2)]
    );
    let mut tagged = [PhysAddr(0); 4];
    assert_eq!(f.tagged(A, 7, &mut tagged), 2);
    assert_eq!(
        &tagged[..2],
        &[PhysAddr(19 * PAGE_4K), PhysAddr(20 * PAGE_4K)]
    );
    // Frees still check the whole record: a middle frame splits it, a twice-freed one is refused.
    assert_eq!(
        f.free_many(A, FrameSize::K4, &[PhysAddr(5 * PAGE_4K)]),
        Ok(1)
    );
    assert_eq!(
        f.free_many(A, FrameSize::K4, &[PhysAddr(5 * PAGE_4K)]),
        Err(Refused {
            index: Some(0),
            error: FrameError::DoubleFree
        })
    );
    assert_eq!(
        f.free_many(B, FrameSize::K4, &[PhysAddr(6 * PAGE_4K)]),
        Err(Refused {
            index: Some(0),
            error: FrameError::NotOwner
        })
    );
    assert_eq!(f.usage(A.index()), 19 * PAGE_4K);
    let (pools, records, used, mut copy) = image_of(&f);
    let g = FrameAllocator::restore(&mut copy, used, pools, records.clone()).unwrap();
    assert_eq!(g.records(), &records[..]);
}

/// The quarantine list comes from a coarse summary (a bit per 16 MiB) that skips empty
/// stretches: in a pool off every alignment, after scattered frees, partial releases and a
/// restore, `quarantined` still lists exactly the quarantined runs, lowest first.
#[test]
fn quarantine_listing_through_its_summary_matches_the_bits() {
    let (base, len) = (3 * MIB + 5 * PAGE_4K, 80 * MIB);
    let mut bits = std::vec![0; bitmap_words(len, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(base, len), 0, MemClass::NonTdx, true)
        .unwrap();
    let frames = (len / PAGE_4K) as usize;
    let mut all = StdVec::new();
    while all.len() < frames {
        all.extend(alloc(
            &mut f,
            A,
            FrameSize::K4,
            MAX_FRAMES_PER_CALL.min(frames - all.len()),
        ));
    }
    let mut quarantined = std::collections::BTreeSet::new();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let listed = |f: &FrameAllocator<'_>| {
        let mut out = std::vec![PhysRange::default(); 4096];
        let n = f.quarantined(&mut out);
        out.truncate(n);
        out
    };
    let model = |q: &std::collections::BTreeSet<u64>| {
        let mut runs: StdVec<PhysRange> = StdVec::new();
        for &pa in q {
            match runs.last_mut() {
                Some(r) if r.end().0 == pa => {
                    *r = PhysRange::literal(r.base().0, r.size().0 + PAGE_4K)
                }
                _ => runs.push(PhysRange::literal(pa, PAGE_4K)),
            }
        }
        runs
    };
    for round in 0..6 {
        // Scattered frees: short runs far apart, some in the same 16 MiB group.
        for _ in 0..40 {
            let at = rnd(frames as u64 - 8) as usize;
            let n = 1 + rnd(6) as usize;
            let run: StdVec<PhysAddr> = all[at..at + n]
                .iter()
                .filter(|a| !quarantined.contains(&a.0) && a.0 != 0)
                .copied()
                .collect();
            if run.is_empty() || f.free_many(A, FrameSize::K4, &run).is_err() {
                continue;
            }
            for a in &run {
                quarantined.insert(a.0);
            }
        }
        assert_eq!(listed(&f), model(&quarantined), "round {round} after frees");
        // Release every other run, or its first half, and in some rounds every run of the
        // lower half: whole groups empty out (and fill again later), others keep frames.
        for (i, r) in listed(&f).into_iter().enumerate() {
            let lower = round % 3 == 2 && r.base().0 < base + len / 2;
            if i % 2 == round % 2 && !lower {
                continue;
            }
            let part = if i % 3 == 0 && !lower && r.size().0 > PAGE_4K {
                PhysRange::literal(r.base().0, (r.size().0 / PAGE_4K / 2) * PAGE_4K)
            } else {
                r
            };
            f.release_scrubbed(part).unwrap();
            for pa in (part.base().0..part.end().0).step_by(PAGE_4K as usize) {
                quarantined.remove(&pa);
                // Freed frames are the allocator's again: mark them so frees skip them.
                all[((pa - base) / PAGE_4K) as usize] = PhysAddr(0);
            }
        }
        assert_eq!(
            listed(&f),
            model(&quarantined),
            "round {round} after releases"
        );
        if round % 3 == 2 {
            assert!(quarantined.iter().all(|&pa| pa >= base + len / 2));
        }
        assert_eq!(f.quarantined_bytes(), quarantined.len() as u64 * PAGE_4K);
    }
    let (pools, records, used, mut copy) = image_of(&f);
    let mut g = FrameAllocator::restore(&mut copy, used, pools, records).unwrap();
    assert_eq!(listed(&g), model(&quarantined), "after a restore");
    // The restore counts the quarantine's running total from the bits.
    assert!(!quarantined.is_empty());
    assert_eq!(g.quarantined_bytes(), quarantined.len() as u64 * PAGE_4K);
    assert_eq!(g.quarantined_bytes_by_pool(), g.quarantined_bytes());
    // Releasing everything through the restored summary empties it.
    for r in listed(&g) {
        g.release_scrubbed(r).unwrap();
    }
    assert!(listed(&g).is_empty());
    assert_eq!(g.quarantined_bytes(), 0);
}

/// Pools end at or below [`PHYS_END`] (52-bit physical addresses), so rounding a pool's
/// address up to its next 1 GiB block cannot overflow: a pool in the top of the 64-bit space,
/// or one crossing the limit, is refused by `add_pool` and by restore, and a TDX pool in the
/// last GiB below the limit serves once its block is ready.
#[test]
fn pools_end_within_the_physical_address_space() {
    let mut bits = std::vec![0; bitmap_words(64 * MIB, 2)];
    let mut f = FrameAllocator::new(&mut bits);
    let top = PhysRange::literal(0u64.wrapping_sub(GIB), 16 * MIB);
    let across = PhysRange::literal(PHYS_END - 8 * MIB, 16 * MIB);
    for r in [top, across] {
        assert_eq!(f.can_add_pool(r), Err(FrameError::BadArgument), "{r:?}");
        assert_eq!(
            f.add_pool(r, 0, MemClass::Tdx, true),
            Err(FrameError::BadArgument),
            "{r:?}"
        );
    }
    let last = PhysRange::literal(PHYS_END - 16 * MIB, 16 * MIB);
    f.add_pool(last, 0, MemClass::Tdx, true)
        .expect("a pool ending at the limit");
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::K4,
        class: MemClass::Tdx,
    };
    assert_eq!(f.alloc_single(A, req, 0), Err(FrameError::NoMemory));
    f.mark_ready(PhysRange::literal(PHYS_END - GIB, GIB));
    assert_eq!(f.alloc_single(A, req, 0), Ok(PhysAddr(last.base().0)));
    let (pools, records, used, copy) = image_of(&f);
    for r in [top, across] {
        let mut p = pools.clone();
        p[0].pool.range = r;
        let mut bits = copy.clone();
        assert_eq!(
            FrameAllocator::restore(&mut bits, used, p, records.clone()).map(|_| ()),
            Err(RestoreError::BadPool(0)),
            "{r:?}"
        );
    }
}
