//! A profiling harness for one-frame requests through the same service code the task runs,
//! with the ledger attached: `cargo test --release -p tdx-host one_frame_requests -- --ignored`
//! under `valgrind --tool=callgrind --toggle-collect='*cost_tests::one_alloc'` (or `one_free`),
//! then `callgrind_annotate --inclusive=yes`, gives the server-side instructions of one
//! allocation ([`one_alloc`]) and one free ([`one_free`]) per function, through a one-address
//! lease as `alloc_frames`/`free_frames` take it; [`one_alloc_frame`] and [`one_free_frame`]
//! are the lease-free `alloc_frame`/`free_frame` (what the guest's `tdx_alloc_4k` and
//! `tdx_free_4k` measure); `gib_free_commit` does the same for the ledger commit of a 1 GiB free
//! (the journal's path). Ignored by default: they measure, and assert only that each request
//! answered.

extern crate std;

use std::vec;
use std::vec::Vec;

use tdx_host_api::{FrameSize, MemClass, ANY_NODE};
use tdx_planner::addr::{PhysRange, GIB};

use super::super::pacing::Timer;
use super::super::{Attached, ClientPolicy, Scrubber, Server};
use super::{Answer, Service};
use crate::frames::{bitmap_words, NodeMask, Owner};
use crate::init::tests::EmuSeam;
use crate::ledger::Layout;
use crate::regions::tests::{ready_run, FakeKernel, WINDOW};
use crate::regions::{HotplugPolicy, PlatformMemory, Regions};
use crate::seam::KernelError;

const VMM: Owner = Owner(3 | 1 << 16);

struct Ticks(u64);

impl Timer for Ticks {
    fn now(&self) -> u64 {
        self.0
    }
    fn arm(&mut self, _: u64) {}
}

struct Clears;

impl Scrubber for Clears {
    fn scrub(&mut self, _: PhysRange) -> Result<(), KernelError> {
        Ok(())
    }
}

/// One 4 KiB TDX frame for the VMM, as the task's `alloc_frames` handler asks for it.
#[inline(never)]
fn one_alloc(s: &mut Service<'_, '_>, t: &mut Ticks) -> u64 {
    alloc(s, t)
}

/// The VMM frees the frame at `a`, as the task's `free_frames` handler does.
#[inline(never)]
fn one_free(s: &mut Service<'_, '_>, t: &mut Ticks, a: u64) {
    free(s, t, a);
}

/// `alloc_frame`: one 4 KiB TDX frame for the VMM, the address in the answer.
#[inline(never)]
fn one_alloc_frame(s: &mut Service<'_, '_>) -> u64 {
    let r = s.alloc_frame((VMM, ANY_NODE, FrameSize::K4, MemClass::Tdx));
    r.expect("one frame")
}

/// `free_frame`: the VMM frees the frame at `a`, the address in the message.
#[inline(never)]
fn one_free_frame(s: &mut Service<'_, '_>, t: &mut Ticks, a: u64) {
    let r = s.free_frame(t, (VMM, FrameSize::K4), a);
    assert_eq!(r, Ok(()));
}

/// [`one_alloc`]'s request, inlined into each caller (so only `one_alloc` is profiled).
#[inline(always)]
fn alloc(s: &mut Service<'_, '_>, t: &mut Ticks) -> u64 {
    let mut a = 0u64;
    let what = (VMM, ANY_NODE, FrameSize::K4, MemClass::Tdx);
    let r: Result<u32, Answer<()>> = s.alloc_frames(t, what, 1, 8, |b: &[u8]| {
        a = u64::from_le_bytes(b.try_into().unwrap());
        Ok(())
    });
    assert_eq!(r, Ok(1));
    a
}

/// [`one_free`]'s request, inlined into each caller.
#[inline(always)]
fn free(s: &mut Service<'_, '_>, t: &mut Ticks, a: u64) {
    let bytes = a.to_le_bytes();
    let r: Result<u32, Answer<()>> = s.free_frames(t, (VMM, FrameSize::K4), 8, |b: &mut [u8]| {
        b.copy_from_slice(&bytes);
        Ok(())
    });
    assert_eq!(r, Ok(1));
}

/// [`one_alloc`] outside the profiled functions.
#[inline(never)]
fn warm_alloc(s: &mut Service<'_, '_>, t: &mut Ticks) -> u64 {
    // Not the same body as `one_alloc` (identical functions may be merged into one symbol).
    core::hint::black_box(alloc(s, t))
}

/// [`one_free`] outside the profiled functions.
#[inline(never)]
fn warm_free(s: &mut Service<'_, '_>, t: &mut Ticks, a: u64) {
    free(s, t, core::hint::black_box(a));
}

/// The background scrub until the quarantine is empty (what the benchmark waits for).
#[inline(never)]
fn drain(s: &mut Service<'_, '_>, seam: &mut EmuSeam, t: &mut Ticks) {
    let mut clock = 0u64;
    while s.server().quarantined_bytes() > 0 {
        t.0 += 1;
        s.timer_fired((seam, &mut Clears), t, || {
            clock += 100;
            clock
        });
    }
}

#[test]
#[ignore = "a profiling harness: run it under callgrind"]
fn one_frame_requests() {
    super::super::restart_tests::big_stack(|| {
        let bits = bitmap_words(24 * GIB, 128);
        let mut words: Vec<u64> = vec![0; Layout::new(bits).total_words()];
        let mut bitmap: Vec<u64> = vec![0; bits];
        let run = ready_run();
        let cmrs: Vec<PhysRange> = run.bringup.info().cmrs.to_vec();
        let n = run.storage.plan.tdmrs.len() as u16;
        let pamt = run.storage.plan.pamt_bytes.0;
        let storage = run.storage;
        let mut seam = run.seam;
        let policy = [ClientPolicy {
            task_index: 3,
            quota_bytes: 1 << 30,
            nodes: NodeMask::ALL,
            tdx: true,
            non_tdx: true,
            hotplug: false,
            keyids: 2,
        }];
        let mut server = Server::new(run.bringup, None, &policy, pamt, n);
        let memory = PlatformMemory {
            hotplug_window: Some(WINDOW),
            cmrs: &cmrs,
        };
        let build = |f| Regions::build(f, &storage, memory, HotplugPolicy::PerNode, 2);
        let a = server.attach_ledger((&mut words, &mut bitmap), build, &mut FakeKernel::default());
        assert_eq!(a, Attached::Fresh);
        let mut s = Service::new(&mut server, |_| {});
        let mut t = Ticks(0);
        // Warm-up outside the profiled functions: the first commit also writes the TD table
        // (once per instance), which no later request repeats.
        drain(&mut s, &mut seam, &mut t);
        let a = warm_alloc(&mut s, &mut t);
        warm_free(&mut s, &mut t, a);
        for _ in 0..100 {
            drain(&mut s, &mut seam, &mut t);
            let a = one_alloc(&mut s, &mut t);
            one_free(&mut s, &mut t, a);
        }
        for _ in 0..100 {
            drain(&mut s, &mut seam, &mut t);
            let a = one_alloc_frame(&mut s);
            one_free_frame(&mut s, &mut t, a);
        }
    });
}

/// The ledger commit of a 1 GiB free (4096 changed bitmap words: the journal's path).
#[inline(never)]
fn commit_gib_free(l: &mut crate::ledger::Ledger<'_>, f: &crate::frames::FrameAllocator<'_>) {
    let s = crate::ledger::LedgerState::default();
    assert!(crate::ledger::sync(l, f, &s));
}

#[test]
#[ignore = "a profiling harness: run it under callgrind"]
fn gib_free_commit() {
    use crate::frames::{FrameAllocator, Request};
    use tdx_planner::addr::PhysAddr;
    let bits_n = bitmap_words(3 * GIB, 16);
    let mut bits = vec![0u64; bits_n];
    let mut words = vec![0u64; Layout::new(bits_n).total_words()];
    let mut f = FrameAllocator::new(&mut bits);
    f.add_pool(PhysRange::literal(2 * GIB, GIB), 0, MemClass::NonTdx, true)
        .expect("pool");
    f.mark_ready(PhysRange::literal(2 * GIB, GIB));
    let mut s = crate::ledger::LedgerState::default();
    let (mut l, _) = crate::ledger::Ledger::open(&mut words, Layout::new(bits_n)).expect("open");
    crate::ledger::format(&mut l, &mut f, &mut s);
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::G1,
        class: MemClass::NonTdx,
    };
    let mut a = [PhysAddr(0); 1];
    f.allocate(VMM, req, &mut a).expect("1 GiB");
    commit_gib_free(&mut l, &f);
    f.clean();
    f.free(VMM, FrameSize::G1, &a).expect("free");
    commit_gib_free(&mut l, &f);
}
