//! The kernel's services as the library's traits: SEAMCALL and the cache flush
//! ([`seam::Seam`]), scrub ([`Scrubber`]), the online-memory table ([`MemoryAuthority`]) and
//! the timer ([`Timer`]), each a syscall or kernel IPC of `userlib`.

use abi::kipc::KipcError;
use tdx_abi::{SeamcallArgs, SeamcallResult};
use tdx_host::regions::MemoryAuthority;
use tdx_host::seam::{self, CpuIndex, KernelError, SeamError};
use tdx_host::server::pacing::Timer;
use tdx_host::server::Scrubber;
use tdx_planner::addr::PhysRange;
use userlib::hl::{self, KipcFailure};
use userlib::{sys_get_timer, sys_seamcall, sys_set_timer};
use userlib::{SeamcallOutcome as Out, UnknownOutcome};

use super::task_gen::notifications::TIMER_MASK;

type Call = Result<SeamcallResult, SeamError>;

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
        let kernel = |e| Err(SeamError::Kernel(e));
        let regs = [a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11];
        let named = cpu.unwrap_or(CpuIndex(0));
        match sys_seamcall(cpu.map(|c| c.0), a.rax, regs) {
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
            Err(UnknownOutcome(code)) => Err(SeamError::UnknownOutcome(code)),
        }
    }

    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
        hl::flush_caches().map_err(kernel_error)
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
}
