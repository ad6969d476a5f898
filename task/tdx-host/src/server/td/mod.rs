//! TD operations: guest KeyIDs, TD construction and teardown through the module, for clients
//! (a VMM), checked against tdx-host's books before any SEAMCALL.
//!
//! Pattern: every handler (1) finds the caller's TD ([`TdTable::find`]: owner *with*
//! generation, so a restarted VMM's TDs are not its successor's), (2) checks tdx-host's own
//! state for the operation (`WrongState`) and every page operand — an allocated frame of the
//! caller of the right size (`NotOwner`, `UnknownFrame`, `WrongSize`), in no TD yet (`PageInTd`)
//! — (3) makes the SEAMCALL(s), retrying busy statuses a bounded number of times, and (4)
//! records the module's new state in the [`TdTable`] and commits the ledger after each
//! change the module made, so a restart finds every page the module holds for a TD.
//!
//! Teardown, the reclaim of a dead client's TDs and the restore-time check of TDs booked but
//! never created live in [`teardown`].
//!
//! Invariants: a TD's record exists exactly while the module may hold its TDR or KeyID (booked
//! before MNG.CREATE, removed after the TDR's reclaim); every page in a TD lies in an allocator
//! record of the TD's owner, so no allocator path can free or reclaim it unnoticed.

use tdx_abi::{gpa_operand, Leaf, SeamcallArgs, SeamcallResult, TdxStatus};
use tdx_host_api::{FrameSize, MemClass, TdxHostError};
use tdx_planner::addr::{PhysAddr, PhysRange};

use super::Server;
use crate::frames::Owner;
use crate::seam::{CpuIndex, Seam};
use crate::td::{PageKind, PageState, TdError, TdState, TdTable, MAX_VCPUS};

mod teardown;
pub use teardown::DeadTds;

/// Tries of a SEAMCALL that answers busy (OPERAND_BUSY and other BUSY-class statuses).
pub const BUSY_TRIES: u32 = 16;
/// CACHE.WB resumptions per package before giving up.
pub const RESUME_TRIES: u32 = 64;

/// The CPUs TD operations run on: one per package (MNG.KEY.CONFIG, CACHE.WB) and how many
/// CPUs there are (a vCPU's CPU must exist).
#[derive(Clone, Debug, Default)]
pub struct TdCpus {
    /// One enabled CPU of each package, in package order.
    pub leaders: heapless::Vec<CpuIndex, 16>,
    /// CPUs.
    pub cpus: u32,
    /// KeyID bits of a physical address (MSR-derived; the kernel's `KeyIdPartition` answer):
    /// the KeyID starts at bit MAXPHYADDR − this.
    pub keyid_bits: u8,
}

impl TdCpus {
    /// From the platform: the first enabled CPU of each package (at most 16 packages), the
    /// CPU count, and the KeyID bits the kernel reports (`KeyIdPartition`).
    #[must_use]
    pub fn from_platform(view: &crate::seam::PlatformView<'_>, keyid_bits: u8) -> Self {
        let mut leaders = heapless::Vec::new();
        for cpu in view.package_leaders() {
            let _ = leaders.push(cpu);
        }
        TdCpus {
            leaders,
            cpus: u32::try_from(view.cpus.len()).unwrap_or(u32::MAX),
            keyid_bits,
        }
    }
}

/// What a created TD is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdCreated {
    /// Its id.
    pub td: u32,
    /// Its KeyID.
    pub hkid: u16,
}

/// What a teardown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Pages reclaimed (TDR included).
    pub reclaimed: u32,
    /// SEAMCALLs that answered busy or interrupted and were made again.
    pub retries: u32,
    /// The KeyID could not be freed and was retired with the TD's pages.
    pub keyid_retired: bool,
}

fn td_error(e: TdError) -> TdxHostError {
    match e {
        TdError::NoSuchTd => TdxHostError::NoSuchTd,
        TdError::NoKeyId => TdxHostError::NoKeyId,
        TdError::TableFull => TdxHostError::TableFull,
    }
}

fn is_busy(s: TdxStatus) -> bool {
    s.is_error() && s.class().0 == tdx_abi::StatusClass::BUSY.0
}

impl<'a> Server<'a> {
    /// The TD table (KeyIDs, TDs, TD pages).
    #[must_use]
    pub fn tds(&self) -> &TdTable {
        &self.lstate.tds
    }

    /// Sets where TD operations run, and the guest KeyIDs from the bring-up's KeyID partition.
    pub fn set_td_cpus(&mut self, cpus: TdCpus) {
        self.td_cpus = cpus;
        let info = self.bringup.info();
        let last = info.keyids.first_tdx() + info.keyids.nr_tdx.saturating_sub(1);
        let (g, last) = (info.global_keyid, u16::try_from(last).unwrap_or(u16::MAX));
        if g != 0 {
            self.lstate.tds.set_keyids(g, last);
        }
    }

    /// The module's status for the last TD operation it refused.
    #[must_use]
    pub fn last_td_status(&self) -> TdxStatus {
        self.last_td_status
    }

    /// One SEAMCALL, made again while the module answers busy (at most [`BUSY_TRIES`]).
    fn td_call<S: Seam>(
        &mut self,
        seam: &mut S,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, TdxHostError> {
        for _ in 0..BUSY_TRIES {
            let r = seam
                .seamcall(cpu, args)
                .map_err(|_| TdxHostError::ModuleRefused)?;
            if !is_busy(r.status()) {
                return Ok(r);
            }
            self.td_retries += 1;
        }
        Err(TdxHostError::TdBusy)
    }

    /// [`Server::td_call`] that must succeed (warnings count as success).
    fn td_ok<S: Seam>(
        &mut self,
        seam: &mut S,
        cpu: Option<CpuIndex>,
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, TdxHostError> {
        let r = self.td_call(seam, cpu, args)?;
        if r.status().is_error() {
            self.last_td_status = r.status();
            return Err(TdxHostError::ModuleRefused);
        }
        Ok(r)
    }

    /// `[pa, pa + len)` must be exactly one allocated frame of `caller` (4 KiB, or 2 MiB for a
    /// level-1 private page), of class tdx, with no byte of it in a TD.
    fn own_free_page(&self, caller: Owner, pa: u64, len: u64) -> Result<(), TdxHostError> {
        if !pa.is_multiple_of(len) {
            return Err(TdxHostError::BadAlignment);
        }
        let r = self.ready()?;
        // Only TDX memory can be a TD page: a frame of another class is not one the module
        // knows, refused here rather than by the SEAMCALL (whose refusal would also become
        // the caller's `last_refusal`).
        let tdx = r
            .frames
            .pools()
            .iter()
            .any(|p| p.class == MemClass::Tdx && p.range.contains_addr(PhysAddr(pa)));
        if !tdx {
            return Err(TdxHostError::UnknownFrame);
        }
        let rec = r
            .frames
            .records()
            .iter()
            .find(|rec| {
                let end = rec.base + u64::from(rec.count) * rec.size.bytes();
                rec.base <= pa && pa < end
            })
            .ok_or(TdxHostError::UnknownFrame)?;
        if rec.owner != caller {
            return Err(TdxHostError::NotOwner);
        }
        if rec.size.bytes() != len {
            return Err(TdxHostError::WrongSize);
        }
        if self.lstate.tds.page_in_td(pa, len) {
            return Err(TdxHostError::PageInTd);
        }
        Ok(())
    }

    fn td_slot(&self, caller: Owner, td: u32) -> Result<usize, TdxHostError> {
        self.ready()?;
        self.lstate.tds.find(caller, td).map_err(td_error)
    }

    fn td_state(&self, slot: usize) -> Result<crate::td::Td, TdxHostError> {
        self.lstate
            .tds
            .td(slot)
            .copied()
            .ok_or(TdxHostError::NoSuchTd)
    }

    fn keyid_limit(&self, caller: Owner) -> u16 {
        self.policy(caller).map_or(0, |p| p.keyids)
    }

    /// `td_create`: a TD on the caller's frame `tdr` with a free guest KeyID: MNG.CREATE, then
    /// MNG.KEY.CONFIG on one CPU of every package.
    ///
    /// # Errors
    /// NotReady/Failed, KeyIdLimit, NoKeyId, TableFull, the page checks, ModuleRefused, TdBusy.
    pub fn td_create<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        tdr: u64,
    ) -> Result<TdCreated, TdxHostError> {
        self.own_free_page(caller, tdr, 4096)?;
        if self.lstate.tds.keyids_of(caller.index()) >= self.keyid_limit(caller) {
            return Err(TdxHostError::KeyIdLimit);
        }
        let slot = self.lstate.tds.create(caller, tdr).map_err(td_error)?;
        let td = self.td_state(slot)?;
        // Booked before the module is asked: a crash after MNG.CREATE finds TDR and KeyID.
        self.commit(None);
        let create = SeamcallArgs::leaf(Leaf::MngCreate)
            .rcx(tdr)
            .rdx(u64::from(td.hkid));
        if let Err(e) = self.td_ok(seam, None, create) {
            self.lstate.tds.remove(slot, false);
            self.commit(None);
            return Err(e);
        }
        self.td_key_config(seam, slot)?;
        Ok(TdCreated {
            td: td.id,
            hkid: td.hkid,
        })
    }

    /// MNG.KEY.CONFIG on every package not keyed yet. A failure leaves the TD `Created`: the
    /// caller tears it down.
    fn td_key_config<S: Seam>(&mut self, seam: &mut S, slot: usize) -> Result<(), TdxHostError> {
        let leaders = self.td_cpus.leaders.clone();
        for (k, cpu) in leaders.iter().enumerate() {
            let td = self.td_state(slot)?;
            if td.keyed >> k & 1 == 1 {
                continue;
            }
            let r = self.td_call(
                seam,
                Some(*cpu),
                SeamcallArgs::leaf(Leaf::MngKeyConfig).rcx(td.tdr),
            )?;
            if r.status().is_error() && !r.status().is(TdxStatus::KEY_CONFIGURED) {
                self.last_td_status = r.status();
                return Err(TdxHostError::ModuleRefused);
            }
            if let Some(t) = self.lstate.tds.td_mut(slot) {
                t.keyed |= 1 << k;
            }
        }
        if let Some(t) = self.lstate.tds.td_mut(slot) {
            t.state = TdState::Keyed;
        }
        self.commit(None);
        Ok(())
    }

    /// Adds `pa` to TD `slot` as `kind` after `args` succeeded at the module.
    fn td_add<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (slot, pa, kind): (usize, u64, PageKind),
        args: SeamcallArgs,
    ) -> Result<SeamcallResult, TdxHostError> {
        self.own_free_page(caller, pa, kind.bytes())?;
        if !self.lstate.tds.has_room(slot) {
            return Err(TdxHostError::TableFull);
        }
        let r = self.td_ok(seam, None, args)?;
        let _ = self.lstate.tds.add_page(slot, pa, kind);
        Ok(r)
    }

    /// `td_add_tdcs`: one TDCS page (MNG.ADDCX).
    ///
    /// # Errors
    /// NoSuchTd, WrongState (not keyed or initialized already), the page checks,
    /// ModuleRefused, TdBusy.
    pub fn td_add_tdcs<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        td: u32,
        page: u64,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.td_state(slot)?;
        if t.state != TdState::Keyed {
            return Err(TdxHostError::WrongState);
        }
        let args = SeamcallArgs::leaf(Leaf::MngAddcx).rcx(page).rdx(t.tdr);
        self.td_add(seam, caller, (slot, page, PageKind::Tdcs), args)?;
        if let Some(t) = self.lstate.tds.td_mut(slot) {
            t.tdcs += 1;
        }
        self.commit(None);
        Ok(())
    }

    /// `td_init`: MNG.INIT with TD_PARAMS at `params` (1024 bytes tdx-host copied from the
    /// caller into its own memory, 1024-aligned).
    ///
    /// # Errors
    /// NoSuchTd, WrongState, ModuleRefused, TdBusy.
    pub fn td_init<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        td: u32,
        params: u64,
    ) -> Result<(), TdxHostError> {
        let steps = (TdState::Keyed, TdState::Initialized);
        self.td_step(seam, (caller, td), steps, |tdr| {
            SeamcallArgs::leaf(Leaf::MngInit).rcx(tdr).rdx(params)
        })
    }

    /// One life-cycle step of the caller's TD `td`: it must be in `from`; the module's call
    /// (made from its TDR) must succeed; then it is in `to` and the ledger commits.
    fn td_step<S: Seam>(
        &mut self,
        seam: &mut S,
        (caller, td): (Owner, u32),
        (from, to): (TdState, TdState),
        call: impl FnOnce(u64) -> SeamcallArgs,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.td_state(slot)?;
        if t.state != from {
            return Err(TdxHostError::WrongState);
        }
        self.td_ok(seam, None, call(t.tdr))?;
        if let Some(t) = self.lstate.tds.td_mut(slot) {
            t.state = to;
        }
        self.commit(None);
        Ok(())
    }

    /// `vcpu_create`: VP.CREATE on the caller's frame `tdvpr`; returns the vCPU's index.
    ///
    /// # Errors
    /// NoSuchTd, WrongState, TableFull (vCPUs), the page checks, ModuleRefused, TdBusy.
    pub fn vcpu_create<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        td: u32,
        tdvpr: u64,
    ) -> Result<u8, TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.td_state(slot)?;
        if t.state != TdState::Initialized {
            return Err(TdxHostError::WrongState);
        }
        if usize::from(t.nvcpus) >= MAX_VCPUS {
            return Err(TdxHostError::TableFull);
        }
        let args = SeamcallArgs::leaf(Leaf::VpCreate).rcx(tdvpr).rdx(t.tdr);
        self.td_add(seam, caller, (slot, tdvpr, PageKind::Tdvpr), args)?;
        let v = t.nvcpus;
        if let Some(t) = self.lstate.tds.td_mut(slot) {
            t.vcpus[usize::from(v)].tdvpr = tdvpr;
            t.nvcpus += 1;
        }
        self.commit(None);
        Ok(v)
    }

    fn vcpu_of(&self, slot: usize, vcpu: u8) -> Result<crate::td::Vcpu, TdxHostError> {
        let t = self.td_state(slot)?;
        if vcpu >= t.nvcpus {
            return Err(TdxHostError::NoSuchTd);
        }
        Ok(t.vcpus[usize::from(vcpu)])
    }

    /// `vcpu_add_tdcx`: VP.ADDCX of the caller's frame `page` to vCPU `vcpu`.
    ///
    /// # Errors
    /// NoSuchTd, WrongState (initialized), the page checks, ModuleRefused, TdBusy.
    pub fn vcpu_add_tdcx<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (td, vcpu): (u32, u8),
        page: u64,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let v = self.vcpu_of(slot, vcpu)?;
        if v.cpu_plus_one != 0 {
            return Err(TdxHostError::WrongState);
        }
        let args = SeamcallArgs::leaf(Leaf::VpAddcx).rcx(page).rdx(v.tdvpr);
        self.td_add(seam, caller, (slot, page, PageKind::Tdcx), args)?;
        if let Some(t) = self.lstate.tds.td_mut(slot) {
            t.vcpus[usize::from(vcpu)].tdcx += 1;
        }
        self.commit(None);
        Ok(())
    }

    /// `vcpu_init`: VP.INIT of vCPU `vcpu` on CPU `cpu` (the vCPU is associated with it:
    /// teardown flushes it there), `rdx` the vCPU's initial RCX value.
    ///
    /// # Errors
    /// NoSuchTd, BadArgument (no such CPU), WrongState, ModuleRefused, TdBusy.
    pub fn vcpu_init<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (td, vcpu, cpu): (u32, u8, u32),
        rdx: u64,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let v = self.vcpu_of(slot, vcpu)?;
        if cpu >= self.td_cpus.cpus || cpu >= 0xFFF {
            return Err(TdxHostError::BadArgument);
        }
        if v.cpu_plus_one != 0 {
            return Err(TdxHostError::WrongState);
        }
        let args = SeamcallArgs::leaf(Leaf::VpInit).rcx(v.tdvpr).rdx(rdx);
        self.td_ok(seam, Some(CpuIndex(cpu)), args)?;
        if let Some(t) = self.lstate.tds.td_mut(slot) {
            t.vcpus[usize::from(vcpu)].cpu_plus_one = cpu as u16 + 1;
        }
        self.commit(None);
        Ok(())
    }

    fn building(&self, slot: usize) -> Result<crate::td::Td, TdxHostError> {
        let t = self.td_state(slot)?;
        if !matches!(t.state, TdState::Initialized | TdState::Runnable) {
            return Err(TdxHostError::WrongState);
        }
        Ok(t)
    }

    /// `sept_add`: MEM.SEPT.ADD of the caller's frame `page` for `gpa` at `level` (1..=3).
    ///
    /// # Errors
    /// NoSuchTd, WrongState, the page checks, ModuleRefused, TdBusy.
    pub fn sept_add<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (td, gpa, level): (u32, u64, u8),
        page: u64,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.building(slot)?;
        let args = SeamcallArgs::leaf(Leaf::MemSeptAdd)
            .rcx(gpa_operand(gpa, level))
            .rdx(t.tdr)
            .r8(page);
        self.td_add(seam, caller, (slot, page, PageKind::Sept), args)?;
        self.commit(None);
        Ok(())
    }

    /// `page_add`: MEM.PAGE.ADD of the caller's frame `page` at `gpa` with the initial
    /// contents at `source` (4 KiB tdx-host copied from the caller into its own memory).
    ///
    /// # Errors
    /// NoSuchTd, WrongState (not Initialized), the page checks, ModuleRefused, TdBusy.
    pub fn page_add<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (td, gpa): (u32, u64),
        page: u64,
        source: u64,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.td_state(slot)?;
        if t.state != TdState::Initialized {
            return Err(TdxHostError::WrongState);
        }
        let args = SeamcallArgs::leaf(Leaf::MemPageAdd)
            .rcx(gpa_operand(gpa, 0))
            .rdx(t.tdr)
            .r8(page)
            .r9(source);
        self.td_add(seam, caller, (slot, page, PageKind::Private), args)?;
        self.commit(None);
        Ok(())
    }

    /// `mr_finalize`: MR.FINALIZE.
    ///
    /// # Errors
    /// NoSuchTd, WrongState, ModuleRefused, TdBusy.
    pub fn mr_finalize<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        td: u32,
    ) -> Result<(), TdxHostError> {
        let steps = (TdState::Initialized, TdState::Runnable);
        self.td_step(seam, (caller, td), steps, |tdr| {
            SeamcallArgs::leaf(Leaf::MrFinalize).rcx(tdr)
        })
    }

    /// `page_aug`: MEM.PAGE.AUG of the caller's frame `page` at `gpa`, level 0 (4 KiB) or 1
    /// (2 MiB: a 2 MiB frame).
    ///
    /// # Errors
    /// NoSuchTd, WrongState, BadArgument (level), the page checks, ModuleRefused, TdBusy.
    pub fn page_aug<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (td, gpa, level): (u32, u64, u8),
        page: u64,
    ) -> Result<(), TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.building(slot)?;
        let kind = match level {
            0 => PageKind::Private,
            1 => PageKind::Private2M,
            _ => return Err(TdxHostError::BadArgument),
        };
        let args = SeamcallArgs::leaf(Leaf::MemPageAug)
            .rcx(gpa_operand(gpa, level))
            .rdx(t.tdr)
            .r8(page);
        self.td_add(seam, caller, (slot, page, kind), args)?;
        self.commit(None);
        Ok(())
    }

    /// `page_remove`: MEM.RANGE.BLOCK, MEM.TRACK and MEM.PAGE.REMOVE of the private page at
    /// `gpa`/`level`, then PAGE.WBINVD of it with the TD's KeyID; the page is the caller's
    /// allocated frame again. Returns its address.
    ///
    /// # Errors
    /// NoSuchTd, WrongState, ModuleRefused, TdBusy.
    pub fn page_remove<S: Seam>(
        &mut self,
        seam: &mut S,
        caller: Owner,
        (td, gpa, level): (u32, u64, u8),
    ) -> Result<u64, TdxHostError> {
        let slot = self.td_slot(caller, td)?;
        let t = self.building(slot)?;
        let op = gpa_operand(gpa, level);
        let block = self.td_call(
            seam,
            None,
            SeamcallArgs::leaf(Leaf::MemRangeBlock).rcx(op).rdx(t.tdr),
        )?;
        if block.status().is_error() {
            self.last_td_status = block.status();
            return Err(TdxHostError::ModuleRefused);
        }
        self.td_ok(seam, None, SeamcallArgs::leaf(Leaf::MemTrack).rcx(t.tdr))?;
        let r = self.td_ok(
            seam,
            None,
            SeamcallArgs::leaf(Leaf::MemPageRemove).rcx(op).rdx(t.tdr),
        )?;
        let pa = r.rcx;
        self.lstate.tds.remove_page(pa);
        self.commit(None);
        let shift = self.hkid_shift(seam);
        let bytes = if level == 1 { 2 << 20 } else { 4096 };
        for off in (0..bytes).step_by(4096) {
            let tagged = (pa + off) | u64::from(t.hkid) << shift;
            self.td_ok(
                seam,
                None,
                SeamcallArgs::leaf(Leaf::PhymemPageWbinvd).rcx(tagged),
            )?;
        }
        Ok(pa)
    }

    /// The first KeyID bit of a physical address.
    fn hkid_shift<S: Seam>(&self, seam: &S) -> u32 {
        let bits = u32::from(self.td_cpus.keyid_bits);
        u32::from(seam.max_phys_addr_bits()).saturating_sub(bits)
    }

    /// The state of the 4 KiB frame at `pa` in tdx-host's books.
    #[must_use]
    pub fn page_state(&self, pa: u64) -> PageState {
        if let Some((_, kind)) = self.lstate.tds.at(pa) {
            return match kind {
                None => PageState::TdRoot,
                Some(PageKind::Sept) => PageState::Sept,
                Some(PageKind::Private | PageKind::Private2M) => PageState::Private,
                Some(_) => PageState::TdControl,
            };
        }
        if self.lstate.tds.page_in_td(pa, 4096) {
            return PageState::Private;
        }
        let Some(r) = self.regions.as_ref() else {
            return PageState::Other;
        };
        let f = &r.frames;
        if f.records()
            .iter()
            .any(|rec| rec.base <= pa && pa < rec.base + u64::from(rec.count) * rec.size.bytes())
        {
            return PageState::Allocated;
        }
        match PhysRange::new(pa, 4096) {
            Some(range) if f.is_quarantined(range) => PageState::Quarantined,
            Some(range) if f.is_free(range) => PageState::Free,
            _ => PageState::Other,
        }
    }

    /// Whether any byte of a frame of `size` at any of `addrs` that `caller` holds is in a TD
    /// (with no TD at all, one compare for the whole list). A frame someone else holds is left
    /// to the allocator's refusal (NotOwner): PageInTd for it would tell a stranger which of
    /// another client's frames are TD pages.
    #[must_use]
    pub fn any_in_td(
        &self,
        caller: Owner,
        size: FrameSize,
        addrs: &[tdx_planner::addr::PhysAddr],
    ) -> bool {
        let tds = &self.lstate.tds;
        !tds.no_tds() && addrs.iter().any(|a| self.held_in_td(caller, a.0, size))
    }

    /// [`Self::any_in_td`] of the one frame at `pa`.
    #[must_use]
    pub fn held_in_td(&self, caller: Owner, pa: u64, size: FrameSize) -> bool {
        self.lstate.tds.page_in_td(pa, size.bytes())
            && self
                .regions
                .as_ref()
                .is_some_and(|r| r.frames.holder(pa) == Some(caller))
    }
}
