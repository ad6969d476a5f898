//! bench-server: answers every message with an empty reply, sent by the
//! receive of the next message (REPLY_RECV), as a real server's loop does.

#![no_std]
#![no_main]

use userlib::{sys_recv_open, sys_reply_recv_open};

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut m = sys_recv_open(&mut [], 0);
    loop {
        m = sys_reply_recv_open(m.sender, 0, &[], &mut [], 0);
    }
}
