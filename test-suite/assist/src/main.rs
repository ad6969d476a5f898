//! assist: a server that misbehaves on request.
//!
//! Every request that ends in a fault is answered *first*, then the fault
//! happens: assist is more important than the suite, so it runs on at once
//! and faults before the suite looks, and the suite is never left blocked
//! on a dead server. Two instances run in the test image (`assist` and
//! `peer`) so that one can be the client of the other.

#![no_std]
#![no_main]

use abi::syscall::Received;
use abi::Sysnum;
use test_api::regs::{self, AllRegs};
use test_api::reply_recv as rr;
use test_api::{assist as op, fault, word32, word64};
use userlib::durable::Durable;
use userlib::{
    sys_borrow_info, sys_borrow_read, sys_borrow_write, sys_irq_control, sys_raw, sys_recv_closed,
    sys_recv_open, sys_refresh_task_id, sys_reply, sys_send, Lease, RecvMessage, TaskId, TaskIndex,
};

static mut CALLS: u32 = 0;
/// Kept across restarts (the manifest gives each instance
/// `memory.durable`); the RAM twin below is zeroed by each restart.
#[link_section = ".durable"]
static DURABLE: Durable<[u32; op::DURABLE_WORDS]> = Durable::zeroed();
static mut RAM_TWIN: [u32; op::DURABLE_WORDS] = [0; op::DURABLE_WORDS];
static mut NOTES: u32 = 0;
static LEASE_TEXT: [u8; 16] = *b"assist-lease-ok!";
/// The memory RAW_SEND lends.
static mut RAW_LEASE: [u8; op::RAW_LEASE_MAX] = [0; op::RAW_LEASE_MAX];
/// `[rc, reply_len, reply bytes (16), lease bytes (16)]` of the last RAW_SEND.
static mut RAW_OUTCOME: [u8; 40] = [0xFF; 40];
/// What the last REPLY_RECV case's receive took (see `op::RR_RESULT`).
static mut RR_SEEN: [u32; 4] = [0; 4];
/// A caller a REPLY_RECV case left waiting, paid by RR_RESULT.
static mut RR_OWED: Option<TaskId> = None;

fn calls() -> u32 {
    // Safety: single-threaded task; no references to the static escape.
    unsafe { CALLS }
}

fn bump(counter: *mut u32) {
    // Safety: single-threaded task; the pointer names one of our statics.
    unsafe { *counter += 1 }
}

/// Recurses until the stack runs into its guard page: that is the point.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let pad = [depth; 64];
    core::hint::black_box(&pad);
    recurse(depth + 1) + pad[3]
}

fn do_fault(kind: u32, arg: u64, caller: TaskId) {
    // Safety (for every unsafe below): these are deliberate faults; the
    // kernel turns each into a fault of this task, which is the test.
    match kind {
        fault::NULL_READ => unsafe {
            core::ptr::read_volatile(core::ptr::null::<u64>());
        },
        fault::READ_KERNEL => unsafe {
            core::ptr::read_volatile(0x10_0000 as *const u64);
        },
        fault::READ_ADDRESS => unsafe {
            core::ptr::read_volatile(arg as *const u64);
        },
        fault::WRITE_TEXT => unsafe {
            core::ptr::write_volatile(main as *const () as *mut u8, 0xCC);
        },
        fault::WRITE_RODATA => unsafe {
            core::ptr::write_volatile(LEASE_TEXT.as_ptr() as *mut u8, 0);
        },
        fault::EXEC_DATA => unsafe {
            let code = [0xC3u8; 16]; // `ret`, on the (non-executable) stack
            let f: extern "C" fn() = core::mem::transmute(code.as_ptr());
            f();
        },
        fault::STACK_OVERFLOW => {
            core::hint::black_box(recurse(arg));
        }
        fault::ILLEGAL_INSTRUCTION => unsafe { core::arch::asm!("ud2") },
        fault::DIVIDE_BY_ZERO => unsafe {
            core::arch::asm!("xor edx, edx", "div ecx", in("ecx") 0u32, inout("eax") 1u32 => _, out("edx") _);
        },
        fault::PRIVILEGED_INSTRUCTION => unsafe { core::arch::asm!("cli") },
        fault::IO_PORT => unsafe {
            core::arch::asm!("in al, dx", in("dx") 0x60u16, out("al") _);
        },
        fault::BREAKPOINT => unsafe { core::arch::asm!("int3") },
        fault::SOFTWARE_NMI => unsafe { core::arch::asm!("int 2") },
        fault::SOFTWARE_MACHINE_CHECK => unsafe { core::arch::asm!("int 18") },
        fault::PANIC => panic!("assist panicked on request"),
        fault::BAD_SYSCALL => {
            sys_raw(0x99, [0; 8]);
        }
        fault::BAD_SLICE => {
            sys_raw(
                abi::Sysnum::Send as u64,
                [u64::from(caller.0), 1, 0x10_0000, 8, 0, 0, 0, 0],
            );
        }
        fault::BAD_LEASE => {
            let lease = Lease::raw(abi::lease_attr::READ, 0x10_0000, 64);
            sys_send(caller, 1, &[], &mut [], &[lease]);
        }
        fault::TOO_MANY_LEASES => {
            let byte = [0u8; 1];
            let leases = [Lease::read_only(&byte); 17];
            sys_send(caller, 1, &[], &mut [], &leases);
        }
        fault::UNBOUND_IRQ => sys_irq_control(1 << 40, true),
        fault::SET_TIMER_FLAGS => {
            sys_raw(Sysnum::SetTimer as u64, [arg, 5, 1, 0, 0, 0, 0, 0]);
        }
        fault::SEND_ACROSS_RAM_END => {
            let target = sys_refresh_task_id(TaskIndex(arg as u16));
            let end = ram_end();
            // Up to the last byte is ours: ECHO answers with all 16 bytes.
            let mut echo = [0u8; 16];
            let (rc, n) = sys_raw_send(target, op::ECHO, end - 16, 16, &mut echo);
            if (rc, n) != (0, 16) {
                panic!("a SEND of the last 16 bytes of RAM answered ({rc}, {n})");
            }
            sys_raw_send(target, op::ECHO, end - 8, 16, &mut echo);
        }
        fault::SEND_REPLY_INTO_RODATA => {
            let target = sys_refresh_task_id(TaskIndex(arg as u16));
            sys_raw(
                Sysnum::Send as u64,
                [
                    u64::from(target.0),
                    u64::from(op::ECHO),
                    0,
                    0,
                    LEASE_TEXT.as_ptr() as u64,
                    LEASE_TEXT.len() as u64,
                    0,
                    0,
                ],
            );
        }
        fault::SEND_LEASE_OUTSIDE_TO_WAITING => {
            let target = sys_refresh_task_id(TaskIndex(arg as u16));
            let leases = [
                Lease::read_only(&LEASE_TEXT),
                Lease::raw(abi::lease_attr::READ, 0x10_0000, 64),
            ];
            sys_send(target, op::ECHO, &[], &mut [], &leases);
        }
        fault::SEND_LEASE_TABLE_OUTSIDE_TO_WAITING => {
            let target = sys_refresh_task_id(TaskIndex(arg as u16));
            // Lease table (base, count) at the kernel image, one entry.
            sys_raw(
                Sysnum::Send as u64,
                [
                    u64::from(target.0),
                    u64::from(op::ECHO),
                    0,
                    0,
                    0,
                    0,
                    0x10_0000,
                    1,
                ],
            );
        }
        _ => {}
    }
}

/// One past the last byte of this task's RAM: the durable memory (whose only
/// static is [`DURABLE`], at its start) lies one guard page above it. The
/// last byte is read here, so a wrong answer faults as a memory access, not
/// as the refused slice a case expects.
fn ram_end() -> u64 {
    let end = core::ptr::addr_of!(DURABLE) as u64 - 4096;
    // Safety: a read of our own RAM's last byte (a fault if it is not).
    core::hint::black_box(unsafe { core::ptr::read_volatile((end - 1) as *const u8) });
    end
}

/// SEND of `len` bytes at `base` (a raw slice, for the edge cases) as
/// operation `op` to `target`, with `reply` as the reply buffer.
fn sys_raw_send(target: TaskId, op: u16, base: u64, len: u64, reply: &mut [u8]) -> (u32, usize) {
    let r = sys_raw(
        Sysnum::Send as u64,
        [
            u64::from(target.0),
            u64::from(op),
            base,
            len,
            reply.as_mut_ptr() as u64,
            reply.len() as u64,
            0,
            0,
        ],
    );
    (r[0] as u32, r[1] as usize)
}

/// RAW_SEND's SEND; see `test_api::assist::RAW_SEND`.
fn raw_send(header: [u32; 8], message: &[u8; op::RAW_MESSAGE_MAX]) {
    let target = sys_refresh_task_id(TaskIndex(header[0] as u16));
    let len = (header[2] as usize).min(message.len());
    let mut reply = [0u8; 64];
    let capacity = (header[3] as usize).min(reply.len());
    // Safety: single-threaded task; this is the only reference to the
    // buffer, and the kernel writes it on the server's behalf only while
    // we are blocked in the SEND below.
    let lease_mem: &mut [u8; op::RAW_LEASE_MAX] =
        unsafe { &mut *core::ptr::addr_of_mut!(RAW_LEASE) };
    for (i, b) in lease_mem.iter_mut().enumerate() {
        *b = i as u8;
    }
    let base = lease_mem.as_mut_ptr() as u64;
    let leases: [Lease<'static>; 3] = core::array::from_fn(|i| {
        let w = header[5 + i];
        Lease::raw(
            w & 0xFFFF,
            base,
            ((w >> 16) as usize).min(op::RAW_LEASE_MAX),
        )
    });
    let count = (header[4] as usize).min(leases.len());
    let (rc, n) = sys_send(
        target,
        header[1] as u16,
        &message[..len],
        &mut reply[..capacity],
        &leases[..count],
    );
    let mut outcome = [0u8; 40];
    outcome[..4].copy_from_slice(&rc.to_le_bytes());
    outcome[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    outcome[8..24].copy_from_slice(&reply[..16]);
    outcome[24..].copy_from_slice(&lease_mem[..16]);
    // Safety: single-threaded task; no reference to the static escapes.
    unsafe { RAW_OUTCOME = outcome };
}

/// REPLY_RECV: answers `caller` with attack `case` (`test_api::reply_recv`)
/// as one REPLY_RECV or, with `split`, as the REPLY and the RECV it stands
/// for, with the same words; keeps what the receive took in `RR_SEEN`.
/// Returns a request the receive took, for the main loop to serve.
fn reply_recv_case(
    case: u32,
    split: bool,
    arg: u32,
    caller: TaskId,
    buf: &mut [u8],
) -> Option<RecvMessage> {
    const NOTE: u64 = 1 << 40;
    let answer = *b"rr-reply-16bytes";
    let too_big = [0x55u8; 64];
    let mut reply = [u64::from(caller.0), 0, answer.as_ptr() as u64, 8];
    let mut recv = [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0];
    // Safety: single-threaded task; no reference to the static escapes.
    unsafe { RR_SEEN = [0; 4] };
    match case {
        rr::QUEUED => userlib::hl::sleep_for(2, 1 << 61),
        rr::REPLY_IN_KERNEL => reply[2] = 0x10_0000,
        rr::REPLY_PAST_RAM_END => reply[2..].copy_from_slice(&[ram_end() - 2, 4]),
        rr::REPLY_FROM_RODATA => {
            reply[2..].copy_from_slice(&[LEASE_TEXT.as_ptr() as u64, LEASE_TEXT.len() as u64]);
        }
        rr::REPLY_TOO_BIG => reply[2..].copy_from_slice(&[too_big.as_ptr() as u64, 64]),
        rr::REPLY_CODE_TOO_WIDE => reply[1] = 1 << 32,
        rr::REPLY_KERNEL_CODE => reply[1] = u64::from(arg),
        rr::REPLY_TO_OTHER => {
            reply[0] = u64::from(arg);
            // Safety: single-threaded task; no reference to the static escapes.
            unsafe { RR_OWED = Some(caller) };
        }
        rr::RECV_INTO_KERNEL => recv[..2].copy_from_slice(&[0x10_0000, 8]),
        rr::RECV_INTO_RODATA => {
            recv[..2].copy_from_slice(&[LEASE_TEXT.as_ptr() as u64, LEASE_TEXT.len() as u64]);
        }
        rr::RECV_RESERVED_BITS => recv[3] = 5,
        rr::NOTIFIED => {
            let _ = userlib::sys_post(sys_refresh_task_id(TaskIndex(task_gen::TASK_INDEX)), NOTE);
            recv[2] = NOTE;
        }
        rr::CLOSED => recv[3] = abi::RECV_CLOSED | u64::from(arg),
        _ => {}
    }
    let r = if split {
        sys_raw(
            Sysnum::Reply as u64,
            [reply[0], reply[1], reply[2], reply[3], 0, 0, 0, 0],
        );
        sys_raw(
            Sysnum::Recv as u64,
            [recv[0], recv[1], recv[2], recv[3], 0, 0, 0, 0],
        )
    } else {
        sys_raw(
            Sysnum::ReplyRecv as u64,
            [
                recv[0], recv[1], recv[2], recv[3], reply[0], reply[1], reply[2], reply[3],
            ],
        )
    };
    core::hint::black_box((&answer, &too_big));
    let (seen, next) = match Received::from_regs(r) {
        Ok(m) if m.sender == TaskId::KERNEL => ([3, m.operation.trailing_zeros(), 0, 0], None),
        Ok(m) => (
            [1, m.sender.0, m.operation as u32, m.message_len as u32],
            Some(RecvMessage::from(m)),
        ),
        Err(code) => ([2, code, 0, 0], None),
    };
    // Safety: single-threaded task; no reference to the static escapes.
    unsafe { RR_SEEN = seen };
    next
}

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

/// One real device interrupt end to end: PIT channel 0 (ports 0x40/0x43,
/// granted in the manifest) raises ISA IRQ 0, which the kernel routes via
/// the MADT override to its IOAPIC input, masks, and posts as `pit`.
fn irq_round() -> [u32; 4] {
    const TIMEOUT_BIT: u64 = 1 << 62;
    let Some(pit) = task_gen::notifications::mask_of("pit") else {
        return [0; 4];
    };
    sys_irq_control(pit, true);
    // Safety: the manifest grants this instance ports 0x40..0x43; mode 0
    // (interrupt on terminal count), binary, lo/hi count 0x1000.
    unsafe {
        core::arch::asm!("out 0x43, al", in("al") 0b0011_0000u8);
        core::arch::asm!("out 0x40, al", in("al") 0x00u8);
        core::arch::asm!("out 0x40, al", in("al") 0x10u8);
    }
    let now = userlib::sys_get_timer().now;
    userlib::sys_set_timer(Some(now + 1000), TIMEOUT_BIT);
    let got =
        sys_recv_closed(&mut [], pit | TIMEOUT_BIT, TaskId::KERNEL).map_or(0, |m| m.operation);
    userlib::sys_set_timer(None, 0);
    let (enabled, pending) = userlib::sys_irq_status(pit);
    sys_irq_control(pit, true);
    let (enabled2, _) = userlib::sys_irq_status(pit);
    sys_irq_control(pit, false);
    [
        u32::from(got & pit != 0),
        u32::from(enabled != 0),
        u32::from(pending != 0),
        u32::from(enabled2 != 0),
    ]
}

/// REG_PROBE: a null syscall (the caller goes on) and an open RECV (left
/// while blocked, resumed by the suite's SEND) with our sentinels in every
/// register the call does not pass; the REPLY, made the same way, carries
/// what we saw after each.
fn reg_probe() {
    let sentinels = AllRegs::filled(regs::sentinel);
    let mut null = AllRegs {
        rax: Sysnum::RefreshTaskId as u64,
        rdi: 0,
        ..sentinels
    };
    regs::syscall_all(&mut null);
    let mut buf = [0u8; 8];
    let mut recv = AllRegs {
        rax: Sysnum::Recv as u64,
        rdi: buf.as_mut_ptr() as u64,
        rsi: buf.len() as u64,
        rdx: 0,
        r10: 0,
        ..sentinels
    };
    regs::syscall_all(&mut recv);
    let mut report = [0u8; 2 * regs::WORDS * 8];
    for (i, w) in null.words().iter().chain(recv.words().iter()).enumerate() {
        report[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let len = report.len().min(recv.r10 as usize);
    let mut reply = AllRegs {
        rax: Sysnum::Reply as u64,
        rdi: recv.rdi,
        rsi: 0,
        rdx: report.as_ptr() as u64,
        r10: len as u64,
        ..sentinels
    };
    regs::syscall_all(&mut reply);
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut buf = [0u8; 64];
    // A request a REPLY_RECV case's receive already took.
    let mut taken: Option<RecvMessage> = None;
    loop {
        let m = match taken.take() {
            Some(m) => m,
            None => sys_recv_open(&mut buf, 0),
        };
        bump(&raw mut CALLS);
        let msg = &buf[..m.message_len.min(buf.len())];
        match m.operation as u16 {
            op::ECHO => sys_reply(m.sender, 0, &msg[..msg.len().min(m.response_capacity)]),
            op::SEND_BACK => {
                let (back_op, len) = (word32(msg, 0) as u16, word32(msg, 1) as usize);
                sys_reply(m.sender, 0, &[]);
                let mut pattern = [0u8; 64];
                for (i, b) in pattern.iter_mut().enumerate() {
                    *b = i as u8;
                }
                sys_send(m.sender, back_op, &pattern[..len.min(64)], &mut [], &[]);
            }
            op::SEND_BACK_LEASED => {
                let back_op = word32(msg, 0) as u16;
                sys_reply(m.sender, 0, &[]);
                let mut data = LEASE_TEXT;
                sys_send(
                    m.sender,
                    back_op,
                    &[],
                    &mut [],
                    &[Lease::read_write(&mut data)],
                );
            }
            op::FAULT => {
                let (kind, arg) = (word32(msg, 0), word64(&msg[4..], 0));
                sys_reply(m.sender, 0, &[]);
                do_fault(kind, arg, m.sender);
            }
            op::BORROW_READ => {
                let (index, offset, len) = (
                    word32(msg, 0) as usize,
                    word32(msg, 1) as usize,
                    word32(msg, 2) as usize,
                );
                let mut out = [0u8; 40];
                let (rc, n) =
                    sys_borrow_read(m.sender, index, offset, &mut out[8..8 + len.min(32)]);
                out[..4].copy_from_slice(&rc.to_le_bytes());
                out[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                sys_reply(m.sender, 0, &out[..8 + n]);
            }
            op::BORROW_WRITE => {
                let (index, offset) = (word32(msg, 0) as usize, word32(msg, 1) as usize);
                let (rc, n) = sys_borrow_write(m.sender, index, offset, &msg[8..]);
                let mut out = [0u8; 8];
                out[..4].copy_from_slice(&rc.to_le_bytes());
                out[4..].copy_from_slice(&(n as u32).to_le_bytes());
                sys_reply(m.sender, 0, &out);
            }
            op::BORROW_INFO => {
                let mut out = [0u8; 12];
                match sys_borrow_info(m.sender, word32(msg, 0) as usize) {
                    Ok(info) => {
                        out[4..8].copy_from_slice(&info.attributes.to_le_bytes());
                        out[8..].copy_from_slice(&(info.len as u32).to_le_bytes());
                    }
                    Err(rc) => out[..4].copy_from_slice(&rc.to_le_bytes()),
                }
                sys_reply(m.sender, 0, &out);
            }
            op::REPLY_TOO_BIG => sys_reply(m.sender, 0, &[0x55; 64]),
            op::REPLY_PAST_RAM_END => {
                let end = ram_end();
                sys_raw(
                    Sysnum::Reply as u64,
                    [u64::from(m.sender.0), 0, end - 2, 4, 0, 0, 0, 0],
                );
            }
            op::COUNT => sys_reply(m.sender, 0, &calls().to_le_bytes()),
            op::RELAY => {
                let target = sys_refresh_task_id(TaskIndex(word32(msg, 0) as u16));
                let relay_op = word32(msg, 1) as u16;
                let mut args = [0u8; 12];
                args.copy_from_slice(&msg[8..20]);
                sys_reply(m.sender, 0, &[]);
                let data = LEASE_TEXT;
                let mut small = [0u8; 4];
                sys_send(
                    target,
                    relay_op,
                    &args,
                    &mut small,
                    &[Lease::read_only(&data)],
                );
            }
            op::WAIT_NOTE => {
                let mask = word64(msg, 0);
                sys_reply(m.sender, 0, &[]);
                if sys_recv_closed(&mut [], mask, TaskId::KERNEL).is_ok() {
                    bump(&raw mut NOTES);
                }
            }
            op::RESTART_LATER => {
                let (target, ms) = (word32(msg, 0), word32(msg, 1));
                sys_reply(m.sender, 0, &[]);
                userlib::hl::sleep_for(u64::from(ms), 1 << 61);
                let _ = userlib::hl::restart_task(TaskIndex(target as u16), true);
            }
            op::IRQ_ROUND => {
                let r = irq_round();
                let mut out = [0u8; 16];
                for (chunk, v) in out.chunks_exact_mut(4).zip(r) {
                    chunk.copy_from_slice(&v.to_le_bytes());
                }
                sys_reply(m.sender, 0, &out);
            }
            op::NOTES => {
                // Safety: single-threaded task.
                let n = unsafe { NOTES };
                sys_reply(m.sender, 0, &n.to_le_bytes());
            }
            op::REG_PROBE => {
                sys_reply(m.sender, 0, &[]);
                reg_probe();
            }
            op::RAW_SEND => {
                let mut header = [0u32; 8];
                for (i, w) in header.iter_mut().enumerate() {
                    *w = word32(msg, i);
                }
                let mut message = [0u8; op::RAW_MESSAGE_MAX];
                let payload = msg.get(op::RAW_HEADER..).unwrap_or(&[]);
                message[..payload.len()].copy_from_slice(payload);
                sys_reply(m.sender, 0, &[]);
                raw_send(header, &message);
            }
            op::DURABLE_FILL => {
                let seed = word32(msg, 0);
                // Safety: single-threaded task; these references are the
                // only ones and end with this arm.
                let (durable, ram) =
                    unsafe { (DURABLE.get_mut(), &mut *core::ptr::addr_of_mut!(RAM_TWIN)) };
                for i in 0..op::DURABLE_WORDS {
                    durable[i] = op::durable_pattern(seed, i);
                    ram[i] = op::durable_pattern(seed, i);
                }
                let mut out = [0u8; 16];
                out[..8].copy_from_slice(&(DURABLE.as_ptr() as u64).to_le_bytes());
                out[8..].copy_from_slice(&(ram.as_ptr() as u64).to_le_bytes());
                sys_reply(m.sender, 0, &out);
            }
            op::DURABLE_CHECK => {
                let seed = word32(msg, 0);
                // Safety: as for DURABLE_FILL (read-only here).
                let (durable, ram) =
                    unsafe { (&*DURABLE.as_ptr(), &*core::ptr::addr_of!(RAM_TWIN)) };
                let matching = (0..op::DURABLE_WORDS)
                    .filter(|&i| durable[i] == op::durable_pattern(seed, i))
                    .count() as u32;
                let zero = durable.iter().filter(|w| **w == 0).count() as u32;
                let ram_zero = ram.iter().filter(|w| **w == 0).count() as u32;
                let mut out = [0u8; 20];
                out[..4].copy_from_slice(&matching.to_le_bytes());
                out[4..8].copy_from_slice(&zero.to_le_bytes());
                out[8..12].copy_from_slice(&ram_zero.to_le_bytes());
                out[12..].copy_from_slice(&(DURABLE.as_ptr() as u64).to_le_bytes());
                sys_reply(m.sender, 0, &out);
            }
            op::DURABLE_LEND => {
                let back_op = word32(msg, 0) as u16;
                sys_reply(m.sender, 0, &[]);
                // Safety: single-threaded task; the reference ends with the
                // SEND, during which only the kernel touches the bytes.
                let durable = unsafe { DURABLE.get_mut() };
                // Lend the durable words themselves, not a copy.
                // Safety: the first 16 bytes of the durable array, which is
                // borrowed exclusively above; u32s are plain bytes.
                let lent: &mut [u8] = unsafe {
                    core::slice::from_raw_parts_mut(durable.as_mut_ptr().cast::<u8>(), 16)
                };
                sys_send(m.sender, back_op, &[], &mut [], &[Lease::read_write(lent)]);
            }
            op::REPLY_RECV => {
                let (case, split, arg) = (word32(msg, 0), word32(msg, 1) != 0, word32(msg, 2));
                taken = reply_recv_case(case, split, arg, m.sender, &mut buf);
            }
            op::RR_RESULT => {
                // Safety: single-threaded task; copies, no reference escapes.
                let (owed, seen) = unsafe { (core::ptr::replace(&raw mut RR_OWED, None), RR_SEEN) };
                if let Some(owed) = owed {
                    sys_reply(owed, op::RR_OWED_CODE, b"owed");
                }
                let mut out = [0u8; 16];
                for (chunk, w) in out.chunks_exact_mut(4).zip(seen) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                sys_reply(m.sender, 0, &out);
            }
            op::RAW_RESULT => {
                // Safety: single-threaded task; a copy, no reference escapes.
                let outcome = unsafe { RAW_OUTCOME };
                sys_reply(m.sender, 0, &outcome);
            }
            _ => sys_reply(m.sender, 2, &[]),
        }
    }
}
