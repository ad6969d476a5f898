//! The one-frame operations (`alloc_frame`, `free_frame`: the address in the message) against
//! their lease forms (`alloc_frames`, `free_frames` with one address). Two servers, each over
//! its own ledger, get the same requests, granted and refused (another task's frame, a
//! misaligned, unknown, kernel or MMIO address, the wrong size, a double free, a class not
//! granted, a node that does not exist, the quota), one server through each form. After every
//! request the answers, the ledger's durable words, the allocator's bitmap, pools and records,
//! the counters and the scrub timer armed are the same: the forms share one code path.

extern crate std;

use std::vec::Vec;

use tdx_host_api::{FrameSize, MemClass, ServerStats, TdxHostError, ANY_NODE};

use super::pacing::Timer;
use super::restart_tests::{big_stack, Machine, HOTPLUG, VMM};
use super::service::{Answer, Service};
use super::Attached;
use crate::frames::{Owner, Pool, Record};

/// A task with no policy at all.
const STRANGER: Owner = Owner(9);
/// The local APIC's MMIO page.
const LAPIC: u64 = 0xfee0_0000;
/// The kernel image's first page.
const KERNEL: u64 = 0x10_0000;

/// A timer that remembers every deadline armed (the scrub steps a request schedules).
#[derive(Default)]
struct Armed {
    deadlines: Vec<u64>,
}

impl Timer for Armed {
    fn now(&self) -> u64 {
        100
    }
    fn arm(&mut self, at: u64) {
        self.deadlines.push(at);
    }
}

/// Everything a request may change that outlives it.
#[derive(Debug, PartialEq, Eq)]
struct State {
    ledger: Vec<u64>,
    bitmap: Vec<u64>,
    pools: Vec<Pool>,
    records: Vec<Record>,
    stats: [ServerStats; 3],
    quarantined: u64,
    armed: Vec<u64>,
}

fn state(s: &Service<'_, '_>, timer: &Armed) -> State {
    let server = s.server();
    let ledger = server.ledger().expect("the ledger is attached");
    let frames = &server.regions.as_ref().expect("Ready").frames;
    State {
        ledger: (0..ledger.layout().total_words())
            .map(|i| ledger.word(i))
            .collect(),
        bitmap: frames.bitmap().to_vec(),
        pools: frames.pools().to_vec(),
        records: frames.records().to_vec(),
        stats: [VMM, HOTPLUG, STRANGER].map(|o| s.stats(o.index())),
        quarantined: server.quarantined_bytes(),
        armed: timer.deadlines.clone(),
    }
}

/// Where a free's address comes from.
#[derive(Clone, Copy)]
enum Addr {
    /// The address step `i` allocated, plus a byte offset.
    Got(usize, u64),
    Fixed(u64),
}

#[derive(Clone, Copy)]
enum Step {
    Alloc(Owner, u16, FrameSize, MemClass),
    Free(Owner, FrameSize, Addr),
}

/// One request through the one-frame form (`single`) or the lease form; the answer as
/// `alloc_frame`/`free_frame` give it (a free answers 0).
fn request(
    s: &mut Service<'_, '_>,
    timer: &mut Armed,
    step: Step,
    got: &[u64],
    single: bool,
) -> Result<u64, TdxHostError> {
    let refused = |a: Answer<()>| a.either(|e| e, |()| panic!("the test's lease never fails"));
    match step {
        Step::Alloc(who, node, size, class) if single => s.alloc_frame((who, node, size, class)),
        Step::Alloc(who, node, size, class) => {
            let mut addr = 0;
            let n = s.alloc_frames(timer, (who, node, size, class), 1, 8, |b: &[u8]| {
                addr = u64::from_le_bytes(b.try_into().expect("one address"));
                Ok::<(), ()>(())
            });
            n.map_err(refused).map(|n| {
                assert_eq!(n, 1);
                addr
            })
        }
        Step::Free(who, size, at) => {
            let addr = match at {
                Addr::Got(i, offset) => got[i] + offset,
                Addr::Fixed(a) => a,
            };
            if single {
                return s.free_frame(timer, (who, size), addr).map(|()| 0);
            }
            let bytes = addr.to_le_bytes();
            let n = s.free_frames(timer, (who, size), 8, |b: &mut [u8]| {
                b.copy_from_slice(&bytes);
                Ok::<(), ()>(())
            });
            n.map_err(refused).map(|n| {
                assert_eq!(n, 1);
                0
            })
        }
    }
}

#[test]
fn one_frame_operations_change_exactly_what_their_lease_forms_change() {
    big_stack(one_frame_operations_change_exactly_what_their_lease_forms_change_body);
}

fn one_frame_operations_change_exactly_what_their_lease_forms_change_body() {
    use FrameSize::{K4, M2};
    use MemClass::{NonTdx, Tdx};
    use TdxHostError::*;
    let (k4, m2) = (K4, M2);
    let ok = Ok(u64::MAX);
    // (request, its expected answer; `ok` for any address the two forms agree on).
    let steps: [(Step, Result<u64, TdxHostError>); 20] = [
        (Step::Alloc(VMM, ANY_NODE, k4, Tdx), ok),
        (Step::Alloc(VMM, 0, m2, Tdx), ok),
        (Step::Alloc(VMM, ANY_NODE, k4, NonTdx), ok),
        (Step::Alloc(HOTPLUG, ANY_NODE, k4, Tdx), Err(AccessDenied)),
        (Step::Alloc(STRANGER, ANY_NODE, k4, Tdx), Err(AccessDenied)),
        (Step::Alloc(VMM, 99, k4, Tdx), Err(NoSuchNode)),
        (
            Step::Alloc(VMM, ANY_NODE, FrameSize::G1, Tdx),
            Err(QuotaExceeded),
        ),
        (Step::Free(HOTPLUG, k4, Addr::Got(0, 0)), Err(NotOwner)),
        (Step::Free(STRANGER, k4, Addr::Got(0, 0)), Err(NotOwner)),
        (Step::Free(VMM, k4, Addr::Got(0, 8)), Err(BadAlignment)),
        (Step::Free(VMM, k4, Addr::Fixed(LAPIC)), Err(UnknownFrame)),
        (Step::Free(VMM, k4, Addr::Fixed(KERNEL)), Err(UnknownFrame)),
        (Step::Free(VMM, k4, Addr::Got(1, 0)), Err(WrongSize)),
        (Step::Free(VMM, m2, Addr::Got(1, 4096)), Err(BadAlignment)),
        (Step::Free(VMM, k4, Addr::Got(0, 0)), Ok(0)),
        (Step::Free(VMM, k4, Addr::Got(0, 0)), Err(DoubleFree)),
        (Step::Free(VMM, m2, Addr::Got(1, 0)), Ok(0)),
        (Step::Free(VMM, m2, Addr::Got(1, 0)), Err(DoubleFree)),
        (Step::Free(VMM, k4, Addr::Got(2, 0)), Ok(0)),
        (Step::Alloc(VMM, 1, k4, Tdx), ok),
    ];
    let (mut one, mut leased) = (Machine::new(), Machine::new());
    let (mut server_one, a1) = one.start();
    let (mut server_leased, a2) = leased.start();
    assert_eq!((a1, a2), (Attached::Fresh, Attached::Fresh));
    let mut s1 = Service::new(&mut server_one, |_| {});
    let mut s2 = Service::new(&mut server_leased, |_| {});
    let (mut t1, mut t2) = (Armed::default(), Armed::default());
    assert_eq!(state(&s1, &t1), state(&s2, &t2), "before any request");
    let mut got = Vec::new();
    for (i, (step, want)) in steps.into_iter().enumerate() {
        let r1 = request(&mut s1, &mut t1, step, &got, true);
        let r2 = request(&mut s2, &mut t2, step, &got, false);
        assert_eq!(r1, r2, "step {i}: the answers differ");
        match want {
            Ok(u64::MAX) => assert!(r1.is_ok_and(|a| a != 0), "step {i}: {r1:?}"),
            w => assert_eq!(r1, w, "step {i}"),
        }
        // Equal states, compared field by field for a readable failure.
        let (a, b) = (state(&s1, &t1), state(&s2, &t2));
        assert!(a.ledger == b.ledger, "step {i}: ledger words differ");
        assert!(a.bitmap == b.bitmap, "step {i}: bitmaps differ");
        assert_eq!(a.pools, b.pools, "step {i}");
        assert_eq!(a.records, b.records, "step {i}");
        assert_eq!(a.stats, b.stats, "step {i}");
        assert_eq!(
            (a.quarantined, &a.armed),
            (b.quarantined, &b.armed),
            "step {i}"
        );
        got.push(r1.unwrap_or(0));
    }
    // The refusals were counted, and the frees quarantined and scheduled their scrub.
    let end = state(&s1, &t1);
    assert_eq!(end.stats[0].refused, 13);
    assert_eq!(end.quarantined, 2 * 4096 + (2 << 20));
    assert!(!end.armed.is_empty());
    assert_eq!(end.stats[0].caller_usage_bytes, 4096);
}

/// Clears nothing: the emulated module has no memory to clear.
struct NoClear;

impl super::Scrubber for NoClear {
    fn scrub(&mut self, _: tdx_planner::addr::PhysRange) -> Result<(), crate::seam::KernelError> {
        Ok(())
    }
}

/// The ledger offers the counters to a commit only when one changed (`Service` marks them):
/// after every kind of request that changes one (a refusal, a scrub step, a client's
/// restart) and after those that change none, a restarted tdx-host restores exactly the
/// counters the last instance had, so no change went unmarked.
#[test]
fn every_counter_change_survives_a_restart() {
    big_stack(every_counter_change_survives_a_restart_body);
}

fn every_counter_change_survives_a_restart_body() {
    use super::counters_from;
    use crate::regions::tests::FakeKernel;
    let mut m = Machine::new();
    let mut got = Vec::new();
    let mut last = None;
    for step in 0..7 {
        let (mut server, attached, mut seam) = m.start_seam(&mut FakeKernel::default());
        assert_eq!(attached == Attached::Fresh, step == 0, "step {step}");
        let mut s = Service::new(&mut server, |_| {});
        let restored = counters_from(&s.stats(VMM.index()));
        if let Some(c) = last {
            assert_eq!(restored, c, "after step {}", step - 1);
        }
        let mut timer = Armed::default();
        let what = (VMM, ANY_NODE, FrameSize::K4, MemClass::Tdx);
        // The counters the step must change (bits in `counters_from`'s order), and those it
        // may change (a scrub step's RDMD calls and retired bytes).
        let (must, may): (u8, u8) = match step {
            0 | 5 => {
                got.push(s.alloc_frame(what).expect("a frame"));
                (0, 0)
            }
            1 => {
                let r = s.alloc_frame((STRANGER, ANY_NODE, FrameSize::K4, MemClass::Tdx));
                assert_eq!(r, Err(TdxHostError::AccessDenied));
                (1 << 6, 0)
            }
            2 => {
                let r = s.free_frame(&mut timer, (VMM, FrameSize::K4), got[0]);
                assert_eq!(r, Ok(()));
                (0, 0)
            }
            3 => {
                let r = s.free_frame(&mut timer, (VMM, FrameSize::K4), got[0]);
                assert_eq!(r, Err(TdxHostError::DoubleFree));
                (1 << 6, 0)
            }
            4 => {
                let mut clock = 0;
                while s.server().quarantined_bytes() > 0 {
                    s.timer_fired((&mut seam, &mut NoClear), &mut timer, || {
                        clock += 100;
                        clock
                    });
                }
                (1 << 0 | 1 << 1, 1 << 2 | 1 << 4)
            }
            _ => {
                // The VMM restarted: its new generation's server reclaims the frame.
                let vmm = Owner(VMM.0 + (1 << 16));
                s.clients_restarted((&mut seam, &mut timer), [(vmm, "vmm")]);
                (1 << 3 | 1 << 5, 0)
            }
        };
        let now = counters_from(&s.stats(VMM.index()));
        for k in 0..now.len() {
            if may >> k & 1 == 0 {
                let want = must >> k & 1 == 1;
                assert_eq!(now[k] != restored[k], want, "step {step}: counter {k}");
            }
        }
        last = Some(now);
    }
}
