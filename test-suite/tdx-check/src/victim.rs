//! tdx-victim: a client of tdx-host that is killed while holding TD memory.
//!
//! First life (generation 0): checks the refusals its own policy implies (node not allowed,
//! quota, class not granted; by `alloc_frames` and `alloc_frame`), allocates 7 frames of 4 KiB on node 1, lends the address of one to
//! the check task (which tries to free it: NotOwner), then calls `online_region`, which the
//! manifest's access list does not grant it: the server reply-faults it and jefe restarts it.
//! Later lives: tdx-host must have reclaimed everything (usage 0); it says so to the check task,
//! then allocates 8 frames when the check task asks (op 3) and holds them.

#![no_std]
#![no_main]

use tdx_host_api::{
    addrs_as_bytes, FrameSize, MemClass, ModuleState, RequestIds, TdxHost, TdxHostError,
};
use test_api::score::Score;
use userlib::{sys_recv_open, sys_refresh_task_id, sys_reply, sys_send, ulog, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

/// A message to the check task: 8 bytes of payload, then this life's cases (passed, failed,
/// crc), which the check task counts into its verdict line.
fn message(payload: u64, s: &Score) -> [u8; 20] {
    let (passed, failed, crc) = s.parts();
    let mut m = [0u8; 20];
    m[..8].copy_from_slice(&payload.to_le_bytes());
    m[8..12].copy_from_slice(&u32::try_from(passed).unwrap_or(u32::MAX).to_le_bytes());
    m[12..16].copy_from_slice(&u32::try_from(failed).unwrap_or(u32::MAX).to_le_bytes());
    m[16..].copy_from_slice(&crc.to_le_bytes());
    m
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let tdx = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let check = sys_refresh_task_id(task_gen::slots::CHECK);
    let me = sys_refresh_task_id(TaskIndex(task_gen::TASK_INDEX));
    let mut s = Score::default();
    if me.generation().0 == 0 {
        // tdx-host may still be bringing the module up (and, in tdx-restart, be killed and
        // restarted while it does): the refusals below are asked of the instance that serves.
        // `status` is idempotent, so it follows each restart.
        while tdx.status().state() != Some(ModuleState::Ready) {
            userlib::hl::sleep_for(1, 1);
        }
        let mut a = [0u64; 8];
        let r = tdx.alloc_frames(0, FrameSize::K4, MemClass::Tdx, 1, addrs_as_bytes(&mut a));
        s.check(
            "tdx_client_refused_a_node_it_may_not_use",
            r == Err(TdxHostError::NodeNotAllowed),
            format_args!("{r:?}"),
        );
        let r = tdx.alloc_frames(1, FrameSize::M2, MemClass::Tdx, 1, addrs_as_bytes(&mut a));
        s.check(
            "tdx_client_over_quota_is_refused",
            r == Err(TdxHostError::QuotaExceeded),
            format_args!("{r:?}"),
        );
        let r = tdx.alloc_frames(
            1,
            FrameSize::K4,
            MemClass::NonTdx,
            1,
            addrs_as_bytes(&mut a),
        );
        s.check(
            "tdx_client_without_class_right_is_refused",
            r == Err(TdxHostError::AccessDenied),
            format_args!("{r:?}"),
        );
        // The same refusals of the one-frame form; none of them took anything.
        let one = [
            tdx.alloc_frame(0, FrameSize::K4, MemClass::Tdx),
            tdx.alloc_frame(1, FrameSize::M2, MemClass::Tdx),
            tdx.alloc_frame(1, FrameSize::K4, MemClass::NonTdx),
        ];
        let usage = tdx.stats().caller_usage_bytes;
        s.check(
            "tdx_client_alloc_frame_refused_node_quota_and_class",
            one == [
                Err(TdxHostError::NodeNotAllowed),
                Err(TdxHostError::QuotaExceeded),
                Err(TdxHostError::AccessDenied),
            ] && usage == 0,
            format_args!("{one:?}, usage {usage}"),
        );
        let r1 = tdx.alloc_frames(
            1,
            FrameSize::K4,
            MemClass::Tdx,
            3,
            addrs_as_bytes(&mut a[..3]),
        );
        let r2 = tdx.alloc_frames(
            1,
            FrameSize::K4,
            MemClass::Tdx,
            4,
            addrs_as_bytes(&mut a[3..7]),
        );
        s.check(
            "tdx_victim_allocates_before_dying",
            r1 == Ok(3) && r2 == Ok(4),
            format_args!("{r1:?} {r2:?}"),
        );
        // Lend one address to the check task (op 1), which tries to free it.
        let _ = sys_send(check, 1, &message(a[0], &s), &mut [], &[]);
        // Not granted by the access list: tdx-host reply-faults us, holding 7 frames.
        let r = tdx.online_region(0x1_0000_0000, 0x1000, 0);
        ulog!("tdx-victim: online_region returned {r:?}: the access list did not stop it");
        s.check(
            "tdx_operation_outside_access_list_faults_the_caller",
            false,
            format_args!("{r:?}"),
        );
    } else {
        let st = tdx.stats();
        s.check(
            "tdx_restarted_client_holds_nothing",
            st.caller_usage_bytes == 0,
            format_args!("{} bytes", st.caller_usage_bytes),
        );
        let m = message(u64::from(me.generation().0), &s);
        let _ = sys_send(check, 2, &m, &mut [], &[]);
        // Then, on the check task's word (op 3), it takes 8 frames and holds them, to be
        // restarted holding them while tdx-host is killed mid-reclaim (`restart.rs`).
        // tdx-host may have restarted since this life began: a request with an identity is
        // retried across that, where a plain `alloc_frames` would report ServerRestarted.
        let ids = RequestIds::new();
        let mut frames = [0u64; 8];
        loop {
            let msg = sys_recv_open(&mut [], 0);
            let n = if msg.operation == 3 {
                let (node, size, class) = (1, FrameSize::K4, MemClass::Tdx);
                let r = tdx.alloc_request(
                    ids.next(),
                    node,
                    size,
                    class,
                    8,
                    addrs_as_bytes(&mut frames),
                );
                if let Err(e) = r {
                    ulog!("tdx-victim: allocating 8 frames on node 1 refused: {e:?}");
                }
                r.unwrap_or(0)
            } else {
                0
            };
            sys_reply(msg.sender, 0, &n.to_le_bytes());
        }
    }
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
