//! The kernel's text console on COM1.
//!
//! `kprintln!` formats straight to the UART; there is no buffer to lose on
//! a crash. Task log lines arrive through the LOG syscall and are prefixed
//! with the task's name, so the console reads as one interleaved story.
//!
//! defmt frames (the kernel's and the tasks') go to COM2 instead, through
//! [`klog`]; the host decodes them and prints them between the console
//! lines they came between. In the shared-console mode they come in-band
//! on COM1, and text waits for a frame in progress ([`klog::text`]).

use core::fmt;

use crate::arch::serial;

#[path = "klog.rs"]
pub mod klog;

pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write(serial::COM1, s.as_bytes());
        Ok(())
    }
}

pub fn print(args: fmt::Arguments<'_>) {
    klog::text(|| {
        let _ = fmt::write(&mut Console, args);
    });
}

#[macro_export]
macro_rules! kprintln {
    () => {
        $crate::console::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!($($arg)*))
    };
}

/// Writes a task's log line: `[name] text`, with control characters other
/// than tab shown as `?` so a task cannot forge console lines or escape
/// sequences.
pub fn task_line(task_name: &str, bytes: &[u8]) {
    klog::text(|| task_line_unframed(task_name, bytes));
}

fn task_line_unframed(task_name: &str, bytes: &[u8]) {
    serial::write(serial::COM1, b"[");
    serial::write(serial::COM1, task_name.as_bytes());
    serial::write(serial::COM1, b"] ");
    for &b in bytes {
        let shown = if b == b'\t' || (0x20..0x7f).contains(&b) {
            b
        } else {
            b'?'
        };
        serial::write(serial::COM1, &[shown]);
    }
    serial::write(serial::COM1, b"\n");
}
