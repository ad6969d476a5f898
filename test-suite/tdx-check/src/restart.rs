//! tdx-host killed in the middle of serving: the restart cases of `tdx-restart`.
//!
//! Pattern: each case arms one kill of tdx-host at a chosen point of the request it is about to
//! make (kernel IPC `ArmKill`, which the manifest's Fault right over tdx-host allows), makes the
//! request, and checks that exactly one restart happened and that the books afterwards are
//! those of the request done exactly once (or, for a hot-plug step, done or undone as a whole,
//! with tdx-host's region map and the kernel's table agreeing). Requests with an identity
//! (`alloc_request`, `free_request`) are retried by the IDL client after `ServerRestarted` and
//! must be answered from the ledger; the others report `ServerRestarted` and the case
//! reconciles. The last case damages the ledger and must leave tdx-host `Failed` with the
//! reason, serving nothing: it runs last because nothing can be served after it.
//!
//! Invariant: every case starts and ends with tdx-host's quarantine empty, so a kill armed at a
//! SEAMCALL or a system call lands in the request it is meant for and not in a scrub step.

use abi::kipc::KillPoint;
use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, region_state, FrameSize, MemClass, ModuleState,
    OwnedRecord, RequestIds, TdxHost, TdxHostError, ANY_NODE,
};
use test_api::check;
use test_api::score::Score;
use userlib::{hl, sys_refresh_task_id, sys_send, ulog, TaskIndex};
use zerocopy::IntoBytes;

use crate::{
    absorb_victim, hotplug_window_base, recv_from, region_record, settle, task_gen, tdx_free, MIB,
};

const PAGE: u64 = 4096;
/// TDH.PHYMEM.PAGE.RDMD, the check every scrubbed TDX page gets.
const LEAF_PAGE_RDMD: u16 = 24;
/// The byte of tdx-host's durable memory the last case inverts: in page 5 of its ledger (the
/// ownership records), which the page checksums cover.
const DAMAGED_BYTE: u64 = 5 * PAGE + 100;
/// The status a ledger refused for a bad page 5 reports (`LedgerError::BadPage`'s code).
const BAD_PAGE_5: u64 = 0xFF00_0000_0007_2005;

fn tdx_host_generation() -> u16 {
    sys_refresh_task_id(task_gen::slots::TDX_HOST)
        .generation()
        .0
}

/// Arms `point` over tdx-host; logs a refusal (the case then fails on the generation).
fn arm(point: KillPoint) -> bool {
    let r = hl::arm_kill(task_gen::slots::TDX_HOST, point);
    if let Err(e) = &r {
        ulog!("check: ArmKill {point:?} refused: {e:?}");
    }
    r.is_ok()
}

/// The 4 KiB frames tdx-host lists the caller as owning, or `None` if it will not say.
fn owned_frames(t: &TdxHost) -> Option<u64> {
    let mut out = [OwnedRecord::default(); 16];
    let mut first = 0u32;
    let mut frames = 0u64;
    loop {
        let r = match t.owned(first, out.as_mut_bytes()) {
            Ok(r) => r,
            Err(TdxHostError::BadArgument) if first == 0 => return Some(0),
            Err(_) => return None,
        };
        for rec in &out[..r.written as usize] {
            frames += u64::from(rec.count);
        }
        first += r.written;
        if r.written == 0 || first >= r.total {
            return Some(frames);
        }
    }
}

/// alloc and free with identities, killed before and after the server's answer.
fn request_cases(s: &mut Score, t: &TdxHost, ids: &RequestIds) {
    settle(t);
    let free0 = tdx_free(t);
    let owned0 = owned_frames(t);
    let g0 = tdx_host_generation();
    let id = ids.next();
    let mut a = [0u64; 8];
    let armed = arm(KillPoint::BeforeReply {
        operation: TdxHost::OP_ALLOC_REQUEST,
    });
    let r = t.alloc_request(
        id,
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        4,
        addrs_as_bytes(&mut a[..4]),
    );
    let g1 = tdx_host_generation();
    let mut again = [0u64; 4];
    let r2 = t.alloc_request(
        id,
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        4,
        addrs_as_bytes(&mut again),
    );
    check!(
        s,
        "restart_before_alloc_reply_allocates_once",
        armed
            && r == Ok(4)
            && g1 == g0.wrapping_add(1)
            && r2 == Ok(4)
            && again == a[..4]
            && tdx_free(t) == free0 - 4 * PAGE
            && owned_frames(t) == owned0.map(|n| n + 4),
        "{r:?} {r2:?} generation {g0} -> {g1}, free {free0:#x} -> {:#x}",
        tdx_free(t)
    );

    let armed = arm(KillPoint::AfterReply {
        operation: TdxHost::OP_ALLOC_REQUEST,
    });
    let r = t.alloc_request(
        ids.next(),
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        4,
        addrs_as_bytes(&mut a[4..]),
    );
    let g2 = tdx_host_generation();
    check!(
        s,
        "restart_after_alloc_reply_keeps_the_frames",
        armed
            && r == Ok(4)
            && g2 == g1.wrapping_add(1)
            && tdx_free(t) == free0 - 8 * PAGE
            && owned_frames(t) == owned0.map(|n| n + 8),
        "{r:?} generation {g1} -> {g2}"
    );

    let armed = arm(KillPoint::BeforeReply {
        operation: TdxHost::OP_FREE_REQUEST,
    });
    let r = t.free_request(ids.next(), FrameSize::K4, addrs_as_bytes_ref(&a));
    let g3 = tdx_host_generation();
    let twice = t.free_request(ids.next(), FrameSize::K4, addrs_as_bytes_ref(&a));
    let settled = settle(t);
    check!(
        s,
        "restart_before_free_reply_frees_once",
        armed
            && r == Ok(8)
            && g3 == g2.wrapping_add(1)
            && twice.is_err()
            && settled
            && tdx_free(t) == free0
            && owned_frames(t) == owned0,
        "{r:?} then {twice:?}, generation {g2} -> {g3}, free {free0:#x} -> {:#x}",
        tdx_free(t)
    );
}

/// A 64 MiB free's scrub (at least 32 steps of one tick), killed after its first PAGE.RDMD:
/// the next instance finishes it.
fn scrub_case(s: &mut Score, t: &TdxHost) {
    settle(t);
    let free0 = tdx_free(t);
    let mut a = [0u64; 32];
    let r = t.alloc_frames(
        ANY_NODE,
        FrameSize::M2,
        MemClass::Tdx,
        32,
        addrs_as_bytes(&mut a),
    );
    let g0 = tdx_host_generation();
    // Armed before the free: the free itself makes no SEAMCALL, so the kill falls in the scrub.
    let armed = arm(KillPoint::AfterSeamcall {
        leaf: LEAF_PAGE_RDMD,
    });
    let f = t.free_frames(FrameSize::M2, addrs_as_bytes_ref(&a));
    let settled = settle(t);
    let g1 = tdx_host_generation();
    let st = t.stats();
    check!(
        s,
        "restart_during_scrub_finishes_it",
        armed
            && r == Ok(32)
            && f == Ok(32)
            && settled
            && g1 == g0.wrapping_add(1)
            && st.quarantined_bytes == 0
            && st.retired_bytes == 0
            && tdx_free(t) == free0,
        "{r:?} {f:?} settled {settled} generation {g0} -> {g1} {st:?}"
    );
}

/// A client restarted while it holds frames; tdx-host killed in the middle of handling the
/// notification (its second system call after it, among the generation reads that precede
/// the reclaim). The next instance must reclaim what the old one never got to.
fn reclaim_case(s: &mut Score, t: &TdxHost) {
    let Some(index) = task_gen::TASK_NAMES.iter().position(|n| *n == "victim") else {
        s.fail(
            "restart_during_reclaim_reclaims_the_dead_client",
            format_args!("no task named victim"),
        );
        return;
    };
    let victim = TaskIndex(index as u16);
    settle(t);
    let free0 = tdx_free(t);
    let mut count = [0u8; 4];
    let sent = sys_send(sys_refresh_task_id(victim), 3, &[], &mut count, &[]);
    let held = u64::from(u32::from_le_bytes(count)) * PAGE;
    let holding = tdx_free(t);
    let g0 = tdx_host_generation();
    let armed = arm(KillPoint::AtSyscall { nth: 2 });
    let restarted = hl::restart_task(victim, true).is_ok();
    let back = recv_from(sys_refresh_task_id(victim), 2, 20_000);
    if let Some(b) = &back {
        absorb_victim(s, b);
    }
    let settled = settle(t);
    let g1 = tdx_host_generation();
    check!(
        s,
        "restart_during_reclaim_reclaims_the_dead_client",
        armed
            && sent == (0, 4)
            && held == 8 * PAGE
            && holding == free0 - held
            && restarted
            && back.is_some()
            && settled
            && g1 == g0.wrapping_add(1)
            && tdx_free(t) == free0,
        "send {sent:?} held {held:#x} restarted {restarted} back {} generation {g0} -> {g1}, free {free0:#x} -> {holding:#x} -> {:#x}",
        back.is_some(),
        tdx_free(t)
    );
}

/// Whether the window region is online by tdx-host's map, and whether that agrees with the
/// kernel's table: onlining it again is refused as AlreadyOnline exactly when it is online.
/// Leaves it as found. `None`: they disagree.
fn window_online(t: &TdxHost, base: u64, size: u64) -> Option<bool> {
    let listed = region_record(t, base).is_some_and(|r| r.state == region_state::ONLINE);
    let again = t.online_region(base, size, 0);
    match (listed, again) {
        (true, Err(TdxHostError::AlreadyOnline)) => Some(true),
        (false, Ok(_)) => t.offline_region(base, size).is_ok().then_some(false),
        (l, r) => {
            ulog!("check: window listed online {l}, online again {r:?}");
            None
        }
    }
}

/// online and offline of a hot-plug window range, killed between the ledger's intent and
/// the kernel's table (online) and after the commit, before the answer (offline).
fn hotplug_cases(s: &mut Score, t: &TdxHost) {
    let (base, size) = (hotplug_window_base(), 16 * MIB);
    let g0 = tdx_host_generation();
    let armed = arm(KillPoint::AtSyscall { nth: 1 });
    let r = t.online_region(base, size, 0);
    let g1 = tdx_host_generation();
    let state = window_online(t, base, size);
    // Whatever the kill left, onlining it now works and counts it once.
    let now = match state {
        Some(true) => Ok(()),
        _ => t.online_region(base, size, 0).map(|_| ()),
    };
    let info = t.node_info(0).unwrap_or_default();
    check!(
        s,
        "restart_during_online_is_done_or_undone_whole",
        armed
            && r == Err(TdxHostError::ServerRestarted)
            && g1 == g0.wrapping_add(1)
            && state.is_some()
            && now.is_ok()
            && info.non_tdx_bytes_total == size,
        "{r:?} generation {g0} -> {g1} online after restart {state:?}, then {now:?} {info:?}"
    );

    let armed = arm(KillPoint::BeforeReply {
        operation: TdxHost::OP_OFFLINE_REGION,
    });
    let r = t.offline_region(base, size);
    let g2 = tdx_host_generation();
    let state = window_online(t, base, size);
    let info = t.node_info(0).unwrap_or_default();
    check!(
        s,
        "restart_before_offline_reply_leaves_it_offline",
        armed
            && r == Err(TdxHostError::ServerRestarted)
            && g2 == g1.wrapping_add(1)
            && state == Some(false)
            && info.non_tdx_bytes_total == 0,
        "{r:?} generation {g1} -> {g2} online after restart {state:?} {info:?}"
    );
}

/// One byte of the ledger inverted, then tdx-host killed: the next instance must refuse the
/// ledger, report Failed with the reason and serve nothing (never a fresh ledger over frames
/// that clients hold).
fn corrupted_ledger_case(s: &mut Score, t: &TdxHost) {
    let g0 = tdx_host_generation();
    let done = hl::arm_kill(
        task_gen::slots::TDX_HOST,
        KillPoint::CorruptDurable {
            offset: DAMAGED_BYTE,
        },
    );
    let st = t.status();
    let g1 = tdx_host_generation();
    let mut a = [0u64; 1];
    let alloc = t.alloc_frames(
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        1,
        addrs_as_bytes(&mut a),
    );
    check!(
        s,
        "corrupted_ledger_gives_failed_with_the_reason",
        done.is_ok()
            && g1 == g0.wrapping_add(1)
            && st.state() == Some(ModuleState::Failed)
            && st.status == BAD_PAGE_5
            && alloc == Err(TdxHostError::Failed),
        "{done:?} generation {g0} -> {g1}, state {:?} status {:#x} (want {BAD_PAGE_5:#x}), alloc {alloc:?}",
        st.state(),
        st.status
    );
}

/// Every restart case, the destructive one last.
pub fn restart_checks(s: &mut Score, t: &TdxHost) {
    let ids = RequestIds::new();
    request_cases(s, t, &ids);
    scrub_case(s, t);
    reclaim_case(s, t);
    hotplug_cases(s, t);
    corrupted_ledger_case(s, t);
}
