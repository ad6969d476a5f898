//! tdx-td-victim: a VMM killed while it holds two TDs.
//!
//! First life (generation 0): allocates 5 frames of 4 KiB, creates two TDs (a TDCS page each),
//! finds its third refused with KeyIdLimit (its manifest `keyids = 2`), sends the vmm task what
//! happened (op 1: the first TDR's address, the first TD's id, a flag word) and, once answered,
//! calls `online_region`, which its access list does not grant: the server reply-faults it and
//! jefe restarts it, so tdx-host must tear both TDs down before it reclaims the frames. Later
//! lives hold nothing and only sleep.

#![no_std]
#![no_main]

use tdx_host_api::{addrs_as_bytes, FrameSize, MemClass, TdxHost, TdxHostError, ANY_NODE};
use userlib::{sys_refresh_task_id, sys_send, TaskIndex};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let tdx = TdxHost::from_index(task_gen::slots::TDX_HOST);
    let vmm = sys_refresh_task_id(task_gen::slots::VMM);
    let me = sys_refresh_task_id(TaskIndex(task_gen::TASK_INDEX));
    if me.generation().0 == 0 {
        // TD operations need the whole module: wait while TDMR.INIT still runs.
        let _ = tdx.status_settled(100_000, || userlib::hl::sleep_for(1, 1));
        let mut a = [0u64; 5];
        let got = tdx.alloc_frames(
            ANY_NODE,
            FrameSize::K4,
            MemClass::Tdx,
            5,
            addrs_as_bytes(&mut a),
        );
        let mut flags = u32::from(got == Ok(5));
        let one = tdx.td_create(a[0]);
        let two = tdx.td_create(a[1]);
        let mut td = 0;
        if let (Ok(x), Ok(y)) = (one, two) {
            td = x.td;
            flags |= 2;
            let tdcs = (tdx.td_add_tdcs(x.td, a[2]), tdx.td_add_tdcs(y.td, a[3]));
            flags |= u32::from(tdcs == (Ok(()), Ok(()))) << 2;
        }
        flags |= u32::from(tdx.td_create(a[4]).err() == Some(TdxHostError::KeyIdLimit)) << 3;
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&a[0].to_le_bytes());
        m[8..12].copy_from_slice(&td.to_le_bytes());
        m[12..].copy_from_slice(&flags.to_le_bytes());
        let _ = sys_send(vmm, 1, &m, &mut [], &[]);
        // Not granted: tdx-host reply-faults this task, which holds two TDs.
        let _ = tdx.online_region(0x1_0000_0000, 0x1000, 0);
    }
    loop {
        userlib::hl::sleep_for(1_000_000, 1);
    }
}
