//! The kernel's services as the library's traits: SEAMCALL and the cache flush
//! ([`seam::Seam`]), scrub ([`Scrubber`]), the online-memory table ([`MemoryAuthority`]) and
//! the timer ([`Timer`]), each a syscall or kernel IPC of `userlib`.
//!
//! [`SeamKernel`] adds the asynchronous SEAMCALL: `start` is the kernel's SEAMCALL_START with
//! the manifest's `seam-done` notification; `finish_one` collects from the CPUs it started,
//! and while none has finished waits for that notification (or its timer: a CPU silent for
//! [`ASYNC_TIMEOUT_TICKS`] is reported as timed out). A CPU still busy with the call of a
//! dead incarnation of this task (the kernel drops its result and posts `seam-done` when it
//! ends) is waited for the same way before the start is tried again. `poll_one` collects
//! without waiting (TDMR.INIT while serving); a CPU that never answers then leaves the state
//! `Initializing` with its progress visible in `status`, rather than stopping the server.

use abi::kipc::KipcError;
use tdx_abi::{SeamcallArgs, SeamcallResult};
use tdx_host::regions::MemoryAuthority;
use tdx_host::seam::{self, CpuIndex, Deferred, Finished, KernelError, SeamError, MAX_IN_FLIGHT};
use tdx_host::server::pacing::Timer;
use tdx_host::server::Scrubber;
use tdx_planner::addr::PhysRange;
use userlib::hl::{self, KipcFailure};
use userlib::{
    sys_get_timer, sys_recv_closed, sys_seamcall, sys_set_timer, sys_set_timer_after, TaskId,
};
use userlib::{sys_seamcall_collect, sys_seamcall_start};
use userlib::{SeamcallOutcome as Out, UnknownOutcome};

use super::task_gen::notifications::{SEAM_DONE_MASK, TIMER_MASK};

/// Timer ticks (ms) a started SEAMCALL may take before bring-up reports its CPU timed out.
pub(super) const ASYNC_TIMEOUT_TICKS: u64 = 10_000;

/// The `seam-done` notification's bit number.
const SEAM_DONE_BIT: u8 = SEAM_DONE_MASK.trailing_zeros() as u8;

type Call = Result<SeamcallResult, SeamError>;

/// The result words of a SEAMCALL (synchronous, or collected) as the library's answer.
fn answer(o: Result<Out, UnknownOutcome>, named: CpuIndex) -> Call {
    let kernel = |e| Err(SeamError::Kernel(e));
    match o {
        Ok(Out::Returned { rax, out }) => Ok(seam::returned(rax, out)),
        Ok(Out::VmFailInvalid) => Err(SeamError::VmFailInvalid),
        Ok(Out::FaultUd) => Err(SeamError::Ud),
        Ok(Out::FaultGp) => Err(SeamError::Gp),
        Ok(Out::NoSuchCpu) => Err(SeamError::NoSuchCpu(named)),
        Ok(Out::Timeout) => Err(SeamError::Timeout(named)),
        Ok(Out::Denied) => kernel(KernelError::Kipc(KipcError::Denied)),
        // The kernel's gate refused the call before the module saw it: a bug in this
        // task's operands.
        Ok(Out::LeafRefused) => kernel(KernelError::LeafRefused),
        Ok(Out::OperandRefused { .. }) => kernel(KernelError::OperandRefused),
        Ok(Out::CpuBusy) => Err(SeamError::CpuBusy(named)),
        // Not answers of a call: the asynchronous bookkeeping went wrong.
        Ok(Out::Started | Out::InProgress | Out::NothingToCollect) => {
            Err(SeamError::Timeout(named))
        }
        Err(UnknownOutcome(code)) => Err(SeamError::UnknownOutcome(code)),
    }
}

fn kernel_error(e: KipcFailure) -> KernelError {
    match e {
        KipcFailure::Kernel(k) => KernelError::Kipc(k),
        KipcFailure::Unknown(raw) => KernelError::from_raw(raw),
    }
}

/// The kernel's services: SEAMCALL, cache flush, scrub, the online-memory table, the timer.
pub(super) struct Kernel;

impl seam::Seam for Kernel {
    fn seamcall(&mut self, cpu: Option<CpuIndex>, a: SeamcallArgs) -> Call {
        let regs = [a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11];
        let named = cpu.unwrap_or(CpuIndex(0));
        answer(sys_seamcall(cpu.map(|c| c.0), a.rax, regs), named)
    }

    fn deferred(&mut self) -> &mut Deferred {
        // Never used: `Kernel` is only the synchronous path's; `SeamKernel` starts calls.
        unreachable!("Kernel keeps no started calls")
    }

    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
        hl::flush_caches().map_err(kernel_error)
    }
}

/// [`Kernel`] with the asynchronous SEAMCALL: the CPUs it started a call on.
pub(super) struct SeamKernel {
    in_flight: heapless::Vec<CpuIndex, MAX_IN_FLIGHT>,
    unused: Deferred,
}

impl SeamKernel {
    pub(super) fn new() -> Self {
        SeamKernel {
            in_flight: heapless::Vec::new(),
            unused: Deferred::default(),
        }
    }

    /// This instance as [`Self::new`] makes it (nothing started, no answer kept). The server
    /// loop keeps one and empties it before each use: one store, where building a new one
    /// writes its whole CPU list on every request. `unused` is always empty: only the trait's
    /// default `start` keeps answers there, and this type has its own.
    pub(super) fn emptied(&mut self) -> &mut Self {
        self.in_flight.clear();
        self
    }

    /// Waits for `seam-done` or the deadline; `false` once the deadline has passed.
    fn wait(deadline: u64) -> bool {
        if sys_get_timer().now >= deadline {
            return false;
        }
        sys_set_timer(Some(deadline), TIMER_MASK);
        let _ = sys_recv_closed(&mut [], SEAM_DONE_MASK | TIMER_MASK, TaskId::KERNEL);
        sys_set_timer(None, 0);
        true
    }
}

impl seam::Seam for SeamKernel {
    fn seamcall(&mut self, cpu: Option<CpuIndex>, a: SeamcallArgs) -> Call {
        Kernel.seamcall(cpu, a)
    }

    fn start(&mut self, cpu: CpuIndex, a: SeamcallArgs) -> Result<(), SeamError> {
        let regs = [a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11];
        let deadline = sys_get_timer().now + ASYNC_TIMEOUT_TICKS;
        loop {
            match sys_seamcall_start(cpu.0, SEAM_DONE_BIT, a.rax, regs) {
                Ok(Out::Started) => break,
                // Busy with a dead incarnation's call: wait for it to end.
                Ok(Out::CpuBusy) if !self.in_flight.contains(&cpu) => {
                    if !Self::wait(deadline) {
                        return Err(SeamError::Timeout(cpu));
                    }
                }
                // A refusal: nothing started.
                o => return Err(answer(o, cpu).err().unwrap_or(SeamError::UnknownOutcome(0))),
            }
        }
        self.in_flight
            .push(cpu)
            .map_err(|_| SeamError::CpuBusy(cpu))
    }

    fn finish_one(&mut self) -> Result<Finished, SeamError> {
        if self.in_flight.is_empty() {
            return Err(SeamError::NothingStarted);
        }
        let deadline = sys_get_timer().now + ASYNC_TIMEOUT_TICKS;
        loop {
            for k in 0..self.in_flight.len() {
                let cpu = self.in_flight[k];
                match sys_seamcall_collect(cpu.0) {
                    Ok(Out::InProgress) => {}
                    o => {
                        self.in_flight.swap_remove(k);
                        return Ok((cpu, answer(o, cpu)));
                    }
                }
            }
            if !Self::wait(deadline) {
                // The CPU stays busy in the kernel; this bring-up stops with its timeout.
                let cpu = self.in_flight.swap_remove(0);
                return Ok((cpu, Err(SeamError::Timeout(cpu))));
            }
        }
    }

    /// One pass over `cpus` (any instance may collect: the kernel keeps the calls per task).
    fn poll_one(&mut self, cpus: &[CpuIndex]) -> Result<Option<Finished>, SeamError> {
        for &cpu in cpus {
            match sys_seamcall_collect(cpu.0) {
                Ok(Out::InProgress) => {}
                o => {
                    self.in_flight.retain(|&c| c != cpu);
                    return Ok(Some((cpu, answer(o, cpu))));
                }
            }
        }
        Ok(None)
    }

    fn deferred(&mut self) -> &mut Deferred {
        &mut self.unused
    }

    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
        Kernel.flush_caches_all_cpus()
    }
}

impl MemoryAuthority for SeamKernel {
    fn online_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
        Kernel.online_memory(r)
    }
    fn offline_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
        Kernel.offline_memory(r)
    }
}

impl Scrubber for Kernel {
    fn scrub(&mut self, r: PhysRange) -> Result<(), KernelError> {
        hl::scrub(r.base().0, r.size().0).map_err(kernel_error)
    }
}

impl MemoryAuthority for Kernel {
    fn online_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
        hl::online_memory(r.base().0, r.size().0).map_err(kernel_error)
    }
    fn offline_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
        hl::offline_memory(r.base().0, r.size().0).map_err(kernel_error)
    }
}

impl Timer for Kernel {
    fn now(&self) -> u64 {
        sys_get_timer().now
    }
    fn arm(&mut self, tick: u64) {
        sys_set_timer(Some(tick), TIMER_MASK);
    }
    fn arm_after(&mut self, ticks: u64) {
        sys_set_timer_after(ticks, TIMER_MASK);
    }
}
