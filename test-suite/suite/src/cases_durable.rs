//! Durable memory (`memory.durable`): zeroed once at boot, kept with its
//! address across a task's restarts (by kernel IPC and after a fault),
//! while the task's RAM is zeroed; lendable like RAM; out of every other
//! task's reach.
//!
//! assist and peer (one binary) each have one page of durable memory and
//! use its first `DURABLE_WORDS` words; peer's is only read here, so it
//! still shows the boot state.

use abi::FaultInfo;
use test_api::{assist as op, fault, word32, word64};
use userlib::{hl, sys_borrow_read, sys_borrow_write, sys_recv, sys_reply};

use crate::{call, collect_fault, id, Case, ASSIST, PEER};

pub static CASES: &[Case] = &[
    ("durable_memory_is_zero_at_boot", zero_at_boot),
    (
        "durable_memory_survives_restart_ram_is_zeroed",
        survives_restart,
    ),
    (
        "durable_memory_survives_a_fault_and_restart",
        survives_fault,
    ),
    ("durable_memory_can_be_lent_like_ram", lendable),
    (
        "isolation_reading_another_tasks_durable_memory_faults",
        isolated,
    ),
];

/// `(matching, zero, ram_zero, address)` of DURABLE_CHECK.
fn check(task: abi::TaskIndex, seed: u32) -> (u32, u32, u32, u64) {
    let mut r = [0u8; 20];
    call(task, op::DURABLE_CHECK, &seed.to_le_bytes(), &mut r, &[]);
    (
        word32(&r, 0),
        word32(&r, 1),
        word32(&r, 2),
        word64(&r[12..], 0),
    )
}

/// `(durable address, RAM address)` after DURABLE_FILL.
fn fill(task: abi::TaskIndex, seed: u32) -> (u64, u64) {
    let mut r = [0u8; 16];
    call(task, op::DURABLE_FILL, &seed.to_le_bytes(), &mut r, &[]);
    (word64(&r, 0), word64(&r, 1))
}

const WORDS: u32 = op::DURABLE_WORDS as u32;

fn zero_at_boot() {
    let (_, zero, _, _) = check(PEER, 1);
    assert_eq!(zero, WORDS, "the kernel zeroes durable memory at boot");
}

fn survives_restart() {
    let seed = 0x5eed_0001;
    let (addr, ram) = fill(ASSIST, seed);
    assert_ne!(addr, ram);
    assert_eq!(
        check(ASSIST, seed),
        (WORDS, 0, 0, addr),
        "before the restart"
    );
    let generation = id(ASSIST).generation();
    hl::restart_task(ASSIST, true).expect("restart assist");
    assert_eq!(id(ASSIST).generation(), generation.next());
    let (matching, _, ram_zero, after) = check(ASSIST, seed);
    assert_eq!(after, addr, "durable memory keeps its address");
    assert_eq!(matching, WORDS, "durable memory keeps every word");
    assert_eq!(ram_zero, WORDS, "ordinary RAM is zeroed by the restart");
    // And again: a second restart keeps it too.
    hl::restart_task(ASSIST, true).expect("restart assist");
    assert_eq!(check(ASSIST, seed).0, WORDS);
}

fn survives_fault() {
    let seed = 0x5eed_0002;
    let (addr, _) = fill(ASSIST, seed);
    let mut msg = [0u8; 12];
    msg[..4].copy_from_slice(&fault::NULL_READ.to_le_bytes());
    call(ASSIST, op::FAULT, &msg, &mut [], &[]);
    assert!(matches!(
        collect_fault(ASSIST),
        FaultInfo::MemoryAccess { .. }
    ));
    assert_eq!(check(ASSIST, seed), (WORDS, 0, WORDS, addr));
}

fn lendable() {
    let seed = 0x5eed_0003;
    fill(ASSIST, seed);
    call(ASSIST, op::DURABLE_LEND, &77u32.to_le_bytes(), &mut [], &[]);
    let m = sys_recv(&mut [0u8; 4], 0, None).expect("assist lends");
    assert_eq!((m.operation, m.lease_count), (77, 1));
    let mut got = [0u8; 16];
    assert_eq!(sys_borrow_read(m.sender, 0, 0, &mut got), (0, 16));
    for (i, w) in got.chunks_exact(4).enumerate() {
        assert_eq!(word32(w, 0), op::durable_pattern(seed, i), "word {i}");
    }
    // Write word 0 through the lease; the restart keeps the write.
    assert_eq!(sys_borrow_write(m.sender, 0, 0, &[0; 4]), (0, 4));
    sys_reply(m.sender, 0, &[]);
    hl::restart_task(ASSIST, true).expect("restart assist");
    let (matching, zero, _, _) = check(ASSIST, seed);
    assert_eq!((matching, zero), (WORDS - 1, 1));
}

fn isolated() {
    let (addr, _) = fill(ASSIST, 0x5eed_0004);
    let mut msg = [0u8; 12];
    msg[..4].copy_from_slice(&fault::READ_ADDRESS.to_le_bytes());
    msg[4..].copy_from_slice(&addr.to_le_bytes());
    call(PEER, op::FAULT, &msg, &mut [], &[]);
    match collect_fault(PEER) {
        FaultInfo::MemoryAccess { address, .. } => assert_eq!(address, addr),
        other => panic!("expected a memory access fault at {addr:#x}, got {other:?}"),
    }
    // Peer's own durable memory was not touched by the attempt.
    assert_eq!(check(PEER, 0).1, WORDS);
}
