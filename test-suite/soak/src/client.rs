//! soak-client: allocates and frees TD memory without pause while the kernel kills tdx-host at
//! seeded points (`[kernel.chaos]`).
//!
//! Every allocation and free is an `alloc_request`/`free_request` with a fresh identity; the
//! IDL client retries the same request after `ServerRestarted`, so a request committed before a
//! kill is answered from the ledger and one that was not is done once. The client keeps what it
//! believes it owns (4 KiB TDX frames, and now and then up to 16 MiB of 2 MiB frames freed
//! at once, so that large frees are being scrubbed while the kills go on); whenever tdx-host's generation has changed since its last
//! operation it reconciles: the server's `owned` listing must be exactly that belief (nothing
//! lost, nothing done twice), then asks the checker (op 2) to check the books of that
//! instance. It stops once tdx-host has been restarted as often as the schedule
//! kills it, reconciles a last time and sends the checker (op 1) its counts
//! `[operations, reconciles, mismatches, refusals, 4 KiB frames, 2 MiB frames]` with its belief
//! (the 4 KiB frames, then the 2 MiB ones) lent read-only.

#![no_std]
#![no_main]

use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, OwnedRecord, OwnedReply, RequestIds,
    TdxHost, TdxHostError, ANY_NODE,
};
use userlib::{hl, sys_refresh_task_id, sys_send, ulog, Lease};
use zerocopy::IntoBytes;

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
/// The task's config (each binary reads only what concerns it).
#[allow(dead_code)]
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// Most 4 KiB frames held at once (16 MiB; the manifest's quota is larger).
const CAP: usize = 1024;
/// Most 2 MiB frames held at once (16 MiB).
const CAP2: usize = 8;
const LARGE: u64 = 2 << 20;
/// Most frames per request.
const BATCH: usize = 16;
const PAGE: u64 = 4096;
/// Operations after the last restart before the client stops.
const TAIL: u64 = 50;

/// The 4 KiB belief; the report appends the 2 MiB one.
static mut HELD: [u64; CAP + CAP2] = [0; CAP + CAP2];

/// xorshift64*: the client's choices, from its configured seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn tdx_generation() -> u16 {
    sys_refresh_task_id(task_gen::slots::TDX_HOST)
        .generation()
        .0
}

/// Whether `owned` lists exactly `small` (4 KiB frames) and `large` (2 MiB frames), both
/// sorted in place. Logs the first difference.
fn reconcile(t: &TdxHost, small: &mut [u64], large: &mut [u64]) -> bool {
    small.sort_unstable();
    large.sort_unstable();
    let mut out = [OwnedRecord::default(); 170];
    let mut first = 0u32;
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        let r = t.owned(first, out.as_mut_bytes());
        let OwnedReply { written, total } = match r {
            Ok(r) => r,
            Err(TdxHostError::BadArgument) if first == 0 => OwnedReply::default(),
            Err(e) => {
                ulog!("soak-client: owned({first}) refused: {e:?}");
                return false;
            }
        };
        for rec in &out[..written as usize] {
            let (belief, at, step) = if rec.size == u8::from(FrameSize::K4) {
                (&*small, &mut i, PAGE)
            } else if rec.size == u8::from(FrameSize::M2) {
                (&*large, &mut j, LARGE)
            } else {
                ulog!("soak-client: owned lists a run of size {}", rec.size);
                return false;
            };
            for k in 0..u64::from(rec.count) {
                let f = rec.base + k * step;
                if belief.get(*at) != Some(&f) {
                    ulog!(
                        "soak-client: owned lists {f:#x}, belief has {:?} at {}",
                        belief.get(*at),
                        *at
                    );
                    return false;
                }
                *at += 1;
            }
        }
        first += written;
        if written == 0 || first >= total {
            break;
        }
    }
    if i != small.len() || j != large.len() {
        ulog!(
            "soak-client: owned lists {i}+{j} frames, belief holds {}+{}",
            small.len(),
            large.len()
        );
        return false;
    }
    true
}

/// An `alloc_request` of `k` frames of `size` into `into`; whether it allocated them (a
/// refusal for want of memory or quota is no error), or `None` for any other answer.
fn alloc(t: &TdxHost, ids: &RequestIds, size: FrameSize, into: &mut [u64]) -> Option<bool> {
    let k = into.len();
    match t.alloc_request(
        ids.next(),
        ANY_NODE,
        size,
        MemClass::Tdx,
        k as u32,
        addrs_as_bytes(into),
    ) {
        Ok(c) if c as usize == k => Some(true),
        Err(TdxHostError::NoMemory | TdxHostError::QuotaExceeded) => Some(false),
        other => {
            ulog!("soak-client: alloc_request of {k} {size:?} answered {other:?}");
            None
        }
    }
}

/// A `free_request` of `frames` of `size`; whether the server freed exactly them.
fn free(t: &TdxHost, ids: &RequestIds, size: FrameSize, frames: &[u64]) -> bool {
    let r = t.free_request(ids.next(), size, addrs_as_bytes_ref(frames));
    let ok = r == Ok(frames.len() as u32);
    if !ok {
        ulog!(
            "soak-client: free_request of {} {size:?} answered {r:?}",
            frames.len()
        );
    }
    ok
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    // Non-TDX memory and hot-plug need the whole module: wait while TDMR.INIT still runs.
    let _ = t.status_settled(100_000, || hl::sleep_for(1, 1));
    // Safety: the only reference to HELD.
    let held = unsafe { &mut *core::ptr::addr_of_mut!(HELD) };
    let ids = RequestIds::new();
    let mut rng = Rng(config::SEED | 1);
    let mut large = [0u64; CAP2];
    let (mut n, mut n2) = (0usize, 0usize);
    let (mut ops, mut reconciles, mut mismatches, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let check = sys_refresh_task_id(task_gen::slots::CHECK);
    let mut seen = tdx_generation();
    let mut since_last = 0u64;
    loop {
        let g = tdx_generation();
        if g != seen {
            seen = g;
            since_last = 0;
            reconciles += 1;
            if !reconcile(&t, &mut held[..n], &mut large[..n2]) {
                mismatches += 1;
            }
            // The checker (above us) checks the books of this instance now, while both
            // clients are between requests.
            let _ = sys_send(check, 2, &[], &mut [], &[]);
        }
        if u32::from(g) >= config::KILLS && since_last >= TAIL {
            break;
        }
        let room = CAP - n;
        let ok = match rng.below(8) {
            // Large frames now and then, freed all at once: a large free being scrubbed (2
            // MiB per tick at most) while the kills go on.
            0 if n2 < CAP2 => {
                let k = (1 + rng.below(CAP2 / 2)).min(CAP2 - n2);
                let r = alloc(&t, &ids, FrameSize::M2, &mut large[n2..n2 + k]);
                n2 += if r == Some(true) { k } else { 0 };
                r.is_some()
            }
            1 if n2 > 0 => {
                let ok = free(&t, &ids, FrameSize::M2, &large[..n2]);
                n2 = if ok { 0 } else { n2 };
                ok
            }
            c if n == 0 || (room > 0 && c % 2 == 0) => {
                let k = (1 + rng.below(BATCH)).min(room);
                let r = alloc(&t, &ids, FrameSize::K4, &mut held[n..n + k]);
                n += if r == Some(true) { k } else { 0 };
                r.is_some()
            }
            _ => {
                // Move k random frames to the end of the belief and free them from there.
                let k = 1 + rng.below(BATCH.min(n));
                for j in 0..k {
                    let pick = rng.below(n - j);
                    held.swap(pick, n - 1 - j);
                }
                let ok = free(&t, &ids, FrameSize::K4, &held[n - k..n]);
                n -= if ok { k } else { 0 };
                ok
            }
        };
        refused += u64::from(!ok);
        ops += 1;
        since_last += 1;
        // Both clients have one priority and the scheduler keeps running a ready task: a
        // tick's sleep every few operations lets the other one in.
        if ops % 8 == 0 {
            hl::sleep_for(1, 1);
        }
    }
    reconciles += 1;
    if !reconcile(&t, &mut held[..n], &mut large[..n2]) {
        mismatches += 1;
    }
    held[n..n + n2].copy_from_slice(&large[..n2]);
    let mut m = [0u8; 48];
    for (i, w) in [ops, reconciles, mismatches, refused, n as u64, n2 as u64]
        .iter()
        .enumerate()
    {
        m[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let lease = [Lease::read_only(addrs_as_bytes_ref(&held[..n + n2]))];
    let _ = sys_send(check, 1, &m, &mut [], &lease);
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
