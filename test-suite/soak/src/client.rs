//! soak-client: allocates and frees TD memory without pause while the kernel kills tdx-host at
//! seeded points (`[kernel.chaos]`).
//!
//! Every allocation and free is an `alloc_request`/`free_request` with a fresh identity; the
//! IDL client retries the same request after `ServerRestarted`, so a request committed before a
//! kill is answered from the ledger and one that was not is done once. The client keeps what it
//! believes it owns (4 KiB TDX frames); whenever tdx-host's generation has changed since its last
//! operation it reconciles: the server's `owned` listing must be exactly that belief (nothing
//! lost, nothing done twice), then asks the checker (op 2) to check the books of that
//! instance. It stops once tdx-host has been restarted as often as the schedule
//! kills it, reconciles a last time and sends the checker (op 1) its counts
//! `[operations, reconciles, mismatches, refusals, frames]` with its belief lent read-only.

#![no_std]
#![no_main]

use tdx_host_api::{
    addrs_as_bytes, addrs_as_bytes_ref, FrameSize, MemClass, OwnedRecord, OwnedReply, RequestIds,
    TdxHost, TdxHostError, ANY_NODE,
};
use userlib::{hl, sys_refresh_task_id, sys_send, ulog, Lease};
use zerocopy::IntoBytes;

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// Most 4 KiB frames held at once (16 MiB; the manifest's quota is larger).
const CAP: usize = 1024;
/// Most frames per request.
const BATCH: usize = 16;
const PAGE: u64 = 4096;
/// Operations after the last restart before the client stops.
const TAIL: u64 = 50;

static mut HELD: [u64; CAP] = [0; CAP];

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

/// Whether `owned` lists exactly `held` (sorted in place). Logs the first difference.
fn reconcile(t: &TdxHost, held: &mut [u64]) -> bool {
    held.sort_unstable();
    let mut out = [OwnedRecord::default(); 170];
    let mut first = 0u32;
    let mut i = 0usize;
    loop {
        let bytes = out.as_mut_bytes();
        let r = t.owned(first, bytes);
        let OwnedReply { written, total } = match r {
            Ok(r) => r,
            Err(TdxHostError::BadArgument) if first == 0 => OwnedReply::default(),
            Err(e) => {
                ulog!("soak-client: owned({first}) refused: {e:?}");
                return false;
            }
        };
        for rec in &out[..written as usize] {
            if rec.size != u8::from(FrameSize::K4) {
                ulog!("soak-client: owned lists a run of size {}", rec.size);
                return false;
            }
            for k in 0..u64::from(rec.count) {
                let f = rec.base + k * PAGE;
                if held.get(i) != Some(&f) {
                    ulog!(
                        "soak-client: owned lists {f:#x}, belief has {:?} at {i}",
                        held.get(i)
                    );
                    return false;
                }
                i += 1;
            }
        }
        first += written;
        if written == 0 || first >= total {
            break;
        }
    }
    if i != held.len() {
        ulog!(
            "soak-client: owned lists {i} frames, belief holds {} (first missing {:#x})",
            held.len(),
            held[i]
        );
        return false;
    }
    true
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let t = TdxHost::from_index(task_gen::slots::TDX_HOST);
    // Safety: the only reference to HELD.
    let held = unsafe { &mut *core::ptr::addr_of_mut!(HELD) };
    let ids = RequestIds::new();
    let mut rng = Rng(config::SEED | 1);
    let mut n = 0usize;
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
            if !reconcile(&t, &mut held[..n]) {
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
        if n == 0 || (room > 0 && rng.below(2) == 0) {
            let k = (1 + rng.below(BATCH)).min(room);
            let r = t.alloc_request(
                ids.next(),
                ANY_NODE,
                FrameSize::K4,
                MemClass::Tdx,
                k as u32,
                addrs_as_bytes(&mut held[n..n + k]),
            );
            match r {
                Ok(c) if c as usize == k => n += k,
                Err(TdxHostError::NoMemory | TdxHostError::QuotaExceeded) => {}
                other => {
                    refused += 1;
                    ulog!("soak-client: alloc_request of {k} answered {other:?}");
                }
            }
        } else {
            // Move k random frames to the end of the belief and free them from there.
            let k = 1 + rng.below(BATCH.min(n));
            for j in 0..k {
                let pick = rng.below(n - j);
                held.swap(pick, n - 1 - j);
            }
            let r = t.free_request(
                ids.next(),
                FrameSize::K4,
                addrs_as_bytes_ref(&held[n - k..n]),
            );
            match r {
                Ok(c) if c as usize == k => n -= k,
                other => {
                    refused += 1;
                    ulog!("soak-client: free_request of {k} answered {other:?}");
                }
            }
        }
        ops += 1;
        since_last += 1;
        // Both clients have one priority and the scheduler keeps running a ready task: a
        // tick's sleep every few operations lets the other one in.
        if ops % 8 == 0 {
            hl::sleep_for(1, 1);
        }
    }
    reconciles += 1;
    if !reconcile(&t, &mut held[..n]) {
        mismatches += 1;
    }
    let mut m = [0u8; 40];
    for (i, w) in [ops, reconciles, mismatches, refused, n as u64]
        .iter()
        .enumerate()
    {
        m[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let lease = [Lease::read_only(addrs_as_bytes_ref(&held[..n]))];
    let _ = sys_send(check, 1, &m, &mut [], &lease);
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
