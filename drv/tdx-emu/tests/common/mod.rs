//! Shared test harness: a region-backed physical memory and bring-up helpers.
//!
//! Invariant: only explicitly mapped regions are readable/writable, so tests can prove how many
//! bytes the module touches (§10 item 14).
#![allow(dead_code)]

use std::collections::BTreeMap;
use tdx_abi::consts::{GIB, MIB};
use tdx_abi::{
    pamt_bytes, Leaf, PageSize, ReservedArea, SeamcallArgs, SeamcallResult, TdmrInfo, TdxStatus,
};
use tdx_emu::{EmuConfig, InstructionOutcome, PhysMem, PhysMemError, TdxModule};

/// Mapped regions keyed by base.
#[derive(Clone, Default)]
pub struct Mem {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl Mem {
    pub fn map(&mut self, base: u64, len: usize) {
        self.regions.insert(base, vec![0; len]);
    }

    fn locate(&self, pa: u64, len: usize) -> Option<(u64, usize)> {
        let (&b, v) = self.regions.range(..=pa).next_back()?;
        let off = (pa - b) as usize;
        (off + len <= v.len()).then_some((b, off))
    }

    pub fn put(&mut self, pa: u64, bytes: &[u8]) {
        self.write(pa, bytes).expect("test wrote unmapped memory");
    }

    pub fn put_u64(&mut self, pa: u64, v: u64) {
        self.put(pa, &v.to_le_bytes());
    }

    pub fn get_u64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(pa, &mut b).unwrap();
        u64::from_le_bytes(b)
    }
}

impl PhysMem for Mem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysMemError> {
        let (b, off) = self.locate(pa, buf.len()).ok_or(PhysMemError { pa })?;
        buf.copy_from_slice(&self.regions[&b][off..off + buf.len()]);
        Ok(())
    }

    fn write(&mut self, pa: u64, buf: &[u8]) -> Result<(), PhysMemError> {
        let (b, off) = self.locate(pa, buf.len()).ok_or(PhysMemError { pa })?;
        self.regions.get_mut(&b).unwrap()[off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

pub const ARRAY_PA: u64 = 0x1_0000;
pub const INFO_PA: u64 = 0x2_0000;
pub const GLOBAL_KEYID: u64 = 16;

/// Default platform: 4 LPs over 2 packages (see `EmuConfig::new`).
pub fn cfg() -> EmuConfig {
    EmuConfig::new(4, 2)
}

pub fn module(c: EmuConfig) -> TdxModule {
    TdxModule::new(c).expect("valid emulator config")
}

pub fn call(m: &mut TdxModule, lp: u32, a: SeamcallArgs, mem: &mut Mem) -> SeamcallResult {
    match m.seamcall(lp, &a, mem) {
        InstructionOutcome::Returned(r) => r,
        o => panic!("SEAMCALL did not return: {o:?}"),
    }
}

pub fn st(m: &mut TdxModule, lp: u32, a: SeamcallArgs, mem: &mut Mem) -> TdxStatus {
    call(m, lp, a, mem).status()
}

pub fn leaf(l: Leaf) -> SeamcallArgs {
    SeamcallArgs::leaf(l)
}

/// Mapped memory for the PA array and 64 TDMR_INFO slots.
pub fn mem() -> Mem {
    let mut m = Mem::default();
    m.map(ARRAY_PA, 512);
    m.map(INFO_PA, 64 * 512);
    m
}

/// SYS.INIT + LP.INIT on every LP.
pub fn to_sysinit_done(m: &mut TdxModule, mem: &mut Mem) {
    assert_eq!(st(m, 0, leaf(Leaf::SysInit), mem), TdxStatus::SUCCESS);
    for lp in 0..m.config().num_lps {
        assert_eq!(st(m, lp, leaf(Leaf::SysLpInit), mem), TdxStatus::SUCCESS);
    }
}

/// Lay out `tdmrs` at INFO_PA and the array at ARRAY_PA.
pub fn lay_out(mem: &mut Mem, tdmrs: &[TdmrInfo]) {
    for (i, t) in tdmrs.iter().enumerate() {
        let pa = INFO_PA + 512 * i as u64;
        mem.put_u64(ARRAY_PA + 8 * i as u64, pa);
        mem.put(pa, &t.to_bytes());
    }
}

pub fn config_args(n: usize) -> SeamcallArgs {
    leaf(Leaf::SysConfig)
        .rcx(ARRAY_PA)
        .rdx(n as u64)
        .r8(GLOBAL_KEYID)
}

/// Lay out and submit SYS.CONFIG on LP 0.
pub fn sys_config(m: &mut TdxModule, mem: &mut Mem, tdmrs: &[TdmrInfo]) -> TdxStatus {
    lay_out(mem, tdmrs);
    st(m, 0, config_args(tdmrs.len()), mem)
}

pub fn rsvd(offset: u64, size: u64) -> ReservedArea {
    ReservedArea { offset, size }
}

/// A valid configuration for `cfg()`: TDMR0 = [0, 2 GiB) with holes [0, 1 MiB), SEAMRR and a
/// 64 MiB PAMT block at 1 GiB holding every PAMT; TDMR1 = [4 GiB, 16 GiB).
pub fn good_tdmrs() -> [TdmrInfo; 2] {
    let mut t0 = TdmrInfo::new(0, 2 * GIB);
    let mut t1 = TdmrInfo::new(4 * GIB, 12 * GIB);
    let mut cursor = GIB;
    for t in [&mut t0, &mut t1] {
        for level in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
            let sz = pamt_bytes(t.size, level, 16);
            t.set_pamt(level, cursor, sz);
            cursor += sz;
        }
    }
    assert!(cursor <= GIB + 64 * MIB);
    t0.reserved[0] = rsvd(0, MIB);
    t0.reserved[1] = rsvd(GIB, 64 * MIB);
    t0.reserved[2] = rsvd(2 * GIB - 32 * MIB, 32 * MIB);
    [t0, t1]
}

/// Full bring-up to SYS_READY (with WBINVD noted on every LP).
pub fn to_ready(m: &mut TdxModule, mem: &mut Mem) {
    to_sysinit_done(m, mem);
    assert_eq!(sys_config(m, mem, &good_tdmrs()), TdxStatus::SUCCESS);
    for lp in 0..m.config().num_lps {
        m.note_wbinvd(lp);
    }
    // LPs 0 and 1 are on packages 0 and 1 (round-robin).
    assert_eq!(st(m, 0, leaf(Leaf::SysKeyConfig), mem), TdxStatus::SUCCESS);
    assert_eq!(st(m, 1, leaf(Leaf::SysKeyConfig), mem), TdxStatus::SUCCESS);
}

/// Run TDMR.INIT on `base` until it reports completion; returns the number of calls.
pub fn init_tdmr(m: &mut TdxModule, mem: &mut Mem, base: u64) -> u32 {
    let mut n = 0;
    loop {
        let r = call(m, 0, leaf(Leaf::SysTdmrInit).rcx(base), mem);
        if r.status() == TdxStatus::TDMR_ALREADY_INITIALIZED {
            return n;
        }
        assert_eq!(r.status(), TdxStatus::SUCCESS);
        n += 1;
    }
}
