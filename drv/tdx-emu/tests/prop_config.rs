//! Differential property test: `check_config` (the emulator's real SYS.CONFIG path) against an
//! independent oracle written here from the §6 rules, over thousands of random TDMR layouts.
//!
//! The oracle shares no code with the emulator: it works in u128 (so "wrap" is an explicit
//! comparison), materializes available spans and merged CMRs as vectors, and encodes statuses
//! from the §4.2 table by hand. Loop nesting and detail bytes follow `tdh_sys_config.c` of the
//! public 1.5.01 module (§6.2): reserved slots looked at one ahead from each empty slot, PAMT
//! overlaps with the other TDMR j outermost and the levels 4K, 2M, 1G inside.

use proptest::prelude::*;
use tdx_abi::{CmrInfo, ReservedArea, TdmrInfo};
use tdx_emu::{check_config, EmuConfig};

const K4: u128 = 4096;
const M: u64 = 1 << 20;
const G: u64 = 1 << 30;
/// `1 << (MAX_PA 46 - 6 KeyID bits)` for `EmuConfig::new`.
const LIM: u128 = 1 << 40;
const U64_END: u128 = 1 << 64;

fn code(base: u64, i: usize, a: usize, b: usize) -> u64 {
    base | i as u64 | (a as u64) << 8 | (b as u64) << 16
}
const INVALID_TDMR: u64 = 0xC000_0A00_0000_0000;
const NON_ORDERED_TDMR: u64 = 0xC000_0A01_0000_0000;
const TDMR_OUTSIDE_CMRS: u64 = 0xC000_0A02_0000_0000;
const INVALID_PAMT: u64 = 0xC000_0A10_0000_0000;
const PAMT_OUTSIDE_CMRS: u64 = 0xC000_0A11_0000_0000;
const PAMT_OVERLAP: u64 = 0xC000_0A12_0000_0000;
const INVALID_RSVD: u64 = 0xC000_0A20_0000_0000;
const NON_ORDERED_RSVD: u64 = 0xC000_0A21_0000_0000;

/// (level number, base, size) in check order 1G, 2M, 4K.
fn pamts(t: &TdmrInfo) -> [(usize, u128, u128); 3] {
    [
        (2, t.pamt_1g_base as u128, t.pamt_1g_size as u128),
        (1, t.pamt_2m_base as u128, t.pamt_2m_size as u128),
        (0, t.pamt_4k_base as u128, t.pamt_4k_size as u128),
    ]
}

fn hit(a: u128, al: u128, b: u128, bl: u128) -> bool {
    al > 0 && bl > 0 && a.max(b) < (a + al).min(b + bl)
}

/// Non-reserved spans of a TDMR whose reserved list is valid.
fn available(t: &TdmrInfo) -> Vec<(u128, u128)> {
    let (b, e) = (t.base as u128, t.base as u128 + t.size as u128);
    let mut spans = vec![(b, e)];
    for r in t.reserved.iter().filter(|r| r.size != 0) {
        let (rs, re) = (b + r.offset as u128, b + r.offset as u128 + r.size as u128);
        spans = spans
            .into_iter()
            .flat_map(|(s, e)| [(s, e.min(rs)), (s.max(re), e)])
            .filter(|(s, e)| s < e)
            .collect();
    }
    spans
}

fn merged_cmrs(cmrs: &[CmrInfo]) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::new();
    for c in cmrs.iter().filter(|c| c.size != 0) {
        let (s, e) = (c.base as u128, c.base as u128 + c.size as u128);
        match out.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out
}

fn inside_cmr(m: &[(u128, u128)], s: u128, e: u128) -> bool {
    m.iter().any(|&(cs, ce)| cs <= s && e <= ce)
}

fn oracle(cmrs: &[CmrInfo], tdmrs: &[TdmrInfo], keyid: u16) -> u64 {
    if !(16..=63).contains(&keyid) {
        return 0xC000_0100_0000_0008;
    }
    let mc = merged_cmrs(cmrs);
    for (i, t) in tdmrs.iter().enumerate() {
        let (b, s) = (t.base as u128, t.size as u128);
        if b + s >= U64_END {
            return code(INVALID_TDMR, i, 0, 0);
        }
        if i > 0 {
            let p = &tdmrs[i - 1];
            if b < p.base as u128 + p.size as u128 {
                return code(NON_ORDERED_TDMR, i, 0, 0);
            }
        }
        if b % G as u128 != 0 || s == 0 || s % G as u128 != 0 || b + s > LIM {
            return code(INVALID_TDMR, i, 0, 0);
        }
        for (j, r) in t.reserved.iter().enumerate() {
            let (o, z) = (r.offset as u128, r.size as u128);
            if z == 0 {
                if t.reserved.get(j + 1).is_some_and(|n| n.size != 0) {
                    return code(NON_ORDERED_RSVD, i, j, 0);
                }
                continue;
            }
            if o + z >= U64_END {
                return code(INVALID_RSVD, i, j, 0);
            }
            if j > 0 {
                let q = &t.reserved[j - 1];
                if o < q.offset as u128 + q.size as u128 {
                    return code(NON_ORDERED_RSVD, i, j, 0);
                }
            }
            if o % K4 != 0 || z % K4 != 0 || o + z > s {
                return code(INVALID_RSVD, i, j, 0);
            }
        }
        for (lvl, pb, ps) in pamts(t) {
            let need = (s >> (12 + 9 * lvl)) * 16;
            if pb + ps >= U64_END || pb % K4 != 0 || ps % K4 != 0 || pb + ps > LIM || ps < need {
                return code(INVALID_PAMT, i, lvl, 0);
            }
        }
        // Overlap checks take the levels in the order 4K, 2M, 1G.
        let ov = |t: &TdmrInfo| {
            let mut p = pamts(t);
            p.reverse();
            p
        };
        for (j, q) in tdmrs[..i].iter().enumerate() {
            for (lvl, pb, ps) in ov(t) {
                if pamts(q).iter().any(|&(_, qb, qs)| hit(pb, ps, qb, qs)) {
                    return code(PAMT_OVERLAP, i, lvl, j);
                }
            }
        }
        let p = pamts(t);
        let (p1g, p2m, p4k) = (p[0], p[1], p[2]);
        for (x, y) in [(p4k, p2m), (p4k, p1g), (p2m, p1g)] {
            if hit(x.1, x.2, y.1, y.2) {
                return code(PAMT_OVERLAP, i, x.0, i);
            }
        }
        let mine = available(t);
        for (j, tj) in tdmrs[..=i].iter().enumerate() {
            let theirs = available(tj);
            for (lvl, pb, ps) in ov(t) {
                if theirs.iter().any(|&(s0, e0)| hit(pb, ps, s0, e0 - s0)) {
                    return code(PAMT_OVERLAP, i, lvl, j);
                }
            }
            if j < i {
                for (lvl, qb, qs) in ov(tj) {
                    if mine.iter().any(|&(s0, e0)| hit(qb, qs, s0, e0 - s0)) {
                        return code(PAMT_OVERLAP, j, lvl, i);
                    }
                }
            }
        }
        for (lvl, pb, ps) in pamts(t) {
            if !inside_cmr(&mc, pb, pb + ps) {
                return code(PAMT_OUTSIDE_CMRS, i, lvl, 0);
            }
        }
        if mine.iter().any(|&(s0, e0)| !inside_cmr(&mc, s0, e0)) {
            return code(TDMR_OUTSIDE_CMRS, i, 0, 0);
        }
    }
    0
}

/// Random platform + layout, built to be valid most of the time, then mutated.
#[derive(Debug, Clone)]
struct Case {
    cmrs: Vec<CmrInfo>,
    tdmrs: Vec<TdmrInfo>,
    keyid: u16,
}

fn pamt_len(size: u64, shift: u32) -> u64 {
    ((size >> shift) * 16).div_ceil(4096) * 4096
}

fn build(
    cmr_spec: Vec<(u64, u64)>,
    tdmr_spec: Vec<(u64, u64, u64)>,
    rsvd_pamts: bool,
    rsvd_holes: bool,
    extra_rsvd: Vec<(usize, u64, u64)>,
    mutations: Vec<(u8, usize, usize, usize)>,
    keyid: u16,
) -> Case {
    // CMRs in 256 MiB units; the first never starts below 1 MiB.
    let mut cmrs = Vec::new();
    let mut cur = 0u64;
    for (gap, len) in cmr_spec {
        let mut start = cur + gap * 256 * M;
        let mut size = len * 256 * M;
        if start == 0 {
            start = M;
            size -= M;
        }
        cmrs.push(CmrInfo::new(start, size));
        cur = start + size;
    }
    let mut tdmrs: Vec<TdmrInfo> = Vec::new();
    let mut cur = 0u64;
    for &(gap, size, _) in &tdmr_spec {
        let base = cur + gap * G;
        tdmrs.push(TdmrInfo::new(base, size * G));
        cur = base + size * G;
    }
    // Each TDMR's PAMTs packed into a 64 MiB block at a random slot.
    let mut blocks = Vec::new();
    for (t, &(_, _, slot)) in tdmrs.iter_mut().zip(&tdmr_spec) {
        let b = slot * 64 * M;
        let (l4, l2, l1) = (
            pamt_len(t.size, 12),
            pamt_len(t.size, 21),
            pamt_len(t.size, 30),
        );
        t.pamt_4k_base = b;
        t.pamt_4k_size = l4;
        t.pamt_2m_base = b + l4;
        t.pamt_2m_size = l2;
        t.pamt_1g_base = b + l4 + l2;
        t.pamt_1g_size = l1;
        blocks.push((b, 64 * M));
    }
    let merged = merged_cmrs(&cmrs);
    for (ti, t) in tdmrs.iter_mut().enumerate() {
        let (tb, te) = (t.base, t.base + t.size);
        let mut areas: Vec<(u64, u64)> = Vec::new();
        if rsvd_pamts {
            for &(b, l) in &blocks {
                let (s, e) = (b.max(tb), (b + l).min(te));
                if s < e {
                    areas.push((s, e));
                }
            }
        }
        if rsvd_holes {
            let mut c = tb as u128;
            for &(cs, ce) in &merged {
                if cs > c && cs > tb as u128 && c < te as u128 {
                    areas.push((c as u64, (cs as u64).min(te)));
                }
                c = c.max(ce);
            }
            if c < te as u128 {
                areas.push((c as u64, te));
            }
        }
        for &(k, off, len) in &extra_rsvd {
            if k == ti {
                areas.push((tb + off * 64 * M, (tb + off * 64 * M + len * 4096).min(te)));
            }
        }
        areas.retain(|(s, e)| s < e);
        areas.sort();
        let mut merged_areas: Vec<(u64, u64)> = Vec::new();
        for (s, e) in areas {
            match merged_areas.last_mut() {
                Some(l) if s <= l.1 => l.1 = l.1.max(e),
                _ => merged_areas.push((s, e)),
            }
        }
        for (j, (s, e)) in merged_areas.into_iter().take(16).enumerate() {
            t.reserved[j] = ReservedArea {
                offset: s - tb,
                size: e - s,
            };
        }
    }
    let n = tdmrs.len();
    for (kind, i, j, lvl) in mutations {
        let i = i % n;
        let t = &mut tdmrs[i];
        let lvl = [
            tdx_abi::PageSize::Size4K,
            tdx_abi::PageSize::Size2M,
            tdx_abi::PageSize::Size1G,
        ][lvl % 3];
        let (pb, ps) = t.pamt(lvl);
        match kind {
            0 => t.base = t.base.wrapping_add(2 * M),
            1 => t.size = 0,
            2 => t.size = t.size.wrapping_add(4096),
            3 => (t.base, t.size) = (u64::MAX - G + 1, 2 * G),
            4 => (t.base, t.size) = ((1 << 40) - G, 2 * G),
            5 => t.reserved[j].offset = t.reserved[j].offset.wrapping_add(512),
            6 => t.reserved[j] = ReservedArea { offset: 0, size: 0 },
            7 => {
                t.reserved[j] = ReservedArea {
                    offset: 4096,
                    size: u64::MAX - 8191,
                }
            }
            8 => t.reserved.swap(j, (j + 1) % 16),
            9 => t.set_pamt(lvl, pb, ps.saturating_sub(4096)),
            10 => t.set_pamt(lvl, pb.wrapping_add(16), ps),
            11 => t.set_pamt(lvl, 1 << 40, ps),
            12 => t.set_pamt(lvl, u64::MAX - 4095, ps),
            13 => {
                t.reserved[j] = ReservedArea {
                    offset: (j as u64) * 8 * G,
                    size: 64 * M,
                }
            }
            14 => {
                if i > 0 {
                    let prev_base = tdmrs[i - 1].base;
                    tdmrs[i].base = prev_base;
                }
            }
            _ => {
                let other = tdmrs[(i + 1) % n].pamt(lvl);
                tdmrs[i].set_pamt(lvl, other.0.wrapping_add(4096 * j as u64), ps);
            }
        }
    }
    Case { cmrs, tdmrs, keyid }
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((0u64..3, 1u64..24), 1..5),
        prop::collection::vec((0u64..3, 1u64..4, 0u64..200), 1..5),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.8),
        prop::collection::vec((0usize..4, 0u64..40, 1u64..5000), 0..3),
        prop::collection::vec((0u8..16, 0usize..4, 0usize..16, 0usize..3), 0..3),
        prop_oneof![8 => Just(16u16), 1 => 0u16..80],
    )
        .prop_map(|(c, t, rp, rh, x, m, k)| build(c, t, rp, rh, x, m, k))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn check_config_matches_oracle(c in case()) {
        let cfg = EmuConfig::new(2, 1).with_cmrs(&c.cmrs);
        let got = check_config(&cfg, &c.tdmrs, c.keyid);
        let want = oracle(&c.cmrs, &c.tdmrs, c.keyid);
        prop_assert_eq!(got.0, want, "got {} want {:#x}", got, want);
    }
}

/// The generator must reach every outcome class, or the property proves little.
#[test]
fn generator_covers_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeMap::<u64, u32>::new();
    for _ in 0..3000 {
        let c = case().new_tree(&mut runner).unwrap().current();
        *seen
            .entry(oracle(&c.cmrs, &c.tdmrs, c.keyid) & 0xFFFF_FFFF_0000_0000)
            .or_default() += 1;
    }
    for want in [
        0,
        0xC000_0100_0000_0000,
        INVALID_TDMR,
        NON_ORDERED_TDMR,
        TDMR_OUTSIDE_CMRS,
        INVALID_PAMT,
        PAMT_OUTSIDE_CMRS,
        PAMT_OVERLAP,
        INVALID_RSVD,
        NON_ORDERED_RSVD,
    ] {
        assert!(
            seen.get(&want).copied().unwrap_or(0) >= 10,
            "outcome {want:#x} rare: {seen:x?}"
        );
    }
}
