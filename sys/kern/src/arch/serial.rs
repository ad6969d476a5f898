//! Hand-written, not the `uart_16550` crate: its sends wait forever; ours give up on a missing UART.
//!
//! 16550 UARTs: COM1 carries the text console, COM2 the binary defmt log
//! (see `console::klog`).
//!
//! Polled transmit only; the kernel never waits for input. If no UART
//! answers (a machine without one), writes are dropped after a bounded
//! wait rather than hanging the kernel. Port I/O is the `x86_64` crate's.

use core::sync::atomic::{AtomicU32, Ordering};

use x86_64::instructions::port::Port;

pub const COM1: u16 = 0x3F8;
pub const COM2: u16 = 0x2F8;

/// Register offsets from the UART's base port. With LCR.DLAB set, offsets
/// 0 and 1 are the baud divisor's low and high byte instead.
const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const DIVISOR_LOW: u16 = 0;
const DIVISOR_HIGH: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;

/// LCR: divisor latch access.
const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit.
const LCR_8N1: u8 = 0x03;
/// FCR: FIFOs on and cleared, receive trigger at 14 bytes.
const FCR_ENABLE_CLEAR_14: u8 = 0xC7;
/// MCR: DTR and RTS asserted.
const MCR_DTR_RTS: u8 = 0x03;
/// LSR: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 0x20;
/// 115200 baud from the 1.8432 MHz clock.
const DIVISOR_115200: u16 = 1;

/// How many line-status polls a byte may wait for the transmitter.
const TRANSMIT_SPINS: u32 = 100_000;

/// Newlines written to COM1 so far: the number of complete console lines.
/// Each defmt record on COM2 carries it, so the host can put decoded
/// frames between the right console lines.
static COM1_LINES: AtomicU32 = AtomicU32::new(0);

/// The number of complete lines written to the console (COM1).
pub fn com1_lines() -> u32 {
    COM1_LINES.load(Ordering::Relaxed)
}

fn register(port: u16, offset: u16) -> Port<u8> {
    Port::new(port + offset)
}

/// Programs `port` for 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init(port: u16) {
    let [divisor_low, divisor_high] = DIVISOR_115200.to_le_bytes();
    // Safety: the standard 16550 register sequence on the UART's own ports.
    unsafe {
        register(port, INTERRUPT_ENABLE).write(0x00);
        register(port, LINE_CONTROL).write(LCR_DLAB);
        register(port, DIVISOR_LOW).write(divisor_low);
        register(port, DIVISOR_HIGH).write(divisor_high);
        register(port, LINE_CONTROL).write(LCR_8N1);
        register(port, FIFO_CONTROL).write(FCR_ENABLE_CLEAR_14);
        register(port, MODEM_CONTROL).write(MCR_DTR_RTS);
    }
}

/// Writes bytes, waiting for the transmitter for a bounded time per byte.
pub fn write(port: u16, bytes: &[u8]) {
    let mut status = register(port, LINE_STATUS);
    let mut data = register(port, DATA);
    for &b in bytes {
        let mut spins = 0u32;
        // Safety: reading the line-status register has no side effects.
        while unsafe { status.read() } & LSR_THR_EMPTY == 0 && spins < TRANSMIT_SPINS {
            spins += 1;
            core::hint::spin_loop();
        }
        // Safety: writing the transmit holding register sends a byte.
        unsafe { data.write(b) }
        if b == b'\n' && port == COM1 {
            COM1_LINES.fetch_add(1, Ordering::Relaxed);
        }
    }
}
