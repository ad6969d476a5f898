//! The init report: what bring-up found and what each step cost, as text lines for the log.
//!
//! Pattern: [`StepTimes`] is an [`Observer`] that stamps each step's start and end with a
//! caller-given clock (the server uses the TSC); [`InitReport::write`] turns the finished
//! bring-up, its storage, the platform and those times into lines, handed one by one to the
//! caller's sink as `fmt::Arguments`, so the library needs no allocator and no logger.
//!
//! Invariants: a step's cost is the clock's advance between its start and its end (0 for a
//! step that never ran, and never negative: a clock that went backwards counts 0); the total
//! is the sum over the steps.

use core::fmt;

use tdx_host_api::InitStep;

use super::{Bringup, InitStorage, Observer, Progress, Reattach, State};
use crate::seam::PlatformView;

const MIB: u64 = 1 << 20;

/// Clock ticks per bring-up step, from an observer's start/end callbacks.
#[derive(Clone, Debug)]
pub struct StepTimes<C: FnMut() -> u64> {
    clock: C,
    started: [Option<u64>; InitStep::COUNT],
    ticks: [u64; InitStep::COUNT],
}

impl<C: FnMut() -> u64> StepTimes<C> {
    /// Times read from `clock` (monotonic ticks).
    pub fn new(clock: C) -> Self {
        StepTimes {
            clock,
            started: [None; InitStep::COUNT],
            ticks: [0; InitStep::COUNT],
        }
    }

    /// Ticks spent in `step`.
    #[must_use]
    pub fn ticks(&self, step: InitStep) -> u64 {
        self.ticks[step as usize]
    }

    /// Ticks per step (indexed by the step).
    #[must_use]
    pub fn all(&self) -> [u64; InitStep::COUNT] {
        self.ticks
    }
}

impl<C: FnMut() -> u64> Observer for StepTimes<C> {
    fn step_started(&mut self, step: InitStep) {
        self.started[step as usize] = Some((self.clock)());
    }

    fn step_finished(&mut self, step: InitStep, _finished: bool) {
        if let Some(t0) = self.started[step as usize].take() {
            self.ticks[step as usize] += (self.clock)().saturating_sub(t0);
        }
    }
}

/// Bring-up's observer in the server: the step times for the report, and `progress` called
/// with each TDMR.INIT advance worth a log line ([`GibMilestones`]).
pub struct Trace<C: FnMut() -> u64, P: FnMut(&Progress)> {
    /// The step times.
    pub times: StepTimes<C>,
    milestones: GibMilestones,
    progress: P,
}

impl<C: FnMut() -> u64, P: FnMut(&Progress)> Trace<C, P> {
    /// Times from `clock`, milestones to `progress`.
    pub fn new(clock: C, progress: P) -> Self {
        Trace {
            times: StepTimes::new(clock),
            milestones: GibMilestones::default(),
            progress,
        }
    }
}

impl<C: FnMut() -> u64, P: FnMut(&Progress)> Observer for Trace<C, P> {
    fn step_started(&mut self, step: InitStep) {
        self.times.step_started(step);
    }

    fn step_finished(&mut self, step: InitStep, finished: bool) {
        self.times.step_finished(step, finished);
    }

    fn tdmr_progress(&mut self, p: &Progress) {
        if self.milestones.due(p) {
            (self.progress)(p);
        }
    }
}

/// TDMR.INIT calls per CPU, and the most on one CPU against the total (nothing before
/// TDMR.INIT).
pub fn write_tdmr_cpus(bringup: &Bringup, out: &mut dyn FnMut(fmt::Arguments<'_>)) {
    let per_cpu = bringup.tdmr_init_per_cpu();
    if per_cpu.is_empty() {
        return;
    }
    let total: u32 = per_cpu.iter().map(|&(_, n)| n).sum();
    let most = per_cpu.iter().map(|&(_, n)| n).max().unwrap_or(0);
    out(format_args!(
        "TDMR.INIT per CPU: {} CPUs, at most {} in flight at once, the most on one CPU {most} of {total}:",
        per_cpu.len(),
        bringup.tdmr_init_peak_in_flight()
    ));
    for &(cpu, n) in per_cpu {
        out(format_args!("  cpu {:<4} {n:>6} TDMR.INIT calls", cpu.0));
    }
}

/// Which TDMR.INIT advances are worth a log line: one per initialized GiB (the module's
/// granularity, §3.2), and the last.
#[derive(Clone, Copy, Debug, Default)]
pub struct GibMilestones {
    last: u64,
}

impl GibMilestones {
    /// Whether `p` completes another GiB since the last line, or finishes everything.
    pub fn due(&mut self, p: &Progress) -> bool {
        let due =
            p.bytes_done >= self.last.saturating_add(1 << 30) || p.bytes_done == p.bytes_total;
        if due {
            self.last = p.bytes_done;
        }
        due
    }
}

/// Everything the init report reads.
#[derive(Clone, Copy)]
pub struct InitReport<'r> {
    /// The finished (or stopped) bring-up.
    pub bringup: &'r Bringup,
    /// Its storage: the plan.
    pub storage: &'r InitStorage,
    /// The platform it ran on.
    pub platform: &'r PlatformView<'r>,
    /// Clock ticks per step (indexed by the step).
    pub ticks: [u64; InitStep::COUNT],
}

impl InitReport<'_> {
    /// Hands every line of the report to `out`, in order.
    pub fn write(&self, out: &mut dyn FnMut(fmt::Arguments<'_>)) {
        let (b, p) = (self.bringup, self.platform);
        let info = b.info();
        let counts = b.counts();
        out(format_args!("---- TDX init report ----"));
        ReattachLine(b.reattach()).write(out);
        let lp = InitStep::LpInit as usize;
        let lp_done = if b.state() == State::Ready {
            p.cpus.len() as u32
        } else {
            counts.seamcalls[lp] - counts.retries[lp]
        };
        out(format_args!(
            "CPUs: {} running in {} packages, {} nodes; LP.INIT succeeded on {lp_done}",
            p.cpus.len(),
            p.package_leaders().count(),
            p.nodes
        ));
        let k = info.keyids;
        out(format_args!(
            "module {}.{}.{} build {}, features0 {:#x}; KeyIDs: {} MKTME, {} TDX [{}..={}], global KeyID {}",
            info.major, info.minor, info.update, info.build_num, info.features0,
            k.nr_mktme, k.nr_tdx, k.first_tdx(), k.nr_mktme + k.nr_tdx, info.global_keyid
        ));
        if let Some(l) = info.limits {
            let [e4, e2, e1] = l.pamt_entry_size;
            out(format_args!(
                "limits: {} TDMRs, {} reserved areas per TDMR, PAMT entry {e4}/{e2}/{e1} bytes",
                l.max_tdmrs, l.max_reserved_per_tdmr
            ));
        }
        for (i, c) in info.cmrs.iter().enumerate() {
            let end = c.base().0 + c.size().0;
            let mib = c.size().0 / MIB;
            out(format_args!(
                "CMR {i}: [{:#012x}, {end:#012x}) {mib} MiB",
                c.base().0
            ));
        }
        self.write_plan(out);
        out(format_args!("cost per step (SEAMCALLs incl. retries; TSC delta = guest instructions under -icount, time under plain TCG):"));
        for step in InitStep::ALL {
            let k = step as usize;
            out(format_args!(
                "  {:<13} {:>6} SEAMCALLs {:>3} retries {:>12} tsc",
                step_name(step),
                counts.seamcalls[k],
                counts.retries[k],
                self.ticks[k]
            ));
        }
        out(format_args!(
            "  total         {:>6} SEAMCALLs, {} cache flushes, {} tsc",
            counts.total(),
            counts.flushes,
            self.ticks.iter().sum::<u64>()
        ));
        // While TDMR.INIT still runs, the server writes these lines when it ends.
        if !b.tdmr_init_running() {
            write_tdmr_cpus(b, out);
        }
    }

    /// The TDMRs, their reserved areas and PAMTs.
    fn write_plan(&self, out: &mut dyn FnMut(fmt::Arguments<'_>)) {
        let plan = &self.storage.plan;
        for (i, t) in plan.tdmrs.iter().enumerate() {
            out(format_args!(
                "TDMR {i}: [{:#012x}, {:#012x}) node {}, {} reserved areas, PAMT {} KiB",
                t.base.0,
                t.base.0 + t.size.0,
                t.node,
                t.reserved.len(),
                t.pamt_bytes() / 1024
            ));
            for (j, a) in t.reserved.iter().enumerate() {
                let base = t.base.0 + a.offset.0;
                let end = base + a.size.0;
                let kib = a.size.0 / 1024;
                out(format_args!(
                    "  reserved {j}: [{base:#012x}, {end:#012x}) {kib} KiB"
                ));
            }
            for (name, r) in ["4K", "2M", "1G"].iter().zip(&t.pamt) {
                let end = r.base().0 + r.size().0;
                let kib = r.size().0 / 1024;
                out(format_args!(
                    "  PAMT {name}: [{:#012x}, {end:#012x}) {kib} KiB",
                    r.base().0
                ));
            }
        }
        if !plan.tdmrs.is_empty() {
            out(format_args!(
                "PAMT total {} KiB for {} MiB of TDMRs ({} PAMT blocks)",
                plan.pamt_bytes.0 / 1024,
                plan.tdmr_bytes() / MIB,
                plan.pamt_blocks.len()
            ));
        }
    }
}

/// The re-attach lines of the report: what the bring-up record held and what the module
/// answered "done before"; nothing on a first instance that found nothing done.
pub struct ReattachLine<'r>(pub &'r Reattach);

/// The steps in `bits` (bit `InitStep as u16`) by name, space-separated.
struct Steps(u16);

impl fmt::Display for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for s in InitStep::ALL {
            if self.0 & (1 << s as u16) != 0 {
                write!(f, "{}{}", if any { " " } else { "" }, step_name(s))?;
                any = true;
            }
        }
        if !any {
            write!(f, "none")?;
        }
        Ok(())
    }
}

impl ReattachLine<'_> {
    /// Hands the lines to `out`.
    pub fn write(&self, out: &mut dyn FnMut(fmt::Arguments<'_>)) {
        let r = self.0;
        if r.found {
            out(format_args!(
                "re-attach #{} (record seq {}): recorded done: {}; module answered done: {}",
                r.attaches,
                r.seq,
                Steps(r.recorded),
                Steps(r.answered)
            ));
            out(format_args!(
                "  LPs {} recorded + {} answered done, packages {} + {} keyed, plan {}, TDMR.INIT resumed at {} MiB",
                r.lps.0,
                r.lps.1,
                r.packages.0,
                r.packages.1,
                if r.plan_from_record { "from the record" } else { "made by this instance" },
                r.tdmr_bytes_recorded / MIB
            ));
        } else if r.answered != 0 || r.lps.1 != 0 || r.packages.1 != 0 {
            out(format_args!(
                "no record, but the module answered done: {} (LPs {}, packages {})",
                Steps(r.answered),
                r.lps.1,
                r.packages.1
            ));
        }
        if let Some(e) = r.error {
            out(format_args!(
                "bring-up record refused: {} ({e:?})",
                e.reason()
            ));
        }
    }
}

/// The state line that ends bring-up.
pub struct StateLine(pub State);

impl fmt::Display for StateLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            State::Ready => write!(f, "state Ready: serving TD memory"),
            State::Failed {
                step,
                status,
                plan_error: Some(e),
            } => write!(
                f,
                "state Failed at {} with {:#018x}: {e:?}",
                step_name(step),
                status.0
            ),
            State::Failed { step, status, .. } => {
                write!(f, "state Failed at {} with {status}", step_name(step))
            }
            State::Unavailable(r) => write!(f, "state Unavailable: TDX unavailable ({r:?})"),
            other => write!(f, "state {other:?}"),
        }
    }
}

/// The step's name in the report (leaf names where a step is one leaf).
#[must_use]
pub fn step_name(s: InitStep) -> &'static str {
    match s {
        InitStep::Detect => "detect",
        InitStep::SysInit => "SYS.INIT",
        InitStep::LpInit => "LP.INIT",
        InitStep::ReadMetadata => "SYS.RD",
        InitStep::Plan => "plan",
        InitStep::Config => "SYS.CONFIG",
        InitStep::CacheFlush => "WBINVD",
        InitStep::KeyConfig => "KEY.CONFIG",
        InitStep::TdmrInit => "TDMR.INIT",
    }
}
