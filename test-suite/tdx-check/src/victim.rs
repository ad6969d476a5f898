//! tdx-victim: a client of tdx-host that is killed while holding TD memory.
//!
//! First life (generation 0): checks the refusals its own policy implies (node not allowed,
//! quota, class not granted), allocates 7 frames of 4 KiB on node 1, lends the address of one to
//! the check task (which tries to free it: NotOwner), then calls `online_region`, which the
//! manifest's access list does not grant it: the server reply-faults it and jefe restarts it.
//! Second life: tdx-host must have reclaimed everything (usage 0); it says so to the check task.

#![no_std]
#![no_main]

use tdx_host_api::{addrs_as_bytes, FrameSize, MemClass, TdxHost, TdxHostError};
use userlib::{sys_refresh_task_id, sys_send, ulog, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

fn line(name: &str, ok: bool, why: core::fmt::Arguments<'_>) {
    if ok {
        ulog!("test {name} ... ok");
    } else {
        ulog!("test {name} ... FAILED: {why}");
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let tdx = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let check = sys_refresh_task_id(task_gen::slots::CHECK);
    let me = sys_refresh_task_id(TaskIndex(task_gen::TASK_INDEX));
    if me.generation().0 == 0 {
        let mut a = [0u64; 8];
        let r = tdx.alloc_frames(0, FrameSize::K4, MemClass::Tdx, 1, addrs_as_bytes(&mut a));
        line(
            "tdx_client_refused_a_node_it_may_not_use",
            r == Err(TdxHostError::NodeNotAllowed),
            format_args!("{r:?}"),
        );
        let r = tdx.alloc_frames(1, FrameSize::M2, MemClass::Tdx, 1, addrs_as_bytes(&mut a));
        line(
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
        line(
            "tdx_client_without_class_right_is_refused",
            r == Err(TdxHostError::AccessDenied),
            format_args!("{r:?}"),
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
        line(
            "tdx_victim_allocates_before_dying",
            r1 == Ok(3) && r2 == Ok(4),
            format_args!("{r1:?} {r2:?}"),
        );
        // Lend one address to the check task (op 1), which tries to free it.
        let _ = sys_send(check, 1, &a[0].to_le_bytes(), &mut [], &[]);
        // Not granted by the access list: tdx-host reply-faults us, holding 7 frames.
        let r = tdx.online_region(0x1_0000_0000, 0x1000, 0);
        ulog!("tdx-victim: online_region returned {r:?}: the access list did not stop it");
        line(
            "tdx_operation_outside_access_list_faults_the_caller",
            false,
            format_args!("{r:?}"),
        );
    } else {
        let s = tdx.stats();
        line(
            "tdx_restarted_client_holds_nothing",
            s.caller_usage_bytes == 0,
            format_args!("{} bytes", s.caller_usage_bytes),
        );
        let _ = sys_send(check, 2, &me.generation().0.to_le_bytes(), &mut [], &[]);
    }
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
