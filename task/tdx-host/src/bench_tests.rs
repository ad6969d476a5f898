//! Host benchmark (ignored; run by `cargo xtask bench` in release): 4 KiB allocate + free of the
//! frame allocator (including quarantine and release, as the server does) against a plain
//! bool-per-frame first-fit baseline, on a 1 GiB pool whose first half is held.

extern crate std;

use std::time::Instant;
use std::vec;

use tdx_host_api::{FrameSize, MemClass};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

use crate::frames::{bitmap_words, FrameAllocator, NodeMask, Owner, Request};

const OPS: u32 = 20_000;

#[test]
#[ignore = "benchmark; run by cargo xtask bench"]
fn host_bench_frame_allocator() {
    let frames = (GIB / PAGE_4K) as usize;
    let held = frames / 2;
    let mut free = vec![true; frames];
    let mut owner = vec![0u32; frames];
    for i in 0..held {
        free[i] = false;
        owner[i] = 1;
    }
    let t = Instant::now();
    for _ in 0..OPS {
        let i = free.iter().position(|&f| f).expect("room");
        free[i] = false;
        owner[i] = 2;
        assert!(!free[i] && owner[i] == 2);
        free[i] = true;
    }
    let base = t.elapsed().as_nanos() as f64 / f64::from(OPS);

    let mut bits = vec![0u64; bitmap_words(GIB, 4)];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(GIB, GIB), 0, MemClass::Tdx, true)
        .expect("pool");
    f.mark_ready(PhysRange::literal(GIB, GIB));
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::K4,
        class: MemClass::Tdx,
    };
    let mut big = vec![PhysAddr(0); 512];
    for _ in 0..held / 512 {
        f.allocate(Owner(1), req, &mut big).expect("fill");
    }
    let mut one = [PhysAddr(0)];
    let mut runs = [PhysRange::default(); 4];
    let t = Instant::now();
    for _ in 0..OPS {
        f.allocate(Owner(2), req, &mut one).expect("room");
        f.free(Owner(2), FrameSize::K4, &one).expect("free");
        let n = f.quarantined(&mut runs);
        for r in &runs[..n] {
            f.release_scrubbed(*r).expect("release");
        }
    }
    let ours = t.elapsed().as_nanos() as f64 / f64::from(OPS);
    std::println!(
        "host: 4 KiB alloc+free, 1 GiB pool half held, {OPS} ops (release build, this host)"
    );
    std::println!(
        "  {:<52} {:>10.0} ns/op",
        "baseline: bool-per-frame first-fit scan",
        base
    );
    std::println!(
        "  {:<52} {:>10.0} ns/op",
        "tdx-host FrameAllocator (+ quarantine scan, release)",
        ours
    );
}
