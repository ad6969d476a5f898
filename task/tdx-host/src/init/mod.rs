//! TDX module bring-up: detect → SYS.INIT → LP.INIT on every CPU → SYS.RD metadata → plan →
//! SYS.CONFIG → WBINVD everywhere → KEY.CONFIG per package → TDMR.INIT until done (§3.3).
//!
//! Pattern: a state machine generic over [`Seam`] and [`PhysWriter`], run to completion
//! ([`Bringup::run`]) or up to TDMR.INIT's first chunks ([`Bringup::begin_durable`]), after
//! which the caller serves and moves TDMR.INIT on with [`Bringup::advance`], bounded work per
//! call. Each step either finishes or moves the machine to a terminal state:
//! - [`State::Ready`]: every TDMR is fully initialized; only now is all memory served;
//! - [`State::Failed`] `{ step, status }`: the first non-transient failure, permanent (the
//!   module cannot be configured twice in practice, §3.2/§3.3; Linux never retries either);
//! - [`State::Unavailable`]: no module (VMfailInvalid/#GP/#UD on the first SEAMCALL, §2.1) or
//!   BIOS did not partition ≥ 2 TDX KeyIDs (§1.2).
//!
//! Invariants:
//! - **It never hangs.** Every SEAMCALL is tried at most [`InitConfig::max_tries`] times while it
//!   returns a transient status (RND_NO_ENTROPY, SYS_BUSY, OPERAND_BUSY, KEY_GENERATION_FAILED;
//!   §2.1, §3.2, §10 items 5/26), and TDMR.INIT is called at most `size / 4 MiB + 1` successful
//!   times per TDMR (§3.2: 4 MiB per call); a TDMR that does not advance is a failure.
//! - **It never serves what the module would refuse.** Progress callbacks report which 1 GiB
//!   blocks are initialized (the module makes memory usable block by block, §3.2), after the
//!   record holds them; the server serves TDX frames of those blocks only, and the state is
//!   `Ready` only at the end.
//! - **Costs are counted, not timed**: [`StepCounts`] holds SEAMCALLs and retries per step.
//! - Failures that are not a SEAMCALL's status get a class-0xFF host code ([`host_code`]); the
//!   module never uses class 0xFF (§4.1), so the two can never be confused.
//!
//! Restart: [`Bringup::run_durable`] keeps a bring-up record ([`record`]) in memory that survives
//! the task's restart, and a new instance re-attaches to the module where the old one stopped
//! ([`resume`], §3.4): same plan, every step done once, or `Failed` with the record's reason.
//!
//! Stack: a few hundred bytes plus the 1 KiB CPU list of TDMR.INIT; the 48 KiB plan and the
//! clipped memory lists live in the caller's [`InitStorage`].

use heapless::Vec;
use tdx_abi::metadata::{features0, field};
use tdx_abi::reattach::{read_ready_probe, ready_probe, step_answer, ProbeAnswer, StepAnswer};
use tdx_abi::{FieldId, Leaf, SeamcallArgs, SeamcallResult, TdxStatus, TDMR_INFO_READ_BYTES};
use tdx_host_api::{InitStep, UnavailableReason};
use tdx_planner::abi::to_tdmr_info;
use tdx_planner::addr::{PhysAddr, PhysRange, GIB};
use tdx_planner::plan_tdmrs;
use tdx_planner::types::{
    InputKind, Limits, MemRange, PaBits, Plan, PlanError, PlanInput, MAX_CMRS, MAX_EXCLUDED,
    MAX_MEMORY_RANGES, MAX_TDMRS,
};

use crate::seam::{CpuIndex, KeyIdPartition, PhysWriter, PlatformView, Seam, MAX_IN_FLIGHT};
use record::{platform_digest, Durable, PlanFacts, Record, RecordError};

mod flights;
pub mod record;
pub mod report;
mod resume;
pub mod schedule;
mod tdmr;

pub use resume::Reattach;
pub use tdmr::{TdmrRun, TURN_CHUNKS};

use crate::host_code;

/// Where bring-up is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// [`Bringup::run`] has not been called.
    NotStarted,
    /// Running this step (visible only to progress callbacks).
    Initializing(InitStep),
    /// Every TDMR is initialized.
    Ready,
    /// The first non-transient failure.
    Failed {
        /// The step that failed.
        step: InitStep,
        /// The module's status, or a [`host_code`].
        status: TdxStatus,
        /// The planner's error when `step` is `Plan`.
        plan_error: Option<PlanError>,
    },
    /// No usable TDX on this machine.
    Unavailable(UnavailableReason),
}

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitConfig {
    /// Tries per SEAMCALL while it returns a transient status (Linux: 10, §2.1).
    pub max_tries: u32,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            max_tries: tdx_abi::consts::RDRAND_RETRY_LOOPS,
        }
    }
}

/// SEAMCALLs and retries per [`InitStep`] (indexed by the step's discriminant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// SEAMCALLs issued, retries included.
    pub seamcalls: [u32; InitStep::COUNT],
    /// Of those, repeats after a transient status.
    pub retries: [u32; InitStep::COUNT],
    /// Cache flushes requested from the kernel.
    pub flushes: u32,
}

impl StepCounts {
    /// All SEAMCALLs.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.seamcalls.iter().map(|&n| u64::from(n)).sum()
    }
}

/// What the module reported through TDH.SYS.RD (§5.4) plus the KeyIDs chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// MAJOR_VERSION.
    pub major: u16,
    /// MINOR_VERSION.
    pub minor: u16,
    /// UPDATE_VERSION.
    pub update: u16,
    /// BUILD_NUM.
    pub build_num: u16,
    /// TDX_FEATURES0.
    pub features0: u64,
    /// TDMR/PAMT limits.
    pub limits: Option<Limits>,
    /// Non-null CMRs.
    pub cmrs: Vec<PhysRange, MAX_CMRS>,
    /// MSR 0x87.
    pub keyids: KeyIdPartition,
    /// Global KeyID given to SYS.CONFIG (0 before).
    pub global_keyid: u16,
}

/// One TDMR.INIT advance: `[tdmr_base, initialized_end)` is now usable (1 GiB granular, §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Index of the TDMR in the plan.
    pub tdmr: usize,
    /// Its base.
    pub tdmr_base: PhysAddr,
    /// Everything below this (inside the TDMR) is initialized.
    pub initialized_end: PhysAddr,
    /// Initialized TDMR bytes over all TDMRs.
    pub bytes_done: u64,
    /// All TDMR bytes.
    pub bytes_total: u64,
}

/// What bring-up tells its caller while it runs: each step as it starts and as it ends, and
/// every TDMR.INIT that moved a TDMR's initialized end. The server binary times the steps and
/// logs progress through it; an observer cannot change the bring-up.
pub trait Observer {
    /// `step` begins; steps begin in [`InitStep`] order, each at most once.
    fn step_started(&mut self, step: InitStep) {
        let _ = step;
    }

    /// `step` ended: `finished` when it completed, false when it stopped the machine (the
    /// terminal state is what [`Bringup::run`] returns).
    fn step_finished(&mut self, step: InitStep, finished: bool) {
        let _ = (step, finished);
    }

    /// A TDMR.INIT made more of a TDMR usable.
    fn tdmr_progress(&mut self, progress: &Progress) {
        let _ = progress;
    }
}

/// A closure observes the TDMR.INIT progress only.
impl<F: FnMut(&Progress)> Observer for F {
    fn tdmr_progress(&mut self, progress: &Progress) {
        self(progress);
    }
}

/// Caller-provided storage for the bring-up (put it in a `static`; about 60 KiB, mostly the
/// planner's [`Plan`]). After `Ready` it holds the plan (TDMRs, PAMT blocks) and the RAM the
/// bring-up could not make TDX memory (outside every CMR).
#[derive(Clone, Debug, Default)]
pub struct InitStorage {
    /// The TDMR plan given to SYS.CONFIG.
    pub plan: Plan,
    /// Online RAM clipped to the CMRs (what the planner was given).
    pub tdx_ram: Vec<MemRange, MAX_MEMORY_RANGES>,
    /// Boot-offline RAM clipped to the CMRs.
    pub tdx_offline: Vec<MemRange, MAX_MEMORY_RANGES>,
    /// Online RAM outside every CMR: never TDX memory.
    pub non_tdx_ram: Vec<MemRange, MAX_MEMORY_RANGES>,
    /// PAMT exclusions: image ranges and the TDMR_INFO buffer.
    pub excluded: Vec<PhysRange, MAX_EXCLUDED>,
}

impl InitStorage {
    /// Bytes of PAMT the plan gave the module.
    #[must_use]
    pub fn pamt_bytes(&self) -> u64 {
        self.plan.pamt_bytes.0
    }

    /// TDMRs in the plan.
    #[must_use]
    pub fn tdmr_count(&self) -> u16 {
        self.plan.tdmrs.len() as u16
    }
}

/// The bring-up state machine; small (about 1 KiB) and `Copy`-free only because of `ModuleInfo`.
#[derive(Clone, Debug)]
pub struct Bringup {
    state: State,
    config: InitConfig,
    counts: StepCounts,
    info: ModuleInfo,
    tdmr_bytes_total: u64,
    tdmr_bytes_done: u64,
    reattach: Reattach,
    /// TDMR.INIT calls per CPU (retries included), in the order the CPUs were first used.
    tdmr_calls: Vec<(CpuIndex, u32), MAX_IN_FLIGHT>,
    /// The most TDMR.INIT calls that were in flight at once.
    tdmr_peak_in_flight: usize,
}

/// Why a step stopped the machine.
type Stop = State;

impl Bringup {
    /// A machine that has not started.
    #[must_use]
    pub fn new(config: InitConfig) -> Self {
        Bringup {
            state: State::NotStarted,
            config,
            counts: StepCounts::default(),
            info: ModuleInfo::default(),
            tdmr_bytes_total: 0,
            tdmr_bytes_done: 0,
            reattach: Reattach::default(),
            tdmr_calls: Vec::new(),
            tdmr_peak_in_flight: 0,
        }
    }

    /// TDMR.INIT calls each CPU made (retries included), in the order the CPUs were first
    /// used; empty before TDMR.INIT.
    #[must_use]
    pub fn tdmr_init_per_cpu(&self) -> &[(CpuIndex, u32)] {
        &self.tdmr_calls
    }

    /// The most TDMR.INIT calls that were in flight at once.
    #[must_use]
    pub fn tdmr_init_peak_in_flight(&self) -> usize {
        self.tdmr_peak_in_flight
    }

    /// What the record and the module said about earlier instances.
    #[must_use]
    pub fn reattach(&self) -> &Reattach {
        &self.reattach
    }

    /// Current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// SEAMCALL counts per step.
    #[must_use]
    pub fn counts(&self) -> &StepCounts {
        &self.counts
    }

    /// What the module reported.
    #[must_use]
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// The CMRs the module reported (empty before SYS.RD).
    #[must_use]
    pub fn cmrs(&self) -> &[PhysRange] {
        &self.info.cmrs
    }

    /// TDMR.INIT has begun and not ended ([`Bringup::begin_durable`] left it running).
    #[must_use]
    pub fn tdmr_init_running(&self) -> bool {
        self.state == State::Initializing(InitStep::TdmrInit)
    }

    /// (initialized, total) TDMR bytes.
    #[must_use]
    pub fn tdmr_bytes(&self) -> (u64, u64) {
        (self.tdmr_bytes_done, self.tdmr_bytes_total)
    }

    /// Runs the whole bring-up once, telling `observer` each step's start and end and every
    /// TDMR.INIT advance; later calls return the terminal state unchanged. Nothing is recorded:
    /// an instance started after this one dies cannot re-attach ([`Bringup::run_durable`]).
    pub fn run<S: Seam, W: PhysWriter>(
        &mut self,
        seam: &mut S,
        writer: &mut W,
        platform: &PlatformView<'_>,
        storage: &mut InitStorage,
        observer: &mut dyn Observer,
    ) -> State {
        self.run_durable(seam, writer, platform, storage, None, observer)
    }

    /// [`Bringup::run`] keeping the bring-up record in `durable` (memory that survives this
    /// task's restart): with a record of an earlier instance, it re-attaches — asks the module
    /// how far it got, finishes with the recorded plan — instead of starting over (§3.4).
    pub fn run_durable<S: Seam, W: PhysWriter>(
        &mut self,
        seam: &mut S,
        writer: &mut W,
        platform: &PlatformView<'_>,
        storage: &mut InitStorage,
        mut durable: Option<&mut dyn Durable>,
        observer: &mut dyn Observer,
    ) -> State {
        // A shorter borrow of the record's memory per call.
        fn again<'b>(d: &'b mut Option<&mut dyn Durable>) -> Option<&'b mut dyn Durable> {
            d.as_mut().map(|d| &mut **d as &mut dyn Durable)
        }
        let mut run = None;
        let d = again(&mut durable);
        self.begin_durable(seam, writer, platform, storage, d, observer, &mut run);
        while run.is_some() {
            self.step(seam, &mut run, again(&mut durable), observer, true);
        }
        self.state
    }

    /// [`Bringup::run_durable`] up to TDMR.INIT's first chunks: returns
    /// `Initializing(TdmrInit)` while they run, with the run in `run` (the caller then serves
    /// what is initialized and calls [`Bringup::advance`] when SEAMCALLs finish), or the
    /// terminal state. Later calls return the state unchanged. The run (about 9 KiB) is the
    /// caller's to keep, on its stack rather than in this struct's `static`.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_durable<S: Seam, W: PhysWriter>(
        &mut self,
        seam: &mut S,
        writer: &mut W,
        platform: &PlatformView<'_>,
        storage: &mut InitStorage,
        durable: Option<&mut dyn Durable>,
        observer: &mut dyn Observer,
        run: &mut Option<TdmrRun>,
    ) -> State {
        if self.state != State::NotStarted {
            return self.state;
        }
        match self.run_steps(seam, writer, platform, storage, durable, observer) {
            Ok(Some(r)) => {
                *run = Some(r);
                self.state
            }
            Ok(None) => self.finish(seam, Ok(()), observer),
            Err(stop) => self.finish(seam, Err(stop), observer),
        }
    }

    /// Books the TDMR.INIT answers there are now and starts the next chunks, never waiting:
    /// bounded work (one answer per CPU in flight at most). `durable` is the record's memory
    /// given to [`Bringup::begin_durable`]. Returns the state: still `Initializing(TdmrInit)`,
    /// or `Ready` / `Failed` once TDMR.INIT ended. Without a running TDMR.INIT, the state.
    pub fn advance<S: Seam>(
        &mut self,
        seam: &mut S,
        run: &mut Option<TdmrRun>,
        durable: Option<&mut dyn Durable>,
        observer: &mut dyn Observer,
    ) -> State {
        self.step(seam, run, durable, observer, false)
    }

    /// Starts the chunks [`Bringup::advance`] held back (see [`TdmrRun::holds_back`]): call it
    /// after serving a request, or a tick later. Returns the state.
    pub fn release_held<S: Seam>(
        &mut self,
        seam: &mut S,
        run: &mut Option<TdmrRun>,
        observer: &mut dyn Observer,
    ) -> State {
        match self.tdmr_release(seam, run) {
            Ok(()) => self.state,
            Err(stop) => self.finish(seam, Err(stop), observer),
        }
    }

    fn step<S: Seam>(
        &mut self,
        seam: &mut S,
        run: &mut Option<TdmrRun>,
        durable: Option<&mut dyn Durable>,
        observer: &mut dyn Observer,
        wait: bool,
    ) -> State {
        let Some(r) = run.as_ref() else {
            return self.state;
        };
        let mut rec = Record::resume(durable, r.marks.clone());
        match self.tdmr_advance(seam, run, &mut rec, observer, wait) {
            Ok(false) => self.state,
            Ok(true) => self.finish(seam, Ok(()), observer),
            Err(stop) => self.finish(seam, Err(stop), observer),
        }
    }

    /// The end of bring-up: `Ready`, or the stop (after CONFIG, with the caches flushed).
    fn finish<S: Seam>(
        &mut self,
        seam: &mut S,
        result: Result<(), Stop>,
        observer: &mut dyn Observer,
    ) -> State {
        if let State::Initializing(step) = self.state {
            observer.step_finished(step, result.is_ok());
        }
        self.state = match result {
            Ok(()) => State::Ready,
            Err(stop) => {
                // After CONFIG the PAMTs hold KeyID-tagged lines: flush before anyone could reuse
                // them (§3.3 error unwinding). Best effort; the state is terminal either way.
                if let State::Failed { step, .. } = stop {
                    if step >= InitStep::CacheFlush {
                        self.counts.flushes += 1;
                        let _ = seam.flush_caches_all_cpus();
                    }
                }
                stop
            }
        };
        self.state
    }

    /// Leaves the running step (finished) and enters `step`.
    fn enter(&mut self, step: InitStep, observer: &mut dyn Observer) {
        if let State::Initializing(previous) = self.state {
            observer.step_finished(previous, true);
        }
        self.state = State::Initializing(step);
        observer.step_started(step);
    }

    fn run_steps<S: Seam, W: PhysWriter>(
        &mut self,
        seam: &mut S,
        writer: &mut W,
        platform: &PlatformView<'_>,
        storage: &mut InitStorage,
        durable: Option<&mut dyn Durable>,
        observer: &mut dyn Observer,
    ) -> Result<Option<TdmrRun>, Stop> {
        self.enter(InitStep::Detect, observer);
        let boot = self.detect(platform)?;
        let mut rec = self.open_record(durable)?;
        let buffer = writer.buffer();
        let pa_bits = usable_pa_bits(seam.max_phys_addr_bits(), &self.info.keyids);
        let loaded = if rec.marks().is_done(InitStep::Plan) {
            self.load_plan(&rec, platform, buffer, pa_bits, storage)?;
            true
        } else {
            false
        };
        if rec.marks().is_done(InitStep::TdmrInit) {
            self.plan(platform, buffer, pa_bits, storage, false)?;
            self.enter(InitStep::TdmrInit, observer);
            return self.confirm_ready(seam, boot, &storage.plan).map(|()| None);
        }
        self.enter(InitStep::SysInit, observer);
        if !rec.marks().is_done(InitStep::SysInit) {
            let r = self.call_raw(seam, InitStep::SysInit, Some(boot), leaf(Leaf::SysInit))?;
            match step_answer(Leaf::SysInit, r.status()) {
                StepAnswer::DidNow => {}
                StepAnswer::AlreadyDone => self.reattach.answer(InitStep::SysInit),
                _ => return Err(fail(InitStep::SysInit, r.status())),
            }
            rec.update(|m| m.set_done(InitStep::SysInit));
        }
        self.enter(InitStep::LpInit, observer);
        let configured = self.lp_init(seam, platform, &mut rec)?;
        if configured && !loaded {
            return Err(self.record_fail(InitStep::LpInit, RecordError::ConfiguredWithoutPlan));
        }
        self.enter(InitStep::ReadMetadata, observer);
        if !loaded {
            self.read_metadata(seam, boot)?;
        }
        self.enter(InitStep::Plan, observer);
        self.plan(platform, buffer, pa_bits, storage, !loaded)?;
        if !loaded {
            // On a re-attach the module may have been configured by someone the record does
            // not know: ask before committing a plan that could then pass for the module's.
            let earlier = self.reattach.found || self.reattach.answered != 0;
            if earlier && self.module_configured(seam, InitStep::Plan, boot)? {
                return Err(self.record_fail(InitStep::Plan, RecordError::ConfiguredWithoutPlan));
            }
            let facts = PlanFacts {
                pa_bits: pa_bits.0,
                buffer,
                platform: platform_digest(platform),
                tdmr_info: tdmr_info_digest(&storage.plan, buffer),
            };
            rec.commit_plan(&self.info, &facts, &storage.plan);
        }
        self.enter(InitStep::Config, observer);
        if configured {
            self.reattach.answer(InitStep::Config);
        } else if !rec.marks().is_done(InitStep::Config) {
            self.configure(seam, writer, boot, &storage.plan, loaded, &mut rec)?;
        }
        rec.update(|m| m.set_done(InitStep::Config));
        self.enter(InitStep::CacheFlush, observer);
        if !rec.marks().is_done(InitStep::KeyConfig) {
            self.counts.flushes += 1;
            seam.flush_caches_all_cpus()
                .map_err(|_| fail(InitStep::CacheFlush, host_code::KERNEL_REFUSED))?;
        }
        self.enter(InitStep::KeyConfig, observer);
        self.key_config(seam, platform, boot, &mut rec)?;
        self.enter(InitStep::TdmrInit, observer);
        self.tdmr_init_begin(seam, platform, &storage.plan, &mut rec)
    }

    /// §1.2: KeyIDs, a complete platform record, at least one CPU. Returns the boot CPU.
    fn detect(&mut self, p: &PlatformView<'_>) -> Result<CpuIndex, Stop> {
        let keyids = match p.keyids {
            None | Some(KeyIdPartition { nr_tdx: 0, .. }) => {
                return Err(State::Unavailable(UnavailableReason::NoTdxKeyIds))
            }
            Some(k) if k.nr_tdx < tdx_abi::consts::MIN_PRIVATE_KEYIDS => {
                return Err(State::Unavailable(UnavailableReason::TooFewKeyIds))
            }
            Some(k) => k,
        };
        if !p.complete {
            return Err(fail(InitStep::Detect, host_code::PLATFORM_INCOMPLETE));
        }
        let global = u16::try_from(keyids.first_tdx())
            .map_err(|_| fail(InitStep::Detect, host_code::KEYID_OUT_OF_RANGE))?;
        self.info.keyids = keyids;
        self.info.global_keyid = global;
        p.cpus
            .iter()
            .position(|c| c.enabled)
            .map(|i| CpuIndex(i as u32))
            .ok_or(fail(InitStep::Detect, host_code::NO_CPUS))
    }

    /// One SEAMCALL with the bounded transient-retry policy. Warnings (bit 63 clear, non-zero)
    /// are returned to the caller, which decides what they mean for its leaf.
    fn call<S: Seam>(
        &mut self,
        seam: &mut S,
        step: InitStep,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, Stop> {
        let r = self.call_raw(seam, step, cpu, args)?;
        if r.status().is_error() {
            return Err(fail(step, r.status()));
        }
        Ok(r)
    }

    /// [`Bringup::call`] that also returns error statuses other than transient ones, for the
    /// caller to read (re-attach answers, probes).
    fn call_raw<S: Seam>(
        &mut self,
        seam: &mut S,
        step: InitStep,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, Stop> {
        let k = step as usize;
        let mut last = TdxStatus::SUCCESS;
        for attempt in 0..self.config.max_tries.max(1) {
            self.counts.seamcalls[k] += 1;
            if attempt > 0 {
                self.counts.retries[k] += 1;
            }
            let r = match seam.seamcall(cpu, args) {
                Ok(r) => r,
                Err(e) => {
                    // The first SEAMCALL tells whether a module is there at all (§2.1).
                    if step == InitStep::SysInit {
                        if let Some(reason) = e.unavailable_reason() {
                            return Err(State::Unavailable(reason));
                        }
                    }
                    return Err(fail(step, e.status()));
                }
            };
            let s = r.status();
            if !is_retryable(s) {
                return Ok(r);
            }
            last = s;
        }
        Err(fail(step, last))
    }

    fn rd<S: Seam>(&mut self, seam: &mut S, cpu: CpuIndex, id: FieldId) -> Result<u64, Stop> {
        let args = SeamcallArgs::leaf(Leaf::SysRd).rdx(id.0);
        let r = self.call(seam, InitStep::ReadMetadata, Some(cpu), args)?;
        if !r.status().is_success() {
            return Err(fail(InitStep::ReadMetadata, r.status()));
        }
        Ok(r.r8 & id.value_mask())
    }

    /// §5.4 fields; refuses a module without NO_RBP_MOD (§3.3 b).
    fn read_metadata<S: Seam>(&mut self, seam: &mut S, cpu: CpuIndex) -> Result<(), Stop> {
        let bad = || fail(InitStep::ReadMetadata, host_code::BAD_METADATA);
        let u16v = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
        self.info.major = u16v(self.rd(seam, cpu, field::MAJOR_VERSION)?);
        self.info.minor = u16v(self.rd(seam, cpu, field::MINOR_VERSION)?);
        self.info.update = u16v(self.rd(seam, cpu, field::UPDATE_VERSION)?);
        self.info.build_num = u16v(self.rd(seam, cpu, field::BUILD_NUM)?);
        self.info.features0 = self.rd(seam, cpu, field::TDX_FEATURES0)?;
        if self.info.features0 & features0::NO_RBP_MOD == 0 {
            return Err(fail(InitStep::ReadMetadata, host_code::MISSING_NO_RBP_MOD));
        }
        let limits = Limits {
            max_tdmrs: u16v(self.rd(seam, cpu, field::MAX_TDMRS)?),
            max_reserved_per_tdmr: u16v(self.rd(seam, cpu, field::MAX_RESERVED_PER_TDMR)?),
            pamt_entry_size: [
                u16v(self.rd(seam, cpu, field::PAMT_4K_ENTRY_SIZE)?),
                u16v(self.rd(seam, cpu, field::PAMT_2M_ENTRY_SIZE)?),
                u16v(self.rd(seam, cpu, field::PAMT_1G_ENTRY_SIZE)?),
            ],
        };
        if limits.max_tdmrs == 0
            || limits.max_reserved_per_tdmr == 0
            || limits.pamt_entry_size.contains(&0)
        {
            return Err(bad());
        }
        self.info.limits = Some(limits);
        let n = self.rd(seam, cpu, field::NUM_CMRS)?;
        if n > MAX_CMRS as u64 {
            return Err(bad());
        }
        self.info.cmrs.clear();
        for i in 0..n as u16 {
            let base = self.rd(seam, cpu, field::cmr_base(i))?;
            let size = self.rd(seam, cpu, field::cmr_size(i))?;
            if size != 0 {
                // Capacity is MAX_CMRS and n <= MAX_CMRS.
                let _ = self
                    .info
                    .cmrs
                    .push(PhysRange::new(base, size).ok_or_else(bad)?);
            }
        }
        Ok(())
    }

    /// §7 via the planner: RAM (online and boot-offline) clipped to the CMRs, PAMTs kept away
    /// from the image and the TDMR_INFO buffer. Without `compute` only the clipped lists are
    /// rebuilt around the plan already in `st` (a recorded one).
    fn plan(
        &mut self,
        p: &PlatformView<'_>,
        buffer: PhysRange,
        pa_bits: PaBits,
        st: &mut InitStorage,
        compute: bool,
    ) -> Result<(), Stop> {
        let too_many = |kind| {
            let e = PlanError::TooManyInputRanges {
                kind,
                count: MAX_MEMORY_RANGES + 1,
                max: MAX_MEMORY_RANGES,
            };
            plan_fail(e)
        };
        let cmrs = &self.info.cmrs;
        st.tdx_ram.clear();
        st.tdx_offline.clear();
        st.non_tdx_ram.clear();
        st.excluded.clear();
        clip_to_cmrs(p.ram, cmrs, &mut st.tdx_ram, Some(&mut st.non_tdx_ram))
            .map_err(|()| too_many(InputKind::Memory))?;
        clip_to_cmrs(p.boot_offline, cmrs, &mut st.tdx_offline, None)
            .map_err(|()| too_many(InputKind::Memory))?;
        for r in p.image.iter().copied().chain(core::iter::once(buffer)) {
            st.excluded.push(r).map_err(|_| {
                plan_fail(PlanError::TooManyInputRanges {
                    kind: InputKind::Excluded,
                    count: p.image.len() + 1,
                    max: MAX_EXCLUDED,
                })
            })?;
        }
        if !compute {
            return Ok(());
        }
        let input = PlanInput {
            cmrs,
            memory: &st.tdx_ram,
            offline: &st.tdx_offline,
            excluded: &st.excluded,
            limits: self.info.limits.unwrap_or(Limits::TDX_1_5),
            pa_bits,
        };
        plan_tdmrs(&input, &mut st.plan).map_err(plan_fail)?;
        self.tdmr_bytes_total = st.plan.tdmr_bytes();
        Ok(())
    }

    /// §5.3 layout in the kernel's buffer: the PA array at its base, TDMR_INFO `i` at
    /// `base + 512 × (1 + i)`; then TDH.SYS.CONFIG. With a plan from the record (`recorded`)
    /// the predecessor may have submitted it already: TDX_SYS_CONFIG_NOT_PENDING then means
    /// the module holds this plan (§3.4). A plan of this instance that the module refuses is
    /// taken out of the record again, so no later instance mistakes it for the module's.
    fn configure<S: Seam, W: PhysWriter>(
        &mut self,
        seam: &mut S,
        writer: &mut W,
        cpu: CpuIndex,
        plan: &Plan,
        recorded: bool,
        rec: &mut Record<'_>,
    ) -> Result<(), Stop> {
        let step = InitStep::Config;
        let buf = writer.buffer();
        let n = plan.tdmrs.len();
        let need = 512 * (1 + n as u64);
        if !buf.base().is_aligned(512) || buf.size().0 < need || n == 0 || n > MAX_TDMRS {
            return Err(fail(step, host_code::BUFFER_UNUSABLE));
        }
        let mut written = Ok(());
        for_each_tdmr_info(plan, buf.base(), &mut |pa, bytes| {
            if written.is_ok() {
                written = writer.write(PhysAddr(pa), bytes);
            }
        });
        written.map_err(|_| fail(step, host_code::WRITE_FAILED))?;
        let args = SeamcallArgs::leaf(Leaf::SysConfig)
            .rcx(buf.base().0)
            .rdx(n as u64)
            .r8(u64::from(self.info.global_keyid));
        let r = match self.call_raw(seam, step, Some(cpu), args) {
            Ok(r) => r,
            Err(stop) => {
                if !recorded {
                    rec.retract_plan();
                }
                return Err(stop);
            }
        };
        match step_answer(Leaf::SysConfig, r.status()) {
            StepAnswer::DidNow => Ok(()),
            StepAnswer::NotPending if recorded => {
                self.reattach.answer(step);
                Ok(())
            }
            _ if recorded => Err(fail(step, r.status())),
            _ => {
                rec.retract_plan();
                let configured = r.status().is(TdxStatus::SYS_CONFIG_NOT_PENDING)
                    && self.module_configured(seam, step, cpu)?;
                if configured {
                    return Err(self.record_fail(step, RecordError::ConfiguredWithoutPlan));
                }
                Err(fail(step, r.status()))
            }
        }
    }

    /// Is the module configured (LP.INIT on an initialized LP answers
    /// TDX_SYS_LP_INIT_NOT_PENDING) or still in SYSINIT_DONE (TDX_SYS_LP_INIT_DONE)? Asked
    /// once SYS.INIT and LP.INIT are known done, §3.4's order of questions.
    fn module_configured<S: Seam>(
        &mut self,
        seam: &mut S,
        step: InitStep,
        cpu: CpuIndex,
    ) -> Result<bool, Stop> {
        let r = self.call_raw(seam, step, Some(cpu), leaf(Leaf::SysLpInit))?;
        Ok(step_answer(Leaf::SysLpInit, r.status()) == StepAnswer::NotPending)
    }

    /// TDH.SYS.KEY.CONFIG once on one enabled CPU of each package not recorded keyed,
    /// serially (§3.3 g). TDX_KEY_CONFIGURED means the package was keyed before;
    /// TDX_SYS_KEY_CONFIG_NOT_PENDING on a re-attach means every package is (the READY
    /// question confirms it).
    fn key_config<S: Seam>(
        &mut self,
        seam: &mut S,
        p: &PlatformView<'_>,
        boot: CpuIndex,
        rec: &mut Record<'_>,
    ) -> Result<(), Stop> {
        let step = InitStep::KeyConfig;
        if rec.marks().is_done(step) {
            return Ok(());
        }
        for (k, cpu) in p.package_leaders().enumerate() {
            if rec.marks().package_done(k) {
                continue;
            }
            let args = SeamcallArgs::leaf(Leaf::SysKeyConfig);
            let r = self.call_raw(seam, step, Some(cpu), args)?;
            match step_answer(Leaf::SysKeyConfig, r.status()) {
                StepAnswer::DidNow => {}
                StepAnswer::AlreadyDone => self.reattach.packages.1 += 1,
                StepAnswer::NotPending if self.reattach.found => {
                    let q = self.call_raw(seam, step, Some(boot), ready_probe())?;
                    if read_ready_probe(q.status()) != ProbeAnswer::Yes {
                        let e = RecordError::AheadOfModule(InitStep::Config);
                        return Err(self.record_fail(step, e));
                    }
                    let rest = p.package_leaders().skip(k).count() as u32;
                    self.reattach.packages.1 += rest;
                    self.reattach.answer(step);
                    break;
                }
                _ => return Err(fail(step, r.status())),
            }
            rec.update(|m| m.set_package(k));
        }
        rec.update(|m| m.set_done(step));
        Ok(())
    }
}

/// Statuses that go away by themselves: retry the identical call (§2.1, §3.2, §10 items 5, 26).
#[must_use]
pub fn is_retryable(s: TdxStatus) -> bool {
    [
        TdxStatus::RND_NO_ENTROPY,
        TdxStatus::SYS_BUSY,
        TdxStatus::OPERAND_BUSY,
        TdxStatus::KEY_GENERATION_FAILED,
    ]
    .iter()
    .any(|&t| s.is(t))
}

const fn leaf(l: Leaf) -> SeamcallArgs {
    SeamcallArgs::leaf(l)
}

/// The bytes SYS.CONFIG reads (§5.3), in the order written: TDMR_INFO `i` at
/// `base + 512 × (1 + i)`, then the PA array at `base`.
fn for_each_tdmr_info(plan: &Plan, base: PhysAddr, out: &mut dyn FnMut(u64, &[u8])) {
    let mut array = [0u8; 8 * MAX_TDMRS];
    let n = plan.tdmrs.len().min(MAX_TDMRS);
    for (i, t) in plan.tdmrs.iter().take(n).enumerate() {
        let pa = base.0 + 512 * (1 + i as u64);
        array[8 * i..8 * i + 8].copy_from_slice(&pa.to_le_bytes());
        let bytes: [u8; TDMR_INFO_READ_BYTES] = to_tdmr_info(t).to_bytes();
        out(pa, &bytes);
    }
    out(base.0, &array[..8 * n]);
}

/// CRC-32 of the TDMR_INFO bytes `plan` gives in the buffer at `buffer` (what the record keeps
/// of the TDMR_INFO handed to SYS.CONFIG).
fn tdmr_info_digest(plan: &Plan, buffer: PhysRange) -> u32 {
    let mut c = verdict::Crc32::new();
    for_each_tdmr_info(plan, buffer.base(), &mut |pa, bytes| {
        c.update(&pa.to_le_bytes());
        c.update(bytes);
    });
    c.value()
}

fn fail(step: InitStep, status: TdxStatus) -> State {
    State::Failed {
        step,
        status,
        plan_error: None,
    }
}

/// The planner's address width: MAXPHYADDR minus the KeyID bits the partition needs at least.
/// The module's exact HKID boundary may be lower (more KeyID bits than KeyIDs); SYS.CONFIG
/// still refuses a TDMR above it with TDX_INVALID_TDMR.
fn usable_pa_bits(max_pa: u8, keyids: &KeyIdPartition) -> PaBits {
    PaBits(max_pa.saturating_sub(keyids.min_keyid_bits()))
}

fn plan_fail(e: PlanError) -> State {
    State::Failed {
        step: InitStep::Plan,
        status: host_code::PLAN_FAILED,
        plan_error: Some(e),
    }
}

/// Splits `ram` into the parts inside some CMR (→ `inside`) and outside every CMR
/// (→ `outside`, when given). Memory below 1 MiB is never in a CMR (§5.1) and is dropped.
fn clip_to_cmrs<const N: usize>(
    ram: &[MemRange],
    cmrs: &[PhysRange],
    inside: &mut Vec<MemRange, N>,
    mut outside: Option<&mut Vec<MemRange, N>>,
) -> Result<(), ()> {
    const LOW: u64 = 1 << 20;
    for r in ram {
        let start = r.range.base().0.max(LOW);
        let end = r.range.base().0.saturating_add(r.range.size().0);
        let mut cursor = start;
        while cursor < end {
            // The CMR containing `cursor`, else the next CMR start after it.
            let hit = cmrs
                .iter()
                .find(|c| c.base().0 <= cursor && cursor < c.base().0 + c.size().0);
            let (piece_end, is_in) = match hit {
                Some(c) => ((c.base().0 + c.size().0).min(end), true),
                None => {
                    let next = cmrs
                        .iter()
                        .map(|c| c.base().0)
                        .filter(|&b| b > cursor)
                        .min()
                        .unwrap_or(end);
                    (next.min(end), false)
                }
            };
            let piece = MemRange {
                range: PhysRange::from_bounds(cursor, piece_end).ok_or(())?,
                node: r.node,
            };
            if is_in {
                inside.push(piece).map_err(|_| ())?;
            } else if let Some(out) = outside.as_deref_mut() {
                out.push(piece).map_err(|_| ())?;
            }
            cursor = piece_end;
        }
    }
    Ok(())
}

/// The 1 GiB-aligned part of `[tdmr_base, initialized_end)`: what [`Progress`] makes usable.
#[must_use]
pub fn initialized_range(p: &Progress) -> PhysRange {
    let base = p.tdmr_base.0;
    let end = p.initialized_end.0 & !(GIB - 1);
    PhysRange::saturating(base, end.saturating_sub(base))
}

#[cfg(test)]
mod restart_tests;
#[cfg(test)]
pub(crate) mod tests;
