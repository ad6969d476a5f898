//! Higher-level wrappers: kernel IPC, sleeping, and a typed task handle.
//!
//! Kernel IPC requests are SENDs to [`TaskId::KERNEL`] whose arguments are
//! little-endian `u64` words (see `abi::kipc`). The kernel refuses a request
//! the manifest does not grant with [`KipcError::Denied`]; these wrappers
//! surface that as an error, never a panic.

use abi::kipc::{KipcError, Kipcnum, TASK_STATUS_REPLY_WORDS};
use abi::{Generation, TaskId, TaskIndex, TaskState};

use crate::{sys_recv_closed, sys_send, sys_set_timer_after};

/// Why a kernel-IPC request failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KipcFailure {
    /// The kernel answered with a known error code.
    Kernel(KipcError),
    /// The kernel answered with a code this library does not know.
    Unknown(u32),
}

fn kipc(op: Kipcnum, args: &[u64], reply: &mut [u8]) -> Result<usize, KipcFailure> {
    let mut msg = [0u8; 8 * 4];
    for (chunk, word) in msg.chunks_exact_mut(8).zip(args) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let (rc, len) = sys_send(
        TaskId::KERNEL,
        op as u16,
        &msg[..8 * args.len()],
        reply,
        &[],
    );
    if rc == 0 {
        Ok(len)
    } else {
        Err(KipcError::from_raw(rc).map_or(KipcFailure::Unknown(rc), KipcFailure::Kernel))
    }
}

fn word(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// Reads the state and current generation of the task at `index`.
pub fn read_task_status(index: TaskIndex) -> Result<(TaskState, Generation), KipcFailure> {
    let mut reply = [0u8; 8 * TASK_STATUS_REPLY_WORDS];
    kipc(Kipcnum::ReadTaskStatus, &[u64::from(index.0)], &mut reply)?;
    let words = [
        word(&reply, 0),
        word(&reply, 1),
        word(&reply, 2),
        word(&reply, 3),
        word(&reply, 4),
    ];
    let state = TaskState::from_words(words).ok_or(KipcFailure::Kernel(KipcError::BadRequest))?;
    Ok((state, Generation(word(&reply, 5) as u16)))
}

/// Restarts the task at `index` (bumping its generation); with `start`
/// false it is left stopped.
pub fn restart_task(index: TaskIndex, start: bool) -> Result<(), KipcFailure> {
    kipc(
        Kipcnum::RestartTask,
        &[u64::from(index.0), u64::from(start)],
        &mut [],
    )
    .map(|_| ())
}

/// Ends the run: the kernel resets or halts the machine as the manifest's
/// `[kernel] on-finish` says (supervisor only). Returns when the image is
/// to stay up, or the kernel refused.
pub fn end_run() -> Result<(), KipcFailure> {
    kipc(Kipcnum::EndRun, &[], &mut []).map(|_| ())
}

/// Faults the task at `index` with `FaultInfo::Injected`.
pub fn fault_task(index: TaskIndex) -> Result<(), KipcFailure> {
    kipc(Kipcnum::FaultTask, &[u64::from(index.0)], &mut []).map(|_| ())
}

/// Arms a kill of the task at `index` at `point` of its work (or clears it
/// with `KillPoint::Disarm`); `CorruptDurable` is done at once. Needs the
/// Fault right over it.
pub fn arm_kill(index: TaskIndex, point: abi::kipc::KillPoint) -> Result<(), KipcFailure> {
    let [p, arg] = point.to_words();
    kipc(Kipcnum::ArmKill, &[u64::from(index.0), p, arg], &mut []).map(|_| ())
}

/// The first faulted task at or after `start`, if any.
pub fn find_faulted_task(start: usize) -> Result<Option<TaskIndex>, KipcFailure> {
    let mut reply = [0u8; 8];
    kipc(Kipcnum::FindFaultedTask, &[start as u64], &mut reply)?;
    let w = word(&reply, 0);
    Ok(u16::try_from(w).ok().map(TaskIndex))
}

/// Copies the panic message of the task at `index` into `buf`; returns its
/// length.
pub fn read_panic_message(index: TaskIndex, buf: &mut [u8]) -> Result<usize, KipcFailure> {
    kipc(Kipcnum::ReadPanicMessage, &[u64::from(index.0)], buf)
}

/// Sleeps for `ticks` milliseconds using the notification bits `mask`
/// (which must be bits the task does not use for anything else). One
/// kernel entry arms the timer (SET_TIMER's relative form: the kernel adds
/// its clock, saturating, so no `ticks` overflows into the past).
pub fn sleep_for(ticks: u64, mask: u64) {
    sys_set_timer_after(ticks, mask);
    loop {
        // A closed receive from the kernel takes only notifications.
        if let Ok(m) = sys_recv_closed(&mut [], mask, TaskId::KERNEL) {
            if m.operation & mask != 0 {
                break;
            }
        }
    }
}

/// Reads the platform record (needs the `platform` capability).
///
/// Stack: the encoded record (`ENCODED_MAX`, about 20 KiB at the limits of
/// `abi::limits`) lives only in this function's frame, which is never
/// inlined, so a caller pays for its decoded copy alone.
#[inline(never)]
pub fn read_platform() -> Result<abi::platform::PlatformRecord, KipcFailure> {
    let mut buf = [0u8; abi::platform::ENCODED_MAX];
    let n = kipc(Kipcnum::ReadPlatform, &[], &mut buf)?;
    abi::platform::decode(&buf[..n]).map_err(|_| KipcFailure::Kernel(KipcError::BadRequest))
}

/// How many CPUs run (needs `platform`).
pub fn cpu_count() -> Result<usize, KipcFailure> {
    let mut reply = [0u8; 8];
    kipc(Kipcnum::CpuCount, &[], &mut reply)?;
    Ok(word(&reply, 0) as usize)
}

/// Asks CPU `cpu` for its own APIC id (needs `platform`).
pub fn cpu_apic_id(cpu: usize) -> Result<u32, KipcFailure> {
    let mut reply = [0u8; 8];
    kipc(Kipcnum::CpuApicId, &[cpu as u64], &mut reply)?;
    Ok(word(&reply, 0) as u32)
}

/// Writes back and invalidates caches on every CPU (needs
/// `memory-authority`).
pub fn flush_caches() -> Result<(), KipcFailure> {
    kipc(Kipcnum::FlushCaches, &[], &mut []).map(|_| ())
}

/// Zeroes physical memory `[base, base+len)`, page-aligned (needs
/// `memory-authority`). Only TD memory: RAM of the platform record or online
/// hot-plug memory; the first MiB (`LowMemory`), the kernel
/// (`KernelMemory`), any task (`TaskMemory`) and anything that is not RAM
/// (`NotRam`: MMIO, holes, absent memory) are refused.
pub fn scrub(base: u64, len: u64) -> Result<(), KipcFailure> {
    kipc(Kipcnum::Scrub, &[base, len], &mut []).map(|_| ())
}

/// How the kernel clears memory for [`scrub`] (chosen from CPUID at boot;
/// needs `memory-authority`). `None` for a code this library does not know.
pub fn scrub_method() -> Result<Option<abi::kipc::ScrubMethod>, KipcFailure> {
    let mut reply = [0u8; 8];
    kipc(Kipcnum::Scrub, &[0, 0], &mut reply)?;
    Ok(abi::kipc::ScrubMethod::from_code(word(&reply, 0)))
}

/// The KeyID partitioning `(keyid bits, MKTME KeyIDs, TDX KeyIDs)` (needs
/// `seamcall`).
pub fn keyid_partition() -> Result<(u8, u32, u32), KipcFailure> {
    let mut reply = [0u8; 24];
    kipc(Kipcnum::KeyIdPartition, &[], &mut reply)?;
    Ok((
        word(&reply, 0) as u8,
        word(&reply, 1) as u32,
        word(&reply, 2) as u32,
    ))
}

/// FADT facts for the memory hot-plug driver (needs `platform`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FadtInfo {
    pub sci_irq: u16,
    pub gpe0_port: u64,
    pub gpe0_len: u64,
    pub pm1a_event_port: u64,
    pub pm1a_event_len: u64,
}

/// Reads the FADT facts (zeros where the firmware gave none).
pub fn read_fadt() -> Result<FadtInfo, KipcFailure> {
    let mut reply = [0u8; 40];
    kipc(Kipcnum::ReadFadt, &[], &mut reply)?;
    Ok(FadtInfo {
        sci_irq: word(&reply, 0) as u16,
        gpe0_port: word(&reply, 1),
        gpe0_len: word(&reply, 2),
        pm1a_event_port: word(&reply, 3),
        pm1a_event_len: word(&reply, 4),
    })
}

/// Tells the kernel `[base, base+len)` is present hot-plug memory the
/// memory authority may now use (needs `memory-authority`). The kernel
/// refuses a range that is misaligned, empty or wrapping, not entirely in
/// the firmware's hot-plug window, overlapping boot RAM or a range already
/// online, or that does not fit its table, each with its own `KipcError`.
pub fn online_memory(base: u64, len: u64) -> Result<(), KipcFailure> {
    kipc(Kipcnum::OnlineMemory, &[base, len], &mut []).map(|_| ())
}

/// Takes the online range exactly equal to `[base, base+len)` back out of
/// TD memory (needs `memory-authority`); `NotOnline` if there is none.
pub fn offline_memory(base: u64, len: u64) -> Result<(), KipcFailure> {
    kipc(Kipcnum::OfflineMemory, &[base, len], &mut []).map(|_| ())
}
