//! The tasks' defmt global logger (feature `defmt`).
//!
//! Each defmt frame is encoded (rzcobs) into a fixed buffer and handed to
//! the kernel with one LOG_FRAME syscall; the kernel writes it to COM2 with
//! a header naming this task, so frames of different tasks never
//! interleave and the host can demultiplex them (`cargo xtask run` decodes
//! them with each task's ELF).
//!
//! A task is single-threaded and its code is never interrupted by its own
//! code (notifications arrive only through RECV), so the only re-entry
//! possible is a `defmt` call from inside a `Format` implementation while a
//! frame is open; that is a bug and panics the task. A frame that outgrows
//! the buffer is dropped whole rather than sent cut (a cut frame could not
//! be decoded).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Largest encoded frame sent; the kernel accepts at most this much.
pub const FRAME_MAX: usize = 256;

struct Frame {
    encoder: defmt::Encoder,
    buf: [u8; FRAME_MAX],
    len: usize,
    overflow: bool,
}

struct Shared(UnsafeCell<Frame>);

// Safety: only touched between `acquire` and `release`, which `TAKEN`
// makes exclusive; a task has one thread.
unsafe impl Sync for Shared {}

static TAKEN: AtomicBool = AtomicBool::new(false);
static FRAME: Shared = Shared(UnsafeCell::new(Frame {
    encoder: defmt::Encoder::new(),
    buf: [0; FRAME_MAX],
    len: 0,
    overflow: false,
}));

fn push(buf: &mut [u8; FRAME_MAX], len: &mut usize, overflow: &mut bool, bytes: &[u8]) {
    match buf.get_mut(*len..*len + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            *len += bytes.len();
        }
        None => *overflow = true,
    }
}

/// Runs `f` on the open frame.
///
/// Safety: the caller holds the logger (between `acquire` and `release`).
unsafe fn with_frame(f: impl FnOnce(&mut Frame)) {
    // Safety: exclusive by the caller's contract.
    f(unsafe { &mut *FRAME.0.get() });
}

#[defmt::global_logger]
struct TaskLogger;

// Safety: `acquire` excludes re-entry with `TAKEN`; `write` and `release`
// are only called by defmt between `acquire` and `release`.
unsafe impl defmt::Logger for TaskLogger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            crate::sys_panic(b"defmt: log call while a frame is open");
        }
        // Safety: just taken.
        unsafe {
            with_frame(|fr| {
                fr.len = 0;
                fr.overflow = false;
                let Frame {
                    encoder,
                    buf,
                    len,
                    overflow,
                } = fr;
                encoder.start_frame(|b| push(buf, len, overflow, b));
            });
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // Safety: defmt calls `release` only after `acquire`.
        unsafe {
            with_frame(|fr| {
                let Frame {
                    encoder,
                    buf,
                    len,
                    overflow,
                } = fr;
                encoder.end_frame(|b| push(buf, len, overflow, b));
                if !*overflow {
                    crate::sys_log_frame(&buf[..*len]);
                }
            });
        }
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // Safety: defmt calls `write` only between `acquire` and `release`.
        unsafe {
            with_frame(|fr| {
                let Frame {
                    encoder,
                    buf,
                    len,
                    overflow,
                } = fr;
                encoder.write(bytes, |b| push(buf, len, overflow, b));
            });
        }
    }
}
