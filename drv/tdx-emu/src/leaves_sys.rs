//! TDH.SYS.* leaves: INIT, LP.INIT, RD, RDALL, INFO, CONFIG, KEY.CONFIG, TDMR.INIT, SHUTDOWN (§3.2, §6).
//!
//! Pattern: each handler first zeroes its documented output registers (§2.1), then runs its
//! checks in the order the notes give, each returning the exact status; the fault-injection hook
//! sits after the checks and before the first side effect (see [`crate::FaultRule`]).
//! Invariant: a handler that returns an error has changed no module state, except SYS.CONFIG's
//! documented KOT side effect (§3.2) and CACHE.WB's resumable snapshot.

use crate::module::{Call, HostBug, SysState, TdxModule};
use crate::physmem::read_u64;
use crate::validate::{cmr_list_valid, validate_tdmr, PlatformView};
use tdx_abi::consts::{
    CMR_INFO_ARRAY_ALIGNMENT, GIB, RDALL_BUFFER_ALIGNMENT, TDMR_INIT_CHUNK, TDSYSINFO_STRUCT_SIZE,
};
use tdx_abi::metadata::features0;
use tdx_abi::{
    FieldId, OperandId, TdmrInfo, TdxStatus, MAX_CMRS, MAX_HKIDS, TDMR_INFO_ALIGNMENT,
    TDMR_INFO_PA_ARRAY_ALIGNMENT, TDMR_INFO_READ_BYTES,
};

fn invalid(op: OperandId) -> TdxStatus {
    TdxStatus::OPERAND_INVALID.with_operand(op)
}

impl TdxModule {
    fn sys_lock_busy(&self, exclusive: bool) -> bool {
        // §3.1: exclusive takers fail on any holder; shared takers only on an exclusive holder.
        self.holds.sys_exclusive || (exclusive && self.holds.sys_shared)
    }

    /// §10 item 9: leaves other than SYS.INIT/LP.INIT need an initialized LP. The module checks
    /// this in SYS.RD, RDALL and INFO only; elsewhere it is our explicit choice, which under the
    /// strict LP.INIT rule changes no answer (every LP is initialized before SYS.CONFIG can
    /// run) and under `relaxed_lp_init` catches a host using a CPU that skipped LP.INIT.
    pub(crate) fn lp_gate(&self, lp: u32) -> Result<(), TdxStatus> {
        if self.lp_init[lp as usize] {
            Ok(())
        } else {
            Err(TdxStatus::SYS_LP_INIT_NOT_DONE)
        }
    }

    /// TDH.SYS.INIT (§3.2, §10 item 7).
    pub(crate) fn sys_init(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        let o = &mut *cx.out;
        (o.rcx, o.rdx, o.r8, o.r9, o.r10) = (0, 0, 0, 0, 0);
        if self.sys_lock_busy(true) {
            return TdxStatus::SYS_BUSY;
        }
        if cx.args.rcx != 0 {
            return invalid(OperandId::RCX);
        }
        if self.state != SysState::SysinitPending {
            return TdxStatus::SYS_INIT_NOT_PENDING;
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        // Platform checks in the module's order (`tdh_sys_init.c`): the key-management
        // configuration, whose KeyID arithmetic fixes the PA limit, then the CMR list. The
        // KeyID failure carries MAX_HKIDS (2048) in its low bits, as the module adds it there.
        if self.cfg.keyids.private_max() >= MAX_HKIDS {
            return TdxStatus(
                TdxStatus::NUM_ACTIVATED_HKIDS_NOT_SUPPORTED.0 | u64::from(MAX_HKIDS),
            );
        }
        if !cmr_list_valid(self.cfg.cmr_slice(), self.pa_limit()) {
            return TdxStatus::CMR_LIST_INVALID;
        }
        self.num_init_lps = 0;
        self.state = SysState::SysinitDone;
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.LP.INIT (§3.2, §10 item 8).
    pub(crate) fn sys_lp_init(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        let o = &mut *cx.out;
        (o.rcx, o.rdx, o.r8) = (0, 0, 0);
        if self.sys_lock_busy(false) {
            return TdxStatus::SYS_BUSY;
        }
        let pending = match self.state {
            SysState::SysinitDone => true,
            SysState::SysconfigDone | SysState::SysReady => self.cfg.relaxed_lp_init,
            _ => false,
        };
        if !pending {
            return TdxStatus::SYS_LP_INIT_NOT_PENDING;
        }
        if self.lp_init[cx.lp as usize] {
            return TdxStatus::SYS_LP_INIT_DONE;
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        self.lp_init[cx.lp as usize] = true;
        self.num_init_lps += 1;
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.RD (§2.3): RDX = field ID in, R8 = value and RDX = next ID out.
    pub(crate) fn sys_rd(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        cx.out.rdx = FieldId::NONE.0;
        cx.out.r8 = 0;
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        let id = FieldId(cx.args.rdx);
        if id == FieldId::NULL {
            cx.out.rdx = self.md_field(0).map_or(FieldId::NONE.0, |(f, _)| f.0);
            return TdxStatus::METADATA_FIRST_FIELD_ID_IN_CONTEXT;
        }
        let Some(i) = id.is_single().then(|| self.md_find(id)).flatten() else {
            return TdxStatus::METADATA_FIELD_ID_INCORRECT;
        };
        let (_, value) = self.md_field(i).unwrap_or((FieldId::NONE, 0));
        cx.out.r8 = value;
        cx.out.rdx = self.md_field(i + 1).map_or(FieldId::NONE.0, |(f, _)| f.0);
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.RDALL (§2.3). List format (emulator's, documented): 8-byte header
    /// `{u16 bytes_used, u16 num_sequences, u32 0}` then `{u64 field_id, u64 value}` per field.
    pub(crate) fn sys_rdall(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        cx.out.r8 = FieldId::NONE.0;
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let buf_pa = cx.args.rdx;
        if !self.is_shared_hpa(buf_pa, RDALL_BUFFER_ALIGNMENT) {
            return invalid(OperandId::RDX);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        let start = FieldId(cx.args.r8);
        let first = if start == FieldId::NULL {
            0
        } else {
            match self.md_find(start) {
                Some(i) => i,
                None => return TdxStatus::METADATA_FIELD_ID_INCORRECT,
            }
        };
        let mut buf = [0u8; RDALL_BUFFER_ALIGNMENT as usize];
        let cap = (buf.len() - 8) / 16;
        let mut n = 0usize;
        let mut i = first;
        while n < cap {
            let Some((f, v)) = self.md_field(i) else {
                break;
            };
            let at = 8 + 16 * n;
            buf[at..at + 8].copy_from_slice(&f.0.to_le_bytes());
            buf[at + 8..at + 16].copy_from_slice(&v.to_le_bytes());
            n += 1;
            i += 1;
        }
        let used = 8 + 16 * n;
        buf[0..2].copy_from_slice(&(used as u16).to_le_bytes());
        buf[2..4].copy_from_slice(&(n as u16).to_le_bytes());
        let pa = self.strip_hkid(buf_pa);
        if cx.mem.write(pa, &buf[..used]).is_err() {
            self.record_bug(HostBug::MemWrite(pa));
            return invalid(OperandId::RDX);
        }
        match self.md_field(i) {
            Some((next, _)) => {
                cx.out.r8 = next.0;
                TdxStatus::METADATA_LIST_OVERFLOW
            }
            None => TdxStatus::SUCCESS,
        }
    }

    /// TDH.SYS.INFO (§2.3, §5.2): TDSYSINFO_STRUCT at RCX, all 32 CMR_INFO entries at R8.
    pub(crate) fn sys_info(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        cx.out.rdx = 0;
        cx.out.r9 = 0;
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let a = *cx.args;
        if !self.is_shared_hpa(a.rcx, TDSYSINFO_STRUCT_SIZE) {
            return invalid(OperandId::RCX);
        }
        if a.rdx < TDSYSINFO_STRUCT_SIZE {
            return invalid(OperandId::RDX);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        // First side effect (the fault hook sits just above): the module zeroes the
        // TDSYSINFO_STRUCT buffer here, before it checks R8 and R9
        // (`tdh_sys_info.c`), so the host's buffer is cleared even when they are refused.
        let info_pa = self.strip_hkid(a.rcx);
        if cx
            .mem
            .write(info_pa, &[0u8; TDSYSINFO_STRUCT_SIZE as usize])
            .is_err()
        {
            self.record_bug(HostBug::MemWrite(info_pa));
            return invalid(OperandId::RCX);
        }
        if !self.is_shared_hpa(a.r8, CMR_INFO_ARRAY_ALIGNMENT) {
            return invalid(OperandId::R8);
        }
        if a.r9 < MAX_CMRS as u64 {
            return invalid(OperandId::R9);
        }
        let c = &self.cfg;
        let mut info = [0u8; TDSYSINFO_STRUCT_SIZE as usize];
        let mut put =
            |off: usize, bytes: &[u8]| info[off..off + bytes.len()].copy_from_slice(bytes);
        put(0, &c.sys_attributes.to_le_bytes());
        put(4, &0x8086u32.to_le_bytes());
        put(8, &c.version.build_date.to_le_bytes());
        put(12, &c.version.build_num.to_le_bytes());
        put(14, &c.version.minor.to_le_bytes());
        put(16, &c.version.major.to_le_bytes());
        put(18, &[1]); // sys_rd: "use TDH.SYS.RD"
        put(32, &c.limits.max_tdmrs.to_le_bytes());
        put(34, &c.limits.max_reserved_per_tdmr.to_le_bytes());
        put(36, &c.limits.pamt_4k_entry_size.to_le_bytes());
        put(48, &(6u16 * 4096).to_le_bytes());
        put(52, &(6u16 * 4096).to_le_bytes());
        for (k, v) in c.td_fixed.iter().enumerate() {
            put(64 + 8 * k, &v.to_le_bytes());
        }
        let mut cmrs = [0u8; MAX_CMRS * 16];
        for (k, cmr) in c.cmr_slice().iter().enumerate() {
            cmrs[16 * k..16 * k + 8].copy_from_slice(&cmr.base.to_le_bytes());
            cmrs[16 * k + 8..16 * k + 16].copy_from_slice(&cmr.size.to_le_bytes());
        }
        let cmr_pa = self.strip_hkid(a.r8);
        if cx.mem.write(info_pa, &info).is_err() {
            self.record_bug(HostBug::MemWrite(info_pa));
            return invalid(OperandId::RCX);
        }
        if cx.mem.write(cmr_pa, &cmrs).is_err() {
            self.record_bug(HostBug::MemWrite(cmr_pa));
            return invalid(OperandId::R8);
        }
        cx.out.rdx = TDSYSINFO_STRUCT_SIZE;
        cx.out.r9 = MAX_CMRS as u64;
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.CONFIG: every §6 argument check in order, then the per-TDMR checks.
    pub(crate) fn sys_config(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        let a = *cx.args;
        // §6 rule 1.
        if self.sys_lock_busy(true) {
            return TdxStatus::SYS_BUSY;
        }
        // §6 rule 2 (the relaxed module does not wait for every LP, §3.2 divergence note).
        let lps_ready = self.cfg.relaxed_lp_init || self.num_init_lps >= self.cfg.num_lps;
        if self.state != SysState::SysinitDone || !lps_ready {
            return TdxStatus::SYS_CONFIG_NOT_PENDING;
        }
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        // §6 rule 3.
        if !self.is_shared_hpa(a.rcx, TDMR_INFO_PA_ARRAY_ALIGNMENT) {
            return invalid(OperandId::RCX);
        }
        // §6 rule 4.
        if a.rdx == 0 || a.rdx > u64::from(self.cfg.limits.max_tdmrs) {
            return invalid(OperandId::RDX);
        }
        // §6 rule 5; bit 16 is the Dynamic-PAMT opt-in on a DPAMT module (§10 item 13).
        let reserved = if self.cfg.features0 & features0::DYNAMIC_PAMT != 0 {
            !0x1_FFFFu64
        } else {
            !0xFFFFu64
        };
        let keyid = a.r8 & 0xFFFF;
        if a.r8 & reserved != 0 || !self.is_private_hkid(keyid) {
            return invalid(OperandId::R8);
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        // §3.2 side effect before the TDMR checks: it survives a later failure (§10 item 10).
        self.kot.reserve(keyid as u16);
        self.global_keyid = Some(keyid as u16);

        let n = a.rdx as usize;
        let array_pa = self.strip_hkid(a.rcx);
        let entry_sizes = [
            u64::from(self.cfg.limits.pamt_4k_entry_size),
            u64::from(self.cfg.limits.pamt_2m_entry_size),
            u64::from(self.cfg.limits.pamt_1g_entry_size),
        ];
        for i in 0..n {
            // §6 rule 6: entry PA, then copy the entry (all 16 reserved slots, §10 item 14).
            let slot = array_pa + 8 * i as u64;
            let Ok(entry_pa) = read_u64(cx.mem, slot) else {
                self.record_bug(HostBug::MemRead(slot));
                return invalid(OperandId::RCX);
            };
            if !self.is_shared_hpa(entry_pa, TDMR_INFO_ALIGNMENT) {
                return invalid(OperandId::RCX);
            }
            let mut raw = [0u8; TDMR_INFO_READ_BYTES];
            let info_pa = self.strip_hkid(entry_pa);
            if cx.mem.read(info_pa, &mut raw).is_err() {
                self.record_bug(HostBug::MemRead(info_pa));
                return invalid(OperandId::RCX);
            }
            let t = TdmrInfo::from_bytes(&raw);
            let view = PlatformView {
                pa_limit: self.pa_limit(),
                cmrs: self.cfg.cmr_slice(),
                entry_sizes,
                max_reserved: usize::from(self.cfg.limits.max_reserved_per_tdmr)
                    .min(tdx_abi::MAX_RESERVED_PER_TDMR),
            };
            if let Err(s) = validate_tdmr(i, &self.tdmrs[..i], &t, &view) {
                return s;
            }
            self.tdmrs[i] = t;
        }
        // Success: store the table; TDMR.INIT starts at each base; no package configured yet.
        self.num_tdmrs = n;
        for i in 0..n {
            self.next_to_init[i] = self.tdmrs[i].base;
        }
        self.pkg_key_configured = 0;
        self.wbinvd_since_config = [false; crate::config::MAX_LPS];
        self.wbinvd_reported = false;
        self.pamt.clear();
        self.state = SysState::SysconfigDone;
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.KEY.CONFIG (§3.2, §10 item 11).
    pub(crate) fn sys_key_config(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        if self.sys_lock_busy(true) {
            return TdxStatus::SYS_BUSY;
        }
        if self.state != SysState::SysconfigDone {
            return TdxStatus::SYS_KEY_CONFIG_NOT_PENDING;
        }
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let bit = 1u8 << self.package_of(cx.lp);
        if self.pkg_key_configured & bit != 0 {
            return TdxStatus::KEY_CONFIGURED;
        }
        // §3.3 g: every CPU must have done WBINVD between CONFIG and the first KEY.CONFIG.
        if !self.wbinvd_reported {
            let n = self.cfg.num_lps as usize;
            if let Some(lp) = self.wbinvd_since_config[..n].iter().position(|&d| !d) {
                self.wbinvd_reported = true;
                self.record_bug(HostBug::MissingWbinvdBeforeKeyConfig(lp as u32));
            }
        }
        // PCONFIG failures (KEY_GENERATION_FAILED, OPERAND_BUSY|KET) leave the bit clear.
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        self.pkg_key_configured |= bit;
        if self.pkg_key_configured & self.all_packages_mask() == self.all_packages_mask() {
            self.state = SysState::SysReady;
        }
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.TDMR.INIT (§3.2, §10 item 12).
    pub(crate) fn sys_tdmr_init(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        cx.out.rdx = 0;
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        let base = cx.args.rcx;
        let idx = (base.is_multiple_of(GIB) && base < self.pa_limit())
            .then(|| self.tdmrs().iter().position(|t| t.base == base))
            .flatten();
        let Some(idx) = idx else {
            return invalid(OperandId::RCX);
        };
        if self.holds.tdmr & (1 << idx) != 0 {
            return TdxStatus::OPERAND_BUSY.with_operand(OperandId::RCX);
        }
        let end = self.tdmrs[idx].end();
        if self.next_to_init[idx] >= end {
            // RDX stays 0, as in the module (`tdh_sys_tdmr_init.c` clears it at entry and sets
            // it only after initializing a chunk).
            return TdxStatus::TDMR_ALREADY_INITIALIZED;
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        let next = (self.next_to_init[idx] + TDMR_INIT_CHUNK).min(end);
        self.next_to_init[idx] = next;
        cx.out.rdx = next & !(GIB - 1);
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.LP.SHUTDOWN: the one leaf that still runs after shutdown (§3.1 gate 2).
    pub(crate) fn sys_lp_shutdown(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        TdxStatus::SUCCESS
    }

    /// TDH.SYS.SHUTDOWN (simplified §8.3 rule: RCX must equal MODULE_HV).
    pub(crate) fn sys_shutdown(&mut self, cx: &mut Call<'_>) -> TdxStatus {
        if let Err(s) = self.lp_gate(cx.lp) {
            return s;
        }
        if cx.args.rcx != u64::from(self.cfg.version.module_hv) {
            return invalid(OperandId::RCX);
        }
        // After the RCX check, as in `tdh_sys_shutdown.c`: the global lock, exclusive.
        if self.sys_lock_busy(true) {
            return TdxStatus::SYS_BUSY;
        }
        if let Some(s) = self.injected(cx.leaf, cx.lp) {
            return s;
        }
        self.state = SysState::SysShutdown;
        TdxStatus::SUCCESS
    }
}
