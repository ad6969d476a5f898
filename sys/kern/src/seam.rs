//! SEAM dispatch: the SEAMCALL system call and its two backends.
//!
//! SEAMCALL needs CPL 0 in VMX root operation, so no task can execute it.
//! Tasks granted the SEAMCALL capability (tdx-host) ask the kernel, naming
//! the CPU it must run on; everyone else is refused with
//! `seamcall::DENIED`. Behind the call sits the backend the manifest
//! chose:
//! - `emulated`: the software module (drv/tdx-emu), configured at boot from
//!   the platform (CMRs = RAM present at boot, coarse like a BIOS; one LP
//!   per running CPU with its package) and the manifest (KeyIDs, limits,
//!   fault injection). It reads TDMR_INFO and the PA array from physical
//!   memory (the gate's kernel copy) and writes output buffers, as the real
//!   module does, but only inside the gate's windows for the call; it runs
//!   on the target CPU, so LP identity is real.
//! - `hardware`: VMXON on each CPU and the real instruction
//!   ([`crate::arch::vmx`]).
//! - `none`: every SEAMCALL reports VMfailInvalid (no module).
//!
//! The caller cannot tell the backends apart. The asynchronous form (start
//! on a CPU, collect after a notification) is [`crate::seam_async`]; both
//! forms pass the same gate and kill hooks.

use core::sync::atomic::{AtomicBool, Ordering};

use abi::platform::Packages;
use abi::seamcall::{self, SeamcallOutcome};
use abi::syscall::{SeamcallArgs as SyscallArgs, SeamcallResult};
use abi::{capability, UsageError};
use kerncore::inject::When;
use tdx_abi::{CmrInfo, Leaf, SeamcallArgs, MAX_CMRS};
use tdx_emu::{EmuConfig, FaultRule, InstructionOutcome, SeamcallFault, TdxModule};

use crate::arch::smp::{self, Op};
use crate::outcome::{Next, UserError};
use crate::seamgate;
use crate::sync::SpinLock;
use crate::tables::{TdxBackendKind, TDX};
use crate::task::Task;

static MODULE: SpinLock<Option<TdxModule>> = SpinLock::new(None);
static HARDWARE_READY: AtomicBool = AtomicBool::new(false);

/// The CMRs a BIOS would report for this machine: the RAM present at boot
/// above 1 MiB, in coarse ranges (neighbours less than 16 MiB apart are
/// merged, as a BIOS covers small firmware holes).
fn cmrs_from_platform(cfg: &mut EmuConfig) {
    const MERGE_GAP: u64 = 16 << 20;
    let mut cmrs = [CmrInfo::default(); MAX_CMRS];
    let mut n = 0usize;
    for r in crate::discovery::record().ram() {
        let base = r.base.max(1 << 20).next_multiple_of(4096);
        let end = (r.base + r.size) & !4095;
        if end <= base {
            continue;
        }
        if n > 0 && base <= cmrs[n - 1].base + cmrs[n - 1].size + MERGE_GAP {
            let last = &mut cmrs[n - 1];
            let new_end = end.max(last.base + last.size);
            last.size = new_end - last.base;
        } else if n < MAX_CMRS {
            cmrs[n] = CmrInfo::new(base, end - base);
            n += 1;
        }
    }
    cfg.cmrs = cmrs;
    cfg.num_cmrs = n;
}

/// The emulator's package of kernel CPU `index`: the dense index (see
/// [`abi::platform::Packages`]) of the package the record gives its APIC id; 0 for a CPU the
/// record does not list or a package past the emulator's bound.
fn package_of_cpu(index: usize, packages: &Packages<{ tdx_emu::MAX_PACKAGES }>) -> u8 {
    let Some(apic) = smp::apic_id_of(index) else {
        return 0;
    };
    let package = crate::discovery::record()
        .cpus()
        .iter()
        .find(|c| c.apic_id == apic)
        .map_or(0, |c| c.package);
    packages.index_of(package).unwrap_or(0) as u8
}

fn max_pa() -> u8 {
    let (max_leaf, ..) = crate::arch::cpu::cpuid(0x8000_0000, 0);
    if max_leaf >= 0x8000_0008 {
        (crate::arch::cpu::cpuid(0x8000_0008, 0).0 & 0xff) as u8
    } else {
        36
    }
}

/// Sets up the backend. Runs on the boot CPU after the other CPUs started.
pub fn init() {
    smp::set_handler(run_here);
    init_backend();
    // With no KeyID bits every address is KeyID-free.
    if let Some(shift) = keyid_shift(keyid_partition().0) {
        seamgate::set_keyid_boundary(1 << shift);
    }
}

/// The lowest KeyID bit of a physical address for `bits` KeyID bits, which sit right below
/// MAXPHYADDR; `None` without KeyID bits (or with no address bit left below them).
fn keyid_shift(bits: u8) -> Option<u32> {
    let max_pa = u32::from(max_pa());
    (bits != 0 && u32::from(bits) < max_pa).then(|| max_pa - u32::from(bits))
}

/// [`init`]'s backend part.
fn init_backend() {
    match TDX.backend {
        TdxBackendKind::None => {
            crate::kprintln!("seam: no TDX backend (every SEAMCALL: module not loaded)")
        }
        TdxBackendKind::Hardware => match crate::arch::vmx::enable_all() {
            Ok(()) => {
                HARDWARE_READY.store(true, Ordering::Release);
                crate::kprintln!(
                    "seam: hardware backend: VMX on on {} CPUs",
                    smp::cpu_count()
                );
            }
            Err(e) => crate::kprintln!(
                "seam: hardware backend refused: {e}; SEAMCALLs report the module as not loaded"
            ),
        },
        TdxBackendKind::Emulated => {
            let cpus = smp::cpu_count();
            let mut packages = 1;
            let mut cfg = EmuConfig::new(cpus as u32, 1);
            let record_packages = Packages::of_record(crate::discovery::record());
            for i in 0..cpus {
                cfg.lp_package[i] = package_of_cpu(i, &record_packages);
                packages = packages.max(usize::from(cfg.lp_package[i]) + 1);
            }
            cmrs_from_platform(&mut cfg);
            cfg.max_pa = max_pa();
            cfg.keyids.keyid_bits = TDX.keyid_bits;
            cfg.keyids.nr_mktme = TDX.mktme_keyids;
            cfg.keyids.nr_tdx = TDX.tdx_keyids;
            cfg.limits.max_tdmrs = TDX.max_tdmrs;
            cfg.limits.max_reserved_per_tdmr = TDX.max_reserved_per_tdmr;
            cfg.limits.pamt_4k_entry_size = TDX.pamt_entry_size;
            cfg.limits.pamt_2m_entry_size = TDX.pamt_entry_size;
            cfg.limits.pamt_1g_entry_size = TDX.pamt_entry_size;
            cfg.features0 = TDX.features0;
            // The TD_PARAMS fixed bits a module reports: any attribute but bit 62, XFAM within
            // bits 0..=19 with x87 and SSE set (what TDH.MNG.INIT checks TD_PARAMS against).
            cfg.td_fixed = [!(1 << 62), 0, 0xF_FFFF, 0b11];
            cfg.module_absent = TDX.absent;
            // QEMU has no SEAM range; real hardware's lies outside the CMRs.
            cfg.seamrr = tdx_emu::SeamrrRange { base: 0, size: 0 };
            // Kill rules are the kernel's (`inject`), not the module's.
            let answers = TDX.faults.iter().filter(|f| f.kill.is_none());
            for (slot, f) in cfg.faults.iter_mut().zip(answers) {
                if let Some(leaf) = Leaf::from_number(f.leaf) {
                    *slot = Some(FaultRule {
                        leaf,
                        status: f.status,
                        on_call: f.on_call,
                        on_lp: f.on_cpu,
                        repeat: f.repeat,
                    });
                }
            }
            let n = cfg.num_cmrs;
            MODULE.with(|m| match TdxModule::new(cfg) {
                Ok(module) => *m = Some(module),
                Err(e) => {
                    crate::kprintln!("seam: emulated module rejected its configuration: {e:?}")
                }
            });
            crate::kprintln!(
                "seam: emulated TDX module: {cpus} LPs in {packages} packages, {n} CMRs, KeyIDs {}..={}, {} fault rules{}",
                TDX.mktme_keyids + 1,
                TDX.mktme_keyids + TDX.tdx_keyids,
                TDX.faults.len(),
                if TDX.absent { ", module ABSENT" } else { "" }
            );
        }
    }
}

/// The KeyID partitioning `(keyid bits, MKTME KeyIDs, TDX KeyIDs)`: from
/// the manifest for the emulated module, from MSR 0x87 on hardware.
#[must_use]
pub fn keyid_partition() -> (u8, u32, u32) {
    match TDX.backend {
        TdxBackendKind::Hardware if HARDWARE_READY.load(Ordering::Acquire) => {
            const MSR_MKTME_KEYID_PARTITIONING: u32 = 0x87;
            // Safety: the MSR exists on TDX-capable CPUs (detection passed).
            let v = unsafe { crate::arch::cpu::rdmsr(MSR_MKTME_KEYID_PARTITIONING) };
            let (mktme, tdx) = (v as u32, (v >> 32) as u32);
            let bits = (32 - (mktme + tdx).leading_zeros()) as u8;
            (bits, mktme, tdx)
        }
        TdxBackendKind::Emulated => (TDX.keyid_bits, TDX.mktme_keyids, TDX.tdx_keyids),
        _ => (0, 0, 0),
    }
}

/// Where the KeyID sits in a physical address, and the TDX private KeyIDs; `None` without TDX
/// KeyIDs.
fn keyid_layout() -> Option<seamgate::KeyIdLayout> {
    let (bits, mktme, tdx) = keyid_partition();
    if tdx == 0 {
        return None;
    }
    // TDX KeyIDs need KeyID bits: `bits` is at least 1 here (the MSR's count, or the
    // manifest's, checked against the KeyIDs at build time).
    Some(seamgate::KeyIdLayout {
        shift: keyid_shift(bits)?,
        first: mktme + 1,
        last: mktme + tdx,
    })
}

/// Tells the emulated module every CPU flushed its caches (it checks the
/// host did so between TDH.SYS.CONFIG and TDH.SYS.KEY.CONFIG).
pub fn note_caches_flushed() {
    MODULE.with(|m| {
        if let Some(m) = m {
            for cpu in 0..smp::cpu_count() {
                m.note_wbinvd(cpu as u32);
            }
        }
    });
}

/// Executes an admitted SEAMCALL on the calling CPU. `words` = RAX, RCX,
/// RDX, R8, R9, R10, R11 and the gate's sequence number in; out: word 0 =
/// outcome, words 1..8 = output registers.
fn run_here(cpu: usize, _op: Op, words: &mut [u64; 8]) {
    let args = SeamcallArgs {
        rax: words[0],
        rcx: words[1],
        rdx: words[2],
        r8: words[3],
        r9: words[4],
        r10: words[5],
        r11: words[6],
    };
    let sequence = words[7];
    let outcome = seamgate::with_admitted(cpu, sequence, |mem| match TDX.backend {
        TdxBackendKind::Emulated => MODULE.with(|m| match m {
            Some(m) => m.seamcall(cpu as u32, &args, mem),
            None => InstructionOutcome::VmFailInvalid,
        }),
        TdxBackendKind::Hardware if HARDWARE_READY.load(Ordering::Acquire) => {
            crate::arch::vmx::seamcall(&args)
        }
        _ => InstructionOutcome::VmFailInvalid,
    });
    // None: the request timed out and the gate moved on; its answer is no
    // longer awaited, and it must not run with another request's checks.
    *words = outcome
        .map_or(SeamcallOutcome::Timeout, syscall_outcome)
        .to_raw();
}

/// The system call's outcome for what the instruction (or the emulated
/// module) did.
fn syscall_outcome(o: InstructionOutcome) -> SeamcallOutcome {
    match o {
        InstructionOutcome::Returned(r) => SeamcallOutcome::Returned {
            rax: r.rax,
            out: [r.rcx, r.rdx, r.r8, r.r9, r.r10, r.r11],
        },
        InstructionOutcome::VmFailInvalid => SeamcallOutcome::VmFailInvalid,
        InstructionOutcome::Fault(SeamcallFault::Ud) => SeamcallOutcome::FaultUd,
        InstructionOutcome::Fault(SeamcallFault::Gp) => SeamcallOutcome::FaultGp,
    }
}

/// The SEAMCALL system call (register use in `abi::seamcall`).
pub fn syscall(tasks: &mut [Task], caller: usize, call: &SyscallArgs) -> Result<Next, UserError> {
    if !tasks[caller].has_capability(capability::SEAMCALL) {
        // Outcome codes are small; DENIED fits the response code.
        return Err(UserError::Recoverable(seamcall::DENIED as u32));
    }
    // RAX is passed on as given: its reserved bits are the module's to
    // refuse (OPERAND_INVALID), exactly as on hardware.
    let cpu = if call.cpu == seamcall::ANY_CPU {
        0
    } else {
        usize::try_from(call.cpu).map_err(|_| UsageError::ReservedBits)?
    };
    let mut args = seamgate::module_args(call.leaf, call.inputs);
    // An asynchronous call still running there ends first (bounded wait).
    if crate::seam_async::settle_cpu(tasks, cpu) && !tasks[caller].is_runnable() {
        // Its `after` kill rule hit the caller itself.
        return Ok(Next::Reschedule);
    }
    let mut kill = None;
    let out = match seamgate::admit(&tasks[caller], &mut args, cpu, keyid_layout) {
        Err(refusal) => refusal.to_words(),
        Ok(sequence) => {
            // Admitted calls only: a refused one never reaches the module,
            // so it is no point of the module's life to kill at. (A call
            // killed before is never run: its sequence number is left to
            // the next admission to replace.)
            kill = crate::inject::seamcall(caller, args.rax as u16, cpu);
            if kill == Some(When::Before) {
                crate::inject::kill_at_seamcall(tasks, caller, call.leaf as u16, When::Before);
                return Ok(Next::Reschedule);
            }
            let a = &args;
            let words = [a.rax, a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11, sequence];
            match smp::run_on(cpu, Op::Seamcall, words) {
                Ok(w) => w,
                Err(smp::SmpError::NoSuchCpu) => SeamcallOutcome::NoSuchCpu.to_raw(),
                Err(smp::SmpError::Timeout) => SeamcallOutcome::Timeout.to_raw(),
            }
        }
    };
    if kill == Some(When::After) {
        // The module ran the call; the caller never sees its answer.
        crate::inject::kill_at_seamcall(tasks, caller, call.leaf as u16, When::After);
        return Ok(Next::Reschedule);
    }
    // `out` is an outcome code and seven words, in the result's order.
    let [outcome, words @ ..] = out;
    tasks[caller].set_syscall_results(SeamcallResult { outcome, words }.to_regs());
    Ok(Next::Same)
}
