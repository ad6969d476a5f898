//! The SEAMCALL gate: what a task with the SEAMCALL capability may ask of
//! the TDX module, checked before the call leaves the kernel.
//!
//! Pattern: an allow-list of host-side leaves, each with a rule for every
//! physical-address operand, the same for both backends. A task that holds
//! SEAMCALL (tdx-host) is trusted to drive the module's state machine, not
//! to name memory: the module writes and reads physical memory it is
//! pointed at, so every pointer operand is checked against what the
//! manifest gives the caller.
//!
//! | leaf (version 0 only)      | operand rule                                      |
//! |----------------------------|---------------------------------------------------|
//! | TDH.SYS.INIT, LP.INIT,     | no memory operands                                |
//! | KEY.CONFIG, SYS.RD         |                                                   |
//! | TDH.SYS.TDMR.INIT          | RCX is a TDMR base: described, never written;     |
//! |                            | the module's to check                             |
//! | TDH.SYS.INFO               | RCX: max(RDX, 1024) bytes, R8: max(16 × R9, 512)  |
//! |                            | bytes, both writable memory of the caller         |
//! | TDH.SYS.RDALL              | RDX: 4 KiB writable memory of the caller          |
//! | TDH.SYS.CONFIG             | RCX (512-aligned): 8 × RDX bytes of the caller,   |
//! |                            | 1 ≤ RDX ≤ 64; each entry (512-aligned) 320 bytes  |
//! |                            | of the caller; every non-empty PAMT in each       |
//! |                            | TDMR_INFO is TD memory (`crate::tdmem`)           |
//! | TDH.PHYMEM.PAGE.RDMD       | RCX: the 4 KiB page is TD memory                  |
//! | the TD life-cycle leaves   | see [`td`]: page operands TD memory, TD_PARAMS and |
//! |                            | PAGE.ADD's source the caller's memory (staged),   |
//! |                            | WBINVD's KeyID a TDX private KeyID                |
//!
//! Anything else (another leaf, a non-zero version, RAX bits 63:24) is
//! refused with `seamcall::LEAF_REFUSED`; a bad operand with
//! `seamcall::OPERAND_REFUSED` (RDI = the register, RSI = why, RDX = the
//! `KipcError` code of a TD-memory refusal). Neither reaches the module, so
//! a refused TDH.SYS.CONFIG does not consume the module's one-time
//! configuration.
//!
//! Invariants:
//! - **Check once, read once.** TDH.SYS.CONFIG's PA array and TDMR_INFOs
//!   are copied from the caller into kernel storage ([`Staging`]), checked
//!   there, and the module is handed the *kernel's* copy (RCX rewritten to
//!   its physical address). Nothing the task changes afterwards, from any
//!   CPU or through a lease, reaches the module. The same holds for
//!   TDH.MNG.INIT's TD_PARAMS and TDH.MEM.PAGE.ADD's source page
//!   ([`td::TdStaging`], kept with the configuration's staging).
//! - **Per-CPU state, per-call tags.** Each CPU has its own gate slot (the
//!   access windows below and the sequence number of the call admitted for
//!   it), held by that CPU for the whole call; the staging copies are one
//!   more slot, tagged with the sequence number of the call they were
//!   staged for. Sequence numbers come from one counter, so no two admitted
//!   calls share one. A call runs only if its CPU's slot (and, for a staged
//!   call, the staging) still carries its number: a late call after a
//!   timed-out request, or one whose staging another admission replaced, is
//!   refused instead of running with another call's checks. Calls in flight
//!   on different CPUs (asynchronous SEAMCALLs, `crate::seam_async`) thus
//!   never share gate state, and admitting a call for one CPU never waits
//!   for a call running on another (only a staged admission — SYS.CONFIG or
//!   a TD leaf — waits for a staged call still reading the staging, and no
//!   asynchronous call is staged). Lock order: a CPU's slot, then the
//!   staging.
//! - Defense in depth for the emulated module: its view of physical memory
//!   ([`GatedMem`]) writes only inside this call's checked write windows
//!   (the caller's output buffers), never into the kernel image, and reads
//!   only inside this call's read windows. A bug in the rules above cannot
//!   make the emulator write elsewhere.

use abi::seamcall::SeamcallOutcome;
use kerncore::tdmem::PhysRange;
use tdx_abi::consts::CMR_INFO_ARRAY_ALIGNMENT;
use tdx_abi::{
    Leaf, SeamcallArgs, TdmrInfo, TdmrInfoBuf, MAX_CMRS, MAX_TDMRS, TDMR_INFO_ALIGNMENT,
    TDMR_INFO_PA_ARRAY_ALIGNMENT, TDMR_INFO_READ_BYTES,
};
use tdx_emu::{PhysMem, PhysMemError};

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::paging::{direct_map_covers, kernel_static_phys, phys_to_virt};
use crate::arch::smp::MAX_CPUS;
use crate::sync::SpinLock;
use crate::task::Task;
use crate::umem::{self, USlice};

mod td;

/// Bytes TDH.SYS.INFO writes at RCX (TDSYSINFO_STRUCT).
const SYSINFO_BYTES: u64 = tdx_abi::consts::TDSYSINFO_STRUCT_SIZE;
/// Bytes TDH.SYS.RDALL writes at RDX.
const RDALL_BYTES: u64 = tdx_abi::consts::RDALL_BUFFER_ALIGNMENT;
const PAGE: u64 = 4096;

/// Which input register an operand refusal names (RDI of the result).
pub mod register {
    pub const RCX: u64 = 1;
    pub const RDX: u64 = 2;
    pub const R8: u64 = 3;
    pub const R9: u64 = 4;
}

/// Why an operand was refused (RSI of the result); see `abi::seamcall`.
pub use abi::seamcall::refusal as why;

/// Where the KeyID sits in a physical address and which KeyIDs are TDX private ones (from the
/// SEAM dispatcher: the manifest's partition, or MSR 0x87 on hardware).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyIdLayout {
    /// The lowest KeyID bit of a physical address.
    pub shift: u32,
    /// The first TDX private KeyID.
    pub first: u32,
    /// The last TDX private KeyID.
    pub last: u32,
}

/// A refused SEAMCALL.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The leaf (or its version, or RAX's reserved bits) is not allowed.
    Leaf,
    /// An operand names memory the caller may not give the module.
    Operand {
        register: u64,
        why: u64,
        detail: u64,
    },
}

impl Refusal {
    /// The result words of the syscall (outcome, RDI, RSI, RDX, ...).
    #[must_use]
    pub fn to_words(self) -> [u64; 8] {
        match self {
            Refusal::Leaf => SeamcallOutcome::LeafRefused,
            Refusal::Operand {
                register,
                why,
                detail,
            } => SeamcallOutcome::OperandRefused {
                register,
                why,
                detail,
            },
        }
        .to_raw()
    }
}

fn operand(register: u64, why: u64) -> Refusal {
    Refusal::Operand {
        register,
        why,
        detail: 0,
    }
}

const MAX_WINDOWS: usize = 2;

/// Where the module may touch physical memory during one call.
#[derive(Copy, Clone, Debug, Default)]
struct Windows {
    write: [PhysRange; MAX_WINDOWS],
    nwrite: usize,
    read: [PhysRange; MAX_WINDOWS],
    nread: usize,
}

/// Kernel copies of TDH.SYS.CONFIG's PA array and TDMR_INFOs, in the
/// module's alignment.
#[repr(C, align(512))]
struct Staging {
    array: [u64; MAX_TDMRS],
    infos: [TdmrInfoBuf; MAX_TDMRS],
}

/// One CPU's gate slot: what the call admitted for it may touch.
struct CpuGate {
    windows: Windows,
    /// Sequence number of the call the slot was prepared for (0: none).
    sequence: u64,
    /// The call reads the staging (TDH.SYS.CONFIG).
    staged: bool,
}

/// The staging copies and the call they were staged for.
struct StagingSlot {
    staging: Staging,
    td: td::TdStaging,
    /// Sequence number of the call it holds the checked copy of (0: none).
    sequence: u64,
}

const EMPTY_WINDOWS: Windows = Windows {
    write: [PhysRange::EMPTY; MAX_WINDOWS],
    nwrite: 0,
    read: [PhysRange::EMPTY; MAX_WINDOWS],
    nread: 0,
};

static GATES: [SpinLock<CpuGate>; MAX_CPUS] = [const {
    SpinLock::new(CpuGate {
        windows: EMPTY_WINDOWS,
        sequence: 0,
        staged: false,
    })
}; MAX_CPUS];

static STAGING: SpinLock<StagingSlot> = SpinLock::new(StagingSlot {
    staging: Staging {
        array: [0; MAX_TDMRS],
        infos: [const { TdmrInfoBuf::new(TdmrInfo::new(0, 0)) }; MAX_TDMRS],
    },
    td: td::TdStaging::new(),
    sequence: 0,
});

/// The last sequence number given out; only the boot CPU admits calls.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The module's registers for a SEAMCALL system call's leaf word and six
/// input words (RCX, RDX, R8–R11), before the gate checks and rewrites
/// them.
#[must_use]
pub fn module_args(leaf: u64, [rcx, rdx, r8, r9, r10, r11]: [u64; 6]) -> SeamcallArgs {
    SeamcallArgs {
        rax: leaf,
        rcx,
        rdx,
        r8,
        r9,
        r10,
        r11,
    }
}

/// Whether `leaf` may run asynchronously: no operand in the caller's
/// memory (the module must never write into a task that may restart while
/// the call runs) and no staging.
#[must_use]
pub fn may_run_async(leaf: u64) -> bool {
    leaf >> 16 == 0
        && matches!(
            Leaf::from_number(leaf as u16),
            Some(
                Leaf::SysInit
                    | Leaf::SysLpInit
                    | Leaf::SysKeyConfig
                    | Leaf::SysRd
                    | Leaf::SysTdmrInit
                    | Leaf::PhymemPageRdmd
            )
        )
}

/// `len` bytes at `base` of the caller's memory (writable if `write`).
fn caller_buffer(
    task: &Task,
    base: u64,
    len: u64,
    write: bool,
    register: u64,
) -> Result<PhysRange, Refusal> {
    let range = match PhysRange::new(base, len) {
        Some(r) if !r.is_empty() => r,
        _ => return Err(operand(register, why::BAD_RANGE)),
    };
    if !task.can_access(USlice::new(base, len), write) {
        let w = if write && task.can_access(USlice::new(base, len), false) {
            why::NOT_WRITABLE
        } else {
            why::NOT_CALLER_MEMORY
        };
        return Err(operand(register, w));
    }
    Ok(range)
}

/// Where KeyID bits begin in a physical address (`u64::MAX` until the backend is set up, or
/// without KeyIDs): no TD memory operand may reach it, whatever the online table holds, since
/// the module would read those bits as a KeyID.
static KEYID_BOUNDARY: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets where KeyID bits begin (`seam::init`, once the backend's KeyID layout is known).
pub fn set_keyid_boundary(boundary: u64) {
    KEYID_BOUNDARY.store(boundary, Ordering::Relaxed);
}

fn td_memory(base: u64, len: u64, register: u64) -> Result<(), Refusal> {
    let boundary = KEYID_BOUNDARY.load(Ordering::Relaxed);
    if base.checked_add(len).is_none_or(|end| end > boundary) {
        return Err(operand(register, why::BAD_KEYID));
    }
    crate::tdmem::check(base, len).map_err(|e| Refusal::Operand {
        register,
        why: why::NOT_TD_MEMORY,
        detail: e as u64,
    })
}

fn aligned(pa: u64, alignment: u64, register: u64) -> Result<(), Refusal> {
    if pa.is_multiple_of(alignment) {
        Ok(())
    } else {
        Err(operand(register, why::MISALIGNED))
    }
}

/// Checks a SEAMCALL from `task` and prepares CPU `cpu`'s gate slot for
/// it; `keyids` tells the KeyID layout (asked only for a KeyID-tagged
/// operand; `None` without TDX KeyIDs refuses every such operand). `args`
/// may be rewritten (TDH.SYS.CONFIG's RCX, TD_PARAMS and PAGE.ADD's source
/// become the kernel's copies). Returns the sequence number the executing
/// CPU must find. For a CPU the kernel does not have, the checks still run
/// (a refusal is answered first) but nothing is prepared: the call cannot
/// run anywhere.
///
/// # Errors
/// The [`Refusal`]; nothing was prepared and the module must not be called.
pub fn admit(
    task: &Task,
    args: &mut SeamcallArgs,
    cpu: usize,
    keyids: fn() -> Option<KeyIdLayout>,
) -> Result<u64, Refusal> {
    if args.rax >> 16 != 0 {
        return Err(Refusal::Leaf);
    }
    let leaf = Leaf::from_number(args.rax as u16).ok_or(Refusal::Leaf)?;
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    let mut w = Windows::default();
    let mut staged = false;
    match leaf {
        Leaf::SysInit | Leaf::SysLpInit | Leaf::SysKeyConfig | Leaf::SysRd | Leaf::SysTdmrInit => {}
        Leaf::SysInfo => {
            let info_len = args.rdx.max(SYSINFO_BYTES);
            let cmr_len = args
                .r9
                .checked_mul(16)
                .ok_or(operand(register::R9, why::BAD_RANGE))?
                .max(16 * MAX_CMRS as u64);
            aligned(args.r8, CMR_INFO_ARRAY_ALIGNMENT, register::R8)?;
            w.write[0] = caller_buffer(task, args.rcx, info_len, true, register::RCX)?;
            w.write[1] = caller_buffer(task, args.r8, cmr_len, true, register::R8)?;
            w.nwrite = 2;
        }
        Leaf::SysRdall => {
            w.write[0] = caller_buffer(task, args.rdx, RDALL_BYTES, true, register::RDX)?;
            w.nwrite = 1;
        }
        Leaf::PhymemPageRdmd => td_memory(args.rcx, PAGE, register::RCX)?,
        Leaf::SysConfig => {
            // Waits only for a staged call still reading the staging.
            STAGING.with(|st| {
                // A refused staging leaves no call able to use it.
                st.sequence = 0;
                stage_config(task, args, &mut st.staging)?;
                st.sequence = sequence;
                w.read[0] = PhysRange::saturating(
                    kernel_static_phys(&raw const st.staging),
                    core::mem::size_of::<Staging>() as u64,
                );
                w.nread = 1;
                args.rcx = kernel_static_phys(&raw const st.staging.array);
                Ok(())
            })?;
            staged = true;
        }
        l if td::is_td_leaf(l) => {
            // TD leaves are synchronous only; those that read the caller's
            // memory are handed the kernel's copy in the staging slot.
            STAGING.with(|st| {
                st.sequence = 0;
                td::admit(task, l, args, &mut st.td, &mut w, keyids)?;
                st.sequence = sequence;
                Ok(())
            })?;
            staged = true;
        }
        _ => return Err(Refusal::Leaf),
    }
    if let Some(gate) = GATES.get(cpu) {
        gate.with(|g| {
            g.windows = w;
            g.sequence = sequence;
            g.staged = staged;
        });
    }
    Ok(sequence)
}

/// Copies TDH.SYS.CONFIG's PA array and TDMR_INFOs into `staging`, checking
/// the copies; afterwards `staging.array[i]` is the kernel's slot `i`.
fn stage_config(task: &Task, args: &SeamcallArgs, staging: &mut Staging) -> Result<(), Refusal> {
    let n = usize::try_from(args.rdx).unwrap_or(usize::MAX);
    if n == 0 || n > MAX_TDMRS {
        return Err(operand(register::RDX, why::BAD_COUNT));
    }
    aligned(args.rcx, TDMR_INFO_PA_ARRAY_ALIGNMENT, register::RCX)?;
    let array = caller_buffer(task, args.rcx, 8 * n as u64, false, register::RCX)?;
    let mut raw = [0u8; 8 * MAX_TDMRS];
    // Safety: `array` was checked readable for the caller just above.
    unsafe { umem::read_into(array.base().0, &mut raw[..8 * n]) };
    for i in 0..n {
        let mut pa = [0u8; 8];
        pa.copy_from_slice(&raw[8 * i..8 * i + 8]);
        let pa = u64::from_le_bytes(pa);
        aligned(pa, TDMR_INFO_ALIGNMENT, register::RCX)?;
        let info = caller_buffer(task, pa, TDMR_INFO_READ_BYTES as u64, false, register::RCX)?;
        let mut bytes = [0u8; TDMR_INFO_READ_BYTES];
        // Safety: `info` was checked readable for the caller just above.
        unsafe { umem::read_into(info.base().0, &mut bytes) };
        // From here on only the copy counts.
        let t = TdmrInfo::from_bytes(&bytes);
        for (base, size) in [
            (t.pamt_1g_base, t.pamt_1g_size),
            (t.pamt_2m_base, t.pamt_2m_size),
            (t.pamt_4k_base, t.pamt_4k_size),
        ] {
            if size != 0 {
                td_memory(base, size, register::RCX)?;
            }
        }
        staging.infos[i] = TdmrInfoBuf::new(t);
    }
    for i in 0..MAX_TDMRS {
        staging.array[i] = if i < n {
            kernel_static_phys(&raw const staging.infos[i])
        } else {
            0
        };
    }
    Ok(())
}

/// Runs `call` on CPU `cpu` with that CPU's gate slot for request
/// `sequence` held for the whole call (and the staging, for a staged
/// call), giving it the emulated module's memory view. A request whose
/// state was replaced (it timed out and another was admitted for this CPU,
/// or its staging was replaced) does not run: `None`.
pub fn with_admitted<R>(
    cpu: usize,
    sequence: u64,
    call: impl FnOnce(&mut GatedMem) -> R,
) -> Option<R> {
    GATES.get(cpu)?.with(|g| {
        if g.sequence != sequence || sequence == 0 {
            return None;
        }
        let mut mem = GatedMem {
            windows: g.windows,
            kernel: crate::tdmem::image_ranges()[0],
        };
        let r = if g.staged {
            STAGING.with(|st| (st.sequence == sequence).then(|| call(&mut mem)))
        } else {
            Some(call(&mut mem))
        };
        // A window serves one call only.
        g.windows = Windows::default();
        g.sequence = 0;
        r
    })
}

/// Physical memory as the emulated module sees it during one admitted
/// call: the direct map, restricted to the call's windows.
pub struct GatedMem {
    windows: Windows,
    kernel: PhysRange,
}

fn inside(windows: &[PhysRange], pa: u64, len: usize) -> bool {
    PhysRange::new(pa, len as u64)
        .is_some_and(|r| windows.iter().any(|w| w.contains(r)) && direct_map_covers(pa, len as u64))
}

impl PhysMem for GatedMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysMemError> {
        if !inside(&self.windows.read[..self.windows.nread], pa, buf.len()) {
            return Err(PhysMemError { pa });
        }
        // Safety: inside a read window of this call (a checked caller
        // buffer or the gate's staging), which lies in the direct map.
        unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(pa), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, pa: u64, buf: &[u8]) -> Result<(), PhysMemError> {
        let r = PhysRange::saturating(pa, buf.len() as u64);
        if !inside(&self.windows.write[..self.windows.nwrite], pa, buf.len())
            || self.kernel.overlaps(r)
        {
            return Err(PhysMemError { pa });
        }
        // Safety: inside a write window of this call (an output buffer the
        // gate checked writable for the caller) and outside the kernel
        // image, in the direct map.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), phys_to_virt(pa), buf.len()) };
        Ok(())
    }
}
