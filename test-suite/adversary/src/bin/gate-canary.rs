//! gate-canary: a peer whose memory the SEAMCALL-gate and scrub attacks
//! aim at. It owns one page of writable memory filled with a known pattern
//! and answers two questions: where the page is, and whether it is intact.
//! A write by the TDX module or a kernel scrub into another task's memory
//! would show up here.

#![no_std]
#![no_main]

use userlib::{sys_recv_open, sys_reply};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

/// `[]` → `[base: u64, len: u64]` of the canary page.
const WHERE: u16 = 1;
/// `[]` → `[intact: u64]` (1 if every word still holds the pattern).
const CHECK: u16 = 2;

const WORDS: usize = 512;

#[repr(C, align(4096))]
struct Page([u64; WORDS]);

const fn pattern(i: usize) -> u64 {
    0xC0DE_CAFE_0000_0000 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Writable (in `.data`), so the gate's refusal is about ownership, not
/// permission.
static mut CANARY: Page = Page({
    let mut p = [0u64; WORDS];
    let mut i = 0;
    while i < WORDS {
        p[i] = pattern(i);
        i += 1;
    }
    p
});

fn intact() -> bool {
    let base = core::ptr::addr_of!(CANARY).cast::<u64>();
    // Safety: reads within this task's own static; volatile so the
    // compiler cannot assume the pattern it wrote is still there.
    (0..WORDS).all(|i| unsafe { core::ptr::read_volatile(base.add(i)) } == pattern(i))
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let _ = task_gen::TASK_INDEX;
    loop {
        let m = sys_recv_open(&mut [], 0);
        match m.operation as u16 {
            WHERE => {
                let mut r = [0u8; 16];
                r[..8].copy_from_slice(&(core::ptr::addr_of!(CANARY) as u64).to_le_bytes());
                r[8..].copy_from_slice(&(WORDS as u64 * 8).to_le_bytes());
                sys_reply(m.sender, 0, &r);
            }
            CHECK => sys_reply(m.sender, 0, &u64::from(intact()).to_le_bytes()),
            _ => sys_reply(m.sender, 1, &[]),
        }
    }
}
