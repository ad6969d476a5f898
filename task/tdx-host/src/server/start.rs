//! Start-up of the server task as one call: bring-up up to TDMR.INIT's first chunks, the
//! init report, the server, and its regions once TDMR.INIT has begun.
//!
//! Pattern: [`start`] takes the kernel's services as the library's traits, the platform, the
//! caller's static tables and a log sink, and returns the server in the caller's slot; the
//! binary only provides those. Order (what the log shows): the bring-up summary, the report,
//! the state line, the region summary. TDMR.INIT then goes on while the server serves: the
//! binary calls [`Server::advance_init`] on every `seam-done` and logs progress and, at the
//! end, [`TdmrInitDone`].
//!
//! Invariant: regions exist only once TDMR.INIT has begun (or the module is `Ready`), and
//! before `Ready` TDX frames come only from 1 GiB blocks TDMR.INIT has finished, as the
//! bring-up record has them (a restarted instance marks what the record holds, which is at
//! least what any earlier instance served); if they cannot be built the server serves no
//! memory (clients see NotReady), it never serves a partial map. The ledger decides whether
//! they are built (a first start: its durable words were never written) or restored (a
//! restart: the pools, records and bitmaps it holds, checked against the plan); a ledger that
//! fails its checks leaves the server `Failed` with the reason, never re-initialized.

use core::fmt;
use core::mem::MaybeUninit;

use super::{ClientPolicy, Server};
use crate::init::record::{AtomicWords, Durable, RecordWords};
use crate::init::report::{InitReport, StateLine, Trace};
use crate::init::{Bringup, InitConfig, InitStorage, Progress, State, TdmrRun};
use tdx_host_api::InitStep;
use tdx_planner::addr::PhysRange;
use tdx_planner::types::{MAX_CMRS, MAX_TDMRS};

use super::Attached;
use crate::ledger::Layout;
use crate::platform::Platform;
use crate::regions::{HotplugPolicy, MemoryAuthority, PlatformMemory, Regions};
use crate::seam::{PhysWriter, Seam};

/// The manifest's part of start-up.
#[derive(Clone, Copy, Debug)]
pub struct Setup<'c> {
    /// Client policies.
    pub clients: &'c [ClientPolicy],
    /// The hotplug policy.
    pub policy: HotplugPolicy,
    /// Durable words for the bring-up record (`init::record`), if the task has them.
    pub record: Option<&'c RecordWords>,
}

impl<'c> Setup<'c> {
    /// The manifest's clients and hotplug policy.
    #[must_use]
    pub const fn new(clients: &'c [ClientPolicy], policy: HotplugPolicy) -> Self {
        Setup {
            clients,
            policy,
            record: None,
        }
    }

    /// Keeps the bring-up record in `words` (durable memory): a restarted instance re-attaches.
    #[must_use]
    pub const fn record(mut self, words: &'c RecordWords) -> Self {
        self.record = Some(words);
        self
    }
}

/// The caller's static tables: bring-up storage, the allocator's bitmap words, the ledger's
/// durable words (at least `Layout::new(bitmap.len()).total_words()`), the server's slot.
pub type Tables<'a> = (
    &'a mut InitStorage,
    &'a mut [u64],
    &'a mut [u64],
    &'a mut MaybeUninit<Server<'a>>,
);

fn layout_words(bitmap_words: usize) -> usize {
    Layout::new(bitmap_words).total_words()
}

/// Brings the module up on `platform` through `kernel` (SEAMCALL and the TDMR_INFO buffer),
/// keeping the bring-up record in the setup's durable words, logs the report to `log` line by
/// line, and returns the server, serving memory if `Ready` — or TDX frames of the initialized
/// blocks while TDMR.INIT runs: its run is then in `run`, for [`Server::advance_init`].
pub fn start<'a, S, W: PhysWriter, C: FnMut() -> u64, P: FnMut(&Progress)>(
    kernel: (&mut S, &mut W),
    platform: &Platform,
    (storage, bitmap, durable, slot): Tables<'a>,
    (setup, trace, run): (Setup<'a>, &mut Trace<C, P>, &mut Option<TdmrRun>),
    log: &mut dyn FnMut(fmt::Arguments<'_>),
) -> &'a mut Server<'a>
where
    S: Seam + MemoryAuthority,
{
    const MIB: u64 = 1 << 20;
    let view = platform.view();
    let (ram, offline) = view.ram_bytes();
    log(format_args!(
        "bring-up on {} CPUs, {} nodes, {} MiB of boot RAM ({} MiB kept offline), policy {:?}",
        view.cpus.len(),
        view.nodes,
        ram / MIB,
        offline / MIB,
        setup.policy
    ));
    let mut bringup = Bringup::new(InitConfig::default());
    let mut words = setup.record.map(|r| AtomicWords(r.words()));
    let record = words.as_mut().map(|w| w as &mut dyn Durable);
    let state = bringup.begin_durable(kernel.0, kernel.1, &view, storage, record, trace, run);
    // TDMR.INIT under way: serve the blocks it finished (as the record has them) from now on.
    let mut initialized: heapless::Vec<PhysRange, MAX_TDMRS> = heapless::Vec::new();
    let early = run.as_ref().map(|r| {
        for done in r.initialized() {
            // At most MAX_TDMRS, one per TDMR of the plan.
            let _ = initialized.push(done);
        }
    });
    if early.is_none() {
        initialized.extend(storage.plan.tdmrs.iter().map(|t| t.range()));
    }
    let ticks = trace.times.all();
    InitReport {
        bringup: &bringup,
        storage,
        platform: &view,
        ticks,
    }
    .write(log);
    let (pamt, tdmrs) = (storage.pamt_bytes(), storage.tdmr_count());
    let server = slot.write(Server::new(bringup, None, setup.clients, pamt, tdmrs));
    server.keep_record(setup.record);
    if state == State::Ready || early.is_some() {
        // A copy: the server is borrowed mutably while the regions are built.
        let cmrs: heapless::Vec<PhysRange, MAX_CMRS> =
            server.bringup.cmrs().iter().copied().collect();
        let memory = PlatformMemory {
            hotplug_window: platform.hotplug_window(),
            cmrs: &cmrs,
        };
        let words = layout_words(bitmap.len());
        let regions = |frames| {
            let done = &mut initialized.iter().copied();
            Regions::build_initialized(frames, storage, memory, setup.policy, view.nodes, done)
        };
        match server.attach_ledger((durable, bitmap), regions, kernel.0) {
            Attached::Fresh => log(format_args!(
                "ledger: new, {} KiB of durable memory",
                words / 128
            )),
            Attached::Restored {
                seq,
                replayed,
                undone,
            } => {
                log(format_args!(
                    "ledger: recovered at commit {seq} (journal replayed: {replayed}, hot-plug step undone: {undone:?})"
                ));
                // A TD booked but never created (stopped before MNG.CREATE) is dropped.
                let dropped = server.drop_uncreated_tds(kernel.0);
                if dropped > 0 {
                    log(format_args!(
                        "ledger: {dropped} TDs booked but never created, dropped"
                    ));
                }
            }
            Attached::NoRegions(e) => log(format_args!(
                "cannot build the region map: {e:?}; serving no memory"
            )),
            Attached::Refused(e) => log(format_args!(
                "ledger refused: {e:?}; serving no memory (Failed, status {:#x})",
                e.code()
            )),
        }
    }
    log(format_args!("{}", StateLine(state)));
    if early.is_some() {
        let (done, total) = server.bringup.tdmr_bytes();
        log(format_args!(
            "TDMR.INIT under way ({} of {} MiB): serving TDX frames of initialized 1 GiB blocks",
            done >> 20,
            total >> 20
        ));
    }
    server.write_regions(log);
    server
}

/// The log lines of a TDMR.INIT that ended while the server served: the calls per CPU, the
/// state line and, when `Ready`, the region summary.
pub struct TdmrInitDone<'s, 'a>(pub &'s Server<'a>);

impl TdmrInitDone<'_, '_> {
    /// Hands the lines to `log`.
    pub fn write(&self, log: &mut dyn FnMut(fmt::Arguments<'_>)) {
        let b = &self.0.bringup;
        let n = b.counts().seamcalls[InitStep::TdmrInit as usize];
        let (done, total) = b.tdmr_bytes();
        log(format_args!(
            "TDMR.INIT ended while serving: {} of {} MiB, {n} SEAMCALLs",
            done >> 20,
            total >> 20
        ));
        crate::init::report::write_tdmr_cpus(b, log);
        log(format_args!("{}", StateLine(b.state())));
        self.0.write_regions(log);
    }
}
