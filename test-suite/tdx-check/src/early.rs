//! Early serving: tdx-host serves TDX frames while TDH.SYS.TDMR.INIT still runs.
//!
//! Pattern: this task starts while tdx-host's TDMR.INIT is under way and asks `status` in a
//! loop (no sleep: it runs only while tdx-host waits) until it answers Ready. Meanwhile it asks
//! for one 4 KiB TDX frame at a time and frees it again at once, and checks the rules: the
//! answer is `Initializing` at step TDMR.INIT with initialized bytes that never shrink,
//! non-TDX memory and `node_info` answer NotReady, TDX frames come before Ready, and their
//! free works. A frame of a block TDMR.INIT had not finished would fail tdx-host's PAGE.RDMD
//! check when the freed frame is scrubbed (the module answers OPERAND_ADDR_RANGE_ERROR there,
//! §3.2): it would be retired, so no byte may be retired once the quarantine is drained.
//!
//! Prints `bench result: init_first_frame` and `init_ready` (guest instructions since boot,
//! TSC under `-icount`, calibrated in the same run) and `bench note: init_blocks` (1 GiB
//! blocks initialized when the first frame was served, of all).

use tdx_host_api::{
    addrs_as_bytes, FrameSize, InitStep, MemClass, ModuleState, TdxHost, TdxHostError, ANY_NODE,
};
use test_api::check;
use test_api::measure::{tsc, Calibration};
use test_api::score::Score;
use userlib::{hl, ulog};

const GIB: u64 = 1 << 30;
/// Status polls before giving up on Ready (each one IPC).
const MAX_POLLS: u32 = 50_000_000;

/// What the first early frame looked like.
#[derive(Clone, Copy)]
struct First {
    tsc: u64,
    done: u64,
    total: u64,
}

/// The cases; runs first, while tdx-host still initializes.
pub fn early_serving_checks(s: &mut Score, t: &TdxHost) {
    let mut first: Option<First> = None;
    let (mut last_done, mut grew, mut saw_init, mut well_formed) = (0, true, false, true);
    let (mut early_frames, mut frees_ok, mut others_not_ready) = (0u32, true, true);
    let mut ready_tsc = None;
    for _ in 0..MAX_POLLS {
        let st = t.status();
        match st.state() {
            Some(ModuleState::Initializing) => {}
            Some(ModuleState::Ready) => {
                ready_tsc = Some(tsc());
                break;
            }
            _ => break,
        }
        if st.step != InitStep::TdmrInit as u8 {
            continue;
        }
        saw_init = true;
        grew &= st.tdmr_bytes_initialized >= last_done;
        well_formed &= st.tdmr_bytes_initialized <= st.tdmr_bytes_total;
        last_done = st.tdmr_bytes_initialized;
        let mut a = [0u64; 1];
        // One frame at a time: the one-frame form, its address in the reply.
        match t.alloc_frame(ANY_NODE, FrameSize::K4, MemClass::Tdx) {
            Ok(addr) => {
                let at = tsc();
                if first.is_none() {
                    let now = t.status();
                    first = Some(First {
                        tsc: at,
                        done: now.tdmr_bytes_initialized,
                        total: now.tdmr_bytes_total,
                    });
                }
                early_frames += 1;
                frees_ok &= addr != 0 && t.free_frame(FrameSize::K4, addr) == Ok(());
            }
            // No block initialized yet.
            Err(TdxHostError::NoMemory) => {}
            _ => frees_ok = false,
        }
        if early_frames == 1 {
            let non = t.alloc_frames(
                ANY_NODE,
                FrameSize::K4,
                MemClass::NonTdx,
                1,
                addrs_as_bytes(&mut a),
            );
            let still = t.status().state() == Some(ModuleState::Initializing);
            others_not_ready &= !still
                || (non == Err(TdxHostError::NotReady)
                    && t.node_info(0).err() == Some(TdxHostError::NotReady));
        }
    }
    check!(
        s,
        "tdx_early_status_is_initializing_with_growing_progress",
        saw_init && grew && well_formed,
        "initializing seen {saw_init}, progress never shrank {grew}, within total {well_formed}"
    );
    check!(
        s,
        "tdx_early_frames_served_before_ready",
        first.is_some_and(|f| f.done < f.total) && ready_tsc.is_some() && frees_ok,
        "first frame at {:?} of {:?} bytes, Ready seen {}, {early_frames} frames, frees ok {frees_ok}",
        first.map(|f| f.done),
        first.map(|f| f.total),
        ready_tsc.is_some()
    );
    check!(
        s,
        "tdx_early_non_tdx_and_node_info_not_ready",
        others_not_ready,
        "non-TDX allocation or node_info answered before Ready"
    );
    let mut drained = false;
    for _ in 0..20_000 {
        if t.stats().quarantined_bytes == 0 {
            drained = true;
            break;
        }
        hl::sleep_for(1, 1);
    }
    let retired = t.stats().retired_bytes;
    check!(
        s,
        "tdx_early_frames_only_from_initialized_blocks",
        drained && retired == 0 && early_frames > 0,
        "drained {drained}, {retired} bytes retired (a frame failed PAGE.RDMD), {early_frames} early frames"
    );
    if let (Some(f), Some(ready)) = (first, ready_tsc) {
        let cal = Calibration::measure::<201>();
        ulog!(
            "bench result: init_first_frame {} instructions",
            cal.instructions(f.tsc)
        );
        ulog!(
            "bench result: init_ready {} instructions",
            cal.instructions(ready)
        );
        ulog!(
            "bench note: init_blocks {}/{}",
            f.done / GIB,
            f.total.div_ceil(GIB)
        );
    }
}
