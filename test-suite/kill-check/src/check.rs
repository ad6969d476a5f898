//! kill-check: proves the kernel's kill injection ends in restarts.
//!
//! The image's `[kernel.tdx] faults` kill this task at its first
//! TDH.SYS.INIT *before* the module runs it, and at its first
//! TDH.SYS.LP.INIT *after* the module ran it; `[kernel.chaos]` kills
//! chaos-victim at seeded points. jefe restarts every kill (its `restart`
//! list). This task keeps its progress and its score in durable memory, so
//! each incarnation carries on where the last one was killed:
//!
//! - stage 0 → 1: TDH.SYS.INIT, killed before the module ran it;
//! - stage 1: TDH.SYS.INIT again must succeed (the module never saw the
//!   first one), then → 2: TDH.SYS.LP.INIT on CPU 0, killed after it ran;
//! - stage 2: LP.INIT on CPU 0 again must answer TDX_SYS_LP_INIT_DONE (the
//!   killed call did run), then → 3;
//! - stage 3: wait until chaos-victim has been restarted once per chaos
//!   kill (its generation), and no more; verdict.

#![no_std]
#![no_main]

use tdx_abi::{Leaf, TdxStatus};
use test_api::score::Score;
use userlib::durable::Durable;
use userlib::{hl, sys_refresh_task_id, sys_seamcall, sys_send, SeamcallOutcome};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
mod expect {
    include!(concat!(env!("OUT_DIR"), "/expect.rs"));
}

/// `[stage, passed, failed, crc, incarnations]`.
#[link_section = ".durable"]
static PROGRESS: Durable<[u64; 5]> = Durable::zeroed();

const STAGE: usize = 0;
const INCARNATIONS: usize = 4;

/// Keeps the score's counts in durable memory (the verdict line sums the
/// cases of every incarnation).
fn save(p: &mut [u64; 5], s: &Score) {
    let (passed, failed, crc) = s.parts();
    p[1] = passed;
    p[2] = failed;
    p[3] = u64::from(crc);
}

fn seamcall(leaf: Leaf) -> Result<SeamcallOutcome, userlib::UnknownOutcome> {
    sys_seamcall(Some(0), u64::from(leaf.number()), [0; 6])
}

fn status_code(o: Result<SeamcallOutcome, userlib::UnknownOutcome>) -> Option<TdxStatus> {
    match o {
        Ok(SeamcallOutcome::Returned { rax, .. }) => Some(TdxStatus(rax).code()),
        _ => None,
    }
}

fn my_generation() -> u16 {
    sys_refresh_task_id(task_gen::tasks::KILL_CHECK)
        .generation()
        .0
}

const BEFORE: &str = "kill_before_seamcall_restarts_the_caller_and_the_module_never_ran_it";
const AFTER: &str = "kill_after_seamcall_restarts_the_caller_after_the_module_ran_it";
const CHAOS: &str = "chaos_kills_each_end_in_one_restart";

fn chaos_check(s: &mut Score) {
    let victim = task_gen::tasks::CHAOS_VICTIM;
    let want = expect::CHAOS_KILLS;
    let mut generation = 0u16;
    // At most 60 s for the whole schedule.
    for _ in 0..6000 {
        if let Ok((_, g)) = hl::read_task_status(victim) {
            generation = g.0;
        }
        if u32::from(generation) >= want {
            break;
        }
        hl::sleep_for(10, 1);
    }
    // The schedule is over: no kill beyond it.
    hl::sleep_for(200, 1);
    let (state, g) = hl::read_task_status(victim).expect("status of chaos-victim");
    let healthy = !matches!(state, abi::TaskState::Faulted(_));
    test_api::check!(
        s,
        CHAOS,
        u32::from(g.0) == want && healthy,
        "chaos-victim generation {} (want {want} restarts), state {state:?}",
        g.0
    );
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    // Safety: the only reference to PROGRESS in this incarnation.
    let p = unsafe { PROGRESS.get_mut() };
    p[INCARNATIONS] += 1;
    let mut s = Score::default();
    s.absorb(p[1], p[2], p[3] as u32);
    if p[STAGE] == 0 {
        p[STAGE] = 1;
        let o = seamcall(Leaf::SysInit);
        s.fail(
            BEFORE,
            format_args!("TDH.SYS.INIT returned {o:?}: the caller was not killed"),
        );
        save(p, &s);
        p[STAGE] = 3;
    } else if p[STAGE] == 1 {
        let o = status_code(seamcall(Leaf::SysInit));
        test_api::check!(
            s,
            BEFORE,
            o == Some(TdxStatus::SUCCESS) && my_generation() == 1,
            "after the kill: TDH.SYS.INIT answered {o:?} (want TDX_SUCCESS: the killed call never ran), generation {}",
            my_generation()
        );
        save(p, &s);
        p[STAGE] = 2;
        let o = seamcall(Leaf::SysLpInit);
        s.fail(
            AFTER,
            format_args!("TDH.SYS.LP.INIT returned {o:?}: the caller was not killed"),
        );
        save(p, &s);
        p[STAGE] = 3;
    } else if p[STAGE] == 2 {
        let o = status_code(seamcall(Leaf::SysLpInit));
        test_api::check!(
            s,
            AFTER,
            o == Some(TdxStatus::SYS_LP_INIT_DONE) && my_generation() == 2,
            "after the kill: TDH.SYS.LP.INIT answered {o:?} (want TDX_SYS_LP_INIT_DONE: the killed call ran), generation {}",
            my_generation()
        );
        save(p, &s);
        p[STAGE] = 3;
    }
    if p[STAGE] == 3 {
        chaos_check(&mut s);
        save(p, &s);
        p[STAGE] = 4;
        s.verdict(task_gen::IMAGE_NAME);
        let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
        sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    }
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
