//! Repeated and out-of-order bring-up calls (§3.4, §10 item 27), and restart at every point.
//!
//! Pattern: one table gives, for every module state a host can meet and every init leaf, the
//! exact status 1.5.01 returns and whether the call moves the module; each cell runs on its own
//! copy of the module, and cells marked "unchanged" must leave every observable piece of module
//! state exactly as it was. The restart simulation replays an uninterrupted bring-up, stops
//! after each call k, and lets a fresh host that knows only its plan (the ledger's content)
//! re-attach with the `tdx_abi::reattach` vocabulary; it must reach SYS_READY with the same
//! TDMRs as the uninterrupted run.

mod common;

use common::{call, cfg, good_tdmrs, lay_out, leaf, mem, module, st, Mem, ARRAY_PA, GLOBAL_KEYID};
use tdx_abi::consts::{GIB, MIB};
use tdx_abi::metadata::field;
use tdx_abi::reattach::{
    config_probe, lp_probe, read_config_probe, read_lp_probe, read_ready_probe, ready_probe,
    ProbeAnswer,
};
use tdx_abi::{
    pamt_bytes, step_answer, KotState, Leaf, OperandId, PageSize, SeamcallArgs, StepAnswer,
    TdmrInfo, TdxStatus,
};
use tdx_emu::{Contention, FaultRule, SysState, TdxModule};

/// Everything a leaf could change, as the module's public accessors show it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    state: SysState,
    lps: Vec<bool>,
    num_init_lps: u32,
    packages: u8,
    global_keyid: Option<u16>,
    kot_global: Option<KotState>,
    tdmrs: Vec<TdmrInfo>,
    next_to_init: Vec<u64>,
}

fn snapshot(m: &TdxModule) -> Snapshot {
    let n = m.tdmrs().len();
    Snapshot {
        state: m.state(),
        lps: (0..m.config().num_lps).map(|lp| m.lp_is_init(lp)).collect(),
        num_init_lps: m.num_init_lps(),
        packages: m.packages_configured(),
        global_keyid: m.global_keyid(),
        kot_global: m.kot_state(GLOBAL_KEYID as u16),
        tdmrs: m.tdmrs().to_vec(),
        next_to_init: (0..n).filter_map(|i| m.tdmr_next_to_init(i)).collect(),
    }
}

// ---- the states ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Fresh,
    SysInit,
    SomeLps,
    AllLps,
    ConfigRejected,
    Configured,
    SomeKeyed,
    Ready,
    TdmrPartial,
    AllInit,
    ShutDown,
}

const STATES: [At; 11] = [
    At::Fresh,
    At::SysInit,
    At::SomeLps,
    At::AllLps,
    At::ConfigRejected,
    At::Configured,
    At::SomeKeyed,
    At::Ready,
    At::TdmrPartial,
    At::AllInit,
    At::ShutDown,
];

/// TDMR.INIT calls on TDMR 0 for `At::TdmrPartial`: 1200 MiB done, so its first GiB is usable
/// and its second is not.
const PARTIAL_CHUNKS: u32 = 300;

/// Extra memory for RDALL (4 KiB) and INFO (1 KiB structure, 512-byte CMR array).
const RDALL_PA: u64 = 0x10_0000;
const INFO_STRUCT_PA: u64 = 0x20_0000;
const CMR_ARRAY_PA: u64 = 0x30_0000;

fn platform_mem() -> Mem {
    let mut mem = mem();
    mem.map(RDALL_PA, 4096);
    mem.map(INFO_STRUCT_PA, 1024);
    mem.map(CMR_ARRAY_PA, 512);
    mem
}

fn ok(m: &mut TdxModule, mem: &mut Mem, lp: u32, a: SeamcallArgs) {
    assert_eq!(st(m, lp, a, mem), TdxStatus::SUCCESS, "setup {a:?}");
}

/// A module (and its memory) brought to `at` by the calls an ordinary host makes.
fn build(at: At) -> (TdxModule, Mem) {
    let (mut m, mut mem) = (module(cfg()), platform_mem());
    let tdmrs = good_tdmrs();
    lay_out(&mut mem, &tdmrs);
    let m_ = &mut m;
    let steps: &[At] = &STATES[..=STATES.iter().position(|s| *s == at).unwrap_or(0)];
    for step in steps {
        match step {
            At::Fresh => {}
            At::SysInit => ok(m_, &mut mem, 0, leaf(Leaf::SysInit)),
            At::SomeLps => {
                for lp in [0, 1] {
                    ok(m_, &mut mem, lp, leaf(Leaf::SysLpInit));
                }
            }
            At::AllLps => {
                for lp in [2, 3] {
                    ok(m_, &mut mem, lp, leaf(Leaf::SysLpInit));
                }
            }
            At::ConfigRejected => {
                // TDMR 1 placed below TDMR 0: NON_ORDERED_TDMR(1), state stays SYSINIT_DONE.
                let mut bad = tdmrs;
                bad[1].base = 0;
                lay_out(&mut mem, &bad);
                let s = st(m_, 0, common::config_args(2), &mut mem);
                assert!(s.is(TdxStatus::NON_ORDERED_TDMR), "{s}");
                lay_out(&mut mem, &tdmrs);
            }
            At::Configured => {
                ok(m_, &mut mem, 0, common::config_args(2));
                for lp in 0..m_.config().num_lps {
                    m_.note_wbinvd(lp);
                }
            }
            At::SomeKeyed => ok(m_, &mut mem, 0, leaf(Leaf::SysKeyConfig)),
            At::Ready => ok(m_, &mut mem, 1, leaf(Leaf::SysKeyConfig)),
            At::TdmrPartial => {
                for _ in 0..PARTIAL_CHUNKS {
                    ok(m_, &mut mem, 0, leaf(Leaf::SysTdmrInit).rcx(0));
                }
            }
            At::AllInit => {
                for t in &tdmrs {
                    common::init_tdmr(m_, &mut mem, t.base);
                }
            }
            At::ShutDown => {
                let hv = u64::from(m_.config().version.module_hv);
                ok(m_, &mut mem, 0, leaf(Leaf::SysShutdown).rcx(hv));
            }
        }
    }
    (m, mem)
}

// ---- the table ----

/// One column of the table: a call on an LP.
struct Probe {
    name: &'static str,
    lp: u32,
    args: fn(&TdxModule) -> SeamcallArgs,
}

const P: [Probe; 17] = [
    Probe {
        name: "SYS.INIT",
        lp: 0,
        args: |_| leaf(Leaf::SysInit),
    },
    Probe {
        name: "LP.INIT lp0",
        lp: 0,
        args: |_| leaf(Leaf::SysLpInit),
    },
    Probe {
        name: "LP.INIT lp3",
        lp: 3,
        args: |_| leaf(Leaf::SysLpInit),
    },
    Probe {
        name: "SYS.RD lp0",
        lp: 0,
        args: |_| lp_probe(),
    },
    Probe {
        name: "SYS.RD lp3",
        lp: 3,
        args: |_| lp_probe(),
    },
    Probe {
        name: "RDALL lp0",
        lp: 0,
        args: |_| leaf(Leaf::SysRdall).rdx(RDALL_PA),
    },
    Probe {
        name: "INFO lp0",
        lp: 0,
        args: |_| {
            leaf(Leaf::SysInfo)
                .rcx(INFO_STRUCT_PA)
                .rdx(1024)
                .r8(CMR_ARRAY_PA)
                .r9(32)
        },
    },
    Probe {
        name: "CONFIG",
        lp: 0,
        args: |_| common::config_args(2),
    },
    Probe {
        name: "CONFIG probe",
        lp: 0,
        args: |_| config_probe(ARRAY_PA, 2),
    },
    Probe {
        name: "KEY.CONFIG pkg0",
        lp: 0,
        args: |_| leaf(Leaf::SysKeyConfig),
    },
    Probe {
        name: "KEY.CONFIG pkg1",
        lp: 1,
        args: |_| leaf(Leaf::SysKeyConfig),
    },
    Probe {
        name: "TDMR.INIT t0",
        lp: 0,
        args: |_| leaf(Leaf::SysTdmrInit).rcx(0),
    },
    Probe {
        name: "TDMR.INIT 1G",
        lp: 0,
        args: |_| leaf(Leaf::SysTdmrInit).rcx(GIB),
    },
    Probe {
        name: "ready probe",
        lp: 0,
        args: |_| ready_probe(),
    },
    Probe {
        name: "RDMD 16M",
        lp: 0,
        args: |_| leaf(Leaf::PhymemPageRdmd).rcx(16 * MIB),
    },
    Probe {
        name: "RDMD 1.5G",
        lp: 0,
        args: |_| leaf(Leaf::PhymemPageRdmd).rcx(GIB + GIB / 2),
    },
    Probe {
        name: "SHUTDOWN",
        lp: 0,
        args: |m| leaf(Leaf::SysShutdown).rcx(u64::from(m.config().version.module_hv)),
    },
];

/// Expected cell: the status and whether the module moves.
#[derive(Clone, Copy)]
struct Cell(TdxStatus, bool);

const OK: Cell = Cell(TdxStatus::SUCCESS, false);
const MOVES: Cell = Cell(TdxStatus::SUCCESS, true);
const fn keep(s: TdxStatus) -> Cell {
    Cell(s, false)
}

/// The table: 1.5.01's answer for every (state, probe) pair, from the leaf sources named in §3.2.
fn expected(at: At, probe: usize) -> Cell {
    use At::*;
    let shutdown = keep(TdxStatus::SYS_SHUTDOWN);
    if at == ShutDown {
        return shutdown;
    }
    let ready = matches!(at, Ready | TdmrPartial | AllInit);
    let lps_of = |lp: u32| match at {
        Fresh | SysInit => false,
        SomeLps => lp < 2,
        _ => true,
    };
    let not_ready = keep(TdxStatus::SYS_NOT_READY);
    let rcx_invalid = keep(TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX));
    let range_err = keep(TdxStatus::OPERAND_ADDR_RANGE_ERROR.with_operand(OperandId::RCX));
    match P[probe].name {
        "SYS.INIT" if at == Fresh => MOVES,
        "SYS.INIT" => keep(TdxStatus::SYS_INIT_NOT_PENDING),
        "LP.INIT lp0" | "LP.INIT lp3" => {
            let lp = P[probe].lp;
            match at {
                Fresh | Configured | SomeKeyed | Ready | TdmrPartial | AllInit => {
                    keep(TdxStatus::SYS_LP_INIT_NOT_PENDING)
                }
                _ if lps_of(lp) => keep(TdxStatus::SYS_LP_INIT_DONE),
                _ => MOVES,
            }
        }
        "SYS.RD lp0" | "SYS.RD lp3" | "RDALL lp0" | "INFO lp0" => {
            if lps_of(P[probe].lp) {
                OK
            } else {
                keep(TdxStatus::SYS_LP_INIT_NOT_DONE)
            }
        }
        "CONFIG" => match at {
            AllLps | ConfigRejected => MOVES,
            _ => keep(TdxStatus::SYS_CONFIG_NOT_PENDING),
        },
        "CONFIG probe" => match at {
            AllLps | ConfigRejected => keep(TdxStatus::OPERAND_INVALID.with_operand(OperandId::R8)),
            _ => keep(TdxStatus::SYS_CONFIG_NOT_PENDING),
        },
        "KEY.CONFIG pkg0" => match at {
            Configured => MOVES,
            SomeKeyed => keep(TdxStatus::KEY_CONFIGURED),
            _ => keep(TdxStatus::SYS_KEY_CONFIG_NOT_PENDING),
        },
        "KEY.CONFIG pkg1" => match at {
            Configured | SomeKeyed => MOVES,
            _ => keep(TdxStatus::SYS_KEY_CONFIG_NOT_PENDING),
        },
        "TDMR.INIT t0" => match at {
            Ready | TdmrPartial => MOVES,
            AllInit => keep(TdxStatus::TDMR_ALREADY_INITIALIZED),
            _ => not_ready,
        },
        "TDMR.INIT 1G" | "ready probe" if ready => rcx_invalid,
        "RDMD 16M" => match at {
            Ready => range_err,
            TdmrPartial | AllInit => OK,
            _ => not_ready,
        },
        "RDMD 1.5G" => match at {
            Ready | TdmrPartial => range_err,
            AllInit => OK,
            _ => not_ready,
        },
        "SHUTDOWN" if ready => MOVES,
        _ => not_ready,
    }
}

#[test]
fn every_init_leaf_in_every_state() {
    let mut cells = 0;
    for at in STATES {
        let (base, base_mem) = build(at);
        let before = snapshot(&base);
        for (i, p) in P.iter().enumerate() {
            let (mut m, mut mem) = (base.clone(), base_mem.clone());
            let Cell(want, moves) = expected(at, i);
            let got = st(&mut m, p.lp, (p.args)(&base), &mut mem);
            assert_eq!(got, want, "{at:?} / {}: got {got}, want {want}", p.name);
            let after = snapshot(&m);
            if moves {
                assert_ne!(after, before, "{at:?} / {} should move the module", p.name);
            } else {
                assert_eq!(after, before, "{at:?} / {} changed the module", p.name);
            }
            assert_eq!(m.host_bugs().0.count(), 0, "{at:?} / {}", p.name);
            cells += 1;
        }
    }
    assert_eq!(cells, STATES.len() * P.len());
}

#[test]
fn global_lock_contention_comes_before_every_state_check() {
    // Another LP inside a SYS leaf: the leaves that take the global lock answer TDX_SYS_BUSY
    // before looking at the state (exclusive takers on any holder, LP.INIT only on an exclusive
    // one), so a re-attaching host learns nothing from them but "retry"; the rest answer as in
    // the table.
    for (lock, shared_ok) in [
        (Contention::SysExclusive, false),
        (Contention::SysShared, true),
    ] {
        for at in STATES.into_iter().filter(|a| *a != At::ShutDown) {
            let (mut base, base_mem) = build(at);
            base.hold(lock);
            let before = snapshot(&base);
            let ready = matches!(at, At::Ready | At::TdmrPartial | At::AllInit);
            for (i, p) in P.iter().enumerate() {
                let (mut m, mut mem) = (base.clone(), base_mem.clone());
                let a = (p.args)(&base);
                let takes_lock = match a.leaf_word().leaf() {
                    Some(Leaf::SysInit | Leaf::SysConfig | Leaf::SysKeyConfig) => true,
                    Some(Leaf::SysLpInit) => !shared_ok,
                    Some(Leaf::SysShutdown) => ready,
                    _ => false,
                };
                let want = if takes_lock {
                    TdxStatus::SYS_BUSY
                } else {
                    expected(at, i).0
                };
                let got = st(&mut m, p.lp, a, &mut mem);
                assert_eq!(got, want, "{lock:?} {at:?} / {}", p.name);
                if takes_lock {
                    assert_eq!(step_answer(Leaf::SysInit, got), StepAnswer::Retry);
                    assert_eq!(snapshot(&m), before, "{lock:?} {at:?} / {}", p.name);
                }
            }
        }
    }
}

#[test]
fn step_answers_match_the_table() {
    // The reattach vocabulary reads every answer of the table the way §3.4 says.
    for at in STATES {
        let (base, base_mem) = build(at);
        for (i, p) in P.iter().enumerate() {
            let (mut m, mut mem) = (base.clone(), base_mem.clone());
            let a = (p.args)(&base);
            let Some(l) = a.leaf_word().leaf() else {
                continue;
            };
            let s = st(&mut m, p.lp, a, &mut mem);
            let Cell(_, moves) = expected(at, i);
            let ans = step_answer(l, s);
            if moves {
                assert_eq!(ans, StepAnswer::DidNow, "{at:?} / {}", p.name);
            }
            if s.is_already_done() {
                assert_eq!(ans, StepAnswer::AlreadyDone, "{at:?} / {}", p.name);
                assert!(!moves);
            }
        }
    }
}

#[test]
fn tdmr_init_resumes_with_the_next_chunk() {
    let (mut m, mut mem) = build(At::TdmrPartial);
    let chunk = tdx_abi::consts::TDMR_INIT_CHUNK;
    assert_eq!(
        m.tdmr_next_to_init(0),
        Some(u64::from(PARTIAL_CHUNKS) * chunk)
    );
    // The module holds the progress: a new host's first call continues where the old one stopped.
    let r = call(&mut m, 2, leaf(Leaf::SysTdmrInit).rcx(0), &mut mem);
    assert_eq!(r.status(), TdxStatus::SUCCESS);
    assert_eq!(
        m.tdmr_next_to_init(0),
        Some(u64::from(PARTIAL_CHUNKS + 1) * chunk)
    );
    assert_eq!(
        r.rdx, GIB,
        "RDX is next-to-initialize rounded down to 1 GiB"
    );
    // TDMR 1 was never touched; its progress is its own.
    assert_eq!(m.tdmr_next_to_init(1), Some(4 * GIB));
    let calls = common::init_tdmr(&mut m, &mut mem, 0);
    assert_eq!(calls, 512 - PARTIAL_CHUNKS - 1);
    // Complete: the warning with RDX = 0, any number of times, on any LP.
    for lp in 0..4 {
        let r = call(&mut m, lp, leaf(Leaf::SysTdmrInit).rcx(0).rdx(7), &mut mem);
        assert_eq!(
            (r.status(), r.rdx),
            (TdxStatus::TDMR_ALREADY_INITIALIZED, 0)
        );
    }
}

#[test]
fn failed_steps_leave_the_state_where_it_was() {
    // 1.5.01 has no "failed" global state: a refused step changes nothing (except SYS.CONFIG's
    // KeyID reservation), so a host may repeat it, and a restarted host sees the old state.
    let (mut m, mut mem) = build(At::Configured);
    m.add_fault(FaultRule::once(
        Leaf::SysKeyConfig,
        TdxStatus::KEY_GENERATION_FAILED.0,
    ));
    let before = snapshot(&m);
    let s = st(&mut m, 0, leaf(Leaf::SysKeyConfig), &mut mem);
    assert_eq!(s, TdxStatus::KEY_GENERATION_FAILED);
    assert_eq!(snapshot(&m), before);
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::SysKeyConfig), &mut mem),
        TdxStatus::SUCCESS
    );

    let (mut m, mut mem) = build(At::ConfigRejected);
    assert_eq!(m.state(), SysState::SysinitDone);
    assert_eq!(m.kot_state(GLOBAL_KEYID as u16), Some(KotState::Reserved));
    assert!(m.tdmrs().is_empty());
    assert_eq!(
        st(&mut m, 0, common::config_args(2), &mut mem),
        TdxStatus::SUCCESS
    );
    assert_eq!(m.tdmrs(), &good_tdmrs());
}

#[test]
fn shutdown_is_final_for_every_leaf_but_lp_shutdown() {
    let (mut m, mut mem) = build(At::ShutDown);
    let before = snapshot(&m);
    for l in [
        Leaf::SysInit,
        Leaf::SysLpInit,
        Leaf::SysRd,
        Leaf::SysShutdown,
        Leaf::MngRd,
    ] {
        for lp in 0..4 {
            assert_eq!(st(&mut m, lp, leaf(l), &mut mem), TdxStatus::SYS_SHUTDOWN);
        }
    }
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::SysLpShutdown), &mut mem),
        TdxStatus::SUCCESS
    );
    assert_eq!(snapshot(&m), before);
    assert_eq!(
        read_ready_probe(st(&mut m, 0, ready_probe(), &mut mem)),
        ProbeAnswer::ShutDown
    );
}

// ---- restart at every point ----

/// The plan for the restart test: `good_tdmrs` with TDMR 1 shrunk to [4 GiB, 5 GiB), so the
/// whole bring-up takes 512 + 256 TDMR.INIT calls and replaying it from every point stays quick.
fn restart_plan() -> [TdmrInfo; 2] {
    let mut plan = good_tdmrs();
    let mut t1 = TdmrInfo::new(4 * GIB, GIB);
    let mut cursor = plan[0].pamt_1g_base + plan[0].pamt_1g_size;
    for level in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
        let sz = pamt_bytes(t1.size, level, 16);
        t1.set_pamt(level, cursor, sz);
        cursor += sz;
    }
    plan[1] = t1;
    plan
}

/// One host action of the uninterrupted bring-up.
#[derive(Clone, Copy, Debug)]
enum Op {
    Call(u32, SeamcallArgs),
    Wbinvd,
}

/// The uninterrupted bring-up (the `common::to_ready` order, then TDMR.INIT round robin over
/// the TDMRs until each reports completion), as a list of actions.
fn bring_up_ops(plan: &[TdmrInfo], platform: &tdx_emu::EmuConfig) -> (Vec<Op>, TdxModule) {
    let (mut m, mut mem) = (module(platform.clone()), platform_mem());
    lay_out(&mut mem, plan);
    let mut ops = vec![Op::Call(0, leaf(Leaf::SysInit))];
    ops.extend((0..4).map(|lp| Op::Call(lp, leaf(Leaf::SysLpInit))));
    ops.push(Op::Call(0, leaf(Leaf::SysRd).rdx(field::MAX_TDMRS.0)));
    ops.push(Op::Call(0, common::config_args(2)));
    ops.push(Op::Wbinvd);
    ops.push(Op::Call(0, leaf(Leaf::SysKeyConfig)));
    ops.push(Op::Call(1, leaf(Leaf::SysKeyConfig)));
    for op in &ops {
        apply(&mut m, &mut mem, *op);
    }
    let mut done = [false; 2];
    while done != [true, true] {
        for (i, t) in plan.iter().enumerate() {
            if done[i] {
                continue;
            }
            let op = Op::Call(i as u32, leaf(Leaf::SysTdmrInit).rcx(t.base));
            ops.push(op);
            done[i] = apply(&mut m, &mut mem, op) == TdxStatus::TDMR_ALREADY_INITIALIZED;
        }
    }
    (ops, m)
}

fn apply(m: &mut TdxModule, mem: &mut Mem, op: Op) -> TdxStatus {
    match op {
        Op::Call(lp, a) => {
            let s = st(m, lp, a, mem);
            assert!(s.is_success() || s.is_already_done(), "bring-up {a:?}: {s}");
            s
        }
        Op::Wbinvd => {
            for lp in 0..m.config().num_lps {
                m.note_wbinvd(lp);
            }
            TdxStatus::SUCCESS
        }
    }
}

/// What the re-attaching host did, for the assertions.
#[derive(Debug, Default)]
struct Reattach {
    config_submitted: bool,
    keyed_now: u32,
    chunks_now: u32,
}

fn expect_done(leaf: Leaf, s: TdxStatus) -> StepAnswer {
    let a = step_answer(leaf, s);
    assert!(a.is_done(), "{}: {s} ({a:?})", leaf.name());
    a
}

/// A fresh host that knows only its plan: probe, then finish whatever is left (§3.4).
fn reattach(m: &mut TdxModule, mem: &mut Mem, plan: &[TdmrInfo]) -> Reattach {
    let mut did = Reattach::default();
    let lps = m.config().num_lps;
    // Step 1: SYS.INIT, done now or before.
    expect_done(Leaf::SysInit, st(m, 0, leaf(Leaf::SysInit), mem));
    // Step 2: LP.INIT on every LP. "Not pending" after step 1 means CONFIG already ran; a
    // relaxed module (§3.2) answers "done" instead, so step 4 asks the CONFIG question too.
    let mut lp_init_closed = false;
    for lp in 0..lps {
        let was = read_lp_probe(st(m, lp, lp_probe(), mem));
        let s = st(m, lp, leaf(Leaf::SysLpInit), mem);
        match step_answer(Leaf::SysLpInit, s) {
            StepAnswer::DidNow => assert_eq!(was, ProbeAnswer::No),
            StepAnswer::AlreadyDone => assert_eq!(was, ProbeAnswer::Yes),
            StepAnswer::NotPending => {
                assert_eq!(was, ProbeAnswer::Yes, "strict rule: all LPs before CONFIG");
                lp_init_closed = true;
            }
            other => panic!("LP.INIT on {lp}: {other:?}"),
        }
    }
    // Step 3: the module's facts, read again (SYS.RD only reads).
    assert_eq!(
        st(m, 0, leaf(Leaf::SysRd).rdx(field::MAX_TDMRS.0), mem),
        TdxStatus::SUCCESS
    );
    // Step 4: CONFIG with the ledger's plan, only if the module still takes one.
    lay_out(mem, plan);
    let pending = read_config_probe(st(m, 0, config_probe(ARRAY_PA, plan.len() as u64), mem));
    let config_done = match pending {
        ProbeAnswer::Yes => false,
        ProbeAnswer::No => true,
        other => panic!("config probe: {other:?}"),
    };
    if !m.config().relaxed_lp_init {
        assert_eq!(
            config_done, lp_init_closed,
            "config probe vs LP.INIT answers"
        );
    }
    if !config_done {
        let s = st(m, 0, common::config_args(plan.len()), mem);
        assert_eq!(step_answer(Leaf::SysConfig, s), StepAnswer::DidNow, "{s}");
        did.config_submitted = true;
    }
    // Step 5: flush every CPU again (the old instance may have died before its flush), then
    // KEY.CONFIG on one LP per package unless the module is already READY.
    for lp in 0..lps {
        m.note_wbinvd(lp);
    }
    if read_ready_probe(st(m, 0, ready_probe(), mem)) == ProbeAnswer::No {
        for lp in [0, 1] {
            let s = st(m, lp, leaf(Leaf::SysKeyConfig), mem);
            if expect_done(Leaf::SysKeyConfig, s) == StepAnswer::DidNow {
                did.keyed_now += 1;
            }
        }
    }
    assert_eq!(
        read_ready_probe(st(m, 0, ready_probe(), mem)),
        ProbeAnswer::Yes
    );
    // Step 6: TDMR.INIT on each planned TDMR until it reports completion.
    for t in plan {
        loop {
            let s = st(m, 0, leaf(Leaf::SysTdmrInit).rcx(t.base), mem);
            if expect_done(Leaf::SysTdmrInit, s) == StepAnswer::AlreadyDone {
                break;
            }
            did.chunks_now += 1;
        }
    }
    did
}

#[test]
fn restart_after_every_call_reaches_ready_with_the_same_tdmrs() {
    restart_everywhere(cfg());
}

#[test]
fn restart_everywhere_on_a_relaxed_module() {
    let mut c = cfg();
    c.relaxed_lp_init = true;
    restart_everywhere(c);
}

fn restart_everywhere(platform: tdx_emu::EmuConfig) {
    let plan = restart_plan();
    let (ops, reference) = bring_up_ops(&plan, &platform);
    let total_chunks = 512 + 256;
    let (mut prefix, mut prefix_mem) = (module(platform), platform_mem());
    lay_out(&mut prefix_mem, &plan);
    for k in 0..=ops.len() {
        if k > 0 {
            apply(&mut prefix, &mut prefix_mem, ops[k - 1]);
        }
        let (mut m, mut mem) = (prefix.clone(), prefix_mem.clone());
        // The probes agree with the module's real state and change nothing.
        let before = snapshot(&m);
        let ready = read_ready_probe(st(&mut m, 0, ready_probe(), &mut mem));
        assert_eq!(
            ready == ProbeAnswer::Yes,
            m.state() == SysState::SysReady,
            "k={k}"
        );
        for lp in 0..4 {
            let init = read_lp_probe(st(&mut m, lp, lp_probe(), &mut mem)) == ProbeAnswer::Yes;
            assert_eq!(init, m.lp_is_init(lp), "k={k} lp={lp}");
        }
        assert_eq!(snapshot(&m), before, "k={k}: a probe changed the module");

        let did = reattach(&mut m, &mut mem, &plan);
        assert_eq!(m.state(), SysState::SysReady, "k={k}");
        assert_eq!(m.tdmrs(), reference.tdmrs(), "k={k}");
        assert_eq!(m.tdmrs(), &plan, "k={k}");
        assert_eq!(snapshot(&m), snapshot(&reference), "k={k}");
        assert_eq!(m.host_bugs().0.count(), 0, "k={k}");
        // Nothing done twice: CONFIG at most once in all, every package keyed once, every
        // chunk initialized once.
        let config_before = before.state >= SysState::SysconfigDone;
        assert_eq!(did.config_submitted, !config_before, "k={k}");
        assert_eq!(did.keyed_now + before.packages.count_ones(), 2, "k={k}");
        let chunks_before: u64 = before
            .next_to_init
            .iter()
            .zip(&plan)
            .map(|(n, t)| (n - t.base) / tdx_abi::consts::TDMR_INIT_CHUNK)
            .sum();
        assert_eq!(
            u64::from(did.chunks_now) + chunks_before,
            total_chunks,
            "k={k}"
        );
    }
}

#[test]
fn a_different_plan_is_refused_after_config() {
    // A restarted host that recomputed a different plan cannot install it: SYS.CONFIG is not
    // pending any more, and TDMR.INIT refuses a base the module was not configured with.
    let (mut m, mut mem) = build(At::SomeKeyed);
    let mut other = good_tdmrs();
    other[1].base = 8 * GIB;
    other[1].size = 8 * GIB;
    lay_out(&mut mem, &other);
    let s = st(&mut m, 0, common::config_args(2), &mut mem);
    assert_eq!(step_answer(Leaf::SysConfig, s), StepAnswer::NotPending);
    assert_eq!(
        st(&mut m, 1, leaf(Leaf::SysKeyConfig), &mut mem),
        TdxStatus::SUCCESS
    );
    let s = st(&mut m, 0, leaf(Leaf::SysTdmrInit).rcx(8 * GIB), &mut mem);
    assert_eq!(s, TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX));
    assert_eq!(step_answer(Leaf::SysTdmrInit, s), StepAnswer::Failed(s));
    assert_eq!(m.tdmrs(), &good_tdmrs());
}
