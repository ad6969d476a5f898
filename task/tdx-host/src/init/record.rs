//! The bring-up record: what a restarted tdx-host needs and the module cannot tell it — the
//! plan handed to TDH.SYS.CONFIG, the module facts the plan was made from, and how far each
//! step got (docs/tdx-module.md §3.4 "Nothing to read back").
//!
//! Pattern: two parts in one region of durable memory (memory the kernel keeps across this
//! task's restart, [`RECORD_WORDS`] 64-bit words), reached only through [`Durable`]:
//! - two **progress slots** of [`SLOT_WORDS`] words, each a complete [`Marks`] with a sequence
//!   number. An update writes the slot *not* holding the current marks (seq n goes to slot
//!   n mod 2), so the previous marks stay intact until the new ones are whole; the valid slot
//!   with the higher sequence number wins;
//! - one **plan block** (facts + plan + the TDMR_INFO digest), written once, before SYS.CONFIG,
//!   and *committed* by the next progress slot, which names its CRC. A plan block that no valid
//!   slot commits is ignored: a crash while writing it happened before SYS.CONFIG could run.
//!
//! Each part starts with magic, version and the whole record's layout size, and carries a
//! CRC-32 (IEEE). A slot is written as: clear its magic word, fence, write the body and the
//! CRC, fence, write the magic word, fence. A crash at any store therefore leaves the slot
//! either complete or with magic 0, which reads as "never written" — so a slot with the right
//! magic and a bad CRC is real damage, never a torn update.
//!
//! Invariants:
//! - The marks only ever grow (a step, LP, package or TDMR end once recorded stays recorded)
//!   and are written only after the module said the thing was done; the plan is committed
//!   before the SYS.CONFIG that uses it. The record may be *behind* the module (the host died
//!   between a call and its record), never ahead of it.
//! - [`Record::open`] never guesses: all-zero memory is [`Opened::Empty`]; a part that fails
//!   a check is a [`RecordError`] naming the check, which bring-up turns into `Failed`.
//! - Stores are whole aligned 64-bit words (single stores on x86-64, persisted in program
//!   order under TSO); [`Durable::fence`] keeps the compiler from moving them across a phase.

use core::sync::atomic::{AtomicU64, Ordering};

use heapless::Vec;
use tdx_host_api::InitStep;
use tdx_planner::addr::{ByteLen, PhysAddr, PhysRange};
use tdx_planner::types::{
    Limits, PamtBlock, Plan, ReservedArea, Tdmr, MAX_CMRS, MAX_PAMT_BLOCKS, MAX_RESERVED_PER_TDMR,
    MAX_TDMRS,
};
use verdict::Crc32;

use super::ModuleInfo;
use crate::seam::KeyIdPartition;

/// The record layout's version; any other version is refused ([`RecordError::Version`]).
pub const RECORD_VERSION: u16 = 1;
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"TXBR");
const PLAN_MAGIC: u32 = u32::from_le_bytes(*b"TXBP");

/// Most LPs and packages the marks track (the platform record's capacity).
pub const MAX_LPS: usize = 256;
const LP_WORDS: usize = MAX_LPS / 64;

/// Words of one progress slot (640 bytes).
pub const SLOT_WORDS: usize = 80;
const SLOT_USED: usize = 13 + MAX_TDMRS;
const _: () = assert!(SLOT_USED <= SLOT_WORDS);

const PLAN_HEADER: usize = 3;
const FACT_WORDS: usize = 12;
const TDMR_WORDS: usize = 10 + 2 * MAX_RESERVED_PER_TDMR;
const BODY_MAX: usize =
    FACT_WORDS + 1 + 2 * MAX_CMRS + 2 + MAX_TDMRS * TDMR_WORDS + 1 + 3 * MAX_PAMT_BLOCKS;
/// Words of the plan block.
pub const PLAN_WORDS: usize = PLAN_HEADER + BODY_MAX;
/// Words of the whole record: slot 0, slot 1, the plan block.
pub const RECORD_WORDS: usize = 2 * SLOT_WORDS + PLAN_WORDS;
/// Bytes of the whole record (the "layout size" both parts carry).
pub const RECORD_BYTES: usize = 8 * RECORD_WORDS;

/// Durable memory as the record uses it: aligned 64-bit words that survive this task's
/// restart. Implemented over the task's `.durable` static ([`DurableWords`]) and, in tests,
/// over memory that stops taking stores at a chosen point (a crash).
pub trait Durable {
    /// Words available (at least [`RECORD_WORDS`] for a usable record).
    fn word_count(&self) -> usize;
    /// Word `i` as it is now.
    fn load(&self, i: usize) -> u64;
    /// One 8-byte store to word `i`.
    fn store(&mut self, i: usize, value: u64);
    /// Orders every store before it ahead of every store after it.
    fn fence(&mut self) {
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// [`Durable`] over a borrowed word array (the task's `.durable` static).
#[derive(Debug)]
pub struct DurableWords<'a>(pub &'a mut [u64]);

impl Durable for DurableWords<'_> {
    fn word_count(&self) -> usize {
        self.0.len()
    }
    fn load(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }
    fn store(&mut self, i: usize, value: u64) {
        if let Some(w) = self.0.get_mut(i) {
            *w = value;
        }
    }
}

/// [`Durable`] over shared atomic words: the task's [`RECORD`] (no `unsafe` needed to reach
/// a `static`). Relaxed loads and stores are plain moves on x86-64; [`Durable::fence`] orders
/// them.
#[derive(Clone, Copy, Debug)]
pub struct AtomicWords<'a>(pub &'a [AtomicU64]);

impl Durable for AtomicWords<'_> {
    fn word_count(&self) -> usize {
        self.0.len()
    }
    fn load(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |w| w.load(Ordering::Relaxed))
    }
    fn store(&mut self, i: usize, value: u64) {
        if let Some(w) = self.0.get(i) {
            w.store(value, Ordering::Relaxed);
        }
    }
}

/// The words of one record, as a `static` the server task places in its `.durable` section
/// (the kernel zeroes it once at boot and keeps it across the task's restart).
#[derive(Debug)]
#[repr(transparent)]
pub struct RecordWords([AtomicU64; RECORD_WORDS]);

impl RecordWords {
    /// All zero: no record.
    #[must_use]
    pub const fn new() -> Self {
        RecordWords([const { AtomicU64::new(0) }; RECORD_WORDS])
    }

    /// The words, for [`AtomicWords`].
    #[must_use]
    pub fn words(&self) -> &[AtomicU64] {
        &self.0
    }
}

impl Default for RecordWords {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the record cannot be used. Every variant stops bring-up (`Failed` at Detect, or at the
/// step that found the contradiction): a restarted tdx-host never re-initializes over what an
/// unreadable record might describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The durable memory is smaller than [`RECORD_WORDS`].
    TooSmall {
        /// Words provided.
        words: usize,
    },
    /// A part's magic word is neither 0 nor ours.
    Magic {
        /// Which part (0, 1: slots; 2: the plan block).
        part: u8,
        /// The word found.
        found: u64,
    },
    /// A part of another layout version.
    Version {
        /// Which part.
        part: u8,
        /// The version found.
        found: u16,
    },
    /// A part written for another layout size.
    Layout {
        /// Which part.
        part: u8,
        /// The size found (bytes).
        found: u32,
    },
    /// A part whose CRC-32 does not match its contents.
    Crc {
        /// Which part.
        part: u8,
    },
    /// The committed plan block is not the one the marks name, or does not decode.
    PlanBlock,
    /// The module is configured but the record holds no plan: its TDMRs are unknown.
    ConfiguredWithoutPlan,
    /// The record says a step is done that the module says is not.
    AheadOfModule(InitStep),
    /// The module does not know a TDMR base of the recorded plan.
    PlanNotModules,
    /// The platform (RAM, image, KeyIDs, TDMR_INFO buffer) differs from the one planned on.
    PlatformChanged,
    /// The recorded plan no longer gives the TDMR_INFO bytes that were handed to SYS.CONFIG.
    TdmrInfoMismatch,
}

impl RecordError {
    /// Human-readable reason for the init report.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::TooSmall { .. } => "durable memory smaller than the record",
            RecordError::Magic { .. } => "bad magic",
            RecordError::Version { .. } => "record of another layout version",
            RecordError::Layout { .. } => "record of another layout size",
            RecordError::Crc { .. } => "CRC mismatch (corrupted record)",
            RecordError::PlanBlock => "committed plan block missing or undecodable",
            RecordError::ConfiguredWithoutPlan => "module is configured but no plan is recorded",
            RecordError::AheadOfModule(_) => "record says done what the module says is not",
            RecordError::PlanNotModules => "module does not know a TDMR of the recorded plan",
            RecordError::PlatformChanged => "platform differs from the one the plan was made on",
            RecordError::TdmrInfoMismatch => {
                "recorded plan does not give the TDMR_INFO handed over"
            }
        }
    }
}

/// One progress slot, decoded: what is known done. Bits of `done` are [`InitStep`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marks {
    /// Sequence number of the slot these came from (0: nothing recorded yet).
    pub seq: u64,
    /// Instances that opened this record after the first (restarts that re-attached).
    pub attaches: u32,
    /// Steps completed, bit `step as u16`.
    pub done: u16,
    /// CRC-32 of the committed plan block's body (meaningful when `Plan` is done).
    pub plan_crc: u32,
    /// Words of the committed plan block's body.
    pub plan_words: u32,
    /// LPs whose LP.INIT is done, by CPU index.
    pub lps: [u64; LP_WORDS],
    /// Packages whose KEY.CONFIG is done, by leader order.
    pub packages: [u64; LP_WORDS],
    /// Per TDMR of the plan: initialized end as the module last reported it (0: nothing).
    pub tdmr_end: [u64; MAX_TDMRS],
}

impl Default for Marks {
    fn default() -> Self {
        Marks {
            seq: 0,
            attaches: 0,
            done: 0,
            plan_crc: 0,
            plan_words: 0,
            lps: [0; LP_WORDS],
            packages: [0; LP_WORDS],
            tdmr_end: [0; MAX_TDMRS],
        }
    }
}

fn bit(set: &[u64; LP_WORDS], i: usize) -> bool {
    i < MAX_LPS && set[i / 64] & (1 << (i % 64)) != 0
}

fn set_bit(set: &mut [u64; LP_WORDS], i: usize) {
    if i < MAX_LPS {
        set[i / 64] |= 1 << (i % 64);
    }
}

impl Marks {
    /// Whether `step` is recorded done.
    #[must_use]
    pub fn is_done(&self, step: InitStep) -> bool {
        self.done & (1 << step as u16) != 0
    }
    /// Whether LP.INIT on CPU `i` is recorded done.
    #[must_use]
    pub fn lp_done(&self, i: usize) -> bool {
        bit(&self.lps, i)
    }
    /// Whether KEY.CONFIG of package `p` (leader order) is recorded done.
    #[must_use]
    pub fn package_done(&self, p: usize) -> bool {
        bit(&self.packages, p)
    }
    /// Records `step` done.
    pub fn set_done(&mut self, step: InitStep) {
        self.done |= 1 << step as u16;
    }
    /// Records LP.INIT on CPU `i` done.
    pub fn set_lp(&mut self, i: usize) {
        set_bit(&mut self.lps, i);
    }
    /// Records KEY.CONFIG of package `p` done.
    pub fn set_package(&mut self, p: usize) {
        set_bit(&mut self.packages, p);
    }
    /// LPs recorded done.
    #[must_use]
    pub fn lp_count(&self) -> u32 {
        self.lps.iter().map(|w| w.count_ones()).sum()
    }
    /// Packages recorded keyed.
    #[must_use]
    pub fn package_count(&self) -> u32 {
        self.packages.iter().map(|w| w.count_ones()).sum()
    }

    fn encode(&self) -> [u64; SLOT_WORDS] {
        let mut w = [0u64; SLOT_WORDS];
        w[0] = u64::from(SLOT_MAGIC) | u64::from(RECORD_VERSION) << 32;
        w[1] = RECORD_BYTES as u64; // CRC (high half) filled in below
        w[2] = self.seq;
        w[3] = u64::from(self.done) | u64::from(self.attaches) << 32;
        w[4] = u64::from(self.plan_crc) | u64::from(self.plan_words) << 32;
        w[5..9].copy_from_slice(&self.lps);
        w[9..13].copy_from_slice(&self.packages);
        w[13..SLOT_USED].copy_from_slice(&self.tdmr_end);
        w[1] |= u64::from(crc_words(&w)) << 32;
        w
    }

    fn decode(w: &[u64; SLOT_WORDS]) -> Marks {
        let mut m = Marks {
            seq: w[2],
            done: w[3] as u16,
            attaches: (w[3] >> 32) as u32,
            plan_crc: w[4] as u32,
            plan_words: (w[4] >> 32) as u32,
            ..Marks::default()
        };
        m.lps.copy_from_slice(&w[5..9]);
        m.packages.copy_from_slice(&w[9..13]);
        m.tdmr_end.copy_from_slice(&w[13..SLOT_USED]);
        m
    }
}

/// CRC-32 over words in little-endian byte order, the CRC half of word 1 read as zero.
fn crc_words(words: &[u64]) -> u32 {
    let mut c = Crc32::new();
    for (i, w) in words.iter().enumerate() {
        let w = if i == 1 { w & 0xFFFF_FFFF } else { *w };
        c.update(&w.to_le_bytes());
    }
    c.value()
}

/// Checks a part's header words: `Ok(false)` for a never-written part (magic word 0).
fn check_header(part: u8, w0: u64, w1: u64, magic: u32) -> Result<bool, RecordError> {
    if w0 == 0 {
        return Ok(false);
    }
    if w0 as u32 != magic {
        return Err(RecordError::Magic { part, found: w0 });
    }
    let version = (w0 >> 32) as u16;
    if version != RECORD_VERSION || w0 >> 48 != 0 {
        return Err(RecordError::Version {
            part,
            found: version,
        });
    }
    if w1 as u32 != RECORD_BYTES as u32 {
        return Err(RecordError::Layout {
            part,
            found: w1 as u32,
        });
    }
    Ok(true)
}

/// What [`Record::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Nothing recorded: the first instance of this boot (or one that died before its first
    /// record).
    Empty,
    /// Marks from an earlier instance.
    Found,
}

/// The facts and plan of the plan block, plus what identifies the TDMR_INFO handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PlanFacts {
    /// Usable physical-address width the plan was made for.
    pub pa_bits: u8,
    /// The TDMR_INFO buffer (PA array at its base).
    pub buffer: PhysRange,
    /// CRC-32 of the platform inputs the plan was made from ([`platform_digest`]).
    pub platform: u32,
    /// CRC-32 of the bytes handed to SYS.CONFIG: the PA array, then each TDMR_INFO.
    pub tdmr_info: u32,
}

/// The bring-up record over durable memory (or over nothing: marks kept in memory only).
pub struct Record<'d> {
    mem: Option<&'d mut dyn Durable>,
    marks: Marks,
}

impl core::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Record")
            .field("durable", &self.mem.is_some())
            .field("marks", &self.marks)
            .finish()
    }
}

impl<'d> Record<'d> {
    /// A record that keeps marks in memory only (a bring-up that cannot survive a restart).
    #[must_use]
    pub fn volatile() -> Record<'d> {
        Record {
            mem: None,
            marks: Marks::default(),
        }
    }

    /// Reads the newer valid slot of `mem`, checks the plan block it commits, and counts this
    /// instance as a re-attach when something was recorded.
    ///
    /// # Errors
    /// A slot or the committed plan block that fails a check; or too little memory.
    pub fn open(mem: &'d mut dyn Durable) -> Result<(Record<'d>, Opened), RecordError> {
        if mem.word_count() < RECORD_WORDS {
            return Err(RecordError::TooSmall {
                words: mem.word_count(),
            });
        }
        let mut best: Option<Marks> = None;
        for part in 0..2u8 {
            let base = usize::from(part) * SLOT_WORDS;
            let mut w = [0u64; SLOT_WORDS];
            for (i, x) in w.iter_mut().enumerate() {
                *x = mem.load(base + i);
            }
            if !check_header(part, w[0], w[1], SLOT_MAGIC)? {
                continue;
            }
            if (w[1] >> 32) as u32 != crc_words(&w) || w[SLOT_USED..].iter().any(|&x| x != 0) {
                return Err(RecordError::Crc { part });
            }
            let m = Marks::decode(&w);
            if best.as_ref().is_none_or(|b| m.seq > b.seq) {
                best = Some(m);
            }
        }
        let Some(marks) = best else {
            let rec = Record {
                mem: Some(mem),
                marks: Marks::default(),
            };
            return Ok((rec, Opened::Empty));
        };
        let mut rec = Record {
            mem: Some(mem),
            marks,
        };
        if rec.marks.is_done(InitStep::Plan) {
            rec.check_plan_block()?;
        }
        rec.update(|m| m.attaches = m.attaches.saturating_add(1));
        Ok((rec, Opened::Found))
    }

    /// The record over `mem` as this instance last wrote it (`marks`): for bring-up steps
    /// taken after the record was opened (TDMR.INIT while serving); nothing is read again.
    #[must_use]
    pub fn resume(mem: Option<&'d mut dyn Durable>, marks: Marks) -> Record<'d> {
        Record { mem, marks }
    }

    /// The current marks.
    #[must_use]
    pub fn marks(&self) -> &Marks {
        &self.marks
    }

    /// Whether stores reach durable memory.
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.mem.is_some()
    }

    /// Changes the marks and writes them to the older slot (magic cleared first, set last).
    pub fn update(&mut self, change: impl FnOnce(&mut Marks)) {
        let before = self.marks.clone();
        change(&mut self.marks);
        if self.marks == before {
            return;
        }
        self.marks.seq = self.marks.seq.wrapping_add(1);
        let Some(mem) = self.mem.as_deref_mut() else {
            return;
        };
        let base = (self.marks.seq % 2) as usize * SLOT_WORDS;
        let w = self.marks.encode();
        mem.store(base, 0);
        mem.fence();
        for (i, &x) in w.iter().enumerate().skip(1) {
            mem.store(base + i, x);
        }
        mem.fence();
        mem.store(base, w[0]);
        mem.fence();
    }

    /// Writes the plan block (facts, `plan`, digests), then commits it with a slot that marks
    /// ReadMetadata and Plan done. Call before SYS.CONFIG; never when a plan is committed.
    pub fn commit_plan(&mut self, info: &ModuleInfo, facts: &PlanFacts, plan: &Plan) {
        let base = 2 * SLOT_WORDS;
        if let Some(mem) = self.mem.as_deref_mut() {
            mem.store(base, 0);
            mem.fence();
        }
        let mut body = BodyWriter {
            mem: self.mem.as_deref_mut(),
            at: 2 * SLOT_WORDS + PLAN_HEADER,
            crc: Crc32::new(),
            words: 0,
        };
        encode_body(&mut body, info, facts, plan);
        let (crc, words) = (body.crc.value(), body.words);
        if let Some(mem) = self.mem.as_deref_mut() {
            let w1 = RECORD_BYTES as u64 | u64::from(crc) << 32;
            mem.store(base + 1, w1);
            mem.store(base + 2, words as u64);
            mem.fence();
            mem.store(
                base,
                u64::from(PLAN_MAGIC) | u64::from(RECORD_VERSION) << 32,
            );
            mem.fence();
        }
        self.update(|m| {
            m.plan_crc = crc;
            m.plan_words = words as u32;
            m.done |= 1 << InitStep::ReadMetadata as u16 | 1 << InitStep::Plan as u16;
        });
    }

    /// Un-commits the plan after SYS.CONFIG refused it for good: the module never took it.
    pub fn retract_plan(&mut self) {
        self.update(|m| {
            m.done &= !(1 << InitStep::Plan as u16 | 1 << InitStep::ReadMetadata as u16);
            m.plan_crc = 0;
            m.plan_words = 0;
        });
    }

    fn check_plan_block(&self) -> Result<(), RecordError> {
        let Some(mem) = self.mem.as_deref() else {
            return Err(RecordError::PlanBlock);
        };
        let base = 2 * SLOT_WORDS;
        let (w0, w1, n) = (mem.load(base), mem.load(base + 1), mem.load(base + 2));
        if !check_header(2, w0, w1, PLAN_MAGIC)? {
            return Err(RecordError::PlanBlock);
        }
        if n > BODY_MAX as u64 || n != u64::from(self.marks.plan_words) {
            return Err(RecordError::PlanBlock);
        }
        let mut c = Crc32::new();
        for i in 0..n as usize {
            c.update(&mem.load(base + PLAN_HEADER + i).to_le_bytes());
        }
        if c.value() != (w1 >> 32) as u32 {
            return Err(RecordError::Crc { part: 2 });
        }
        if c.value() != self.marks.plan_crc {
            return Err(RecordError::PlanBlock);
        }
        Ok(())
    }

    /// Decodes the committed plan block into `info` (facts read with SYS.RD) and `plan`.
    ///
    /// # Errors
    /// [`RecordError::PlanBlock`] when no plan is committed or its contents are out of range.
    pub fn load_plan(
        &self,
        info: &mut ModuleInfo,
        plan: &mut Plan,
    ) -> Result<PlanFacts, RecordError> {
        if !self.marks.is_done(InitStep::Plan) {
            return Err(RecordError::PlanBlock);
        }
        self.check_plan_block()?;
        let mem = self.mem.as_deref().ok_or(RecordError::PlanBlock)?;
        let mut r = BodyReader {
            mem,
            at: 2 * SLOT_WORDS + PLAN_HEADER,
            end: 2 * SLOT_WORDS + PLAN_HEADER + self.marks.plan_words as usize,
        };
        decode_body(&mut r, info, plan).ok_or(RecordError::PlanBlock)
    }
}

struct BodyWriter<'m, 'd> {
    mem: Option<&'m mut (dyn Durable + 'd)>,
    at: usize,
    crc: Crc32,
    words: usize,
}

impl BodyWriter<'_, '_> {
    fn put(&mut self, w: u64) {
        if let Some(mem) = self.mem.as_deref_mut() {
            mem.store(self.at, w);
        }
        self.crc.update(&w.to_le_bytes());
        self.at += 1;
        self.words += 1;
    }
    fn range(&mut self, r: PhysRange) {
        self.put(r.base().0);
        self.put(r.size().0);
    }
}

struct BodyReader<'m> {
    mem: &'m dyn Durable,
    at: usize,
    end: usize,
}

impl BodyReader<'_> {
    fn get(&mut self) -> Option<u64> {
        (self.at < self.end).then(|| {
            self.at += 1;
            self.mem.load(self.at - 1)
        })
    }
    fn range(&mut self) -> Option<PhysRange> {
        PhysRange::new(self.get()?, self.get()?)
    }
    fn count(&mut self, max: usize) -> Option<usize> {
        usize::try_from(self.get()?).ok().filter(|&n| n <= max)
    }
}

fn encode_body(b: &mut BodyWriter<'_, '_>, info: &ModuleInfo, f: &PlanFacts, plan: &Plan) {
    let v = |x: u16, s: u32| u64::from(x) << s;
    b.put(v(info.major, 0) | v(info.minor, 16) | v(info.update, 32) | v(info.build_num, 48));
    b.put(info.features0);
    let l = info.limits.unwrap_or(Limits::TDX_1_5);
    b.put(u64::from(info.limits.is_some()));
    b.put(v(l.max_tdmrs, 0) | v(l.max_reserved_per_tdmr, 16));
    let [e4, e2, e1] = l.pamt_entry_size;
    b.put(v(e4, 0) | v(e2, 16) | v(e1, 32));
    b.put(u64::from(info.keyids.nr_mktme) | u64::from(info.keyids.nr_tdx) << 32);
    b.put(v(info.global_keyid, 0) | u64::from(f.pa_bits) << 16);
    b.range(f.buffer);
    b.put(u64::from(f.platform));
    b.put(u64::from(f.tdmr_info));
    b.put(0); // reserved
    b.put(info.cmrs.len() as u64);
    for c in &info.cmrs {
        b.range(*c);
    }
    b.put(plan.pamt_bytes.0);
    b.put(plan.tdmrs.len() as u64);
    for t in &plan.tdmrs {
        b.put(t.base.0);
        b.put(t.size.0);
        b.put(u64::from(t.node));
        for p in &t.pamt {
            b.range(*p);
        }
        b.put(t.reserved.len() as u64);
        for a in &t.reserved {
            b.put(a.offset.0);
            b.put(a.size.0);
        }
    }
    b.put(plan.pamt_blocks.len() as u64);
    for p in &plan.pamt_blocks {
        b.put(u64::from(p.node));
        b.range(p.range);
    }
}

fn decode_body(
    r: &mut BodyReader<'_>,
    info: &mut ModuleInfo,
    plan: &mut Plan,
) -> Option<PlanFacts> {
    let u16s = |w: u64| {
        [
            w as u16,
            (w >> 16) as u16,
            (w >> 32) as u16,
            (w >> 48) as u16,
        ]
    };
    let [major, minor, update, build_num] = u16s(r.get()?);
    let features0 = r.get()?;
    let has_limits = r.get()? != 0;
    let [max_tdmrs, max_reserved_per_tdmr, ..] = u16s(r.get()?);
    let [e4, e2, e1, _] = u16s(r.get()?);
    let k = r.get()?;
    let g = r.get()?;
    let mut f = PlanFacts {
        pa_bits: (g >> 16) as u8,
        buffer: r.range()?,
        ..PlanFacts::default()
    };
    f.platform = r.get()? as u32;
    f.tdmr_info = r.get()? as u32;
    r.get()?;
    let mut cmrs = Vec::new();
    for _ in 0..r.count(MAX_CMRS)? {
        cmrs.push(r.range()?).ok()?;
    }
    *info = ModuleInfo {
        major,
        minor,
        update,
        build_num,
        features0,
        limits: has_limits.then_some(Limits {
            max_tdmrs,
            max_reserved_per_tdmr,
            pamt_entry_size: [e4, e2, e1],
        }),
        cmrs,
        keyids: KeyIdPartition {
            nr_mktme: k as u32,
            nr_tdx: (k >> 32) as u32,
        },
        global_keyid: g as u16,
    };
    *plan = Plan::default();
    plan.pamt_bytes = ByteLen(r.get()?);
    for _ in 0..r.count(MAX_TDMRS)? {
        let mut t = Tdmr {
            base: PhysAddr(r.get()?),
            size: ByteLen(r.get()?),
            node: u16::try_from(r.get()?).ok()?,
            ..Tdmr::default()
        };
        for p in &mut t.pamt {
            *p = r.range()?;
        }
        for _ in 0..r.count(MAX_RESERVED_PER_TDMR)? {
            let a = ReservedArea {
                offset: ByteLen(r.get()?),
                size: ByteLen(r.get()?),
            };
            t.reserved.push(a).ok()?;
        }
        plan.tdmrs.push(t).ok()?;
    }
    for _ in 0..r.count(MAX_PAMT_BLOCKS)? {
        let node = u16::try_from(r.get()?).ok()?;
        let range = r.range()?;
        plan.pamt_blocks.push(PamtBlock { node, range }).ok()?;
    }
    (r.at == r.end).then_some(f)
}

/// CRC-32 of what the plan is made from besides the module's facts: online and boot-offline
/// RAM and the image ranges (with nodes). The same boot gives the same value; a restart that
/// sees another platform must not reuse the plan.
#[must_use]
pub fn platform_digest(p: &crate::seam::PlatformView<'_>) -> u32 {
    let mut c = Crc32::new();
    for list in [p.ram, p.boot_offline] {
        c.update(&(list.len() as u64).to_le_bytes());
        for m in list {
            c.update(&m.range.base().0.to_le_bytes());
            c.update(&m.range.size().0.to_le_bytes());
            c.update(&m.node.to_le_bytes());
        }
    }
    c.update(&(p.image.len() as u64).to_le_bytes());
    for r in p.image {
        c.update(&r.base().0.to_le_bytes());
        c.update(&r.size().0.to_le_bytes());
    }
    c.value()
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
