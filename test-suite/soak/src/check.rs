//! soak-check: the books of tdx-host after every restart of a seeded chaos schedule.
//!
//! The kernel kills tdx-host `KILLS` times (`[kernel.chaos]`) while two soak-client tasks
//! allocate and free. This task runs above the clients (one CPU), so whenever it looks, no
//! client is half-way through anything but a call tdx-host is serving. After every new tdx-host
//! generation (seen by its own polling, or reported by a client that just reconciled with it, op
//! 2, which waits for the check) it waits for Ready and checks, from `status`, `stats` and `region_map`:
//!
//! - the region map is the one the first instance served (same regions, sizes, classes, state);
//! - the status totals are the sums of the online regions, per class;
//! - free + allocated + quarantined + retired = total, with allocated (in use minus quarantined
//!   minus retired) never negative and never above the clients' quotas.
//!
//! At the end each client sends its belief (which it has reconciled with `owned` after every
//! restart it saw, and once more when it stopped): the two beliefs must be disjoint (no frame has
//! two owners), and together exactly the allocated bytes (nothing owned by nobody). Then
//! `restart_soak` passes with a summary line, or fails with the first violation.

#![no_std]
#![no_main]

use tdx_host_api::{region_state, MemClass, ModuleState, RegionRecord, TdxHost};
use test_api::score::Score;
use userlib::{
    hl, sys_borrow_read, sys_recv_open, sys_refresh_task_id, sys_reply, sys_send, sys_set_timer,
    sys_set_timer_after, ulog, TaskId,
};
use zerocopy::IntoBytes;

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
/// The task's config (each binary reads only what concerns it).
#[allow(dead_code)]
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

const PAGE: u64 = 4096;
const MAX_REGIONS: usize = 64;
const LARGE: u64 = 2 << 20;
/// Frames a client may report (its `CAP` + `CAP2`).
const CLIENT_CAP: usize = 1024 + 8;
/// The clients' quotas together (the manifest's `quota-mib` of both).
const QUOTAS: u64 = (2 * 32) << 20;

static mut BELIEFS: [[u64; CLIENT_CAP]; 2] = [[0; CLIENT_CAP]; 2];

#[derive(Clone, Copy)]
struct Regions {
    rec: [RegionRecord; MAX_REGIONS],
    n: usize,
}

fn region_map(t: &TdxHost) -> Result<Regions, &'static str> {
    let mut r = Regions {
        rec: [RegionRecord::default(); MAX_REGIONS],
        n: 0,
    };
    loop {
        let mut buf = [RegionRecord::default(); 16];
        let reply = t
            .region_map(r.n as u32, buf.as_mut_bytes())
            .map_err(|_| "region_map refused")?;
        let w = reply.written as usize;
        if r.n + w > MAX_REGIONS {
            return Err("more regions than the checker holds");
        }
        r.rec[r.n..r.n + w].copy_from_slice(&buf[..w]);
        r.n += w;
        if w == 0 || r.n >= reply.total as usize {
            return Ok(r);
        }
    }
}

/// Waits (at most 10 s) until tdx-host answers Ready.
fn wait_ready(t: &TdxHost) -> bool {
    for _ in 0..10_000 {
        if t.status().state() == Some(ModuleState::Ready) {
            return true;
        }
        hl::sleep_for(1, 1);
    }
    false
}

/// One look at the books; returns the allocated and the quarantined bytes, or what is wrong.
fn books(t: &TdxHost, base: &Regions) -> Result<(u64, u64), &'static str> {
    if !wait_ready(t) {
        return Err("tdx-host did not come back Ready within 10 s");
    }
    // tdx-host scrubs a step on a timer tick between any two requests, so one look is three
    // calls; it is a snapshot only if status and stats read the same before and after the map
    // (a step or a restart in between moves them: look again).
    let mut snapshot = None;
    for _ in 0..100 {
        let (st, stats) = (t.status(), t.stats());
        let r = region_map(t)?;
        if (st, stats) == (t.status(), t.stats()) {
            snapshot = Some((st, stats, r));
            break;
        }
    }
    let Some((st, stats, r)) = snapshot else {
        return Err("no quiet snapshot of the books in 100 tries");
    };
    if r.n != base.n
        || r.rec[..r.n].iter().zip(&base.rec[..base.n]).any(|(a, b)| {
            (a.base, a.size, a.node, a.class, a.state) != (b.base, b.size, b.node, b.class, b.state)
        })
    {
        return Err("the region map differs from the first instance's");
    }
    let (mut tdx, mut non_tdx, mut in_use) = (0u64, 0u64, 0u64);
    for rec in r.rec[..r.n]
        .iter()
        .filter(|r| r.state == region_state::ONLINE)
    {
        if rec.class == u8::from(MemClass::Tdx) {
            tdx += rec.size;
        } else {
            non_tdx += rec.size;
        }
        if rec.bytes_in_use > rec.size {
            return Err("a region has more bytes in use than it holds");
        }
        in_use += rec.bytes_in_use;
    }
    if tdx != st.tdx_bytes_total || non_tdx != st.non_tdx_bytes_total {
        return Err("status totals are not the sums of the online regions");
    }
    let free = st.tdx_bytes_free + st.non_tdx_bytes_free;
    if free + in_use != tdx + non_tdx {
        ulog!(
            "soak-check: free {free:#x} + in use {in_use:#x} != total {:#x} (quarantined {:#x}, retired {:#x})",
            tdx + non_tdx,
            stats.quarantined_bytes,
            stats.retired_bytes
        );
        return Err("free + in use (allocated + quarantined + retired) is not the total");
    }
    let Some(allocated) = in_use
        .checked_sub(stats.quarantined_bytes)
        .and_then(|a| a.checked_sub(stats.retired_bytes))
    else {
        return Err("quarantined + retired exceed the bytes in use");
    };
    if allocated > QUOTAS {
        return Err("more allocated than the clients' quotas");
    }
    Ok((allocated, stats.quarantined_bytes))
}

/// Waits until nothing is left in quarantine (at most 20 s).
fn settle(t: &TdxHost) -> bool {
    for _ in 0..20_000 {
        if t.stats().quarantined_bytes == 0 {
            return true;
        }
        hl::sleep_for(1, 1);
    }
    false
}

/// Reads client `who`'s report into its belief; returns its counts.
fn take_report(sender: TaskId, msg: &[u8], belief: &mut [u64]) -> Option<[u64; 6]> {
    let mut w = [0u64; 6];
    for (i, x) in w.iter_mut().enumerate() {
        *x = u64::from_le_bytes(msg.get(i * 8..i * 8 + 8)?.try_into().ok()?);
    }
    let n = usize::try_from(w[4].checked_add(w[5])?)
        .ok()
        .filter(|&n| n <= belief.len())?;
    let (code, got) = sys_borrow_read(sender, 0, 0, belief[..n].as_mut_bytes());
    (code == 0 && got == n * 8).then_some(w)
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    // Safety: the only reference to BELIEFS.
    let beliefs = unsafe { &mut *core::ptr::addr_of_mut!(BELIEFS) };
    let mut s = Score::default();
    let clients = [task_gen::tasks::SOAK_A.0, task_gen::tasks::SOAK_B.0];
    let mut error: Option<&'static str> = None;
    let mut base = None;
    if wait_ready(&t) {
        base = region_map(&t).ok();
    }
    let Some(base) = base else {
        s.fail(
            "restart_soak",
            format_args!("tdx-host never served its region map"),
        );
        finish(&s);
    };
    let total_frames: u64 = base.rec[..base.n].iter().map(|r| r.size / PAGE).sum();
    let (mut checked, mut frames_checked) = (0u64, 0u64);
    // Restarts whose new instance found frames still waiting for their scrub.
    let mut mid_scrub = 0u64;
    let mut seen = 0u16;
    let mut reports: [Option<[u64; 6]>; 2] = [None, None];
    let mut lens = [[0usize; 2]; 2];
    let mut buf = [0u8; 48];
    let mut pending: Option<TaskId> = None;
    while reports.iter().any(Option::is_none) && error.is_none() {
        let g = sys_refresh_task_id(task_gen::slots::TDX_HOST)
            .generation()
            .0;
        if g == seen {
            if let Some(c) = pending.take() {
                sys_reply(c, 0, &[]);
            }
        } else {
            match books(&t, &base) {
                Ok((_, quarantined)) => {
                    checked += 1;
                    mid_scrub += u64::from(quarantined > 0);
                    frames_checked += total_frames;
                }
                Err(e) => error = Some(e),
            }
            seen = g;
            continue;
        }
        // A tick's wait for a client's report, then look at the generation again.
        sys_set_timer_after(1, 1);
        let m = sys_recv_open(&mut buf, 1);
        if m.sender == TaskId::KERNEL {
            continue;
        }
        let Some(k) = clients.iter().position(|&c| c == m.sender.index().0) else {
            sys_reply(m.sender, 1, &[]);
            continue;
        };
        if m.operation == 2 {
            // A client saw a new instance and reconciled: the loop checks its books before
            // the client (blocked until then) or the other (below us) makes another request.
            pending = Some(m.sender);
            continue;
        }
        match take_report(
            m.sender,
            &buf[..m.message_len.min(buf.len())],
            &mut beliefs[k],
        ) {
            Some(w) => {
                lens[k] = [w[4] as usize, w[5] as usize];
                reports[k] = Some(w);
            }
            None => error = Some("a client's report is malformed"),
        }
        sys_reply(m.sender, 0, &[]);
    }
    sys_set_timer(None, 0);
    let generation = sys_refresh_task_id(task_gen::slots::TDX_HOST)
        .generation()
        .0;
    if error.is_none() {
        error = final_books(&t, &base, beliefs, lens, &reports);
        frames_checked += total_frames + lens.iter().flatten().sum::<usize>() as u64;
    }
    let [a, b] = reports.map(|r| r.unwrap_or_default());
    let ops = a[0] + b[0];
    ulog!(
        "[soak] seed {}: {} restarts ({checked} checked, {mid_scrub} with a scrub pending), {ops} operations ({}+{}), {frames_checked} frames checked; client reconciles {}+{}, refusals {}+{}",
        config::CHAOS_SEED,
        generation,
        a[0],
        b[0],
        a[1],
        b[1],
        a[3],
        b[3]
    );
    let ok = error.is_none()
        && checked > 0
        && u32::from(generation) == config::KILLS
        && a[2] == 0
        && b[2] == 0
        && a[3] == 0
        && b[3] == 0;
    s.check(
        "restart_soak",
        ok,
        format_args!(
            "{}; tdx-host generation {generation} (want {}), {checked} restarts checked, client mismatches {}+{}, refusals {}+{}",
            error.unwrap_or("books held"),
            config::KILLS,
            a[2],
            b[2],
            a[3],
            b[3]
        ),
    );
    finish(&s);
}

/// The books at the end, with both clients stopped: after the quarantine drains, allocated is
/// exactly the clients' beliefs together, and no two believed frames overlap (within a client
/// or across the two: no frame has two owners).
fn final_books(
    t: &TdxHost,
    base: &Regions,
    beliefs: &[[u64; CLIENT_CAP]; 2],
    lens: [[usize; 2]; 2],
    reports: &[Option<[u64; 6]>; 2],
) -> Option<&'static str> {
    if reports.iter().any(Option::is_none) {
        return Some("a client never reported");
    }
    if !settle(t) {
        return Some("the quarantine did not drain");
    }
    let allocated = match books(t, base) {
        Ok((a, _)) => a,
        Err(e) => return Some(e),
    };
    // Every believed frame as (base, end), sorted: neighbours must not overlap.
    let mut spans = [(0u64, 0u64); 2 * CLIENT_CAP];
    let mut n = 0;
    let mut bytes = 0;
    for (belief, [small, large]) in beliefs.iter().zip(lens) {
        for (i, &f) in belief[..small + large].iter().enumerate() {
            let size = if i < small { PAGE } else { LARGE };
            spans[n] = (f, f + size);
            n += 1;
            bytes += size;
        }
    }
    let spans = &mut spans[..n];
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Some("a frame has two owners (or one owner twice)");
    }
    if allocated != bytes {
        ulog!("soak-check: allocated {allocated:#x}, the clients own {bytes:#x}");
        return Some("allocated bytes are not the frames the clients own");
    }
    None
}

fn finish(s: &Score) -> ! {
    s.verdict(task_gen::IMAGE_NAME);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
