//! Conformance of the TD life-cycle leaves (§9.2, §9.4, §10 item 24): one whole TD from
//! MNG.CREATE to the last RECLAIM with exact counts, then each leaf's preconditions and
//! out-of-order calls.

mod common;

use common::{call, cfg, init_tdmr, leaf, mem, module, st, to_ready, Mem};
use tdx_abi::consts::{GIB, MIB};
use tdx_abi::td::td_params_offset as off;
use tdx_abi::{
    gpa_operand, KotState, Leaf, OperandId, PageType, TdLifecycle, TdOpState, TdParams, TdxStatus,
};
use tdx_emu::{Contention, EmuConfig, FaultRule, TdxModule};

/// Every page handed to the module lives in TDMR 1's first GiB.
const BASE: u64 = 4 * GIB;
/// Shared page holding TD_PARAMS (1024-aligned, outside TDMRs' private use).
const PARAMS_PA: u64 = 0x4_0000;
/// Shared source page for PAGE.ADD.
const SOURCE_PA: u64 = 0x5_0000;
const HKID: u64 = 17;
const GLOBAL: u64 = common::GLOBAL_KEYID;
/// KeyID bits start at bit 40 on the default platform (MAX_PA 46, 6 KeyID bits).
const HKID_SHIFT: u32 = 40;

fn td_cfg() -> EmuConfig {
    let mut c = cfg();
    // ATTRIBUTES: anything but bit 62 allowed; XFAM: bits 0–19 allowed, x87+SSE required.
    c.td_fixed = [!(1 << 62), 0, 0xF_FFFF, 0b11];
    c
}

fn ready() -> (TdxModule, Mem) {
    let (mut m, mut mem) = (module(td_cfg()), mem());
    to_ready(&mut m, &mut mem);
    init_tdmr(&mut m, &mut mem, BASE);
    mem.map(PARAMS_PA, 1024);
    mem.map(SOURCE_PA, 4096);
    mem.put(PARAMS_PA, &TdParams::default().to_bytes());
    (m, mem)
}

fn page(n: u64) -> u64 {
    BASE + n * 4096
}

fn s(m: &mut TdxModule, lp: u32, a: tdx_abi::SeamcallArgs, mem: &mut Mem) -> TdxStatus {
    st(m, lp, a, mem)
}

fn ok(m: &mut TdxModule, lp: u32, a: tdx_abi::SeamcallArgs, mem: &mut Mem) {
    let r = st(m, lp, a, mem);
    assert_eq!(r, TdxStatus::SUCCESS, "{:?}", a);
}

fn op(code: TdxStatus, o: OperandId) -> TdxStatus {
    code.with_operand(o)
}

/// A TD at `tdr` created with `hkid` and keyed on both packages (LPs 0 and 1).
fn keyed_td(m: &mut TdxModule, mem: &mut Mem, tdr: u64, hkid: u64) {
    ok(m, 0, leaf(Leaf::MngCreate).rcx(tdr).rdx(hkid), mem);
    ok(m, 0, leaf(Leaf::MngKeyConfig).rcx(tdr), mem);
    ok(m, 1, leaf(Leaf::MngKeyConfig).rcx(tdr), mem);
}

/// Add the six TDCS pages `first..first + 6`.
fn add_tdcs(m: &mut TdxModule, mem: &mut Mem, tdr: u64, first: u64) {
    for i in 0..6 {
        ok(
            m,
            0,
            leaf(Leaf::MngAddcx).rcx(page(first + i)).rdx(tdr),
            mem,
        );
    }
}

/// A keyed, initialized TD at page 0 with TDCS pages 1..=6.
fn initialized_td(m: &mut TdxModule, mem: &mut Mem) -> u64 {
    let tdr = page(0);
    keyed_td(m, mem, tdr, HKID);
    add_tdcs(m, mem, tdr, 1);
    ok(m, 0, leaf(Leaf::MngInit).rcx(tdr).rdx(PARAMS_PA), mem);
    tdr
}

/// A vCPU at TDVPR `first` with TDCX pages `first + 1..first + 6`, initialized on `lp`.
fn vcpu(m: &mut TdxModule, mem: &mut Mem, tdr: u64, first: u64, lp: u32) -> u64 {
    let tdvpr = page(first);
    ok(m, 0, leaf(Leaf::VpCreate).rcx(tdvpr).rdx(tdr), mem);
    for i in 1..6 {
        ok(
            m,
            0,
            leaf(Leaf::VpAddcx).rcx(page(first + i)).rdx(tdvpr),
            mem,
        );
    }
    ok(m, lp, leaf(Leaf::VpInit).rcx(tdvpr), mem);
    tdvpr
}

fn rdmd_type(m: &mut TdxModule, mem: &mut Mem, pa: u64) -> (u64, u64) {
    let r = call(m, 0, leaf(Leaf::PhymemPageRdmd).rcx(pa), mem);
    assert_eq!(r.status(), TdxStatus::SUCCESS);
    (r.rcx, r.rdx)
}

#[test]
fn a_whole_td_lives_and_is_torn_down_leaving_every_page_free_and_the_keyid_free() {
    let (mut m, mut mem) = ready();
    let tdr = page(0);
    let m = &mut m;
    let mem = &mut mem;

    // Create: the TDR is PT_TDR with PAMT owner 0; the KeyID is ASSIGNED.
    ok(m, 0, leaf(Leaf::MngCreate).rcx(tdr).rdx(HKID), mem);
    assert_eq!(rdmd_type(m, mem, tdr), (PageType::Tdr as u64, 0));
    assert_eq!(m.kot_state(HKID as u16), Some(KotState::Assigned));
    assert_eq!(m.td_lifecycle(tdr), Some(TdLifecycle::HkidAssigned));

    // KEY.CONFIG on every package (LP 2 shares package 0 with LP 0).
    ok(m, 0, leaf(Leaf::MngKeyConfig).rcx(tdr), mem);
    assert_eq!(
        s(m, 2, leaf(Leaf::MngKeyConfig).rcx(tdr), mem),
        TdxStatus::KEY_CONFIGURED
    );
    assert_eq!(m.td_lifecycle(tdr), Some(TdLifecycle::HkidAssigned));
    ok(m, 1, leaf(Leaf::MngKeyConfig).rcx(tdr), mem);
    assert_eq!(m.td_lifecycle(tdr), Some(TdLifecycle::KeysConfigured));

    // TDCS and MNG.INIT.
    add_tdcs(m, mem, tdr, 1);
    assert_eq!(m.td_child_count(tdr), Some(6));
    ok(m, 0, leaf(Leaf::MngInit).rcx(tdr).rdx(PARAMS_PA), mem);
    assert_eq!(m.td_op_state(tdr), Some(TdOpState::Initialized));

    // Two vCPUs (pages 16..=21 and 32..=37), initialized on LPs 0 and 1.
    let va = vcpu(m, mem, tdr, 16, 0);
    let vb = vcpu(m, mem, tdr, 32, 1);
    assert_eq!(m.td_child_count(tdr), Some(6 + 12));
    assert_eq!(rdmd_type(m, mem, va), (PageType::Tdvpr as u64, tdr));
    assert_eq!(rdmd_type(m, mem, page(17)), (PageType::Tdcx as u64, tdr));

    // Secure EPT for GPA [0, 1 GiB): levels 3, 2, 1 (pages 48..=50).
    for (i, level) in [3u8, 2, 1].into_iter().enumerate() {
        let a = leaf(Leaf::MemSeptAdd)
            .rcx(gpa_operand(0, level))
            .rdx(tdr)
            .r8(page(48 + i as u64));
        ok(m, 0, a, mem);
    }
    assert_eq!(rdmd_type(m, mem, page(48)), (PageType::Ept as u64, tdr));
    assert_eq!(m.td_child_count(tdr), Some(21));

    // PAGE.ADD before finalization, then MR.FINALIZE, then AUG of a 4 KiB and a 2 MiB page.
    let add = leaf(Leaf::MemPageAdd)
        .rcx(gpa_operand(0, 0))
        .rdx(tdr)
        .r8(page(64))
        .r9(SOURCE_PA);
    ok(m, 0, add, mem);
    ok(m, 0, leaf(Leaf::MrFinalize).rcx(tdr), mem);
    assert_eq!(m.td_op_state(tdr), Some(TdOpState::Runnable));
    let aug4k = leaf(Leaf::MemPageAug)
        .rcx(gpa_operand(0x1000, 0))
        .rdx(tdr)
        .r8(page(65));
    ok(m, 0, aug4k, mem);
    let huge = BASE + 2 * MIB;
    let aug2m = leaf(Leaf::MemPageAug)
        .rcx(gpa_operand(2 * MIB, 1))
        .rdx(tdr)
        .r8(huge);
    ok(m, 0, aug2m, mem);
    assert_eq!(m.td_child_count(tdr), Some(21 + 2 + 512));
    let r = call(m, 0, leaf(Leaf::PhymemPageRdmd).rcx(huge + 0x3000), mem);
    assert_eq!((r.rcx, r.rdx, r.r8), (PageType::Reg as u64, tdr, 1));

    // Take the 4 KiB AUG page away: BLOCK, TRACK, REMOVE (REMOVE before TRACK is refused).
    let gpa = gpa_operand(0x1000, 0);
    ok(m, 0, leaf(Leaf::MemRangeBlock).rcx(gpa).rdx(tdr), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MemPageRemove).rcx(gpa).rdx(tdr), mem),
        op(TdxStatus::TLB_TRACKING_NOT_DONE, OperandId::RCX)
    );
    ok(m, 0, leaf(Leaf::MemTrack).rcx(tdr), mem);
    let r = call(m, 0, leaf(Leaf::MemPageRemove).rcx(gpa).rdx(tdr), mem);
    assert_eq!((r.status(), r.rcx), (TdxStatus::SUCCESS, page(65)));
    assert_eq!(rdmd_type(m, mem, page(65)), (PageType::Nda as u64, 0));
    assert_eq!(m.td_child_count(tdr), Some(21 + 1 + 512));

    // Teardown: VP.FLUSH must run on the vCPU's own LP, and VPFLUSHDONE needs both flushed.
    assert_eq!(
        s(m, 1, leaf(Leaf::VpFlush).rcx(va), mem),
        TdxStatus::VCPU_NOT_ASSOCIATED
    );
    ok(m, 0, leaf(Leaf::VpFlush).rcx(va), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngVpflushdone).rcx(tdr), mem),
        TdxStatus::FLUSHVP_NOT_DONE
    );
    ok(m, 1, leaf(Leaf::VpFlush).rcx(vb), mem);
    ok(m, 0, leaf(Leaf::MngVpflushdone).rcx(tdr), mem);
    assert_eq!(m.td_lifecycle(tdr), Some(TdLifecycle::Blocked));
    assert_eq!(m.kot_state(HKID as u16), Some(KotState::Flushed));
    assert_eq!(m.needs_wbcache(HKID as u16), 0b11);

    // CACHE.WB per package; package 0's is interrupted once and resumed to completion.
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem),
        TdxStatus::WBCACHE_NOT_COMPLETE
    );
    m.add_fault(FaultRule::once(
        Leaf::PhymemCacheWb,
        TdxStatus::INTERRUPTED_RESUMABLE.0,
    ));
    assert_eq!(
        s(m, 0, leaf(Leaf::PhymemCacheWb).rcx(0), mem),
        TdxStatus::INTERRUPTED_RESUMABLE
    );
    assert_eq!(m.needs_wbcache(HKID as u16), 0b11);
    ok(m, 0, leaf(Leaf::PhymemCacheWb).rcx(1), mem);
    assert_eq!(m.needs_wbcache(HKID as u16), 0b10);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem),
        TdxStatus::WBCACHE_NOT_COMPLETE
    );
    ok(m, 1, leaf(Leaf::PhymemCacheWb).rcx(0), mem);
    assert_eq!(m.needs_wbcache(HKID as u16), 0);

    // KEY.FREEID: KeyID FREE, TD in TEARDOWN.
    ok(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem);
    assert_eq!(m.kot_state(HKID as u16), Some(KotState::HkidFree));
    assert_eq!(m.td_lifecycle(tdr), Some(TdLifecycle::Teardown));

    // RECLAIM every page, the TDR last; each lowers the child count by its size.
    assert_eq!(
        s(m, 0, leaf(Leaf::PhymemPageReclaim).rcx(tdr), mem),
        TdxStatus::TD_ASSOCIATED_PAGES_EXIST
    );
    let mut pages: Vec<u64> = (1..=6).chain(16..=21).chain(32..=37).collect();
    pages.extend([48, 49, 50, 64]);
    let mut expected = 21 + 1 + 512;
    for p in pages.iter().map(|n| page(*n)) {
        let r = call(m, 0, leaf(Leaf::PhymemPageReclaim).rcx(p), mem);
        assert_eq!(
            (r.status(), r.rdx, r.r8),
            (TdxStatus::SUCCESS, tdr, 0),
            "{p:#x}"
        );
        expected -= 1;
        assert_eq!(m.td_child_count(tdr), Some(expected));
        let tagged = p | HKID << HKID_SHIFT;
        ok(m, 0, leaf(Leaf::PhymemPageWbinvd).rcx(tagged), mem);
    }
    let r = call(m, 0, leaf(Leaf::PhymemPageReclaim).rcx(huge), mem);
    assert_eq!((r.status(), r.r8), (TdxStatus::SUCCESS, 1));
    assert_eq!(m.td_child_count(tdr), Some(0));
    let r = call(m, 0, leaf(Leaf::PhymemPageReclaim).rcx(tdr), mem);
    assert_eq!(
        (r.status(), r.rcx, r.rdx),
        (TdxStatus::SUCCESS, PageType::Tdr as u64, 0)
    );
    ok(
        m,
        0,
        leaf(Leaf::PhymemPageWbinvd).rcx(tdr | GLOBAL << HKID_SHIFT),
        mem,
    );

    // Everything is PT_NDA again, the TD is gone and its KeyID can be used anew.
    assert_eq!(m.owned_pages(), 0);
    assert_eq!(m.td_lifecycle(tdr), None);
    for p in pages
        .iter()
        .map(|n| page(*n))
        .chain([tdr, huge, huge + 0x1F_F000])
    {
        assert_eq!(rdmd_type(m, mem, p), (PageType::Nda as u64, 0), "{p:#x}");
    }
    assert_eq!(m.kot_state(HKID as u16), Some(KotState::HkidFree));
    ok(m, 0, leaf(Leaf::MngCreate).rcx(tdr).rdx(HKID), mem);
}

#[test]
fn mng_create_takes_only_a_free_private_keyid_and_a_free_tdr_page() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let create = |tdr: u64, hkid: u64| leaf(Leaf::MngCreate).rcx(tdr).rdx(hkid);
    let rdx_invalid = op(TdxStatus::OPERAND_INVALID, OperandId::RDX);
    // Shared KeyID, beyond the private range, reserved bits, the global KeyID.
    assert_eq!(s(m, 0, create(page(0), 15), mem), rdx_invalid);
    assert_eq!(s(m, 0, create(page(0), 64), mem), rdx_invalid);
    assert_eq!(s(m, 0, create(page(0), 1 << 16 | HKID), mem), rdx_invalid);
    assert_eq!(
        s(m, 0, create(page(0), GLOBAL), mem),
        TdxStatus::HKID_NOT_FREE
    );
    // TDR operand: misaligned, HKID bits, outside initialized TDMR memory, locked elsewhere.
    let rcx = |c| op(c, OperandId::RCX);
    assert_eq!(
        s(m, 0, create(page(0) + 8, HKID), mem),
        rcx(TdxStatus::OPERAND_INVALID)
    );
    assert_eq!(
        s(m, 0, create(page(0) | HKID << HKID_SHIFT, HKID), mem),
        rcx(TdxStatus::OPERAND_INVALID)
    );
    assert_eq!(
        s(m, 0, create(3 * GIB, HKID), mem),
        rcx(TdxStatus::OPERAND_ADDR_RANGE_ERROR)
    );
    m.hold(Contention::Page(page(0)));
    assert_eq!(
        s(m, 0, create(page(0), HKID), mem),
        rcx(TdxStatus::OPERAND_BUSY)
    );
    m.release(Contention::Page(page(0)));
    // Nothing above changed anything.
    assert_eq!(m.kot_state(HKID as u16), Some(KotState::HkidFree));
    assert_eq!(m.owned_pages(), 0);
    ok(m, 0, create(page(0), HKID), mem);
    // The same KeyID again, and another TD's TDR as a TDR page.
    assert_eq!(
        s(m, 0, create(page(1), HKID), mem),
        TdxStatus::HKID_NOT_FREE
    );
    assert_eq!(
        s(m, 0, create(page(0), HKID + 1), mem),
        rcx(TdxStatus::PAGE_METADATA_INCORRECT)
    );
}

#[test]
fn mng_create_beyond_the_td_table_is_refused_with_the_capacity_status() {
    let (mut m, mut mem) = ready();
    for i in 0..tdx_emu::MAX_TDS as u64 {
        ok(
            &mut m,
            0,
            leaf(Leaf::MngCreate).rcx(page(i)).rdx(HKID + i),
            &mut mem,
        );
    }
    let a = leaf(Leaf::MngCreate).rcx(page(100)).rdx(HKID + 40);
    assert_eq!(s(&mut m, 0, a, &mut mem), TdxStatus::EMU_CAPACITY_EXCEEDED);
    assert_eq!(m.kot_state((HKID + 40) as u16), Some(KotState::HkidFree));
}

#[test]
fn key_config_is_once_per_package_and_only_before_the_keys_are_configured() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = page(0);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyConfig).rcx(tdr), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::RCX)
    );
    ok(m, 0, leaf(Leaf::MngCreate).rcx(tdr).rdx(HKID), mem);
    // Injected key-generation failure changes nothing.
    m.add_fault(FaultRule::once(
        Leaf::MngKeyConfig,
        TdxStatus::KEY_GENERATION_FAILED.0,
    ));
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyConfig).rcx(tdr), mem),
        TdxStatus::KEY_GENERATION_FAILED
    );
    ok(m, 0, leaf(Leaf::MngKeyConfig).rcx(tdr), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyConfig).rcx(tdr), mem),
        TdxStatus::KEY_CONFIGURED
    );
    // ADDCX before the last package is keyed.
    assert_eq!(
        s(m, 0, leaf(Leaf::MngAddcx).rcx(page(1)).rdx(tdr), mem),
        TdxStatus::TD_KEYS_NOT_CONFIGURED
    );
    ok(m, 3, leaf(Leaf::MngKeyConfig).rcx(tdr), mem);
    assert_eq!(
        s(m, 1, leaf(Leaf::MngKeyConfig).rcx(tdr), mem),
        TdxStatus::LIFECYCLE_STATE_INCORRECT
    );
}

#[test]
fn addcx_takes_six_to_nine_free_pages_and_none_after_mng_init() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = page(0);
    keyed_td(m, mem, tdr, HKID);
    let addcx = |p: u64| leaf(Leaf::MngAddcx).rcx(p).rdx(tdr);
    // The TDR operand must be a TDR, the new page free (another TD's TDR is not).
    assert_eq!(
        s(m, 0, leaf(Leaf::MngAddcx).rcx(page(1)).rdx(page(2)), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::RDX)
    );
    assert_eq!(
        s(m, 0, addcx(tdr), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::RCX)
    );
    // MNG.INIT before the sixth page.
    for i in 1..=5 {
        ok(m, 0, addcx(page(i)), mem);
    }
    assert_eq!(
        s(m, 0, leaf(Leaf::MngInit).rcx(tdr).rdx(PARAMS_PA), mem),
        TdxStatus::TDCS_NOT_ALLOCATED
    );
    for i in 6..=9 {
        ok(m, 0, addcx(page(i)), mem);
    }
    assert_eq!(s(m, 0, addcx(page(10)), mem), TdxStatus::TDCX_NUM_INCORRECT);
    ok(m, 0, leaf(Leaf::MngInit).rcx(tdr).rdx(PARAMS_PA), mem);
    assert_eq!(m.td_child_count(tdr), Some(9));

    // On a fresh TD: the seventh page after MNG.INIT is refused by the op state.
    let tdr2 = page(20);
    keyed_td(m, mem, tdr2, HKID + 1);
    add_tdcs(m, mem, tdr2, 21);
    ok(m, 0, leaf(Leaf::MngInit).rcx(tdr2).rdx(PARAMS_PA), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngAddcx).rcx(page(30)).rdx(tdr2), mem),
        TdxStatus::OP_STATE_INCORRECT
    );
    assert_eq!(
        s(m, 0, leaf(Leaf::MngInit).rcx(tdr2).rdx(PARAMS_PA), mem),
        TdxStatus::OP_STATE_INCORRECT
    );
}

#[test]
fn mng_init_checks_every_td_params_field_a_host_can_get_wrong() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = page(0);
    keyed_td(m, mem, tdr, HKID);
    add_tdcs(m, mem, tdr, 1);
    let init = |pa: u64| leaf(Leaf::MngInit).rcx(tdr).rdx(pa);
    let rdx_invalid = op(TdxStatus::OPERAND_INVALID, OperandId::RDX);
    // Placement: 1024-aligned, shared KeyID, outside SEAMRR.
    assert_eq!(s(m, 0, init(PARAMS_PA + 512), mem), rdx_invalid);
    assert_eq!(
        s(m, 0, init(PARAMS_PA | HKID << HKID_SHIFT), mem),
        rdx_invalid
    );
    assert_eq!(s(m, 0, init(2 * GIB - 16 * MIB), mem), rdx_invalid);

    let good = TdParams::default();
    let cases: Vec<(TdParams, OperandId)> = vec![
        (
            TdParams {
                attributes: 1 << 62,
                ..good
            },
            OperandId::ATTRIBUTES,
        ),
        (
            TdParams {
                attributes: 1 << 29 | 1,
                ..good
            },
            OperandId::ATTRIBUTES,
        ),
        (TdParams { xfam: 1, ..good }, OperandId::XFAM),
        (
            TdParams {
                xfam: 1 << 30 | 3,
                ..good
            },
            OperandId::XFAM,
        ),
        (
            TdParams {
                xfam: 0b1110_0011,
                ..good
            },
            OperandId::XFAM,
        ),
        (
            TdParams {
                max_vcpus: 0,
                ..good
            },
            OperandId::MAX_VCPUS,
        ),
        (
            TdParams {
                num_l2_vms: 4,
                ..good
            },
            OperandId::NUM_L2_VMS,
        ),
        (
            TdParams {
                config_flags: 1 << 3,
                ..good
            },
            OperandId::EXEC_CONTROLS,
        ),
        (
            TdParams {
                eptp_controls: 0x1E | 1 << 6,
                ..good
            },
            OperandId::EPTP_CONTROLS,
        ),
        (
            TdParams {
                tsc_frequency: 3,
                ..good
            },
            OperandId::TSC_FREQUENCY,
        ),
        (
            TdParams {
                tsc_frequency: 401,
                ..good
            },
            OperandId::TSC_FREQUENCY,
        ),
    ];
    for (p, o) in cases {
        mem.put(PARAMS_PA, &p.to_bytes());
        assert_eq!(
            s(m, 0, init(PARAMS_PA), mem),
            op(TdxStatus::OPERAND_INVALID, o),
            "{p:?}"
        );
    }
    // One L2 VM needs a seventh TDCS page.
    mem.put(
        PARAMS_PA,
        &TdParams {
            num_l2_vms: 1,
            ..good
        }
        .to_bytes(),
    );
    assert_eq!(s(m, 0, init(PARAMS_PA), mem), TdxStatus::TDCS_NOT_ALLOCATED);
    // Any reserved byte.
    for at in [off::RESERVED0, off::RESERVED1 + 5, off::RESERVED2, 1023] {
        let mut b = good.to_bytes();
        b[at] = 1;
        mem.put(PARAMS_PA, &b);
        assert_eq!(s(m, 0, init(PARAMS_PA), mem), rdx_invalid, "byte {at}");
    }
    assert_eq!(m.td_op_state(tdr), Some(TdOpState::Uninitialized));
    mem.put(PARAMS_PA, &good.to_bytes());
    ok(m, 0, init(PARAMS_PA), mem);
}

#[test]
fn vcpu_leaves_follow_create_addcx_init_and_count_vcpus() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = page(0);
    keyed_td(m, mem, tdr, HKID);
    add_tdcs(m, mem, tdr, 1);
    // VP.CREATE before MNG.INIT.
    assert_eq!(
        s(m, 0, leaf(Leaf::VpCreate).rcx(page(16)).rdx(tdr), mem),
        TdxStatus::OP_STATE_INCORRECT
    );
    ok(m, 0, leaf(Leaf::MngInit).rcx(tdr).rdx(PARAMS_PA), mem);
    // The TDVPR page must be free: the TDR of another TD is not.
    let other = page(100);
    ok(m, 0, leaf(Leaf::MngCreate).rcx(other).rdx(HKID + 1), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::VpCreate).rcx(other).rdx(tdr), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::RCX)
    );
    let tdvpr = page(16);
    ok(m, 0, leaf(Leaf::VpCreate).rcx(tdvpr).rdx(tdr), mem);
    // VP.ADDCX names the TDVPR in RDX; a TDR there is the wrong page type.
    assert_eq!(
        s(m, 0, leaf(Leaf::VpAddcx).rcx(page(17)).rdx(tdr), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::RDX)
    );
    // VP.INIT and VP.FLUSH before all TDVPS pages exist.
    assert_eq!(
        s(m, 0, leaf(Leaf::VpInit).rcx(tdvpr), mem),
        TdxStatus::TDCX_NUM_INCORRECT
    );
    assert_eq!(
        s(m, 0, leaf(Leaf::VpFlush).rcx(tdvpr), mem),
        TdxStatus::TDCX_NUM_INCORRECT
    );
    for i in 17..=30 {
        ok(m, 0, leaf(Leaf::VpAddcx).rcx(page(i)).rdx(tdvpr), mem);
    }
    assert_eq!(
        s(m, 0, leaf(Leaf::VpAddcx).rcx(page(31)).rdx(tdvpr), mem),
        TdxStatus::TDCX_NUM_INCORRECT,
        "at most 15 TDVPS pages"
    );
    // Page-lock contention on the implicit TDR.
    m.hold(Contention::Page(tdr));
    assert_eq!(
        s(m, 0, leaf(Leaf::VpInit).rcx(tdvpr), mem),
        op(TdxStatus::OPERAND_BUSY, OperandId::TDR)
    );
    m.release(Contention::Page(tdr));
    ok(m, 2, leaf(Leaf::VpInit).rcx(tdvpr), mem);
    assert_eq!(
        s(m, 2, leaf(Leaf::VpInit).rcx(tdvpr), mem),
        TdxStatus::VCPU_STATE_INCORRECT
    );
    assert_eq!(
        s(m, 0, leaf(Leaf::VpAddcx).rcx(page(31)).rdx(tdvpr), mem),
        TdxStatus::VCPU_STATE_INCORRECT
    );
    // max_vcpus is 2 in the default TD_PARAMS.
    vcpu(m, mem, tdr, 40, 1);
    ok(m, 0, leaf(Leaf::VpCreate).rcx(page(50)).rdx(tdr), mem);
    for i in 51..=55 {
        ok(m, 0, leaf(Leaf::VpAddcx).rcx(page(i)).rdx(page(50)), mem);
    }
    assert_eq!(
        s(m, 0, leaf(Leaf::VpInit).rcx(page(50)), mem),
        TdxStatus::MAX_VCPUS_EXCEEDED
    );
    // VP.FLUSH: only on the associated LP, and only once.
    assert_eq!(
        s(m, 0, leaf(Leaf::VpFlush).rcx(tdvpr), mem),
        TdxStatus::VCPU_NOT_ASSOCIATED
    );
    ok(m, 2, leaf(Leaf::VpFlush).rcx(tdvpr), mem);
    assert_eq!(
        s(m, 2, leaf(Leaf::VpFlush).rcx(tdvpr), mem),
        TdxStatus::VCPU_NOT_ASSOCIATED
    );
}

#[test]
fn teardown_leaves_refuse_the_wrong_life_cycle_state() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = initialized_td(m, mem);
    let va = vcpu(m, mem, tdr, 16, 0);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem),
        TdxStatus::LIFECYCLE_STATE_INCORRECT
    );
    assert_eq!(
        s(m, 0, leaf(Leaf::PhymemPageReclaim).rcx(page(1)), mem),
        TdxStatus::LIFECYCLE_STATE_INCORRECT
    );
    assert_eq!(
        s(m, 0, leaf(Leaf::MngVpflushdone).rcx(tdr), mem),
        TdxStatus::FLUSHVP_NOT_DONE
    );
    ok(m, 0, leaf(Leaf::VpFlush).rcx(va), mem);
    ok(m, 0, leaf(Leaf::MngVpflushdone).rcx(tdr), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngVpflushdone).rcx(tdr), mem),
        TdxStatus::LIFECYCLE_STATE_INCORRECT
    );
    // A BLOCKED TD takes no more vCPU or memory leaves.
    assert_eq!(
        s(m, 0, leaf(Leaf::VpFlush).rcx(va), mem),
        TdxStatus::TD_KEYS_NOT_CONFIGURED
    );
    assert_eq!(
        s(m, 0, leaf(Leaf::MemTrack).rcx(tdr), mem),
        TdxStatus::TD_KEYS_NOT_CONFIGURED
    );
    // KEY.FREEID only once every package wrote back.
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem),
        TdxStatus::WBCACHE_NOT_COMPLETE
    );
    ok(m, 0, leaf(Leaf::PhymemCacheWb), mem);
    ok(m, 1, leaf(Leaf::PhymemCacheWb), mem);
    ok(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem),
        TdxStatus::LIFECYCLE_STATE_INCORRECT
    );
}

#[test]
fn a_td_without_tdcs_can_be_torn_down_straight_after_create() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = page(0);
    ok(m, 0, leaf(Leaf::MngCreate).rcx(tdr).rdx(HKID), mem);
    ok(m, 0, leaf(Leaf::MngVpflushdone).rcx(tdr), mem);
    ok(m, 0, leaf(Leaf::PhymemCacheWb), mem);
    ok(m, 1, leaf(Leaf::PhymemCacheWb), mem);
    ok(m, 0, leaf(Leaf::MngKeyFreeid).rcx(tdr), mem);
    ok(m, 0, leaf(Leaf::PhymemPageReclaim).rcx(tdr), mem);
    assert_eq!(m.owned_pages(), 0);
    assert_eq!(m.kot_state(HKID as u16), Some(KotState::HkidFree));
}

#[test]
fn memory_leaves_check_the_gpa_the_walk_and_the_entry_state() {
    let (mut m, mut mem) = ready();
    let (m, mem) = (&mut m, &mut mem);
    let tdr = initialized_td(m, mem);
    let sept = |gpa: u64, level: u8, p: u64| {
        leaf(Leaf::MemSeptAdd)
            .rcx(gpa_operand(gpa, level))
            .rdx(tdr)
            .r8(p)
    };
    let rcx = |c| op(c, OperandId::RCX);
    // Level 0 is not an S-EPT level; misaligned GPA; reserved bits; shared GPA.
    assert_eq!(
        s(m, 0, sept(0, 0, page(48)), mem),
        rcx(TdxStatus::OPERAND_INVALID)
    );
    assert_eq!(
        s(m, 0, sept(MIB, 1, page(48)), mem),
        rcx(TdxStatus::OPERAND_INVALID)
    );
    let a = leaf(Leaf::MemSeptAdd).rcx(0x11).rdx(tdr).r8(page(48));
    assert_eq!(s(m, 0, a, mem), rcx(TdxStatus::OPERAND_INVALID));
    assert_eq!(
        s(m, 0, sept(1 << 47, 3, page(48)), mem),
        rcx(TdxStatus::OPERAND_INVALID)
    );
    // Level 1 before level 2: the walk stops at level 3's entry; RDX tells where.
    let r = call(m, 0, sept(0, 1, page(48)), mem);
    assert_eq!((r.status(), r.rdx), (rcx(TdxStatus::EPT_WALK_FAILED), 3));
    ok(m, 0, sept(0, 3, page(48)), mem);
    assert_eq!(
        s(m, 0, sept(0, 3, page(49)), mem),
        rcx(TdxStatus::EPT_ENTRY_STATE_INCORRECT)
    );
    // The new S-EPT page is an R8 operand; the TDR is not free.
    assert_eq!(
        s(m, 0, sept(0, 2, tdr), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::R8)
    );
    ok(m, 0, sept(0, 2, page(49)), mem);
    ok(m, 0, sept(0, 1, page(50)), mem);

    // PAGE.ADD: the source must be shared; the 4K entry must be free.
    let add = |gpa: u64, p: u64, src: u64| {
        leaf(Leaf::MemPageAdd)
            .rcx(gpa_operand(gpa, 0))
            .rdx(tdr)
            .r8(p)
            .r9(src)
    };
    assert_eq!(
        s(m, 0, add(0, page(64), SOURCE_PA | HKID << HKID_SHIFT), mem),
        op(TdxStatus::OPERAND_INVALID, OperandId::R9)
    );
    ok(m, 0, add(0, page(64), SOURCE_PA), mem);
    assert_eq!(
        s(m, 0, add(0, page(65), SOURCE_PA), mem),
        rcx(TdxStatus::EPT_ENTRY_STATE_INCORRECT)
    );
    // MR.FINALIZE needs a vCPU; afterwards PAGE.ADD is over.
    assert_eq!(
        s(m, 0, leaf(Leaf::MrFinalize).rcx(tdr), mem),
        TdxStatus::NO_VCPUS
    );
    vcpu(m, mem, tdr, 16, 0);
    ok(m, 0, leaf(Leaf::MrFinalize).rcx(tdr), mem);
    assert_eq!(
        s(m, 0, add(0x1000, page(65), SOURCE_PA), mem),
        TdxStatus::OP_STATE_INCORRECT
    );

    // AUG of 2 MiB needs all 512 pages below it free, and a free level-1 entry.
    let aug = |gpa: u64, level: u8, p: u64| {
        leaf(Leaf::MemPageAug)
            .rcx(gpa_operand(gpa, level))
            .rdx(tdr)
            .r8(p)
    };
    let huge = BASE + 2 * MIB;
    ok(m, 0, aug(0x1000, 0, huge + 0x1000), mem);
    assert_eq!(
        s(m, 0, aug(2 * MIB, 1, huge), mem),
        op(TdxStatus::PAGE_METADATA_INCORRECT, OperandId::R8)
    );
    assert_eq!(
        s(m, 0, aug(2 * MIB, 1, huge + 0x1000), mem),
        op(TdxStatus::OPERAND_INVALID, OperandId::R8)
    );
    assert_eq!(
        s(m, 0, aug(0, 1, BASE + 4 * MIB), mem),
        rcx(TdxStatus::EPT_ENTRY_STATE_INCORRECT),
        "a table already occupies the level-1 entry"
    );
    // Injected OPERAND_BUSY changes nothing; the retry succeeds.
    m.add_fault(FaultRule::once(
        Leaf::MemPageAug,
        rcx(TdxStatus::OPERAND_BUSY).0,
    ));
    let before = m.td_child_count(tdr);
    assert_eq!(
        s(m, 0, aug(2 * MIB, 1, BASE + 4 * MIB), mem),
        rcx(TdxStatus::OPERAND_BUSY)
    );
    assert_eq!(m.td_child_count(tdr), before);
    ok(m, 0, aug(2 * MIB, 1, BASE + 4 * MIB), mem);
    // Walking to 4K below a 2 MiB leaf fails at level 1.
    let r = call(m, 0, aug(2 * MIB + 0x1000, 0, page(70)), mem);
    assert_eq!((r.status(), r.rdx), (rcx(TdxStatus::EPT_WALK_FAILED), 1));

    // RUNNABLE: REMOVE needs BLOCK, then TRACK; a second BLOCK is a warning.
    let gpa = gpa_operand(0x1000, 0);
    assert_eq!(
        s(m, 0, leaf(Leaf::MemPageRemove).rcx(gpa).rdx(tdr), mem),
        rcx(TdxStatus::GPA_RANGE_NOT_BLOCKED)
    );
    ok(m, 0, leaf(Leaf::MemRangeBlock).rcx(gpa).rdx(tdr), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MemRangeBlock).rcx(gpa).rdx(tdr), mem),
        rcx(TdxStatus::GPA_RANGE_ALREADY_BLOCKED)
    );
    assert_eq!(
        s(
            m,
            0,
            leaf(Leaf::MemRangeBlock)
                .rcx(gpa_operand(0x2000, 0))
                .rdx(tdr),
            mem
        ),
        rcx(TdxStatus::EPT_ENTRY_STATE_INCORRECT)
    );
    ok(m, 0, leaf(Leaf::MemTrack).rcx(tdr), mem);
    ok(m, 0, leaf(Leaf::MemTrack).rcx(tdr), mem);
    ok(m, 0, leaf(Leaf::MemPageRemove).rcx(gpa).rdx(tdr), mem);
    assert_eq!(
        s(m, 0, leaf(Leaf::MemPageRemove).rcx(gpa).rdx(tdr), mem),
        rcx(TdxStatus::EPT_ENTRY_STATE_INCORRECT)
    );
    // REMOVE does not take S-EPT pages.
    assert_eq!(
        s(
            m,
            0,
            leaf(Leaf::MemPageRemove).rcx(gpa_operand(0, 1)).rdx(tdr),
            mem
        ),
        rcx(TdxStatus::EPT_ENTRY_STATE_INCORRECT)
    );
}

#[test]
fn td_leaves_from_an_uninitialized_lp_or_before_ready_are_refused() {
    let (mut m, mut mem) = (module(td_cfg()), mem());
    assert_eq!(
        s(
            &mut m,
            0,
            leaf(Leaf::MngCreate).rcx(page(0)).rdx(HKID),
            &mut mem
        ),
        TdxStatus::SYS_NOT_READY
    );
    to_ready(&mut m, &mut mem);
    assert_eq!(
        s(
            &mut m,
            0,
            leaf(Leaf::MngCreate).rcx(page(0)).rdx(HKID),
            &mut mem
        ),
        op(TdxStatus::OPERAND_ADDR_RANGE_ERROR, OperandId::RCX),
        "TDMR.INIT has not reached the page"
    );
}

/// In the middle of TDMR.INIT the usable boundary is next-to-initialize rounded down to 1 GiB
/// (§3.2): with TDMR 1 initialized 1 GiB and 40 MiB into it, RDX says 1 GiB, a page just below
/// it is usable (PAGE.RDMD, MNG.CREATE), and the first page of the partly initialized GiB is
/// refused by both with OPERAND_ADDR_RANGE_ERROR naming RCX — although its 4 MiB chunk is done.
#[test]
fn in_the_middle_of_tdmr_init_only_finished_gibs_are_usable() {
    let (mut m, mut mem) = (module(td_cfg()), mem());
    to_ready(&mut m, &mut mem);
    let mut rdx = 0;
    for _ in 0..(GIB / (4 * MIB) + 10) {
        let r = call(&mut m, 0, leaf(Leaf::SysTdmrInit).rcx(BASE), &mut mem);
        assert_eq!(r.status(), TdxStatus::SUCCESS);
        rdx = r.rdx;
    }
    let boundary = BASE + GIB;
    assert_eq!(rdx, boundary, "RDX rounds next-to-initialize down to 1 GiB");
    let rdmd = |m: &mut TdxModule, mem: &mut Mem, pa: u64| {
        s(m, 0, leaf(Leaf::PhymemPageRdmd).rcx(pa), mem)
    };
    assert_eq!(rdmd(&mut m, &mut mem, boundary - 4096), TdxStatus::SUCCESS);
    let refused = op(TdxStatus::OPERAND_ADDR_RANGE_ERROR, OperandId::RCX);
    assert_eq!(rdmd(&mut m, &mut mem, boundary), refused);
    let create = |pa: u64| leaf(Leaf::MngCreate).rcx(pa).rdx(HKID);
    assert_eq!(s(&mut m, 0, create(boundary), &mut mem), refused);
    assert_eq!(
        s(&mut m, 0, create(boundary - 4096), &mut mem),
        TdxStatus::SUCCESS
    );
}
