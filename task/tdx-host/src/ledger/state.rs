//! What the ledger stores besides the allocator, and the mapping between the working state and
//! the image's words: [`sync`] commits what changed, [`format`] writes a first image, [`load`]
//! rebuilds the working state from an image that [`super::Ledger::open`] accepted.
//!
//! What changed is marked where it changes: the allocator's [`crate::frames::Dirty`], the
//! client slots set ([`LedgerState::set_client`]), the counters set
//! ([`LedgerState::set_counters`]: the only way to change them, so a change cannot go
//! unmarked), the TD table's unsynced flag; the pending hot-plug step is compared always.
//!
//! Word encodings (little-endian u64 words):
//! - pool: base, size, node | class << 16 | online << 24, first bit, in use, retired;
//! - record: owner | tag << 32, base, size | count << 8;
//! - client slot: owner | request << 32, kind | count << 8;
//! - TD table: [`TdTable::word`] (retired KeyIDs, id serial, KeyID range, TD records, TD pages);
//! - header: bits used, pool count, record count, [`COUNTERS`] counters, the pending hot-plug
//!   step (kind | node << 16, base, size).

use tdx_host_api::{FrameSize, MemClass};
use tdx_planner::addr::PhysRange;

use super::{hdr, Layout, Ledger, LedgerError, Section, CLIENT_WORDS, POOL_WORDS, RECORD_WORDS};
use crate::frames::MAX_TASKS;
use crate::frames::{FrameAllocator, Owner, Pool, PoolImage, Record, MAX_POOLS, MAX_RECORDS};
use crate::td::{TdTable, TABLE_WORDS};

/// Counters kept in the header (the server's `ServerStats` totals; see `server::service`).
pub const COUNTERS: usize = 8;

/// A client's last committed request that had an effect, by task index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientSlot {
    /// The client (index and generation) that made it.
    pub owner: u32,
    /// Its request identity (never 0 for a stored request).
    pub request: u32,
    /// 1: an allocation, 2: a free.
    pub kind: u8,
    /// Frames allocated or freed.
    pub count: u32,
    /// A digest of the request's arguments ([`DIGEST_BITS`] bits): the same identity with
    /// other arguments is not a retry of this request.
    pub digest: u32,
}

/// Bits of [`ClientSlot::digest`]: what the slot's second word has left after the kind and
/// the count.
pub const DIGEST_BITS: u32 = 24;

/// Request kinds in [`ClientSlot::kind`].
pub mod kind {
    /// An allocation.
    pub const ALLOC: u8 = 1;
    /// A free.
    pub const FREE: u8 = 2;
}

/// A hot-plug step that involves the kernel's table and is not yet finished: recovery undoes
/// the kernel's half (the ledger's half was never committed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Intent {
    /// Nothing pending.
    #[default]
    None,
    /// The kernel is (perhaps) being asked to online this range.
    Online(PhysRange),
    /// The kernel is (perhaps) being asked to offline this range.
    Offline(PhysRange),
}

/// The ledger's state besides the allocator, with what changed since the last commit.
#[derive(Clone, Debug)]
pub struct LedgerState {
    /// Counters (see [`COUNTERS`]); changed only through [`Self::set_counters`], which marks
    /// them for the next commit.
    counters: [u64; COUNTERS],
    /// Client slots by task index.
    pub clients: [ClientSlot; MAX_TASKS],
    /// The pending hot-plug step.
    pub intent: Intent,
    /// Guest KeyIDs, TDs and TD pages (committed whole: `put` journals only changed words).
    pub tds: TdTable,
    dirty_clients: u64,
    /// The counters changed since the last commit (most requests change none: they are not
    /// compared then).
    dirty_counters: bool,
}

impl Default for LedgerState {
    fn default() -> Self {
        LedgerState {
            counters: [0; COUNTERS],
            clients: [ClientSlot::default(); MAX_TASKS],
            intent: Intent::None,
            tds: TdTable::default(),
            dirty_clients: 0,
            dirty_counters: false,
        }
    }
}

const _: () = assert!(MAX_TASKS <= 64, "client slots fit the u64 dirty mask");

impl LedgerState {
    /// Client slot `index` now records `slot`.
    pub fn set_client(&mut self, index: u16, slot: ClientSlot) {
        if let Some(s) = self.clients.get_mut(usize::from(index)) {
            *s = slot;
            self.dirty_clients |= 1 << index;
        }
    }

    /// Forgets which slots and counters changed (they were committed).
    pub fn clean(&mut self) {
        self.dirty_clients = 0;
        self.dirty_counters = false;
    }

    /// The counters (see [`COUNTERS`]).
    #[must_use]
    pub fn counters(&self) -> [u64; COUNTERS] {
        self.counters
    }

    /// The counters are now `c`: marked, so the next [`sync`] compares them with the image.
    pub fn set_counters(&mut self, c: [u64; COUNTERS]) {
        self.counters = c;
        self.dirty_counters = true;
    }

    /// Nothing of this state waits for a commit: no counter, client slot, hot-plug step or TD
    /// table change (a one-frame request's state).
    #[must_use]
    fn quiet(&self) -> bool {
        !self.dirty_counters
            && self.dirty_clients == 0
            && self.intent == Intent::None
            && !self.tds.unsynced()
    }

    /// Client slot `index`.
    #[must_use]
    pub fn client(&self, index: u16) -> Option<ClientSlot> {
        self.clients.get(usize::from(index)).copied()
    }
}

/// A pool's one frame-count word (`retired`) in [`pool_words`]. `in_use` is not stored: it
/// is the pool's frames less its free bits, counted again at restore (format 6), so taking
/// and releasing frames write no pool word.
const POOL_RETIRED: usize = 4;

fn pool_words(p: &PoolImage) -> [u64; POOL_WORDS] {
    let q = &p.pool;
    let flags = u64::from(q.node) | (q.class as u64) << 16 | u64::from(q.online) << 24;
    [q.range.base().0, q.range.size().0, flags, p.bit, q.retired]
}

fn record_words(r: &Record) -> [u64; RECORD_WORDS] {
    [
        u64::from(r.owner.0) | u64::from(r.tag) << 32,
        r.base,
        r.size as u64 | u64::from(r.count) << 8,
    ]
}

fn client_words(c: &ClientSlot) -> [u64; CLIENT_WORDS] {
    [
        u64::from(c.owner) | u64::from(c.request) << 32,
        u64::from(c.kind)
            | u64::from(c.count) << 8
            | u64::from(c.digest & ((1 << DIGEST_BITS) - 1)) << 40,
    ]
}

fn intent_words(i: Intent) -> [u64; 3] {
    match i {
        Intent::None => [0; 3],
        Intent::Online(r) => [1, r.base().0, r.size().0],
        Intent::Offline(r) => [2, r.base().0, r.size().0],
    }
}

/// The header's words that change with the working state lie between `hdr::BITS_USED` and
/// the end of the pending hot-plug step, the counters before it.
const _: () = assert!(hdr::COUNTERS + COUNTERS <= hdr::INTENT && hdr::BITS_USED < hdr::POOLS);

/// The working state's value of data word `i` (the header's fixed words excepted).
fn word_of(lay: Layout, f: &FrameAllocator<'_>, s: &LedgerState, i: usize) -> u64 {
    match lay.section(i) {
        Section::Header => match i {
            hdr::BITS_USED => f.bits_used(),
            hdr::POOLS => f.pools().len() as u64,
            hdr::RECORDS => f.records().len() as u64,
            c if (hdr::COUNTERS..hdr::COUNTERS + COUNTERS).contains(&c) => {
                s.counters[c - hdr::COUNTERS]
            }
            t if (hdr::INTENT..hdr::INTENT + 3).contains(&t) => {
                intent_words(s.intent)[t - hdr::INTENT]
            }
            _ => 0,
        },
        Section::Clients => {
            let k = (i - lay.clients) / CLIENT_WORDS;
            client_words(&s.clients[k])[(i - lay.clients) % CLIENT_WORDS]
        }
        Section::Pools => {
            let k = (i - lay.pools) / POOL_WORDS;
            f.pool_image(k)
                .map_or(0, |p| pool_words(&p)[(i - lay.pools) % POOL_WORDS])
        }
        Section::Records => {
            let k = (i - lay.records) / RECORD_WORDS;
            f.records()
                .get(k)
                .map_or(0, |r| record_words(r)[(i - lay.records) % RECORD_WORDS])
        }
        Section::Tds => s.tds.word(i - lay.tds),
        Section::Bitmap => f.bitmap().get(i - lay.bitmap).copied().unwrap_or(0),
        Section::Checksums => 0,
    }
}

/// Writes a first image of the working state (see [`Ledger::format`]) and forgets what was
/// dirty.
pub fn format(l: &mut Ledger<'_>, f: &mut FrameAllocator<'_>, s: &mut LedgerState) {
    let lay = l.layout();
    l.format(|i| word_of(lay, f, s, i));
    f.clean();
    s.clean();
}

/// Commits what changed in `f` and `s` since the last commit (one journal commit; see the
/// module doc of `ledger`). Returns false if the ledger could not take it (journal full). The
/// caller then forgets what was dirty ([`FrameAllocator::clean`], [`LedgerState::clean`]).
pub fn sync(l: &mut Ledger<'_>, f: &FrameAllocator<'_>, s: &LedgerState) -> bool {
    let d = f.dirty();
    // A one-frame request: exact bitmap words and perhaps records, nothing else (no stored
    // hot-plug step to clear either).
    if let Some(ranges) = d.exact_ranges() {
        if d.pools() | d.retired_pools() == 0 && s.quiet() && l.word(hdr::INTENT) == 0 {
            return sync_small(l, f, ranges);
        }
    }
    // Only the section starts this commit needs (not a copy of the whole layout).
    let (clients, pools_at) = (l.layout.clients, l.layout.pools);
    let (tds, bitmap, bitmap_words) = (l.layout.tds, l.layout.bitmap, l.layout.bitmap_words);
    l.begin();
    // The header's changing words, put where they are (no array of them built first). The
    // bitmap's extent and the pool count change only with a new pool (a whole pool mark), the
    // record count only with a marked record range (an insertion or a removal marks its slot).
    if d.pools() != 0 {
        l.put(hdr::BITS_USED, f.bits_used());
        l.put(hdr::POOLS, f.pools().len() as u64);
    }
    // Counters only when set since the last commit (a refusal, a scrub step, a restart).
    if s.dirty_counters {
        l.put_words(hdr::COUNTERS, &s.counters);
    }
    // No step pending and none stored (a stored kind word of 0 means none, whatever follows
    // it): nothing to compare.
    if s.intent != Intent::None || l.word(hdr::INTENT) != 0 {
        l.put_words(hdr::INTENT, &intent_words(s.intent));
    }
    let mut mask = s.dirty_clients;
    while mask != 0 {
        let k = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        l.put_words(clients + k * CLIENT_WORDS, &client_words(&s.clients[k]));
    }
    if s.tds.take_unsynced() {
        for k in 0..TABLE_WORDS {
            l.put(tds + k, s.tds.word(k));
        }
    }
    let mut pools = d.pools();
    while pools != 0 {
        let k = pools.trailing_zeros() as usize;
        pools &= pools - 1;
        if let Some(p) = f.pool_image(k) {
            l.put_words(pools_at + k * POOL_WORDS, &pool_words(&p));
        }
    }
    // Pools whose retired count alone changed (a retire): that word.
    let mut retired = d.retired_pools();
    while retired != 0 {
        let k = retired.trailing_zeros() as usize;
        retired &= retired - 1;
        if let Some(p) = f.pools().get(k) {
            l.put(pools_at + k * POOL_WORDS + POOL_RETIRED, p.retired);
        }
    }
    put_records(l, f);
    if let Some(ranges) = d.exact_ranges() {
        put_exact_bits(l, f, ranges);
    } else {
        let bits = f.bitmap();
        let words = bitmap_words.min(bits.len());
        d.for_each_chunk(words as u64, |first, n| {
            let (first, n) = (first as usize, n as usize);
            l.put_run(bitmap + first, &bits[first..first + n]);
        });
    }
    l.commit()
}

/// [`sync`] of a request that changed only allocator words it reported exactly: a few bitmap
/// words (`ranges`) and perhaps a record range (a one-frame allocation or free). The same
/// words in the same order as the general path, without its sections' checks.
#[inline(always)]
fn sync_small(l: &mut Ledger<'_>, f: &FrameAllocator<'_>, ranges: &[(u64, u64)]) -> bool {
    l.begin();
    put_records(l, f);
    put_exact_bits(l, f, ranges);
    l.commit()
}

/// The marked record range: the record count and the marked slots still in the table (slots
/// past its end, records dropped from it, are not stored).
#[inline(always)]
fn put_records(l: &mut Ledger<'_>, f: &FrameAllocator<'_>) {
    if let Some((lo, hi)) = f.dirty().record_range() {
        let records = f.records();
        let at = l.layout.records;
        l.put_small(hdr::RECORDS, records.len() as u64);
        let marked = records.get(lo..hi.min(records.len())).unwrap_or(&[]);
        for (k, r) in marked.iter().enumerate() {
            l.put_words(at + (lo + k) * RECORD_WORDS, &record_words(r));
        }
    }
}

/// The bitmap words of the exact ranges written (a one-frame request's free or quarantine
/// bit's word): no chunk walk.
#[inline(always)]
fn put_exact_bits(l: &mut Ledger<'_>, f: &FrameAllocator<'_>, ranges: &[(u64, u64)]) {
    let (bits, at) = (f.bitmap(), l.layout.bitmap);
    let words = l.layout.bitmap_words.min(bits.len());
    for &(a, b) in ranges {
        let (mut w, end) = (a as usize, (b as usize).min(words));
        while w < end {
            l.put_small(at + w, bits[w]);
            w += 1;
        }
    }
}

/// Commits only the pending hot-plug step of `s` (before the kernel is asked; see
/// [`Intent`]). Anything else dirty stays for the operation's own commit.
pub fn sync_intent(l: &mut Ledger<'_>, s: &LedgerState) -> bool {
    l.begin();
    for (j, w) in intent_words(s.intent).into_iter().enumerate() {
        l.put(hdr::INTENT + j, w);
    }
    l.commit()
}

/// Rebuilds the working state from an accepted image: the allocator over `bits` (its stored
/// words copied in) and the rest.
///
/// # Errors
/// `BadField` for counts or codes out of range, `Inconsistent` for an allocator state that
/// breaks its invariants.
pub fn load<'a>(
    l: &Ledger<'_>,
    bits: &'a mut [u64],
) -> Result<(FrameAllocator<'a>, LedgerState), LedgerError> {
    let lay = l.layout();
    let npools = l.word(hdr::POOLS);
    let nrec = l.word(hdr::RECORDS);
    if npools > MAX_POOLS as u64 || nrec > MAX_RECORDS as u64 {
        return Err(LedgerError::BadField(Section::Header));
    }
    if bits.len() < lay.bitmap_words {
        return Err(LedgerError::TooSmall);
    }
    for (w, slot) in bits.iter_mut().enumerate().take(lay.bitmap_words) {
        *slot = l.word(lay.bitmap + w);
    }
    let mut s = LedgerState::default();
    for (c, slot) in s.counters.iter_mut().enumerate() {
        *slot = l.word(hdr::COUNTERS + c);
    }
    let it = [0, 1, 2].map(|j| l.word(hdr::INTENT + j));
    let node_ok = it[0] >> 16 == 0;
    s.intent = match (it[0] & 0xFFFF, node_ok) {
        (0, true) => Intent::None,
        (1, true) => Intent::Online(
            PhysRange::new(it[1], it[2]).ok_or(LedgerError::BadField(Section::Header))?,
        ),
        (2, true) => Intent::Offline(
            PhysRange::new(it[1], it[2]).ok_or(LedgerError::BadField(Section::Header))?,
        ),
        _ => return Err(LedgerError::BadField(Section::Header)),
    };
    for (k, c) in s.clients.iter_mut().enumerate() {
        let a = l.word(lay.clients + k * CLIENT_WORDS);
        let b = l.word(lay.clients + k * CLIENT_WORDS + 1);
        *c = ClientSlot {
            owner: a as u32,
            request: (a >> 32) as u32,
            kind: b as u8,
            count: (b >> 8) as u32,
            digest: (b >> 40) as u32,
        };
        if c.kind > kind::FREE {
            return Err(LedgerError::BadField(Section::Clients));
        }
    }
    s.tds =
        TdTable::from_words(|k| l.word(lay.tds + k)).ok_or(LedgerError::BadField(Section::Tds))?;
    let mut pools = heapless::Vec::<PoolImage, MAX_POOLS>::new();
    for k in 0..npools as usize {
        let w = |j: usize| l.word(lay.pools + k * POOL_WORDS + j);
        let flags = w(2);
        let class = MemClass::try_from((flags >> 16) as u8)
            .map_err(|()| LedgerError::BadField(Section::Pools))?;
        if flags >> 25 != 0 {
            return Err(LedgerError::BadField(Section::Pools));
        }
        let pool = Pool::stored(
            PhysRange::new(w(0), w(1)).ok_or(LedgerError::BadField(Section::Pools))?,
            flags as u16,
            class,
            (flags >> 24) & 1 == 1,
            w(POOL_RETIRED),
        );
        let _ = pools.push(PoolImage { pool, bit: w(3) });
    }
    let mut bad = None;
    let records = (0..nrec as usize).map_while(|k| {
        let w = |j: usize| l.word(lay.records + k * RECORD_WORDS + j);
        let size = FrameSize::try_from(w(2) as u8);
        match size {
            Ok(size) if w(2) >> 40 == 0 => Some(Record {
                owner: Owner(w(0) as u32),
                tag: (w(0) >> 32) as u32,
                base: w(1),
                size,
                count: (w(2) >> 8) as u32,
            }),
            _ => {
                bad = Some(k);
                None
            }
        }
    });
    let f = FrameAllocator::restore(bits, l.word(hdr::BITS_USED), pools, records);
    if bad.is_some() {
        return Err(LedgerError::BadField(Section::Records));
    }
    let f = f.map_err(LedgerError::Inconsistent)?;
    Ok((f, s))
}

#[cfg(test)]
mod tests {
    use tdx_host_api::MemClass;
    use tdx_planner::addr::PhysRange;

    use super::{pool_words, POOL_RETIRED};
    use crate::frames::{Pool, PoolImage};

    /// The word a retire commits for a pool marked only by its retired count is exactly
    /// `retired` (a reordered image would commit another), and `in_use` is in no word.
    #[test]
    fn pool_retired_word_is_retired_and_in_use_is_not_stored() {
        let mut pool = Pool::stored(
            PhysRange::literal(1 << 30, 1 << 30),
            3,
            MemClass::Tdx,
            true,
            0x56,
        );
        pool.in_use = 0x1234;
        let w = pool_words(&PoolImage { pool, bit: 77 });
        assert_eq!(w[POOL_RETIRED], 0x56);
        assert!(!w.contains(&0x1234));
        assert_eq!(w.iter().filter(|&&x| x == 0x56).count(), 1);
    }
}
