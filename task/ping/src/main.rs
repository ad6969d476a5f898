//! ping: the demo client. It calls pong with a message and with leases,
//! checks the answers, logs what happened, and reports to jefe that the
//! image has shown what it does.

#![no_std]
#![no_main]

use userlib::{sys_get_timer, sys_refresh_task_id, sys_send, ulog, Lease};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

const ROUNDS: u32 = 1000;

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let pong = sys_refresh_task_id(task_gen::slots::PONG);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    let start = sys_get_timer().now;
    let mut ok = true;
    for _ in 0..ROUNDS {
        let mut reply = [0u8; 16];
        let (rc, n) = sys_send(pong, 1, b"tdxhost", &mut reply, &[]);
        ok &= rc == 0 && &reply[..n] == b"tsohxdt";
    }
    let ticks = sys_get_timer().now - start;
    if ok {
        defmt::info!(
            "{=u32} round trips to pong in {=u64} ms: all answers right",
            ROUNDS,
            ticks
        );
    } else {
        defmt::error!(
            "{=u32} round trips to pong in {=u64} ms: WRONG ANSWERS",
            ROUNDS,
            ticks
        );
    }

    let input = *b"leased memory";
    let mut output = [0u8; 13];
    let (rc, _) = sys_send(
        pong,
        2,
        &[],
        &mut [],
        &[Lease::read_only(&input), Lease::write_only(&mut output)],
    );
    let upper = rc == 0 && &output == b"LEASED MEMORY";
    ulog!(
        "pong upper-cased a lease: {}",
        core::str::from_utf8(&output).unwrap_or("?")
    );
    ok &= upper;

    let (rc, _) = sys_send(jefe, 1, &[u8::from(ok)], &mut [], &[]);
    defmt::info!("jefe answered {=u32}", rc);
    loop {
        userlib::hl::sleep_for(1000, 1);
    }
}
