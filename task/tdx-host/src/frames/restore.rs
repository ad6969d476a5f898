//! Rebuilding an allocator from the ledger's durable image (`crate::ledger`) after a restart,
//! and what the ledger reads back out of a live one.
//!
//! Pattern: the image holds the pools (with their bitmap spans and counters), the records and
//! the bitmap words; everything else (the search caches, the base index, usage per task) is
//! derived here. Nothing is trusted: every pool, record and counter is checked against the
//! others, so a restored allocator satisfies the module invariants of `frames` or the restore
//! is refused with the first thing that is wrong ([`RestoreError`]). In particular, per pool,
//! no frame is both free and quarantined, no record covers a free or quarantined frame, and
//! free + quarantined + held + retired = frames. A record slot with `count == 0` is a hole of
//! the table (see `records`): it is kept where it is, and only its place in the order is
//! checked.

use heapless::Vec;
use tdx_host_api::MemClass;
use tdx_planner::addr::{PhysAddr, PhysRange, PAGE_4K};

use super::bitmap::find_set;
use super::summary::{Change, Summary};
use super::{Dirty, FrameAllocator, Owner, Pool, PoolCache, Record, MAX_POOLS};
use super::{MAX_READY, MAX_TASKS, PHYS_END};

/// One pool as the ledger stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolImage {
    /// The pool's public fields.
    pub pool: Pool,
    /// Its first free bit in the bitmap.
    pub bit: u64,
}

/// Why a stored allocator state was refused (index of the pool or record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// More pools or records than the tables hold, or bits beyond the storage.
    TooMany,
    /// Pool misaligned, empty, wrapping, or overlapping an earlier one.
    BadPool(usize),
    /// Pool's bitmap span outside the used bits or overlapping an earlier pool's.
    BadPoolBits(usize),
    /// A frame of the pool is both free and quarantined.
    FreeAndQuarantined(usize),
    /// The pool's counters disagree with its bits and records.
    PoolCounts(usize),
    /// Record misaligned, empty, out of order, overlapping, outside one pool, or owned by a
    /// task index beyond the table.
    BadRecord(usize),
    /// Record covering a free or quarantined frame.
    RecordNotHeld(usize),
}

/// `n` bits from `start` as the low bits of a word (`n <= 64`).
fn get_bits(bits: &[u64], start: u64, n: u64) -> u64 {
    let (w, s) = ((start / 64) as usize, start % 64);
    let mut v = bits[w] >> s;
    if s != 0 && s + n > 64 {
        v |= bits[w + 1] << (64 - s);
    }
    if n == 64 {
        v
    } else {
        v & ((1 << n) - 1)
    }
}

/// Set bits in `[start, start + n)`.
fn count_set(bits: &[u64], start: u64, n: u64) -> u64 {
    let mut c = 0;
    let mut i = 0;
    while i < n {
        let take = (n - i).min(64);
        c += u64::from(get_bits(bits, start + i, take).count_ones());
        i += take;
    }
    c
}

impl Pool {
    /// A pool as stored: range, node, class, online, and its retired 4 KiB frames. Its
    /// bitmap position comes with it in [`PoolImage`]; `in_use` is not stored (it is the
    /// frames less the free bits) and is counted by [`FrameAllocator::restore`].
    #[must_use]
    pub fn stored(
        range: PhysRange,
        node: u16,
        class: MemClass,
        online: bool,
        retired: u64,
    ) -> Self {
        Pool {
            range,
            node,
            class,
            online,
            in_use: 0,
            retired,
            bit: 0,
        }
    }

    /// Its first free bit in the bitmap (the quarantine bits follow the free bits).
    #[must_use]
    pub fn first_bit(&self) -> u64 {
        self.bit
    }
}

impl<'a> FrameAllocator<'a> {
    /// Pool `k` as the ledger stores it.
    #[must_use]
    pub fn pool_image(&self, k: usize) -> Option<PoolImage> {
        self.pools.get(k).map(|p| PoolImage {
            pool: *p,
            bit: p.bit,
        })
    }

    /// Rebuilds an allocator over `bits` (already holding the stored bitmap words) from the
    /// stored pools and records, checking every invariant. TDX readiness is not stored: the
    /// caller marks the TDMRs ready again (they are the plan's, which survives on its own).
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn restore(
        bits: &'a mut [u64],
        bits_used: u64,
        pools: impl IntoIterator<Item = PoolImage>,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Self, RestoreError> {
        if bits_used > bits.len() as u64 * 64 {
            return Err(RestoreError::TooMany);
        }
        let mut f = FrameAllocator {
            bits,
            bits_used,
            pools: Vec::new(),
            cache: Vec::new(),
            by_base: Vec::new(),
            records: Vec::new(),
            ready: Vec::<(u64, u64), MAX_READY>::new(),
            usage: [0; MAX_TASKS],
            dirty: Dirty::new(),
            summary: Summary::new(),
            hints: [0; super::records::HINTS],
            last_pool: 0,
            ready_block: super::NO_BLOCK,
            last_alloc: 0,
            quarantined_frames: 0,
        };
        let mut next_bit = 0;
        for (k, img) in pools.into_iter().enumerate() {
            let p = Pool {
                bit: img.bit,
                ..img.pool
            };
            let r = p.range;
            let ok = r.base().is_aligned(PAGE_4K)
                && r.size().0.is_multiple_of(PAGE_4K)
                && !r.is_empty()
                && r.end().0 <= PHYS_END
                && !f
                    .pools
                    .iter()
                    .any(|q| q.range.base().0 < p.end() && r.base().0 < q.end());
            if !ok {
                return Err(RestoreError::BadPool(k));
            }
            let span = p.bit.checked_add(2 * p.frames());
            if p.bit < next_bit || span.is_none_or(|e| e > bits_used) {
                return Err(RestoreError::BadPoolBits(k));
            }
            next_bit = span.unwrap_or(u64::MAX);
            let (sbit, sneed) = f
                .summary
                .place(r.base().0 / PAGE_4K, p.frames())
                .ok_or(RestoreError::TooMany)?;
            f.summary.take(sneed);
            f.pools.push(p).map_err(|_| RestoreError::TooMany)?;
            let _ = f.cache.push(PoolCache::new(p.frames(), sbit));
        }
        let mut order: Vec<u8, MAX_POOLS> = (0..f.pools.len() as u8).collect();
        order.sort_unstable_by_key(|&k| f.pools[usize::from(k)].range.base().0);
        f.by_base = order;
        let mut held = [0u64; MAX_POOLS];
        for (i, r) in records.into_iter().enumerate() {
            let bytes = u64::from(r.count) * r.size.bytes();
            let sorted = f.records.last().is_none_or(|q| q.end() <= r.base);
            if r.count == 0 {
                // A hole: only its place in the order matters.
                if !sorted {
                    return Err(RestoreError::BadRecord(i));
                }
                f.records.push(r).map_err(|_| RestoreError::TooMany)?;
                continue;
            }
            let k = f.pool_of(r.base);
            let inside = k.is_some_and(|k| {
                r.base
                    .checked_add(bytes)
                    .is_some_and(|e| e <= f.pools[k].end())
            });
            let owner_ok = usize::from(r.owner.index()) < MAX_TASKS;
            let (Some(k), true, true, true, true, true) = (
                k,
                sorted,
                inside,
                owner_ok,
                r.count > 0,
                r.base.is_multiple_of(r.size.bytes()),
            ) else {
                return Err(RestoreError::BadRecord(i));
            };
            let p = f.pools[k];
            let (rel, n) = (p.rel(r.base), bytes / PAGE_4K);
            if find_set(f.bits, p.bit + rel, p.bit + rel + n).is_some()
                || find_set(f.bits, p.qbit(rel), p.qbit(rel) + n).is_some()
            {
                return Err(RestoreError::RecordNotHeld(i));
            }
            held[k] += n;
            f.usage[usize::from(r.owner.index())] += bytes;
            f.records.push(r).map_err(|_| RestoreError::TooMany)?;
        }
        for (k, &held_k) in held.iter().enumerate().take(f.pools.len()) {
            let p = f.pools[k];
            let frames = p.frames();
            let mut i = 0;
            while i < frames {
                let take = (frames - i).min(64);
                if get_bits(f.bits, p.bit + i, take) & get_bits(f.bits, p.qbit(i), take) != 0 {
                    return Err(RestoreError::FreeAndQuarantined(k));
                }
                i += take;
            }
            let free = count_set(f.bits, p.bit, frames);
            let quarantined = count_set(f.bits, p.qbit(0), frames);
            // `in_use` is whatever is not free (the image does not store it); the rest must
            // be exactly the quarantined, held and retired frames.
            let in_use = frames - free;
            let accounted = quarantined
                .checked_add(held_k)
                .and_then(|n| n.checked_add(p.retired));
            if accounted != Some(in_use) {
                return Err(RestoreError::PoolCounts(k));
            }
            f.pools[k].in_use = in_use;
            let q_from =
                find_set(f.bits, p.qbit(0), p.qbit(frames)).map_or(frames, |b| p.rel_of_qbit(b));
            f.quarantined_frames += quarantined;
            f.cache[k] = PoolCache {
                quarantined,
                q_from,
                ..PoolCache::new(frames, f.cache[k].sbit)
            };
            f.summary
                .refresh(f.bits, &p.span(f.cache[k].sbit), 0, frames, Change::Any);
            f.summary
                .rebuild_quarantined(f.bits, &p.qspan(f.cache[k].sbit));
        }
        Ok(f)
    }

    /// The frames of `owner`'s records tagged `tag`, ascending, into `out`; returns how many
    /// (at most `out.len()`). A retried request's answer.
    pub fn tagged(&self, owner: Owner, tag: u32, out: &mut [PhysAddr]) -> usize {
        let mut n = 0;
        for r in self
            .records
            .iter()
            .filter(|r| r.owner == owner && r.tag == tag)
        {
            for j in 0..u64::from(r.count) {
                if n == out.len() {
                    return n;
                }
                out[n] = PhysAddr(r.base + j * r.size.bytes());
                n += 1;
            }
        }
        n
    }

    /// Who holds the frame covering `pa` (allocated, not free, quarantined or retired).
    #[must_use]
    pub fn holder(&self, pa: u64) -> Option<Owner> {
        self.record_of(pa).map(|i| self.records[i].owner)
    }

    /// `owner`'s records (exactly its generation), in address order.
    pub fn owned(&self, owner: Owner) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(move |r| r.owner == owner && r.count > 0)
    }
}
