//! Formatted logging through the kernel's LOG syscall.
//!
//! A line is formatted into a fixed stack buffer and handed to the kernel in
//! one call, so lines from different tasks never interleave mid-line. Text
//! beyond the buffer is cut, never an error: logging must not fail a task.

use core::fmt;

/// Longest line one `ulog!` emits.
pub const LINE_MAX: usize = 200;

/// A fixed buffer that implements [`fmt::Write`], dropping what overflows.
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl LineBuf {
    #[must_use]
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE_MAX - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Formats and sends one log line.
pub fn log_fmt(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    // Writing into a LineBuf cannot fail; overflow is truncated.
    let _ = fmt::write(&mut line, args);
    crate::sys_log(line.as_bytes());
}

/// Logs a formatted line, tagged by the kernel with the task's name.
#[macro_export]
macro_rules! ulog {
    ($($arg:tt)*) => {
        $crate::log::log_fmt(format_args!($($arg)*))
    };
}
