//! 16550 UARTs: COM1 carries the text console, COM2 the binary defmt log
//! (see `console::klog`).
//!
//! Polled transmit only; the kernel never waits for input. If no UART
//! answers (a machine without one), writes are dropped after a bounded
//! wait rather than hanging the kernel.

use core::sync::atomic::{AtomicU32, Ordering};

use super::cpu::{inb, outb};

pub const COM1: u16 = 0x3F8;
pub const COM2: u16 = 0x2F8;

/// Newlines written to COM1 so far: the number of complete console lines.
/// Each defmt record on COM2 carries it, so the host can put decoded
/// frames between the right console lines.
static COM1_LINES: AtomicU32 = AtomicU32::new(0);

/// The number of complete lines written to the console (COM1).
pub fn com1_lines() -> u32 {
    COM1_LINES.load(Ordering::Relaxed)
}

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
        if b == b'\n' && port == COM1 {
            COM1_LINES.fetch_add(1, Ordering::Relaxed);
        }
    }
}
