//! Re-attaching to a module that an earlier tdx-host instance already drove part-way
//! (docs/tdx-module.md §3.4): opening the bring-up record, taking its plan, confirming a
//! recorded `Ready`, and LP.INIT that reads "already done" answers.
//!
//! Pattern: more `impl Bringup` (the steps in `mod.rs` call these); [`Reattach`] is what the
//! init report shows of it.
//!
//! Invariants: the record is trusted only for what the module cannot say (the plan, the facts
//! it was made from); every step it marks done is either skipped (the module cannot undo it)
//! or asked again, and an answer that contradicts it stops bring-up with a [`RecordError`] —
//! never a second plan, never a re-initialization.

use tdx_abi::reattach::{read_ready_probe, ready_probe, step_answer, ProbeAnswer, StepAnswer};
use tdx_abi::{Leaf, OperandId, TdxStatus};
use tdx_host_api::InitStep;
use tdx_planner::addr::PhysRange;
use tdx_planner::types::{PaBits, Plan};

use super::flights::Flights;
use super::record::{platform_digest, Durable, Opened, Record, RecordError};
use super::{fail, leaf, tdmr_info_digest, Bringup, InitStorage, Stop};
use crate::host_code;
use crate::seam::{CpuIndex, PlatformView, Seam, MAX_IN_FLIGHT};

/// What this instance learned about earlier instances' work (all empty on a first instance):
/// what the bring-up record said, and what the module answered "already done" beyond it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reattach {
    /// The record held marks of an earlier instance: this is a re-attach.
    pub found: bool,
    /// Instances that re-attached this boot, this one included.
    pub attaches: u32,
    /// Sequence number of the marks found.
    pub seq: u64,
    /// Steps the record said done (bit `InitStep as u16`).
    pub recorded: u16,
    /// Steps the module answered "done before" for (bit `InitStep as u16`).
    pub answered: u16,
    /// LPs the record said initialized, and LPs the module answered TDX_SYS_LP_INIT_DONE for.
    pub lps: (u32, u32),
    /// Packages the record said keyed, and packages answered TDX_KEY_CONFIGURED (or found
    /// keyed by the READY question).
    pub packages: (u32, u32),
    /// The plan (and the module facts) came from the record, not from SYS.RD and the planner.
    pub plan_from_record: bool,
    /// TDMR bytes the record said initialized when TDMR.INIT resumed.
    pub tdmr_bytes_recorded: u64,
    /// Why the record could not be used, when that stopped bring-up.
    pub error: Option<RecordError>,
}

impl Reattach {
    pub(super) fn answer(&mut self, step: InitStep) {
        self.answered |= 1 << step as u16;
    }
}

impl Bringup {
    /// Opens the record (a volatile one without durable memory) and notes what it holds.
    pub(super) fn open_record<'d>(
        &mut self,
        durable: Option<&'d mut dyn Durable>,
    ) -> Result<Record<'d>, Stop> {
        let Some(mem) = durable else {
            return Ok(Record::volatile());
        };
        let (rec, opened) = Record::open(mem).map_err(|e| self.record_fail(InitStep::Detect, e))?;
        if opened == Opened::Found {
            let m = rec.marks();
            self.reattach.found = true;
            self.reattach.attaches = m.attaches;
            self.reattach.seq = m.seq;
            self.reattach.recorded = m.done;
            self.reattach.lps.0 = m.lp_count();
            self.reattach.packages.0 = m.package_count();
        }
        Ok(rec)
    }

    /// A record that cannot be used, or contradicts the module: `Failed` with the reason kept.
    pub(super) fn record_fail(&mut self, step: InitStep, e: RecordError) -> Stop {
        self.reattach.error = Some(e);
        fail(step, host_code::RECORD_REFUSED)
    }

    /// Takes the committed plan and the facts it was made from; refuses them for another
    /// platform (the module keeps the recorded plan, so the platform must be the planned one).
    pub(super) fn load_plan(
        &mut self,
        rec: &Record<'_>,
        platform: &PlatformView<'_>,
        buffer: PhysRange,
        pa_bits: PaBits,
        storage: &mut InitStorage,
    ) -> Result<(), Stop> {
        let step = InitStep::Detect;
        let detected = (self.info.keyids, self.info.global_keyid);
        let facts = rec
            .load_plan(&mut self.info, &mut storage.plan)
            .map_err(|e| self.record_fail(step, e))?;
        let same = facts.platform == platform_digest(platform)
            && facts.buffer == buffer
            && facts.pa_bits == pa_bits.0
            && (self.info.keyids, self.info.global_keyid) == detected;
        if !same {
            return Err(self.record_fail(step, RecordError::PlatformChanged));
        }
        if facts.tdmr_info != tdmr_info_digest(&storage.plan, buffer) {
            return Err(self.record_fail(step, RecordError::TdmrInfoMismatch));
        }
        self.reattach.plan_from_record = true;
        self.tdmr_bytes_total = storage.plan.tdmr_bytes();
        Ok(())
    }

    /// The record says Ready: the READY question and, per recorded TDMR, TDMR.INIT with its
    /// base (TDX_TDMR_ALREADY_INITIALIZED, no side effect) confirm the module agrees.
    pub(super) fn confirm_ready<S: Seam>(
        &mut self,
        seam: &mut S,
        boot: CpuIndex,
        plan: &Plan,
    ) -> Result<(), Stop> {
        let step = InitStep::TdmrInit;
        let r = self.call_raw(seam, step, Some(boot), ready_probe())?;
        if read_ready_probe(r.status()) != ProbeAnswer::Yes {
            return Err(self.record_fail(step, RecordError::AheadOfModule(InitStep::KeyConfig)));
        }
        for t in &plan.tdmrs {
            let r = self.call_raw(
                seam,
                step,
                Some(boot),
                leaf(Leaf::SysTdmrInit).rcx(t.base.0),
            )?;
            if step_answer(Leaf::SysTdmrInit, r.status()) != StepAnswer::AlreadyDone {
                let e = if r
                    .status()
                    .is(TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX))
                {
                    RecordError::PlanNotModules
                } else {
                    RecordError::AheadOfModule(step)
                };
                return Err(self.record_fail(step, e));
            }
        }
        self.tdmr_bytes_done = self.tdmr_bytes_total;
        self.reattach.tdmr_bytes_recorded = self.tdmr_bytes_total;
        Ok(())
    }

    /// LP.INIT on every enabled CPU the record does not show done (§3.4). Returns true when
    /// the module answered TDX_SYS_LP_INIT_NOT_PENDING after an earlier SYS.INIT: SYS.CONFIG
    /// has run, which under the strict rule means every LP was initialized.
    pub(super) fn lp_init<S: Seam>(
        &mut self,
        seam: &mut S,
        p: &PlatformView<'_>,
        rec: &mut Record<'_>,
    ) -> Result<bool, Stop> {
        let step = InitStep::LpInit;
        if rec.marks().is_done(step) {
            return Ok(false);
        }
        let sys_init_before = self.reattach.recorded & (1 << InitStep::SysInit as u16) != 0
            || self.reattach.answered & (1 << InitStep::SysInit as u16) != 0;
        // Every LP concurrently (the module takes its global lock shared for LP.INIT, §3.2),
        // at most MAX_IN_FLIGHT at a time.
        let mut flights = Flights::default();
        let r = self.lp_rounds(seam, p, rec, sys_init_before, &mut flights);
        if !matches!(r, Ok(false)) {
            self.drain(seam, &mut flights);
        }
        if r? {
            return Ok(true);
        }
        rec.update(|m| m.set_done(step));
        Ok(false)
    }

    /// The LP.INIT calls of [`Bringup::lp_init`]; `true` when the module answered that it is
    /// configured already (the rest need no LP.INIT).
    fn lp_rounds<S: Seam>(
        &mut self,
        seam: &mut S,
        p: &PlatformView<'_>,
        rec: &mut Record<'_>,
        sys_init_before: bool,
        flights: &mut Flights,
    ) -> Result<bool, Stop> {
        let step = InitStep::LpInit;
        let mut next = 0;
        loop {
            while flights.len() < MAX_IN_FLIGHT && next < p.cpus.len() {
                let i = next;
                next += 1;
                if p.cpus[i].enabled && !rec.marks().lp_done(i) {
                    let cpu = CpuIndex(i as u32);
                    self.launch(seam, flights, step, (cpu, i), leaf(Leaf::SysLpInit))?;
                }
            }
            let Some((i, _, r)) = self.land(seam, flights, step)? else {
                return Ok(false);
            };
            match step_answer(Leaf::SysLpInit, r.status()) {
                StepAnswer::DidNow => {}
                StepAnswer::AlreadyDone => self.reattach.lps.1 += 1,
                StepAnswer::NotPending if sys_init_before => {
                    self.reattach.answer(step);
                    rec.update(|m| m.set_done(step));
                    return Ok(true);
                }
                _ => return Err(fail(step, r.status())),
            }
            rec.update(|m| m.set_lp(i));
        }
    }
}
