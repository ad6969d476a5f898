//! Teardown: the module's sequence that gives a TD's pages and KeyID back, for a live caller
//! (`td_teardown`), for every TD of a dead client before its frames are reclaimed
//! ([`Server::reap_dead_tds`]), and the restore-time check that drops a TD booked in the
//! ledger whose MNG.CREATE never ran ([`Server::drop_uncreated_tds`]).
//!
//! Sequence, in the module's order (docs/tdx-module.md §9.2): VP.FLUSH of each initialized
//! vCPU on the CPU it was initialized on, MNG.VPFLUSHDONE, PHYMEM.CACHE.WB on one CPU of every
//! package (resumed while INTERRUPTED_RESUMABLE), MNG.KEY.FREEID, PHYMEM.PAGE.RECLAIM of every
//! page with the TDR last, PHYMEM.PAGE.WBINVD of each page with the TD's KeyID. The TD's state
//! is committed after each stage (Blocked, KeyFreed, each page reclaimed), so a teardown cut by
//! a crash continues from there: a vCPU flushed before answers VCPU_NOT_ASSOCIATED, a TD
//! blocked before LIFECYCLE_STATE_INCORRECT, a page reclaimed before PAGE_METADATA_INCORRECT,
//! all taken as done. A KeyID the module will not free (retries exhausted) is retired and
//! reported, and the TD's pages are retired with it (never reused). The scrub and the PT_NDA
//! check of a dead owner's pages happen later, in the paced quarantine step.
//!
//! Invariants: a frame leaves an owner's allocator records (to quarantine or retirement) only
//! when no TD holds it: a dead owner whose TD could not be torn down keeps all its frames until
//! a later restart notification tears it down ([`Server::client_restarted`]). *Bounded work*: a
//! TD holds at most [`MAX_PAGES_PER_TD`] pages and [`crate::td::MAX_VCPUS`] vCPUs, so one
//! teardown is at most 8 + 1 + packages × (1 + resumes) + 1 + 2 × 97 SEAMCALLs; a dead client
//! holds at most its `keyids` limit of TDs.

use tdx_abi::{Leaf, PageType, SeamcallArgs, TdxStatus};
use tdx_host_api::{FrameSize, TdxHostError};
use tdx_planner::addr::PhysRange;

use super::{TeardownReport, RESUME_TRIES};
use crate::frames::Owner;
use crate::seam::{CpuIndex, Seam};
use crate::server::Server;
use crate::td::{TdState, MAX_PAGES_PER_TD};

/// What tearing down a dead client's TDs did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeadTds {
    /// TDs torn down (their KeyID freed or retired).
    pub torn_down: u32,
    /// TDs whose teardown failed: they, and every frame of their owner, stay held.
    pub failed: u32,
    /// Of those torn down, TDs whose KeyID was retired.
    pub keyids_retired: u32,
}

impl<'a> Server<'a> {
    /// `td_teardown`: the whole teardown of the caller's TD `td` (see the module doc).
    ///
    /// # Errors
    /// NoSuchTd, ModuleRefused (a step other than the KeyID's failed: the TD stays, in the
    /// state reached, and a later teardown continues from there), TdBusy.
    pub fn td_teardown<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        td: u32,
    ) -> Result<TeardownReport, TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        self.teardown_slot(seam, slot)
    }

    /// Tears down the TD in `slot`: its pages leave the TD table and stay in the owner's
    /// allocator records (a live caller's allocated frames again; a dead owner's go to
    /// quarantine with the reclaim that follows, see [`Server::client_restarted`]).
    pub(crate) fn teardown_slot<S: Seam>(
        &mut self,
        seam: &mut S,
        slot: usize,
    ) -> Result<TeardownReport, TdxHostError> {
        let before = self.td_retries;
        let mut report = TeardownReport::default();
        let t = self.td_state(slot)?;
        if t.state < TdState::Blocked {
            for v in t.vcpus.iter().take(usize::from(t.nvcpus)) {
                if v.cpu_plus_one == 0 {
                    continue;
                }
                let cpu = Some(CpuIndex(u32::from(v.cpu_plus_one) - 1));
                let r = self.td_call(seam, cpu, SeamcallArgs::leaf(Leaf::VpFlush).rcx(v.tdvpr))?;
                // Not associated: flushed before (a teardown resumed after a crash).
                if r.status().is_error() && !r.status().is(TdxStatus::VCPU_NOT_ASSOCIATED) {
                    self.last_td_status = r.status();
                    return Err(TdxHostError::ModuleRefused);
                }
            }
            let r = self.td_call(
                seam,
                None,
                SeamcallArgs::leaf(Leaf::MngVpflushdone).rcx(t.tdr),
            )?;
            let already = r.status().is(TdxStatus::LIFECYCLE_STATE_INCORRECT);
            if r.status().is_error() && !already {
                self.last_td_status = r.status();
                return Err(TdxHostError::ModuleRefused);
            }
            if let Some(t) = self.lstate.tds.td_mut(slot) {
                t.state = TdState::Blocked;
            }
            self.commit(None);
        }
        if t.state < TdState::KeyFreed {
            let freed = self.write_back_and_free(seam, t.tdr);
            match freed {
                Ok(()) => {}
                Err(TdxHostError::TdBusy | TdxHostError::ModuleRefused) => {
                    // The KeyID cannot be freed: retire it with every page of the TD.
                    report.keyid_retired = true;
                    self.retire_td(slot);
                    self.commit(None);
                    return Ok(report);
                }
                Err(e) => return Err(e),
            }
            if let Some(t) = self.lstate.tds.td_mut(slot) {
                t.state = TdState::KeyFreed;
            }
            self.commit(None);
        }
        let mut pages: heapless::Vec<(u64, u64), MAX_PAGES_PER_TD> = heapless::Vec::new();
        for p in self.lstate.tds.pages_of(slot) {
            let _ = pages.push((p.pa, p.kind.bytes()));
        }
        for (pa, bytes) in pages.iter().copied().chain([(t.tdr, 4096)]) {
            let r = self.td_call(
                seam,
                None,
                SeamcallArgs::leaf(Leaf::PhymemPageReclaim).rcx(pa),
            )?;
            // PAGE_METADATA_INCORRECT: already PT_NDA (reclaimed before a crash).
            let again = r.status().code().is(TdxStatus::PAGE_METADATA_INCORRECT);
            if r.status().is_error() && !again {
                self.last_td_status = r.status();
                return Err(TdxHostError::ModuleRefused);
            }
            let shift = self.hkid_shift(seam);
            for off in (0..bytes).step_by(4096) {
                let tagged = (pa + off) | u64::from(t.hkid) << shift;
                self.td_ok(
                    seam,
                    None,
                    SeamcallArgs::leaf(Leaf::PhymemPageWbinvd).rcx(tagged),
                )?;
            }
            if pa == t.tdr {
                self.lstate.tds.remove(slot, false);
            } else {
                self.lstate.tds.remove_page(pa);
            }
            report.reclaimed += 1;
            self.commit(None);
        }
        report.retries = self.td_retries - before;
        Ok(report)
    }

    /// CACHE.WB on one CPU of every package (resumed while interrupted), then KEY.FREEID.
    fn write_back_and_free<S: Seam>(&mut self, seam: &mut S, tdr: u64) -> Result<(), TdxHostError> {
        let leaders = self.td_cpus.leaders.clone();
        for cpu in leaders.iter() {
            let mut resume = 0;
            let mut done = false;
            for _ in 0..RESUME_TRIES {
                let args = SeamcallArgs::leaf(Leaf::PhymemCacheWb).rcx(resume);
                let r = self.td_call(seam, Some(*cpu), args)?;
                let s = r.status();
                if s.is(TdxStatus::INTERRUPTED_RESUMABLE) {
                    resume = 1;
                    self.td_retries += 1;
                    continue;
                }
                // Nothing left to write back: another TD's teardown did it.
                if s.is_error() && !s.is(TdxStatus::NO_HKID_READY_TO_WBCACHE) {
                    self.last_td_status = s;
                    return Err(TdxHostError::ModuleRefused);
                }
                done = true;
                break;
            }
            if !done {
                return Err(TdxHostError::TdBusy);
            }
        }
        self.td_ok(seam, None, SeamcallArgs::leaf(Leaf::MngKeyFreeid).rcx(tdr))?;
        Ok(())
    }

    /// A TD whose KeyID cannot be freed: the KeyID is retired and every frame of the TD (TDR
    /// included) is retired in the allocator, never reused.
    fn retire_td(&mut self, slot: usize) {
        let Some(t) = self.lstate.tds.td(slot).copied() else {
            return;
        };
        let mut ranges: heapless::Vec<PhysRange, { MAX_PAGES_PER_TD + 1 }> = heapless::Vec::new();
        for p in self.lstate.tds.pages_of(slot) {
            if let Some(r) = PhysRange::new(p.pa, p.kind.bytes()) {
                let _ = ranges.push(r);
            }
        }
        if let Some(r) = PhysRange::new(t.tdr, 4096) {
            let _ = ranges.push(r);
        }
        self.lstate.tds.remove(slot, true);
        if let Some(regions) = self.regions.as_mut() {
            for r in &ranges {
                let size = if r.size().0 == 4096 {
                    FrameSize::K4
                } else {
                    FrameSize::M2
                };
                let freed = regions.frames.free(t.owner, size, &[r.base()]);
                if freed.is_ok() {
                    let _ = regions.frames.retire(*r);
                }
            }
        }
    }

    /// Tears down every TD of task index `current.index()` whose owner is not `current` (an
    /// older incarnation of a restarted client). Runs before that client's frames are
    /// reclaimed, so none still held by the module reaches quarantine.
    pub fn reap_dead_tds<S: Seam>(&mut self, seam: &mut S, current: Owner) -> DeadTds {
        let mut out = DeadTds::default();
        let mut slots: heapless::Vec<usize, { crate::td::MAX_TDS }> = heapless::Vec::new();
        for s in self.lstate.tds.stale_slots(current.index(), Some(current)) {
            let _ = slots.push(s);
        }
        for slot in slots {
            match self.teardown_slot(seam, slot) {
                Ok(r) => {
                    out.torn_down += 1;
                    out.keyids_retired += u32::from(r.keyid_retired);
                }
                Err(_) => out.failed += 1,
            }
        }
        out
    }

    /// After a restore: a TD still `Created` whose TDR the module reports PT_NDA never got
    /// its MNG.CREATE (tdx-host stopped between booking it and the module's answer, or before
    /// it undid a refused create): it is dropped, its KeyID back in the pool and its TDR the
    /// owner's allocated frame again. Returns how many were dropped.
    pub fn drop_uncreated_tds<S: Seam>(&mut self, seam: &mut S) -> u32 {
        let mut dropped = 0;
        let mut slots: heapless::Vec<usize, { crate::td::MAX_TDS }> = heapless::Vec::new();
        for s in self.lstate.tds.slots() {
            let _ = slots.push(s);
        }
        for slot in slots {
            let Ok(t) = self.td_state(slot) else {
                continue;
            };
            if t.state != TdState::Created {
                continue;
            }
            let args = SeamcallArgs::leaf(Leaf::PhymemPageRdmd).rcx(t.tdr);
            let nda = matches!(
                seam.seamcall(None, args),
                Ok(r) if r.status().is_success() && r.rcx == PageType::Nda as u64
            );
            if nda {
                self.lstate.tds.remove(slot, false);
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.commit(None);
        }
        dropped
    }
}
