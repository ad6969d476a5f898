//! bench-server: answers every message at once with an empty reply.

#![no_std]
#![no_main]

use userlib::{sys_recv_open, sys_reply};

#[unsafe(no_mangle)]
pub fn main() -> ! {
    loop {
        let m = sys_recv_open(&mut [], 0);
        sys_reply(m.sender, 0, &[]);
    }
}
