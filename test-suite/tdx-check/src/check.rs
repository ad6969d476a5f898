//! tdx-check: checks tdx-host through its IDL, against what the image's manifest says it should
//! be (`[tasks.check.config]`, see build.rs): the bring-up state (Ready, Failed at a step with a
//! status, Unavailable), retries where transient faults were injected, allocation and free on
//! every node and size until exhaustion and back (exact totals), every bad input, quotas, rights,
//! reclaim of a killed client, the hotplug policy, (`restart.rs`) tdx-host killed in the
//! middle of its work, and (`early.rs`) TDX frames served while TDMR.INIT still runs.
//!
//! Prints one `test NAME ... ok|FAILED: why` line per check and reports the verdict to jefe.

#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use abi::platform::RecordFlags;
use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, region_state, FrameSize, MemClass, ModuleState,
    RegionRecord, TdxHost, TdxHostError, ANY_NODE,
};
use userlib::{
    hl, sys_get_timer, sys_recv_open, sys_refresh_task_id, sys_reply, sys_send, sys_set_timer,
    ulog, TaskId,
};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
mod expect {
    include!(concat!(env!("OUT_DIR"), "/expect.rs"));
}

const MIB: u64 = 1 << 20;
/// Room for every 4 KiB frame of one node (256 MiB).
const MAX_HELD: usize = 65536;
static mut HELD: [u64; MAX_HELD] = [0; MAX_HELD];

use test_api::check;
use test_api::score::Score;

mod early;
mod parinit;
mod restart;
mod single;

fn tdx_free(t: &TdxHost) -> u64 {
    t.status().tdx_bytes_free
}

/// Allocates `size` frames on `node` until refused even for one frame; returns (frames, the
/// refusal). Requests are all or nothing, so a refused batch is retried at half the size.
fn exhaust(
    t: &TdxHost,
    node: u16,
    size: FrameSize,
    held: &mut [u64],
) -> (usize, Option<TdxHostError>) {
    let mut n = 0;
    let mut want = 512;
    loop {
        want = want.min(held.len() - n);
        if want == 0 {
            return (n, None);
        }
        match t.alloc_frames(
            node,
            size,
            MemClass::Tdx,
            want as u32,
            addrs_as_bytes(&mut held[n..n + want]),
        ) {
            Ok(k) => n += k as usize,
            Err(TdxHostError::NoMemory | TdxHostError::QuotaExceeded) if want > 1 => want /= 2,
            Err(e) => return (n, Some(e)),
        }
    }
}

/// Frees `held`, then waits until tdx-host has scrubbed and checked them (see [`settle`]).
fn free_all(t: &TdxHost, size: FrameSize, held: &[u64]) -> bool {
    held.chunks(512)
        .all(|c| t.free_frames(size, addrs_as_bytes_ref(c)) == Ok(c.len() as u32))
        && settle(t)
}

/// Waits (1 ms sleeps, at most 20 s) until nothing is left in tdx-host's quarantine. Freed
/// frames are scrubbed and checked between requests, at most 2 MiB per timer tick, so free
/// totals come back a little after the free, not with it.
fn settle(t: &TdxHost) -> bool {
    for _ in 0..20_000 {
        if t.stats().quarantined_bytes == 0 {
            return true;
        }
        hl::sleep_for(1, 1);
    }
    false
}

fn state_checks(s: &mut Score, t: &TdxHost) {
    // Idempotent: the client retries across a restart, so it always
    // gets an answer; it waits while TDMR.INIT still runs.
    let st = t.status_settled(100_000, || hl::sleep_for(1, 1));
    let state = st.state();
    match expect::STATE {
        "ready" => {
            check!(
                s,
                "tdx_reaches_ready",
                state == Some(ModuleState::Ready),
                "{state:?} step {} status {:#x}",
                st.step,
                st.status
            );
            check!(
                s,
                "tdx_ready_reports_tdmrs_and_pamt",
                st.num_tdmrs > 0
                    && st.pamt_bytes > 0
                    && st.tdmr_bytes_initialized == st.tdmr_bytes_total,
                "{} TDMRs, PAMT {}, {}/{}",
                st.num_tdmrs,
                st.pamt_bytes,
                st.tdmr_bytes_initialized,
                st.tdmr_bytes_total
            );
            check!(
                s,
                "tdx_ready_reports_keyids",
                st.nr_tdx_keyids >= 2 && u32::from(st.global_keyid) == st.first_tdx_keyid,
                "{st:?}"
            );
            let stats = t.stats();
            for &step in expect::RETRIES_AT {
                let n = stats.init_retries[usize::from(step)];
                check!(
                    s,
                    "tdx_transient_fault_retried_at_each_step",
                    n >= 1,
                    "step {step}: {n} retries"
                );
            }
            let mut nodes = 0;
            while t.node_info(nodes).is_ok() {
                nodes += 1;
            }
            check!(
                s,
                "tdx_node_count_matches_qemu",
                nodes == expect::NODES,
                "{nodes} nodes"
            );
        }
        "failed" => {
            check!(
                s,
                "tdx_failed_state_reported",
                state == Some(ModuleState::Failed),
                "{state:?}"
            );
            check!(
                s,
                "tdx_failed_at_the_injected_step",
                st.step == expect::FAIL_STEP,
                "step {}, expected {}",
                st.step,
                expect::FAIL_STEP
            );
            check!(
                s,
                "tdx_failed_with_the_injected_status",
                st.status == expect::FAIL_STATUS,
                "{:#x}, expected {:#x}",
                st.status,
                expect::FAIL_STATUS
            );
        }
        _ => {
            check!(
                s,
                "tdx_unavailable_state_reported",
                state == Some(ModuleState::Unavailable),
                "{state:?}"
            );
            check!(
                s,
                "tdx_unavailable_reason_is_the_expected_one",
                st.reason == expect::REASON,
                "reason {}",
                st.reason
            );
        }
    }
    if expect::STATE != "ready" {
        let want = if expect::STATE == "failed" {
            TdxHostError::Failed
        } else {
            TdxHostError::Unavailable
        };
        let mut a = [0u64; 4];
        let mut ok = true;
        for node in [0, 1, ANY_NODE] {
            for size in [FrameSize::K4, FrameSize::M2] {
                let r = t.alloc_frames(node, size, MemClass::Tdx, 1, addrs_as_bytes(&mut a));
                let one = t.alloc_frame(node, size, MemClass::Tdx);
                if r != Err(want) || one != Err(want) {
                    ulog!("alloc node {node} {size:?}: {r:?}, one frame {one:?}");
                    ok = false;
                }
            }
        }
        check!(
            s,
            "tdx_every_allocation_fails_cleanly_when_not_ready",
            ok,
            "see above"
        );
        let r1 = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&[0x100000]));
        let r2 = t.node_info(0);
        let mut buf = [0u8; 64];
        let r3 = t.region_map(0, &mut buf);
        let r4 = t.online_region(0x1_0000_0000, 0x1000, 0);
        let r5 = t.free_frame(FrameSize::K4, 0x100000);
        let ok = r1 == Err(want)
            && r2 == Err(want)
            && r3 == Err(want)
            && r4 == Err(want)
            && r5 == Err(want);
        check!(
            s,
            "tdx_every_operation_refused_when_not_ready",
            ok,
            "{r1:?} {r2:?} {r3:?} {r4:?} {r5:?}"
        );
        let again = t.status().state;
        check!(
            s,
            "tdx_server_keeps_serving_after_failure",
            again == st.state,
            "{again:?}"
        );
    }
}

fn roundtrip_checks(s: &mut Score, t: &TdxHost) {
    let before = tdx_free(t);
    let mut ok = true;
    for node in 0..expect::NODES {
        let info0 = t.node_info(node).unwrap_or_default();
        for size in [FrameSize::K4, FrameSize::M2] {
            let mut a = [0u64; 8];
            let r = t.alloc_frames(node, size, MemClass::Tdx, 8, addrs_as_bytes(&mut a));
            let aligned = a.iter().all(|x| x % size.bytes() == 0);
            let mid = t.node_info(node).unwrap_or_default();
            let fr = t.free_frames(size, addrs_as_bytes_ref(&a));
            let settled = settle(t);
            let after = t.node_info(node).unwrap_or_default();
            let good = r == Ok(8)
                && aligned
                && fr == Ok(8)
                && settled
                && mid.tdx_bytes_free + 8 * size.bytes() == info0.tdx_bytes_free
                && after.tdx_bytes_free == info0.tdx_bytes_free;
            if !good {
                ulog!("node {node} {size:?}: alloc {r:?} aligned {aligned} free {fr:?}, free bytes {} -> {} -> {}", info0.tdx_bytes_free, mid.tdx_bytes_free, after.tdx_bytes_free);
            }
            ok &= good;
        }
    }
    check!(
        s,
        "tdx_alloc_and_free_on_each_node_and_size",
        ok,
        "see above"
    );
    let mut a = [0u64; 2];
    let r = t.alloc_frames(
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        2,
        addrs_as_bytes(&mut a),
    );
    let f = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&a));
    check!(
        s,
        "tdx_alloc_on_any_node",
        r == Ok(2) && f == Ok(2) && settle(t),
        "{r:?} {f:?}"
    );
    check!(
        s,
        "tdx_totals_return_exactly",
        tdx_free(t) == before,
        "{} -> {}",
        before,
        tdx_free(t)
    );
}

fn exhaustion_checks(s: &mut Score, t: &TdxHost, held: &mut [u64]) {
    let before = tdx_free(t);
    let stats0 = t.stats();
    for node in 0..expect::NODES {
        for size in [FrameSize::M2, FrameSize::K4] {
            let free0 = t.node_info(node).map(|i| i.tdx_bytes_free).unwrap_or(0);
            let (n, why) = exhaust(t, node, size, held);
            let left = t.node_info(node).map(|i| i.tdx_bytes_free).unwrap_or(0);
            let exhausted = why == Some(TdxHostError::NoMemory)
                && n as u64 * size.bytes() + left == free0
                && (size == FrameSize::M2 || left == 0);
            check!(
                s,
                "tdx_allocate_until_exhaustion",
                exhausted,
                "node {node} {size:?}: {n} frames, then {why:?}; {left} of {free0} bytes left"
            );
            let back = free_all(t, size, &held[..n]);
            let after = t.node_info(node).map(|i| i.tdx_bytes_free).unwrap_or(0);
            check!(
                s,
                "tdx_free_after_exhaustion_returns_exact_totals",
                back && after == free0,
                "node {node} {size:?}: {after} of {free0}"
            );
        }
    }
    let stats = t.stats();
    check!(
        s,
        "tdx_freed_frames_are_scrubbed_and_checked",
        stats.scrubbed_bytes > stats0.scrubbed_bytes
            && stats.rdmd_calls > stats0.rdmd_calls
            && stats.quarantined_bytes == 0,
        "{stats:?}"
    );
    check!(
        s,
        "tdx_no_leak_after_exhaustion",
        tdx_free(t) == before,
        "{} -> {}",
        before,
        tdx_free(t)
    );
}

fn bad_input_checks(s: &mut Score, t: &TdxHost) {
    let before = tdx_free(t);
    let mut a = [0u64; 4];
    let r = t.alloc_frames(0, FrameSize::K4, MemClass::Tdx, 0, addrs_as_bytes(&mut a));
    check!(
        s,
        "tdx_alloc_count_zero_refused",
        r == Err(TdxHostError::BadArgument),
        "{r:?}"
    );
    let r = t.alloc_frames(
        0,
        FrameSize::K4,
        MemClass::Tdx,
        4,
        addrs_as_bytes(&mut a[..2]),
    );
    check!(
        s,
        "tdx_alloc_short_lease_refused",
        r == Err(TdxHostError::BadArgument),
        "{r:?}"
    );
    let r = t.alloc_frames(
        expect::NODES + 3,
        FrameSize::K4,
        MemClass::Tdx,
        1,
        addrs_as_bytes(&mut a),
    );
    check!(
        s,
        "tdx_alloc_bad_node_refused",
        r == Err(TdxHostError::NoSuchNode),
        "{r:?}"
    );
    let r = t.alloc_frames(0, FrameSize::G1, MemClass::Tdx, 1, addrs_as_bytes(&mut a));
    // No node holds a free, initialized 1 GiB block (or the quota is below 1 GiB): refused.
    let quota = t.stats().caller_quota_bytes;
    let want = if quota < FrameSize::G1.bytes() {
        TdxHostError::QuotaExceeded
    } else {
        TdxHostError::NoMemory
    };
    check!(
        s,
        "tdx_alloc_size_without_memory_refused",
        r == Err(want),
        "{r:?}"
    );
    let r = t.alloc_frames(
        0,
        FrameSize::M2,
        MemClass::Tdx,
        100_000,
        addrs_as_bytes(&mut a),
    );
    check!(
        s,
        "tdx_alloc_huge_count_refused",
        r == Err(TdxHostError::BadArgument),
        "{r:?}"
    );
    // Frees.
    let mut f = [0u64; 2];
    let got = t.alloc_frames(
        0,
        FrameSize::K4,
        MemClass::Tdx,
        1,
        addrs_as_bytes(&mut f[..1]),
    );
    let got2 = t.alloc_frames(
        0,
        FrameSize::M2,
        MemClass::Tdx,
        1,
        addrs_as_bytes(&mut f[1..]),
    );
    check!(
        s,
        "tdx_alloc_for_free_checks",
        got == Ok(1) && got2 == Ok(1),
        "{got:?} {got2:?}"
    );
    let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&[f[0] + 8]));
    check!(
        s,
        "tdx_free_misaligned_refused",
        r == Err(TdxHostError::BadAlignment),
        "{r:?}"
    );
    let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&[0x7_0000_0000]));
    check!(
        s,
        "tdx_free_unknown_frame_refused",
        r == Err(TdxHostError::UnknownFrame),
        "{r:?}"
    );
    let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&[f[1]]));
    check!(
        s,
        "tdx_free_wrong_size_refused",
        r == Err(TdxHostError::WrongSize),
        "{r:?}"
    );
    let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&[f[0], f[0]]));
    check!(
        s,
        "tdx_free_repeated_address_refused",
        r == Err(TdxHostError::DoubleFree),
        "{r:?}"
    );
    let r = t.free_frames(FrameSize::K4, &[1, 2, 3]);
    check!(
        s,
        "tdx_free_ragged_lease_refused",
        r == Err(TdxHostError::BadArgument),
        "{r:?}"
    );
    let ok1 = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&f[..1]));
    let ok2 = t.free_frames(FrameSize::M2, addrs_as_bytes_ref(&f[1..]));
    let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&f[..1]));
    check!(
        s,
        "tdx_double_free_refused",
        ok1 == Ok(1) && ok2 == Ok(1) && r == Err(TdxHostError::DoubleFree),
        "{ok1:?} {ok2:?} {r:?}"
    );
    let r = t.node_info(expect::NODES);
    check!(
        s,
        "tdx_node_info_bad_node_refused",
        r == Err(TdxHostError::NoSuchNode),
        "{r:?}"
    );
    let mut buf = [0u8; 64];
    let r = t.region_map(10_000, &mut buf);
    check!(
        s,
        "tdx_region_map_past_end_refused",
        r == Err(TdxHostError::BadArgument),
        "{r:?}"
    );
    let r1 = t.online_region(0x1_0000_0123, 0x1000, 0);
    let r2 = t.online_region(0x1_0000_0000, 0, 0);
    let r3 = t.online_region(0x1_0000_0000, 0x1000, 99);
    let r4 = t.offline_region(0x6_0000_0000, 0x1000);
    check!(
        s,
        "tdx_online_offline_bad_input_refused",
        r1 == Err(TdxHostError::BadAlignment)
            && r2 == Err(TdxHostError::BadArgument)
            && r3 == Err(TdxHostError::NoSuchNode)
            && r4 == Err(TdxHostError::UnknownRegion),
        "{r1:?} {r2:?} {r3:?} {r4:?}"
    );
    settle(t);
    let st = t.status();
    check!(
        s,
        "tdx_server_keeps_serving_after_bad_input",
        st.state() == Some(ModuleState::Ready) && tdx_free(t) == before,
        "{} -> {}",
        before,
        tdx_free(t)
    );
}

fn quota_checks(s: &mut Score, t: &TdxHost, held: &mut [u64]) {
    let st = t.stats();
    let quota = st.caller_quota_bytes;
    let n = (quota / FrameSize::M2.bytes()) as usize;
    let mut got = 0;
    let mut ok = true;
    while got < n {
        let want = 16.min(n - got);
        match t.alloc_frames(
            ANY_NODE,
            FrameSize::M2,
            MemClass::Tdx,
            want as u32,
            addrs_as_bytes(&mut held[got..got + want]),
        ) {
            Ok(k) => got += k as usize,
            Err(e) => {
                ulog!("quota fill: {e:?} after {got} frames of {n}");
                ok = false;
                break;
            }
        }
    }
    let usage = t.stats().caller_usage_bytes;
    let r = t.alloc_frames(
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        1,
        addrs_as_bytes(&mut held[got..got + 1]),
    );
    let one = t.alloc_frame(ANY_NODE, FrameSize::K4, MemClass::Tdx);
    let still = t.stats().caller_usage_bytes;
    check!(
        s,
        "tdx_alloc_over_quota_refused",
        ok && usage == quota && r == Err(TdxHostError::QuotaExceeded),
        "usage {usage} of {quota}: {r:?}"
    );
    check!(
        s,
        "tdx_alloc_frame_over_quota_refused",
        ok && still == quota && one == Err(TdxHostError::QuotaExceeded),
        "usage {still} of {quota}: {one:?}"
    );
    let back = free_all(t, FrameSize::M2, &held[..got]);
    let usage = t.stats().caller_usage_bytes;
    check!(
        s,
        "tdx_quota_usage_returns_to_zero",
        back && usage == 0,
        "{usage}"
    );
}

/// Receives one message from `from` with operation `op`, within `ms`, and answers it; returns
/// its body.
/// Bytes of a message from the victim: 8 of payload, then its cases' (passed, failed, crc) as
/// three u32 (see `victim.rs`).
const VICTIM_MSG: usize = 20;

fn recv_from(from: TaskId, op: u64, ms: u64) -> Option<[u8; VICTIM_MSG]> {
    let (sender, body) = recv_holding(from, op, ms)?;
    sys_reply(sender, 0, &[]);
    Some(body)
}

/// As [`recv_from`], but leaves the sender waiting for the reply (other messages are answered).
fn recv_holding(from: TaskId, op: u64, ms: u64) -> Option<(TaskId, [u8; VICTIM_MSG])> {
    let deadline = sys_get_timer().now + ms;
    sys_set_timer(Some(deadline), 1);
    loop {
        let mut buf = [0u8; VICTIM_MSG];
        let m = sys_recv_open(&mut buf, 1);
        if m.sender == TaskId::KERNEL {
            if sys_get_timer().now >= deadline {
                return None;
            }
            continue;
        }
        if m.sender.index() == from.index() && m.operation == op {
            sys_set_timer(None, 0);
            return Some((m.sender, buf));
        }
        sys_reply(m.sender, 0, &[]);
    }
}

/// The victim's first message (the frame it lends, op 1), taken before any check that counts
/// free bytes and left unanswered, so the victim stays blocked holding its 7 frames until
/// [`victim_checks`]: the other checks sleep (waiting for tdx-host's scrub), and a victim
/// allocating in the middle of them would change their totals.
fn hold_victim() -> Option<(TaskId, [u8; VICTIM_MSG])> {
    let index = task_gen::TASK_NAMES.iter().position(|n| *n == "victim")?;
    let victim = sys_refresh_task_id(userlib::TaskIndex(index as u16));
    recv_holding(victim, 1, 5000)
}

/// Counts the cases the victim printed (the tail of its message) for the verdict line.
fn absorb_victim(s: &mut Score, msg: &[u8; VICTIM_MSG]) {
    let word = |i: usize| u32::from_le_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
    s.absorb(u64::from(word(8)), u64::from(word(12)), word(16));
}

fn victim_checks(s: &mut Score, t: &TdxHost, first: Option<(TaskId, [u8; VICTIM_MSG])>) {
    let Some(index) = task_gen::TASK_NAMES.iter().position(|n| *n == "victim") else {
        s.check(
            "tdx_victim_task_present",
            false,
            format_args!("no task named victim"),
        );
        return;
    };
    let victim = sys_refresh_task_id(userlib::TaskIndex(index as u16));
    // The victim holds 7 frames now (it is waiting for our answer): they come back on reclaim.
    let held = 7 * 4096;
    let before = tdx_free(t) + held;
    let stats0 = t.stats();
    match first {
        Some((sender, b)) => {
            absorb_victim(s, &b);
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            let addr = u64::from_le_bytes(a);
            let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&[addr]));
            let (free0, usage0) = (tdx_free(t), t.stats().caller_usage_bytes);
            let one = t.free_frame(FrameSize::K4, addr);
            let same = (tdx_free(t), t.stats().caller_usage_bytes) == (free0, usage0);
            sys_reply(sender, 0, &[]);
            check!(
                s,
                "tdx_free_of_foreign_frame_refused",
                r == Err(TdxHostError::NotOwner),
                "{r:?}"
            );
            check!(
                s,
                "tdx_free_frame_of_foreign_frame_refused_changing_nothing",
                one == Err(TdxHostError::NotOwner) && same,
                "{one:?}, totals unchanged: {same}"
            );
        }
        None => s.check(
            "tdx_free_of_foreign_frame_refused",
            false,
            format_args!("the victim never sent its frame"),
        ),
    }
    // The victim now calls an operation it has no right to: it is faulted, jefe restarts it,
    // the kernel tells tdx-host, which reclaims, scrubs and checks its frames.
    let second = recv_from(victim, 2, 20_000);
    if let Some(b) = &second {
        absorb_victim(s, b);
    }
    check!(
        s,
        "tdx_killed_client_restarted",
        second.is_some(),
        "the victim did not come back"
    );
    // Reclaimed frames are scrubbed between requests: wait for the quarantine to drain.
    settle(t);
    let stats = t.stats();
    check!(
        s,
        "tdx_killed_client_frames_reclaimed",
        stats.restarts_seen > stats0.restarts_seen
            && stats.reclaimed_bytes >= stats0.reclaimed_bytes + held,
        "{stats:?}"
    );
    check!(
        s,
        "tdx_reclaimed_frames_scrubbed_and_pt_nda",
        stats.scrubbed_bytes >= stats0.scrubbed_bytes + held
            && stats.rdmd_calls >= stats0.rdmd_calls + 7
            && stats.quarantined_bytes == 0
            && stats.retired_bytes == 0,
        "{stats:?}"
    );
    check!(
        s,
        "tdx_reclaim_returns_totals_exactly",
        tdx_free(t) == before,
        "{} -> {}",
        before,
        tdx_free(t)
    );
}

fn region_record(t: &TdxHost, base: u64) -> Option<RegionRecord> {
    let mut buf = [0u8; 4096];
    let r = t.region_map(0, &mut buf).ok()?;
    (0..r.written as usize).find_map(|i| {
        let c = &buf[i * 32..i * 32 + 32];
        let w = |k: usize| u64::from_le_bytes(c[k..k + 8].try_into().unwrap_or([0; 8]));
        let rec = RegionRecord {
            base: w(0),
            size: w(8),
            bytes_in_use: w(16),
            node: u16::from_le_bytes([c[24], c[25]]),
            class: c[26],
            state: c[27],
            _pad: 0,
        };
        (rec.base == base).then_some(rec)
    })
}

/// The hot-plug window's base (or 4 GiB without one); apart, so the decoded
/// record's frame is gone before the checks run.
#[inline(never)]
fn hotplug_window_base() -> u64 {
    hl::read_platform()
        .ok()
        .and_then(|r| r.hotplug)
        .map_or(0x1_0000_0000, |h| h.base)
}

fn hotplug_checks(s: &mut Score, t: &TdxHost) {
    let window = hotplug_window_base();
    let size = 16 * MIB;
    let r = t.online_region(window, size, 0);
    if expect::POLICY == "reject" {
        check!(
            s,
            "tdx_reject_policy_refuses_non_tdx_region",
            r == Err(TdxHostError::RegionOutsideTdmrs),
            "{r:?}"
        );
        let info = t.node_info(0).unwrap_or_default();
        check!(
            s,
            "tdx_reject_policy_keeps_nodes_tdx_capable",
            info.tdx_capable == 1 && info.non_tdx_bytes_total == 0,
            "{info:?}"
        );
    } else {
        check!(
            s,
            "tdx_per_node_policy_accepts_non_tdx_region",
            r.is_ok_and(|o| o.class == MemClass::NonTdx as u8 && o.node_tdx_capable == 0),
            "{r:?}"
        );
        let info = t.node_info(0).unwrap_or_default();
        check!(
            s,
            "tdx_per_node_node_not_wholly_tdx_capable",
            info.tdx_capable == 0 && info.non_tdx_bytes_total == size,
            "{info:?}"
        );
        let other = t.node_info(1).unwrap_or_default();
        check!(
            s,
            "tdx_per_node_other_node_still_tdx_capable",
            other.tdx_capable == 1,
            "{other:?}"
        );
        let mut a = [0u64; 64];
        let r = t.alloc_frames(0, FrameSize::K4, MemClass::Tdx, 64, addrs_as_bytes(&mut a));
        let outside = a.iter().all(|&x| x < window || x >= window + size);
        let f = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&a));
        check!(
            s,
            "tdx_per_node_tdx_requests_never_get_non_tdx_memory",
            r == Ok(64) && outside && f == Ok(64),
            "{r:?} {f:?}"
        );
        let mut b = [0u64; 2];
        let r = t.alloc_frames(
            0,
            FrameSize::K4,
            MemClass::NonTdx,
            2,
            addrs_as_bytes(&mut b),
        );
        let inside = b.iter().all(|&x| x >= window && x < window + size);
        check!(
            s,
            "tdx_per_node_non_tdx_requests_get_the_new_region",
            r == Ok(2) && inside,
            "{r:?} {b:x?}"
        );
        let r1 = t.alloc_frames(
            1,
            FrameSize::K4,
            MemClass::NonTdx,
            1,
            addrs_as_bytes(&mut a[..1]),
        );
        check!(
            s,
            "tdx_per_node_non_tdx_only_where_onlined",
            r1 == Err(TdxHostError::NoMemory),
            "{r1:?}"
        );
        let busy = t.offline_region(window, size);
        let rec = region_record(t, window);
        check!(
            s,
            "tdx_offline_busy_region_refused_with_count",
            busy == Err(TdxHostError::RegionBusy)
                && rec.is_some_and(|r| r.bytes_in_use == 2 * 4096),
            "{busy:?} {rec:?}"
        );
        // 8 MiB more of the region, so that what the frees below put in quarantine takes tdx-host
        // at least four scrub steps (at most 2 MiB and one tick each): the offline right after
        // them must find it busy, whatever the timing.
        let mut c = [0u64; 4];
        let more = t.alloc_frames(
            0,
            FrameSize::M2,
            MemClass::NonTdx,
            4,
            addrs_as_bytes(&mut c),
        );
        let fc = t.free_frames(FrameSize::M2, addrs_as_bytes_ref(&c));
        let f = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&b));
        // Freed frames wait in quarantine until scrubbed: offline is refused until then.
        let early = t.offline_region(window, size);
        settle(t);
        let off = t.offline_region(window, size);
        let info = t.node_info(0).unwrap_or_default();
        check!(
            s,
            "tdx_offline_quarantined_region_refused",
            more == Ok(4) && fc == Ok(4) && early == Err(TdxHostError::RegionBusy),
            "{more:?} {fc:?} {early:?}"
        );
        check!(
            s,
            "tdx_offline_idle_region_succeeds",
            f == Ok(2) && off.is_ok() && info.tdx_capable == 1 && info.non_tdx_bytes_total == 0,
            "{f:?} {off:?} {info:?}"
        );
        let again = t.online_region(window, size, 0);
        let off2 = t.offline_region(window, size);
        check!(
            s,
            "tdx_region_can_be_onlined_again",
            again.is_ok() && off2.is_ok(),
            "{again:?} {off2:?}"
        );
    }
    let r = t.online_region(window + 0x1000, 0x1000, 0);
    // A range partly overlapping a known (here: offline) region is refused under per-node.
    let r = if expect::POLICY == "reject" {
        r == Err(TdxHostError::RegionOutsideTdmrs)
    } else {
        r == Err(TdxHostError::RegionOverlap)
    };
    check!(s, "tdx_hotplug_policy_is_consistent", r, "second online");
    if let [base, size, node] = *expect::BOOT_OFFLINE {
        let node = node as u16;
        let rec = region_record(t, base);
        check!(
            s,
            "tdx_boot_offline_region_listed_offline",
            rec.is_some_and(|r| r.state == region_state::OFFLINE && r.class == MemClass::Tdx as u8),
            "{rec:?}"
        );
        let before = t.node_info(node).unwrap_or_default();
        let r = t.online_region(base, size, node);
        let after = t.node_info(node).unwrap_or_default();
        check!(
            s,
            "tdx_online_boot_offline_region_becomes_tdx",
            r.is_ok_and(|o| o.class == MemClass::Tdx as u8 && o.node_tdx_capable == 1)
                && after.tdx_bytes_total == before.tdx_bytes_total + size,
            "{r:?} {before:?} {after:?}"
        );
        let dup = t.online_region(base, size, node);
        check!(
            s,
            "tdx_online_twice_refused",
            dup == Err(TdxHostError::AlreadyOnline),
            "{dup:?}"
        );
        let mut a = [0u64; 512];
        let mut seen = false;
        // Its frames are allocatable TDX memory now.
        let (n, _) = exhaust(t, node, FrameSize::M2, &mut a);
        for &x in &a[..n] {
            seen |= x >= base && x < base + size;
        }
        let back = free_all(t, FrameSize::M2, &a[..n]);
        check!(
            s,
            "tdx_onlined_region_frames_are_allocatable",
            seen && back,
            "{n} frames, seen {seen}"
        );
        let off = t.offline_region(base, size);
        check!(
            s,
            "tdx_onlined_region_can_be_offlined",
            off.is_ok(),
            "{off:?}"
        );
    }
}

/// The mode the kernel reports (platform record flag X2APIC) it drives the
/// local APICs in, against `lapic` in the manifest: the QEMU `-cpu` flag
/// says only what the CPU offers, this is what the kernel does.
#[inline(never)]
fn lapic_checks(s: &mut Score) {
    if expect::LAPIC.is_empty() {
        return;
    }
    match hl::read_platform() {
        Ok(r) => {
            let mode = if r.flags.contains(RecordFlags::X2APIC) {
                "x2apic"
            } else {
                "xapic"
            };
            check!(
                s,
                "kernel_runs_lapic_in_expected_mode",
                mode == expect::LAPIC,
                "kernel reports {mode}, expected {}",
                expect::LAPIC
            );
        }
        Err(e) => s.fail(
            "kernel_runs_lapic_in_expected_mode",
            format_args!("platform record unreadable: {e:?}"),
        ),
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    lapic_checks(&mut s);
    if expect::EARLY_SERVE {
        early::early_serving_checks(&mut s, &t);
    }
    state_checks(&mut s, &t);
    if expect::PARALLEL_TDMR_INIT != 0 {
        parinit::parallel_tdmr_init_checks(&mut s, &t);
    }
    if expect::STATE == "ready" {
        // Safety: the only reference ever made to HELD.
        let held = unsafe { &mut *addr_of_mut!(HELD) };
        let victim = if expect::VICTIM { hold_victim() } else { None };
        roundtrip_checks(&mut s, &t);
        if expect::FULL {
            bad_input_checks(&mut s, &t);
            single::one_frame_checks(&mut s, &t);
            exhaustion_checks(&mut s, &t, held);
            quota_checks(&mut s, &t, held);
        }
        if expect::VICTIM {
            victim_checks(&mut s, &t, victim);
        }
        hotplug_checks(&mut s, &t);
        if expect::RESTART_CASES {
            restart::restart_checks(&mut s, &t);
        }
    }
    s.verdict(task_gen::IMAGE_NAME);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
