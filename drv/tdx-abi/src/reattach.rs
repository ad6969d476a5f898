//! Reading the module's answers when bring-up may already be partly done (§3.4).
//!
//! Pattern: a host that starts over (a restarted supervisor task) cannot read the module's
//! global state directly — 1.5.01 has no metadata field for it — so it learns it from answers.
//! [`step_answer`] turns the status of one bring-up leaf into what it means for that step, and
//! three *probes* ask a yes/no question with arguments the module refuses before any side
//! effect, so they never change module state in any state:
//!
//! | probe | question | "yes" | "no" |
//! |---|---|---|---|
//! | [`lp_probe`] (SYS.RD of MAJOR_VERSION on LP x) | has LP x done LP.INIT? | TDX_SUCCESS | TDX_SYS_LP_INIT_NOT_DONE |
//! | [`config_probe`] (SYS.CONFIG with KeyID 0) | would SYS.CONFIG run now? | OPERAND_INVALID+R8 | TDX_SYS_CONFIG_NOT_PENDING |
//! | [`ready_probe`] (SYS.TDMR.INIT at PA 1) | is the module SYS_READY? | OPERAND_INVALID+RCX | TDX_SYS_NOT_READY |
//!
//! Invariant: every function is pure; a status not listed for a leaf or probe is reported back
//! unchanged ([`StepAnswer::Failed`], [`ProbeAnswer::Unexpected`]), never guessed at.

use crate::metadata::field;
use crate::{Leaf, OperandId, SeamcallArgs, TdxStatus};

/// What one answer of a bring-up leaf says about its step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepAnswer {
    /// TDX_SUCCESS: this call did the step (for SYS.TDMR.INIT: one more chunk of it).
    DidNow,
    /// The step had been done before and this call changed nothing
    /// ([`TdxStatus::is_already_done`]).
    AlreadyDone,
    /// The global state is outside the leaf's window (TDX_SYS_LP_INIT_NOT_PENDING,
    /// TDX_SYS_CONFIG_NOT_PENDING, TDX_SYS_KEY_CONFIG_NOT_PENDING): the module is either past
    /// this step or an earlier one is missing. The answers to the earlier steps, asked first,
    /// tell which (§3.4).
    NotPending,
    /// TDX_SYS_NOT_READY: the leaf runs only in SYS_READY (§3.1 gate 3).
    NotReady,
    /// Contention or missing entropy ([`TdxStatus::is_transient`]): repeat the identical call.
    Retry,
    /// TDX_SYS_SHUTDOWN: the module was shut down; only a new module load helps.
    ShutDown,
    /// Anything else: this step failed with the given status.
    Failed(TdxStatus),
}

impl StepAnswer {
    /// True if after this answer the step (or, for TDMR.INIT, this chunk) is done.
    #[must_use]
    pub const fn is_done(self) -> bool {
        matches!(self, StepAnswer::DidNow | StepAnswer::AlreadyDone)
    }
}

/// The "already done" code `leaf` can return, if it has one.
#[must_use]
pub const fn already_done_code(leaf: Leaf) -> Option<TdxStatus> {
    match leaf {
        Leaf::SysInit => Some(TdxStatus::SYS_INIT_NOT_PENDING),
        Leaf::SysLpInit => Some(TdxStatus::SYS_LP_INIT_DONE),
        Leaf::SysKeyConfig => Some(TdxStatus::KEY_CONFIGURED),
        Leaf::SysTdmrInit => Some(TdxStatus::TDMR_ALREADY_INITIALIZED),
        _ => None,
    }
}

/// The "not in my window" code `leaf` can return, if it has one.
#[must_use]
pub const fn not_pending_code(leaf: Leaf) -> Option<TdxStatus> {
    match leaf {
        Leaf::SysLpInit => Some(TdxStatus::SYS_LP_INIT_NOT_PENDING),
        Leaf::SysConfig => Some(TdxStatus::SYS_CONFIG_NOT_PENDING),
        Leaf::SysKeyConfig => Some(TdxStatus::SYS_KEY_CONFIG_NOT_PENDING),
        _ => None,
    }
}

/// Classify the status `leaf` returned (§3.4). A code is taken as "already done" or "not
/// pending" only from the leaf that returns it; from any other leaf it is a failure.
#[must_use]
pub fn step_answer(leaf: Leaf, status: TdxStatus) -> StepAnswer {
    let code_of = |c: Option<TdxStatus>| c.is_some_and(|c| status.is(c));
    if status.is_success() {
        StepAnswer::DidNow
    } else if code_of(already_done_code(leaf)) {
        StepAnswer::AlreadyDone
    } else if code_of(not_pending_code(leaf)) {
        StepAnswer::NotPending
    } else if status.is(TdxStatus::SYS_NOT_READY) {
        StepAnswer::NotReady
    } else if status.is(TdxStatus::SYS_SHUTDOWN) {
        StepAnswer::ShutDown
    } else if status.is_transient() {
        StepAnswer::Retry
    } else {
        StepAnswer::Failed(status)
    }
}

/// The answer to a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The probe's question is answered "yes".
    Yes,
    /// The probe's question is answered "no".
    No,
    /// Contention: ask again.
    Retry,
    /// The module was shut down.
    ShutDown,
    /// A status the probe does not expect (e.g. a SYS.CONFIG probe from an LP that never ran
    /// LP.INIT under a relaxed module, or a bad array address).
    Unexpected(TdxStatus),
}

fn probe_answer(status: TdxStatus, yes: TdxStatus, no: TdxStatus) -> ProbeAnswer {
    if status == yes {
        ProbeAnswer::Yes
    } else if status.is(no) {
        ProbeAnswer::No
    } else if status.is(TdxStatus::SYS_SHUTDOWN) {
        ProbeAnswer::ShutDown
    } else if status.is_transient() {
        ProbeAnswer::Retry
    } else {
        ProbeAnswer::Unexpected(status)
    }
}

/// "Has the calling LP done TDH.SYS.LP.INIT?": TDH.SYS.RD of MAJOR_VERSION, run on that LP.
/// SYS.RD checks the LP first and reads only (§3.2); it is allowed in every state but shutdown.
#[must_use]
pub const fn lp_probe() -> SeamcallArgs {
    SeamcallArgs::leaf(Leaf::SysRd).rdx(field::MAJOR_VERSION.0)
}

/// Read the answer to [`lp_probe`].
#[must_use]
pub fn read_lp_probe(status: TdxStatus) -> ProbeAnswer {
    probe_answer(status, TdxStatus::SUCCESS, TdxStatus::SYS_LP_INIT_NOT_DONE)
}

/// "Would TDH.SYS.CONFIG run now?" (SYSINIT_DONE and every LP initialized): SYS.CONFIG with a
/// well-formed TDMR_INFO PA array (`array_pa`, `count` entries; checked by the module and by
/// our kernel's gate before the KeyID) and KeyID 0 in R8, which is never a private KeyID. The
/// module checks state and LP count, then RCX and RDX, then R8 — all before its first side
/// effect (§6.1), so the probe never reserves a KeyID or stores a TDMR.
#[must_use]
pub const fn config_probe(array_pa: u64, count: u64) -> SeamcallArgs {
    SeamcallArgs::leaf(Leaf::SysConfig)
        .rcx(array_pa)
        .rdx(count)
        .r8(0)
}

/// Read the answer to [`config_probe`].
#[must_use]
pub fn read_config_probe(status: TdxStatus) -> ProbeAnswer {
    probe_answer(
        status,
        TdxStatus::OPERAND_INVALID.with_operand(OperandId::R8),
        TdxStatus::SYS_CONFIG_NOT_PENDING,
    )
}

/// PA passed by [`ready_probe`]: not 1 GiB-aligned, so TDMR.INIT refuses it before any lookup.
pub const READY_PROBE_PA: u64 = 1;

/// "Is the module in SYS_READY?": TDH.SYS.TDMR.INIT at PA 1. Before SYS_READY gate 3 answers
/// TDX_SYS_NOT_READY; in SYS_READY the leaf refuses the unaligned RCX first thing.
#[must_use]
pub const fn ready_probe() -> SeamcallArgs {
    SeamcallArgs::leaf(Leaf::SysTdmrInit).rcx(READY_PROBE_PA)
}

/// Read the answer to [`ready_probe`].
#[must_use]
pub fn read_ready_probe(status: TdxStatus) -> ProbeAnswer {
    probe_answer(
        status,
        TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX),
        TdxStatus::SYS_NOT_READY,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_answers_per_leaf() {
        use StepAnswer::*;
        let cases = [
            (Leaf::SysInit, TdxStatus::SUCCESS, DidNow),
            (Leaf::SysInit, TdxStatus::SYS_INIT_NOT_PENDING, AlreadyDone),
            (Leaf::SysLpInit, TdxStatus::SYS_LP_INIT_DONE, AlreadyDone),
            (
                Leaf::SysLpInit,
                TdxStatus::SYS_LP_INIT_NOT_PENDING,
                NotPending,
            ),
            (
                Leaf::SysConfig,
                TdxStatus::SYS_CONFIG_NOT_PENDING,
                NotPending,
            ),
            (Leaf::SysKeyConfig, TdxStatus::KEY_CONFIGURED, AlreadyDone),
            (
                Leaf::SysKeyConfig,
                TdxStatus::SYS_KEY_CONFIG_NOT_PENDING,
                NotPending,
            ),
            (
                Leaf::SysTdmrInit,
                TdxStatus::TDMR_ALREADY_INITIALIZED,
                AlreadyDone,
            ),
            (Leaf::SysTdmrInit, TdxStatus::SYS_NOT_READY, NotReady),
            (Leaf::SysKeyConfig, TdxStatus::SYS_BUSY, Retry),
            (Leaf::SysLpInit, TdxStatus::RND_NO_ENTROPY, Retry),
            (Leaf::SysInit, TdxStatus::SYS_SHUTDOWN, ShutDown),
        ];
        for (leaf, status, want) in cases {
            assert_eq!(step_answer(leaf, status), want, "{} {status}", leaf.name());
        }
        // A code is only meaningful from the leaf that returns it.
        let wrong = TdxStatus::SYS_LP_INIT_DONE;
        assert_eq!(step_answer(Leaf::SysConfig, wrong), Failed(wrong));
        let wrong = TdxStatus::SYS_CONFIG_NOT_PENDING;
        assert_eq!(step_answer(Leaf::SysKeyConfig, wrong), Failed(wrong));
        let key_fail = TdxStatus::KEY_GENERATION_FAILED;
        assert_eq!(step_answer(Leaf::SysKeyConfig, key_fail), Failed(key_fail));
        assert!(DidNow.is_done() && AlreadyDone.is_done() && !NotPending.is_done());
    }

    #[test]
    fn probes_are_read_exactly() {
        assert_eq!(read_lp_probe(TdxStatus::SUCCESS), ProbeAnswer::Yes);
        assert_eq!(
            read_lp_probe(TdxStatus::SYS_LP_INIT_NOT_DONE),
            ProbeAnswer::No
        );
        let r8 = TdxStatus::OPERAND_INVALID.with_operand(OperandId::R8);
        let rcx = TdxStatus::OPERAND_INVALID.with_operand(OperandId::RCX);
        assert_eq!(read_config_probe(r8), ProbeAnswer::Yes);
        assert_eq!(read_config_probe(rcx), ProbeAnswer::Unexpected(rcx));
        assert_eq!(
            read_config_probe(TdxStatus::SYS_CONFIG_NOT_PENDING),
            ProbeAnswer::No
        );
        assert_eq!(read_config_probe(TdxStatus::SYS_BUSY), ProbeAnswer::Retry);
        assert_eq!(read_ready_probe(rcx), ProbeAnswer::Yes);
        assert_eq!(read_ready_probe(TdxStatus::SYS_NOT_READY), ProbeAnswer::No);
        assert_eq!(
            read_ready_probe(TdxStatus::SYS_SHUTDOWN),
            ProbeAnswer::ShutDown
        );
        assert_eq!(ready_probe().rcx, READY_PROBE_PA);
        assert_eq!(config_probe(0x1000, 2).r8, 0);
        assert_eq!(lp_probe().rdx, field::MAJOR_VERSION.0);
    }
}
