//! The record on its own: slots alternate and the newer valid one wins, a torn update at any
//! store leaves the previous marks, the plan block round-trips a real plan exactly, and every
//! check refuses what it should.

extern crate std;

use std::vec::Vec as StdVec;

use tdx_emu::EmuConfig;
use tdx_host_api::InitStep;
use tdx_planner::addr::PhysRange;
use tdx_planner::types::Plan;

use super::*;
use crate::init::tests::{run_with, Fixture};

/// Words that stop taking stores after `budget` of them.
struct Torn {
    words: StdVec<u64>,
    budget: Option<usize>,
}

impl Durable for Torn {
    fn word_count(&self) -> usize {
        self.words.len()
    }
    fn load(&self, i: usize) -> u64 {
        self.words[i]
    }
    fn store(&mut self, i: usize, value: u64) {
        match self.budget.as_mut() {
            Some(0) => {}
            Some(n) => {
                *n -= 1;
                self.words[i] = value;
            }
            None => self.words[i] = value,
        }
    }
}

fn torn(words: StdVec<u64>, budget: Option<usize>) -> Torn {
    Torn { words, budget }
}

#[test]
fn empty_memory_opens_empty_and_updates_alternate_slots() {
    let mut mem = torn(std::vec![0; RECORD_WORDS], None);
    let (mut rec, opened) = Record::open(&mut mem).unwrap();
    assert_eq!(opened, Opened::Empty);
    rec.update(|m| m.set_done(InitStep::SysInit));
    rec.update(|m| m.set_lp(3));
    rec.update(|m| m.set_lp(3)); // no change: no write
    assert_eq!(rec.marks().seq, 2);
    assert_ne!(mem.words[0], 0);
    assert_ne!(mem.words[SLOT_WORDS], 0);
    let (rec, opened) = Record::open(&mut mem).unwrap();
    assert_eq!(opened, Opened::Found);
    let m = rec.marks();
    // Opening counts the attach, which is one more update.
    assert_eq!((m.seq, m.attaches), (3, 1));
    assert!(m.is_done(InitStep::SysInit) && m.lp_done(3) && !m.lp_done(2));
    assert_eq!(m.lp_count(), 1);
}

/// An update torn after any of its stores: the next open sees the old or the new marks,
/// never an error and never a mix.
#[test]
fn a_torn_update_leaves_the_previous_marks() {
    let mut mem = torn(std::vec![0; RECORD_WORDS], None);
    let (mut rec, _) = Record::open(&mut mem).unwrap();
    rec.update(|m| m.set_done(InitStep::SysInit));
    rec.update(|m| m.tdmr_end[5] = 7 << 30);
    let before = rec.marks().clone();
    let base = mem.words.clone();
    // An update is SLOT_WORDS + 1 stores: magic cleared, the rest, magic set.
    for budget in 0..=SLOT_WORDS + 1 {
        let mut mem = torn(base.clone(), Some(budget));
        {
            // Writing to the slot that holds seq 1 (the older one).
            let mut rec = Record {
                mem: Some(&mut mem),
                marks: before.clone(),
            };
            rec.update(|m| m.set_package(1));
        }
        mem.budget = Some(0); // opening must not count: keep the memory as the crash left it
        let (rec, _) = Record::open(&mut mem).unwrap();
        let got = rec.marks();
        let new = budget == SLOT_WORDS + 1;
        assert_eq!(got.package_done(1), new, "budget {budget}");
        assert_eq!(got.seq, if new { 4 } else { 3 }, "budget {budget}");
        assert_eq!(got.tdmr_end[5], 7 << 30);
    }
}

#[test]
fn plan_block_round_trips_a_real_plan() {
    let r = run_with(EmuConfig::new(4, 2), &Fixture::new(4, 2, 2), |_| {});
    assert!(
        r.storage.plan.reserved_count() > 0,
        "a plan with reserved areas"
    );
    let facts = PlanFacts {
        pa_bits: 40,
        buffer: PhysRange::literal(0x20_0000, 0x1_0000),
        platform: 0xDEAD_BEEF,
        tdmr_info: 0x1234_5678,
    };
    let mut mem = torn(std::vec![0; RECORD_WORDS], None);
    let (mut rec, _) = Record::open(&mut mem).unwrap();
    rec.commit_plan(r.bringup.info(), &facts, &r.storage.plan);
    assert!(rec.marks().is_done(InitStep::Plan));
    let (rec, _) = Record::open(&mut mem).unwrap();
    let mut info = ModuleInfo::default();
    let mut plan = Plan::default();
    assert_eq!(rec.load_plan(&mut info, &mut plan), Ok(facts));
    assert_eq!(&info, r.bringup.info());
    assert_eq!(plan.tdmrs, r.storage.plan.tdmrs);
    assert_eq!(plan.pamt_blocks, r.storage.plan.pamt_blocks);
    assert_eq!(plan.pamt_bytes, r.storage.plan.pamt_bytes);
    // Retracted: the block is no longer committed, and no longer loadable.
    let (mut rec, _) = Record::open(&mut mem).unwrap();
    rec.retract_plan();
    assert_eq!(
        rec.load_plan(&mut info, &mut plan),
        Err(RecordError::PlanBlock)
    );
}

/// A plan block that no slot commits is ignored; one whose CRC the slot does not name is
/// refused.
#[test]
fn only_the_committed_plan_block_counts() {
    let r = run_with(EmuConfig::new(1, 1), &Fixture::new(1, 1, 1), |_| {});
    let mut mem = torn(std::vec![0; RECORD_WORDS], None);
    let (mut rec, _) = Record::open(&mut mem).unwrap();
    rec.update(|m| m.set_done(InitStep::SysInit));
    // A plan block written without its commit (the writer died before the slot).
    let mut other = torn(std::vec![0; RECORD_WORDS], None);
    let (mut o, _) = Record::open(&mut other).unwrap();
    o.commit_plan(r.bringup.info(), &PlanFacts::default(), &r.storage.plan);
    mem.words[2 * SLOT_WORDS..].copy_from_slice(&other.words[2 * SLOT_WORDS..]);
    let (rec, opened) = Record::open(&mut mem).unwrap();
    assert_eq!(opened, Opened::Found);
    assert!(!rec.marks().is_done(InitStep::Plan));
    // The other record's slots commit its block; pair them with a different block.
    let mut swapped = other.words.clone();
    swapped[2 * SLOT_WORDS + PLAN_HEADER + 1] ^= 1; // features0
    let crc_word = 2 * SLOT_WORDS + 1;
    let n = swapped[2 * SLOT_WORDS + 2] as usize;
    let mut c = Crc32::new();
    for w in &swapped[2 * SLOT_WORDS + PLAN_HEADER..2 * SLOT_WORDS + PLAN_HEADER + n] {
        c.update(&w.to_le_bytes());
    }
    swapped[crc_word] = (swapped[crc_word] & 0xFFFF_FFFF) | u64::from(c.value()) << 32;
    let mut mem = torn(swapped, None);
    assert_eq!(Record::open(&mut mem).err(), Some(RecordError::PlanBlock));
}

#[test]
fn too_small_memory_is_refused() {
    let mut mem = torn(std::vec![0; RECORD_WORDS - 1], None);
    assert_eq!(
        Record::open(&mut mem).err(),
        Some(RecordError::TooSmall {
            words: RECORD_WORDS - 1
        })
    );
}

/// The layout fits the task's durable budget (about 29 KiB) and each slot is one 640-byte
/// block; the sizes are part of every header, so changing them is a layout change.
#[test]
fn layout_sizes() {
    assert_eq!(SLOT_WORDS * 8, 640);
    const { assert!(RECORD_BYTES <= 32 * 1024) };
    assert_eq!(RECORD_BYTES, 8 * RECORD_WORDS);
}
