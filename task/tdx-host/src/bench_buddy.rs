//! Bench-only baseline (host tests): a binary buddy allocator in the style of Linux's page
//! allocator (`mm/page_alloc.c`), doing the same job as `frames::FrameAllocator` on the same
//! workloads so the benchmark compares like with like.
//!
//! Pattern, as in Linux: one metadata entry per 4 KiB frame (the `struct page` of this model:
//! state, order, owner and the free-list links), one doubly linked free list per order
//! (0..=[`MAX_ORDER`], like `free_area[]`), allocation from the smallest order that has a block
//! with the rest split back down (`__rmqueue_smallest` / `expand`), freeing with buddy merging
//! (`__free_one_page`), and a per-CPU cache of order-0 pages (`per_cpu_pages`): allocations pop
//! it and refill `batch` pages at once when empty (`rmqueue_bulk`), frees push it and give
//! `batch` back to the buddy lists when it holds more than `high` (`free_pcppages_bulk`).
//! Frees are checked like ours: the frame must be allocated, by this owner, with this order.
//!
//! Scrub before reuse, the rule `frames::FrameAllocator` follows: a checked free only puts the
//! block on a quarantine list; [`Buddy::release`] (the scrub step) hands quarantined blocks to
//! the pcp list or the buddy lists exactly as Linux's free path would, so a freed frame is
//! reused only after a release, as in ours.
//!
//! Hand-written rather than taken from a crate: no crate models Linux's pcp + buddy pair.

extern crate std;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

/// Largest order (Linux's default `MAX_PAGE_ORDER`: 4 MiB blocks).
pub const MAX_ORDER: usize = 10;
const NIL: u32 = u32::MAX;
/// Linux's `pcp->batch` for a large zone, and `pcp->high` a few batches above it.
const BATCH: usize = 63;
const HIGH: usize = 6 * BATCH;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Head of a free block on the buddy list of its order.
    Buddy,
    /// On the per-CPU list (free, order 0).
    Pcp,
    /// Allocated (head of an allocated block), or inside a block.
    Used,
    /// Freed by its owner, waiting for [`Buddy::release`] (not allocatable yet).
    Quarantined,
}

#[derive(Clone, Copy)]
struct Page {
    state: State,
    order: u8,
    owner: u32,
    prev: u32,
    next: u32,
}

/// Why a free was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BuddyError {
    /// Not allocated (free, on the pcp list, or not the head of a block): a double free.
    NotAllocated,
    /// Another owner.
    NotOwner,
    /// Another order than allocated.
    WrongOrder,
    /// Beyond the zone.
    Unknown,
}

/// One zone of `pages.len()` frames.
pub struct Buddy {
    pages: Vec<Page>,
    heads: [u32; MAX_ORDER + 1],
    /// The per-CPU list: frees and allocations at the front, drains from the back.
    pcp: VecDeque<u32>,
    /// Freed blocks (head, order) waiting for the scrub, oldest first.
    quarantine: Vec<(u32, u8)>,
}

impl Buddy {
    /// A zone of `frames` frames, all allocated to `owner` (the caller frees what is free, as
    /// Linux's boot code hands memory to the buddy lists).
    pub fn new(frames: usize, owner: u32) -> Self {
        let used = Page {
            state: State::Used,
            order: 0,
            owner,
            prev: NIL,
            next: NIL,
        };
        Buddy {
            pages: vec![used; frames],
            heads: [NIL; MAX_ORDER + 1],
            pcp: VecDeque::with_capacity(HIGH + BATCH + 1),
            quarantine: Vec::with_capacity(4096),
        }
    }

    fn push(&mut self, pfn: u32, order: usize) {
        let head = self.heads[order];
        self.pages[pfn as usize] = Page {
            state: State::Buddy,
            order: order as u8,
            owner: 0,
            prev: NIL,
            next: head,
        };
        if head != NIL {
            self.pages[head as usize].prev = pfn;
        }
        self.heads[order] = pfn;
    }

    fn unlink(&mut self, pfn: u32, order: usize) {
        let Page { prev, next, .. } = self.pages[pfn as usize];
        if prev == NIL {
            self.heads[order] = next;
        } else {
            self.pages[prev as usize].next = next;
        }
        if next != NIL {
            self.pages[next as usize].prev = prev;
        }
        self.pages[pfn as usize].state = State::Used;
    }

    /// `__free_one_page`: merges with free buddies of equal order, then lists the block.
    fn free_one(&mut self, mut pfn: u32, mut order: usize) {
        while order < MAX_ORDER {
            let buddy = pfn ^ (1 << order);
            let Some(b) = self.pages.get(buddy as usize) else {
                break;
            };
            if b.state != State::Buddy || usize::from(b.order) != order {
                break;
            }
            self.unlink(buddy, order);
            pfn &= !(1 << order);
            order += 1;
        }
        self.push(pfn, order);
    }

    /// `__rmqueue_smallest` + `expand`.
    fn take(&mut self, order: usize) -> Option<u32> {
        let from = (order..=MAX_ORDER).find(|&o| self.heads[o] != NIL)?;
        let pfn = self.heads[from];
        self.unlink(pfn, from);
        let mut o = from;
        while o > order {
            o -= 1;
            self.push(pfn + (1 << o), o);
        }
        Some(pfn)
    }

    fn mark_used(&mut self, pfn: u32, order: usize, owner: u32) {
        let p = &mut self.pages[pfn as usize];
        p.state = State::Used;
        p.order = order as u8;
        p.owner = owner;
    }

    /// Boot: hands frame `pfn` (allocated) to the buddy lists.
    pub fn seed_free(&mut self, pfn: u32) {
        self.pages[pfn as usize].owner = 0;
        self.free_one(pfn, 0);
    }

    /// Allocates a block of `order` for `owner` (order 0 through the pcp list).
    pub fn alloc(&mut self, order: usize, owner: u32) -> Option<u32> {
        let pfn = if order == 0 {
            if self.pcp.is_empty() {
                // `rmqueue_bulk`: refill a batch (Linux refills in LIFO order).
                for _ in 0..BATCH {
                    let Some(p) = self.take(0) else { break };
                    self.pages[p as usize].state = State::Pcp;
                    self.pcp.push_back(p);
                }
            }
            self.pcp.pop_front()?
        } else {
            self.take(order)?
        };
        self.mark_used(pfn, order, owner);
        Some(pfn)
    }

    /// Frees a block `owner` holds (checked) into quarantine.
    ///
    /// # Errors
    /// The check that failed; nothing changed.
    pub fn free(&mut self, pfn: u32, order: usize, owner: u32) -> Result<(), BuddyError> {
        let p = self.pages.get(pfn as usize).ok_or(BuddyError::Unknown)?;
        if p.state != State::Used || p.owner == 0 {
            return Err(BuddyError::NotAllocated);
        }
        if p.owner != owner {
            return Err(BuddyError::NotOwner);
        }
        if usize::from(p.order) != order {
            return Err(BuddyError::WrongOrder);
        }
        let p = &mut self.pages[pfn as usize];
        p.owner = 0;
        p.state = State::Quarantined;
        self.quarantine.push((pfn, order as u8));
        Ok(())
    }

    /// The scrub step: every quarantined block becomes allocatable, through Linux's free path
    /// (order 0 onto the pcp list, draining a batch to the buddy lists above `high`; larger
    /// orders straight to the buddy lists with merging).
    pub fn release(&mut self) {
        for k in 0..self.quarantine.len() {
            let (pfn, order) = self.quarantine[k];
            self.free_to_lists(pfn, usize::from(order));
        }
        self.quarantine.clear();
    }

    /// The part of Linux's `free_pages` after the checks.
    fn free_to_lists(&mut self, pfn: u32, order: usize) {
        if order != 0 {
            self.free_one(pfn, order);
            return;
        }
        self.pages[pfn as usize].state = State::Pcp;
        self.pcp.push_front(pfn);
        if self.pcp.len() > HIGH {
            // `free_pcppages_bulk`: the oldest `batch` pages go back with merging.
            for _ in 0..BATCH {
                if let Some(p) = self.pcp.pop_back() {
                    self.free_one(p, 0);
                }
            }
        }
    }
}
