//! Deliberate kills, for testing that a task survives its own restart.
//!
//! Two mechanisms, both configured by the manifest and both deterministic
//! (the same image and the same sequence of calls kill at the same points):
//!
//! - [`KillTable`]: SEAMCALL kill rules (`[kernel.tdx] faults` entries with
//!   `kill = "before" | "after"`). Counting mirrors the emulated module's
//!   status rules: a rule is armed once the kernel's count of admitted
//!   calls of its leaf (1-based, every CPU) reaches `on_call`, and then
//!   fires on the next `repeat` calls of that leaf made on CPU `on_cpu`
//!   (any CPU if unset). A call killed *before* never reaches the module,
//!   so the module's own count of that leaf lags the kernel's by one.
//! - [`Chaos`]: seeded pseudo-random kills of one task. Events are the
//!   task's system calls and the timer ticks that interrupt it in ring 3;
//!   after `after` events, each kill comes 1..=`every` events after the
//!   previous one. A kill at a system call falls before or after the call
//!   runs (a coin flip); a kill at a tick falls on whatever instruction the
//!   tick interrupted.
//!
//! - [`ArmedKill`]: one kill armed at run time by a task holding the Fault
//!   right over the target (kernel IPC `ArmKill`), at a point of the
//!   target's work the arming task chooses: its next REPLY to a given
//!   operation (before or after delivery), its n-th next system call, or
//!   after its next SEAMCALL of a leaf. It fires once.
//!
//! Invariant: no time and no hidden state; everything is in the structs.

/// When a kill rule kills the caller relative to the SEAMCALL.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum When {
    /// Before the module executes the call: its state is unchanged.
    Before,
    /// After the module executed it: its state changed, but the task
    /// never sees the answer.
    After,
}

/// One SEAMCALL kill rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KillRule {
    pub leaf: u16,
    /// Armed from this call of the leaf (1-based); `None` = the first.
    pub on_call: Option<u32>,
    /// Only calls executed on this CPU index.
    pub on_cpu: Option<u32>,
    /// Firings; `u32::MAX` never runs out, 0 is treated as 1.
    pub repeat: u32,
    pub when: When,
}

/// Rules a table holds (as many as the manifest's `faults` list may have).
pub const MAX_KILL_RULES: usize = 16;
/// Leaf counters; higher leaf numbers share the last one.
const LEAF_SLOTS: usize = 128;

/// The SEAMCALL kill rules and per-leaf call counts.
#[derive(Clone, Debug)]
pub struct KillTable {
    rules: [Option<KillRule>; MAX_KILL_RULES],
    calls: [u32; LEAF_SLOTS],
}

impl Default for KillTable {
    fn default() -> Self {
        Self::new()
    }
}

impl KillTable {
    #[must_use]
    pub const fn new() -> Self {
        KillTable {
            rules: [None; MAX_KILL_RULES],
            calls: [0; LEAF_SLOTS],
        }
    }

    /// Adds a rule; `false` if the table is full.
    pub fn add(&mut self, mut rule: KillRule) -> bool {
        rule.repeat = rule.repeat.max(1);
        match self.rules.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(rule);
                true
            }
            None => false,
        }
    }

    /// Whether any rule is left.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.iter().all(Option::is_none)
    }

    /// Counts one admitted call of `leaf` on `cpu`; returns whether (and
    /// when) to kill the caller, consuming one firing of the first
    /// matching rule, and the call's number.
    pub fn on_call(&mut self, leaf: u16, cpu: u32) -> (Option<When>, u32) {
        let slot = usize::from(leaf).min(LEAF_SLOTS - 1);
        self.calls[slot] = self.calls[slot].saturating_add(1);
        let n = self.calls[slot];
        for entry in &mut self.rules {
            let Some(rule) = entry else { continue };
            let armed = rule.on_call.is_none_or(|c| n >= c);
            if rule.leaf == leaf && armed && rule.on_cpu.is_none_or(|c| c == cpu) {
                let when = rule.when;
                if rule.repeat != u32::MAX {
                    rule.repeat -= 1;
                    if rule.repeat == 0 {
                        *entry = None;
                    }
                }
                return (Some(when), n);
            }
        }
        (None, n)
    }
}

/// Something the chaos target did that may be a kill point.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChaosEvent {
    /// It entered a system call.
    Syscall,
    /// A timer tick interrupted it in ring 3.
    Tick,
}

/// Where a chaos kill falls.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChaosKill {
    /// Before the system call runs.
    SyscallBefore,
    /// After it ran, before the task sees its result.
    SyscallAfter,
    /// At the interrupted instruction.
    Tick,
}

/// The seeded kill schedule of one task.
#[derive(Clone, Debug)]
pub struct Chaos {
    rng: u64,
    every: u32,
    total: u32,
    done: u32,
    /// Events left before the next kill.
    countdown: u64,
}

impl Chaos {
    /// `kills` kills, the first after `after` + 1..=`every` events, each
    /// next 1..=`every` events after the previous (`every` 0 is treated
    /// as 1).
    #[must_use]
    pub fn new(seed: u64, kills: u32, every: u32, after: u32) -> Self {
        // xorshift64* must not start at zero; mix the seed so nearby seeds
        // give unrelated schedules.
        let rng = (seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
        let mut c = Chaos {
            rng,
            every: every.max(1),
            total: kills,
            done: 0,
            countdown: 0,
        };
        c.countdown = u64::from(after) + c.gap();
        c
    }

    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn gap(&mut self) -> u64 {
        1 + self.next() % u64::from(self.every)
    }

    /// Kills so far and in all.
    #[must_use]
    pub fn progress(&self) -> (u32, u32) {
        (self.done, self.total)
    }

    /// Counts one event; returns the kill (and its 1-based ordinal) if this
    /// event is a kill point.
    pub fn event(&mut self, e: ChaosEvent) -> Option<(ChaosKill, u32)> {
        if self.done >= self.total {
            return None;
        }
        self.countdown -= 1;
        if self.countdown > 0 {
            return None;
        }
        self.done += 1;
        self.countdown = self.gap();
        let kill = match e {
            ChaosEvent::Tick => ChaosKill::Tick,
            ChaosEvent::Syscall if self.next() & 1 == 0 => ChaosKill::SyscallBefore,
            ChaosEvent::Syscall => ChaosKill::SyscallAfter,
        };
        Some((kill, self.done))
    }
}

/// Where an [`ArmedKill`] falls (`abi::kipc::KillPoint` without the
/// points the kernel carries out at once).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArmedPoint {
    /// The next REPLY to a call of this operation, before delivery.
    BeforeReply(u16),
    /// The next REPLY to a call of this operation, after delivery.
    AfterReply(u16),
    /// The n-th next system call (n ≥ 1), before it runs.
    AtSyscall(u32),
    /// After the module ran the next SEAMCALL of this leaf.
    AfterSeamcall(u16),
}

/// What the target's system call is, as far as an armed kill cares.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArmedSyscall {
    /// A REPLY to a live caller waiting for it, whose call had this
    /// operation number.
    Reply(u16),
    /// Anything else (a REPLY to nobody included).
    Other,
}

/// The kill armed over one task; it fires once.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ArmedKill {
    pub target: usize,
    point: ArmedPoint,
}

impl ArmedKill {
    #[must_use]
    pub const fn new(target: usize, point: ArmedPoint) -> Self {
        ArmedKill { target, point }
    }

    /// Counts one system call of the target; whether (and when relative
    /// to the call) this is the kill point. A fired kill must be dropped.
    pub fn at_syscall(&mut self, call: ArmedSyscall) -> Option<When> {
        match (self.point, call) {
            (ArmedPoint::BeforeReply(op), ArmedSyscall::Reply(r)) if op == r => Some(When::Before),
            (ArmedPoint::AfterReply(op), ArmedSyscall::Reply(r)) if op == r => Some(When::After),
            (ArmedPoint::AtSyscall(1), _) => Some(When::Before),
            (ArmedPoint::AtSyscall(n), _) => {
                self.point = ArmedPoint::AtSyscall(n - 1);
                None
            }
            _ => None,
        }
    }

    /// Whether the target's SEAMCALL of `leaf` is the kill point (after
    /// the module ran it). A SEAMCALL is also a system call: the syscall
    /// entry has counted it already.
    #[must_use]
    pub fn at_seamcall(&self, leaf: u16) -> bool {
        self.point == ArmedPoint::AfterSeamcall(leaf)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    use super::{
        ArmedKill, ArmedPoint, ArmedSyscall, Chaos, ChaosEvent, ChaosKill, KillRule, KillTable,
        When,
    };

    #[test]
    fn an_armed_reply_kill_waits_for_its_operation() {
        let mut k = ArmedKill::new(3, ArmedPoint::BeforeReply(9));
        assert_eq!(k.at_syscall(ArmedSyscall::Other), None);
        assert_eq!(k.at_syscall(ArmedSyscall::Reply(8)), None);
        assert_eq!(k.at_syscall(ArmedSyscall::Reply(9)), Some(When::Before));
        let mut k = ArmedKill::new(3, ArmedPoint::AfterReply(9));
        assert_eq!(k.at_syscall(ArmedSyscall::Reply(9)), Some(When::After));
        assert!(!k.at_seamcall(9), "a reply kill is no SEAMCALL kill");
    }

    #[test]
    fn an_armed_syscall_kill_counts_every_call() {
        let mut k = ArmedKill::new(1, ArmedPoint::AtSyscall(3));
        assert_eq!(k.at_syscall(ArmedSyscall::Reply(1)), None);
        assert_eq!(k.at_syscall(ArmedSyscall::Other), None);
        assert_eq!(k.at_syscall(ArmedSyscall::Other), Some(When::Before));
    }

    #[test]
    fn an_armed_seamcall_kill_names_its_leaf() {
        let mut k = ArmedKill::new(1, ArmedPoint::AfterSeamcall(34));
        assert_eq!(k.at_syscall(ArmedSyscall::Other), None);
        assert!(!k.at_seamcall(33));
        assert!(k.at_seamcall(34));
    }

    fn rule(
        leaf: u16,
        on_call: Option<u32>,
        on_cpu: Option<u32>,
        repeat: u32,
        when: When,
    ) -> KillRule {
        KillRule {
            leaf,
            on_call,
            on_cpu,
            repeat,
            when,
        }
    }

    #[test]
    fn a_rule_fires_on_its_call_and_cpu_then_runs_out() {
        let mut t = KillTable::new();
        assert!(t.add(rule(33, Some(2), None, 1, When::Before)));
        assert!(t.add(rule(35, None, Some(3), 2, When::After)));
        assert_eq!(t.on_call(33, 0), (None, 1));
        assert_eq!(t.on_call(33, 0), (Some(When::Before), 2));
        assert_eq!(t.on_call(33, 0), (None, 3), "repeat 1: once");
        assert_eq!(t.on_call(35, 0), (None, 1), "wrong CPU");
        assert_eq!(t.on_call(35, 3), (Some(When::After), 2));
        assert_eq!(t.on_call(35, 3), (Some(When::After), 3));
        assert_eq!(t.on_call(35, 3), (None, 4));
        assert!(t.is_empty());
    }

    #[test]
    fn forever_and_zero_repeat() {
        let mut t = KillTable::new();
        t.add(rule(1, None, None, u32::MAX, When::After));
        t.add(rule(2, None, None, 0, When::Before));
        for _ in 0..100 {
            assert_eq!(t.on_call(1, 0).0, Some(When::After));
        }
        assert_eq!(t.on_call(2, 0).0, Some(When::Before));
        assert_eq!(t.on_call(2, 0).0, None);
    }

    #[test]
    fn a_full_table_refuses() {
        let mut t = KillTable::new();
        for i in 0..super::MAX_KILL_RULES {
            assert!(t.add(rule(i as u16, None, None, 1, When::Before)));
        }
        assert!(!t.add(rule(99, None, None, 1, When::Before)));
    }

    /// Kill points (event index, kind) of a whole run.
    fn run(
        seed: u64,
        kills: u32,
        every: u32,
        after: u32,
        events: usize,
    ) -> Vec<(usize, ChaosKill)> {
        let mut c = Chaos::new(seed, kills, every, after);
        (0..events)
            .filter_map(|i| {
                let e = if i % 3 == 0 {
                    ChaosEvent::Tick
                } else {
                    ChaosEvent::Syscall
                };
                c.event(e).map(|(k, _)| (i, k))
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_kills() {
        assert_eq!(run(7, 50, 20, 5, 10_000), run(7, 50, 20, 5, 10_000));
        assert_ne!(run(7, 50, 20, 5, 10_000), run(8, 50, 20, 5, 10_000));
    }

    #[test]
    fn syscall_kills_fall_on_both_sides() {
        let kills = run(1, 200, 10, 0, 100_000);
        assert_eq!(kills.len(), 200);
        for k in [
            ChaosKill::SyscallBefore,
            ChaosKill::SyscallAfter,
            ChaosKill::Tick,
        ] {
            assert!(kills.iter().any(|(_, x)| *x == k), "{k:?} never chosen");
        }
    }

    proptest! {
        /// Exactly `kills` kills, none in the first `after` events, gaps
        /// within 1..=every, ordinals counting up from 1.
        #[test]
        fn schedule_bounds(seed in 0u64..u64::MAX, kills in 0u32..50, every in 0u32..40, after in 0u32..100) {
            let mut c = Chaos::new(seed, kills, every, after);
            let mut last: Option<usize> = None;
            let mut n = 0;
            for i in 0..(after as usize + 50 * 41 + 10) {
                if let Some((_, ordinal)) = c.event(ChaosEvent::Syscall) {
                    n += 1;
                    prop_assert_eq!(ordinal, n);
                    let gap = match last { None => i + 1 - after as usize, Some(l) => i - l };
                    prop_assert!(gap >= 1 && gap <= every.max(1) as usize, "gap {}", gap);
                    last = Some(i);
                }
            }
            prop_assert_eq!(n, kills);
            prop_assert_eq!(c.progress(), (kills, kills));
        }
    }
}
