//! Kernel IPC: SENDs addressed to `TaskId::KERNEL`.
//!
//! The kernel answers at once (the caller never blocks). Every request that
//! names a task is checked against the caller's rights from the manifest
//! before anything happens: a request the manifest does not grant is
//! answered with `KipcError::Denied` and has no effect. A message the kernel
//! cannot decode is a usage fault, as for any malformed syscall.

use abi::kipc::{KipcError, Kipcnum, Requirement, Right, TASK_STATUS_REPLY_WORDS};
use abi::{FaultInfo, UsageError};

use crate::arch::smp;
use crate::ipc::{Next, UserError};
use crate::task::{current_id, force_fault, restart, Task, TaskState};
use crate::umem::{self, USlice};

const MAX_ARGS: usize = 4;
/// Largest kernel-IPC reply: a panic message or a task status.
const REPLY_MAX: usize = if abi::PANIC_MESSAGE_MAX > TASK_STATUS_REPLY_WORDS * 8 {
    abi::PANIC_MESSAGE_MAX
} else {
    TASK_STATUS_REPLY_WORDS * 8
};

/// Handles a SEND to the kernel from `caller`.
pub fn handle(tasks: &mut [Task], caller: usize) -> Result<Next, UserError> {
    let s = &tasks[caller].save;
    let op = s.rsi;
    let message = USlice::new(s.rdx, s.r10);
    let reply = USlice::new(s.r8, s.r9);
    let t = &tasks[caller];
    if !t.can_access(message, false) || !t.can_access(reply, true) {
        return Err(UsageError::InvalidSlice.into());
    }
    if !message.len.is_multiple_of(8) || message.len > (MAX_ARGS * 8) as u64 || s.r13 != 0 {
        return Err(UsageError::BadKernelMessage.into());
    }
    let Some(op) = u16::try_from(op).ok().and_then(Kipcnum::from_raw) else {
        return Err(UsageError::BadKernelMessage.into());
    };
    let mut raw = [0u8; MAX_ARGS * 8];
    // Safety: checked readable above; length bounded by MAX_ARGS words.
    unsafe { umem::read_into(message.base, &mut raw[..message.len as usize]) };
    let mut args = [0u64; MAX_ARGS];
    for (w, chunk) in args.iter_mut().zip(raw.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    let nargs = (message.len / 8) as usize;

    let mut out = [0u8; REPLY_MAX];
    let result = match op.requirement() {
        Requirement::Capability(c) if tasks[caller].desc.capabilities & c == 0 => {
            Err(KipcError::Denied)
        }
        Requirement::Supervisor if caller != 0 => Err(KipcError::Denied),
        _ => execute(tasks, caller, op, &args[..nargs], &mut out),
    };
    let (code, len, next) = match result {
        Ok((len, next)) => (0u32, len, next),
        Err(e) => (e as u32, 0, Next::Same),
    };
    // The platform record is too big for `out`; it is encoded once at boot.
    let source: &[u8] = if op == Kipcnum::ReadPlatform && code == 0 {
        crate::discovery::encoded()
    } else {
        &out[..len]
    };
    let len = source.len();
    // The caller may have restarted itself; then it has new registers and
    // no reply is owed.
    if op == Kipcnum::RestartTask && code == 0 && args[0] == caller as u64 {
        return Ok(Next::Reschedule);
    }
    let (code, len) = if len as u64 > reply.len {
        (KipcError::ReplyBufferTooSmall as u32, 0)
    } else {
        (code, len)
    };
    if len != 0 {
        // Safety: the reply buffer was checked writable above; `len` fits
        // it. (An empty reply buffer may sit at any address: not touched.)
        unsafe {
            core::ptr::copy_nonoverlapping(
                source.as_ptr(),
                crate::arch::paging::phys_to_virt(reply.base),
                len,
            );
        }
    }
    tasks[caller].set_results(u64::from(code), len as u64);
    Ok(next)
}

fn target(
    tasks: &[Task],
    caller: usize,
    right: Right,
    arg: Option<&u64>,
) -> Result<usize, KipcError> {
    let index = *arg.ok_or(KipcError::BadRequest)?;
    let index = usize::try_from(index).map_err(|_| KipcError::NoSuchTask)?;
    if index >= tasks.len() {
        return Err(KipcError::NoSuchTask);
    }
    if tasks[caller].desc.rights[right as usize] & (1 << index) == 0 {
        return Err(KipcError::Denied);
    }
    Ok(index)
}

fn put_words(out: &mut [u8], words: &[u64]) -> usize {
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    words.len() * 8
}

fn execute(
    tasks: &mut [Task],
    caller: usize,
    op: Kipcnum,
    args: &[u64],
    out: &mut [u8],
) -> Result<(usize, Next), KipcError> {
    match op {
        Kipcnum::ReadTaskStatus => {
            let i = target(tasks, caller, Right::Status, args.first())?;
            let w = tasks[i].abi_state().to_words();
            let generation = u64::from(tasks[i].generation().0);
            Ok((
                put_words(out, &[w[0], w[1], w[2], w[3], w[4], generation]),
                Next::Same,
            ))
        }
        Kipcnum::RestartTask => {
            let i = target(tasks, caller, Right::Restart, args.first())?;
            let start = *args.get(1).ok_or(KipcError::BadRequest)? != 0;
            restart(tasks, i, start);
            Ok((0, Next::Reschedule))
        }
        Kipcnum::FaultTask => {
            let i = target(tasks, caller, Right::Fault, args.first())?;
            if i == caller || i == 0 {
                return Err(KipcError::IllegalTarget);
            }
            let by = current_id(tasks, caller);
            force_fault(tasks, i, FaultInfo::Injected(by));
            Ok((0, Next::Reschedule))
        }
        Kipcnum::FindFaultedTask => {
            let start = *args.first().ok_or(KipcError::BadRequest)?;
            // Scanning reveals state, so it needs the status right; the
            // scan reports only tasks the caller may see.
            let rights = tasks[caller].desc.rights[Right::Status as usize];
            let found = (usize::try_from(start).unwrap_or(usize::MAX)..tasks.len())
                .find(|&i| {
                    rights & (1 << i) != 0 && matches!(tasks[i].state(), TaskState::Faulted { .. })
                })
                .map_or(u64::MAX, |i| i as u64);
            Ok((put_words(out, &[found]), Next::Same))
        }
        Kipcnum::ReadPanicMessage => {
            let i = target(tasks, caller, Right::PanicMessage, args.first())?;
            let m = tasks[i].panic_message();
            out[..m.len()].copy_from_slice(m);
            Ok((m.len(), Next::Same))
        }
        Kipcnum::ReadPlatform => Ok((0, Next::Same)),
        Kipcnum::EndRun => {
            crate::fail::end_run();
            Ok((0, Next::Same))
        }
        Kipcnum::CpuCount => Ok((put_words(out, &[smp::cpu_count() as u64]), Next::Same)),
        Kipcnum::CpuApicId => {
            let cpu = usize::try_from(*args.first().ok_or(KipcError::BadRequest)?)
                .map_err(|_| KipcError::CpuUnavailable)?;
            let w =
                smp::run_on(cpu, smp::Op::ApicId, [0; 8]).map_err(|_| KipcError::CpuUnavailable)?;
            Ok((put_words(out, &[w[0]]), Next::Same))
        }
        Kipcnum::FlushCaches => {
            for cpu in 0..smp::cpu_count() {
                smp::run_on(cpu, smp::Op::Wbinvd, [0; 8]).map_err(|_| KipcError::CpuUnavailable)?;
            }
            crate::seam::note_caches_flushed();
            Ok((0, Next::Same))
        }
        Kipcnum::KeyIdPartition => {
            let (bits, mktme, tdx) = crate::seam::keyid_partition();
            Ok((
                put_words(out, &[u64::from(bits), u64::from(mktme), u64::from(tdx)]),
                Next::Same,
            ))
        }
        Kipcnum::ReadFadt => {
            let port = |b: Option<platform::fadt::RegisterBlock>| {
                b.map_or((0, 0), |b| (b.address, u64::from(b.len)))
            };
            let w = match crate::discovery::fadt() {
                Some(f) => {
                    let (g, gl) = port(f.gpe0);
                    let (p, pl) = port(f.pm1a_event);
                    [u64::from(f.sci_int), g, gl, p, pl]
                }
                None => [0; 5],
            };
            Ok((put_words(out, &w), Next::Same))
        }
        Kipcnum::Scrub => {
            let (&base, &len) = (
                args.first().ok_or(KipcError::BadRequest)?,
                args.get(1).ok_or(KipcError::BadRequest)?,
            );
            scrub(base, len)?;
            Ok((0, Next::Same))
        }
        Kipcnum::OnlineMemory | Kipcnum::OfflineMemory => {
            let (&base, &len) = (
                args.first().ok_or(KipcError::BadRequest)?,
                args.get(1).ok_or(KipcError::BadRequest)?,
            );
            if op == Kipcnum::OnlineMemory {
                crate::tdmem::online(base, len)?;
            } else {
                crate::tdmem::offline(base, len)?;
            }
            Ok((0, Next::Same))
        }
    }
}

/// Zeroes `[base, base+len)`: 4 KiB-aligned, entirely TD memory
/// (`crate::tdmem`: RAM or online hot-plug memory, never the first MiB, the
/// kernel or a task), and inside the direct map.
fn scrub(base: u64, len: u64) -> Result<(), KipcError> {
    const PAGE: u64 = 4096;
    if !base.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return Err(KipcError::Misaligned);
    }
    crate::tdmem::check(base, len)?;
    // TD memory beyond the direct map exists (hot-plug memory high up) but
    // the kernel cannot reach it to zero it.
    if base + len > crate::arch::paging::DIRECT_MAP_LIMIT {
        return Err(KipcError::BadRequest);
    }
    // Safety: the range is page-aligned TD memory (checked above: RAM or
    // online memory, not the kernel, not a task, not firmware's first MiB)
    // inside the direct map; the memory authority owns it. MOVDIR64B would
    // be used where TDX hardware needs it; the emulated module has no
    // integrity to restore.
    unsafe { core::ptr::write_bytes(crate::arch::paging::phys_to_virt(base), 0, len as usize) };
    Ok(())
}
