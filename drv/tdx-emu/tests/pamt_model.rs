//! Conformance tests for §10 item 20 (PAMT model) and the PHYMEM leaves (§2.3, §9.2).

mod common;

use common::{call, cfg, init_tdmr, leaf, mem, module, st, to_ready, Mem};
use tdx_abi::consts::{GIB, MIB};
use tdx_abi::{KotState, Leaf, PageSize, PageType, TdxStatus};
use tdx_emu::{Contention, EmuError, FaultRule, PamtEntry, TdxModule};

fn ready() -> (TdxModule, Mem) {
    let (mut m, mut mem) = (module(cfg()), mem());
    to_ready(&mut m, &mut mem);
    (m, mem)
}

const RANGE_ERR_RCX: u64 = 0xC000_0101_0000_0001;
const INVALID_RCX: u64 = 0xC000_0100_0000_0001;

#[test]
fn item20_rdmd_before_ready_is_not_ready() {
    let (mut m, mut mem) = (module(cfg()), mem());
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemPageRdmd).rcx(4 * GIB), &mut mem).0,
        0xC000_0505_0000_0000
    );
}

#[test]
fn item20_readiness_is_1gib_granular() {
    let (mut m, mut mem) = ready();
    let rdmd = |m: &mut TdxModule, mem: &mut Mem, pa: u64| {
        call(m, 0, leaf(Leaf::PhymemPageRdmd).rcx(pa), mem)
    };
    assert_eq!(rdmd(&mut m, &mut mem, 4 * GIB).status().0, RANGE_ERR_RCX);
    // 255 calls = 1020 MiB initialized: still nothing usable.
    for _ in 0..255 {
        st(&mut m, 0, leaf(Leaf::SysTdmrInit).rcx(4 * GIB), &mut mem);
    }
    assert_eq!(rdmd(&mut m, &mut mem, 4 * GIB).status().0, RANGE_ERR_RCX);
    st(&mut m, 0, leaf(Leaf::SysTdmrInit).rcx(4 * GIB), &mut mem);
    let r = rdmd(&mut m, &mut mem, 4 * GIB);
    assert_eq!(r.status(), TdxStatus::SUCCESS);
    assert_eq!((r.rcx, r.rdx, r.r8, r.r9), (PageType::Nda as u64, 0, 0, 0));
    // RDMD clears R10 and R11 as well, on success and failure (`tdh_phymem_page_rdmd.c`).
    for pa in [4 * GIB, 3 * GIB] {
        let a = leaf(Leaf::PhymemPageRdmd).rcx(pa);
        let a = tdx_abi::SeamcallArgs {
            r10: 10,
            r11: 11,
            ..a
        };
        let r = call(&mut m, 0, a, &mut mem);
        assert_eq!((r.r10, r.r11), (0, 0), "{pa:#x}: {}", r.status());
    }
    assert_eq!(
        rdmd(&mut m, &mut mem, 5 * GIB - 4096).status(),
        TdxStatus::SUCCESS
    );
    assert_eq!(rdmd(&mut m, &mut mem, 5 * GIB).status().0, RANGE_ERR_RCX);
    // Outside every TDMR, misaligned, HKID bits.
    assert_eq!(rdmd(&mut m, &mut mem, 3 * GIB).status().0, RANGE_ERR_RCX);
    assert_eq!(rdmd(&mut m, &mut mem, 4 * GIB + 8).status().0, INVALID_RCX);
    assert_eq!(
        rdmd(&mut m, &mut mem, (16u64 << 40) | (4 * GIB)).status().0,
        INVALID_RCX
    );
}

#[test]
fn item20_reserved_pages_are_pt_rsvd() {
    let (mut m, mut mem) = ready();
    init_tdmr(&mut m, &mut mem, 0);
    let e = m.pamt_entry(GIB + 4096).unwrap();
    assert_eq!(
        e,
        PamtEntry {
            page_type: PageType::Rsvd,
            owner: 0,
            size: PageSize::Size4K,
            bepoch: 0
        }
    );
    let r = call(
        &mut m,
        0,
        leaf(Leaf::PhymemPageRdmd).rcx(0x8_0000),
        &mut mem,
    );
    assert_eq!(r.rcx, PageType::Rsvd as u64);
    let r = call(
        &mut m,
        0,
        leaf(Leaf::PhymemPageRdmd).rcx(GIB + 64 * MIB),
        &mut mem,
    );
    assert_eq!(
        r.rcx,
        PageType::Nda as u64,
        "first page after the PAMT block"
    );
    // Reserved pages cannot be reclaimed.
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemPageReclaim).rcx(GIB), &mut mem).0,
        0xC000_0300_0000_0001
    );
}

#[test]
fn item20_owned_pages_and_reclaim_lifecycle() {
    let (mut m, mut mem) = ready();
    init_tdmr(&mut m, &mut mem, 4 * GIB);
    let tdr = 4 * GIB;
    let private_2m = 4 * GIB + 2 * MIB;
    m.debug_td_create(tdr).unwrap();
    m.debug_td_add_page(tdr, private_2m, PageSize::Size2M, PageType::Reg)
        .unwrap();
    m.debug_td_add_page(tdr, 4 * GIB + 4096, PageSize::Size4K, PageType::Tdcx)
        .unwrap();
    assert_eq!(
        m.debug_td_add_page(tdr, private_2m + 4096, PageSize::Size4K, PageType::Reg),
        Err(EmuError::NotFree)
    );
    assert_eq!(
        m.debug_td_add_page(tdr, 4 * GIB + MIB, PageSize::Size2M, PageType::Reg),
        Err(EmuError::Misaligned)
    );
    assert_eq!(
        m.debug_td_create(GIB),
        Err(EmuError::NotUsable),
        "TDMR 0 not initialized"
    );

    // RDMD inside a 2M page reports the 2M leaf.
    let r = call(
        &mut m,
        0,
        leaf(Leaf::PhymemPageRdmd).rcx(private_2m + 0x5000),
        &mut mem,
    );
    assert_eq!(
        (r.status(), r.rcx, r.rdx, r.r8),
        (TdxStatus::SUCCESS, PageType::Reg as u64, tdr, 1)
    );

    // Not in TEARDOWN yet: outputs are still written.
    let r = call(
        &mut m,
        0,
        leaf(Leaf::PhymemPageReclaim).rcx(private_2m),
        &mut mem,
    );
    assert_eq!(r.status().0, 0xC000_0607_0000_0000);
    assert_eq!((r.rcx, r.rdx, r.r8), (PageType::Reg as u64, tdr, 1));
    m.debug_td_teardown(tdr).unwrap();
    // A 4K address inside a 2M leaf is misaligned for that leaf.
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageReclaim).rcx(private_2m + 4096),
            &mut mem
        )
        .0,
        INVALID_RCX
    );
    // TDR first: children exist.
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemPageReclaim).rcx(tdr), &mut mem).0,
        0xC000_0400_0000_0000
    );
    // Page lock contention.
    m.hold(Contention::Page(private_2m));
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageReclaim).rcx(private_2m),
            &mut mem
        )
        .0,
        0x8000_0200_0000_0001
    );
    m.release(Contention::Page(private_2m));
    let r = call(
        &mut m,
        0,
        leaf(Leaf::PhymemPageReclaim).rcx(private_2m),
        &mut mem,
    );
    assert_eq!(
        (r.status(), r.rcx, r.rdx, r.r8, r.r9),
        (TdxStatus::SUCCESS, 3, tdr, 1, 0)
    );
    assert_eq!(m.pamt_entry(private_2m).unwrap().page_type, PageType::Nda);
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageReclaim).rcx(4 * GIB + 4096),
            &mut mem
        ),
        TdxStatus::SUCCESS
    );
    // A TDR's PAMT owner is 0 (`tdh_mng_create.c`), so RECLAIM reports owner 0 for it.
    let r = call(&mut m, 0, leaf(Leaf::PhymemPageReclaim).rcx(tdr), &mut mem);
    assert_eq!(
        (r.status(), r.rcx, r.rdx, r.r8),
        (TdxStatus::SUCCESS, PageType::Tdr as u64, 0, 0)
    );
    // Everything is free again; a second reclaim is a metadata error.
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemPageReclaim).rcx(tdr), &mut mem).0,
        0xC000_0300_0000_0001
    );
}

#[test]
fn item20_page_leaf_busy_injection() {
    let (mut m, mut mem) = ready();
    init_tdmr(&mut m, &mut mem, 4 * GIB);
    m.add_fault(FaultRule::once(Leaf::PhymemPageRdmd, 0x8000_0200_0000_0001));
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemPageRdmd).rcx(4 * GIB), &mut mem).0,
        0x8000_0200_0000_0001
    );
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemPageRdmd).rcx(4 * GIB), &mut mem),
        TdxStatus::SUCCESS
    );
}

#[test]
fn phymem_page_wbinvd_needs_private_keyid_and_ready_memory() {
    let (mut m, mut mem) = ready();
    init_tdmr(&mut m, &mut mem, 4 * GIB);
    let tagged = |hkid: u64, pa: u64| (hkid << 40) | pa;
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageWbinvd).rcx(tagged(17, 4 * GIB)),
            &mut mem
        ),
        TdxStatus::SUCCESS
    );
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageWbinvd).rcx(tagged(16, 4 * GIB)),
            &mut mem
        ),
        TdxStatus::SUCCESS,
        "global KeyID"
    );
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageWbinvd).rcx(tagged(3, 4 * GIB)),
            &mut mem
        )
        .0,
        INVALID_RCX
    );
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageWbinvd).rcx(4 * GIB),
            &mut mem
        )
        .0,
        INVALID_RCX
    );
    assert_eq!(
        st(
            &mut m,
            0,
            leaf(Leaf::PhymemPageWbinvd).rcx(tagged(17, 3 * GIB)),
            &mut mem
        )
        .0,
        RANGE_ERR_RCX
    );
}

#[test]
fn phymem_cache_wb_per_package_and_resumable() {
    let (mut m, mut mem) = ready();
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemCacheWb), &mut mem).0,
        0x0000_0821_0000_0000
    );
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemCacheWb).rcx(2), &mut mem).0,
        INVALID_RCX
    );
    m.debug_set_kot(20, KotState::Flushed).unwrap();
    assert_eq!(m.needs_wbcache(20), 0b11);
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemCacheWb).rcx(1), &mut mem).0,
        0xC000_0823_0000_0000
    );
    m.add_fault(FaultRule::once(
        Leaf::PhymemCacheWb,
        TdxStatus::INTERRUPTED_RESUMABLE.0,
    ));
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemCacheWb), &mut mem).0,
        0x8000_0003_0000_0000
    );
    assert_eq!(m.needs_wbcache(20), 0b11);
    assert_eq!(
        st(&mut m, 0, leaf(Leaf::PhymemCacheWb).rcx(1), &mut mem),
        TdxStatus::SUCCESS
    );
    assert_eq!(m.needs_wbcache(20), 0b10, "package 0 done");
    m.hold(Contention::PackageWbcache(1));
    assert_eq!(
        st(&mut m, 1, leaf(Leaf::PhymemCacheWb), &mut mem).0,
        0x8000_0200_0000_00BC
    );
    m.release(Contention::PackageWbcache(1));
    assert_eq!(
        st(&mut m, 3, leaf(Leaf::PhymemCacheWb), &mut mem),
        TdxStatus::SUCCESS
    );
    assert_eq!(m.needs_wbcache(20), 0);
}
