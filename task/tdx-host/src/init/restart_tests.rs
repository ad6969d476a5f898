//! tdx-host dies and restarts during bring-up: the new instance re-attaches through the
//! bring-up record and ends `Ready` with the plan of an uninterrupted run.
//!
//! Pattern: an instance runs against `tdx-emu` with a [`CrashSeam`] and a [`CrashMem`] that
//! share one "dead" flag. The instance dies before or after the module executes its Nth
//! SEAMCALL, or after its Nth 8-byte store to the record; from then on nothing it does reaches
//! the module or the record (a dead task executes nothing). What survives is what survives a
//! real restart: the module and the record's words. Ordinary memory (the TDMR_INFO buffer,
//! the bring-up storage) starts over. A fresh instance then re-attaches.
//!
//! Every run checks against one uninterrupted run: `Ready`, the SYS_READY module, the same
//! TDMRs and PAMTs in the record's plan and in the module, and the same number of TDMR.INIT
//! chunks over all instances (no chunk done twice, none skipped).

extern crate std;

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::vec::Vec as StdVec;

use tdx_abi::{Leaf, SeamcallArgs, SeamcallResult, TdmrInfo};
use tdx_emu::{EmuConfig, SysState, TdxModule};
use tdx_host_api::InitStep;
use tdx_planner::addr::GIB;
use tdx_planner::types::Plan;

use super::record::{Durable, RecordError, RECORD_WORDS, SLOT_WORDS};
use super::tests::{mr, BufMem, EmuSeam, EmuWriter, Fixture, BUF_BASE};
use super::{host_code, Bringup, InitConfig, InitStorage, Progress, State};
use crate::seam::{CpuIndex, Deferred, KernelError, Seam, SeamError};

const MIB: u64 = 1 << 20;

/// When an instance dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    Never,
    /// Before the module executes the Nth SEAMCALL (1-based).
    BeforeCall(u64),
    /// After the module executed the Nth SEAMCALL, before the host sees the answer.
    AfterCall(u64),
    /// After N stores to the record reached memory.
    AfterStores(u64),
}

struct CrashSeam {
    inner: EmuSeam,
    dead: Rc<Cell<bool>>,
    kill: Kill,
    calls: u64,
    /// TDMR.INIT calls that initialized a chunk (TDX_SUCCESS).
    chunks: u64,
    leaves: StdVec<u64>,
    deferred: Deferred,
}

fn is_leaf(args: &SeamcallArgs, leaf: Leaf) -> bool {
    args.rax & 0xFFFF == leaf as u64
}

impl Seam for CrashSeam {
    fn seamcall(
        &mut self,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, SeamError> {
        let gone = Err(SeamError::Timeout(cpu.unwrap_or(CpuIndex(0))));
        if self.dead.get() {
            return gone;
        }
        self.calls += 1;
        if self.kill == Kill::BeforeCall(self.calls) {
            self.dead.set(true);
            return gone;
        }
        let r = self.inner.seamcall(cpu, args);
        self.leaves.push(args.rax & 0xFFFF);
        if is_leaf(&args, Leaf::SysTdmrInit) && r.is_ok_and(|r| r.status().is_success()) {
            self.chunks += 1;
        }
        if self.kill == Kill::AfterCall(self.calls) {
            self.dead.set(true);
            return gone;
        }
        r
    }

    fn deferred(&mut self) -> &mut Deferred {
        &mut self.deferred
    }

    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
        if self.dead.get() {
            return Err(KernelError::OutsideBuffer);
        }
        self.inner.flush_caches_all_cpus()
    }

    fn max_phys_addr_bits(&self) -> u8 {
        self.inner.max_phys_addr_bits()
    }
}

struct CrashMem {
    words: StdVec<u64>,
    dead: Rc<Cell<bool>>,
    stores_left: Option<u64>,
    stores: u64,
}

impl Durable for CrashMem {
    fn word_count(&self) -> usize {
        self.words.len()
    }
    fn load(&self, i: usize) -> u64 {
        self.words[i]
    }
    fn store(&mut self, i: usize, value: u64) {
        if self.dead.get() {
            return;
        }
        if self.stores_left == Some(0) {
            self.dead.set(true);
            return;
        }
        if let Some(n) = self.stores_left.as_mut() {
            *n -= 1;
        }
        self.words[i] = value;
        self.stores += 1;
    }
}

/// What survives an instance, and what it did.
struct Outcome {
    state: State,
    bringup: Bringup,
    storage: Box<InitStorage>,
    module: TdxModule,
    words: StdVec<u64>,
    chunks: u64,
    calls: u64,
    stores: u64,
    leaves: StdVec<u64>,
}

/// 4 CPUs in 2 packages on 2 nodes, 2 GiB of RAM in two TDMRs (512 TDMR.INIT chunks).
fn fixture() -> Fixture {
    let mut fx = Fixture::new(4, 2, 2);
    fx.ram = std::vec![mr(MIB, GIB, 0), mr(4 * GIB, 5 * GIB, 1)];
    fx
}

fn module() -> TdxModule {
    TdxModule::new(EmuConfig::new(4, 2)).expect("emulator config")
}

fn instance(module: TdxModule, words: StdVec<u64>, fx: &Fixture, kill: Kill) -> Outcome {
    let dead = Rc::new(Cell::new(false));
    // The TDMR_INFO buffer is ordinary task memory: a new instance finds it zeroed.
    let mem = Rc::new(RefCell::new(BufMem::new(BUF_BASE, 64 * 1024)));
    let mut seam = CrashSeam {
        inner: EmuSeam {
            m: module,
            mem: mem.clone(),
            flush_fails: false,
            cpu_max_pa: None,
            deferred: Deferred::default(),
        },
        dead: dead.clone(),
        kill,
        calls: 0,
        chunks: 0,
        leaves: StdVec::new(),
        deferred: Deferred::default(),
    };
    let mut durable = CrashMem {
        words,
        dead,
        stores_left: match kill {
            Kill::AfterStores(n) => Some(n),
            _ => None,
        },
        stores: 0,
    };
    let mut writer = EmuWriter {
        mem,
        len: 64 * 1024,
    };
    let mut storage = Box::<InitStorage>::default();
    let mut bringup = Bringup::new(InitConfig::default());
    let state = bringup.run_durable(
        &mut seam,
        &mut writer,
        &fx.view(),
        &mut storage,
        Some(&mut durable),
        &mut |_: &Progress| {},
    );
    Outcome {
        state,
        bringup,
        storage,
        module: seam.inner.m,
        words: durable.words,
        chunks: seam.chunks,
        calls: seam.calls,
        stores: durable.stores,
        leaves: seam.leaves,
    }
}

fn fresh_words() -> StdVec<u64> {
    std::vec![0; RECORD_WORDS]
}

fn clean(fx: &Fixture) -> Outcome {
    let o = instance(module(), fresh_words(), fx, Kill::Never);
    assert_eq!(o.state, State::Ready, "{:?}", o.bringup.reattach());
    o
}

/// The plan's TDMRs, PAMTs and PAMT total are those of `want`.
fn same_plan(got: &Plan, want: &Plan) -> bool {
    got.tdmrs == want.tdmrs
        && got.pamt_blocks == want.pamt_blocks
        && got.pamt_bytes == want.pamt_bytes
}

fn module_tdmrs(m: &TdxModule) -> StdVec<TdmrInfo> {
    m.tdmrs().to_vec()
}

/// The last instance ended `Ready` exactly like the uninterrupted run.
fn assert_like_clean(last: &Outcome, chunks: u64, reference: &Outcome, what: &str) {
    assert_eq!(
        last.state,
        State::Ready,
        "{what}: {:?}",
        last.bringup.reattach()
    );
    assert_eq!(last.module.state(), SysState::SysReady, "{what}");
    let (bugs, dropped) = last.module.host_bugs();
    assert_eq!(bugs.count() + dropped as usize, 0, "{what}: host bugs");
    assert!(
        same_plan(&last.storage.plan, &reference.storage.plan),
        "{what}: plan differs"
    );
    assert_eq!(
        module_tdmrs(&last.module),
        module_tdmrs(&reference.module),
        "{what}"
    );
    assert_eq!(chunks, reference.chunks, "{what}: TDMR.INIT chunks");
    assert_eq!(last.storage.tdx_ram, reference.storage.tdx_ram, "{what}");
    let total = reference.storage.plan.tdmr_bytes();
    assert_eq!(last.bringup.tdmr_bytes(), (total, total), "{what}");
    assert_eq!(last.module.packages_configured(), 0b11, "{what}");
}

/// Kills the first instance at `kill`, restarts once, and checks the result.
fn restart_once(fx: &Fixture, reference: &Outcome, kill: Kill) -> (Outcome, Outcome) {
    let first = instance(module(), fresh_words(), fx, kill);
    // A death at the last store comes after the last SEAMCALL: that instance had finished.
    if !matches!(kill, Kill::AfterStores(_)) {
        assert_ne!(
            first.state,
            State::Ready,
            "{kill:?} did not stop the instance"
        );
    }
    let second = instance(first.module, first.words.clone(), fx, Kill::Never);
    let chunks = first.chunks + second.chunks;
    let first = Outcome {
        module: module(),
        ..first
    };
    assert_like_clean(&second, chunks, reference, &std::format!("{kill:?}"));
    (first, second)
}

/// The 1-based index of the `nth` call of `leaf` in the uninterrupted run.
fn call_index(reference: &Outcome, leaf: Leaf, nth: usize) -> u64 {
    let at = reference
        .leaves
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l == leaf as u64)
        .nth(nth - 1)
        .map(|(i, _)| i as u64 + 1);
    at.expect("the run makes that call")
}

fn bit(step: InitStep) -> u16 {
    1 << step as u16
}

#[test]
fn restart_after_sys_init_resumes_with_lp_init() {
    let fx = fixture();
    let reference = clean(&fx);
    let n = call_index(&reference, Leaf::SysInit, 1);
    // Recorded: SYS.INIT is skipped and every LP gets LP.INIT.
    let (_, second) = restart_once(&fx, &reference, Kill::AfterCall(n + 1));
    let r = second.bringup.reattach();
    assert!(r.found && r.recorded & bit(InitStep::SysInit) != 0);
    assert_eq!(second.module.calls(Leaf::SysInit), 1);
    // Not recorded: the module answers TDX_SYS_INIT_NOT_PENDING.
    let (_, second) = restart_once(&fx, &reference, Kill::AfterCall(n));
    let r = second.bringup.reattach();
    assert!(r.answered & bit(InitStep::SysInit) != 0, "{r:?}");
    assert!(!r.found, "died before its first record");
    assert!(!r.plan_from_record);
}

#[test]
fn restart_mid_lp_init_skips_recorded_lps() {
    let fx = fixture();
    let reference = clean(&fx);
    let n = call_index(&reference, Leaf::SysLpInit, 2);
    let (_, second) = restart_once(&fx, &reference, Kill::AfterCall(n));
    let r = *second.bringup.reattach();
    // The LP.INITs run concurrently: LPs 0 and 1 were initialized before any answer was
    // recorded (the record is behind the module, never ahead); the module says so.
    assert_eq!(r.lps, (0, 2), "{r:?}");
    assert_eq!(
        second.bringup.counts().seamcalls[InitStep::LpInit as usize],
        4
    );
    // A death after LP 0's answer was recorded: LP 0 is skipped.
    let mut skipped = false;
    for k in 1..reference.stores {
        let (_, second) = restart_once(&fx, &reference, Kill::AfterStores(k));
        let lps = second.bringup.reattach().lps;
        if lps.0 == 0 {
            continue;
        }
        assert_eq!(lps.0 + lps.1, 4, "every LP recorded or answered: {lps:?}");
        if lps.0 < 4 {
            skipped = true;
            break;
        }
    }
    assert!(skipped, "some death between the LP records");
}

#[test]
fn restart_after_sys_rd_plans_the_same() {
    let fx = fixture();
    let reference = clean(&fx);
    let rds = reference
        .leaves
        .iter()
        .filter(|&&l| l == Leaf::SysRd as u64)
        .count();
    let n = call_index(&reference, Leaf::SysRd, rds);
    let (_, second) = restart_once(&fx, &reference, Kill::AfterCall(n));
    assert!(!second.bringup.reattach().plan_from_record);
    assert_eq!(second.module.calls(Leaf::SysConfig), 1);
}

#[test]
fn restart_after_sys_config_uses_the_recorded_plan() {
    let fx = fixture();
    let reference = clean(&fx);
    let n = call_index(&reference, Leaf::SysConfig, 1);
    for kill in [
        Kill::BeforeCall(n),
        Kill::AfterCall(n),
        Kill::AfterCall(n + 1),
    ] {
        let (_, second) = restart_once(&fx, &reference, kill);
        let r = second.bringup.reattach();
        assert!(r.plan_from_record, "{kill:?}");
        // No SYS.RD: the facts come from the record too.
        assert_eq!(
            second.bringup.counts().seamcalls[InitStep::ReadMetadata as usize],
            0
        );
        assert_eq!(second.bringup.info(), reference.bringup.info());
        if kill == Kill::AfterCall(n) {
            // Executed, not recorded: the module answers TDX_SYS_CONFIG_NOT_PENDING.
            assert!(r.answered & bit(InitStep::Config) != 0, "{r:?}");
        }
    }
}

#[test]
fn restart_between_packages_key_config() {
    let fx = fixture();
    let reference = clean(&fx);
    let n = call_index(&reference, Leaf::SysKeyConfig, 1);
    let (_, second) = restart_once(&fx, &reference, Kill::AfterCall(n));
    assert_eq!(second.bringup.reattach().packages, (0, 1));
    let (_, second) = restart_once(&fx, &reference, Kill::BeforeCall(n + 1));
    assert_eq!(second.bringup.reattach().packages, (1, 0));
    // The second package keyed, not recorded: the module is SYS_READY, KEY.CONFIG answers
    // TDX_SYS_KEY_CONFIG_NOT_PENDING and the READY question says yes.
    let (_, second) = restart_once(&fx, &reference, Kill::AfterCall(n + 1));
    let r = second.bringup.reattach();
    assert_eq!(r.packages, (1, 1), "{r:?}");
    assert!(r.answered & bit(InitStep::KeyConfig) != 0, "{r:?}");
}

#[test]
fn restart_between_tdmr_init_chunks() {
    let fx = fixture();
    let reference = clean(&fx);
    for nth in [1, 2, 255, 256, 257, 300, 511, 512] {
        let n = call_index(&reference, Leaf::SysTdmrInit, nth);
        for kill in [Kill::BeforeCall(n), Kill::AfterCall(n)] {
            let (_, second) = restart_once(&fx, &reference, kill);
            let r = second.bringup.reattach();
            assert!(r.plan_from_record && r.found, "{kill:?}");
            // The record is 1 GiB granular like the module's RDX (§3.2).
            assert_eq!(r.tdmr_bytes_recorded % GIB, 0);
        }
    }
}

/// A death before and after every SEAMCALL of the whole bring-up.
#[test]
fn restart_at_every_call() {
    let fx = fixture();
    let reference = clean(&fx);
    for n in 1..=reference.calls {
        for kill in [Kill::BeforeCall(n), Kill::AfterCall(n)] {
            restart_once(&fx, &reference, kill);
        }
    }
}

/// A death after every store of the record: torn slots and a torn plan block never stop the
/// next instance, and never give it a second plan.
#[test]
fn restart_after_every_record_store() {
    let fx = fixture();
    let reference = clean(&fx);
    assert!(reference.stores > 2 * SLOT_WORDS as u64);
    for k in 0..reference.stores {
        restart_once(&fx, &reference, Kill::AfterStores(k));
    }
}

/// Two deaths in a row at scattered points, then a third instance finishes.
#[test]
fn restart_twice_in_a_row() {
    let fx = fixture();
    let reference = clean(&fx);
    let calls = reference.calls;
    for n1 in (1..calls).step_by(29) {
        for extra in [1, 3, 17, 200] {
            let first = instance(module(), fresh_words(), &fx, Kill::AfterCall(n1));
            let second = instance(first.module, first.words, &fx, Kill::BeforeCall(extra));
            let third = instance(second.module, second.words, &fx, Kill::Never);
            let chunks = first.chunks + second.chunks + third.chunks;
            assert_like_clean(&third, chunks, &reference, &std::format!("{n1}+{extra}"));
            assert!(third.bringup.reattach().attaches <= 2);
        }
    }
}

/// A Ready instance restarts: the READY question and one TDMR.INIT per TDMR (each answering
/// TDX_TDMR_ALREADY_INITIALIZED) are all the SEAMCALLs, and the plan is the recorded one.
#[test]
fn restart_of_a_ready_instance_is_probes_only() {
    let fx = fixture();
    let reference = clean(&fx);
    let tdmrs = reference.storage.plan.tdmrs.len() as u64;
    let again = instance(reference.module, reference.words.clone(), &fx, Kill::Never);
    assert_eq!(again.state, State::Ready);
    assert_eq!(again.calls, 1 + tdmrs);
    assert_eq!(again.chunks, 0);
    let r = again.bringup.reattach();
    assert!(r.found && r.plan_from_record && r.attaches == 1, "{r:?}");
    assert!(same_plan(&again.storage.plan, &reference.storage.plan));
    assert_eq!(again.storage.tdx_ram, reference.storage.tdx_ram);
    assert_eq!(again.storage.excluded, reference.storage.excluded);
    let total = reference.storage.plan.tdmr_bytes();
    assert_eq!(again.bringup.tdmr_bytes(), (total, total));
    let mut text = StdVec::new();
    super::report::ReattachLine(r).write(&mut |a| text.push(std::format!("{a}")));
    assert!(text[0].starts_with("re-attach #1 (record seq "), "{text:?}");
    let steps = "SYS.INIT LP.INIT SYS.RD plan SYS.CONFIG KEY.CONFIG TDMR.INIT";
    assert!(text[0].ends_with(&std::format!(
        "recorded done: {steps}; module answered done: none"
    )));
    let mib = total >> 20;
    assert!(text[1].ends_with(&std::format!(
        "plan from the record, TDMR.INIT resumed at {mib} MiB"
    )));
    assert!(text[1].contains("plan from the record"), "{text:?}");
    // Only the attach count changed in the record.
    let third = instance(again.module, again.words, &fx, Kill::Never);
    assert_eq!(third.bringup.reattach().attaches, 2);
}

fn refused(o: &Outcome, step: InitStep) -> RecordError {
    assert_eq!(
        o.state,
        State::Failed {
            step,
            status: host_code::RECORD_REFUSED,
            plan_error: None
        }
    );
    o.bringup.reattach().error.expect("a reason")
}

/// Which slot holds the newer marks (its sequence number is word 2).
fn current_slot(words: &[u64]) -> usize {
    usize::from(words[SLOT_WORDS + 2] > words[2]) * SLOT_WORDS
}

#[test]
fn corrupted_record_fails_with_the_reason_and_calls_nothing() {
    let fx = fixture();
    let reference = clean(&fx);
    let slot = current_slot(&reference.words);
    let plan_block = 2 * SLOT_WORDS;
    let cases: [(usize, u64, RecordError); 5] = [
        // A flipped bit in the marks, in the plan block's body, in its CRC.
        (
            slot + 20,
            1 << 7,
            RecordError::Crc {
                part: (slot / SLOT_WORDS) as u8,
            },
        ),
        (plan_block + 9, 1 << 40, RecordError::Crc { part: 2 }),
        (plan_block + 1, 1 << 33, RecordError::Crc { part: 2 }),
        // Another magic; another layout size.
        (
            slot,
            0x5A5A,
            RecordError::Magic {
                part: (slot / SLOT_WORDS) as u8,
                found: reference.words[slot] ^ 0x5A5A,
            },
        ),
        (
            slot + 1,
            8,
            RecordError::Layout {
                part: (slot / SLOT_WORDS) as u8,
                found: reference.words[slot + 1] as u32 ^ 8,
            },
        ),
    ];
    for (word, flip, want) in cases {
        let mut words = reference.words.clone();
        words[word] ^= flip;
        let m = TdxModule::new(EmuConfig::new(4, 2)).unwrap();
        let o = instance(m, words, &fx, Kill::Never);
        assert_eq!(refused(&o, InitStep::Detect), want);
        assert_eq!(o.calls, 0, "no SEAMCALL on a refused record");
        let mut text = StdVec::new();
        super::report::ReattachLine(o.bringup.reattach())
            .write(&mut |a| text.push(std::format!("{a}")));
        assert!(text.iter().any(|l| l.contains(want.reason())), "{text:?}");
    }
}

#[test]
fn record_of_another_layout_version_is_refused() {
    let fx = fixture();
    let reference = clean(&fx);
    let mut words = reference.words.clone();
    for part in [0, SLOT_WORDS] {
        words[part] = (words[part] & 0xFFFF_FFFF) | 2 << 32;
    }
    let o = instance(reference.module, words, &fx, Kill::Never);
    let e = refused(&o, InitStep::Detect);
    assert!(matches!(e, RecordError::Version { found: 2, .. }), "{e:?}");
}

/// The module is configured but the record has no plan (lost, or never ours): bring-up stops
/// with the reason instead of planning again.
#[test]
fn configured_module_without_a_recorded_plan_is_refused() {
    let fx = fixture();
    let reference = clean(&fx);
    let n = call_index(&reference, Leaf::SysConfig, 1);
    let configured = instance(module(), fresh_words(), &fx, Kill::AfterCall(n));
    // No record at all: LP.INIT answers TDX_SYS_LP_INIT_NOT_PENDING.
    let o = instance(configured.module, fresh_words(), &fx, Kill::Never);
    assert_eq!(
        refused(&o, InitStep::LpInit),
        RecordError::ConfiguredWithoutPlan
    );
    // A record from before SYS.RD (every LP recorded): LP.INIT says "configured" before a
    // plan is committed or submitted.
    let rd = call_index(&reference, Leaf::SysRd, 1);
    let early = instance(module(), fresh_words(), &fx, Kill::BeforeCall(rd));
    let o = instance(o.module, early.words, &fx, Kill::Never);
    assert_eq!(
        refused(&o, InitStep::Plan),
        RecordError::ConfiguredWithoutPlan
    );
    assert_eq!(o.module.calls(Leaf::SysConfig), 1, "no second SYS.CONFIG");
    let again = instance(o.module, o.words, &fx, Kill::Never);
    assert_eq!(
        refused(&again, InitStep::Plan),
        RecordError::ConfiguredWithoutPlan
    );
    assert_eq!(again.module.state(), SysState::SysconfigDone);
}

/// A record that says more than the module: a record of Ready against a module that was
/// never configured (another boot's record) is refused by the READY question.
#[test]
fn record_ahead_of_the_module_is_refused() {
    let fx = fixture();
    let reference = clean(&fx);
    let o = instance(module(), reference.words.clone(), &fx, Kill::Never);
    let e = refused(&o, InitStep::TdmrInit);
    assert_eq!(e, RecordError::AheadOfModule(InitStep::KeyConfig));
    assert_eq!(o.module.state(), SysState::SysinitPending);
}

/// A plan recorded on another platform is not reused.
#[test]
fn record_of_another_platform_is_refused() {
    let fx = fixture();
    let reference = clean(&fx);
    let mut other = fixture();
    other.ram[1] = mr(4 * GIB, 6 * GIB, 1);
    let o = instance(
        reference.module,
        reference.words.clone(),
        &other,
        Kill::Never,
    );
    assert_eq!(refused(&o, InitStep::Detect), RecordError::PlatformChanged);
}
