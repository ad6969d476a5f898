//! tdx-host restarts at the server level: a second server over the same durable words carries
//! on with the same frames and owners, answers retried requests with their committed result,
//! undoes a hot-plug step the kernel took but the ledger did not, reclaims clients that
//! restarted meanwhile, and refuses a damaged ledger with `Failed` and the reason.

extern crate std;

use std::vec;
use std::vec::Vec;

use tdx_host_api::{FrameSize, MemClass, ModuleState, TdxHostError, ANY_NODE};
use tdx_planner::addr::{PhysRange, GIB};

use super::{Attached, ClientPolicy, Server};
use crate::frames::{bitmap_words, NodeMask, Owner};
use crate::init::tests::EmuSeam;
use crate::ledger::{Intent, Layout, LedgerError, Section, PAGE_WORDS};
use crate::regions::tests::{ready_run, FakeKernel, WINDOW};
use crate::regions::{HotplugPolicy, PlatformMemory, Regions};

const MIB: u64 = 1 << 20;
pub(super) const VMM: Owner = Owner(3 | 1 << 16);
pub(super) const HOTPLUG: Owner = Owner(5);

fn policies() -> [ClientPolicy; 2] {
    [
        ClientPolicy {
            task_index: 3,
            quota_bytes: 256 * MIB,
            nodes: NodeMask::ALL,
            tdx: true,
            non_tdx: true,
            hotplug: false,
            keyids: 2,
        },
        ClientPolicy {
            task_index: 5,
            quota_bytes: 0,
            nodes: NodeMask::ALL,
            tdx: false,
            non_tdx: false,
            hotplug: true,
            keyids: 2,
        },
    ]
}

/// Durable words and bitmap storage that outlive server instances.
pub(super) struct Machine {
    words: Vec<u64>,
    bits: Vec<u64>,
}

impl Machine {
    pub(super) fn new() -> Self {
        let bits = bitmap_words(24 * GIB, 128);
        Machine {
            words: vec![0; Layout::new(bits).total_words()],
            bits: vec![0; bits],
        }
    }

    /// A tdx-host instance: bring-up (same plan each time), then the ledger.
    pub(super) fn start(&mut self) -> (Server<'_>, Attached) {
        self.start_with(&mut FakeKernel::default())
    }

    fn start_with(&mut self, kernel: &mut FakeKernel) -> (Server<'_>, Attached) {
        let (s, a, _) = self.start_seam(kernel);
        (s, a)
    }

    /// [`Machine::start_with`], with the instance's module (a fresh one: what the module held
    /// for the last instance is not modelled).
    pub(super) fn start_seam(
        &mut self,
        kernel: &mut FakeKernel,
    ) -> (Server<'_>, Attached, EmuSeam) {
        let run = ready_run();
        let cmrs: Vec<PhysRange> = run.bringup.info().cmrs.to_vec();
        let n = run.storage.plan.tdmrs.len() as u16;
        let pamt = run.storage.plan.pamt_bytes.0;
        let storage = run.storage;
        let mut s = Server::new(run.bringup, None, &policies(), pamt, n);
        let memory = PlatformMemory {
            hotplug_window: Some(WINDOW),
            cmrs: &cmrs,
        };
        let build = |f| Regions::build(f, &storage, memory, HotplugPolicy::PerNode, 2);
        let a = s.attach_ledger((&mut self.words, &mut self.bits), build, kernel);
        (s, a, run.seam)
    }
}

/// Runs `f` on a thread with room for several servers' tables by value (debug builds copy
/// them on the stack while building and restoring).
pub(super) fn big_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new().stack_size(64 << 20).spawn(f);
    t.expect("thread").join().expect("test body");
}

fn addrs(buf: &[u8], n: u32) -> Vec<u64> {
    buf.chunks_exact(8)
        .take(n as usize)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn retried_requests_get_the_committed_answer_across_restarts() {
    big_stack(retried_requests_get_the_committed_answer_across_restarts_body);
}

fn retried_requests_get_the_committed_answer_across_restarts_body() {
    let mut m = Machine::new();
    let mut buf = [0u8; 4096];
    let (first, free_before) = {
        let (mut s, a) = m.start();
        assert_eq!(a, Attached::Fresh);
        let free_before = s.status().tdx_bytes_free;
        let what = (ANY_NODE, FrameSize::K4, MemClass::Tdx);
        let n = s
            .alloc_request((VMM, 1), what, 12, &mut buf)
            .expect("alloc");
        s.commit(None);
        let first = addrs(&buf, n);
        // The same identity again, before any restart: the same frames, nothing new.
        let again = s
            .alloc_request((VMM, 1), what, 12, &mut buf)
            .expect("retry");
        assert_eq!(addrs(&buf, again), first);
        assert_eq!(s.regions.as_ref().unwrap().frames.usage(3), 12 * 4096);
        assert_eq!(
            s.alloc_request((VMM, 0), what, 1, &mut buf),
            Err(TdxHostError::BadArgument)
        );
        (first, free_before)
    };
    {
        let (mut s, a) = m.start();
        assert!(matches!(a, Attached::Restored { .. }), "{a:?}");
        let what = (ANY_NODE, FrameSize::K4, MemClass::Tdx);
        let n = s
            .alloc_request((VMM, 1), what, 12, &mut buf)
            .expect("retry");
        assert_eq!(
            addrs(&buf, n),
            first,
            "the committed answer, not a second allocation"
        );
        let mut out = [0u8; 4096];
        let o = s.owned(VMM, 0, &mut out).expect("owned");
        assert_eq!(o.total, 1, "one run of 12 frames");
        assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), first[0]);
        let list: Vec<u8> = first.iter().flat_map(|a| a.to_le_bytes()).collect();
        assert_eq!(s.free_request((VMM, 2), FrameSize::K4, &list), Ok(12));
        s.commit(None);
    }
    let (mut s, _) = m.start();
    let list: Vec<u8> = first.iter().flat_map(|a| a.to_le_bytes()).collect();
    assert_eq!(
        s.free_request((VMM, 2), FrameSize::K4, &list),
        Ok(12),
        "a retried free is answered, not refused as a double free"
    );
    assert_eq!(
        s.free_frames(VMM, FrameSize::K4, &list),
        Err(TdxHostError::DoubleFree)
    );
    assert_eq!(s.regions.as_ref().unwrap().frames.usage(3), 0);
    assert_eq!(s.quarantined_bytes(), 12 * 4096);
    assert_eq!(s.status().tdx_bytes_free, free_before - 12 * 4096);
}

#[test]
fn owners_survive_restarts_and_restarted_clients_are_reclaimed() {
    big_stack(owners_survive_restarts_and_restarted_clients_are_reclaimed_body);
}

fn owners_survive_restarts_and_restarted_clients_are_reclaimed_body() {
    let mut m = Machine::new();
    let mut buf = [0u8; 64];
    {
        let (mut s, _) = m.start();
        let what = (ANY_NODE, FrameSize::M2, MemClass::Tdx);
        s.alloc_request((VMM, 7), what, 4, &mut buf).expect("alloc");
        s.commit(None);
    }
    for _ in 0..3 {
        let (s, _) = m.start();
        let r = s.regions.as_ref().unwrap();
        assert_eq!(r.frames.owned(VMM).map(|r| r.count).sum::<u32>(), 4);
    }
    let (mut s, _, mut seam) = m.start_seam(&mut FakeKernel::default());
    // The client restarted while tdx-host was down: its frames go to quarantine.
    let got = s.client_restarted(&mut seam, Owner(3 | 2 << 16));
    assert_eq!(got.bytes, 8 * MIB);
    s.commit(None);
    drop(s);
    let (s, _) = m.start();
    assert_eq!(s.regions.as_ref().unwrap().frames.usage(3), 0);
    assert_eq!(s.quarantined_bytes(), 8 * MIB);
}

#[test]
fn restart_in_the_middle_of_online_or_offline_undoes_the_kernel_half() {
    big_stack(restart_in_the_middle_of_online_or_offline_undoes_the_kernel_half_body);
}

fn restart_in_the_middle_of_online_or_offline_undoes_the_kernel_half_body() {
    let mut m = Machine::new();
    let mut k = FakeKernel::default();
    let range = PhysRange::literal(20 * GIB, 256 * MIB);
    {
        let (mut s, _) = m.start_with(&mut k);
        // The kernel accepts, the table changes in memory, and tdx-host dies before its commit.
        s.online_region(HOTPLUG, range.base().0, range.size().0, 1, &mut k)
            .expect("online");
    }
    assert_eq!(k.online, vec![range], "the kernel took it");
    {
        let (mut s, a) = m.start_with(&mut k);
        let Attached::Restored { undone, .. } = a else {
            panic!("{a:?}")
        };
        assert_eq!(undone, Intent::Online(range));
        assert!(k.online.is_empty(), "undone at the kernel");
        let pools = s.regions.as_ref().unwrap().frames.pools();
        assert!(
            pools.iter().all(|p| p.range != range),
            "never in the ledger"
        );
        // The client's retry works.
        s.online_region(HOTPLUG, range.base().0, range.size().0, 1, &mut k)
            .expect("online again");
        s.commit(None);
        // Now an offline that dies before its commit.
        s.offline_region(HOTPLUG, range.base().0, range.size().0, &mut k)
            .expect("offline");
    }
    assert!(k.online.is_empty(), "the kernel let it go");
    let (s, a) = m.start_with(&mut k);
    let Attached::Restored { undone, .. } = a else {
        panic!("{a:?}")
    };
    assert_eq!(undone, Intent::Offline(range));
    assert_eq!(k.online, vec![range], "back online at the kernel");
    let pools = s.regions.as_ref().unwrap().frames.pools();
    assert!(pools.iter().any(|p| p.range == range && p.online));
}

#[test]
fn a_damaged_ledger_is_failed_with_the_reason() {
    big_stack(a_damaged_ledger_is_failed_with_the_reason_body);
}

fn a_damaged_ledger_is_failed_with_the_reason_body() {
    let mut m = Machine::new();
    {
        let (mut s, _) = m.start();
        let mut buf = [0u8; 8];
        let what = (ANY_NODE, FrameSize::K4, MemClass::Tdx);
        s.alloc_request((VMM, 1), what, 1, &mut buf).expect("alloc");
        s.commit(None);
    }
    let layout = Layout::new(m.bits.len());
    let w = layout.records + 1;
    m.words[w] ^= 1 << 12;
    let (mut s, a) = m.start();
    let page = w / PAGE_WORDS;
    let e = LedgerError::BadPage {
        page,
        section: layout.section(page * PAGE_WORDS),
    };
    assert!(matches!(layout.section(w), Section::Records));
    assert_eq!(a, Attached::Refused(e));
    let st = s.status();
    assert_eq!(st.state(), Some(ModuleState::Failed));
    assert_eq!(st.status, e.code());
    let mut buf = [0u8; 8];
    assert_eq!(
        s.alloc_frames(VMM, 0, FrameSize::K4, MemClass::Tdx, 1, &mut buf),
        Err(TdxHostError::Failed)
    );
}

#[test]
fn a_td_booked_before_a_crash_cut_is_dropped_at_the_next_start() {
    big_stack(a_td_booked_before_a_crash_cut_is_dropped_at_the_next_start_body);
}

fn a_td_booked_before_a_crash_cut_is_dropped_at_the_next_start_body() {
    let mut m = Machine::new();
    let mut buf = [0u8; 8];
    let tdr = {
        let (mut s, _) = m.start();
        s.set_td_cpus(super::td::TdCpus::default());
        let what = (ANY_NODE, FrameSize::K4, MemClass::Tdx);
        s.alloc_request((VMM, 1), what, 1, &mut buf).expect("alloc");
        let tdr = u64::from_le_bytes(buf);
        // td_create's booking, committed; the instance dies before MNG.CREATE.
        s.lstate.tds.create(VMM, tdr).expect("booked");
        s.commit(None);
        tdr
    };
    let (mut s, a, mut seam) = m.start_seam(&mut FakeKernel::default());
    assert!(matches!(a, Attached::Restored { .. }), "{a:?}");
    assert_eq!(s.tds().keyid_counts().in_use, 1, "the booking survived");
    assert_eq!(s.drop_uncreated_tds(&mut seam), 1);
    drop(s);
    // Dropped for good (committed), the TDR the client's plain frame again.
    let (mut s, _) = m.start();
    assert_eq!(s.tds().keyid_counts().in_use, 0);
    assert_eq!(s.page_state(tdr), crate::td::PageState::Allocated);
    assert_eq!(s.free_frames(VMM, FrameSize::K4, &tdr.to_le_bytes()), Ok(1));
}
