//! TD memory as the kernel defines it, and the table of online hot-plug
//! memory.
//!
//! Pattern: the kernel is the gatekeeper of physical memory, not its
//! allocator. tdx-host (the memory authority) decides which frames go
//! where; the kernel only refuses to scrub, hand to the TDX module as
//! PAMT, or name as a PHYMEM page operand anything that is not **TD
//! memory**: RAM the platform record found at boot, plus ranges onlined
//! inside the firmware's hot-plug window, minus
//! 1. the first MiB (firmware data, the AP start-up trampoline),
//! 2. the kernel image (which holds every page table, the boot CPU's
//!    stacks and every kernel static, the emulated module's state
//!    included) and the per-CPU area (each other CPU's stack and VMXON
//!    region, carved from RAM after the tasks at boot),
//! 3. the span of every task's memory.
//!
//! The decision itself is `kerncore::tdmem` (host-tested against a model);
//! this file only gathers the facts.
//!
//! Invariants: the online table changes only through kernel IPC from a
//! task with MEMORY_AUTHORITY, which runs on the boot CPU only (tasks run
//! nowhere else), so the table needs no lock; it is read on the boot CPU
//! too (scrub and the SEAMCALL gate check before a call leaves for another
//! CPU).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::kipc::KipcError;
use kerncore::tdmem::{check_td_memory, NotTdMemory, OnlineError, OnlineTable, PhysRange};

use crate::arch::paging::PAGE_SIZE;
use crate::tables::TASK_DESCS;

/// How many hot-plug ranges may be online at once.
pub const MAX_ONLINE: usize = 16;
/// The first MiB, never TD memory.
const LOW_MEMORY: PhysRange = PhysRange::literal(0, 1 << 20);

struct Table(UnsafeCell<OnlineTable<MAX_ONLINE>>);
// Safety: used only from the boot CPU (see the module doc).
unsafe impl Sync for Table {}
static ONLINE: Table = Table(UnsafeCell::new(OnlineTable::new()));

fn online_table() -> &'static mut OnlineTable<MAX_ONLINE> {
    // Safety: only the boot CPU calls this, and no caller keeps the
    // reference across another call (see the module doc).
    unsafe { &mut *ONLINE.0.get() }
}

/// The per-CPU area `(base, len)`, set once at boot before any AP starts
/// and before any task runs; empty before.
static PER_CPU: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Records the per-CPU area (see `arch::smp::set_per_cpu_area`) as kernel
/// memory.
pub fn set_per_cpu_area(area: PhysRange) {
    PER_CPU[0].store(area.base().0, Ordering::Relaxed);
    PER_CPU[1].store(area.size().0, Ordering::Release);
}

/// The physical ranges the loaded image occupies: the kernel (with every
/// page table, boot stack and static), the span of task memory (every
/// region and stack guard page of every task), and the per-CPU area
/// (empty until `set_per_cpu_area`).
#[must_use]
pub fn image_ranges() -> [PhysRange; 3] {
    extern "C" {
        static __kernel_start: u8;
        static __kernel_end: u8;
    }
    // Linker symbols; only their addresses are taken.
    let (ks, ke) = (
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    );
    let mut lo = u64::MAX;
    let mut hi = 0;
    for d in &TASK_DESCS {
        for r in d.regions {
            lo = lo.min(r.base);
            hi = hi.max(r.base + r.size);
        }
        lo = lo.min(d.stack_base - PAGE_SIZE);
    }
    let per_cpu_len = PER_CPU[1].load(Ordering::Acquire);
    [
        PhysRange::saturating(ks, ke - ks),
        PhysRange::saturating(lo.min(hi), hi.saturating_sub(lo)),
        PhysRange::saturating(PER_CPU[0].load(Ordering::Relaxed), per_cpu_len),
    ]
}

/// RAM found at boot plus online ranges; returns how many were filled.
fn included(out: &mut [PhysRange; abi::platform::MAX_RAM_RANGES + MAX_ONLINE]) -> usize {
    let mut n = 0;
    let ram = crate::discovery::record()
        .ram()
        .iter()
        .map(|r| PhysRange::saturating(r.base, r.size));
    for r in ram.chain(online_table().ranges().iter().copied()) {
        if n < out.len() {
            out[n] = r;
            n += 1;
        }
    }
    n
}

/// Whether `[base, base+len)` is TD memory, with the reason if not.
///
/// # Errors
/// `BadRange` (empty or wrapping), `LowMemory`, `KernelMemory`,
/// `TaskMemory`, or `NotRam` (MMIO, firmware hole, absent memory, hot-plug
/// memory not online).
pub fn check(base: u64, len: u64) -> Result<(), KipcError> {
    let [kernel, tasks, per_cpu] = image_ranges();
    let excluded = [LOW_MEMORY, kernel, tasks, per_cpu];
    let mut inc = [PhysRange::EMPTY; abi::platform::MAX_RAM_RANGES + MAX_ONLINE];
    let n = included(&mut inc);
    let range = PhysRange::new(base, len).ok_or(NotTdMemory::Malformed);
    range
        .and_then(|r| check_td_memory(r, &inc[..n], &excluded))
        .map_err(|e| match e {
            NotTdMemory::Malformed => KipcError::BadRange,
            NotTdMemory::Excluded { index: 0 } => KipcError::LowMemory,
            NotTdMemory::Excluded { index: 1 | 3 } => KipcError::KernelMemory,
            NotTdMemory::Excluded { .. } => KipcError::TaskMemory,
            NotTdMemory::NotRam => KipcError::NotRam,
        })
}

fn online_error(e: OnlineError) -> KipcError {
    match e {
        OnlineError::Misaligned => KipcError::Misaligned,
        OnlineError::Malformed => KipcError::BadRange,
        OnlineError::OutsideHotplugWindow => KipcError::OutsideHotplugWindow,
        OnlineError::OverlapsBootRam => KipcError::OverlapsBootRam,
        OnlineError::OverlapsOnline => KipcError::OverlapsOnline,
        OnlineError::NotOnline => KipcError::NotOnline,
        OnlineError::TableFull => KipcError::TableFull,
    }
}

/// Records `[base, base+len)` as online hot-plug memory.
///
/// # Errors
/// The rule it breaks (see `abi::kipc::Kipcnum::OnlineMemory`).
pub fn online(base: u64, len: u64) -> Result<(), KipcError> {
    let record = crate::discovery::record();
    let window = record
        .hotplug
        .map(|h| PhysRange::saturating(h.base, h.size));
    let mut ram = [PhysRange::EMPTY; abi::platform::MAX_RAM_RANGES];
    for (slot, r) in ram.iter_mut().zip(record.ram()) {
        *slot = PhysRange::saturating(r.base, r.size);
    }
    // Alignment is judged first, as `OnlineTable::online` does, so a
    // misaligned range reads as misaligned even when it also wraps.
    if !base.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(KipcError::Misaligned);
    }
    let range = PhysRange::new(base, len).ok_or(KipcError::BadRange)?;
    online_table()
        .online(range, window, &ram[..record.ram().len()])
        .map_err(online_error)
}

/// Forgets the online range exactly equal to `[base, base+len)`.
///
/// # Errors
/// `NotOnline` if there is none.
pub fn offline(base: u64, len: u64) -> Result<(), KipcError> {
    // A wrapping range was never onlined.
    let range = PhysRange::new(base, len).ok_or(KipcError::NotOnline)?;
    online_table().offline(range).map_err(online_error)
}
