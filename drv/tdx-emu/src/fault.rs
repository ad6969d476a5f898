//! Deterministic fault injection and forced lock contention (§10 items 5 and 26).
//!
//! Pattern: a fixed table of [`FaultRule`]s plus per-leaf call counters; leaves ask
//! [`FaultTable::take`] at their injection point. Lock contention is modelled separately by
//! [`Contention`] "holds": a test declares that *another* LP currently owns a lock, and the leaf
//! that needs it fails with the module's busy status instead of waiting, as the real module does.
//! Invariant: no randomness and no time — the same call sequence always yields the same results.

use crate::config::{FaultRule, MAX_FAULT_RULES};
use tdx_abi::Leaf;

/// Number of leaf-number counter slots (leaf numbers above this share the last slot).
const LEAF_SLOTS: usize = 128;

/// A lock that another (imaginary) LP is holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contention {
    /// The global SYS lock held exclusively (SYS.INIT/CONFIG/KEY.CONFIG running elsewhere).
    SysExclusive,
    /// The global SYS lock held shared (an LP.INIT running elsewhere).
    SysShared,
    /// The mutex of TDMR `index` (a TDMR.INIT on the same TDMR elsewhere).
    Tdmr(usize),
    /// A package's WBT entry (CACHE.WB running elsewhere on that package).
    PackageWbcache(u8),
    /// The PAMT entry lock of the 4 KiB page at this PA (page leaves → OPERAND_BUSY).
    Page(u64),
}

/// Runtime state of the fault rules.
#[derive(Clone, Debug)]
pub(crate) struct FaultTable {
    rules: [Option<FaultRule>; MAX_FAULT_RULES],
    calls: [u32; LEAF_SLOTS],
}

impl FaultTable {
    pub(crate) fn new(rules: &[Option<FaultRule>; MAX_FAULT_RULES]) -> Self {
        let mut rules = *rules;
        for r in rules.iter_mut().flatten() {
            r.repeat = r.repeat.max(1);
        }
        FaultTable {
            rules,
            calls: [0; LEAF_SLOTS],
        }
    }

    /// Count one dispatch of `leaf`.
    pub(crate) fn count_call(&mut self, leaf: Leaf) {
        let slot = (leaf.number() as usize).min(LEAF_SLOTS - 1);
        self.calls[slot] = self.calls[slot].saturating_add(1);
    }

    /// Calls of `leaf` dispatched so far.
    pub(crate) fn calls(&self, leaf: Leaf) -> u32 {
        self.calls[(leaf.number() as usize).min(LEAF_SLOTS - 1)]
    }

    /// Add a rule at run time; `false` if the table is full.
    pub(crate) fn add(&mut self, mut rule: FaultRule) -> bool {
        rule.repeat = rule.repeat.max(1);
        match self.rules.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(rule);
                true
            }
            None => false,
        }
    }

    /// Consume one firing of the first matching rule, if any.
    pub(crate) fn take(&mut self, leaf: Leaf, lp: u32) -> Option<u64> {
        let n = self.calls(leaf);
        for slot in self.rules.iter_mut() {
            let Some(rule) = slot else { continue };
            let armed = rule.on_call.is_none_or(|c| n >= c);
            if rule.leaf == leaf && armed && rule.on_lp.is_none_or(|l| l == lp) {
                let status = rule.status;
                if rule.repeat != FaultRule::FOREVER {
                    rule.repeat -= 1;
                    if rule.repeat == 0 {
                        *slot = None;
                    }
                }
                return Some(status);
            }
        }
        None
    }
}
