//! The one-frame operations (`alloc_frame`, `free_frame`: the address travels in the message,
//! no lease), attacked as `bad_input_checks` attacks their lease forms: an address that is
//! misaligned, unknown, the kernel's, MMIO or zero; a frame freed with the wrong size either
//! way; a double free; a node that does not exist; a size without memory (or over the quota).
//! Every refusal is counted once and changes nothing else (usage, free bytes, quarantine); the
//! granted frames are naturally aligned and come back exactly.
//! Another task's frame (`victim_checks`), a node or class not granted and the quota
//! (`victim.rs`, `quota_checks`) and a page in a TD (`td.rs`) are attacked beside their lease
//! forms' cases.

use tdx_host_api::{FrameSize, MemClass, TdxHost, TdxHostError};
use test_api::check;
use test_api::score::Score;

use super::{expect, settle, tdx_free};

/// The kernel image's first page.
const KERNEL: u64 = 0x10_0000;
/// The local APIC's MMIO page.
const LAPIC: u64 = 0xfee0_0000;
/// Far above this image's RAM.
const ABSENT: u64 = 0x7_0000_0000;

/// What a refused request must leave as it was: the caller's usage, node 0's free TDX bytes,
/// the quarantine and the free TDX bytes over all nodes.
fn books(t: &TdxHost) -> (u64, u64, u64, u64) {
    let st = t.stats();
    let node0 = t.node_info(0).map(|i| i.tdx_bytes_free).unwrap_or(0);
    (
        st.caller_usage_bytes,
        node0,
        st.quarantined_bytes,
        tdx_free(t),
    )
}

pub fn one_frame_checks(s: &mut Score, t: &TdxHost) {
    use FrameSize::{K4, M2};
    use TdxHostError::*;
    let before = tdx_free(t);
    let (usage0, node0, _, _) = books(t);
    let a4 = t.alloc_frame(0, K4, MemClass::Tdx);
    let a2 = t.alloc_frame(0, M2, MemClass::Tdx);
    let held = books(t);
    let (Ok(f4), Ok(f2)) = (a4, a2) else {
        s.check(
            "tdx_alloc_frame_grants_one_aligned_frame",
            false,
            format_args!("{a4:?} {a2:?}"),
        );
        return;
    };
    let bytes = K4.bytes() + M2.bytes();
    check!(
        s,
        "tdx_alloc_frame_grants_one_aligned_frame",
        f4 != 0
            && f4 % K4.bytes() == 0
            && f2 % M2.bytes() == 0
            && held.0 == usage0 + bytes
            && held.1 + bytes == node0,
        "{f4:#x} {f2:#x}, usage {usage0} -> {}, node 0 free {node0} -> {}",
        held.0,
        held.1
    );
    let refused0 = t.stats().refused;
    let quota = t.stats().caller_quota_bytes;
    let g1 = if quota < FrameSize::G1.bytes() {
        QuotaExceeded
    } else {
        NoMemory
    };
    // A 4 KiB frame on a 2 MiB boundary freed as 2 MiB is of the wrong size, elsewhere misaligned.
    let small_as_big = if f4 % M2.bytes() == 0 {
        WrongSize
    } else {
        BadAlignment
    };
    let cases: [(&str, Result<u64, TdxHostError>, TdxHostError); 10] = [
        (
            "tdx_alloc_frame_bad_node_refused",
            t.alloc_frame(expect::NODES + 3, K4, MemClass::Tdx),
            NoSuchNode,
        ),
        (
            "tdx_alloc_frame_size_without_memory_refused",
            t.alloc_frame(0, FrameSize::G1, MemClass::Tdx),
            g1,
        ),
        (
            "tdx_free_frame_misaligned_refused",
            t.free_frame(K4, f4 + 8).map(|()| 0),
            BadAlignment,
        ),
        (
            "tdx_free_frame_unknown_frame_refused",
            t.free_frame(K4, ABSENT).map(|()| 0),
            UnknownFrame,
        ),
        (
            "tdx_free_frame_of_the_kernel_refused",
            t.free_frame(K4, KERNEL).map(|()| 0),
            UnknownFrame,
        ),
        (
            "tdx_free_frame_of_mmio_refused",
            t.free_frame(K4, LAPIC).map(|()| 0),
            UnknownFrame,
        ),
        (
            "tdx_free_frame_of_address_zero_refused",
            t.free_frame(K4, 0).map(|()| 0),
            UnknownFrame,
        ),
        (
            "tdx_free_frame_2m_as_4k_refused",
            t.free_frame(K4, f2).map(|()| 0),
            WrongSize,
        ),
        (
            "tdx_free_frame_4k_as_2m_refused",
            t.free_frame(M2, f4).map(|()| 0),
            small_as_big,
        ),
        (
            "tdx_free_frame_2m_inside_as_4k_refused",
            t.free_frame(K4, f2 + K4.bytes()).map(|()| 0),
            WrongSize,
        ),
    ];
    for (name, r, want) in cases {
        check!(s, name, r == Err(want), "{r:?}, expected {want:?}");
    }
    let after = books(t);
    let refused = t.stats().refused.wrapping_sub(refused0);
    check!(
        s,
        "tdx_one_frame_refusals_change_nothing_and_count_once",
        after == held && refused as usize == cases.len(),
        "{held:?} -> {after:?}, {refused} refusals counted"
    );
    // A scrub step may run on a timer tick between the frees and the read: what it took
    // counts as quarantined too.
    let scrubbed0 = t.stats().scrubbed_bytes;
    let r4 = t.free_frame(K4, f4);
    let r2 = t.free_frame(M2, f2);
    let freed = books(t);
    let scrubbed = t.stats().scrubbed_bytes.wrapping_sub(scrubbed0);
    check!(
        s,
        "tdx_free_frame_quarantines_and_releases_the_quota_at_once",
        r4 == Ok(()) && r2 == Ok(()) && freed.0 == usage0 && freed.2 + scrubbed >= bytes,
        "{r4:?} {r2:?}, usage {}, quarantined {}, scrubbed since {scrubbed}",
        freed.0,
        freed.2
    );
    let d4 = t.free_frame(K4, f4);
    let d2 = t.free_frame(M2, f2);
    check!(
        s,
        "tdx_free_frame_double_free_refused",
        d4 == Err(DoubleFree) && d2 == Err(DoubleFree),
        "{d4:?} {d2:?}"
    );
    let settled = settle(t);
    check!(
        s,
        "tdx_one_frame_totals_return_exactly",
        settled && tdx_free(t) == before,
        "{before} -> {}",
        tdx_free(t)
    );
}
