//! One defmt frame, encoded into a fixed buffer.
//!
//! Both the kernel's logger and the tasks' logger build a whole rzcobs
//! frame before handing it on (to COM2, or to the kernel with one
//! syscall), so frames never interleave. A frame that outgrows the buffer
//! is dropped whole: a cut frame could not be decoded, and a lost line is
//! better than a corrupt stream. Callers provide the exclusion (a lock, or
//! a single-threaded task); this type only encodes.

#![no_std]
#![forbid(unsafe_code)]

/// Largest encoded frame; the kernel accepts at most this much from a task.
pub const FRAME_MAX: usize = 256;

pub struct FrameBuf {
    encoder: defmt::Encoder,
    buf: [u8; FRAME_MAX],
    len: usize,
    overflow: bool,
}

impl Default for FrameBuf {
    fn default() -> Self {
        Self::new()
    }
}

fn push(buf: &mut [u8; FRAME_MAX], len: &mut usize, overflow: &mut bool, bytes: &[u8]) {
    match buf.get_mut(*len..*len + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            *len += bytes.len();
        }
        None => *overflow = true,
    }
}

impl FrameBuf {
    #[must_use]
    pub const fn new() -> Self {
        FrameBuf {
            encoder: defmt::Encoder::new(),
            buf: [0; FRAME_MAX],
            len: 0,
            overflow: false,
        }
    }

    /// Opens a frame (defmt's `acquire`).
    pub fn start(&mut self) {
        self.len = 0;
        self.overflow = false;
        let FrameBuf {
            encoder,
            buf,
            len,
            overflow,
        } = self;
        encoder.start_frame(|b| push(buf, len, overflow, b));
    }

    /// Adds encoded bytes (defmt's `write`).
    pub fn write(&mut self, bytes: &[u8]) {
        let FrameBuf {
            encoder,
            buf,
            len,
            overflow,
        } = self;
        encoder.write(bytes, |b| push(buf, len, overflow, b));
    }

    /// Closes the frame (defmt's `release`): the whole frame, or `None` if
    /// it did not fit.
    #[must_use]
    pub fn end(&mut self) -> Option<&[u8]> {
        let FrameBuf {
            encoder,
            buf,
            len,
            overflow,
        } = self;
        encoder.end_frame(|b| push(buf, len, overflow, b));
        (!*overflow).then_some(&buf[..*len])
    }
}
