//! Crash and corruption tests of the ledger: a seeded random sequence of allocations, frees,
//! scrub steps (release and retire), hot-plug online/offline and client restarts; every
//! operation's commit is cut after each of its stores, recovered from the durable words alone,
//! and the recovered state must be the state before or after the operation (never a mix),
//! satisfy the allocator's invariants, and hold every frame each client believes it owns.

extern crate std;

use std::vec;
use std::vec::Vec;

use tdx_host_api::{FrameSize, MemClass};
use tdx_planner::addr::{PhysAddr, PhysRange, GIB, PAGE_4K};

use super::{format, load, sync, Layout, Ledger, LedgerError, LedgerState, Opened, Section};
use super::{hdr, record_sum, ClientSlot, Intent, PAGE_WORDS};
use crate::frames::{bitmap_words, FrameAllocator, NodeMask, Owner, PoolImage, Record, Request};

const MIB: u64 = 1 << 20;
/// Memory the tests' pools may cover: boot pools at 1 GiB, hot-plug ones at 3 GiB.
const BITMAP: usize = bitmap_words(3 * GIB, 16);

/// Everything the ledger keeps, comparable.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    pools: Vec<PoolImage>,
    records: Vec<Record>,
    bits: Vec<u64>,
    counters: [u64; super::COUNTERS],
    clients: Vec<ClientSlot>,
    intent: Intent,
}

/// Adds `by` to counter `k` (marked for the next commit, as the server's counters are).
fn add_counter(s: &mut LedgerState, k: usize, by: u64) {
    let mut c = s.counters();
    c[k] += by;
    s.set_counters(c);
}

fn snapshot(f: &FrameAllocator<'_>, s: &LedgerState) -> Snapshot {
    let used = f.bits_used().div_ceil(64) as usize;
    Snapshot {
        pools: (0..f.pools().len())
            .filter_map(|k| f.pool_image(k))
            .collect(),
        records: f.records().to_vec(),
        bits: f.bitmap()[..used].to_vec(),
        counters: s.counters(),
        clients: s.clients.to_vec(),
        intent: s.intent,
    }
}

/// Recovers from `words` alone: open, load, snapshot.
fn recover(words: &mut [u64]) -> Result<Snapshot, LedgerError> {
    let layout = Layout::new(BITMAP);
    let (l, opened) = Ledger::open(words, layout)?;
    assert!(matches!(opened, Opened::Existing { .. }), "formatted image");
    let mut bits = vec![0u64; BITMAP];
    let (f, s) = load(&l, &mut bits)?;
    Ok(snapshot(&f, &s))
}

/// A tiny deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn new_words() -> Vec<u64> {
    vec![0u64; Layout::new(BITMAP).total_words()]
}

/// Two boot pools on two nodes (ready), formatted into a fresh ledger.
fn boot<'a>(bits: &'a mut [u64], words: &mut [u64]) -> (FrameAllocator<'a>, LedgerState) {
    let mut f = FrameAllocator::new(bits);
    f.add_pool(PhysRange::literal(GIB, 64 * MIB), 0, MemClass::Tdx, true)
        .expect("pool 0");
    f.add_pool(
        PhysRange::literal(GIB + 64 * MIB, 64 * MIB),
        1,
        MemClass::Tdx,
        true,
    )
    .expect("pool 1");
    f.add_pool(PhysRange::literal(2 * GIB, GIB), 0, MemClass::NonTdx, true)
        .expect("pool 2");
    f.mark_ready(PhysRange::literal(GIB, GIB));
    let mut s = LedgerState::default();
    let (mut l, opened) = Ledger::open(words, Layout::new(BITMAP)).expect("open");
    assert_eq!(opened, Opened::Fresh);
    format(&mut l, &mut f, &mut s);
    (f, s)
}

/// Clients 1 and 2 (task indices), their generation and what each believes it holds.
struct Client {
    owner: Owner,
    holds: Vec<(u64, FrameSize)>,
    next_request: u32,
}

/// A client's new beliefs after an operation: (client, frames allocated or now held).
type Change = (usize, Vec<(u64, FrameSize)>);

/// One random operation on the working state; returns a name for failures.
fn step(
    rng: &mut Rng,
    f: &mut FrameAllocator<'_>,
    s: &mut LedgerState,
    clients: &mut [Client; 2],
) -> (&'static str, Option<Change>) {
    let c = rng.below(2) as usize;
    match rng.below(10) {
        0..=2 => {
            let (size, class) = match rng.below(4) {
                0 => (FrameSize::M2, MemClass::Tdx),
                1 => (FrameSize::G1, MemClass::NonTdx),
                _ => (FrameSize::K4, MemClass::Tdx),
            };
            let n = 1 + rng.below(if size == FrameSize::K4 { 40 } else { 2 }) as usize;
            let req = Request {
                nodes: NodeMask::ALL,
                size,
                class,
            };
            let mut out = vec![PhysAddr(0); n];
            let cl = &mut clients[c];
            cl.next_request += 1;
            let tag = cl.next_request;
            if f.allocate_tagged(cl.owner, req, tag, &mut out).is_ok() {
                s.set_client(
                    cl.owner.index(),
                    ClientSlot {
                        owner: cl.owner.0,
                        request: tag,
                        kind: super::kind::ALLOC,
                        count: n as u32,
                        // All 24 bits set: the digest survives a crash like the rest.
                        digest: 0xFF_FFFF ^ tag,
                    },
                );
                let got = out.iter().map(|a| (a.0, size)).collect();
                return ("alloc", Some((c, got)));
            }
            ("alloc refused", None)
        }
        3..=4 => {
            let cl = &mut clients[c];
            if cl.holds.is_empty() {
                return ("free of nothing", None);
            }
            let size = cl.holds[rng.below(cl.holds.len() as u64) as usize].1;
            let mut list: Vec<PhysAddr> = cl
                .holds
                .iter()
                .filter(|h| h.1 == size)
                .map(|h| PhysAddr(h.0))
                .collect();
            list.truncate(1 + rng.below(list.len() as u64) as usize);
            list.sort_unstable();
            f.free(cl.owner, size, &list).expect("free of held frames");
            add_counter(s, 6, 1);
            let keep = cl
                .holds
                .iter()
                .copied()
                .filter(|h| !list.contains(&PhysAddr(h.0)))
                .collect();
            ("free", Some((c, keep)))
        }
        5..=6 => {
            let mut first = [PhysRange::default(); 1];
            if f.quarantined(&mut first) == 0 {
                return ("scrub of nothing", None);
            }
            let piece = PhysRange::literal(first[0].base().0, first[0].size().0.min(2 * MIB));
            if rng.below(8) == 0 {
                f.retire(piece).expect("retire");
                add_counter(s, 4, piece.size().0);
            } else {
                f.release_scrubbed(piece).expect("release");
                add_counter(s, 0, piece.size().0);
            }
            ("scrub", None)
        }
        7 => {
            // Hot-plug: online a new 16 MiB range at 3 GiB + k, or take an idle one offline,
            // or back online.
            let k = rng.below(4);
            let range = PhysRange::literal(3 * GIB + k * 16 * MIB, 16 * MIB);
            match f.pools().iter().position(|p| p.range == range) {
                None => {
                    f.add_pool(range, 1, MemClass::NonTdx, true).expect("add");
                    ("online (new)", None)
                }
                Some(i) => {
                    let on = f.pools()[i].online;
                    let _ = f.set_online(crate::frames::PoolId(i), !on);
                    ("online/offline", None)
                }
            }
        }
        _ => {
            // The client restarts: a new generation; its old frames are reclaimed.
            let cl = &mut clients[c];
            // Its memory of what it held died with it; the server reclaims the old frames
            // (also at its own start, for a restart it did not see).
            cl.owner = Owner(cl.owner.0 + 0x1_0000);
            cl.next_request = 0;
            cl.holds.clear();
            let got = f.reclaim_stale(cl.owner);
            add_counter(s, 3, got);
            ("client restart", None)
        }
    }
}

/// Every frame each client believes it owns is held by it in `snap`.
fn check_beliefs(snap: &Snapshot, clients: &[Client; 2]) {
    for c in clients {
        for &(pa, size) in &c.holds {
            let r = snap
                .records
                .iter()
                .find(|r| r.base <= pa && pa < r.base + u64::from(r.count) * r.size.bytes());
            let r = r.unwrap_or_else(|| panic!("{pa:#x} believed held but owned by nobody"));
            assert_eq!((r.owner, r.size), (c.owner, size), "{pa:#x}");
        }
    }
}

/// The claim of the module: cut every commit after each store, recover from the durable words
/// alone, and get exactly the state before or after the operation.
#[test]
fn crash_at_every_store_recovers_before_or_after() {
    let seed = 0x005e_ed1e_d9e1_u64;
    let mut rng = Rng(seed);
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (mut f, mut s) = boot(&mut bits, &mut words);
    let mut clients = [1u32, 2].map(|i| Client {
        owner: Owner(i | 1 << 16),
        holds: Vec::new(),
        next_request: 0,
    });
    let (mut cuts, mut ops) = (0u64, 0u64);
    for op in 0..120 {
        let before = recover(&mut words.clone()).expect("valid before");
        assert_eq!(before, snapshot(&f, &s), "op {op}: image = working state");
        let (what, change) = step(&mut rng, &mut f, &mut s, &mut clients);
        let after = snapshot(&f, &s);
        // Where the stores are: every one near the start, around the commit point and at the
        // end, every 11th elsewhere (a 1 GiB change makes thousands).
        let (total, commit_at) = {
            let mut copy = words.clone();
            let (mut l, _) = Ledger::open(&mut copy, Layout::new(BITMAP)).expect("open");
            assert!(sync(&mut l, &f, &s), "journal room");
            l.stores()
        };
        let c = commit_at.unwrap_or(0);
        let near = |k: u64| k < 64 || k + 64 > total || k.abs_diff(c) < 64 || k.is_multiple_of(11);
        for k in (0..=total).filter(|&k| near(k)) {
            let mut copy = words.clone();
            let (mut l, _) = Ledger::open(&mut copy, Layout::new(BITMAP)).expect("open");
            l.crash_after(Some(k));
            assert!(sync(&mut l, &f, &s), "journal room");
            let got = recover(&mut copy)
                .unwrap_or_else(|e| panic!("seed {seed:#x} op {op} ({what}) cut {k}: {e:?}"));
            assert!(
                got == before || got == after,
                "seed {seed:#x} op {op} ({what}): crash after {k} stores gives a mix"
            );
            // A client retrying its request gets the committed answer: what it believes is
            // what the recovered state says.
            if got == after {
                let mut believed: [Vec<(u64, FrameSize)>; 2] =
                    [clients[0].holds.clone(), clients[1].holds.clone()];
                if let Some((c, v)) = &change {
                    if what == "alloc" {
                        believed[*c].extend(v.iter().copied());
                    } else {
                        believed[*c].clone_from(v);
                    }
                }
                let owners = [clients[0].owner, clients[1].owner];
                let view = [0, 1].map(|i| Client {
                    owner: owners[i],
                    holds: believed[i].clone(),
                    next_request: 0,
                });
                check_beliefs(&got, &view);
            } else {
                check_beliefs(&got, &clients);
            }
            cuts += 1;
        }
        // The real commit.
        let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
        assert!(sync(&mut l, &f, &s));
        f.clean();
        s.clean();
        if let Some((c, v)) = change {
            if what == "alloc" {
                clients[c].holds.extend(v);
            } else {
                clients[c].holds = v;
            }
        }
        ops += 1;
    }
    let end = recover(&mut words.clone()).expect("valid at the end");
    check_beliefs(&end, &clients);
    std::println!("seed {seed:#x}: {ops} operations, {cuts} crash points recovered");
}

/// After a crash, the next instance continues from the recovered state: restoring the working
/// state from the image and going on gives the same results as never restarting.
#[test]
fn restored_allocator_continues_like_the_original() {
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (mut f, mut s) = boot(&mut bits, &mut words);
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::K4,
        class: MemClass::Tdx,
    };
    let mut a = [PhysAddr(0); 7];
    f.allocate_tagged(Owner(1), req, 9, &mut a).expect("alloc");
    f.free(Owner(1), FrameSize::K4, &a[2..4]).expect("free");
    let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
    assert!(sync(&mut l, &f, &s));
    f.clean();
    s.clean();
    let mut b1 = [PhysAddr(0); 3];
    f.allocate(Owner(2), req, &mut b1).expect("alloc");
    let mut bits2 = vec![0u64; BITMAP];
    let (l2, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("reopen");
    let (mut g, _) = load(&l2, &mut bits2).expect("load");
    g.mark_ready(PhysRange::literal(GIB, GIB));
    let mut b2 = [PhysAddr(0); 3];
    g.allocate(Owner(2), req, &mut b2)
        .expect("alloc after restore");
    assert_eq!(b1, b2, "first fit from the same state");
    let mut t = [PhysAddr(0); 8];
    assert_eq!(
        g.tagged(Owner(1), 9, &mut t),
        5,
        "the tagged request's frames"
    );
    assert_eq!(g.usage(1), 5 * PAGE_4K);
}

/// Corrupting any one byte of the image is found, and recovery names the part.
#[test]
fn one_corrupt_byte_anywhere_is_named() {
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (mut f, mut s) = boot(&mut bits, &mut words);
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::K4,
        class: MemClass::Tdx,
    };
    let mut a = [PhysAddr(0); 5];
    f.allocate_tagged(Owner(3), req, 1, &mut a).expect("alloc");
    let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
    assert!(sync(&mut l, &f, &s));
    f.clean();
    s.clean();
    let layout = Layout::new(BITMAP);
    // The image: data and checksums (the log and the journal are damaged apart below; their
    // words beyond what is committed hold nothing).
    let bytes = (layout.log) * 8;
    let mut rng = Rng(7);
    let mut named = 0;
    // Every header word, the first bytes of every section, and random bytes everywhere else.
    let mut positions: Vec<usize> = (0..64 * 8).step_by(3).collect();
    for s0 in [
        layout.clients,
        layout.pools,
        layout.records,
        layout.bitmap,
        layout.sums,
    ] {
        positions.push(s0 * 8);
    }
    positions.extend((0..400).map(|_| rng.below(bytes as u64) as usize));
    for pos in positions {
        let mut copy = words.clone();
        let (w, b) = (pos / 8, pos % 8);
        copy[w] ^= 0x5A << (8 * b);
        let e = recover(&mut copy).expect_err("a corrupt byte must be found");
        let expected_ok = match e {
            LedgerError::BadMagic => w == hdr::MAGIC,
            LedgerError::BadVersion(_) => w == hdr::VERSION,
            LedgerError::BadLayout => w == hdr::LAYOUT || w == hdr::WORDS,
            LedgerError::BadChecksumTable => w >= layout.sums,
            LedgerError::BadPage { page, section } => {
                page == w / PAGE_WORDS && section == layout.section(page * PAGE_WORDS)
            }
            _ => false,
        };
        assert!(expected_ok, "byte {pos} (word {w}): {e:?}");
        named += 1;
    }
    assert!(named > 400);
    // The allocation went to the change log as one record: any byte of it damaged is refused.
    let (l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
    assert_eq!(l.unsettled(), 1, "one record in the log");
    drop(l);
    let record = 3 + 3 * words[layout.log + 1] as usize;
    for pos in (layout.log * 8..(layout.log + record) * 8).step_by(5) {
        let mut copy = words.clone();
        copy[pos / 8] ^= 0x5A << (8 * (pos % 8));
        let e = recover(&mut copy).expect_err("a damaged log record must be found");
        let first = pos / 8 == layout.log;
        assert!(
            e == LedgerError::BadJournal || first && matches!(e, LedgerError::BadPage { .. }),
            "log byte {pos}: {e:?}"
        );
    }
    // A committed journal (death right after the commit point) with a corrupt byte is refused:
    // a settle of the log goes through the journal.
    let mut copy = words.clone();
    let (mut l, _) = Ledger::open(&mut copy, Layout::new(BITMAP)).expect("open");
    let mut stores = 0;
    loop {
        let mut probe = words.clone();
        let (mut lp, _) = Ledger::open(&mut probe, Layout::new(BITMAP)).expect("open");
        lp.crash_after(Some(stores));
        lp.settle();
        if probe[layout.journal] != 0 {
            break;
        }
        stores += 1;
    }
    l.crash_after(Some(stores));
    l.settle();
    copy[layout.journal + 3] ^= 1;
    assert_eq!(recover(&mut copy), Err(LedgerError::BadJournal));
    // Another layout is refused, never reinterpreted.
    let mut copy = words.clone();
    let other = Layout::new(BITMAP + PAGE_WORDS);
    let too = copy.len().max(other.total_words());
    copy.resize(too, 0);
    assert_eq!(
        Ledger::open(&mut copy, other).map(|_| ()),
        Err(LedgerError::BadLayout)
    );
}

/// A 1 GiB free is scrubbed in 2 MiB steps; a restart in the middle resumes exactly where the
/// last committed step ended, and the whole gigabyte comes back once.
#[test]
fn restart_during_a_1g_scrub_resumes_it() {
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (mut f, mut s) = boot(&mut bits, &mut words);
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::G1,
        class: MemClass::NonTdx,
    };
    let mut a = [PhysAddr(0); 1];
    f.allocate_tagged(Owner(4), req, 1, &mut a).expect("1 GiB");
    f.free(Owner(4), FrameSize::G1, &a).expect("free");
    let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
    assert!(sync(&mut l, &f, &s), "a 1 GiB free fits the journal");
    f.clean();
    s.clean();
    for _ in 0..100 {
        let mut first = [PhysRange::default(); 1];
        assert_eq!(f.quarantined(&mut first), 1);
        f.release_scrubbed(PhysRange::literal(first[0].base().0, 2 * MIB))
            .expect("step");
        let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
        assert!(sync(&mut l, &f, &s));
        f.clean();
    }
    // Step 101 dies in its commit; the next instance resumes.
    let mut first = [PhysRange::default(); 1];
    f.quarantined(&mut first);
    f.release_scrubbed(PhysRange::literal(first[0].base().0, 2 * MIB))
        .expect("step");
    let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
    l.crash_after(Some(3));
    sync(&mut l, &f, &s);
    let mut bits2 = vec![0u64; BITMAP];
    let (l2, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("recover");
    let (mut g, _) = load(&l2, &mut bits2).expect("load");
    assert_eq!(
        g.quarantined_bytes(),
        GIB - 100 * 2 * MIB,
        "resumes after step 100"
    );
    let mut steps = 0;
    while g.quarantined_bytes() > 0 {
        g.quarantined(&mut first);
        let len = first[0].size().0.min(2 * MIB);
        g.release_scrubbed(PhysRange::literal(first[0].base().0, len))
            .expect("step");
        steps += 1;
    }
    assert_eq!(steps, 512 - 100);
    assert_eq!(g.pools()[2].in_use, 0, "the whole gigabyte is free again");
}

/// A crash between the intent and the kernel's answer leaves the intent in the image; the
/// section it is in is the header, and a fresh image is told apart from a damaged one.
#[test]
fn intent_survives_and_fresh_is_only_all_zero_magic() {
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (f, mut s) = boot(&mut bits, &mut words);
    s.intent = Intent::Online(PhysRange::literal(3 * GIB, 16 * MIB));
    let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
    assert!(sync(&mut l, &f, &s));
    let got = recover(&mut words.clone()).expect("valid");
    assert_eq!(got.intent, s.intent);
    let mut fresh = new_words();
    assert_eq!(
        Ledger::open(&mut fresh, Layout::new(BITMAP)).map(|x| x.1),
        Ok(Opened::Fresh)
    );
    let mut half = new_words();
    half[hdr::SEQ] = 1;
    assert_eq!(
        Ledger::open(&mut half, Layout::new(BITMAP)).map(|x| x.1),
        Ok(Opened::Fresh),
        "never formatted (magic zero): a death during format"
    );
    assert_eq!(Layout::new(BITMAP).section(hdr::INTENT), Section::Header);
}

/// Two changed words on one page never cancel in its checksum: the low bit of every word
/// flipped in pairs over the records' first page (a record's count and a pool's `in_use` both
/// going 0 → 1 is the everyday case that cancelled under a mix linear in the low bit).
#[test]
fn two_changed_words_on_one_page_are_found() {
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (f, s) = boot(&mut bits, &mut words);
    drop((f, s));
    let layout = Layout::new(BITMAP);
    let page = layout.records / PAGE_WORDS;
    let first = page * PAGE_WORDS;
    for i in first..first + 48 {
        for j in i + 1..first + 48 {
            let mut copy = words.clone();
            copy[i] ^= 1;
            copy[j] ^= 1;
            assert!(
                recover(&mut copy).is_err(),
                "flipping bit 0 of words {i} and {j} went unnoticed"
            );
        }
    }
}

/// Cuts `commit` (on a copy of `words` opened afresh) after every one of its stores; each
/// recovery must give `before` or `after`. Returns the store count of the whole commit.
fn cut_everywhere(
    words: &[u64],
    before: &Snapshot,
    after: &Snapshot,
    commit: &dyn Fn(&mut Ledger<'_>) -> bool,
) -> u64 {
    let total = {
        let mut copy = words.to_vec();
        let (mut l, _) = Ledger::open(&mut copy, Layout::new(BITMAP)).expect("open");
        assert!(commit(&mut l));
        l.stores().0
    };
    for k in 0..=total {
        let mut copy = words.to_vec();
        let (mut l, _) = Ledger::open(&mut copy, Layout::new(BITMAP)).expect("open");
        l.crash_after(Some(k));
        commit(&mut l);
        let got = recover(&mut copy).unwrap_or_else(|e| panic!("cut {k}: {e:?}"));
        assert!(&got == before || &got == after, "cut {k} of {total}: a mix");
    }
    total
}

/// One-frame allocations and frees go to the change log, one record each (the same words
/// logged again and again: pool counts, record count, one bitmap word); a cut at any store of
/// a record, of a settle, or of a journal commit that settles the log on the way gives the
/// state before or after, and a damaged word a record changed earlier is still found.
#[test]
fn one_frame_records_and_settles_survive_every_cut() {
    let mut bits = vec![0u64; BITMAP];
    let mut words = new_words();
    let (mut f, s) = boot(&mut bits, &mut words);
    let req = Request {
        nodes: NodeMask::ALL,
        size: FrameSize::K4,
        class: MemClass::Tdx,
    };
    let mut held: Vec<PhysAddr> = Vec::new();
    let mut logged = 0;
    for op in 0..60u32 {
        let before = recover(&mut words.clone()).expect("valid before");
        if op % 3 == 2 {
            let a = held.remove(0);
            f.free(Owner(3), FrameSize::K4, &[a]).expect("free");
        } else {
            let mut a = [PhysAddr(0); 1];
            f.allocate_tagged(Owner(3), req, op, &mut a).expect("alloc");
            held.push(a[0]);
        }
        let after = snapshot(&f, &s);
        let (fr, st) = (&f, &s);
        cut_everywhere(&words, &before, &after, &|l| sync(l, fr, st));
        let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
        assert!(sync(&mut l, &f, &s));
        let unsettled = l.unsettled();
        logged = logged.max(unsettled);
        drop(l);
        f.clean();
        if op % 5 == 4 && unsettled >= 2 {
            // A word an earlier record changed (not the last one's) damaged: found by its page.
            let first = Layout::new(BITMAP).log;
            let i = words[first + 2] as usize;
            let mut copy = words.clone();
            copy[i] ^= 0x5A00;
            assert!(
                matches!(recover(&mut copy), Err(LedgerError::BadPage { page, .. }) if page == i / PAGE_WORDS),
                "op {op}: damage of word {i} unnoticed"
            );
            // The settle, cut everywhere.
            let now = recover(&mut words.clone()).expect("valid");
            cut_everywhere(&words, &now, &now, &|l| l.settle());
            let (mut l, _) = Ledger::open(&mut words, Layout::new(BITMAP)).expect("open");
            assert!(l.settle());
            assert_eq!(l.unsettled(), 0);
        }
    }
    assert!(
        logged >= 4,
        "one-frame operations went to the log ({logged})"
    );
}

/// The log starts over after a settle without being cleared, and records differ in length,
/// so the word right after the newest record can be a stale entry word of the previous round,
/// holding any image value: here the old value 4 of a two-entry record, when the next record's
/// number is 4 too. Recovery must not take it for a committed (and then damaged) record.
#[test]
fn a_stale_log_word_equal_to_the_next_number_is_not_a_record() {
    let layout = Layout::new(BITMAP);
    let mut words = new_words();
    let (a, b) = (hdr::COUNTERS, hdr::COUNTERS + 1);
    {
        let (mut l, _) = Ledger::open(&mut words, layout).expect("open");
        l.format(|_| 0);
        // Record 1, log words 0..6: a 0 -> 4.
        l.begin();
        l.put(a, 4);
        assert!(l.commit());
        // Record 2, log words 6..15; its first entry (a, 4, 5) puts 4 at log word 9.
        l.begin();
        l.put(a, 5);
        l.put(b, 7);
        assert!(l.commit());
        assert!(l.settle());
        // Record 3, log words 0..9, two entries: the next number is 4, and word 9 was 4.
        l.begin();
        l.put(a, 6);
        l.put(b, 8);
        assert!(l.commit());
        assert_eq!(l.unsettled(), 1);
    }
    let (l, _) = Ledger::open(&mut words, layout).expect("a valid image opens");
    assert_eq!((l.word(a), l.word(b)), (6, 8));
}

/// A one-frame request's commit (`sync_small`: only the words it reported exactly) writes
/// the image word for word as the general path does. The second ledger is forced down the
/// general path by marking the counters (unchanged, so they add no word). Requests of three
/// owners interleave, so records are pushed, grown, split, emptied into holes and refilled.
#[test]
fn one_frame_commits_write_what_the_general_path_writes() {
    let (mut bits_a, mut bits_b) = (vec![0u64; BITMAP], vec![0u64; BITMAP]);
    let (mut words_a, mut words_b) = (new_words(), new_words());
    let (mut fa, sa) = boot(&mut bits_a, &mut words_a);
    let (mut fb, mut sb) = boot(&mut bits_b, &mut words_b);
    assert_eq!(words_a, words_b, "the same boot");
    let mut rng = Rng(0x5EED_0F5A_11CE);
    let mut held: Vec<(Owner, PhysAddr)> = Vec::new();
    for op in 0..400u32 {
        let owner = Owner(3 + rng.below(3) as u32);
        if held.is_empty() || rng.below(3) != 0 {
            let req = Request {
                nodes: NodeMask::ALL,
                size: FrameSize::K4,
                class: MemClass::Tdx,
            };
            let (mut a, mut b) = ([PhysAddr(0); 1], [PhysAddr(0); 1]);
            fa.allocate_tagged(owner, req, 0, &mut a).expect("alloc");
            fb.allocate_tagged(owner, req, 0, &mut b).expect("alloc");
            assert_eq!(a, b);
            held.push((owner, a[0]));
        } else {
            let (o, a) = held.remove(rng.below(held.len() as u64) as usize);
            fa.free(o, FrameSize::K4, &[a]).expect("free");
            fb.free(o, FrameSize::K4, &[a]).expect("free");
        }
        if op % 50 == 49 {
            // The scrub's release: not a one-frame commit (both take the general path).
            let mut q = [PhysRange::default(); 64];
            let n = fa.quarantined(&mut q);
            for r in &q[..n] {
                fa.release_scrubbed(*r).expect("release");
                fb.release_scrubbed(*r).expect("release");
            }
        }
        sb.set_counters(sb.counters());
        for (f, s, words) in [(&fa, &sa, &mut words_a), (&fb, &sb, &mut words_b)] {
            let (mut l, _) = Ledger::open(words, Layout::new(BITMAP)).expect("open");
            assert!(sync(&mut l, f, s), "op {op}: committed");
            // Settles at an odd period, so the log's rounds end at every length and leave
            // stale words of every kind behind its newest record.
            if op % 7 == 6 {
                assert!(l.settle());
            }
        }
        fa.clean();
        fb.clean();
        sb.clean();
        assert!(words_a == words_b, "op {op}: the images differ");
        let reopened = recover(&mut words_a.clone());
        assert_eq!(reopened, Ok(snapshot(&fa, &sa)), "op {op}: reopened");
    }
}

/// The change-log record checksum (format 5: a multiply chain, see the module doc) finds one
/// damaged word in any bit, and two damaged words in the patterns a chain of plain multiplies
/// would pass on unchanged (a difference in bit 63 only survives a multiply by an odd constant,
/// so the same flip in the next word would cancel it), in every pair of positions.
#[test]
fn record_checksum_finds_one_and_two_damaged_words() {
    // A record of four entries: number, count, 4 × (index, old, new), checksum.
    let mut rec: Vec<u64> = (0..3 + 3 * 4u64)
        .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k << 40))
        .collect();
    let last = rec.len() - 1;
    rec[last] = record_sum(&rec);
    let good = rec[last];
    for w in 0..last {
        for b in 0..64 {
            let mut r = rec.clone();
            r[w] ^= 1 << b;
            assert_ne!(record_sum(&r), good, "word {w} bit {b} flipped");
        }
    }
    let top = 1u64 << 63;
    let patterns = [
        (top, top),
        (top, top | 1 << 34),
        (1, 1),
        (top | 1, top | 1),
        (!0, !0),
    ];
    for a in 0..last {
        for c in a + 1..last {
            for &(x, y) in &patterns {
                let mut r = rec.clone();
                r[a] ^= x;
                r[c] ^= y;
                assert_ne!(record_sum(&r), good, "words {a} and {c}: {x:#x}, {y:#x}");
            }
        }
    }
    // The chain depends on the order: two entries swapped are found too.
    let mut r = rec.clone();
    r.swap(2, 5);
    r.swap(3, 6);
    r.swap(4, 7);
    assert_ne!(record_sum(&r), good, "entries swapped");
}
