//! Every fault kind in a task, seen by the supervisor, never hurting the
//! kernel; and isolation: a task touching memory that is not its own
//! faults.

use abi::{FaultInfo, UsageError};
use test_api::{assist as op, fault};
use userlib::{hl, sys_refresh_task_id};

use crate::{call, collect_fault, id, Case, ASSIST, PEER, SUITE};

pub static CASES: &[Case] = &[
    ("fault_null_pointer_read", null_read),
    ("isolation_reading_kernel_memory_faults", read_kernel),
    (
        "isolation_reading_another_tasks_memory_faults",
        read_other_task,
    ),
    ("isolation_writing_own_text_faults", write_text),
    ("isolation_writing_own_rodata_faults", write_rodata),
    ("isolation_executing_data_faults", exec_data),
    ("fault_stack_overflow_hits_the_guard_page", stack_overflow),
    ("fault_illegal_instruction", illegal_instruction),
    ("fault_divide_by_zero", divide_by_zero),
    ("fault_privileged_instruction_is_gp", privileged),
    ("fault_io_port_not_granted_is_gp", io_port),
    ("fault_breakpoint_exception", breakpoint),
    ("fault_int_2_is_gp_not_an_nmi", software_nmi),
    (
        "fault_int_18_is_gp_not_a_machine_check",
        software_machine_check,
    ),
    ("fault_panic_keeps_its_message", panic_message),
    ("fault_bad_syscall_number", bad_syscall),
    ("fault_syscall_slice_into_kernel_memory", bad_slice),
    (
        "fault_fast_send_message_past_the_end_of_ram",
        send_across_ram_end,
    ),
    (
        "fault_fast_send_reply_buffer_in_rodata",
        send_reply_into_rodata,
    ),
    (
        "fault_fast_reply_message_past_the_end_of_ram",
        reply_across_ram_end,
    ),
    (
        "fault_lease_outside_client_memory_faults_the_client",
        bad_lease,
    ),
    (
        "fault_fast_send_second_lease_outside_sender_memory",
        send_lease_outside_to_waiting,
    ),
    (
        "fault_fast_send_lease_table_in_kernel_memory",
        send_lease_table_outside_to_waiting,
    ),
    ("fault_too_many_leases", too_many_leases),
    ("fault_irq_control_on_unbound_bits", unbound_irq),
    (
        "fault_set_timer_flag_word_with_reserved_bits",
        set_timer_reserved_bits,
    ),
    ("fault_task_runs_again_after_restart", runs_after_restart),
];

/// Asks assist to fault in way `kind` and returns what the kernel recorded
/// (after checking the supervisor saw it, and restarting assist).
fn assist_fault(kind: u32, arg: u64) -> FaultInfo {
    let mut msg = [0u8; 12];
    msg[..4].copy_from_slice(&kind.to_le_bytes());
    msg[4..].copy_from_slice(&arg.to_le_bytes());
    call(ASSIST, op::FAULT, &msg, &mut [], &[]);
    collect_fault(ASSIST)
}

/// A page fault at `address` by a user-mode access (error code bit 2).
fn user_page_fault(f: FaultInfo, address: u64) -> u64 {
    let FaultInfo::MemoryAccess {
        address: a,
        error_code,
    } = f
    else {
        panic!("expected a memory access fault, got {f:?}")
    };
    assert_eq!(a, address);
    assert_ne!(error_code & 4, 0, "the fault must be a user-mode access");
    error_code
}

fn null_read() {
    let e = user_page_fault(assist_fault(fault::NULL_READ, 0), 0);
    assert_eq!(e & 1, 0, "page 0 is not mapped at all");
}

fn read_kernel() {
    let e = user_page_fault(assist_fault(fault::READ_KERNEL, 0), 0x10_0000);
    assert_eq!(e & 1, 1, "kernel pages are present but supervisor-only");
}

static SUITE_SECRET: u64 = 0x5ec2e7;

fn read_other_task() {
    let address = core::ptr::addr_of!(SUITE_SECRET) as u64;
    user_page_fault(assist_fault(fault::READ_ADDRESS, address), address);
}

fn write_text() {
    let e = assist_fault(fault::WRITE_TEXT, 0);
    let FaultInfo::MemoryAccess { error_code, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(error_code & 0b11, 0b11, "a write to a present page");
}

fn write_rodata() {
    let e = assist_fault(fault::WRITE_RODATA, 0);
    let FaultInfo::MemoryAccess { error_code, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(error_code & 0b11, 0b11, "a write to a present page");
}

fn exec_data() {
    let e = assist_fault(fault::EXEC_DATA, 0);
    let FaultInfo::MemoryAccess { error_code, .. } = e else {
        panic!("{e:?}")
    };
    assert_ne!(
        error_code & 0x10,
        0,
        "an instruction fetch from a no-execute page"
    );
}

fn stack_overflow() {
    let f = assist_fault(fault::STACK_OVERFLOW, 0);
    assert!(matches!(f, FaultInfo::StackOverflow { .. }), "{f:?}");
}

fn illegal_instruction() {
    assert!(matches!(
        assist_fault(fault::ILLEGAL_INSTRUCTION, 0),
        FaultInfo::IllegalInstruction { .. }
    ));
}

fn divide_by_zero() {
    assert!(matches!(
        assist_fault(fault::DIVIDE_BY_ZERO, 0),
        FaultInfo::DivideError { .. }
    ));
}

fn privileged() {
    assert_eq!(
        assist_fault(fault::PRIVILEGED_INSTRUCTION, 0),
        FaultInfo::GeneralProtection { error_code: 0 }
    );
}

fn io_port() {
    assert_eq!(
        assist_fault(fault::IO_PORT, 0),
        FaultInfo::GeneralProtection { error_code: 0 }
    );
}

/// `int n` from ring 3 through a DPL-0 gate is #GP with error code
/// `n * 8 + 2` (IDT, external bit clear).
fn gp_for_gate(vector: u64) -> FaultInfo {
    FaultInfo::GeneralProtection {
        error_code: vector * 8 + 2,
    }
}

/// A task cannot reach the NMI handler: its gate keeps DPL 0, so the
/// attempt is the task's own #GP, and the kernel counts no NMI.
fn software_nmi() {
    assert_eq!(assist_fault(fault::SOFTWARE_NMI, 0), gp_for_gate(2));
}

/// Nor the machine-check handler, which would stop the machine.
fn software_machine_check() {
    assert_eq!(
        assist_fault(fault::SOFTWARE_MACHINE_CHECK, 0),
        gp_for_gate(18)
    );
}

fn breakpoint() {
    assert_eq!(
        assist_fault(fault::BREAKPOINT, 0),
        FaultInfo::Exception {
            vector: 3,
            error_code: 0
        }
    );
}

fn panic_message() {
    let mut msg = [0u8; 12];
    msg[..4].copy_from_slice(&fault::PANIC.to_le_bytes());
    call(ASSIST, op::FAULT, &msg, &mut [], &[]);
    let mut text = [0u8; abi::PANIC_MESSAGE_MAX];
    let n = hl::read_panic_message(ASSIST, &mut text).unwrap();
    let text = core::str::from_utf8(&text[..n]).unwrap();
    assert!(
        text.contains("assist panicked on request"),
        "message: {text}"
    );
    assert_eq!(collect_fault(ASSIST), FaultInfo::Panic);
}

fn bad_syscall() {
    assert_eq!(
        assist_fault(fault::BAD_SYSCALL, 0),
        FaultInfo::SyscallUsage(UsageError::BadSyscallNumber)
    );
}

fn bad_slice() {
    assert_eq!(
        assist_fault(fault::BAD_SLICE, 0),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

/// The kernel's IPC fast path (peer waits in RECV, or for exactly this
/// reply) accepts a slice inside the task's RAM without walking its regions:
/// one running 8 bytes past the RAM's end, into the guard page, must still
/// be refused with the generic path's fault (the case first checks that a
/// slice ending exactly at the end goes through).
fn send_across_ram_end() {
    assert_eq!(
        assist_fault(fault::SEND_ACROSS_RAM_END, u64::from(PEER.0)),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

/// A reply buffer the sender can only read, to a receiver waiting in RECV.
fn send_reply_into_rodata() {
    assert_eq!(
        assist_fault(fault::SEND_REPLY_INTO_RODATA, u64::from(PEER.0)),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

/// A REPLY message running past the RAM's end, to a client (assist,
/// relaying with a 4-byte reply buffer) waiting for exactly this reply.
fn reply_across_ram_end() {
    let mut request = [0u8; 20];
    request[..4].copy_from_slice(&u32::from(PEER.0).to_le_bytes());
    request[4..8].copy_from_slice(&u32::from(op::REPLY_PAST_RAM_END).to_le_bytes());
    call(ASSIST, op::RELAY, &request, &mut [], &[]);
    assert_eq!(
        collect_fault(PEER),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

fn bad_lease() {
    assert_eq!(
        assist_fault(fault::BAD_LEASE, 0),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

/// A lease table whose second entry names kernel memory, to a receiver
/// waiting in RECV (the SEND fast path copies and checks the table).
fn send_lease_outside_to_waiting() {
    assert_eq!(
        assist_fault(fault::SEND_LEASE_OUTSIDE_TO_WAITING, u64::from(PEER.0)),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

/// A lease table in kernel memory, to a receiver waiting in RECV.
fn send_lease_table_outside_to_waiting() {
    assert_eq!(
        assist_fault(
            fault::SEND_LEASE_TABLE_OUTSIDE_TO_WAITING,
            u64::from(PEER.0)
        ),
        FaultInfo::SyscallUsage(UsageError::InvalidSlice)
    );
}

fn too_many_leases() {
    assert_eq!(
        assist_fault(fault::TOO_MANY_LEASES, 0),
        FaultInfo::SyscallUsage(UsageError::TooManyLeases)
    );
}

/// SET_TIMER's flag word admits `ARMED`, alone or with `RELATIVE`, and 0:
/// anything else is the usage fault every reserved bit gets, on the fast
/// path's entry as on the generic one.
fn set_timer_reserved_bits() {
    use abi::set_timer::{ARMED, RELATIVE};
    for flags in [RELATIVE, 1 << 2, ARMED | 1 << 2, ARMED | RELATIVE | 1 << 63] {
        assert_eq!(
            assist_fault(fault::SET_TIMER_FLAGS, flags),
            FaultInfo::SyscallUsage(UsageError::ReservedBits),
            "flags {flags:#x}"
        );
    }
}

fn unbound_irq() {
    assert_eq!(
        assist_fault(fault::UNBOUND_IRQ, 0),
        FaultInfo::SyscallUsage(UsageError::NoIrq)
    );
}

fn runs_after_restart() {
    let before = sys_refresh_task_id(ASSIST).generation();
    assist_fault(fault::NULL_READ, 0);
    let mut reply = [0u8; 2];
    let n = call(ASSIST, op::ECHO, b"ok", &mut reply, &[]);
    assert_eq!(&reply[..n], b"ok");
    assert_ne!(id(ASSIST).generation(), before);
    let _ = SUITE;
}
