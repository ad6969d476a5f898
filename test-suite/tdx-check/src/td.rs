//! tdx-td: a VMM builds TDs through tdx-host in QEMU and checks every total afterwards.
//!
//! Pattern: one case per line (`test tdx-td::NAME ... ok`), in an order that makes the totals
//! exact: first the victim's message is taken (it then holds two TDs and waits), so nothing
//! else allocates while this task counts; then the full life cycle (whose teardown meets the
//! manifest's injected busy RECLAIM and interrupted CACHE.WB), the refusals, KeyID exhaustion,
//! the victim's death and reclaim, the per-client limit, and the final totals: every KeyID free,
//! no frame in a TD, the free TDX bytes back to where they started plus the victim's frames.

#![no_std]
#![no_main]

use tdx_abi::{TdParams, TdxStatus};
use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, TdTotals, TdxHost, TdxHostError,
    ANY_NODE,
};
use test_api::score::Score;
use userlib::{hl, sys_get_timer, sys_recv_open, sys_refresh_task_id, sys_reply, sys_send};
use userlib::{sys_set_timer, TaskId};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

/// Frames of the full TD: TDR, 6 TDCS, 2 vCPUs × (TDVPR + 5 TDCX), 3 S-EPT, 1 added, 3 AUGed.
const FULL: usize = 1 + 6 + 12 + 3 + 1 + 3;
/// Frames the victim holds while it lives.
const VICTIM_FRAMES: u64 = 5;

fn alloc(t: &TdxHost, out: &mut [u64]) -> bool {
    let n = out.len() as u32;
    t.alloc_frames(
        ANY_NODE,
        FrameSize::K4,
        MemClass::Tdx,
        n,
        addrs_as_bytes(out),
    ) == Ok(n)
}

fn free(t: &TdxHost, a: &[u64]) -> bool {
    t.free_frames(FrameSize::K4, addrs_as_bytes_ref(a)) == Ok(a.len() as u32)
}

/// Waits (1 ms sleeps, at most 20 s) until `done` holds.
fn wait(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..20_000 {
        if done() {
            return true;
        }
        hl::sleep_for(1, 1);
    }
    false
}

fn drained(t: &TdxHost) -> bool {
    wait(|| t.stats().quarantined_bytes == 0)
}

fn keyids(k: &TdTotals) -> (u16, u16, u16, u32) {
    (
        k.keyids_free,
        k.keyids_in_use,
        k.keyids_retired,
        k.frames_in_tds,
    )
}

/// The victim's op-1 message, left unanswered (it stays blocked holding its TDs).
fn victim_message() -> Option<(TaskId, [u8; 16])> {
    let index = task_gen::TASK_NAMES.iter().position(|n| *n == "vmm2")?;
    let victim = sys_refresh_task_id(userlib::TaskIndex(index as u16));
    let deadline = sys_get_timer().now + 5000;
    sys_set_timer(Some(deadline), 1);
    loop {
        let mut buf = [0u8; 16];
        let m = sys_recv_open(&mut buf, 1);
        if m.sender == TaskId::KERNEL {
            if sys_get_timer().now >= deadline {
                return None;
            }
            continue;
        }
        if m.sender.index() == victim.index() && m.operation == 1 {
            sys_set_timer(None, 0);
            return Some((m.sender, buf));
        }
        sys_reply(m.sender, 0, &[]);
    }
}

/// Builds and tears down a TD with two vCPUs and private pages, with exact totals after.
fn life_cycle(s: &mut Score, t: &TdxHost) {
    let before = keyids(&t.td_totals());
    let mut p = [0u64; FULL];
    let ok = alloc(t, &mut p);
    let c = t.td_create(p[0]);
    let Ok(c) = c else {
        s.check("td_life_cycle_create", false, format_args!("{ok} {c:?}"));
        return;
    };
    let mut r = (1..7).try_for_each(|i| t.td_add_tdcs(c.td, p[i]));
    let params = TdParams::default().to_bytes();
    r = r.and_then(|()| t.td_init(c.td, &params));
    for (v, cpu) in [(0usize, 0u32), (1, 1)] {
        let base = 7 + 6 * v;
        r = r.and_then(|()| {
            let id = t.vcpu_create(c.td, p[base])?;
            (base + 1..base + 6).try_for_each(|i| t.vcpu_add_tdcx(c.td, id, p[i]))?;
            t.vcpu_init(c.td, id, cpu, 0)
        });
    }
    for (i, level) in [3u8, 2, 1].into_iter().enumerate() {
        r = r.and_then(|()| t.sept_add(c.td, 0, level, p[19 + i]));
    }
    r = r.and_then(|()| t.page_add(c.td, 0, p[22], &[0x5a; 4096]));
    r = r.and_then(|()| t.mr_finalize(c.td));
    for (i, &pa) in p[23..].iter().enumerate() {
        r = r.and_then(|()| t.page_aug(c.td, (i as u64 + 1) * 4096, 0, pa));
    }
    let mid = t.td_totals();
    s.check(
        "td_life_cycle_populated",
        ok && r.is_ok() && mid.frames_in_tds == before.3 + FULL as u32 && mid.mine == 1,
        format_args!("{ok} {r:?} {mid:?} {:#x}", mid.last_refusal),
    );
    let removed = t.page_remove(c.td, 4096, 0);
    let freed = removed.is_ok_and(|pa| pa == p[23] && free(t, &[pa]));
    s.check(
        "td_page_removed_is_the_callers_again",
        freed,
        format_args!("{removed:?}"),
    );
    let down = t.td_teardown(c.td);
    let after = keyids(&t.td_totals());
    s.check(
        "td_teardown_retries_injected_busy_and_interrupted",
        down.is_ok_and(|d| {
            d.retries == 2 && d.keyid_retired == 0 && d.reclaimed == FULL as u32 - 1
        }),
        format_args!("{down:?}"),
    );
    let back = free(t, &p[..23]) && free(t, &p[24..]) && drained(t);
    s.check(
        "td_life_cycle_exact_totals",
        after == before && back,
        format_args!("{before:?} -> {after:?}, frames back {back}"),
    );
}

fn refusals(s: &mut Score, t: &TdxHost, theirs: (u64, u32)) {
    let mut p = [0u64; 3];
    let ok = alloc(t, &mut p);
    let Ok(c) = t.td_create(p[0]) else {
        s.check("td_refusals_setup", false, format_args!("{ok}"));
        return;
    };
    let r = t.free_frames(FrameSize::K4, addrs_as_bytes_ref(&p[..1]));
    s.check(
        "td_free_of_a_tdr_is_page_in_td",
        r == Err(TdxHostError::PageInTd),
        format_args!("{r:?}"),
    );
    let r = t.free_frame(FrameSize::K4, p[0]);
    s.check(
        "td_free_frame_of_a_tdr_is_page_in_td",
        r == Err(TdxHostError::PageInTd),
        format_args!("{r:?}"),
    );
    let r = t.vcpu_create(c.td, p[1]);
    s.check(
        "td_vcpu_before_init_is_wrong_state",
        r == Err(TdxHostError::WrongState),
        format_args!("{r:?}"),
    );
    let r = t.td_add_tdcs(c.td, theirs.0);
    s.check(
        "td_page_of_another_client_is_not_owner",
        r == Err(TdxHostError::NotOwner),
        format_args!("{r:?}"),
    );
    let r = t.td_add_tdcs(theirs.1, p[1]);
    s.check(
        "td_of_another_client_is_no_such_td",
        r == Err(TdxHostError::NoSuchTd),
        format_args!("{r:?}"),
    );
    let r = t.td_init(c.td, &[0; 512]);
    s.check(
        "td_params_of_the_wrong_size_is_bad_argument",
        r == Err(TdxHostError::BadArgument),
        format_args!("{r:?}"),
    );
    let one = t.td_add_tdcs(c.td, p[1]);
    let r = t.td_init(c.td, &TdParams::default().to_bytes());
    let status = TdxStatus(t.td_totals().last_refusal);
    s.check(
        "td_init_without_tdcs_is_the_modules_refusal",
        one.is_ok()
            && r == Err(TdxHostError::ModuleRefused)
            && status.is(TdxStatus::TDCS_NOT_ALLOCATED),
        format_args!("{one:?} {r:?} {status:?}"),
    );
    let down = t.td_teardown(c.td);
    let again = t.td_teardown(c.td);
    s.check(
        "td_teardown_twice_is_no_such_td",
        down.is_ok() && again == Err(TdxHostError::NoSuchTd),
        format_args!("{down:?} {again:?}"),
    );
    let back = free(t, &p);
    s.check(
        "td_frames_free_after_teardown",
        back,
        format_args!("{p:x?}"),
    );
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    // TD operations need the whole module: wait while TDMR.INIT still runs.
    let _ = t.status_settled(100_000, || hl::sleep_for(1, 1));
    let victim = victim_message();
    let (theirs, vflags) = victim.map_or(((0, 0), 0), |(_, m)| {
        let w = |i: usize| u32::from_le_bytes([m[i], m[i + 1], m[i + 2], m[i + 3]]);
        (
            (
                u64::from_le_bytes(m[..8].try_into().unwrap_or([0; 8])),
                w(8),
            ),
            w(12),
        )
    });
    s.check(
        "td_victim_holds_two_tds_at_its_limit",
        vflags == 0b1111,
        format_args!("{vflags:#b}"),
    );
    let free0 = t.status().tdx_bytes_free;
    let t0 = t.td_totals();
    s.check(
        "td_totals_start",
        keyids(&t0).1 == 2 && t0.keyids_free == 1,
        format_args!("{t0:?}"),
    );
    life_cycle(&mut s, &t);
    refusals(&mut s, &t, theirs);
    // The pool: the victim holds 2 of 3 guest KeyIDs, this task takes the last one.
    let mut p = [0u64; 3];
    let ok = alloc(&t, &mut p);
    let x = t.td_create(p[0]);
    let none = t.td_create(p[1]);
    s.check(
        "td_keyids_exhausted_is_no_key_id",
        ok && x.is_ok() && none == Err(TdxHostError::NoKeyId),
        format_args!("{x:?} {none:?}"),
    );
    // The victim dies holding two TDs: both torn down, its frames reclaimed and scrubbed.
    if let Some((sender, _)) = victim {
        sys_reply(sender, 0, &[]);
    }
    let reaped = wait(|| t.td_totals().keyids_in_use == 1) && drained(&t);
    let k = t.td_totals();
    s.check(
        "td_killed_vmm_s_two_tds_are_reclaimed",
        reaped && keyids(&k) == (2, 1, 0, 1) && t.stats().reclaimed_bytes >= VICTIM_FRAMES * 4096,
        format_args!("{k:?}"),
    );
    // The per-client limit: a second TD, then a third refused though a KeyID is free.
    let y = t.td_create(p[1]);
    let over = t.td_create(p[2]);
    s.check(
        "td_per_client_limit_is_key_id_limit",
        y.is_ok() && over == Err(TdxHostError::KeyIdLimit) && t.td_totals().keyids_free == 1,
        format_args!("{y:?} {over:?}"),
    );
    let downs = [x.map(|c| c.td), y.map(|c| c.td)].map(|c| c.and_then(|td| t.td_teardown(td)));
    let back = free(&t, &p) && drained(&t);
    let k = t.td_totals();
    let free1 = t.status().tdx_bytes_free;
    s.check(
        "td_final_totals_exact",
        downs.iter().all(Result::is_ok)
            && back
            && keyids(&k) == (3, 0, 0, 0)
            && k.mine == 0
            && free1 == free0 + VICTIM_FRAMES * 4096,
        format_args!("{downs:?} {k:?} {free0} -> {free1}"),
    );
    s.verdict(task_gen::IMAGE_NAME);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
