//! What the bring-up needs from the outside world: SEAMCALL, a cache flush on every CPU, a place
//! in physical memory for TDMR_INFO, and a read-only view of the platform.
//!
//! Pattern: small traits the server binary implements over kernel syscalls (and the tests over
//! `tdx-emu`), plus a plain borrowed [`PlatformView`] built from the kernel's platform record.
//! Nothing here owns memory; every slice is borrowed from the caller.
//!
//! Invariants the implementations must keep:
//! - [`Seam::seamcall`] executes exactly one SEAMCALL (no retries: the retry policy lives in
//!   `init`, §2.1) on the CPU with that index in [`PlatformView::cpus`] (`None` = any CPU),
//!   and reports VMfailInvalid and #GP/#UD as [`SeamError`]s, never as a status (§2.1).
//! - [`Seam::start`] begins exactly one SEAMCALL on `cpu` and returns; [`Seam::finish_one`]
//!   returns each started call's answer exactly once, with its CPU. At most one call is
//!   started per CPU until its answer was returned (the caller keeps to that; the kernel
//!   refuses a second one). The default pair runs the call at `start` through
//!   [`Seam::seamcall`] and hands the answers back in start order ([`Deferred`]), which is
//!   what a synchronous implementation (the emulator-backed tests) needs.
//! - [`Seam::flush_caches_all_cpus`] returns only after WBINVD has completed on every CPU
//!   (§3.3 g: dirty KeyID-0 lines must not be written back over what the module writes with the
//!   global KeyID).
//! - [`PhysWriter::write`] writes exactly the given bytes at a physical address inside
//!   [`PhysWriter::buffer`], a range that is plain host RAM outside every TDMR's available
//!   memory and outside SEAMRR (a "shared HPA", §5.3).

use abi::kipc::KipcError;
use tdx_abi::{SeamcallArgs, SeamcallResult};
use tdx_host_api::UnavailableReason;
use tdx_planner::addr::{PhysAddr, PhysRange};
use tdx_planner::types::MemRange;

/// Index of a CPU in [`PlatformView::cpus`] (the kernel's logical CPU number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuIndex(pub u32);

/// Why the kernel (or this task's side of a kernel service) refused a request, by name.
///
/// Nothing in the library decides on the variant (every refusal is a failure of its step); the
/// name is for the log, so an unknown code stays [`KernelError::Unknown`] with its value, never
/// a wrong name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A kernel-IPC response code (e.g. `Denied`: the manifest grants no such right).
    Kipc(KipcError),
    /// The kernel's SEAMCALL gate does not allow this leaf; the module was not called.
    LeafRefused,
    /// The SEAMCALL gate refused a memory operand; the module was not called.
    OperandRefused,
    /// A write fell outside the task's own TDMR_INFO buffer (refused before any syscall).
    OutsideBuffer,
    /// A response code this task does not know (a newer kernel), kept for the log.
    Unknown(u64),
}

impl KernelError {
    /// The kernel-IPC response code `raw` by name; total: a code without a name is
    /// [`KernelError::Unknown`].
    #[must_use]
    pub fn from_raw(raw: u32) -> Self {
        KipcError::from_raw(raw).map_or(KernelError::Unknown(u64::from(raw)), KernelError::Kipc)
    }
}

/// A SEAMCALL that did not return a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeamError {
    /// CF=1 with RAX unchanged: no module loaded, or SEAM disabled (§2.1).
    VmFailInvalid,
    /// The instruction raised #GP (§2.1).
    Gp,
    /// The instruction raised #UD, e.g. not post-VMXON (§2.1).
    Ud,
    /// The kernel has no such CPU, or the CPU is offline.
    NoSuchCpu(CpuIndex),
    /// The CPU did not answer the kernel in time; whether the module ran is unknown.
    Timeout(CpuIndex),
    /// The kernel answered with an outcome code this task does not know (a newer kernel).
    UnknownOutcome(u64),
    /// The kernel refused the syscall (e.g. the manifest grants no SEAMCALL).
    Kernel(KernelError),
    /// The CPU still runs an earlier asynchronous SEAMCALL of this task; nothing was started.
    CpuBusy(CpuIndex),
    /// [`Seam::finish_one`] with no call started.
    NothingStarted,
}

impl SeamError {
    /// The Linux-style software status for this outcome (§4.2), for logs and `Failed` states.
    #[must_use]
    pub const fn status(self) -> tdx_abi::TdxStatus {
        match self {
            SeamError::VmFailInvalid => tdx_abi::TdxStatus::SEAMCALL_VMFAILINVALID,
            SeamError::Gp => tdx_abi::TdxStatus::SEAMCALL_GP,
            SeamError::Ud => tdx_abi::TdxStatus::SEAMCALL_UD,
            SeamError::NoSuchCpu(_) => crate::host_code::NO_SUCH_CPU,
            SeamError::Timeout(_) => crate::host_code::CPU_TIMEOUT,
            SeamError::Kernel(_)
            | SeamError::UnknownOutcome(_)
            | SeamError::CpuBusy(_)
            | SeamError::NothingStarted => crate::host_code::KERNEL_REFUSED,
        }
    }

    /// Why TDX is unavailable, if this outcome means "no usable module" rather than a failure.
    #[must_use]
    pub const fn unavailable_reason(self) -> Option<UnavailableReason> {
        match self {
            SeamError::VmFailInvalid => Some(UnavailableReason::ModuleNotLoaded),
            SeamError::Gp => Some(UnavailableReason::SeamcallGp),
            SeamError::Ud => Some(UnavailableReason::SeamcallUd),
            SeamError::Kernel(_) => Some(UnavailableReason::NoSeamcall),
            SeamError::NoSuchCpu(_)
            | SeamError::Timeout(_)
            | SeamError::UnknownOutcome(_)
            | SeamError::CpuBusy(_)
            | SeamError::NothingStarted => None,
        }
    }
}

/// SEAMCALL and the per-CPU kernel services the bring-up needs.
pub trait Seam {
    /// Executes one SEAMCALL with `args` on `cpu` (`None`: whichever CPU the kernel picks).
    ///
    /// # Errors
    /// [`SeamError`] when the instruction did not return a status.
    fn seamcall(
        &mut self,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, SeamError>;

    /// Starts one SEAMCALL with `args` on `cpu` and returns without waiting for it; its answer
    /// comes from [`Seam::finish_one`]. The default runs it now and keeps the answer.
    ///
    /// # Errors
    /// [`SeamError`] when nothing was started (the CPU is busy, the kernel refused).
    fn start(&mut self, cpu: CpuIndex, args: SeamcallArgs) -> Result<(), SeamError> {
        let r = self.seamcall(Some(cpu), args);
        self.deferred().push(cpu, r)
    }

    /// Waits until one started call has finished and returns its CPU and its answer.
    ///
    /// # Errors
    /// [`SeamError::NothingStarted`] when no call is outstanding.
    fn finish_one(&mut self) -> Result<Finished, SeamError> {
        self.deferred().pop()
    }

    /// One started call among `cpus` that has finished, if there is one now: never waits.
    /// The default (a synchronous [`Seam`] ran every call at [`Seam::start`]) is
    /// [`Seam::finish_one`].
    ///
    /// # Errors
    /// [`SeamError::NothingStarted`] when no call is outstanding.
    fn poll_one(&mut self, cpus: &[CpuIndex]) -> Result<Option<Finished>, SeamError> {
        let _ = cpus;
        self.finish_one().map(Some)
    }

    /// Where the default [`Seam::start`] keeps answers for [`Seam::finish_one`].
    fn deferred(&mut self) -> &mut Deferred;

    /// WBINVD on every CPU, returning when all are done (§3.3 g).
    ///
    /// # Errors
    /// The kernel's refusal.
    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError>;

    /// MAXPHYADDR: CPUID leaf 0x8000_0008 EAX[7:0], or 36 where that leaf is missing (the
    /// architectural default). CPUID is unprivileged, so the default asks the CPU directly; the
    /// emulator-backed tests return the emulated module's configured width instead.
    fn max_phys_addr_bits(&self) -> u8 {
        cpuid_max_phys_addr_bits()
    }
}

/// Most SEAMCALLs in flight at once (one per CPU; bring-up uses at most this many CPUs at a time).
pub const MAX_IN_FLIGHT: usize = 64;

/// A started SEAMCALL that finished: its CPU and its answer.
pub type Finished = (CpuIndex, Result<SeamcallResult, SeamError>);

/// Answers of calls a synchronous [`Seam`] ran at [`Seam::start`], returned by
/// [`Seam::finish_one`] in start order.
#[derive(Debug, Default)]
pub struct Deferred(heapless::Deque<Finished, MAX_IN_FLIGHT>);

impl Deferred {
    /// Keeps one answer.
    ///
    /// # Errors
    /// [`SeamError::CpuBusy`] when [`MAX_IN_FLIGHT`] answers wait already.
    pub fn push(
        &mut self,
        cpu: CpuIndex,
        r: Result<SeamcallResult, SeamError>,
    ) -> Result<(), SeamError> {
        self.0
            .push_back((cpu, r))
            .map_err(|_| SeamError::CpuBusy(cpu))
    }

    /// The oldest answer.
    ///
    /// # Errors
    /// [`SeamError::NothingStarted`] when none waits.
    pub fn pop(&mut self) -> Result<Finished, SeamError> {
        self.0.pop_front().ok_or(SeamError::NothingStarted)
    }
}

/// The registers of a SEAMCALL that returned: RAX (the status), then RCX, RDX, R8, R9, R10, R11
/// in the order the kernel reports them.
#[must_use]
pub const fn returned(rax: u64, out: [u64; 6]) -> SeamcallResult {
    let [rcx, rdx, r8, r9, r10, r11] = out;
    SeamcallResult {
        rax,
        rcx,
        rdx,
        r8,
        r9,
        r10,
        r11,
    }
}

/// MAXPHYADDR of the running CPU (see [`Seam::max_phys_addr_bits`]).
#[must_use]
pub fn cpuid_max_phys_addr_bits() -> u8 {
    use core::arch::x86_64::__cpuid;
    if __cpuid(0x8000_0000).eax >= 0x8000_0008 {
        (__cpuid(0x8000_0008).eax & 0xff) as u8
    } else {
        36
    }
}

/// Writes into the physical buffer the kernel gave tdx-host for TDMR_INFO and the PA array.
pub trait PhysWriter {
    /// The buffer: 512-aligned base, at least `512 × (1 + max TDMRs)` bytes to hold everything.
    fn buffer(&self) -> PhysRange;

    /// Writes `bytes` at physical address `pa` (inside [`PhysWriter::buffer`]).
    ///
    /// # Errors
    /// The kernel's refusal.
    fn write(&mut self, pa: PhysAddr, bytes: &[u8]) -> Result<(), KernelError>;
}

/// A buffer of this task mapped at its physical address (virtual = physical), as the kernel
/// maps tdx-host's TDMR_INFO static: writing is a bounds-checked copy.
#[derive(Debug)]
pub struct IdentityBuffer<'b>(pub &'b mut [u8]);

impl PhysWriter for IdentityBuffer<'_> {
    fn buffer(&self) -> PhysRange {
        // A live slice does not wrap the address space.
        PhysRange::saturating(self.0.as_ptr() as u64, self.0.len() as u64)
    }

    fn write(&mut self, pa: PhysAddr, bytes: &[u8]) -> Result<(), KernelError> {
        let base = self.0.as_ptr() as u64;
        let off = pa.0.checked_sub(base).ok_or(KernelError::OutsideBuffer)?;
        let off = usize::try_from(off).map_err(|_| KernelError::OutsideBuffer)?;
        let end = off
            .checked_add(bytes.len())
            .ok_or(KernelError::OutsideBuffer)?;
        let dst = self.0.get_mut(off..end).ok_or(KernelError::OutsideBuffer)?;
        dst.copy_from_slice(bytes);
        // The module reads physical memory: the bytes must be there before the SEAMCALL.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// One logical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cpu {
    /// Physical package (socket); TDH.SYS.KEY.CONFIG runs once on one CPU of each (§3.2).
    pub package: u32,
    /// NUMA node index.
    pub node: u16,
    /// Usable now; a disabled (online-capable) CPU gets no LP.INIT and no work.
    pub enabled: bool,
}

/// MSR 0x87 KeyID partitioning (§1.1, §1.2), read by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KeyIdPartition {
    /// Bits 31:0: MKTME KeyIDs.
    pub nr_mktme: u32,
    /// Bits 63:32: TDX private KeyIDs.
    pub nr_tdx: u32,
}

impl KeyIdPartition {
    /// The fewest KeyID bits that hold every KeyID (0, the MKTME ones and the TDX ones): the
    /// module's HKID field takes at least this many bits off the top of MAXPHYADDR (§1.1).
    #[must_use]
    pub const fn min_keyid_bits(&self) -> u8 {
        let highest = self.nr_mktme as u64 + self.nr_tdx as u64; // highest KeyID, no wrap
        (u64::BITS - highest.leading_zeros()) as u8
    }

    /// First TDX KeyID, `nr_mktme + 1`; Linux makes it the global KeyID (§1.2).
    #[must_use]
    pub const fn first_tdx(&self) -> u32 {
        // Saturating: an MSR claiming u32::MAX MKTME KeyIDs must not wrap to KeyID 0.
        self.nr_mktme.saturating_add(1)
    }
}

/// What the kernel's platform record says, plus the manifest's choices, as borrowed slices.
#[derive(Clone, Copy, Debug)]
pub struct PlatformView<'a> {
    /// Every logical CPU, indexed by [`CpuIndex`].
    pub cpus: &'a [Cpu],
    /// RAM present and online at boot, by node.
    pub ram: &'a [MemRange],
    /// RAM present at boot that the manifest keeps offline: covered by TDMRs, onlined later.
    pub boot_offline: &'a [MemRange],
    /// The kernel+task image and anything else the kernel keeps: never PAMT, never handed out.
    pub image: &'a [PhysRange],
    /// MSR 0x87, or `None` if reading it faulted (no TDX, §1.2).
    pub keyids: Option<KeyIdPartition>,
    /// Number of NUMA nodes (node indices are `0..nodes`).
    pub nodes: u16,
    /// The record was complete (not TRUNCATED): TDX needs every CPU (§3.2).
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use tdx_planner::addr::PhysAddr;

    use super::{IdentityBuffer, KernelError, KeyIdPartition, KipcError, PhysWriter};

    /// Writes land at their offset from the buffer's own address; anything reaching outside
    /// it, below, past the end or wrapping, is refused and writes nothing.
    #[test]
    fn identity_buffer_writes_only_inside_itself() {
        let mut bytes = [0u8; 64];
        let mut b = IdentityBuffer(&mut bytes);
        let r = b.buffer();
        assert_eq!(r.size().0, 64);
        assert_eq!(b.write(PhysAddr(r.base().0 + 8), &[1, 2, 3]), Ok(()));
        for bad in [r.base().0.wrapping_sub(1), r.base().0 + 62, u64::MAX] {
            assert_eq!(
                b.write(PhysAddr(bad), &[9, 9, 9]),
                Err(KernelError::OutsideBuffer)
            );
        }
        assert_eq!(bytes[7..12], [0, 1, 2, 3, 0]);
        assert!(!bytes.contains(&9));
    }

    /// Every kernel-IPC code with a name gets it back; any other value stays unknown with its
    /// value (no code silently becomes a wrong variant).
    #[test]
    fn kernel_error_from_raw_is_total_and_never_misnames() {
        assert_eq!(
            KernelError::from_raw(KipcError::Denied as u32),
            KernelError::Kipc(KipcError::Denied)
        );
        for e in [
            KipcError::CpuUnavailable,
            KipcError::NotRam,
            KipcError::BadRange,
        ] {
            assert_eq!(KernelError::from_raw(e as u32), KernelError::Kipc(e));
        }
        for raw in [0, 1, 4, 0xFFFE_0000, 0xFFFE_00FF, u32::MAX] {
            assert_eq!(
                KernelError::from_raw(raw),
                KernelError::Unknown(u64::from(raw))
            );
        }
    }

    /// KeyID arithmetic on MSR 0x87 values never wraps: u32::MAX MKTME KeyIDs give a first TDX
    /// KeyID that does not fit a u16 (refused at Detect), not KeyID 0, and the KeyID width used to
    /// bound the planner counts every KeyID.
    #[test]
    fn keyid_arithmetic_never_wraps() {
        let k = KeyIdPartition {
            nr_mktme: u32::MAX,
            nr_tdx: u32::MAX,
        };
        assert_eq!(k.first_tdx(), u32::MAX);
        assert_eq!(k.min_keyid_bits(), 33);
        let k = KeyIdPartition {
            nr_mktme: 15,
            nr_tdx: 48,
        };
        assert_eq!((k.first_tdx(), k.min_keyid_bits()), (16, 6));
        assert_eq!(KeyIdPartition::default().min_keyid_bits(), 0);
    }
}
