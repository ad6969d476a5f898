//! The ledger: everything tdx-host must not forget across its own restart (pools and their
//! classes, the allocator's free and quarantine bitmaps, every record with its owner and request
//! tag, the clients' last requests, a pending hot-plug step, the counters), kept in durable
//! memory (a `.durable` static the kernel keeps across the task's restart) so that a crash at
//! any instruction leaves a state the next instance recovers exactly.
//!
//! Version 2 adds the TD table (`crate::td`: guest KeyIDs, TDs, the pages TDs hold) as a
//! section of its own, committed with every operation like the rest.
//! Version 3 changes [`mix`], the page checksum's per-word term, so that two changed words
//! on a page cannot cancel.
//! Version 4 adds the change log (below) and the header's `LOG_DONE`.
//! Version 5 changes the change-log record's checksum to one multiply chain over its words
//! ([`record_sum`]) in place of a sum of [`mix`] terms (a one-frame commit's cost).
//! Version 6 stores no pool's `in_use`: restore counts it from the pool's free bits, so a
//! one-frame allocation commits its bitmap word and its record, and no pool word.
//! Version 7 keeps a digest of a client's last request's arguments in the top 24 bits of its
//! slot's second word (they had to be zero before), so only the same request is a retry.
//!
//! Pattern: a **shadow image with a redo journal**. The working state stays where it is (the
//! allocator's tables in ordinary memory); the durable storage holds a word image of it plus a
//! journal. Every mutating operation ends with one commit of the words it changed:
//! 1. the allocator reports what it touched ([`crate::frames::Dirty`]: bitmap chunks, pools, a
//!    record range); [`Ledger::put`] compares each such word with the image and appends only
//!    the ones that differ to the journal (extents of consecutive words), together with the
//!    new checksums of the pages they fall in;
//! 2. the journal's length and checksum are written, then — one aligned 8-byte store, after a
//!    compiler fence — its commit word (the sequence number). That store is the commit point;
//! 3. the journal is applied to the image (plain copies), then the commit word is cleared.
//!
//! **Change log.** A commit of at most [`LOG_MAX_WORDS`] changed words (a one-frame allocation
//! or free) skips the journal and the checksum table: its entries (index, old, new) are
//! appended to the log as one record — entry count, entries, checksum, and last, after a
//! compiler fence, its number, the commit point — and then written into the image. The
//! record's checksum is a chain, h ← xorshift(h ⊕ word) × K per word, then [`mix`]: each step
//! is a bijection of the word and of h, so one damaged word always changes it, and the
//! xor-shift before the multiply keeps a difference in any bit (also bit 63, which a multiply
//! alone passes on unchanged) from crossing a step unchanged, so damage to two words does not
//! cancel by construction. Records
//! are numbered on from the header's `LOG_DONE`, from the log's start; a slot still holding an
//! older record's number does not count. The log starts over without being cleared, so the
//! word after the newest record may be a stale entry word holding any image value, the next
//! number too: each record clears the word after it before its commit point, so the word
//! where recovery looks for the next record holds 0 or an older number. The page checksums then lag the image by the log's
//! deltas (mix(new) − mix(old) per entry); the next journal commit — a larger operation, a
//! full log, or [`Ledger::settle`], which the server runs after each timer tick, off the
//! callers' path — adds them to the table and sets `LOG_DONE` to the last record, in the same
//! atomic commit, and the log starts over.
//!
//! Recovery ([`Ledger::open`]) re-applies a journal whose commit word is set and whose checksum
//! matches (copying the same words again is idempotent, so a crash during step 3 or during
//! recovery itself is harmless) and ignores one without a commit word (a crash in step 1 or 2:
//! the image is the state before the operation). Then it checks the log's records (a record
//! with the next number but a wrong checksum or shape was committed and damaged: refused) and
//! writes the last one's words again (only the last can be half written; each of its words
//! must hold its old or its new value). So the image always equals the state before or after
//! the last operation, never a mix.
//!
//! Integrity: the image is a header (magic, version, a hash of the layout, its size, the
//! commit sequence), the sections, and a table of one checksum per 4 KiB page, with a checksum
//! of the table itself. A page checksum is a position-keyed sum, Σ mix(word, index), where mix
//! is a bijection of the word for each index: any change of one word (so of any byte) changes
//! it, and a commit updates it in O(1) per changed word (a CRC would have to re-read the
//! page). Recovery verifies every page (against its stored checksum plus the pending log
//! deltas) and names the first bad one and its section
//! ([`LedgerError`]); then the restored state is checked for consistency
//! ([`crate::frames::RestoreError`]). A ledger that fails is never re-initialized: the server
//! reports `Failed` with the reason. Only an image whose magic word is exactly zero — never
//! written, as the kernel leaves it at boot — is formatted.
//!
//! Crash model: the task may die at any instruction and every store before its death persists
//! (x86 TSO; compiler fences keep the compiler from reordering the protocol's stores). Tests
//! simulate a death after every single store of a commit ([`Ledger::crash_after`]).

use heapless::Vec;

use crate::frames::{MAX_POOLS, MAX_RECORDS, MAX_TASKS};
use crate::td::TABLE_WORDS;

mod commit;
mod state;

pub use state::{
    format, kind, load, sync, sync_intent, ClientSlot, Intent, LedgerState, COUNTERS, DIGEST_BITS,
};

/// "TDXLEDGR".
pub const MAGIC: u64 = u64::from_le_bytes(*b"TDXLEDGR");
/// Version of the image format.
pub const VERSION: u64 = 7;
/// Words per checksummed page (4 KiB).
pub const PAGE_WORDS: usize = 512;
/// Words of the header section.
pub const HEADER_WORDS: usize = 64;
/// Words per client slot, pool and record.
pub const CLIENT_WORDS: usize = 2;
/// Words per pool.
pub const POOL_WORDS: usize = 5;
/// Words per record.
pub const RECORD_WORDS: usize = 3;
/// Words of the journal's own header: commit word, length, checksum.
const JOURNAL_HEAD: usize = 3;
/// Words of the change log (see the module doc): room for at least a dozen one-frame
/// operations between settles.
pub const LOG_WORDS: usize = 512;
/// Most changed words one operation may log; an operation changing more commits through the
/// journal.
pub const LOG_MAX_WORDS: usize = 12;
/// Words of a log record besides its entries: number (its commit word), entry count, checksum.
const LOG_HEAD: usize = 3;
/// Words per log entry: image index, old value, new value.
const LOG_ENTRY: usize = 3;
/// Most pages whose checksum one commit changes (the default image has 82 pages in all; a
/// commit touching more is refused as `JournalFull`).
const MAX_PAGES: usize = 512;

/// Where each part lives, in words, for an allocator bitmap of `bitmap_words`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bitmap words the image holds.
    pub bitmap_words: usize,
    /// First word of the client slots.
    pub clients: usize,
    /// First word of the pools.
    pub pools: usize,
    /// First word of the records.
    pub records: usize,
    /// First word of the TD table (guest KeyIDs, TDs, TD pages: `crate::td`).
    pub tds: usize,
    /// First word of the bitmap.
    pub bitmap: usize,
    /// Words of checksummed data (whole pages).
    pub data_words: usize,
    /// First word of the page checksum table (one per page, then the table's checksum).
    pub sums: usize,
    /// First word of the change log ([`LOG_WORDS`]).
    pub log: usize,
    /// First word of the journal.
    pub journal: usize,
    /// Words the journal may hold after its header.
    pub journal_words: usize,
}

impl Layout {
    /// The layout for an allocator with `bitmap_words` of bitmap storage.
    #[must_use]
    pub const fn new(bitmap_words: usize) -> Self {
        let clients = HEADER_WORDS;
        let pools = clients + MAX_TASKS * CLIENT_WORDS;
        let records = pools + MAX_POOLS * POOL_WORDS;
        let tds = records + MAX_RECORDS * RECORD_WORDS;
        let bitmap = tds + TABLE_WORDS;
        let data_words = (bitmap + bitmap_words).div_ceil(PAGE_WORDS) * PAGE_WORDS;
        let pages = data_words / PAGE_WORDS;
        let sums = data_words;
        let log = sums + pages + 1;
        let journal = log + LOG_WORDS;
        // Extents merge across a gap of one unchanged word, so the journal never holds more
        // than every word once plus one header: the whole image fits.
        let journal_words = data_words + pages + 2;
        Layout {
            bitmap_words,
            clients,
            pools,
            records,
            tds,
            bitmap,
            data_words,
            sums,
            log,
            journal,
            journal_words,
        }
    }

    /// Pages of checksummed data.
    #[must_use]
    pub const fn pages(&self) -> usize {
        self.data_words / PAGE_WORDS
    }

    /// Words of durable storage the ledger needs.
    #[must_use]
    pub const fn total_words(&self) -> usize {
        self.journal + JOURNAL_HEAD + self.journal_words
    }

    /// The header's layout word: a hash of every capacity that shapes the image.
    #[must_use]
    pub const fn hash(&self) -> u64 {
        let parts = [
            self.bitmap_words as u64,
            MAX_TASKS as u64,
            MAX_POOLS as u64,
            MAX_RECORDS as u64,
            TABLE_WORDS as u64,
            HEADER_WORDS as u64,
            PAGE_WORDS as u64,
        ];
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut i = 0;
        while i < parts.len() {
            h = (h ^ parts[i]).wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        h
    }

    /// The section word `i` of the data belongs to.
    #[must_use]
    pub fn section(&self, i: usize) -> Section {
        if i < self.clients {
            Section::Header
        } else if i < self.pools {
            Section::Clients
        } else if i < self.records {
            Section::Pools
        } else if i < self.tds {
            Section::Records
        } else if i < self.bitmap {
            Section::Tds
        } else if i < self.data_words {
            Section::Bitmap
        } else {
            Section::Checksums
        }
    }
}

/// Header words.
pub(crate) mod hdr {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const LAYOUT: usize = 2;
    pub const WORDS: usize = 3;
    pub const SEQ: usize = 4;
    pub const BITS_USED: usize = 5;
    pub const POOLS: usize = 6;
    pub const RECORDS: usize = 7;
    pub const COUNTERS: usize = 8;
    pub const INTENT: usize = 16;
    /// The number of the last change-log record whose page checksum deltas are in the table
    /// (records up to it are settled; the next valid record is this + 1).
    pub const LOG_DONE: usize = 19;
}

/// A part of the image, as recovery names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Magic, version, layout, sequence, counts, counters, pending hot-plug step.
    Header,
    /// The clients' last requests.
    Clients,
    /// The pool (region) table.
    Pools,
    /// The ownership records.
    Records,
    /// Guest KeyIDs, TDs and the pages TDs hold.
    Tds,
    /// The free and quarantine bitmaps.
    Bitmap,
    /// The page checksum table.
    Checksums,
}

/// Why a ledger was refused. The server then reports `Failed` with [`LedgerError::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// The durable storage is smaller than the layout needs.
    TooSmall,
    /// The magic word is neither the ledger's nor zero.
    BadMagic,
    /// Written by another version of the format.
    BadVersion(u64),
    /// Written for other capacities (the layout hash or size differs).
    BadLayout,
    /// A committed journal's checksum does not match, or an extent lies outside the image.
    BadJournal,
    /// The checksum table's own checksum does not match.
    BadChecksumTable,
    /// The first page whose checksum does not match, and its section.
    BadPage {
        /// Page index (4 KiB pages from the start of the image).
        page: usize,
        /// What the page holds (its first word's section).
        section: Section,
    },
    /// A counter or field out of range (more pools or records than the tables hold, a
    /// memory class or frame size that does not exist).
    BadField(Section),
    /// The stored allocator state is inconsistent.
    Inconsistent(crate::frames::RestoreError),
    /// The stored pools are not the ones the bring-up's plan gives (another plan).
    PlanMismatch,
    /// One change did not fit the journal: the image stays at the state before it, and the
    /// server stops rather than commit anything after a lost change.
    JournalFull,
}

impl LedgerError {
    /// A host status code (class 0xFF, like bring-up's own) naming the reason: the `status`
    /// a client reads in `ModuleStatus` when the state is Failed because of the ledger.
    #[must_use]
    pub fn code(&self) -> u64 {
        const BASE: u64 = 0xFF00_0000_0000_2000;
        let (kind, detail) = match *self {
            LedgerError::TooSmall => (1, 0),
            LedgerError::BadMagic => (2, 0),
            LedgerError::BadVersion(v) => (3, v & 0xFF),
            LedgerError::BadLayout => (4, 0),
            LedgerError::BadJournal => (5, 0),
            LedgerError::BadChecksumTable => (6, 0),
            LedgerError::BadPage { page, .. } => (7, page as u64 & 0xFFFF),
            LedgerError::BadField(s) => (8, s as u64),
            LedgerError::Inconsistent(_) => (9, 0),
            LedgerError::PlanMismatch => (10, 0),
            LedgerError::JournalFull => (11, 0),
        };
        BASE | kind << 16 | detail
    }
}

/// What [`Ledger::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Never written (magic zero): format it from the state built at start.
    Fresh,
    /// A valid image (a committed journal re-applied first when `replayed`).
    Existing {
        /// A committed journal was found and re-applied.
        replayed: bool,
    },
}

/// One word's contribution to its page checksum: a bijection of `w` for each index (so one
/// changed word always changes the sum), and not linear in any bit (so two changed words
/// cancel only by a 2^-64 chance). Multiplying by an odd constant alone keeps bit 0 linear,
/// and the sum's bit 0 is the parity of the words' bit 0s: an allocation's record count and
/// pool `in_use` both going 0 → 1 left the page sum unchanged. The xor-shifts fold the high
/// bits back into the low ones (the finalizer of SplitMix64, whose steps are each invertible).
#[must_use]
pub const fn mix(w: u64, i: usize) -> u64 {
    let mut x =
        (w ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 29)
}

/// The simulated death of the host tests: stores are counted, and those from `limit` on are
/// lost. In service nothing is counted and every store happens.
#[derive(Clone, Copy, Debug)]
struct Deaths {
    stores: u64,
    limit: u64,
}

impl Deaths {
    /// Whether the next store happens (counted in tests).
    #[inline(always)]
    fn store(&mut self) -> bool {
        #[cfg(test)]
        {
            self.stores += 1;
            self.stores <= self.limit
        }
        #[cfg(not(test))]
        true
    }
}

/// The durable image and its journal.
#[derive(Debug)]
pub struct Ledger<'d> {
    words: &'d mut [u64],
    layout: Layout,
    /// Stores made, and where the simulated death is (tests).
    deaths: Deaths,
    /// Journal words written in the open commit (after the journal header).
    jlen: usize,
    /// The journal checksum's sum over the words written so far (Σ mix(word, k + 2)), kept
    /// as they are written so the commit need not read the journal back.
    jsum: u64,
    /// Journal index of the open extent's header, its first image word, and the image index
    /// after its last word (kept here: the durable copy may be lost after a simulated death).
    ext: Option<(usize, usize, usize)>,
    /// Checksum deltas per page touched by the open commit.
    pages: Vec<(u32, u64), MAX_PAGES>,
    /// The open commit's changes (image index, old, new) while they may still go to the log.
    staged: [(usize, u64, u64); LOG_MAX_WORDS],
    /// Changes in `staged`.
    nstaged: usize,
    /// The open commit goes through the journal (too many changes for the log, or a settle).
    spilled: bool,
    /// Log words holding valid records (from the log's start).
    log_end: usize,
    /// The number the next log record gets.
    log_next: u64,
    /// A commit could not be journaled (no room): the image is behind; nothing else commits.
    stuck: bool,
    /// The store count just before the last commit word was written.
    commit_at: Option<u64>,
}

impl<'d> Ledger<'d> {
    /// Opens `words` laid out as `layout`: re-applies a committed journal, then the change
    /// log's records, then checks magic, version, layout and every checksum.
    ///
    /// # Errors
    /// See [`LedgerError`]; nothing was written then except a valid journal's or log's
    /// re-application.
    pub fn open(words: &'d mut [u64], layout: Layout) -> Result<(Self, Opened), LedgerError> {
        if words.len() < layout.total_words() {
            return Err(LedgerError::TooSmall);
        }
        let mut l = Ledger {
            words,
            layout,
            deaths: Deaths {
                stores: 0,
                limit: u64::MAX,
            },
            jlen: 0,
            jsum: 0,
            ext: None,
            pages: Vec::new(),
            staged: [(0, 0, 0); LOG_MAX_WORDS],
            nstaged: 0,
            spilled: false,
            log_end: 0,
            log_next: 1,
            stuck: false,
            commit_at: None,
        };
        let magic = l.words[hdr::MAGIC];
        let replayed = l.replay()?;
        if magic == 0 && !replayed {
            return Ok((l, Opened::Fresh));
        }
        if l.words[hdr::MAGIC] != MAGIC {
            return Err(LedgerError::BadMagic);
        }
        if l.words[hdr::VERSION] != VERSION {
            return Err(LedgerError::BadVersion(l.words[hdr::VERSION]));
        }
        if l.words[hdr::LAYOUT] != layout.hash()
            || l.words[hdr::WORDS] != layout.total_words() as u64
        {
            return Err(LedgerError::BadLayout);
        }
        l.replay_log()?;
        l.verify()?;
        Ok((l, Opened::Existing { replayed }))
    }

    /// The layout.
    #[must_use]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Image word `i`.
    #[must_use]
    pub fn word(&self, i: usize) -> u64 {
        self.words[i]
    }

    /// Commits through the journal since the image was formatted.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.words[hdr::SEQ]
    }

    /// Change-log records not yet settled into the checksum table.
    #[must_use]
    pub fn unsettled(&self) -> u64 {
        self.log_next - 1 - self.words[hdr::LOG_DONE]
    }

    /// Tests: the task dies after `stores` more stores to durable memory (later stores are
    /// lost, as after a real death); `None` lifts the limit.
    pub fn crash_after(&mut self, stores: Option<u64>) {
        let d = &mut self.deaths;
        d.limit = stores.map_or(u64::MAX, |k| d.stores.saturating_add(k));
    }

    /// Stores to durable memory so far, and the count just before the last commit word.
    #[must_use]
    pub fn stores(&self) -> (u64, Option<u64>) {
        (self.deaths.stores, self.commit_at)
    }

    /// Whether a simulated death happened (the limit was reached).
    #[must_use]
    pub fn dead(&self) -> bool {
        self.deaths.stores >= self.deaths.limit
    }

    #[inline]
    fn store(&mut self, i: usize, v: u64) {
        if self.deaths.store() {
            self.words[i] = v;
        }
    }

    /// Page checksum of page `p` computed from the image.
    fn page_sum(&self, p: usize) -> u64 {
        let base = p * PAGE_WORDS;
        let mut s = 0u64;
        for (j, w) in self.words[base..base + PAGE_WORDS].iter().enumerate() {
            s = s.wrapping_add(mix(*w, base + j));
        }
        s
    }

    fn table_sum(&self) -> u64 {
        let t = self.layout.sums;
        let mut s = 0u64;
        for p in 0..self.layout.pages() {
            s = s.wrapping_add(mix(self.words[t + p], t + p));
        }
        s
    }

    /// Checks the table, then every page against its stored checksum plus the deltas of the
    /// log records not yet settled (left in `pages`, cleared again before returning).
    fn verify(&mut self) -> Result<(), LedgerError> {
        let t = self.layout.sums;
        if self.table_sum() != self.words[t + self.layout.pages()] {
            return Err(LedgerError::BadChecksumTable);
        }
        self.pages.clear();
        self.log_deltas();
        let mut bad = None;
        for p in 0..self.layout.pages() {
            let pending = self.pages.iter().find(|e| e.0 as usize == p);
            let want = self.words[t + p].wrapping_add(pending.map_or(0, |e| e.1));
            if self.page_sum(p) != want {
                bad = Some(p);
                break;
            }
        }
        self.pages.clear();
        match bad {
            Some(page) => Err(LedgerError::BadPage {
                page,
                section: self.layout.section(page * PAGE_WORDS),
            }),
            None => Ok(()),
        }
    }

    /// Writes a whole new image: `fill` gives every data word (called in index order), then
    /// the checksums, and the magic word last, so a death before it leaves a never-written
    /// (magic zero) image.
    pub fn format(&mut self, mut fill: impl FnMut(usize) -> u64) {
        let l = self.layout;
        self.store(l.journal, 0);
        // No record in the log counts (the first valid one is number 1).
        self.store(l.log, 0);
        for i in 1..l.data_words {
            let v = match i {
                hdr::VERSION => VERSION,
                hdr::LAYOUT => l.hash(),
                hdr::WORDS => l.total_words() as u64,
                hdr::SEQ | hdr::LOG_DONE => 0,
                _ => fill(i),
            };
            self.store(i, v);
        }
        // The magic word counts in page 0's sum already.
        let mut sums = [0u64; 1];
        for p in 0..l.pages() {
            sums[0] = self.page_sum(p);
            if p == 0 {
                sums[0] = sums[0]
                    .wrapping_sub(mix(self.words[0], 0))
                    .wrapping_add(mix(MAGIC, 0));
            }
            self.store(l.sums + p, sums[0]);
        }
        let table = self.table_sum();
        self.store(l.sums + l.pages(), table);
        self.log_end = 0;
        self.log_next = 1;
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        self.store(hdr::MAGIC, MAGIC);
    }

    /// Re-applies a committed journal; returns whether there was one.
    fn replay(&mut self) -> Result<bool, LedgerError> {
        let j = self.layout.journal;
        let seq = self.words[j];
        if seq == 0 {
            return Ok(false);
        }
        let len = self.words[j + 1];
        if len > self.layout.journal_words as u64 {
            return Err(LedgerError::BadJournal);
        }
        let len = len as usize;
        let body = j + JOURNAL_HEAD;
        let mut chk = mix(seq, 0).wrapping_add(mix(len as u64, 1));
        for k in 0..len {
            chk = chk.wrapping_add(mix(self.words[body + k], k + 2));
        }
        if chk != self.words[j + 2] {
            return Err(LedgerError::BadJournal);
        }
        // Check every extent before copying anything.
        let mut k = 0;
        while k < len {
            let (at, n) = extent(self.words[body + k]);
            if k + 1 + n > len || at + n > self.layout.journal || n == 0 {
                return Err(LedgerError::BadJournal);
            }
            k += 1 + n;
        }
        self.apply(len);
        Ok(true)
    }

    /// Finds the log's valid records (numbered on from the header's `LOG_DONE`, from the log's
    /// start, each with its checksum), checks them all, then finishes writing the last one's
    /// new values into the image. A record whose number is the next one but whose checksum or
    /// shape is wrong was committed and then damaged: refused.
    fn replay_log(&mut self) -> Result<(), LedgerError> {
        let base = self.layout.log;
        let mut expect = self.words[hdr::LOG_DONE].wrapping_add(1);
        let (mut pos, mut last) = (0, None);
        while pos + LOG_HEAD <= LOG_WORDS && self.words[base + pos] == expect {
            let n = self.words[base + pos + 1];
            if n == 0 || n > LOG_MAX_WORDS as u64 {
                return Err(LedgerError::BadJournal);
            }
            let len = LOG_HEAD + n as usize * LOG_ENTRY;
            if pos + len > LOG_WORDS {
                return Err(LedgerError::BadJournal);
            }
            let rec = &self.words[base + pos..base + pos + len];
            if record_sum(rec) != rec[len - 1] {
                return Err(LedgerError::BadJournal);
            }
            for e in rec[2..len - 1].chunks_exact(LOG_ENTRY) {
                if e[0] as usize >= self.layout.data_words {
                    return Err(LedgerError::BadJournal);
                }
            }
            last = Some(pos);
            pos += len;
            expect = expect.wrapping_add(1);
        }
        self.log_end = pos;
        self.log_next = expect;
        let Some(last) = last else {
            return Ok(());
        };
        // Only the last record can be half written into the image (a record's words are
        // written before the next record begins): each of its words holds its old or its new
        // value, anything else is damage. Words of earlier records are left to the page check.
        let n = self.words[base + last + 1] as usize;
        let entries = base + last + 2..base + last + 2 + n * LOG_ENTRY;
        for e in entries.clone().step_by(LOG_ENTRY) {
            let (i, old, new) = (self.words[e] as usize, self.words[e + 1], self.words[e + 2]);
            if self.words[i] != old && self.words[i] != new {
                let page = i / PAGE_WORDS;
                let section = self.layout.section(page * PAGE_WORDS);
                return Err(LedgerError::BadPage { page, section });
            }
        }
        for e in entries.step_by(LOG_ENTRY) {
            let (i, v) = (self.words[e] as usize, self.words[e + 2]);
            self.store(i, v);
        }
        Ok(())
    }

    /// Adds the page checksum deltas of the log's valid records into `pages`.
    fn log_deltas(&mut self) {
        let base = self.layout.log;
        let mut k = 0;
        while k < self.log_end {
            let n = self.words[base + k + 1] as usize;
            for e in 0..n {
                let at = base + k + 2 + e * LOG_ENTRY;
                let i = self.words[at] as usize;
                let (old, new) = (self.words[at + 1], self.words[at + 2]);
                let delta = mix(new, i).wrapping_sub(mix(old, i));
                self.add_delta((i / PAGE_WORDS) as u32, delta);
            }
            k += LOG_HEAD + n * LOG_ENTRY;
        }
    }

    /// Copies the journal's `len` words of extents into the image, then clears the commit.
    fn apply(&mut self, len: usize) {
        let body = self.layout.journal + JOURNAL_HEAD;
        let mut k = 0;
        // After a (simulated) death nothing runs: the journal read back may be stale.
        while k < len && !self.dead() {
            let (at, n) = extent(self.words[body + k]);
            for m in 0..n {
                let v = self.words[body + k + 1 + m];
                self.store(at + m, v);
            }
            k += 1 + n;
        }
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        self.store(self.layout.journal, 0);
    }
}

/// A log record's checksum over its words but the last (the checksum): [`chain`] from 0
/// through each word, then [`mix`] with the record's length (see the module doc).
#[must_use]
fn record_sum(rec: &[u64]) -> u64 {
    let body = &rec[..rec.len().saturating_sub(1)];
    mix(body.iter().fold(0, |h, &w| chain(h, w)), rec.len())
}

/// One step of the log record checksum: a bijection of `w` for each `h` and of `h` for each
/// `w` (xor, an invertible xor-shift, a multiply by an odd constant), four operations where
/// a [`mix`] term costs about ten. Also the step of the client slots' request digest.
#[inline(always)]
#[must_use]
pub(crate) const fn chain(h: u64, w: u64) -> u64 {
    let x = h ^ w;
    (x ^ (x >> 29)).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// An extent header: (first image word, words).
fn extent(h: u64) -> (usize, usize) {
    ((h & 0xFFFF_FFFF) as usize, (h >> 32) as usize)
}

#[cfg(test)]
mod tests;
