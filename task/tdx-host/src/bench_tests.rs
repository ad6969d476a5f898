//! Host benchmark (ignored; run by `cargo xtask bench` in release): the frame allocator against
//! a Linux-style buddy allocator with a per-CPU page list (`bench_buddy`, the real baseline)
//! and a plain bool-per-frame first-fit scan, on the same fragmented pool and the same
//! workloads in the same run. Each figure is the median of [`RUNS`] runs.
//!
//! Both allocators follow the server's rule: a freed frame is quarantined and reused only after
//! the scrub step releases it, which the churn runs once [`RELEASE_BATCH`] frames wait (the
//! background scrub's 2 MiB step between requests). The op figures are the caller's alloc+free;
//! the release is timed apart and reported per released frame.
//!
//! Lines starting `host` or two spaces are relayed by xtask; `host result: NAME N` lines are
//! the machine-parsable figures (N in integer ns).

extern crate std;

use std::collections::VecDeque;
use std::time::Instant;
use std::vec;
use std::vec::Vec;

use tdx_host_api::{FrameSize, MemClass, MAX_FRAMES_PER_CALL};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

use crate::bench_buddy::Buddy;
use crate::frames::{bitmap_words, FrameAllocator, NodeMask, Owner, Request};

const FRAMES: usize = (GIB / PAGE_4K) as usize;
/// Churn operations per run. Runs are short (well under a scheduler time slice) and many, so
/// the median skips runs a busy host preempted.
const OPS: usize = 5_000;
/// Frames each churn keeps outstanding (it frees the oldest once it holds more).
const WINDOW: usize = 32;
/// Every `MIXED_EVERY`th mixed op is a 2 MiB frame; `WINDOW_2M` of them stay outstanding.
const MIXED_EVERY: usize = 8;
const WINDOW_2M: usize = 4;
/// Bulk rounds (512 frames each) per run.
const BULK_ROUNDS: usize = 50;
const RUNS: usize = 21;
/// The scrub releases the quarantine once this many 4 KiB frames (2 MiB) wait in it, as the
/// server's background scrub does between requests.
const RELEASE_BATCH: u64 = 512;
const HOLDER: u32 = 1;
const USER: u32 = 2;

/// Which frames of the pool the holder keeps: the lower 3/4 alternate held runs of 1..=255
/// frames and free holes of 1..=127 (pseudo-random, fixed seed), the upper 1/4 is free.
fn pattern() -> Vec<bool> {
    let mut held = vec![false; FRAMES];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        1 + x % m
    };
    let mut i = 0;
    while i < FRAMES * 3 / 4 {
        let h = (rnd(255) as usize).min(FRAMES * 3 / 4 - i);
        held[i..i + h].fill(true);
        i += h + rnd(127) as usize;
    }
    held
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn req(size: FrameSize) -> Request {
    Request {
        nodes: NodeMask::ALL,
        size,
        class: MemClass::Tdx,
    }
}

/// The server's scrub step, minus the scrub: every quarantined run becomes free again.
fn release_all(f: &mut FrameAllocator<'_>) {
    let mut runs = [PhysRange::default(); 16];
    loop {
        let n = f.quarantined(&mut runs);
        for r in &runs[..n] {
            f.release_scrubbed(*r).expect("release");
        }
        // A short answer listed every quarantined run.
        if n < runs.len() {
            return;
        }
    }
}

/// Ours over `held`: the holder allocates the whole pool, then frees the holes.
fn ours<'a>(bits: &'a mut [u64], held: &[bool]) -> FrameAllocator<'a> {
    let mut f = FrameAllocator::new(bits);
    f.add_pool(PhysRange::literal(GIB, GIB), 0, MemClass::Tdx, true)
        .expect("pool");
    f.mark_ready(PhysRange::literal(GIB, GIB));
    let mut big = vec![PhysAddr(0); MAX_FRAMES_PER_CALL];
    for _ in 0..FRAMES / MAX_FRAMES_PER_CALL {
        f.alloc_many(Owner(HOLDER), req(FrameSize::K4), 0, &mut big)
            .expect("fill");
    }
    let holes: Vec<PhysAddr> = (0..FRAMES)
        .filter(|&i| !held[i])
        .map(|i| PhysAddr(GIB + i as u64 * PAGE_4K))
        .collect();
    for c in holes.chunks(MAX_FRAMES_PER_CALL) {
        f.free_many(Owner(HOLDER), FrameSize::K4, c).expect("holes");
    }
    release_all(&mut f);
    f.clean();
    f
}

fn buddy(held: &[bool]) -> Buddy {
    let mut b = Buddy::new(FRAMES, HOLDER);
    for (i, _) in held.iter().enumerate().filter(|(_, h)| !**h) {
        b.seed_free(i as u32);
    }
    b
}

/// ns per op of `op(i)` over `ops` ops.
fn time(ops: usize, mut op: impl FnMut(usize)) -> f64 {
    let t = Instant::now();
    for i in 0..ops {
        op(i);
    }
    t.elapsed().as_nanos() as f64 / ops as f64
}

/// One churn run's figures: the caller's ns per alloc+free (scrub excluded), and the scrub
/// step's ns per released 4 KiB frame.
#[derive(Clone, Copy)]
struct Churn {
    op_ns: f64,
    release_ns_per_frame: f64,
}

/// Churn (`mixed`: every 8th op 2 MiB) on `alloc`/`free`, with the quarantine released by
/// `release` whenever [`RELEASE_BATCH`] 4 KiB frames wait in it (the server's scrub step,
/// run between requests); the release is timed apart from the caller's ops.
fn churn<T: Copy>(
    mixed: bool,
    mut alloc: impl FnMut(FrameSize) -> T,
    mut free: impl FnMut(FrameSize, T),
    mut release: impl FnMut(),
) -> Churn {
    let mut w: VecDeque<T> = VecDeque::with_capacity(WINDOW + 1);
    let mut w2: VecDeque<T> = VecDeque::with_capacity(WINDOW_2M + 1);
    let (mut pending, mut released) = (0u64, 0u64);
    let mut release_ns = 0u128;
    let t = Instant::now();
    for i in 0..OPS {
        let (size, w, keep) = if mixed && i % MIXED_EVERY == 0 {
            (FrameSize::M2, &mut w2, WINDOW_2M)
        } else {
            (FrameSize::K4, &mut w, WINDOW)
        };
        w.push_back(alloc(size));
        if w.len() > keep {
            let old = w.pop_front().expect("window");
            free(size, old);
            pending += size.frames_4k();
            if pending >= RELEASE_BATCH {
                let r = Instant::now();
                release();
                release_ns += r.elapsed().as_nanos();
                released += pending;
                pending = 0;
            }
        }
    }
    let total = t.elapsed().as_nanos();
    for (size, w) in [(FrameSize::K4, w), (FrameSize::M2, w2)] {
        for a in w {
            free(size, a);
        }
    }
    release();
    Churn {
        op_ns: (total - release_ns) as f64 / OPS as f64,
        release_ns_per_frame: release_ns as f64 / released.max(1) as f64,
    }
}

/// Churn on ours; each op ends with the ledger's commit forgetting the dirty marks.
fn churn_ours(f: &mut FrameAllocator<'_>, mixed: bool) -> Churn {
    let f = core::cell::RefCell::new(f);
    let r = churn(
        mixed,
        |size| {
            let mut f = f.borrow_mut();
            let mut one = [PhysAddr(0)];
            f.alloc_many(Owner(USER), req(size), 0, &mut one)
                .expect("room");
            f.clean();
            one[0]
        },
        |size, a| {
            let mut f = f.borrow_mut();
            f.free_many(Owner(USER), size, &[a]).expect("free");
            f.clean();
        },
        || {
            let mut f = f.borrow_mut();
            release_all(&mut f);
            f.clean();
        },
    );
    r
}

fn churn_buddy(b: &mut Buddy, mixed: bool) -> Churn {
    let b = core::cell::RefCell::new(b);
    let order = |size: FrameSize| if size == FrameSize::K4 { 0 } else { 9 };
    let r = churn(
        mixed,
        |size| b.borrow_mut().alloc(order(size), USER).expect("room"),
        |size, p| b.borrow_mut().free(p, order(size), USER).expect("free"),
        || b.borrow_mut().release(),
    );
    r
}

/// The churn's own cost, the floor under every churn row: the same loop, window and release
/// cadence with no allocator (an allocation hands out a counter, a free and the release do
/// nothing; `black_box` keeps the compiler from folding them away).
fn churn_harness() -> f64 {
    let mut next = 0u64;
    churn(
        false,
        |_| {
            next += 1;
            core::hint::black_box(next)
        },
        |_, a| {
            core::hint::black_box(a);
        },
        || {},
    )
    .op_ns
}

/// The old baseline: bool per frame, first fit from the pool start, an owner per frame.
fn churn_scan(held: &[bool]) -> f64 {
    let mut free: Vec<bool> = held.iter().map(|h| !h).collect();
    let mut owner: Vec<u32> = held.iter().map(|&h| if h { HOLDER } else { 0 }).collect();
    let mut w: VecDeque<usize> = VecDeque::with_capacity(WINDOW + 1);
    time(OPS, |_| {
        let i = free.iter().position(|&f| f).expect("room");
        free[i] = false;
        owner[i] = USER;
        w.push_back(i);
        if w.len() > WINDOW {
            let old = w.pop_front().expect("window");
            assert!(!free[old] && owner[old] == USER, "checked free");
            owner[old] = 0;
            free[old] = true;
        }
    })
}

/// ns per frame of 512-frame allocations and frees in one call each.
fn bulk_ours(f: &mut FrameAllocator<'_>) -> f64 {
    let mut out = vec![PhysAddr(0); MAX_FRAMES_PER_CALL];
    let mut scrub = 0u128;
    let ns = time(BULK_ROUNDS, |_| {
        f.alloc_many(Owner(USER), req(FrameSize::K4), 0, &mut out)
            .expect("bulk");
        f.free_many(Owner(USER), FrameSize::K4, &out)
            .expect("bulk free");
        f.clean();
        let r = Instant::now();
        release_all(f);
        f.clean();
        scrub += r.elapsed().as_nanos();
    });
    (ns - scrub as f64 / BULK_ROUNDS as f64) / MAX_FRAMES_PER_CALL as f64
}

fn bulk_buddy(b: &mut Buddy) -> f64 {
    let mut out = vec![0u32; MAX_FRAMES_PER_CALL];
    let mut scrub = 0u128;
    let ns = time(BULK_ROUNDS, |_| {
        for o in out.iter_mut() {
            *o = b.alloc(0, USER).expect("bulk");
        }
        for &p in &out {
            b.free(p, 0, USER).expect("bulk free");
        }
        let r = Instant::now();
        b.release();
        scrub += r.elapsed().as_nanos();
    });
    (ns - scrub as f64 / BULK_ROUNDS as f64) / MAX_FRAMES_PER_CALL as f64
}

#[test]
#[ignore = "benchmark; run by cargo xtask bench"]
fn host_bench_frame_allocator() {
    let held = pattern();
    let held_frames = held.iter().filter(|h| **h).count();
    let held_runs = held.windows(2).filter(|w| w[1] && !w[0]).count() + usize::from(held[0]);
    let mut bits = vec![0u64; bitmap_words(GIB, 4)];
    let mut f = ours(&mut bits, &held);
    let mut b = buddy(&held);
    let mut rows: [Vec<f64>; 12] = Default::default();
    for _ in 0..RUNS {
        let o = churn_ours(&mut f, false);
        let d = churn_buddy(&mut b, false);
        let om = churn_ours(&mut f, true);
        let dm = churn_buddy(&mut b, true);
        let figures = [
            o.op_ns,
            d.op_ns,
            churn_scan(&held),
            om.op_ns,
            dm.op_ns,
            bulk_ours(&mut f),
            bulk_buddy(&mut b),
            o.release_ns_per_frame,
            d.release_ns_per_frame,
            om.release_ns_per_frame,
            dm.release_ns_per_frame,
            churn_harness(),
        ];
        for (r, x) in rows.iter_mut().zip(figures) {
            r.push(x);
        }
    }
    let [ours4k, buddy4k, scan, ours_mix, buddy_mix, ours_bulk, buddy_bulk, ours_rel, buddy_rel, ours_mix_rel, buddy_mix_rel, harness] =
        rows.map(median);
    std::println!(
        "host: frame allocators (release build, this host; median of {RUNS} runs, same run)"
    );
    std::println!(
        "  pool: 1 GiB (262144 x 4 KiB), {held_frames} frames ({}%) held in {held_runs} runs: \
         the lower 768 MiB alternate held runs of 1-255 frames and holes of 1-127, the upper \
         256 MiB is free",
        held_frames * 100 / FRAMES
    );
    std::println!(
        "  churn: {OPS} ops, each allocates one 4 KiB frame and frees the oldest of {WINDOW} \
         outstanding (checked: owner, size, double free). A freed frame is quarantined, for \
         both allocators: reusable only after the scrub step releases it, which runs once \
         {RELEASE_BATCH} frames (2 MiB) wait, as the server's background scrub does between \
         requests. The op figure is the caller's alloc+free (ours also forgets its ledger \
         marks after each call, as the ledger's commit does); the release is timed apart \
         (ours: list the quarantine and release its runs; buddy: hand each block to the pcp \
         list / buddy lists through Linux's free path)"
    );
    std::println!(
        "  mixed: the same, every {MIXED_EVERY}th op a 2 MiB frame ({WINDOW_2M} outstanding)"
    );
    std::println!(
        "  bulk: 512 x 4 KiB allocated in one call, freed in one call (buddy: 512 single \
         calls), per frame; the release after each round is excluded"
    );
    let row = |name: &str, ns: f64, unit: &str| {
        std::println!("  {name:<58} {ns:>8.1} {unit}");
    };
    row("churn 4 KiB: tdx-host FrameAllocator", ours4k, "ns/op");
    row(
        "churn 4 KiB: Linux-style buddy + pcp list (baseline)",
        buddy4k,
        "ns/op",
    );
    row("churn 4 KiB: bool-per-frame first-fit scan", scan, "ns/op");
    row(
        "churn 4 KiB: the loop alone, no allocator (floor)",
        harness,
        "ns/op",
    );
    row(
        "mixed 4 KiB/2 MiB: tdx-host FrameAllocator",
        ours_mix,
        "ns/op",
    );
    row(
        "mixed 4 KiB/2 MiB: Linux-style buddy + pcp list",
        buddy_mix,
        "ns/op",
    );
    row(
        "bulk 512 x 4 KiB: tdx-host FrameAllocator",
        ours_bulk,
        "ns/frame",
    );
    row(
        "bulk 512 x 4 KiB: Linux-style buddy + pcp list",
        buddy_bulk,
        "ns/frame",
    );
    row(
        "release (churn 4 KiB): tdx-host FrameAllocator",
        ours_rel,
        "ns/frame",
    );
    row(
        "release (churn 4 KiB): Linux-style buddy + pcp list",
        buddy_rel,
        "ns/frame",
    );
    row(
        "release (mixed): tdx-host FrameAllocator",
        ours_mix_rel,
        "ns/frame",
    );
    row(
        "release (mixed): Linux-style buddy + pcp list",
        buddy_mix_rel,
        "ns/frame",
    );
    std::println!(
        "  ours vs buddy: churn {:.1}x, mixed {:.1}x, bulk {:.1}x faster",
        buddy4k / ours4k,
        buddy_mix / ours_mix,
        buddy_bulk / ours_bulk
    );
    let int = |ns: f64| ns.round() as u64;
    std::println!("host result: frame_alloc_free_ns {}", int(ours4k));
    std::println!("host result: buddy_alloc_free_ns {}", int(buddy4k));
    std::println!("host result: bitmap_scan_alloc_free_ns {}", int(scan));
    std::println!("host result: churn_harness_ns {}", int(harness));
    std::println!("host result: frame_mixed_alloc_free_ns {}", int(ours_mix));
    std::println!("host result: buddy_mixed_alloc_free_ns {}", int(buddy_mix));
    std::println!("host result: frame_bulk512_ns_per_frame {}", int(ours_bulk));
    std::println!(
        "host result: buddy_bulk512_ns_per_frame {}",
        int(buddy_bulk)
    );
    std::println!("host result: frame_release_ns_per_frame {}", int(ours_rel));
    std::println!("host result: buddy_release_ns_per_frame {}", int(buddy_rel));
    std::println!(
        "host result: frame_mixed_release_ns_per_frame {}",
        int(ours_mix_rel)
    );
    std::println!(
        "host result: buddy_mixed_release_ns_per_frame {}",
        int(buddy_mix_rel)
    );
}
