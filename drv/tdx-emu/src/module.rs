//! The emulated module: global state, per-LP state and the SEAMCALL dispatcher (§3.1, §10 items 1–3, 6).
//!
//! Pattern: one `TdxModule` value owns all module state in fixed-size arrays (no heap, so the
//! kernel can keep it in a `static`). [`TdxModule::seamcall`] models one SEAMCALL instruction on
//! one LP: first the CPU-level outcomes (VMfailInvalid when the module is absent, #UD/#GP), then
//! the dispatcher gates in §3.1 order (RAX reserved bits / version / unknown leaf →
//! OPERAND_INVALID|RAX; SHUTDOWN → TDX_SYS_SHUTDOWN; not READY and not allow-listed →
//! TDX_SYS_NOT_READY), then the leaf handler.
//!
//! Invariants:
//! - Output registers start as a copy of the inputs (untouched registers come back unchanged);
//!   each leaf zeroes its documented outputs at entry (§2.1) and may write outputs on failure.
//! - `num_init_lps` always equals the number of `true` entries in `lp_init`.
//! - State only moves forward: PENDING → SYSINIT_DONE → SYSCONFIG_DONE → READY (→ SHUTDOWN).
//! - A failed SYS.CONFIG leaves the state in SYSINIT_DONE (§3.2), but the global KeyID's KOT
//!   entry stays RESERVED (§10 item 10).

use crate::config::{ConfigError, EmuConfig, SeamcallFault, MAX_LPS, MAX_PACKAGES};
use crate::fault::{Contention, FaultTable};
use crate::pamt::PamtModel;
use crate::physmem::PhysMem;
use tdx_abi::{
    KotState, Leaf, LeafWord, OperandId, SeamcallArgs, SeamcallResult, TdmrInfo, TdxStatus,
    MAX_HKIDS, MAX_TDMRS,
};

/// Module global state (§3.1 `sys_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SysState {
    /// Before TDH.SYS.INIT.
    SysinitPending = 0,
    /// After TDH.SYS.INIT.
    SysinitDone = 1,
    /// After TDH.SYS.CONFIG.
    SysconfigDone = 2,
    /// After the last package's TDH.SYS.KEY.CONFIG.
    SysReady = 3,
    /// After TDH.SYS.SHUTDOWN.
    SysShutdown = 4,
}

/// What one SEAMCALL instruction did, at the CPU level: the architectural result of the
/// instruction on one LP. Not the SEAMCALL *system call*'s outcome (`abi::seamcall::
/// SeamcallOutcome`), which adds what the kernel decides around the instruction (no such CPU,
/// denied, timed out, refused by the gate); the kernel maps this type into that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstructionOutcome {
    /// The module ran and returned; RAX holds the status.
    Returned(SeamcallResult),
    /// CF=1, RAX unchanged: module not loaded (§2.1).
    VmFailInvalid,
    /// The instruction faulted.
    Fault(SeamcallFault),
}

impl InstructionOutcome {
    /// The status a Linux-style host would see (§4.2 software codes for the non-returning cases).
    #[must_use]
    pub fn host_status(&self) -> TdxStatus {
        match self {
            InstructionOutcome::Returned(r) => r.status(),
            InstructionOutcome::VmFailInvalid => TdxStatus::SEAMCALL_VMFAILINVALID,
            InstructionOutcome::Fault(SeamcallFault::Gp) => TdxStatus::SEAMCALL_GP,
            InstructionOutcome::Fault(SeamcallFault::Ud) => TdxStatus::SEAMCALL_UD,
        }
    }

    /// The returned registers, if the module returned.
    #[must_use]
    pub fn result(&self) -> Option<SeamcallResult> {
        match self {
            InstructionOutcome::Returned(r) => Some(*r),
            _ => None,
        }
    }
}

/// A host mistake the real module would not report (or would report only as a later #MC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostBug {
    /// SEAMCALL from an LP id `>= num_lps` (answered with #GP).
    UnknownLp(u32),
    /// The module read unbacked physical memory.
    MemRead(u64),
    /// The module wrote unbacked physical memory.
    MemWrite(u64),
    /// TDH.SYS.KEY.CONFIG ran while this LP had not done WBINVD since SYS.CONFIG (§3.3 g, §10 item 11).
    MissingWbinvdBeforeKeyConfig(u32),
}

/// Capacity of the host-bug log.
pub const MAX_HOST_BUGS: usize = 16;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Holds {
    pub sys_exclusive: bool,
    pub sys_shared: bool,
    pub tdmr: u64,
    pub pkg_wbcache: u8,
    pub pages: [Option<u64>; 4],
}

/// One SEAMCALL in flight, as the dispatcher hands it to a leaf handler
/// (`leaves_sys`, `leaves_phymem`).
pub(crate) struct Call<'a> {
    pub lp: u32,
    pub leaf: Leaf,
    pub args: &'a SeamcallArgs,
    pub out: &'a mut SeamcallResult,
    pub mem: &'a mut dyn PhysMem,
}

/// The software TDX module.
#[derive(Clone, Debug)]
pub struct TdxModule {
    pub(crate) cfg: EmuConfig,
    pub(crate) state: SysState,
    pub(crate) lp_init: [bool; MAX_LPS],
    pub(crate) num_init_lps: u32,
    pub(crate) lp_fault: [Option<SeamcallFault>; MAX_LPS],
    pub(crate) faults: FaultTable,
    pub(crate) holds: Holds,
    pub(crate) global_keyid: Option<u16>,
    pub(crate) kot: crate::kot::Kot,
    pub(crate) tdmrs: [TdmrInfo; MAX_TDMRS],
    pub(crate) num_tdmrs: usize,
    pub(crate) next_to_init: [u64; MAX_TDMRS],
    pub(crate) pkg_key_configured: u8,
    pub(crate) wbinvd_since_config: [bool; MAX_LPS],
    pub(crate) wbinvd_reported: bool,
    pub(crate) pamt: PamtModel,
    /// Per package: saved CACHE.WB snapshot (bitmap of HKIDs) when interrupted.
    pub(crate) wb_resume: [Option<[u64; MAX_HKIDS as usize / 64]>; MAX_PACKAGES],
    pub(crate) tds: crate::td_table::TdTable,
    bugs: [Option<HostBug>; MAX_HOST_BUGS],
    bugs_dropped: u32,
}

impl TdxModule {
    /// A module in SYSINIT_PENDING for `config`.
    pub fn new(config: EmuConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(TdxModule {
            faults: FaultTable::new(&config.faults),
            cfg: config,
            state: SysState::SysinitPending,
            lp_init: [false; MAX_LPS],
            num_init_lps: 0,
            lp_fault: [None; MAX_LPS],
            holds: Holds::default(),
            global_keyid: None,
            kot: crate::kot::Kot::new(),
            tdmrs: [TdmrInfo::default(); MAX_TDMRS],
            num_tdmrs: 0,
            next_to_init: [0; MAX_TDMRS],
            pkg_key_configured: 0,
            wbinvd_since_config: [false; MAX_LPS],
            wbinvd_reported: false,
            pamt: PamtModel::new(),
            wb_resume: [None; MAX_PACKAGES],
            tds: crate::td_table::TdTable::new(),
            bugs: [None; MAX_HOST_BUGS],
            bugs_dropped: 0,
        })
    }

    /// The configuration the module was built with.
    #[must_use]
    pub fn config(&self) -> &EmuConfig {
        &self.cfg
    }

    /// Current global state.
    #[must_use]
    pub fn state(&self) -> SysState {
        self.state
    }

    /// True if `lp` has completed TDH.SYS.LP.INIT.
    #[must_use]
    pub fn lp_is_init(&self, lp: u32) -> bool {
        self.lp_init.get(lp as usize).copied().unwrap_or(false)
    }

    /// Number of LPs that completed TDH.SYS.LP.INIT.
    #[must_use]
    pub fn num_init_lps(&self) -> u32 {
        self.num_init_lps
    }

    /// The global KeyID recorded by SYS.CONFIG (even a failed one, §3.2).
    #[must_use]
    pub fn global_keyid(&self) -> Option<u16> {
        self.global_keyid
    }

    /// KOT state of `hkid`.
    #[must_use]
    pub fn kot_state(&self, hkid: u16) -> Option<KotState> {
        self.kot.state(hkid)
    }

    /// The configured TDMRs (empty before a successful SYS.CONFIG).
    #[must_use]
    pub fn tdmrs(&self) -> &[TdmrInfo] {
        &self.tdmrs[..self.num_tdmrs]
    }

    /// TDMR `i`'s next-to-initialize address.
    #[must_use]
    pub fn tdmr_next_to_init(&self, i: usize) -> Option<u64> {
        (i < self.num_tdmrs).then(|| self.next_to_init[i])
    }

    /// Bitmap of packages whose KEY.CONFIG succeeded.
    #[must_use]
    pub fn packages_configured(&self) -> u8 {
        self.pkg_key_configured
    }

    /// Calls of `leaf` dispatched so far (for fault-rule arithmetic in tests).
    #[must_use]
    pub fn calls(&self, leaf: Leaf) -> u32 {
        self.faults.calls(leaf)
    }

    /// Add a fault rule at run time; `false` if the table is full.
    pub fn add_fault(&mut self, rule: crate::config::FaultRule) -> bool {
        self.faults.add(rule)
    }

    /// Make every later SEAMCALL on `lp` fault (e.g. VMXOFF on that CPU), or stop doing so.
    pub fn set_lp_fault(&mut self, lp: u32, fault: Option<SeamcallFault>) {
        if let Some(f) = self.lp_fault.get_mut(lp as usize) {
            *f = fault;
        }
    }

    /// Pretend another LP holds `lock` until [`TdxModule::release`] (§10 item 26).
    pub fn hold(&mut self, lock: Contention) {
        self.set_hold(lock, true);
    }

    /// Release a lock taken with [`TdxModule::hold`].
    pub fn release(&mut self, lock: Contention) {
        self.set_hold(lock, false);
    }

    fn set_hold(&mut self, lock: Contention, on: bool) {
        let h = &mut self.holds;
        match lock {
            Contention::SysExclusive => h.sys_exclusive = on,
            Contention::SysShared => h.sys_shared = on,
            Contention::Tdmr(i) if i < 64 => {
                h.tdmr = if on {
                    h.tdmr | 1 << i
                } else {
                    h.tdmr & !(1 << i)
                };
            }
            Contention::Tdmr(_) => {}
            Contention::PackageWbcache(p) if (p as usize) < 8 => {
                let bit = 1u8 << p;
                h.pkg_wbcache = if on {
                    h.pkg_wbcache | bit
                } else {
                    h.pkg_wbcache & !bit
                };
            }
            Contention::PackageWbcache(_) => {}
            Contention::Page(pa) => {
                let pa = pa & !0xFFF;
                if on {
                    if let Some(s) = h.pages.iter_mut().find(|s| s.is_none()) {
                        *s = Some(pa);
                    }
                } else {
                    for s in h.pages.iter_mut().filter(|s| **s == Some(pa)) {
                        *s = None;
                    }
                }
            }
        }
    }

    /// The host executed WBINVD on `lp` (tracked for the KEY.CONFIG host-bug check, §10 item 11).
    pub fn note_wbinvd(&mut self, lp: u32) {
        if let Some(f) = self.wbinvd_since_config.get_mut(lp as usize) {
            *f = true;
        }
    }

    /// Host bugs observed so far (oldest first) and how many were dropped for lack of space.
    pub fn host_bugs(&self) -> (impl Iterator<Item = HostBug> + '_, u32) {
        (self.bugs.iter().flatten().copied(), self.bugs_dropped)
    }

    pub(crate) fn record_bug(&mut self, bug: HostBug) {
        match self.bugs.iter_mut().find(|b| b.is_none()) {
            Some(slot) => *slot = Some(bug),
            None => self.bugs_dropped = self.bugs_dropped.saturating_add(1),
        }
    }

    /// Execute one SEAMCALL on `lp`.
    pub fn seamcall(
        &mut self,
        lp: u32,
        args: &SeamcallArgs,
        mem: &mut dyn PhysMem,
    ) -> InstructionOutcome {
        // CPU-level outcomes come before the module sees anything (§2.1, §10 item 2).
        if self.cfg.module_absent {
            return InstructionOutcome::VmFailInvalid;
        }
        if let Some(f) = self.cfg.seamcall_fault {
            return InstructionOutcome::Fault(f);
        }
        if lp >= self.cfg.num_lps {
            self.record_bug(HostBug::UnknownLp(lp));
            return InstructionOutcome::Fault(SeamcallFault::Gp);
        }
        if let Some(f) = self.lp_fault[lp as usize] {
            return InstructionOutcome::Fault(f);
        }
        let mut out = SeamcallResult::echo(args);
        let status = self.dispatch(lp, args, &mut out, mem);
        out.rax = status.raw();
        InstructionOutcome::Returned(out)
    }

    /// §3.1 dispatcher gates, then the leaf.
    fn dispatch(
        &mut self,
        lp: u32,
        args: &SeamcallArgs,
        out: &mut SeamcallResult,
        mem: &mut dyn PhysMem,
    ) -> TdxStatus {
        let rax_invalid = TdxStatus::OPERAND_INVALID.with_operand(OperandId::RAX);
        let word = LeafWord(args.rax);
        // Gate 1: reserved RAX bits, or a version the leaf does not take.
        if word.has_reserved_bits() {
            return rax_invalid;
        }
        let Some(leaf) = word.leaf() else {
            // An unknown leaf number passes gates 1–3 like any leaf that takes only version 0
            // and is not on the allow-list, and only then fails gate 4, as in the module's
            // dispatcher: before SYS_READY it therefore reads TDX_SYS_NOT_READY.
            return if word.version() > 0 {
                rax_invalid
            } else if self.state == SysState::SysShutdown {
                TdxStatus::SYS_SHUTDOWN
            } else if self.state != SysState::SysReady {
                TdxStatus::SYS_NOT_READY
            } else {
                rax_invalid
            };
        };
        if word.version() > leaf.max_version() {
            return rax_invalid;
        }
        self.faults.count_call(leaf);
        // Gate 2: after shutdown only LP.SHUTDOWN runs.
        if self.state == SysState::SysShutdown && leaf != Leaf::SysLpShutdown {
            return TdxStatus::SYS_SHUTDOWN;
        }
        // Gate 3: the pre-READY allow-list (SHUTDOWN was handled by gate 2).
        if self.state != SysState::SysReady && !leaf.allowed_before_ready() {
            return TdxStatus::SYS_NOT_READY;
        }
        let mut cx = Call {
            lp,
            leaf,
            args,
            out,
            mem,
        };
        match leaf {
            Leaf::SysInit => self.sys_init(&mut cx),
            Leaf::SysLpInit => self.sys_lp_init(&mut cx),
            Leaf::SysRd => self.sys_rd(&mut cx),
            Leaf::SysRdall => self.sys_rdall(&mut cx),
            Leaf::SysInfo => self.sys_info(&mut cx),
            Leaf::SysConfig => self.sys_config(&mut cx),
            Leaf::SysKeyConfig => self.sys_key_config(&mut cx),
            Leaf::SysTdmrInit => self.sys_tdmr_init(&mut cx),
            Leaf::SysLpShutdown => self.sys_lp_shutdown(&mut cx),
            Leaf::SysShutdown => self.sys_shutdown(&mut cx),
            Leaf::PhymemPageRdmd => self.phymem_page_rdmd(&mut cx),
            Leaf::PhymemPageReclaim => self.phymem_page_reclaim(&mut cx),
            Leaf::PhymemPageWbinvd => self.phymem_page_wbinvd(&mut cx),
            Leaf::PhymemCacheWb => self.phymem_cache_wb(&mut cx),
            Leaf::MngCreate => self.mng_create(&mut cx),
            Leaf::MngKeyConfig => self.mng_key_config(&mut cx),
            Leaf::MngAddcx => self.mng_addcx(&mut cx),
            Leaf::MngInit => self.mng_init(&mut cx),
            Leaf::MngVpflushdone => self.mng_vpflushdone(&mut cx),
            Leaf::MngKeyFreeid => self.mng_key_freeid(&mut cx),
            Leaf::VpCreate => self.vp_create(&mut cx),
            Leaf::VpAddcx => self.vp_addcx(&mut cx),
            Leaf::VpInit => self.vp_init(&mut cx),
            Leaf::VpFlush => self.vp_flush(&mut cx),
            Leaf::MemSeptAdd => self.mem_sept_add(&mut cx),
            Leaf::MemPageAdd => self.mem_page_add(&mut cx),
            Leaf::MemPageAug => self.mem_page_aug(&mut cx),
            Leaf::MemRangeBlock => self.mem_range_block(&mut cx),
            Leaf::MemTrack => self.mem_track(&mut cx),
            Leaf::MemPageRemove => self.mem_page_remove(&mut cx),
            Leaf::MrFinalize => self.mr_finalize(&mut cx),
            // Leaves the emulator does not model (§10 items 24, 25) are known to the dispatcher: an LP
            // that is not initialized still gets the item-9 answer, everything else is reported
            // as an invalid leaf so a host never mistakes it for success.
            _ => {
                if !self.lp_init[lp as usize] {
                    TdxStatus::SYS_LP_INIT_NOT_DONE
                } else {
                    rax_invalid
                }
            }
        }
    }

    // ---- address predicates shared by the leaves ----

    /// `1 << hkid_start_bit`: PAs below this have no HKID bits and are below MAX_PA.
    pub(crate) fn pa_limit(&self) -> u64 {
        1u64 << self.cfg.hkid_start_bit()
    }

    /// HKID encoded in `pa`.
    pub(crate) fn hkid_of(&self, pa: u64) -> u64 {
        (pa & ((1u64 << self.cfg.max_pa) - 1)) >> self.cfg.hkid_start_bit()
    }

    /// `pa` with HKID bits removed.
    pub(crate) fn strip_hkid(&self, pa: u64) -> u64 {
        pa & (self.pa_limit() - 1)
    }

    /// Shared-HPA rule (§5.3): aligned, below MAX_PA, HKID below the first private KeyID, and the
    /// `align`-sized block does not overlap SEAMRR.
    pub(crate) fn is_shared_hpa(&self, pa: u64, align: u64) -> bool {
        pa.is_multiple_of(align)
            && pa >> self.cfg.max_pa == 0
            && self.hkid_of(pa) < u64::from(self.cfg.keyids.private_min())
            && !self.cfg.seamrr.overlaps(self.strip_hkid(pa), align)
    }

    /// Private KeyID range check.
    pub(crate) fn is_private_hkid(&self, hkid: u64) -> bool {
        (u64::from(self.cfg.keyids.private_min())..=u64::from(self.cfg.keyids.private_max()))
            .contains(&hkid)
    }

    /// Package of `lp`.
    pub(crate) fn package_of(&self, lp: u32) -> u8 {
        self.cfg.lp_package[lp as usize]
    }

    /// Bitmap of all packages that have LPs.
    pub(crate) fn all_packages_mask(&self) -> u8 {
        let n = self.cfg.num_packages();
        if n >= 8 {
            u8::MAX
        } else {
            (1u8 << n) - 1
        }
    }

    /// Life-cycle state of the TD whose TDR is at `tdr`.
    #[must_use]
    pub fn td_lifecycle(&self, tdr: u64) -> Option<tdx_abi::TdLifecycle> {
        self.tds.get(tdr).map(|t| t.lifecycle)
    }

    /// Op state of the TD whose TDR is at `tdr`.
    #[must_use]
    pub fn td_op_state(&self, tdr: u64) -> Option<tdx_abi::TdOpState> {
        self.tds.get(tdr).map(|t| t.op_state)
    }

    /// TDR child count (4 KiB pages, a 2 MiB page counting 512) of the TD at `tdr`.
    #[must_use]
    pub fn td_child_count(&self, tdr: u64) -> Option<u64> {
        self.tds.get(tdr).map(|t| t.child_count)
    }

    /// KeyID of the TD at `tdr`.
    #[must_use]
    pub fn td_hkid(&self, tdr: u64) -> Option<u16> {
        self.tds.get(tdr).map(|t| t.hkid)
    }

    /// Owned-page records in the PAMT model (every page that is not PT_NDA or PT_RSVD).
    #[must_use]
    pub fn owned_pages(&self) -> usize {
        self.pamt.count()
    }

    /// Fault-injection hook: the injected status for this call, if a rule fires.
    pub(crate) fn injected(&mut self, leaf: Leaf, lp: u32) -> Option<TdxStatus> {
        self.faults.take(leaf, lp).map(TdxStatus)
    }
}
