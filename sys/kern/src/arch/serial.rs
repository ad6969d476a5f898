//! 16550 UARTs: COM1 carries the text console.
//!
//! Polled transmit only; the kernel never waits for input. If no UART
//! answers (a machine without one), writes are dropped after a bounded
//! wait rather than hanging the kernel.

use super::cpu::{inb, outb};

pub const COM1: u16 = 0x3F8;

/// Programs `port` for 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init(port: u16) {
    // Safety: the standard 16550 register sequence on the UART's own ports.
    unsafe {
        outb(port + 1, 0x00);
        outb(port + 3, 0x80);
        outb(port, 0x01);
        outb(port + 1, 0x00);
        outb(port + 3, 0x03);
        outb(port + 2, 0xC7);
        outb(port + 4, 0x03);
    }
}

/// Writes bytes, waiting for the transmitter for a bounded time per byte.
pub fn write(port: u16, bytes: &[u8]) {
    for &b in bytes {
        let mut spins = 0u32;
        // Safety: reading the line-status register has no side effects.
        while unsafe { inb(port + 5) } & 0x20 == 0 && spins < 100_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        // Safety: writing the transmit holding register sends a byte.
        unsafe { outb(port, b) }
    }
}
