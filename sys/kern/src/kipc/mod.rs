//! Kernel IPC: SENDs addressed to `TaskId::KERNEL`.
//!
//! The kernel answers at once (the caller never blocks). Every request that
//! names a task is checked against the caller's rights from the manifest
//! before anything happens, and every other request against the caller's
//! capabilities: a request the manifest does not grant is answered with
//! `KipcError::Denied` and has no effect. A message the kernel cannot
//! decode is a usage fault, as for any malformed syscall.
//!
//! Layout: this module decodes the message, applies the manifest's
//! requirement, routes the request and writes the reply. The requests
//! themselves live in two services that never call each other:
//! [`supervision`] (the state of tasks: status, restart, faults, panic
//! messages) and [`platform`] (the machine: the platform record, CPUs,
//! caches, KeyIDs, the FADT and the physical memory the memory authority
//! onlines, offlines and scrubs). Both answer through [`answer`].

mod answer;
pub(crate) mod platform;
mod supervision;

use abi::kipc::{KipcError, Kipcnum, Requirement, TASK_STATUS_REPLY_WORDS};
use abi::syscall::{Response, SendArgs};
use abi::UsageError;

use crate::outcome::{Next, UserError};
use crate::task::Task;
use crate::umem;

const MAX_ARGS: usize = 4;
/// Largest kernel-IPC reply written into kernel storage: a panic message or
/// a task status. (The platform record is encoded once at boot and sent
/// from there.)
const REPLY_MAX: usize = if abi::PANIC_MESSAGE_MAX > TASK_STATUS_REPLY_WORDS * 8 {
    abi::PANIC_MESSAGE_MAX
} else {
    TASK_STATUS_REPLY_WORDS * 8
};

/// Which service answers a request.
enum Service {
    Supervision(supervision::Request),
    Platform(platform::Request),
}

fn service(op: Kipcnum) -> Service {
    match op {
        Kipcnum::ReadTaskStatus => Service::Supervision(supervision::Request::ReadTaskStatus),
        Kipcnum::RestartTask => Service::Supervision(supervision::Request::RestartTask),
        Kipcnum::FaultTask => Service::Supervision(supervision::Request::FaultTask),
        Kipcnum::FindFaultedTask => Service::Supervision(supervision::Request::FindFaultedTask),
        Kipcnum::ReadPanicMessage => Service::Supervision(supervision::Request::ReadPanicMessage),
        Kipcnum::EndRun => Service::Supervision(supervision::Request::EndRun),
        Kipcnum::ArmKill => Service::Supervision(supervision::Request::ArmKill),
        Kipcnum::ReadPlatform => Service::Platform(platform::Request::ReadPlatform),
        Kipcnum::CpuApicId => Service::Platform(platform::Request::CpuApicId),
        Kipcnum::FlushCaches => Service::Platform(platform::Request::FlushCaches),
        Kipcnum::Scrub => Service::Platform(platform::Request::Scrub),
        Kipcnum::CpuCount => Service::Platform(platform::Request::CpuCount),
        Kipcnum::KeyIdPartition => Service::Platform(platform::Request::KeyIdPartition),
        Kipcnum::ReadFadt => Service::Platform(platform::Request::ReadFadt),
        Kipcnum::OnlineMemory => Service::Platform(platform::Request::OnlineMemory),
        Kipcnum::OfflineMemory => Service::Platform(platform::Request::OfflineMemory),
    }
}

/// Handles a SEND to the kernel from `caller`. A kernel-IPC error is a
/// recoverable response code; a message that cannot be decoded (or memory
/// the caller does not own) faults the caller.
pub fn handle(tasks: &mut [Task], caller: usize, send: &SendArgs) -> Result<Next, UserError> {
    let (message, reply) = (send.message, send.reply);
    let t = &tasks[caller];
    if !t.can_access(message, false) || !t.can_access(reply, true) {
        return Err(UsageError::InvalidSlice.into());
    }
    if !message.len.is_multiple_of(8) || message.len > (MAX_ARGS * 8) as u64 || send.leases.len != 0
    {
        return Err(UsageError::BadKernelMessage.into());
    }
    let Some(op) = u16::try_from(send.operation)
        .ok()
        .and_then(Kipcnum::from_raw)
    else {
        return Err(UsageError::BadKernelMessage.into());
    };
    let mut raw = [0u8; MAX_ARGS * 8];
    // Safety: checked readable above; length bounded by MAX_ARGS words.
    unsafe { umem::read_into(message.base, &mut raw[..message.len as usize]) };
    let mut args = [0u64; MAX_ARGS];
    for (w, chunk) in args.iter_mut().zip(raw.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    let args = &args[..(message.len / 8) as usize];

    let mut out = [0u8; REPLY_MAX];
    let answer = match (op.requirement(), service(op)) {
        (Requirement::Capability(c), _) if !tasks[caller].has_capability(c) => {
            Err(KipcError::Denied)
        }
        (Requirement::Supervisor, _) if caller != 0 => Err(KipcError::Denied),
        (_, Service::Supervision(s)) => supervision::execute(tasks, caller, s, args, &mut out),
        (_, Service::Platform(p)) => platform::execute(p, args, &mut out),
    }
    .map_err(|e| UserError::Recoverable(e as u32))?;
    // The caller may have restarted itself; then it has new registers and
    // no reply is owed.
    if op == Kipcnum::RestartTask && args.first() == Some(&(caller as u64)) {
        return Ok(Next::Reschedule);
    }
    let bytes = answer.bytes;
    if bytes.len() as u64 > reply.len {
        return Err(UserError::Recoverable(
            KipcError::ReplyBufferTooSmall as u32,
        ));
    }
    if !bytes.is_empty() {
        // Safety: the reply buffer was checked writable above; `bytes`
        // fits it. (An empty reply buffer may sit at any address: not
        // touched.)
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                crate::arch::paging::phys_to_virt(reply.base),
                bytes.len(),
            );
        }
    }
    tasks[caller].respond(Response {
        code: 0,
        value: bytes.len() as u64,
    });
    Ok(answer.next)
}
