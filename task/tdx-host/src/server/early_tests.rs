//! Serving while TDMR.INIT runs: the server built at TDMR.INIT's first chunks hands out TDX
//! frames only from 1 GiB blocks the module has finished — checked against the emulated module
//! itself (TDH.PHYMEM.PAGE.RDMD answers OPERAND_ADDR_RANGE_ERROR in an unfinished GiB) after
//! every bounded step — answers `status` with growing progress, NotReady for the rest, frees
//! early frames, and holds chunks back for requests after a turn's worth.

extern crate std;

use std::vec::Vec;

use tdx_abi::{Leaf, SeamcallArgs, TdxStatus};
use tdx_emu::EmuConfig;
use tdx_host_api::{FrameSize, InitStep, MemClass, ModuleState, TdxHostError, ANY_NODE};
use tdx_planner::addr::{PhysRange, GIB, PAGE_4K};

use super::{Attached, ClientPolicy, Server};
use crate::frames::{bitmap_words, FrameAllocator, NodeMask, Owner};
use crate::init::record::{AtomicWords, Durable, RecordWords};
use crate::init::tests::{emulated, EmuSeam, EmuWriter, Fixture, BUF_LEN};
use crate::init::{Bringup, InitConfig, InitStorage, Progress, State, TdmrRun};
use crate::ledger::Layout;
use crate::regions::tests::FakeKernel;
use crate::regions::{HotplugPolicy, PlatformMemory, Regions};
use crate::seam::{Deferred, Seam};

const VMM: Owner = Owner(3);

fn policy() -> [ClientPolicy; 1] {
    [ClientPolicy {
        task_index: 3,
        quota_bytes: 64 * GIB,
        nodes: NodeMask::ALL,
        tdx: true,
        non_tdx: true,
        hotplug: false,
        keyids: 0,
    }]
}

/// The module's answer to PAGE.RDMD of `pa`.
fn rdmd(seam: &mut EmuSeam, pa: u64) -> TdxStatus {
    let args = SeamcallArgs::leaf(Leaf::PhymemPageRdmd).rcx(pa);
    seam.seamcall(None, args).expect("returns").status()
}

#[test]
fn frames_come_only_from_finished_blocks_while_tdmr_init_runs() {
    let fx = Fixture::new(2, 1, 1);
    let (mut seam, mut writer) = emulated(EmuConfig::new(2, 1));
    let mut storage = std::boxed::Box::<InitStorage>::default();
    let mut b = Bringup::new(InitConfig::default());
    let mut run = None;
    let mut quiet = |_: &Progress| {};
    let view = fx.view();
    let state = b.begin_durable(
        &mut seam,
        &mut writer,
        &view,
        &mut storage,
        None,
        &mut quiet,
        &mut run,
    );
    assert_eq!(state, State::Initializing(InitStep::TdmrInit));
    let done: Vec<PhysRange> = run.as_ref().expect("running").initialized().collect();
    let cmrs = b.info().cmrs.clone();
    let bits =
        std::boxed::Box::leak(std::vec![0u64; bitmap_words(20 * GIB, 128)].into_boxed_slice());
    let platform = PlatformMemory {
        hotplug_window: None,
        cmrs: &cmrs,
    };
    let regions = Regions::build_initialized(
        FrameAllocator::new(bits),
        &storage,
        platform,
        HotplugPolicy::PerNode,
        1,
        &mut done.into_iter(),
    )
    .expect("regions");
    let (pamt, n) = (storage.pamt_bytes(), storage.tdmr_count());
    let mut s = Server::new(b, Some(regions), &policy(), pamt, n);
    let (mut last, mut steps, mut served, mut held) = (0u64, 0u32, 0u64, Vec::new());
    let (mut freed, mut holds) = (None, 0u32);
    let mut buf = [0u8; 8];
    loop {
        let st = s.status();
        if st.state() == Some(ModuleState::Ready) {
            break;
        }
        assert_eq!(st.state(), Some(ModuleState::Initializing));
        assert_eq!(st.step, InitStep::TdmrInit as u8);
        assert!(
            st.tdmr_bytes_initialized >= last && st.tdmr_bytes_initialized < st.tdmr_bytes_total
        );
        last = st.tdmr_bytes_initialized;
        assert_eq!(
            s.alloc_frames(VMM, ANY_NODE, FrameSize::K4, MemClass::NonTdx, 1, &mut buf),
            Err(TdxHostError::NotReady)
        );
        assert_eq!(s.node_info(0), Err(TdxHostError::NotReady));
        // Take 1 GiB frames (a block each), then 2 MiB ones, until the initialized blocks are
        // used up (or the record table is full): every one must lie in GiBs the module has
        // finished (its first and last page answer PAGE.RDMD).
        for size in [FrameSize::G1, FrameSize::M2] {
            loop {
                match s.alloc_frames(VMM, ANY_NODE, size, MemClass::Tdx, 1, &mut buf) {
                    Ok(1) => {}
                    Err(TdxHostError::NoMemory | TdxHostError::TableFull) => break,
                    other => panic!("alloc while initializing: {other:?}"),
                }
                let pa = u64::from_le_bytes(buf);
                for page in [pa, pa + size.bytes() - PAGE_4K] {
                    let status = rdmd(&mut seam, page);
                    assert!(
                        status.is_success(),
                        "frame {pa:#x} in an unfinished GiB: {status}"
                    );
                }
                served += size.bytes();
                if size == FrameSize::M2 {
                    held.push(pa);
                }
            }
        }
        // Early frames are freed like any other (one, so the records stay few).
        if freed.is_none() {
            if let Some(pa) = held.pop() {
                assert_eq!(s.free_frames(VMM, FrameSize::M2, &pa.to_le_bytes()), Ok(1));
                freed = Some(pa);
            }
        }
        s.advance_init(&mut seam, &mut run, &mut |_| {});
        // Chunks are held back after a turn's worth; the server starts them after the next
        // request (here: the next round of requests).
        if run.as_ref().is_some_and(TdmrRun::holds_back) {
            holds += 1;
            s.release_init(&mut seam, &mut run);
        }
        steps += 1;
        assert!(steps < 100_000, "TDMR.INIT never ends");
    }
    assert!(run.is_none());
    assert!(served > 0 && steps > 1, "nothing served before Ready");
    assert!(freed.is_some(), "no early frame freed");
    assert!(holds > 0, "the boot CPU never made way for requests");
    // Whatever was left free is allocatable now, and every TDMR is finished in the module.
    let st = s.status();
    assert_eq!(st.tdmr_bytes_initialized, st.tdmr_bytes_total);
    for (i, t) in storage.plan.tdmrs.iter().enumerate() {
        assert_eq!(seam.m.tdmr_next_to_init(i), Some(t.base.0 + t.size.0));
    }
    assert!(
        s.alloc_frames(VMM, ANY_NODE, FrameSize::K4, MemClass::NonTdx, 1, &mut buf)
            != Err(TdxHostError::NotReady)
    );
}

/// The emulator's side: PAGE.RDMD of a page in a GiB that TDMR.INIT has not finished answers
/// OPERAND_ADDR_RANGE_ERROR, in a finished GiB it answers (§3.2, §9.1).
#[test]
fn the_emulated_module_refuses_pages_of_unfinished_gibs() {
    let fx = Fixture::new(1, 1, 1);
    let (mut seam, mut writer) = emulated(EmuConfig::new(1, 1));
    let mut storage = std::boxed::Box::<InitStorage>::default();
    let mut b = Bringup::new(InitConfig::default());
    let mut run = None;
    let view = fx.view();
    let mut quiet = |_: &Progress| {};
    b.begin_durable(
        &mut seam,
        &mut writer,
        &view,
        &mut storage,
        None,
        &mut quiet,
        &mut run,
    );
    let t = storage.plan.tdmrs[storage.plan.tdmrs.len() - 1].range();
    let last_gib = t.base().0 + t.size().0 - GIB;
    assert!(rdmd(&mut seam, last_gib).is(TdxStatus::OPERAND_ADDR_RANGE_ERROR));
    while run.is_some() {
        b.advance(&mut seam, &mut run, None, &mut quiet);
        b.release_held(&mut seam, &mut run, &mut quiet);
    }
    assert!(rdmd(&mut seam, last_gib).is_success());
}

/// One tdx-host instance over durable memory that outlives it (record and ledger words) and a
/// module that keeps its own progress: started while TDMR.INIT runs.
struct Instance<'a> {
    server: Server<'a>,
    run: Option<TdmrRun>,
}

fn start_instance<'a>(
    seam: &mut EmuSeam,
    fx: &Fixture,
    storage: &'a mut InitStorage,
    (record, ledger, bits): (&'a RecordWords, &'a mut [u64], &'a mut [u64]),
    cmrs: &'a mut Vec<PhysRange>,
) -> (Instance<'a>, Attached) {
    // A dead instance's answers are dropped by the kernel.
    seam.deferred = Deferred::default();
    let mem = seam.mem.clone();
    let mut writer = EmuWriter {
        mem,
        len: BUF_LEN as u64,
    };
    let mut b = Bringup::new(InitConfig::default());
    let mut run = None;
    let mut words = AtomicWords(record.words());
    let view = fx.view();
    let mut quiet = |_: &Progress| {};
    let durable = Some(&mut words as &mut dyn Durable);
    let state = b.begin_durable(
        seam,
        &mut writer,
        &view,
        storage,
        durable,
        &mut quiet,
        &mut run,
    );
    assert_eq!(
        state,
        State::Initializing(InitStep::TdmrInit),
        "{:?}",
        b.reattach()
    );
    let done: Vec<PhysRange> = run.as_ref().expect("running").initialized().collect();
    *cmrs = b.info().cmrs.to_vec();
    let (pamt, n) = (storage.pamt_bytes(), storage.tdmr_count());
    let mut s = Server::new(b, None, &policy(), pamt, n);
    s.keep_record(Some(record));
    let storage: &InitStorage = storage;
    let cmrs: &[PhysRange] = cmrs;
    let build = |f| {
        let platform = PlatformMemory {
            hotplug_window: None,
            cmrs,
        };
        let done = &mut done.into_iter();
        Regions::build_initialized(f, storage, platform, HotplugPolicy::PerNode, 1, done)
    };
    let a = s.attach_ledger((ledger, bits), build, &mut FakeKernel::default());
    (Instance { server: s, run }, a)
}

/// Advances `i` until a 4 KiB TDX frame is served, and returns it (checked in a finished GiB).
fn first_frame(i: &mut Instance<'_>, seam: &mut EmuSeam) -> u64 {
    let mut buf = [0u8; 8];
    for _ in 0..100_000 {
        match i
            .server
            .alloc_frames(VMM, ANY_NODE, FrameSize::K4, MemClass::Tdx, 1, &mut buf)
        {
            Ok(1) => {
                i.server.commit(None);
                let pa = u64::from_le_bytes(buf);
                assert!(rdmd(seam, pa).is_success(), "{pa:#x} in an unfinished GiB");
                return pa;
            }
            Err(TdxHostError::NoMemory) => {}
            other => panic!("early alloc: {other:?}"),
        }
        i.server.advance_init(seam, &mut i.run, &mut |_| {});
        i.server.release_init(seam, &mut i.run);
    }
    panic!("no frame before TDMR.INIT ended");
}

/// tdx-host killed while TDMR.INIT still runs, after serving a frame: the next instance
/// resumes TDMR.INIT from the record, restores the ledger with that frame still held (never
/// handed out again), serves more frames from finished blocks only, reaches Ready, and the
/// early frame is freed like any other.
#[test]
fn an_early_frame_survives_a_restart_in_the_middle_of_tdmr_init() {
    let t = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(restart_body);
    t.expect("thread").join().expect("test body");
}

fn restart_body() {
    let fx = Fixture::new(2, 1, 1);
    let (mut seam, _) = emulated(EmuConfig::new(2, 1));
    let record: &'static RecordWords = std::boxed::Box::leak(std::boxed::Box::default());
    let nbits = bitmap_words(20 * GIB, 128);
    let mut ledger = std::vec![0u64; Layout::new(nbits).total_words()];
    let mut bits = std::vec![0u64; nbits];
    let early = {
        let mut storage = std::boxed::Box::<InitStorage>::default();
        let mut cmrs = Vec::new();
        let durable = (record, &mut ledger[..], &mut bits[..]);
        let (mut a, how) = start_instance(&mut seam, &fx, &mut storage, durable, &mut cmrs);
        assert_eq!(how, Attached::Fresh);
        let pa = first_frame(&mut a, &mut seam);
        // A few more chunks, then the kill: the module is ahead of the record now.
        for _ in 0..3 {
            a.server.advance_init(&mut seam, &mut a.run, &mut |_| {});
        }
        assert!(a.run.is_some(), "the kill must come while TDMR.INIT runs");
        pa
    };
    let mut storage = std::boxed::Box::<InitStorage>::default();
    let mut cmrs = Vec::new();
    let durable = (record, &mut ledger[..], &mut bits[..]);
    let (mut b, how) = start_instance(&mut seam, &fx, &mut storage, durable, &mut cmrs);
    assert!(matches!(how, Attached::Restored { .. }), "{how:?}");
    assert!(b.server.bringup.reattach().found);
    assert_eq!(b.server.regions.as_ref().unwrap().frames.usage(3), PAGE_4K);
    let mut buf = [0u8; 8];
    let mut steps = 0;
    while b.run.is_some() {
        if let Ok(1) =
            b.server
                .alloc_frames(VMM, ANY_NODE, FrameSize::K4, MemClass::Tdx, 1, &mut buf)
        {
            let pa = u64::from_le_bytes(buf);
            assert_ne!(pa, early, "the early frame was handed out twice");
            assert!(
                rdmd(&mut seam, pa).is_success(),
                "{pa:#x} in an unfinished GiB"
            );
        }
        b.server.advance_init(&mut seam, &mut b.run, &mut |_| {});
        b.server.release_init(&mut seam, &mut b.run);
        steps += 1;
        assert!(steps < 100_000, "TDMR.INIT never ends");
    }
    assert_eq!(b.server.status().state(), Some(ModuleState::Ready));
    let early_bytes = early.to_le_bytes();
    assert_eq!(
        b.server.free_frames(VMM, FrameSize::K4, &early_bytes),
        Ok(1)
    );
    drop(b);
    for (i, t) in storage.plan.tdmrs.iter().enumerate() {
        assert_eq!(seam.m.tdmr_next_to_init(i), Some(t.base.0 + t.size.0));
    }
}
