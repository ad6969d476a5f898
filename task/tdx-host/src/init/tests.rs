//! Bring-up against the software module (`tdx-emu`): happy paths on 1 CPU and on 4 CPUs /
//! 2 packages / 2 nodes, every injected fault at every step (retried to success, or the right
//! `Failed` state), and the `Unavailable` cases.

extern crate std;

use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec as StdVec;

use abi::kipc::KipcError;
use tdx_abi::{Leaf, OperandId, SeamcallArgs, SeamcallResult, TdxStatus};
use tdx_emu::{
    EmuConfig, FaultRule, InstructionOutcome, PhysMem, PhysMemError, SeamcallFault, SysState,
    TdxModule,
};
use tdx_host_api::{InitStep, UnavailableReason};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB};
use tdx_planner::types::MemRange;

use super::report::{InitReport, StateLine, StepTimes, Trace};
use super::{host_code, Bringup, InitConfig, InitStorage, Observer, Progress, State};

use crate::seam::{
    Cpu, CpuIndex, Deferred, KernelError, KeyIdPartition, PhysWriter, PlatformView, Seam, SeamError,
};

const MIB: u64 = 1 << 20;
pub(crate) const BUF_BASE: u64 = 32 * MIB;
pub(crate) const BUF_LEN: usize = 64 * 1024;

/// The TDMR_INFO buffer as the module sees it.
pub(crate) struct BufMem {
    base: u64,
    bytes: StdVec<u8>,
}

impl BufMem {
    /// `len` zero bytes at `base`.
    pub(crate) fn new(base: u64, len: usize) -> Self {
        BufMem {
            base,
            bytes: std::vec![0; len],
        }
    }
}

/// An emulated module of `cfg` over a fresh test buffer, and the writer into that buffer.
pub(crate) fn emulated(cfg: EmuConfig) -> (EmuSeam, EmuWriter) {
    let mem = Rc::new(RefCell::new(BufMem::new(BUF_BASE, BUF_LEN)));
    let seam = EmuSeam {
        m: TdxModule::new(cfg).expect("emulator config"),
        mem: mem.clone(),
        flush_fails: false,
        cpu_max_pa: None,
        deferred: Deferred::default(),
    };
    let writer = EmuWriter {
        mem,
        len: BUF_LEN as u64,
    };
    (seam, writer)
}

impl PhysMem for BufMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysMemError> {
        let off = pa.checked_sub(self.base).ok_or(PhysMemError { pa })? as usize;
        let src = self
            .bytes
            .get(off..off + buf.len())
            .ok_or(PhysMemError { pa })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, pa: u64, buf: &[u8]) -> Result<(), PhysMemError> {
        let off = pa.checked_sub(self.base).ok_or(PhysMemError { pa })? as usize;
        let dst = self
            .bytes
            .get_mut(off..off + buf.len())
            .ok_or(PhysMemError { pa })?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

/// `Seam` over the emulator: CPU index = LP id; the flush notes WBINVD on every LP.
pub(crate) struct EmuSeam {
    pub m: TdxModule,
    pub mem: Rc<RefCell<BufMem>>,
    pub flush_fails: bool,
    /// MAXPHYADDR the CPU reports, if not the module's (a CPU/module mismatch).
    pub cpu_max_pa: Option<u8>,
    /// Answers of started calls.
    pub deferred: Deferred,
}

impl Seam for EmuSeam {
    fn seamcall(
        &mut self,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, SeamError> {
        let lp = cpu.map_or(0, |c| c.0);
        let mut mem = self.mem.borrow_mut();
        match self.m.seamcall(lp, &args, &mut *mem) {
            InstructionOutcome::Returned(r) => Ok(r),
            InstructionOutcome::VmFailInvalid => Err(SeamError::VmFailInvalid),
            InstructionOutcome::Fault(SeamcallFault::Gp) => Err(SeamError::Gp),
            InstructionOutcome::Fault(SeamcallFault::Ud) => Err(SeamError::Ud),
        }
    }

    fn deferred(&mut self) -> &mut Deferred {
        &mut self.deferred
    }

    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
        if self.flush_fails {
            return Err(KernelError::Kipc(KipcError::Denied));
        }
        for lp in 0..self.m.config().num_lps {
            self.m.note_wbinvd(lp);
        }
        Ok(())
    }

    fn max_phys_addr_bits(&self) -> u8 {
        self.cpu_max_pa.unwrap_or(self.m.config().max_pa)
    }
}

pub(crate) struct EmuWriter {
    pub mem: Rc<RefCell<BufMem>>,
    pub len: u64,
}

impl PhysWriter for EmuWriter {
    fn buffer(&self) -> PhysRange {
        PhysRange::literal(BUF_BASE, self.len)
    }

    fn write(&mut self, pa: PhysAddr, bytes: &[u8]) -> Result<(), KernelError> {
        self.mem
            .borrow_mut()
            .write(pa.0, bytes)
            .map_err(|_| KernelError::OutsideBuffer)
    }
}

/// A platform matching `EmuConfig::new(cpus, packages)`: LP i on package i % packages, node
/// i % nodes; RAM [1 MiB, 2 GiB − 32 MiB) and [4 GiB, 16 GiB) split over the nodes.
pub(crate) struct Fixture {
    pub cpus: StdVec<Cpu>,
    pub ram: StdVec<MemRange>,
    pub offline: StdVec<MemRange>,
    pub image: StdVec<PhysRange>,
    pub keyids: Option<KeyIdPartition>,
    pub nodes: u16,
}

pub(crate) fn mr(base: u64, end: u64, node: u16) -> MemRange {
    MemRange {
        range: PhysRange::literal(base, end - base),
        node,
    }
}

impl Fixture {
    pub(crate) fn new(cpus: u32, packages: u32, nodes: u16) -> Self {
        let cpus = (0..cpus)
            .map(|i| Cpu {
                package: i % packages,
                node: (i % u32::from(nodes)) as u16,
                enabled: true,
            })
            .collect();
        let ram = if nodes == 1 {
            std::vec![mr(MIB, 2 * GIB - 32 * MIB, 0), mr(4 * GIB, 16 * GIB, 0)]
        } else {
            std::vec![
                mr(MIB, 2 * GIB - 32 * MIB, 0),
                mr(4 * GIB, 10 * GIB, 0),
                mr(10 * GIB, 16 * GIB, 1),
            ]
        };
        Fixture {
            cpus,
            ram,
            offline: StdVec::new(),
            image: std::vec![PhysRange::literal(MIB, 16 * MIB)],
            // EmuConfig::new's partitioning: 15 MKTME, 48 TDX KeyIDs.
            keyids: Some(KeyIdPartition {
                nr_mktme: 15,
                nr_tdx: 48,
            }),
            nodes,
        }
    }

    pub(crate) fn view(&self) -> PlatformView<'_> {
        PlatformView {
            cpus: &self.cpus,
            ram: &self.ram,
            boot_offline: &self.offline,
            image: &self.image,
            keyids: self.keyids,
            nodes: self.nodes,
            complete: true,
        }
    }
}

pub(crate) struct Run {
    pub state: State,
    pub bringup: Bringup,
    pub seam: EmuSeam,
    pub storage: std::boxed::Box<InitStorage>,
    pub progress: StdVec<Progress>,
}

pub(crate) fn run_with(cfg: EmuConfig, fx: &Fixture, tweak: impl FnOnce(&mut EmuSeam)) -> Run {
    let mut progress = StdVec::new();
    let mut r = run_observed(cfg, fx, tweak, &mut |p: &Progress| progress.push(*p));
    r.progress = progress;
    r
}

/// A bring-up on the emulator told to `observer` (the run's `progress` stays empty).
pub(crate) fn run_observed(
    cfg: EmuConfig,
    fx: &Fixture,
    tweak: impl FnOnce(&mut EmuSeam),
    observer: &mut dyn Observer,
) -> Run {
    let (mut seam, mut writer) = emulated(cfg);
    tweak(&mut seam);
    let mut storage = std::boxed::Box::<InitStorage>::default();
    let mut bringup = Bringup::new(InitConfig::default());
    let state = bringup.run(&mut seam, &mut writer, &fx.view(), &mut storage, observer);
    Run {
        state,
        bringup,
        seam,
        storage,
        progress: StdVec::new(),
    }
}

fn assert_ready(r: &Run) {
    assert_eq!(r.state, State::Ready);
    assert_eq!(r.seam.m.state(), SysState::SysReady);
    let (bugs, dropped) = r.seam.m.host_bugs();
    assert_eq!(bugs.count() + dropped as usize, 0, "host bugs recorded");
    let plan = &r.storage.plan;
    for (i, t) in plan.tdmrs.iter().enumerate() {
        assert_eq!(r.seam.m.tdmr_next_to_init(i), Some(t.base.0 + t.size.0));
    }
    let (done, total) = r.bringup.tdmr_bytes();
    assert_eq!((done, total), (plan.tdmr_bytes(), plan.tdmr_bytes()));
    assert_eq!(r.progress.last().map(|p| p.bytes_done), Some(total));
    assert!(r
        .progress
        .windows(2)
        .all(|w| w[0].bytes_done < w[1].bytes_done));
}

#[test]
fn ready_on_one_cpu() {
    let r = run_with(EmuConfig::new(1, 1), &Fixture::new(1, 1, 1), |_| {});
    assert_ready(&r);
    let c = r.bringup.counts();
    assert_eq!(c.seamcalls[InitStep::SysInit as usize], 1);
    assert_eq!(c.seamcalls[InitStep::LpInit as usize], 1);
    assert_eq!(c.seamcalls[InitStep::Config as usize], 1);
    assert_eq!(c.seamcalls[InitStep::KeyConfig as usize], 1);
    // 4 MiB per TDMR.INIT call (§3.2), no retries.
    let tdmr_bytes = r.storage.plan.tdmr_bytes();
    assert_eq!(
        u64::from(c.seamcalls[InitStep::TdmrInit as usize]),
        tdmr_bytes / (4 * MIB)
    );
    assert_eq!(c.retries, [0; InitStep::COUNT]);
    assert_eq!(c.flushes, 1);
    assert_eq!(r.bringup.info().global_keyid, 16);
    assert_eq!(r.bringup.info().cmrs.len(), 2);
    assert_eq!(r.seam.m.global_keyid(), Some(16));
}

#[test]
fn ready_on_four_cpus_two_packages_two_nodes() {
    let mut fx = Fixture::new(4, 2, 2);
    // The top 2 GiB of node 1 is kept offline at boot: covered by TDMRs, no PAMT there.
    fx.ram[2] = mr(10 * GIB, 14 * GIB, 1);
    fx.offline.push(mr(14 * GIB, 16 * GIB, 1));
    let r = run_with(EmuConfig::new(4, 2), &fx, |_| {});
    assert_ready(&r);
    let c = r.bringup.counts();
    assert_eq!(c.seamcalls[InitStep::LpInit as usize], 4);
    assert_eq!(c.seamcalls[InitStep::KeyConfig as usize], 2);
    assert_eq!(r.seam.m.packages_configured(), 0b11);
    // TDMR.INIT ran on as many CPUs as there are TDMRs (up to 4), each TDMR on one CPU, the
    // boot CPU last; every call is counted on some CPU.
    let per_cpu = r.bringup.tdmr_init_per_cpu();
    let tdmrs = r.storage.plan.tdmrs.len();
    assert_eq!(per_cpu.len(), tdmrs.min(4), "{per_cpu:?}");
    assert_eq!(r.bringup.tdmr_init_peak_in_flight(), tdmrs.min(4));
    assert_eq!(per_cpu[0].0, CpuIndex(1), "an AP takes the first TDMR");
    let calls: u32 = per_cpu.iter().map(|&(_, n)| n).sum();
    assert_eq!(calls, c.seamcalls[InitStep::TdmrInit as usize]);
    let plan = &r.storage.plan;
    assert!(plan
        .tdmrs
        .iter()
        .any(|t| t.range().base().0 <= 14 * GIB && t.base.0 + t.size.0 >= 16 * GIB));
    for b in &plan.pamt_blocks {
        let end = b.range.base().0 + b.range.size().0;
        assert!(
            end <= 14 * GIB || b.range.base().0 >= 16 * GIB,
            "PAMT in offline RAM"
        );
        assert!(
            end <= MIB || b.range.base().0 >= 17 * MIB,
            "PAMT in the image"
        );
    }
}

#[test]
fn missing_module_is_unavailable() {
    let mut cfg = EmuConfig::new(1, 1);
    cfg.module_absent = true;
    let r = run_with(cfg, &Fixture::new(1, 1, 1), |_| {});
    assert_eq!(
        r.state,
        State::Unavailable(UnavailableReason::ModuleNotLoaded)
    );
    let mut cfg = EmuConfig::new(1, 1);
    cfg.seamcall_fault = Some(SeamcallFault::Ud);
    let r = run_with(cfg, &Fixture::new(1, 1, 1), |_| {});
    assert_eq!(r.state, State::Unavailable(UnavailableReason::SeamcallUd));
}

#[test]
fn keyid_partitioning_gates_detection() {
    for (keyids, reason) in [
        (None, UnavailableReason::NoTdxKeyIds),
        (
            Some(KeyIdPartition {
                nr_mktme: 15,
                nr_tdx: 0,
            }),
            UnavailableReason::NoTdxKeyIds,
        ),
        (
            Some(KeyIdPartition {
                nr_mktme: 15,
                nr_tdx: 1,
            }),
            UnavailableReason::TooFewKeyIds,
        ),
    ] {
        let mut fx = Fixture::new(1, 1, 1);
        fx.keyids = keyids;
        let r = run_with(EmuConfig::new(1, 1), &fx, |_| {});
        assert_eq!(r.state, State::Unavailable(reason));
        assert_eq!(
            r.bringup.counts().total(),
            0,
            "no SEAMCALL before detection"
        );
    }
}

/// Each step's leaf, a non-transient status it can really return, and an `on_call` that hits a
/// later call of the step (the last CPU, a CMR field, the second package, mid-TDMR).
const STEPS: [(Leaf, InitStep, TdxStatus, u32); 6] = [
    (
        Leaf::SysInit,
        InitStep::SysInit,
        TdxStatus::INCORRECT_CPUID_VALUE,
        1,
    ),
    (
        Leaf::SysLpInit,
        InitStep::LpInit,
        TdxStatus::INCONSISTENT_MSR,
        4,
    ),
    (
        Leaf::SysRd,
        InitStep::ReadMetadata,
        TdxStatus::METADATA_FIELD_ID_INCORRECT,
        15,
    ),
    (
        Leaf::SysConfig,
        InitStep::Config,
        TdxStatus(0xC000_0A02_0000_0001),
        1,
    ),
    (
        Leaf::SysKeyConfig,
        InitStep::KeyConfig,
        TdxStatus::KEY_STATE_INCORRECT,
        2,
    ),
    (
        Leaf::SysTdmrInit,
        InitStep::TdmrInit,
        TdxStatus(0xC000_0100_0000_0001),
        300,
    ),
];

const TRANSIENT: [TdxStatus; 4] = [
    TdxStatus::RND_NO_ENTROPY,
    TdxStatus::SYS_BUSY,
    TdxStatus(0x8000_0200_0000_00BB), // OPERAND_BUSY | KET
    TdxStatus::KEY_GENERATION_FAILED,
];

fn with_fault(rule: FaultRule) -> Run {
    let mut cfg = EmuConfig::new(4, 2);
    assert!(cfg.add_fault(rule));
    run_with(cfg, &Fixture::new(4, 2, 2), |_| {})
}

fn rule(leaf: Leaf, status: TdxStatus, on_call: Option<u32>, repeat: u32) -> FaultRule {
    FaultRule {
        leaf,
        status: status.0,
        on_call,
        on_lp: None,
        repeat,
    }
}

#[test]
fn transient_faults_at_every_step_are_retried_to_success() {
    for (leaf, step, _, nth) in STEPS {
        for status in TRANSIENT {
            for on_call in [None, Some(nth)] {
                let r = with_fault(rule(leaf, status, on_call, 3));
                assert_ready(&r);
                assert_eq!(
                    r.bringup.counts().retries[step as usize],
                    3,
                    "{leaf:?} {status:?} {on_call:?}"
                );
            }
        }
    }
}

#[test]
fn persistent_transient_faults_fail_after_bounded_tries() {
    for (leaf, step, _, nth) in STEPS {
        for status in TRANSIENT {
            for on_call in [None, Some(nth)] {
                let r = with_fault(rule(leaf, status, on_call, FaultRule::FOREVER));
                assert_eq!(
                    r.state,
                    State::Failed {
                        step,
                        status,
                        plan_error: None
                    },
                    "{leaf:?} {status:?} {on_call:?}"
                );
                // Each call is tried 10 times; LP.INIT and TDMR.INIT run on several CPUs
                // at once, each CPU's call with its own bound.
                let retries = r.bringup.counts().retries[step as usize];
                assert!(
                    retries >= 9 && retries.is_multiple_of(9) && retries <= 9 * 4,
                    "{leaf:?} {status:?} {on_call:?}: {retries}"
                );
                if step < InitStep::KeyConfig {
                    assert_ne!(r.seam.m.state(), SysState::SysReady);
                }
            }
        }
    }
}

#[test]
fn hard_faults_at_every_step_fail_at_that_step() {
    for (leaf, step, status, nth) in STEPS {
        for s in [status, TdxStatus::SYS_STATE_INCORRECT] {
            for on_call in [None, Some(nth)] {
                let r = with_fault(rule(leaf, s, on_call, 1));
                assert_eq!(
                    r.state,
                    State::Failed {
                        step,
                        status: s,
                        plan_error: None
                    },
                    "{leaf:?} {s:?} {on_call:?}"
                );
                assert_eq!(r.bringup.counts().retries[step as usize], 0);
                // A failure after CONFIG flushes caches once more (§3.3 unwinding).
                let flushes = if step >= InitStep::KeyConfig { 2 } else { 0 };
                assert_eq!(r.bringup.counts().flushes, flushes);
            }
        }
    }
}

#[test]
fn seamcall_fault_on_one_cpu_fails_lp_init() {
    let r = run_with(EmuConfig::new(4, 2), &Fixture::new(4, 2, 2), |s| {
        s.m.set_lp_fault(2, Some(SeamcallFault::Gp));
    });
    assert_eq!(
        r.state,
        State::Failed {
            step: InitStep::LpInit,
            status: TdxStatus::SEAMCALL_GP,
            plan_error: None
        }
    );
}

#[test]
fn missing_cpu_makes_config_fail_not_hang() {
    // The platform view lost a CPU the module counted: SYS.CONFIG refuses (§3.2).
    let mut fx = Fixture::new(4, 2, 2);
    fx.cpus[3].enabled = false;
    let r = run_with(EmuConfig::new(4, 2), &fx, |_| {});
    assert_eq!(
        r.state,
        State::Failed {
            step: InitStep::Config,
            status: TdxStatus::SYS_CONFIG_NOT_PENDING,
            plan_error: None
        }
    );
}

#[test]
fn host_side_failures_have_host_codes() {
    let mut cfg = EmuConfig::new(1, 1);
    cfg.features0 = 0;
    let r = run_with(cfg, &Fixture::new(1, 1, 1), |_| {});
    assert_eq!(
        r.state,
        State::Failed {
            step: InitStep::ReadMetadata,
            status: host_code::MISSING_NO_RBP_MOD,
            plan_error: None
        }
    );

    let r = run_with(EmuConfig::new(1, 1), &Fixture::new(1, 1, 1), |s| {
        s.flush_fails = true;
    });
    assert!(matches!(
        r.state,
        State::Failed {
            step: InitStep::CacheFlush,
            status: host_code::KERNEL_REFUSED,
            ..
        }
    ));
    assert_eq!(r.seam.m.state(), SysState::SysconfigDone);

    // RAM the planner cannot cover within one TDMR.
    let mut cfg = EmuConfig::new(1, 1);
    cfg.limits.max_tdmrs = 1;
    cfg.limits.max_reserved_per_tdmr = 1;
    let r = run_with(cfg, &Fixture::new(1, 1, 1), |_| {});
    assert!(
        matches!(
            r.state,
            State::Failed {
                step: InitStep::Plan,
                status: host_code::PLAN_FAILED,
                plan_error: Some(_)
            }
        ),
        "{:?}",
        r.state
    );
    assert_eq!(r.storage.plan.tdmrs.len(), 0);
}

/// The planner is bounded by the CPU's MAXPHYADDR minus the KeyID bits: with a CPU that reports
/// 36 bits (30 usable with 6 KeyID bits) the 16 GiB fixture cannot be planned, and bring-up
/// stops at Plan with an error naming the width, before SYS.CONFIG.
#[test]
fn plan_is_bounded_by_max_phys_addr() {
    let r = run_with(EmuConfig::new(1, 1), &Fixture::new(1, 1, 1), |s| {
        s.cpu_max_pa = Some(36);
    });
    assert!(
        matches!(
            r.state,
            State::Failed {
                step: InitStep::Plan,
                plan_error: Some(tdx_planner::PlanError::BeyondMaxPhysAddr { pa_bits: 30, .. }),
                ..
            }
        ),
        "{:?}",
        r.state
    );
    assert_eq!(r.seam.m.state(), SysState::SysinitDone);
    // The module's own width (46 bits, 40 usable) plans the same platform.
    let r = run_with(EmuConfig::new(1, 1), &Fixture::new(1, 1, 1), |_| {});
    assert_eq!(r.state, State::Ready, "{:?}", r.state);
}

#[test]
fn tdmr_info_buffer_too_small_fails_config_before_any_seamcall() {
    let mem = Rc::new(RefCell::new(BufMem {
        base: BUF_BASE,
        bytes: std::vec![0; 512],
    }));
    let mut seam = EmuSeam {
        m: TdxModule::new(EmuConfig::new(1, 1)).unwrap(),
        mem: mem.clone(),
        flush_fails: false,
        cpu_max_pa: None,
        deferred: Deferred::default(),
    };
    let mut writer = EmuWriter { mem, len: 512 };
    let fx = Fixture::new(1, 1, 1);
    let mut st = std::boxed::Box::<InitStorage>::default();
    let mut b = Bringup::new(InitConfig::default());
    let s = b.run(
        &mut seam,
        &mut writer,
        &fx.view(),
        &mut st,
        &mut |_: &Progress| {},
    );
    assert_eq!(
        s,
        State::Failed {
            step: InitStep::Config,
            status: host_code::BUFFER_UNUSABLE,
            plan_error: None
        }
    );
    assert_eq!(b.counts().seamcalls[InitStep::Config as usize], 0);
    // Terminal: a second run changes nothing.
    let again = b.run(
        &mut seam,
        &mut writer,
        &fx.view(),
        &mut st,
        &mut |_: &Progress| {},
    );
    assert_eq!(again, s);
}

#[test]
fn tdmr_init_busy_on_another_lp_is_retried() {
    // Another LP holds TDMR 0's mutex for the first two calls (§3.2 OPERAND_BUSY|RCX).
    let r = with_fault(rule(
        Leaf::SysTdmrInit,
        TdxStatus::OPERAND_BUSY.with_operand(OperandId::RCX),
        Some(1),
        2,
    ));
    assert_ready(&r);
}

#[test]
fn ram_outside_cmrs_is_kept_as_non_tdx() {
    let mut fx = Fixture::new(1, 1, 1);
    // [16 GiB, 17 GiB) is RAM but no CMR covers it (e.g. CXL present at boot).
    fx.ram.push(mr(16 * GIB, 17 * GIB, 0));
    let r = run_with(EmuConfig::new(1, 1), &fx, |_| {});
    assert_ready(&r);
    assert_eq!(r.storage.non_tdx_ram.len(), 1);
    assert_eq!(
        r.storage.non_tdx_ram[0].range,
        PhysRange::literal(16 * GIB, GIB)
    );
    assert!(r
        .storage
        .plan
        .tdmrs
        .iter()
        .all(|t| t.base.0 + t.size.0 <= 16 * GIB));
}

/// Records what bring-up tells its observer.
#[derive(Default)]
struct Recorder {
    events: StdVec<(InitStep, Option<bool>)>,
}

impl Observer for Recorder {
    fn step_started(&mut self, step: InitStep) {
        self.events.push((step, None));
    }

    fn step_finished(&mut self, step: InitStep, finished: bool) {
        self.events.push((step, Some(finished)));
    }
}

/// The observer sees every step start and finish in order, each once; a failing step is the
/// last one and is reported unfinished.
#[test]
fn observer_sees_every_step_in_order_and_where_it_stopped() {
    let mut rec = Recorder::default();
    let r = run_observed(
        EmuConfig::new(1, 1),
        &Fixture::new(1, 1, 1),
        |_| {},
        &mut rec,
    );
    assert_eq!(r.state, State::Ready);
    let want: StdVec<_> = InitStep::ALL
        .iter()
        .flat_map(|&s| [(s, None), (s, Some(true))])
        .collect();
    assert_eq!(rec.events, want);

    let mut rec = Recorder::default();
    let tweak = |s: &mut EmuSeam| s.flush_fails = true;
    let r = run_observed(
        EmuConfig::new(1, 1),
        &Fixture::new(1, 1, 1),
        tweak,
        &mut rec,
    );
    assert!(matches!(
        r.state,
        State::Failed {
            step: InitStep::CacheFlush,
            ..
        }
    ));
    let last = rec.events.last().copied();
    assert_eq!(last, Some((InitStep::CacheFlush, Some(false))));
    assert!(!rec.events.iter().any(|&(s, _)| s > InitStep::CacheFlush));
}

/// Step times are the clock's advance between start and end of each step, and their sum is
/// the report's total; progress reaches the trace once per initialized GiB and at the end.
#[test]
fn trace_times_steps_and_reports_gib_milestones() {
    let fx = Fixture::new(4, 2, 2);
    let clock = core::cell::Cell::new(0u64);
    let mut lines = StdVec::new();
    let mut trace = Trace::new(
        || {
            clock.set(clock.get() + 7);
            clock.get()
        },
        |p: &Progress| lines.push(*p),
    );
    let r = run_observed(EmuConfig::new(4, 2), &fx, |_| {}, &mut trace);
    assert_eq!(r.state, State::Ready);
    let ticks = trace.times.all();
    // Two clock reads per step, 7 ticks apart.
    assert_eq!(ticks, [7; InitStep::COUNT]);
    let total = r.storage.plan.tdmr_bytes();
    assert_eq!(lines.last().map(|p| p.bytes_done), Some(total));
    assert!(lines
        .windows(2)
        .all(|w| w[1].bytes_done >= w[0].bytes_done + GIB || w[1].bytes_done == total));
    assert!(lines.len() as u64 <= total / GIB + 1);

    let view = fx.view();
    let report = InitReport {
        bringup: &r.bringup,
        storage: &r.storage,
        platform: &view,
        ticks,
    };
    let mut text = StdVec::new();
    report.write(&mut |a| text.push(std::format!("{a}")));
    let has = |needle: &str| text.iter().any(|l| l.contains(needle));
    assert!(
        has("CPUs: 4 running in 2 packages, 2 nodes; LP.INIT succeeded on 4"),
        "{text:#?}"
    );
    assert!(has("KeyIDs: 15 MKTME, 48 TDX [16..=63], global KeyID 16"));
    let tdmrs = text.iter().filter(|l| l.starts_with("TDMR ")).count();
    assert_eq!(tdmrs, r.storage.plan.tdmrs.len());
    let total_line = text.iter().find(|l| l.starts_with("  total")).unwrap();
    let per_cpu = r.bringup.tdmr_init_per_cpu();
    assert!(
        has(&std::format!("TDMR.INIT per CPU: {} CPUs", per_cpu.len())),
        "{text:#?}"
    );
    assert_eq!(
        text.iter()
            .filter(|l| l.ends_with("TDMR.INIT calls"))
            .count(),
        per_cpu.len()
    );
    let seamcalls = r.bringup.counts().total();
    assert!(
        total_line.contains(&std::format!("{seamcalls} SEAMCALLs")),
        "{total_line}"
    );
    assert!(total_line.ends_with(&std::format!("{} tsc", 7 * InitStep::COUNT)));
    assert_eq!(
        std::format!("{}", StateLine(r.state)),
        "state Ready: serving TD memory"
    );
}

/// A step that never ran costs nothing; a clock that went backwards counts 0, never wraps.
#[test]
fn step_times_of_steps_that_did_not_run_are_zero() {
    let mut t = [50u64, 40, 10].into_iter();
    let mut times = StepTimes::new(move || t.next().unwrap_or(0));
    times.step_started(InitStep::Detect);
    times.step_finished(InitStep::Detect, true);
    times.step_finished(InitStep::SysInit, false);
    assert_eq!(times.all(), [0; InitStep::COUNT]);
    times.step_started(InitStep::SysInit);
    times.step_finished(InitStep::SysInit, true);
    assert_eq!(times.ticks(InitStep::SysInit), 0);
}
