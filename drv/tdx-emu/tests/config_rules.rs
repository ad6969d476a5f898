//! Conformance tests for TDH.SYS.CONFIG: every §6 rule in order, and §10 items 13–19.
//! Each test asserts the exact status value (code and detail bytes).

mod common;

use common::{
    cfg, config_args, good_tdmrs, lay_out, leaf, mem, module, rsvd, st, sys_config,
    to_sysinit_done, Mem, ARRAY_PA, INFO_PA,
};
use tdx_abi::consts::{GIB, MIB};
use tdx_abi::{CmrInfo, Leaf, PageSize, TdmrInfo, TdxStatus};
use tdx_emu::{check_config, Contention, EmuConfig, HostBug, TdxModule};

fn ready_for_config() -> (TdxModule, Mem) {
    let (mut m, mut mem) = (module(cfg()), mem());
    to_sysinit_done(&mut m, &mut mem);
    (m, mem)
}

/// SYS.CONFIG through the leaf and through `check_config` must agree.
fn expect(tdmrs: &[TdmrInfo], want: u64) {
    let (mut m, mut mem) = ready_for_config();
    let got = sys_config(&mut m, &mut mem, tdmrs);
    assert_eq!(got.0, want, "leaf: got {got}");
    let got = check_config(&cfg(), tdmrs, 16);
    assert_eq!(got.0, want, "check_config: got {got}");
}

#[test]
fn good_configuration_is_accepted() {
    expect(&good_tdmrs(), 0);
}

// ---- §6 argument rules 1–6 (item 13) ----

#[test]
fn rule1_global_lock_busy() {
    let (mut m, mut mem) = ready_for_config();
    m.hold(Contention::SysExclusive);
    assert_eq!(
        sys_config(&mut m, &mut mem, &good_tdmrs()).0,
        0x8000_0202_0000_0000
    );
    m.release(Contention::SysExclusive);
    m.hold(Contention::SysShared);
    assert_eq!(
        sys_config(&mut m, &mut mem, &good_tdmrs()).0,
        0x8000_0202_0000_0000
    );
}

#[test]
fn rule2_state_checked_before_arguments() {
    let (mut m, mut mem) = (module(cfg()), mem());
    let bad = leaf(Leaf::SysConfig).rcx(3).rdx(0).r8(1 << 20);
    assert_eq!(st(&mut m, 0, bad, &mut mem).0, 0xC000_050C_0000_0000);
}

#[test]
fn rule3_array_pa_alignment_and_shared_hpa() {
    let (mut m, mut mem) = ready_for_config();
    lay_out(&mut mem, &good_tdmrs());
    let seamrr = m.config().seamrr.base;
    for rcx in [ARRAY_PA + 256, 1 << 46, (16u64 << 40) | ARRAY_PA, seamrr] {
        assert_eq!(
            st(&mut m, 0, config_args(2).rcx(rcx), &mut mem).0,
            0xC000_0100_0000_0001,
            "{rcx:#x}"
        );
    }
    assert_eq!(m.global_keyid(), None);
    // Rule 3 precedes rule 4.
    assert_eq!(
        st(&mut m, 0, config_args(0).rcx(ARRAY_PA + 8), &mut mem).0,
        0xC000_0100_0000_0001
    );
    // A shared (non-private) HKID is allowed and stripped before the module reads memory.
    assert_eq!(
        st(
            &mut m,
            0,
            config_args(2).rcx((5u64 << 40) | ARRAY_PA),
            &mut mem
        ),
        TdxStatus::SUCCESS
    );
}

#[test]
fn rule4_count_range() {
    let (mut m, mut mem) = ready_for_config();
    lay_out(&mut mem, &good_tdmrs());
    assert_eq!(
        st(&mut m, 0, config_args(0), &mut mem).0,
        0xC000_0100_0000_0002
    );
    assert_eq!(
        st(&mut m, 0, config_args(65), &mut mem).0,
        0xC000_0100_0000_0002
    );
    // Rule 4 precedes rule 5.
    assert_eq!(
        st(&mut m, 0, config_args(65).r8(1 << 40), &mut mem).0,
        0xC000_0100_0000_0002
    );
    // A module reporting fewer TDMRs enforces its own limit.
    let mut c = cfg();
    c.limits.max_tdmrs = 1;
    let (mut m, mut mem) = (module(c), common::mem());
    to_sysinit_done(&mut m, &mut mem);
    lay_out(&mut mem, &good_tdmrs());
    assert_eq!(
        st(&mut m, 0, config_args(2), &mut mem).0,
        0xC000_0100_0000_0002
    );
}

#[test]
fn rule5_global_keyid() {
    let (mut m, mut mem) = ready_for_config();
    lay_out(&mut mem, &good_tdmrs());
    // Private range is [16, 63].
    for r8 in [15u64, 64, 0, 16 | 1 << 16, 16 | 1 << 63] {
        assert_eq!(
            st(&mut m, 0, config_args(2).r8(r8), &mut mem).0,
            0xC000_0100_0000_0008,
            "{r8:#x}"
        );
    }
    assert_eq!(
        m.global_keyid(),
        None,
        "rejected before the KOT side effect"
    );
    assert_eq!(
        st(&mut m, 0, config_args(2).r8(63), &mut mem),
        TdxStatus::SUCCESS
    );
}

#[test]
fn rule5_dpamt_bit16_only_on_dpamt_module() {
    let mut c = cfg();
    c.features0 |= tdx_abi::metadata::features0::DYNAMIC_PAMT;
    let (mut m, mut mem) = (module(c), mem());
    to_sysinit_done(&mut m, &mut mem);
    lay_out(&mut mem, &good_tdmrs());
    assert_eq!(
        st(&mut m, 0, config_args(2).r8(16 | 1 << 17), &mut mem).0,
        0xC000_0100_0000_0008
    );
    assert_eq!(
        st(&mut m, 0, config_args(2).r8(16 | 1 << 16), &mut mem),
        TdxStatus::SUCCESS
    );
}

#[test]
fn rule6_entry_pa_checked_in_order_after_earlier_tdmrs() {
    let (mut m, mut mem) = ready_for_config();
    lay_out(&mut mem, &good_tdmrs());
    mem.put_u64(ARRAY_PA + 8, INFO_PA + 512 + 64); // entry 1 misaligned
    assert_eq!(
        st(&mut m, 0, config_args(2), &mut mem).0,
        0xC000_0100_0000_0001
    );
    // ... but a bad TDMR 0 is reported first.
    let mut t0 = good_tdmrs()[0];
    t0.size = 0;
    mem.put(INFO_PA, &t0.to_bytes());
    assert_eq!(
        st(&mut m, 0, config_args(2), &mut mem).0,
        0xC000_0A00_0000_0000
    );
    // Entry PA with a private HKID or inside SEAMRR.
    lay_out(&mut mem, &good_tdmrs());
    mem.put_u64(ARRAY_PA + 8, (16u64 << 40) | (INFO_PA + 512));
    assert_eq!(
        st(&mut m, 0, config_args(2), &mut mem).0,
        0xC000_0100_0000_0001
    );
    mem.put_u64(ARRAY_PA + 8, m.config().seamrr.base);
    assert_eq!(
        st(&mut m, 0, config_args(2), &mut mem).0,
        0xC000_0100_0000_0001
    );
}

// ---- item 14: exactly 16 reserved slots / 320 bytes are read ----

#[test]
fn item14_reads_exactly_320_bytes_per_tdmr_info() {
    let tdmrs = good_tdmrs();
    let mut m = module(cfg());
    let mut mem = Mem::default();
    to_sysinit_done(&mut m, &mut mem);
    mem.map(ARRAY_PA, 16);
    mem.map(INFO_PA, 320);
    mem.map(INFO_PA + 512, 320);
    lay_out(&mut mem, &tdmrs);
    assert_eq!(st(&mut m, 0, config_args(2), &mut mem), TdxStatus::SUCCESS);
    // 319 readable bytes are not enough: the module reads all 16 slots.
    let (mut m, mut mem2) = (module(cfg()), Mem::default());
    to_sysinit_done(&mut m, &mut mem2);
    mem2.map(ARRAY_PA, 16);
    mem2.map(INFO_PA, 320);
    mem2.map(INFO_PA + 512, 319);
    mem2.put_u64(ARRAY_PA, INFO_PA);
    mem2.put_u64(ARRAY_PA + 8, INFO_PA + 512);
    mem2.put(INFO_PA, &tdmrs[0].to_bytes());
    mem2.put(INFO_PA + 512, &tdmrs[1].to_bytes()[..319]);
    assert_eq!(
        st(&mut m, 0, config_args(2), &mut mem2).0,
        0xC000_0100_0000_0001
    );
    assert_eq!(
        m.host_bugs().0.collect::<Vec<_>>(),
        vec![HostBug::MemRead(INFO_PA + 512)]
    );
    // A non-null 16th slot is read and validated.
    let mut t = good_tdmrs();
    t[1].reserved[15] = rsvd(GIB, 4096);
    expect(&t, 0xC000_0A21_0000_0F01);
}

// ---- item 15: TDMR range checks ----

#[test]
fn item15_tdmr_wrap() {
    let mut t = good_tdmrs();
    t[1].base = u64::MAX - GIB + 1;
    t[1].size = 2 * GIB;
    expect(&t, 0xC000_0A00_0000_0001);
}

#[test]
fn item15_tdmr_order_and_overlap() {
    let g = good_tdmrs();
    expect(&[g[1], g[0]], 0xC000_0A01_0000_0001);
    let mut t = g;
    t[1].base = GIB; // overlaps TDMR 0 = [0, 2G)
    expect(&t, 0xC000_0A01_0000_0001);
    let mut t = g;
    t[1].base = 0; // same base: ordered (≥) but overlapping
    expect(&t, 0xC000_0A01_0000_0001);
}

#[test]
fn item15_tdmr_alignment_size_and_pa_range() {
    let g = good_tdmrs();
    let mut t = g;
    t[1].base = 4 * GIB + 2 * MIB;
    expect(&t, 0xC000_0A00_0000_0001);
    let mut t = g;
    t[1].size = GIB + 4096;
    expect(&t, 0xC000_0A00_0000_0001);
    let mut t = g;
    t[0].size = 0;
    expect(&t, 0xC000_0A00_0000_0000);
    let mut t = g;
    t[1].base = (1 << 40) - GIB; // last byte stays below the HKID bits: range ok, CMR check fails later
    t[1].size = GIB;
    expect(&t, 0xC000_0A02_0000_0001);
    t[1].size = 2 * GIB; // crosses into the HKID bits
    expect(&t, 0xC000_0A00_0000_0001);
}

// ---- item 16: reserved areas ----

#[test]
fn item16_null_termination() {
    let mut t = good_tdmrs();
    t[0].reserved[3] = rsvd(0, 0);
    t[0].reserved[4] = rsvd(1900 * MIB, 4096);
    expect(&t, 0xC000_0A21_0000_0400);
}

#[test]
fn item16_wrap() {
    let mut t = good_tdmrs();
    t[0].reserved[3] = rsvd(2 * GIB, u64::MAX - 4095);
    expect(&t, 0xC000_0A20_0000_0300);
}

#[test]
fn item16_order_and_overlap() {
    let mut t = good_tdmrs();
    t[0].reserved[1].offset = 512 * 1024; // before slot 0's end (1 MiB): overlap
    expect(&t, 0xC000_0A21_0000_0100);
    let mut t = good_tdmrs();
    t[0].reserved.swap(1, 2);
    expect(&t, 0xC000_0A21_0000_0200);
    // Touching is fine.
    let mut t = good_tdmrs();
    t[0].reserved[0] = rsvd(0, GIB);
    expect(&t, 0);
}

#[test]
fn item16_alignment() {
    let mut t = good_tdmrs();
    t[0].reserved[2].offset += 512;
    expect(&t, 0xC000_0A20_0000_0200);
    let mut t = good_tdmrs();
    t[0].reserved[0].size = MIB + 8;
    expect(&t, 0xC000_0A20_0000_0000);
}

#[test]
fn item16_containment() {
    let mut t = good_tdmrs();
    t[0].reserved[2].size = 32 * MIB + 4096; // runs past the TDMR end
    expect(&t, 0xC000_0A20_0000_0200);
    let mut t = good_tdmrs();
    // offset + size does not wrap, base + offset does.
    t[1].reserved[0] = rsvd(0xFFFF_FFFF_FFFF_E000, 4096);
    expect(&t, 0xC000_0A20_0000_0001);
}

#[test]
fn item16_fully_reserved_tdmr_and_offset_zero_accepted() {
    let mut t = good_tdmrs();
    // TDMR 1 becomes fully reserved: its available memory is empty, so CMR checks pass vacuously.
    t[1].reserved[0] = rsvd(0, 12 * GIB);
    expect(&t, 0);
}

/// The advertised MAX_RESERVED_PER_TDMR is enforced: a non-null slot at or beyond it is
/// TDX_INVALID_RESERVED_IN_TDMR(i, slot), through the leaf and through `check_config`; SYS.RD
/// reports the same limit the check uses.
#[test]
fn item16_reserved_limit_is_enforced() {
    let run = |limit: u16, t: &[TdmrInfo]| {
        let mut c = cfg();
        c.limits.max_reserved_per_tdmr = limit;
        let (mut m, mut mem) = (module(c.clone()), mem());
        to_sysinit_done(&mut m, &mut mem);
        let leaf_status = sys_config(&mut m, &mut mem, t);
        assert_eq!(
            leaf_status,
            check_config(&c, t, 16),
            "leaf and check_config agree"
        );
        leaf_status.0
    };
    // good_tdmrs: TDMR 0 uses slots 0..=2, TDMR 1 none.
    assert_eq!(run(3, &good_tdmrs()), 0);
    assert_eq!(run(2, &good_tdmrs()), 0xC000_0A20_0000_0200);
    assert_eq!(run(1, &good_tdmrs()), 0xC000_0A20_0000_0100);
    // TDMR 1 with two areas under a limit of 1 (TDMR 0 trimmed to one area that still covers
    // its non-CMR and PAMT memory): slot 1 of TDMR 1 is refused.
    let mut t = good_tdmrs();
    t[0].reserved[0] = rsvd(0, 2 * GIB);
    t[0].reserved[1] = rsvd(0, 0);
    t[0].reserved[2] = rsvd(0, 0);
    t[1].reserved[0] = rsvd(0, MIB);
    t[1].reserved[1] = rsvd(2 * MIB, MIB);
    assert_eq!(run(1, &t), 0xC000_0A20_0000_0101);
    assert_eq!(run(2, &t), 0);
    // Null termination is still checked first.
    let mut t = good_tdmrs();
    t[0].reserved[3] = rsvd(0, 0);
    t[0].reserved[4] = rsvd(1900 * MIB, 4096);
    assert_eq!(run(3, &t), 0xC000_0A21_0000_0400);
    // A limit the ABI cannot express is an emulator configuration error.
    let mut c = cfg();
    for bad in [0u16, 17] {
        c.limits.max_reserved_per_tdmr = bad;
        assert_eq!(c.validate(), Err(tdx_emu::ConfigError::MaxReserved(bad)));
    }
}

// ---- item 17: PAMT checks ----

#[test]
fn item17_invalid_pamt_in_level_order() {
    let g = good_tdmrs();
    // 1G level checked first.
    let mut t = g;
    t[0].pamt_1g_base += 8;
    t[0].pamt_4k_size = 0;
    expect(&t, 0xC000_0A10_0000_0200);
    // Wrap.
    let mut t = g;
    t[1].set_pamt(PageSize::Size2M, u64::MAX - 4095, 8192);
    expect(&t, 0xC000_0A10_0000_0101);
    // Size alignment.
    let mut t = g;
    t[1].pamt_4k_size += 16;
    expect(&t, 0xC000_0A10_0000_0001);
    // PA range / HKID bits.
    let mut t = g;
    t[1].pamt_1g_base = 1 << 40;
    expect(&t, 0xC000_0A10_0000_0201);
    // Too small: the 4K PAMT of 12 GiB needs 48 MiB.
    let mut t = g;
    t[1].pamt_4k_size = 48 * MIB - 4096;
    expect(&t, 0xC000_0A10_0000_0001);
    // 1G PAMT needs only 12 × 16 bytes, but size must be a non-zero 4 KiB multiple.
    let mut t = g;
    t[1].pamt_1g_size = 0;
    expect(&t, 0xC000_0A10_0000_0201);
}

#[test]
fn item17_pamt_overlap_between_tdmrs_and_within() {
    let g = good_tdmrs();
    let mut t = g;
    t[1].pamt_2m_base = t[0].pamt_4k_base; // 2M PAMT of TDMR 1 over the 4K PAMT of TDMR 0
    expect(&t, 0xC000_0A12_0000_0101);
    let mut t = g;
    t[0].pamt_1g_base = t[0].pamt_2m_base; // own 2M/1G overlap
    expect(&t, 0xC000_0A12_0000_0100);
    let mut t = g;
    t[0].pamt_2m_base = t[0].pamt_4k_base + 4096; // own 4K/2M overlap
    expect(&t, 0xC000_0A12_0000_0000);
}

#[test]
fn item17_pamt_over_available_memory() {
    let g = good_tdmrs();
    // TDMR 1's 1G PAMT inside TDMR 1's own available memory.
    let mut t = g;
    t[1].pamt_1g_base = 8 * GIB;
    expect(&t, 0xC000_0A12_0001_0201);
    // TDMR 1's 1G PAMT inside TDMR 0's available memory (j = 0 < i = 1).
    let mut t = g;
    t[1].pamt_1g_base = 512 * MIB;
    expect(&t, 0xC000_0A12_0000_0001 | 0x200);
    // TDMR 0's PAMT inside TDMR 1's available memory: detected when TDMR 1 is checked.
    let mut t = g;
    t[0].set_pamt(PageSize::Size4K, 5 * GIB, 8 * MIB);
    expect(&t, 0xC000_0A12_0000_0001);
    // Inside TDMR 0's own available memory: reported at i = 0 against j = 0.
    let mut t = g;
    t[0].pamt_1g_base = 512 * MIB;
    expect(&t, 0xC000_0A12_0000_0200);
}

#[test]
fn item17_pamt_outside_cmrs() {
    let g = good_tdmrs();
    // Outside all TDMRs (allowed) but in the 2-4 GiB CMR gap.
    let mut t = g;
    t[1].pamt_1g_base = 3 * GIB;
    expect(&t, 0xC000_0A11_0000_0201);
    let mut t = g;
    t[0].pamt_2m_base = 2 * GIB + 64 * MIB;
    expect(&t, 0xC000_0A11_0000_0100);
    // In SEAMRR's reserved area, which is not CMR memory.
    let mut t = g;
    t[0].pamt_1g_base = 2 * GIB - 16 * MIB;
    expect(&t, 0xC000_0A11_0000_0200);
}

// ---- item 18: TDMR available memory inside CMRs ----

#[test]
fn item18_tdmr_outside_cmrs() {
    let g = good_tdmrs();
    let mut t = g;
    t[0].reserved[0] = rsvd(0, 0x8_0000); // leaves [512K, 1M) available, below CMR 0
    expect(&t, 0xC000_0A02_0000_0000);
    // CMR 1 shrunk to [4G, 15G): TDMR 1 = [4G, 16G) has available memory outside it.
    let c = cfg().with_cmrs(&[cfg().cmrs[0], CmrInfo::new(4 * GIB, 11 * GIB)]);
    assert_eq!(check_config(&c, &g, 16).0, 0xC000_0A02_0000_0001);
    let mut t = g;
    t[1].reserved[0] = rsvd(11 * GIB, GIB);
    assert_eq!(check_config(&c, &t, 16), TdxStatus::SUCCESS);
}

#[test]
fn item18_touching_cmrs_merge_gaps_do_not() {
    let cmrs = [
        CmrInfo::new(MIB, GIB - MIB),
        CmrInfo::new(GIB, GIB),     // touches the first
        CmrInfo::new(3 * GIB, GIB), // gap at [2G, 3G)
    ];
    let c = EmuConfig::new(2, 1).with_cmrs(&cmrs);
    let mut t = TdmrInfo::new(0, 2 * GIB);
    t.reserved[0] = rsvd(0, MIB);
    t.set_pamt(PageSize::Size4K, 3 * GIB, 8 * MIB);
    t.set_pamt(PageSize::Size2M, 3 * GIB + 8 * MIB, 16 * 1024);
    t.set_pamt(PageSize::Size1G, 3 * GIB + 8 * MIB + 16 * 1024, 4096);
    assert_eq!(check_config(&c, &[t], 16), TdxStatus::SUCCESS);
    // [0, 3G) with the PAMT at 3G: the available span [1M, 3G) crosses the [2G, 3G) gap.
    let mut t2 = TdmrInfo::new(0, 3 * GIB);
    t2.reserved[0] = rsvd(0, MIB);
    t2.set_pamt(PageSize::Size4K, 3 * GIB, 12 * MIB);
    t2.set_pamt(PageSize::Size2M, 3 * GIB + 12 * MIB, 24 * 1024);
    t2.set_pamt(PageSize::Size1G, 3 * GIB + 12 * MIB + 24 * 1024, 4096);
    assert_eq!(check_config(&c, &[t2], 16).0, 0xC000_0A02_0000_0000);
    t2.reserved[1] = rsvd(2 * GIB, GIB);
    assert_eq!(check_config(&c, &[t2], 16), TdxStatus::SUCCESS);
}

// ---- item 19: detail packing and printing ----

#[test]
fn item19_details_print() {
    let mut t = good_tdmrs();
    t[1].pamt_2m_base = t[0].pamt_4k_base;
    let s = check_config(&cfg(), &t, 16);
    assert_eq!(
        format!("{s}"),
        "0xC0000A1200000101 TDX_PAMT_OVERLAP tdmr=1 level=1 other=0"
    );
    assert_eq!(
        (s.tdmr_index(), s.level_or_slot(), s.other_tdmr()),
        (1, 1, 0)
    );
}

#[test]
fn check_config_reports_platform_and_count_errors() {
    let c = cfg().with_cmrs(&[CmrInfo::new(0x1234, 4096)]);
    assert_eq!(
        check_config(&c, &good_tdmrs(), 16),
        TdxStatus::CMR_LIST_INVALID
    );
    assert_eq!(check_config(&cfg(), &[], 16).0, 0xC000_0100_0000_0002);
    assert_eq!(
        check_config(&cfg(), &good_tdmrs(), 5).0,
        0xC000_0100_0000_0008
    );
}
