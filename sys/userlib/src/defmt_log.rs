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

use defmt_frame::FrameBuf;
pub use defmt_frame::FRAME_MAX;

struct Shared(UnsafeCell<FrameBuf>);

// Safety: only touched between `acquire` and `release`, which `TAKEN`
// makes exclusive; a task has one thread.
unsafe impl Sync for Shared {}

static TAKEN: AtomicBool = AtomicBool::new(false);
static FRAME: Shared = Shared(UnsafeCell::new(FrameBuf::new()));

/// Runs `f` on the open frame.
///
/// Safety: the caller holds the logger (between `acquire` and `release`).
unsafe fn with_frame<R>(f: impl FnOnce(&mut FrameBuf) -> R) -> R {
    // Safety: exclusive by the caller's contract.
    f(unsafe { &mut *FRAME.0.get() })
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
            with_frame(FrameBuf::start);
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // Safety: defmt calls `release` only after `acquire`.
        unsafe {
            with_frame(|fr| {
                if let Some(frame) = fr.end() {
                    crate::sys_log_frame(frame);
                }
            });
        }
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // Safety: defmt calls `write` only between `acquire` and `release`.
        unsafe {
            with_frame(|fr| fr.write(bytes));
        }
    }
}
