//! The binary log port (COM2) and the kernel's defmt logger.
//!
//! COM2 carries records, each a 9-byte header and a payload:
//!
//! | offset | size | field                                               |
//! |--------|------|-----------------------------------------------------|
//! | 0      | 1    | kind: [`FRAME`] or [`NAME`]                         |
//! | 1      | 2    | source, little-endian: task index, or [`KERNEL`]    |
//! | 3      | 4    | console lines (COM1 newlines) written before it, LE |
//! | 7      | 2    | payload length, LE                                  |
//!
//! A `FRAME` payload is one whole rzcobs-encoded defmt frame (ending in its
//! zero delimiter) from the source's ELF; a `NAME` payload is a task's name,
//! sent once per task before the first frame so the host knows which ELF
//! decodes which index. The line count lets the host print each decoded
//! frame between the console lines it came between.
//!
//! With `[kernel] defmt = "console"` in the manifest
//! ([`config::DEFMT_IN_BAND`]) the same records go to COM1 instead, each
//! as one in-band frame (`verdict::frame`: a zero mark, COBS of the record
//! and its CRC-32, a zero mark), for a machine whose only UART is the
//! console; the host splits frames from text and a damaged frame fails
//! the run. Text on COM1 then takes the same lock ([`text`]), so no text
//! byte lands inside a frame.
//!
//! One spin lock covers every record, so records from different CPUs and
//! tasks never interleave. The kernel runs with interrupts off, so the
//! lock is never re-entered on one CPU; a kernel `defmt` call from inside a
//! `Format` implementation would deadlock, so there is none.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use defmt_frame::FrameBuf;

use crate::arch::serial;
use crate::{config, tables};

/// Record kind: a defmt frame.
pub const FRAME: u8 = 0xDF;
/// Record kind: a task's name.
pub const NAME: u8 = 0xDE;
/// Source of the kernel's own frames.
pub const KERNEL: u16 = 0xFFFF;
/// Bytes of a record's header.
const HEADER_LEN: usize = 9;
/// Largest frame a task may hand over (one encoded defmt frame).
pub use defmt_frame::FRAME_MAX;

static LOCK: AtomicBool = AtomicBool::new(false);
/// COM2 programmed and the task names sent (written under `LOCK`).
static READY: AtomicBool = AtomicBool::new(false);
/// The kernel has said hello on COM2.
static ANNOUNCED: AtomicBool = AtomicBool::new(false);

fn lock() {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

/// Spins before console text gives up waiting for a record to finish: a
/// panic while this CPU holds the lock must still reach the console.
const TEXT_SPIN_LIMIT: u32 = 1 << 22;

/// Runs `f`, which writes console text, outside any in-band frame.
pub fn text<R>(f: impl FnOnce() -> R) -> R {
    if !config::DEFMT_IN_BAND {
        return f();
    }
    let mut tries = 0;
    let locked = loop {
        if LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            break true;
        }
        tries += 1;
        if tries == TEXT_SPIN_LIMIT {
            break false;
        }
        core::hint::spin_loop();
    };
    let r = f();
    if locked {
        unlock();
    }
    r
}

/// With the lock held: one record.
fn record_locked(kind: u8, source: u16, payload: &[u8]) {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let payload = &payload[..usize::from(len)];
    let mut header = [0u8; HEADER_LEN];
    header[0] = kind;
    header[1..3].copy_from_slice(&source.to_le_bytes());
    header[3..7].copy_from_slice(&serial::com1_lines().to_le_bytes());
    header[7..9].copy_from_slice(&len.to_le_bytes());
    if config::DEFMT_IN_BAND {
        let mut record = [0u8; HEADER_LEN + FRAME_MAX];
        let n = HEADER_LEN + payload.len().min(FRAME_MAX);
        record[..HEADER_LEN].copy_from_slice(&header);
        record[HEADER_LEN..n].copy_from_slice(&payload[..n - HEADER_LEN]);
        let mut framed = [0u8; verdict::frame::FRAME_MAX];
        // A record always fits a frame (FRAME_MAX + header < PAYLOAD_MAX).
        if let Ok(len) = verdict::frame::encode(&record[..n], &mut framed) {
            serial::write(serial::COM1, &framed[..len]);
        }
        return;
    }
    serial::write(serial::COM2, &header);
    serial::write(serial::COM2, payload);
}

/// With the lock held: programs COM2 and names the tasks, the first time.
fn ready_locked() {
    if READY.load(Ordering::Relaxed) {
        return;
    }
    READY.store(true, Ordering::Relaxed);
    if !config::DEFMT_IN_BAND {
        serial::init(serial::COM2);
    }
    for (i, d) in tables::TASK_DESCS.iter().enumerate() {
        record_locked(NAME, i as u16, d.name.as_bytes());
    }
}

/// The kernel's first defmt line, sent when the first task logs (the boot
/// path itself keeps to the text console).
pub fn announce() {
    if !ANNOUNCED.swap(true, Ordering::Relaxed) {
        defmt::info!(
            "image {=str}: {=usize} tasks; defmt frames on {=str}, tagged by task",
            config::IMAGE_NAME,
            tables::TASK_COUNT,
            if config::DEFMT_IN_BAND {
                "the console (in-band)"
            } else {
                "COM2"
            }
        );
    }
}

/// Writes a task's frame (already checked to be at most [`FRAME_MAX`]).
pub fn task_frame(index: usize, frame: &[u8]) {
    announce();
    lock();
    ready_locked();
    record_locked(FRAME, index as u16, frame);
    unlock();
}

struct Shared(UnsafeCell<FrameBuf>);

// Safety: only touched between `acquire` and `release`, which hold `LOCK`.
unsafe impl Sync for Shared {}

static KFRAME: Shared = Shared(UnsafeCell::new(FrameBuf::new()));

/// Runs `f` on the open frame.
///
/// Safety: the caller holds `LOCK` (between `acquire` and `release`).
unsafe fn with_frame<R>(f: impl FnOnce(&mut FrameBuf) -> R) -> R {
    // Safety: exclusive by the caller's contract.
    f(unsafe { &mut *KFRAME.0.get() })
}

#[defmt::global_logger]
struct KernelLogger;

// Safety: `acquire` takes the spin lock that `release` drops; defmt calls
// `write` and `release` only in between.
unsafe impl defmt::Logger for KernelLogger {
    fn acquire() {
        lock();
        ready_locked();
        // Safety: the lock is held.
        unsafe {
            with_frame(FrameBuf::start);
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // Safety: the lock is held since `acquire`.
        unsafe {
            with_frame(|fr| {
                if let Some(frame) = fr.end() {
                    record_locked(FRAME, KERNEL, frame);
                }
            });
        }
        unlock();
    }

    unsafe fn write(bytes: &[u8]) {
        // Safety: the lock is held since `acquire`.
        unsafe {
            with_frame(|fr| fr.write(bytes));
        }
    }
}
