//! lease-server: the server half of the lease attacks (see
//! `test_adversary::lease_server`). It is not an attacker itself: its client
//! `lease-client` lends it its own lease table, and the server uses that to
//! try to widen lease 1 after the kernel checked it at SEND — to the kernel
//! image for a read, to the server's own read-only data for a write — and,
//! as an honest server, shows that the length it learned cannot change
//! under it. It must never fault: the referee counts any fault of it.

#![no_std]
#![no_main]

use abi::{lease_attr, ULEASE_SIZE};
use test_adversary::lease_server as op;
use test_api::{word32, word64};
use userlib::{
    sys_borrow_info, sys_borrow_read, sys_borrow_write, sys_recv_open, sys_reply, TaskId,
};

/// The victim of the write attack: read-only data of this task, which no
/// lease ever covers.
static VICTIM: [u8; 16] = *b"server-rodata-ok";

/// The bytes of a lease-table entry `{attributes, 0, base, len}`.
fn entry(attributes: u32, base: u64, len: u64) -> [u8; ULEASE_SIZE] {
    let mut e = [0u8; ULEASE_SIZE];
    e[..4].copy_from_slice(&attributes.to_le_bytes());
    e[8..16].copy_from_slice(&base.to_le_bytes());
    e[16..].copy_from_slice(&len.to_le_bytes());
    e
}

/// Overwrites entry 1 of the client's table, which the client lent as
/// lease 0. Returns the BORROW_WRITE code.
fn forge_entry_1(client: TaskId, forged: &[u8; ULEASE_SIZE]) -> u32 {
    sys_borrow_write(client, 0, ULEASE_SIZE, forged).0
}

fn victim_now() -> [u8; 16] {
    // Safety: reads our own static; volatile so the compiler cannot assume
    // read-only data kept its initial value.
    unsafe { core::ptr::read_volatile(&raw const VICTIM) }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut buf = [0u8; 64];
    loop {
        let m = sys_recv_open(&mut buf, 0);
        if m.sender == TaskId::KERNEL {
            continue;
        }
        let msg = &buf[..m.message_len.min(buf.len())];
        match m.operation as u16 {
            op::REWRITE_THEN_READ => {
                let forged = entry(lease_attr::READ, word64(msg, 0), word64(msg, 1));
                let forge = forge_entry_1(m.sender, &forged);
                let mut out = [0u8; 8 + op::READ_LEN];
                let (rc, n) = sys_borrow_read(m.sender, 1, 0, &mut out[8..]);
                out[..4].copy_from_slice(&(rc | forge).to_le_bytes());
                out[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                sys_reply(m.sender, 0, &out);
            }
            op::REWRITE_THEN_WRITE => {
                let before = victim_now();
                let forged = entry(
                    lease_attr::READ | lease_attr::WRITE,
                    VICTIM.as_ptr() as u64,
                    VICTIM.len() as u64,
                );
                let forge = forge_entry_1(m.sender, &forged);
                let (rc, n) = sys_borrow_write(m.sender, 1, 0, &op::WRITE_BYTES);
                let changed = victim_now() != before;
                let mut out = [0u8; 12];
                out[..4].copy_from_slice(&(rc | forge).to_le_bytes());
                out[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                out[8..].copy_from_slice(&u32::from(changed).to_le_bytes());
                sys_reply(m.sender, 0, &out);
            }
            op::HONEST_STORE_THEN_READ => {
                let offset = word32(msg, 0) as usize;
                let data = msg.get(4..).unwrap_or(&[]);
                let before = sys_borrow_info(m.sender, 1).map_or(0, |i| i.len);
                let (store, _) = sys_borrow_write(m.sender, 0, offset, data);
                let mut tail = [0u8; 8];
                let (rc, n) = sys_borrow_read(m.sender, 1, before.saturating_sub(8), &mut tail);
                let after = sys_borrow_info(m.sender, 1).map_or(0, |i| i.len);
                let mut out = [0u8; 16];
                for (chunk, v) in
                    out.chunks_exact_mut(4)
                        .zip([rc | store, n as u32, before as u32, after as u32])
                {
                    chunk.copy_from_slice(&v.to_le_bytes());
                }
                sys_reply(m.sender, 0, &out);
            }
            _ => sys_reply(m.sender, test_adversary::referee::BAD_OPERATION, &[]),
        }
    }
}
