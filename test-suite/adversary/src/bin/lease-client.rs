//! lease-client: the client half of the lease attacks. Each call lends
//! `lease-server` the client's own lease table as lease 0 (read-write) and
//! a buffer as lease 1; the server rewrites entry 1 through lease 0 after
//! the kernel checked it at SEND (issue 11, item 1). The kernel copied the
//! table at SEND, so the server must only ever reach the buffer the client
//! really lent:
//! - `lease_table_rewrite_read`: entry 1 re-aimed at the kernel image
//!   (0x100000); the read must still return the lent bytes;
//! - `lease_table_rewrite_write`: entry 1 re-aimed, writable, at the
//!   server's own read-only data; that data must not change;
//! - `lease_honest_server_length_stable`: an honest server stores what the
//!   client asks into lease 0 (shrinking entry 1's length), then reads the
//!   end of lease 1 by the length BORROW_INFO gave it; it must not fault.

#![no_std]
#![no_main]

use abi::lease_attr::{READ, WRITE};
use abi::ULEASE_SIZE;
use test_adversary::lease_server as op;
use test_api::check;
use test_api::score::Score;
use test_api::word32;
use userlib::{sys_refresh_task_id, sys_send, Lease};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::slots::{LEASE_SERVER, REFEREE};

/// Physical (= kernel-direct-map) address of the kernel image.
const KERNEL_IMAGE: u64 = 0x10_0000;

/// Sends `operation` lending, as lease 0, the lease table itself (read and
/// write) and, as lease 1, `data`.
fn call_lending_table(
    operation: u16,
    message: &[u8],
    reply: &mut [u8],
    data: Lease<'_>,
) -> (u32, usize) {
    let mut table = [Lease::raw(0, 0, 0), data];
    let base = table.as_ptr() as u64;
    table[0] = Lease::raw(READ | WRITE, base, core::mem::size_of_val(&table));
    sys_send(
        sys_refresh_task_id(LEASE_SERVER),
        operation,
        message,
        reply,
        &table,
    )
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();

    let data = *b"client-lease-ok!";
    let mut message = [0u8; 16];
    message[..8].copy_from_slice(&KERNEL_IMAGE.to_le_bytes());
    message[8..].copy_from_slice(&(data.len() as u64).to_le_bytes());
    let mut reply = [0u8; 8 + op::READ_LEN];
    let (code, _) = call_lending_table(
        op::REWRITE_THEN_READ,
        &message,
        &mut reply,
        Lease::read_only(&data),
    );
    let (rc, n) = (word32(&reply, 0), word32(&reply, 1));
    check!(
        s,
        "lease_table_rewrite_read",
        code == 0 && rc == 0 && n == 16 && reply[8..] == data,
        "after rewriting lease 1 the server read {:02x?} (code {code:#x}, rc {rc:#x}, {n} bytes), not the lent bytes",
        &reply[8..]
    );

    let mut target = [0u8; 16];
    let mut reply = [0u8; 12];
    let (code, _) = call_lending_table(
        op::REWRITE_THEN_WRITE,
        &[],
        &mut reply,
        Lease::read_write(&mut target),
    );
    let (rc, n, changed) = (word32(&reply, 0), word32(&reply, 1), word32(&reply, 2));
    check!(
        s,
        "lease_table_rewrite_write",
        code == 0 && changed == 0 && rc == 0 && n == 16 && target == op::WRITE_BYTES,
        "after rewriting lease 1 the server's write (code {code:#x}, rc {rc:#x}, {n} bytes) changed read-only data: {}, reached the lent buffer: {}",
        changed != 0,
        target == op::WRITE_BYTES
    );

    let data = [0x5Au8; 64];
    // Store the little-endian length 4 over entry 1's length field.
    let mut message = [0u8; 12];
    message[..4].copy_from_slice(&((ULEASE_SIZE + 16) as u32).to_le_bytes());
    message[4..].copy_from_slice(&4u64.to_le_bytes());
    let mut reply = [0u8; 16];
    let (code, _) = call_lending_table(
        op::HONEST_STORE_THEN_READ,
        &message,
        &mut reply,
        Lease::read_only(&data),
    );
    let w = |i| word32(&reply, i);
    check!(
        s,
        "lease_honest_server_length_stable",
        code == 0 && w(0) == 0 && w(1) == 8 && w(2) == 64 && w(3) == 64,
        "the honest server got code {code:#x}, rc {:#x}, {} bytes, length {} then {}",
        w(0),
        w(1),
        w(2),
        w(3)
    );

    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}
