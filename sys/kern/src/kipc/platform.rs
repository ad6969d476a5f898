//! Platform and memory services over kernel IPC: the platform record, CPU
//! count and APIC ids, cache flushes, the KeyID partitioning, the FADT's
//! event blocks, and the physical memory the memory authority onlines,
//! offlines and scrubs.
//!
//! None of these names a task, so none needs a right; each needs the
//! capability its `abi::kipc::Kipcnum` states, which the dispatcher has
//! already checked. Physical ranges are checked against `crate::tdmem`
//! before the kernel touches a byte.

use core::sync::atomic::{AtomicU8, Ordering};

use abi::kipc::{KipcError, ScrubMethod};

use super::answer::{arg, Answer};
use crate::arch::smp;
use crate::outcome::Next;

/// The platform and memory requests (`abi::kipc::Kipcnum` documents each).
pub enum Request {
    ReadPlatform,
    CpuApicId,
    FlushCaches,
    Scrub,
    CpuCount,
    KeyIdPartition,
    ReadFadt,
    OnlineMemory,
    OfflineMemory,
}

/// Carries out one platform request.
///
/// # Errors
/// The [`KipcError`] the caller gets.
pub fn execute<'a>(
    request: Request,
    args: &[u64],
    out: &'a mut [u8],
) -> Result<Answer<'a>, KipcError> {
    match request {
        // Too big for `out`: encoded once at boot and sent from there.
        Request::ReadPlatform => Ok(Answer::bytes(crate::discovery::encoded())),
        Request::CpuCount => Ok(Answer::words(out, &[smp::cpu_count() as u64])),
        Request::CpuApicId => {
            let cpu = usize::try_from(arg(args, 0)?).map_err(|_| KipcError::CpuUnavailable)?;
            let w =
                smp::run_on(cpu, smp::Op::ApicId, [0; 8]).map_err(|_| KipcError::CpuUnavailable)?;
            Ok(Answer::words(out, &[w[0]]))
        }
        Request::FlushCaches => {
            for cpu in 0..smp::cpu_count() {
                smp::run_on(cpu, smp::Op::Wbinvd, [0; 8]).map_err(|_| KipcError::CpuUnavailable)?;
            }
            crate::seam::note_caches_flushed();
            Ok(Answer::empty(Next::Same))
        }
        Request::KeyIdPartition => {
            let (bits, mktme, tdx) = crate::seam::keyid_partition();
            Ok(Answer::words(
                out,
                &[u64::from(bits), u64::from(mktme), u64::from(tdx)],
            ))
        }
        Request::ReadFadt => {
            let port = |b: Option<::platform::fadt::RegisterBlock>| {
                b.map_or((0, 0), |b| (b.address, u64::from(b.len)))
            };
            let w = match crate::discovery::fadt() {
                Some(f) => {
                    let (g, gl) = port(f.gpe0);
                    let (p, pl) = port(f.pm1a_event);
                    [u64::from(f.sci_int), g, gl, p, pl]
                }
                None => [0; 5],
            };
            Ok(Answer::words(out, &w))
        }
        Request::Scrub => {
            let (base, len) = (arg(args, 0)?, arg(args, 1)?);
            let method = scrub(base, len)?;
            // Only the zero-length question answers the method: a scrub's
            // caller may lend no reply buffer.
            if len == 0 {
                Ok(Answer::words(out, &[method as u64]))
            } else {
                Ok(Answer::empty(Next::Same))
            }
        }
        Request::OnlineMemory => {
            let (base, len) = (arg(args, 0)?, arg(args, 1)?);
            crate::tdmem::online(base, len)?;
            Ok(Answer::empty(Next::Same))
        }
        Request::OfflineMemory => {
            let (base, len) = (arg(args, 0)?, arg(args, 1)?);
            crate::tdmem::offline(base, len)?;
            Ok(Answer::empty(Next::Same))
        }
    }
}

/// Zeroes `[base, base+len)`: 4 KiB-aligned, entirely TD memory
/// (`crate::tdmem`: RAM or online hot-plug memory, never the first MiB, the
/// kernel or a task), and inside the direct map. `len` 0 clears nothing.
/// Answers the method used ([`scrub_method`]).
fn scrub(base: u64, len: u64) -> Result<ScrubMethod, KipcError> {
    const PAGE: u64 = 4096;
    if !base.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return Err(KipcError::Misaligned);
    }
    let method = scrub_method();
    if len == 0 {
        return Ok(method);
    }
    crate::tdmem::check(base, len)?;
    // The direct map covers all memory the platform reports (hot-pluggable
    // SRAT ranges included), so TD memory outside it means firmware named
    // memory nowhere else; refuse rather than fault.
    let Some(dst) = crate::arch::paging::phys_to_virt_checked(base, len) else {
        return Err(KipcError::BadRequest);
    };
    // Safety: the range is page-aligned TD memory (checked above: RAM or
    // online memory, not the kernel, not a task, not firmware's first MiB)
    // inside the direct map; the memory authority owns it. Whole pages, so
    // a multiple of 64 bytes and 64-byte aligned.
    unsafe { clear(method, dst, len) };
    Ok(method)
}

/// The kernel's clearing method, chosen from CPUID at boot (its first call,
/// for the boot log) and kept: the CPU does not change under the kernel.
pub fn scrub_method() -> ScrubMethod {
    static METHOD: AtomicU8 = AtomicU8::new(0);
    if let Some(m) = ScrubMethod::from_code(u64::from(METHOD.load(Ordering::Relaxed))) {
        return m;
    }
    let (max_leaf, ..) = crate::arch::cpu::cpuid(0, 0);
    let (_, _, ecx, _) = crate::arch::cpu::cpuid(7, 0);
    let m = ScrubMethod::select(max_leaf >= 7, ecx);
    METHOD.store(m as u8, Ordering::Relaxed);
    m
}

/// Zeroes `len` bytes at `dst` with `method`.
///
/// # Safety
/// `dst..dst+len` must be writable kernel-mapped memory no one else uses,
/// 64-byte aligned, `len` a multiple of 64.
unsafe fn clear(method: ScrubMethod, dst: *mut u8, len: u64) {
    match method {
        ScrubMethod::Movdir64b => {
            // One zeroed cache line as the source of every direct store.
            #[repr(align(64))]
            struct Line([u8; 64]);
            static ZERO: Line = Line([0; 64]);
            let mut at = dst;
            let end = dst.wrapping_add(len as usize);
            while at < end {
                // Safety: `at` is a 64-byte aligned line inside the range
                // the caller vouched for; MOVDIR64B exists (CPUID bit 28,
                // checked by `scrub_method`); the source is a static line.
                unsafe {
                    core::arch::asm!(
                        "movdir64b {dst}, [{src}]",
                        dst = in(reg) at,
                        src = in(reg) ZERO.0.as_ptr(),
                        options(nostack, preserves_flags),
                    );
                }
                at = at.wrapping_add(64);
            }
            // Direct stores are weakly ordered: fence before the caller
            // hands the memory on.
            // Safety: SFENCE only orders stores.
            unsafe { core::arch::asm!("sfence", options(nostack, preserves_flags)) };
        }
        ScrubMethod::WideStores => {
            // Safety: as the function's contract; RCX counts quadwords,
            // RDI walks up (DF is clear in the kernel, as the ABI keeps it).
            unsafe {
                core::arch::asm!(
                    "rep stosq",
                    inout("rcx") len / 8 => _,
                    inout("rdi") dst => _,
                    in("rax") 0u64,
                    options(nostack, preserves_flags),
                );
            }
        }
    }
}
