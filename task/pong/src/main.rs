//! pong: a tiny server. Operation 1 answers the message reversed;
//! operation 2 reads lease 0, upper-cases it and writes it to lease 1.
//! Anything else is reply-faulted: a server never panics on client input.

#![no_std]
#![no_main]

use userlib::{
    sys_borrow_read, sys_borrow_write, sys_recv_open, sys_reply, sys_reply_fault, ReplyFaultReason,
};

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut buf = [0u8; 64];
    let mut served: u32 = 0;
    defmt::info!("serving: op 1 reverses, op 2 upper-cases a lease");
    loop {
        let m = sys_recv_open(&mut buf, 0);
        match m.operation {
            1 if m.message_len <= buf.len() => {
                let mut out = [0u8; 64];
                let n = m.message_len;
                for i in 0..n {
                    out[i] = buf[n - 1 - i];
                }
                sys_reply(m.sender, 0, &out[..n.min(m.response_capacity)]);
                served += 1;
                if served.is_power_of_two() && served >= 256 {
                    defmt::debug!("{=u32} reversals served", served);
                }
            }
            2 if m.lease_count == 2 => {
                let mut data = [0u8; 64];
                let (rc, n) = sys_borrow_read(m.sender, 0, 0, &mut data);
                if rc != 0 {
                    continue; // the client went away; nothing to answer
                }
                data[..n].make_ascii_uppercase();
                let (rc, _) = sys_borrow_write(m.sender, 1, 0, &data[..n]);
                if rc == 0 {
                    sys_reply(m.sender, 0, &[]);
                    defmt::info!(
                        "upper-cased {=usize} leased bytes after {=u32} reversals",
                        n,
                        served
                    );
                }
            }
            1 => sys_reply_fault(m.sender, ReplyFaultReason::BadMessageSize),
            2 => sys_reply_fault(m.sender, ReplyFaultReason::BadLeases),
            _ => sys_reply_fault(m.sender, ReplyFaultReason::UndefinedOperation),
        }
    }
}
