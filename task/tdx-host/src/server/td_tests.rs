//! TD operations against the software module: the whole life cycle with exact totals, refusals
//! before the module is called (tdx-host's books) and by the module, KeyID exhaustion and the
//! per-client limit, and teardown with injected busy and interrupted statuses.
//!
//! Each test body runs on a 64 MiB thread (`big_stack`): the server and its tables live on the
//! stack, within a few per cent of a default test thread's 2 MiB.

extern crate std;

use tdx_abi::{Leaf, TdParams, TdxStatus};
use tdx_emu::{EmuConfig, FaultRule, PhysMem};
use tdx_host_api::{FrameSize, MemClass, TdxHostError, ANY_NODE};
use tdx_planner::addr::GIB;

use super::td::{TdCpus, BUSY_TRIES};
use super::{ClientPolicy, Server};
use crate::frames::{NodeMask, Owner};
use crate::init::tests::{run_with, EmuSeam, BUF_BASE};
use crate::regions::tests::build;
use crate::regions::HotplugPolicy;
use crate::seam::CpuIndex;
use crate::td::PageState;

const MIB: u64 = 1 << 20;
const VMM: Owner = Owner(3 | 1 << 16);
const OTHER: Owner = Owner(4);
/// TD_PARAMS and PAGE.ADD's source in the buffer the emulated module can read.
const PARAMS: u64 = BUF_BASE + 32 * 1024;
const SOURCE: u64 = BUF_BASE + 36 * 1024;

fn policy(index: u16, keyids: u16) -> ClientPolicy {
    ClientPolicy {
        task_index: index,
        quota_bytes: 256 * MIB,
        nodes: NodeMask::ALL,
        tdx: true,
        non_tdx: false,
        hotplug: false,
        keyids,
    }
}

fn server_with(faults: &[FaultRule], keyids: u32) -> (Server<'static>, EmuSeam) {
    let mut cfg = EmuConfig::new(4, 2);
    cfg.td_fixed = [!(1 << 62), 0, 0xF_FFFF, 0b11];
    cfg.keyids.nr_tdx = keyids;
    for (slot, f) in cfg.faults.iter_mut().zip(faults) {
        *slot = Some(*f);
    }
    let mut fx = crate::init::tests::Fixture::new(4, 2, 2);
    fx.keyids = Some(crate::seam::KeyIdPartition {
        nr_mktme: cfg.keyids.nr_mktme,
        nr_tdx: keyids,
    });
    let run = run_with(cfg, &fx, |_| {});
    assert_eq!(run.state, crate::init::State::Ready);
    let regions = build_run(&run);
    let n = run.storage.plan.tdmrs.len() as u16;
    let pamt = run.storage.plan.pamt_bytes.0;
    let policies = [policy(3, 4), policy(4, 1)];
    let seam = run.seam;
    let mut s = Server::new(run.bringup, Some(regions), &policies, pamt, n);
    let mut leaders = heapless::Vec::new();
    let _ = leaders.push(CpuIndex(0));
    let _ = leaders.push(CpuIndex(1));
    s.set_td_cpus(TdCpus {
        leaders,
        cpus: 4,
        keyid_bits: seam.m.config().keyids.keyid_bits,
    });
    {
        let mut m = seam.mem.borrow_mut();
        m.write(PARAMS, &TdParams::default().to_bytes()).unwrap();
        m.write(SOURCE, &[0x5a; 4096]).unwrap();
    }
    (s, seam)
}

fn build_run(run: &crate::init::tests::Run) -> crate::regions::Regions<'static> {
    build(run, HotplugPolicy::Reject)
}

fn alloc(s: &mut Server<'_>, who: Owner, size: FrameSize, n: u32) -> std::vec::Vec<u64> {
    let mut buf = std::vec![0u8; 8 * n as usize];
    s.alloc_frames(who, 0, size, MemClass::Tdx, n, &mut buf)
        .expect("alloc");
    buf.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn free_bytes(s: &Server<'_>) -> u64 {
    s.regions
        .as_ref()
        .unwrap()
        .frames
        .pools()
        .iter()
        .map(|p| p.free_bytes())
        .sum()
}

/// A TD with 6 TDCS pages, initialized, two vCPUs (6 pages each) on CPUs 0 and 1, S-EPT for
/// GPA [0, 1 GiB) and `private` 4 KiB pages (one added, the rest AUGed), plus one 2 MiB page.
fn populated(s: &mut Server<'_>, seam: &mut EmuSeam, who: Owner, private: usize) -> u32 {
    let p = alloc(s, who, FrameSize::K4, 6 + 1 + 12 + 3 + private as u32);
    let big = alloc(s, who, FrameSize::M2, 1);
    let c = s.td_create(seam, who, p[0]).expect("create");
    for &pa in &p[1..7] {
        s.td_add_tdcs(seam, who, c.td, pa).expect("tdcs");
    }
    s.td_init(seam, who, c.td, PARAMS).expect("init");
    for (v, cpu) in [(0usize, 0u32), (1, 1)] {
        let base = 7 + 6 * v;
        let id = s.vcpu_create(seam, who, c.td, p[base]).expect("vcpu");
        for &pa in &p[base + 1..base + 6] {
            s.vcpu_add_tdcx(seam, who, (c.td, id), pa).expect("tdcx");
        }
        s.vcpu_init(seam, who, (c.td, id, cpu), 0).expect("vp init");
    }
    for (i, level) in [3u8, 2, 1].into_iter().enumerate() {
        s.sept_add(seam, who, (c.td, 0, level), p[19 + i])
            .expect("sept");
    }
    s.page_add(seam, who, (c.td, 0), p[22], SOURCE)
        .expect("page add");
    s.mr_finalize(seam, who, c.td).expect("finalize");
    for (i, &pa) in p[23..].iter().enumerate() {
        s.page_aug(seam, who, (c.td, (i as u64 + 1) * 4096, 0), pa)
            .expect("aug");
    }
    s.page_aug(seam, who, (c.td, 2 * MIB, 1), big[0])
        .expect("aug 2M");
    c.td
}

#[test]
fn a_td_is_built_and_torn_down_with_exact_totals() {
    super::restart_tests::big_stack(a_td_is_built_and_torn_down_with_exact_totals_body);
}

fn a_td_is_built_and_torn_down_with_exact_totals_body() {
    let (mut s, mut seam) = server_with(&[], 8);
    let free0 = free_bytes(&s);
    let k0 = s.tds().keyid_counts();
    assert_eq!((k0.free, k0.in_use, k0.retired), (7, 0, 0));
    let td = populated(&mut s, &mut seam, VMM, 4);
    let frames = 1 + 6 + 12 + 3 + 1 + 3 + 512;
    assert_eq!(s.tds().frames_in_tds(), frames);
    assert_eq!(s.tds().keyid_counts().in_use, 1);
    let tdr = s.tds().td(0).unwrap().tdr;
    assert_eq!(s.page_state(tdr), PageState::TdRoot);

    // A page taken back is the caller's again; its frame may be freed.
    let gone = s
        .page_remove(&mut seam, VMM, (td, 4096, 0))
        .expect("remove");
    assert_eq!(s.page_state(gone), PageState::Allocated);
    assert_eq!(s.tds().frames_in_tds(), frames - 1);

    let r = s.td_teardown(&mut seam, VMM, td).expect("teardown");
    assert_eq!(r.reclaimed as u64, 1 + 6 + 12 + 3 + 1 + 2 + 1);
    assert!(!r.keyid_retired);
    assert_eq!(s.tds().frames_in_tds(), 0);
    assert_eq!(s.tds().keyid_counts(), k0);
    assert_eq!(s.page_state(tdr), PageState::Allocated);
    assert_eq!(seam.m.td_lifecycle(tdr), None);
    // Every frame the TD had is the caller's again and PT_NDA; freeing all restores the pool.
    let owned: std::vec::Vec<_> = s
        .regions
        .as_ref()
        .unwrap()
        .frames
        .owned(VMM)
        .copied()
        .collect();
    for rec in owned {
        for i in 0..u64::from(rec.count) {
            let pa = rec.base + i * rec.size.bytes();
            s.free_frames(VMM, rec.size, &pa.to_le_bytes())
                .expect("free");
        }
    }
    assert_eq!(
        s.quarantined_bytes() + free_bytes(&s),
        free0,
        "every frame is free or waits for its scrub"
    );
}

#[test]
fn out_of_order_and_foreign_operands_are_refused() {
    super::restart_tests::big_stack(out_of_order_and_foreign_operands_are_refused_body);
}

fn out_of_order_and_foreign_operands_are_refused_body() {
    let (mut s, mut seam) = server_with(&[], 8);
    let p = alloc(&mut s, VMM, FrameSize::K4, 8);
    let theirs = alloc(&mut s, OTHER, FrameSize::K4, 1);
    assert_eq!(
        s.td_create(&mut seam, VMM, theirs[0]),
        Err(TdxHostError::NotOwner)
    );
    assert_eq!(
        s.td_create(&mut seam, VMM, 1 << 50),
        Err(TdxHostError::UnknownFrame)
    );
    let c = s.td_create(&mut seam, VMM, p[0]).unwrap();
    // The TDR is in a TD: not free-able, not usable twice.
    assert_eq!(
        s.free_frames(VMM, FrameSize::K4, &p[0].to_le_bytes()),
        Err(TdxHostError::PageInTd)
    );
    assert_eq!(
        s.free_frame(VMM, FrameSize::K4, p[0]),
        Err(TdxHostError::PageInTd)
    );
    assert_eq!(
        s.td_add_tdcs(&mut seam, VMM, c.td, p[0]),
        Err(TdxHostError::PageInTd)
    );
    // Another client cannot name the TD.
    assert_eq!(
        s.td_add_tdcs(&mut seam, OTHER, c.td, theirs[0]),
        Err(TdxHostError::NoSuchTd)
    );
    // tdx-host's order: no vCPU before MNG.INIT.
    assert_eq!(
        s.vcpu_create(&mut seam, VMM, c.td, p[1]),
        Err(TdxHostError::WrongState)
    );
    // The module's order: MNG.INIT with too few TDCS pages.
    s.td_add_tdcs(&mut seam, VMM, c.td, p[1]).unwrap();
    assert_eq!(
        s.td_init(&mut seam, VMM, c.td, PARAMS),
        Err(TdxHostError::ModuleRefused)
    );
    assert!(s.last_td_status().is(TdxStatus::TDCS_NOT_ALLOCATED));
    // A teardown of the half-built TD works and gives everything back.
    let r = s.td_teardown(&mut seam, VMM, c.td);
    assert!(r.is_ok(), "{r:?} {:?}", s.last_td_status());
    assert_eq!(s.tds().frames_in_tds(), 0);
    assert_eq!(
        s.td_teardown(&mut seam, VMM, c.td),
        Err(TdxHostError::NoSuchTd)
    );
    s.free_frames(VMM, FrameSize::K4, &p[0].to_le_bytes())
        .unwrap();
}

/// A TD page must be TDX memory: a frame of class non-tdx the caller owns is refused from
/// tdx-host's books, and the module is never asked (its status of the last refusal stays).
#[test]
fn a_non_tdx_frame_is_no_td_page() {
    super::restart_tests::big_stack(a_non_tdx_frame_is_no_td_page_body);
}

fn a_non_tdx_frame_is_no_td_page_body() {
    let (mut s, mut seam) = super::tests::ready_server(HotplugPolicy::PerNode);
    s.set_td_cpus(TdCpus::default());
    let mut buf = [0u8; 8];
    let who = super::tests::OTHER;
    s.alloc_frames(who, ANY_NODE, FrameSize::K4, MemClass::NonTdx, 1, &mut buf)
        .expect("a non-TDX frame");
    let pa = u64::from_le_bytes(buf);
    let before = s.last_td_status();
    assert_eq!(
        s.td_create(&mut seam, who, pa),
        Err(TdxHostError::UnknownFrame)
    );
    assert_eq!(s.last_td_status(), before, "the module was called");
    assert_eq!(s.free_frame(who, FrameSize::K4, pa), Ok(()));
}

/// PageInTd is the holder's answer only: a stranger naming another client's TD page gets
/// NotOwner, as for any frame of that client, and cannot tell its TD pages apart.
#[test]
fn another_client_s_td_page_is_not_owned_not_in_a_td() {
    super::restart_tests::big_stack(another_client_s_td_page_is_not_owned_not_in_a_td_body);
}

fn another_client_s_td_page_is_not_owned_not_in_a_td_body() {
    let (mut s, mut seam) = server_with(&[], 8);
    let p = alloc(&mut s, VMM, FrameSize::K4, 2);
    s.td_create(&mut seam, VMM, p[0]).expect("the VMM's TD");
    for a in [p[0], p[1]] {
        assert_eq!(
            s.free_frame(OTHER, FrameSize::K4, a),
            Err(TdxHostError::NotOwner)
        );
        assert_eq!(
            s.free_frames(OTHER, FrameSize::K4, &a.to_le_bytes()),
            Err(TdxHostError::NotOwner)
        );
    }
    assert_eq!(
        s.free_frame(VMM, FrameSize::K4, p[0]),
        Err(TdxHostError::PageInTd)
    );
    let both: std::vec::Vec<u8> = p.iter().flat_map(|a| a.to_le_bytes()).collect();
    assert_eq!(
        s.free_frames(VMM, FrameSize::K4, &both),
        Err(TdxHostError::PageInTd)
    );
}

#[test]
fn keyids_run_out_and_the_per_client_limit_holds() {
    super::restart_tests::big_stack(keyids_run_out_and_the_per_client_limit_holds_body);
}

fn keyids_run_out_and_the_per_client_limit_holds_body() {
    // 4 TDX KeyIDs: the global one and 3 guest KeyIDs.
    let (mut s, mut seam) = server_with(&[], 4);
    let p = alloc(&mut s, VMM, FrameSize::K4, 5);
    let q = alloc(&mut s, OTHER, FrameSize::K4, 2);
    s.td_create(&mut seam, OTHER, q[0]).unwrap();
    assert_eq!(
        s.td_create(&mut seam, OTHER, q[1]),
        Err(TdxHostError::KeyIdLimit)
    );
    let a = s.td_create(&mut seam, VMM, p[0]).unwrap();
    s.td_create(&mut seam, VMM, p[1]).unwrap();
    assert_eq!(
        s.td_create(&mut seam, VMM, p[2]),
        Err(TdxHostError::NoKeyId)
    );
    s.td_teardown(&mut seam, VMM, a.td).unwrap();
    let again = s.td_create(&mut seam, VMM, p[2]).unwrap();
    assert_eq!(again.hkid, a.hkid, "a freed KeyID is reused");
}

#[test]
fn busy_and_interrupted_teardown_statuses_are_retried_to_completion() {
    super::restart_tests::big_stack(
        busy_and_interrupted_teardown_statuses_are_retried_to_completion_body,
    );
}

fn busy_and_interrupted_teardown_statuses_are_retried_to_completion_body() {
    let faults = [
        FaultRule {
            leaf: Leaf::PhymemCacheWb,
            status: TdxStatus::INTERRUPTED_RESUMABLE.raw(),
            on_call: Some(1),
            on_lp: None,
            repeat: 3,
        },
        FaultRule {
            leaf: Leaf::PhymemPageReclaim,
            status: TdxStatus::OPERAND_BUSY.raw(),
            on_call: Some(2),
            on_lp: None,
            repeat: 2,
        },
        FaultRule {
            leaf: Leaf::MngVpflushdone,
            status: TdxStatus::OPERAND_BUSY.raw(),
            on_call: Some(1),
            on_lp: None,
            repeat: 1,
        },
    ];
    let (mut s, mut seam) = server_with(&faults, 8);
    let td = populated(&mut s, &mut seam, VMM, 2);
    let r = s.td_teardown(&mut seam, VMM, td);
    let st = s.last_td_status();
    let r = r.unwrap_or_else(|e| panic!("{e:?} {st:?}"));
    assert_eq!(r.retries, 3 + 2 + 1);
    assert!(!r.keyid_retired);
    assert_eq!(s.tds().frames_in_tds(), 0);
    assert_eq!(s.tds().keyid_counts().free, 7);
}

#[test]
fn a_keyid_that_cannot_be_freed_is_retired_with_its_pages() {
    super::restart_tests::big_stack(a_keyid_that_cannot_be_freed_is_retired_with_its_pages_body);
}

fn a_keyid_that_cannot_be_freed_is_retired_with_its_pages_body() {
    let faults = [FaultRule {
        leaf: Leaf::MngKeyFreeid,
        status: TdxStatus::OPERAND_BUSY.raw(),
        on_call: Some(1),
        on_lp: None,
        repeat: BUSY_TRIES,
    }];
    let (mut s, mut seam) = server_with(&faults, 8);
    let td = populated(&mut s, &mut seam, VMM, 1);
    let usage = s.regions.as_ref().unwrap().frames.usage(VMM.index());
    let r = s.td_teardown(&mut seam, VMM, td).expect("teardown");
    assert!(r.keyid_retired);
    let k = s.tds().keyid_counts();
    assert_eq!((k.free, k.in_use, k.retired), (6, 0, 1));
    assert_eq!(s.tds().frames_in_tds(), 0);
    // The TD's frames left the caller for good (retired), the rest is still the caller's.
    let after = s.regions.as_ref().unwrap().frames.usage(VMM.index());
    assert_eq!(usage - after, (1 + 6 + 12 + 3 + 1) * 4096 + 2 * MIB);
    // The next TD gets another KeyID.
    let p = alloc(&mut s, VMM, FrameSize::K4, 1);
    let c = s.td_create(&mut seam, VMM, p[0]).unwrap();
    assert_ne!(c.hkid, 33);
    let _ = GIB;
}

struct Scrub;

impl super::Scrubber for Scrub {
    fn scrub(&mut self, _: tdx_planner::addr::PhysRange) -> Result<(), crate::seam::KernelError> {
        Ok(())
    }
}

/// Scrubs and checks the whole quarantine; every piece must be released (PT_NDA).
fn drain(s: &mut Server<'_>, seam: &mut EmuSeam) {
    while s.quarantined_bytes() > 0 {
        let r = s.scrub_step(seam, &mut Scrub, super::SCRUB_STEP_BYTES);
        assert_eq!(r.retired, 0, "a reclaimed page was not PT_NDA");
    }
}

#[test]
fn a_restarted_vmm_s_two_tds_are_torn_down_before_its_frames_are_reclaimed() {
    super::restart_tests::big_stack(
        a_restarted_vmm_s_two_tds_are_torn_down_before_its_frames_are_reclaimed_body,
    );
}

fn a_restarted_vmm_s_two_tds_are_torn_down_before_its_frames_are_reclaimed_body() {
    let (mut s, mut seam) = server_with(&[], 8);
    let free0 = free_bytes(&s);
    let k0 = s.tds().keyid_counts();
    let a = populated(&mut s, &mut seam, VMM, 3);
    let b = populated(&mut s, &mut seam, VMM, 2);
    assert_ne!(a, b);
    let other = alloc(&mut s, OTHER, FrameSize::K4, 1);
    let theirs = s.td_create(&mut seam, OTHER, other[0]).expect("other TD");
    assert_eq!(s.tds().keyid_counts().in_use, 3);
    let held = s.regions.as_ref().unwrap().frames.usage(VMM.index());

    // The VMM restarts: both its TDs are torn down, then everything it held is quarantined.
    let next = Owner(3 | 2 << 16);
    let got = s.client_restarted(&mut seam, next);
    assert_eq!(got.tds.torn_down, 2);
    assert_eq!((got.tds.failed, got.tds.keyids_retired), (0, 0));
    assert_eq!(
        got.bytes, held,
        "every frame of the dead VMM, none left behind"
    );
    let k = s.tds().keyid_counts();
    assert_eq!((k.free, k.in_use, k.retired), (k0.free - 1, 1, 0));
    assert_eq!(s.tds().frames_in_tds(), 1, "only the other client's TDR");
    assert!(
        s.tds().find(OTHER, theirs.td).is_ok(),
        "another client's TD stays"
    );
    assert!(seam.m.td_lifecycle(other[0]).is_some());
    // Nothing more to do on a second notification.
    assert_eq!(s.client_restarted(&mut seam, next).tds.torn_down, 0);

    // The quarantine drains with every page PT_NDA; the totals are exact.
    drain(&mut s, &mut seam);
    s.td_teardown(&mut seam, OTHER, theirs.td)
        .expect("teardown");
    s.free_frames(OTHER, FrameSize::K4, &other[0].to_le_bytes())
        .expect("free");
    drain(&mut s, &mut seam);
    assert_eq!(free_bytes(&s), free0);
    assert_eq!(s.tds().keyid_counts(), k0);
}

#[test]
fn a_dead_vmm_s_frames_stay_held_while_its_td_cannot_be_torn_down() {
    super::restart_tests::big_stack(
        a_dead_vmm_s_frames_stay_held_while_its_td_cannot_be_torn_down_body,
    );
}

fn a_dead_vmm_s_frames_stay_held_while_its_td_cannot_be_torn_down_body() {
    let faults = [FaultRule {
        leaf: Leaf::MngVpflushdone,
        status: TdxStatus::OPERAND_INVALID.raw(),
        on_call: Some(1),
        on_lp: None,
        repeat: 1,
    }];
    let (mut s, mut seam) = server_with(&faults, 8);
    let free0 = free_bytes(&s);
    populated(&mut s, &mut seam, VMM, 1);
    let held = s.regions.as_ref().unwrap().frames.usage(VMM.index());
    let next = Owner(3 | 2 << 16);
    let got = s.client_restarted(&mut seam, next);
    assert_eq!((got.tds.torn_down, got.tds.failed, got.bytes), (0, 1, 0));
    assert_eq!(
        s.quarantined_bytes(),
        0,
        "no page of a live TD in quarantine"
    );
    assert_eq!(s.regions.as_ref().unwrap().frames.usage(VMM.index()), held);
    // The next notification finishes the job.
    let got = s.client_restarted(&mut seam, next);
    assert_eq!((got.tds.torn_down, got.tds.failed, got.bytes), (1, 0, held));
    drain(&mut s, &mut seam);
    assert_eq!(free_bytes(&s), free0);
}

#[test]
fn a_td_booked_but_never_created_is_dropped_on_restore() {
    super::restart_tests::big_stack(a_td_booked_but_never_created_is_dropped_on_restore_body);
}

fn a_td_booked_but_never_created_is_dropped_on_restore_body() {
    let (mut s, mut seam) = server_with(&[], 8);
    let k0 = s.tds().keyid_counts();
    let p = alloc(&mut s, VMM, FrameSize::K4, 2);
    // A TD whose MNG.CREATE ran (left `Created`: its KEY.CONFIG cut short by a failure).
    let kept = s.td_create(&mut seam, VMM, p[0]).expect("create");
    s.lstate.tds.td_mut(0).unwrap().state = crate::td::TdState::Created;
    // The crash cut: td_create booked the second TD and committed, then tdx-host died before
    // MNG.CREATE reached the module.
    s.lstate.tds.create(VMM, p[1]).expect("booked");
    s.commit(None);
    // The restart: the table as the ledger restores it, then the restore-time check.
    s.lstate.tds = crate::td::TdTable::from_words(|i| s.lstate.tds.word(i)).expect("words");
    assert_eq!(s.tds().keyid_counts().in_use, 2);
    assert_eq!(s.drop_uncreated_tds(&mut seam), 1);
    assert_eq!(s.drop_uncreated_tds(&mut seam), 0);
    assert_eq!(s.page_state(p[1]), PageState::Allocated);
    assert_eq!(s.page_state(p[0]), PageState::TdRoot);
    // The TD the module holds is torn down as usual (its KEY.CONFIG is not needed for that).
    let r = s.td_teardown(&mut seam, VMM, kept.td).expect("teardown");
    assert_eq!(r.reclaimed, 1);
    assert_eq!(s.tds().keyid_counts(), k0);
    s.free_frames(
        VMM,
        FrameSize::K4,
        &[p[0].to_le_bytes(), p[1].to_le_bytes()].concat(),
    )
    .expect("both frames free again");
}

#[test]
fn the_service_counts_td_refusals_checks_leases_and_reports_totals() {
    // The service holds a request's lease and TDMR.INIT state by value: more than a debug
    // build's default test stack once the server's tables are copied around.
    super::restart_tests::big_stack(|| {
        use super::service::{Answer, Service, TdStaging};
        let (mut s, mut seam) = server_with(&[], 8);
        let p = alloc(&mut s, VMM, FrameSize::K4, 2);
        let mut staging = std::boxed::Box::new(TdStaging::new());
        let mut svc = Service::new(&mut s, |_| {}).with_td_staging(&mut staging);
        let refused0 = svc.stats(3).refused;
        let c = svc.td_create(&mut seam, VMM, p[0]).expect("create");
        let t = svc.td_totals(VMM);
        assert_eq!(
            (t.mine, t.keyids_in_use, t.keyids_free, t.frames_in_tds),
            (1, 1, 6, 1)
        );
        assert_eq!(svc.td_totals(OTHER).mine, 0);
        // TD_PARAMS of the wrong size: refused before any SEAMCALL, counted once.
        let short = svc.td_init(
            (&mut seam, VMM, c.td),
            (512, |_: &mut [u8]| Ok::<(), ()>(())),
        );
        assert_eq!(short, Err(Answer::Refused(TdxHostError::BadArgument)));
        // A lease that fails is the lease's failure, not a refusal.
        let gone = svc.td_init((&mut seam, VMM, c.td), (1024, |_: &mut [u8]| Err(7u8)));
        assert_eq!(gone, Err(Answer::Lease(7)));
        let source = svc.page_add(
            (&mut seam, VMM),
            (c.td, 0, p[1]),
            (4096, |_: &mut [u8]| Ok::<(), ()>(())),
        );
        assert_eq!(source, Err(Answer::Refused(TdxHostError::WrongState)));
        assert_eq!(
            svc.td(|s| s.td_add_tdcs(&mut seam, OTHER, c.td, p[1])),
            Err(TdxHostError::NoSuchTd)
        );
        assert_eq!(svc.stats(3).refused, refused0 + 3);
        let r = svc.td_teardown(&mut seam, VMM, c.td).expect("teardown");
        assert_eq!((r.reclaimed, r.keyid_retired), (1, 0));
        let t = svc.td_totals(VMM);
        assert_eq!(
            (t.mine, t.keyids_in_use, t.keyids_free, t.frames_in_tds),
            (0, 0, 7, 0)
        );
    });
}

#[test]
fn without_staging_leased_td_operations_answer_not_ready() {
    super::restart_tests::big_stack(without_staging_leased_td_operations_answer_not_ready_body);
}

fn without_staging_leased_td_operations_answer_not_ready_body() {
    use super::service::{Answer, Service};
    let (mut s, mut seam) = server_with(&[], 8);
    let mut svc = Service::new(&mut s, |_| {});
    let r = svc.td_init((&mut seam, VMM, 1), (1024, |_: &mut [u8]| Ok::<(), ()>(())));
    assert_eq!(r, Err(Answer::Refused(TdxHostError::NotReady)));
}
