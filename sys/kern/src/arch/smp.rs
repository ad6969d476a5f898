//! Application processors: starting them, and running privileged work on
//! them.
//!
//! Tasks run on the boot CPU only. The other CPUs exist to do what TDX
//! requires on *every* logical CPU (TDH.SYS.LP.INIT) or on one CPU of each
//! package (TDH.SYS.KEY.CONFIG, cache flushes): each AP runs a small
//! service loop that halts until the boot CPU posts a request in the AP's
//! mailbox and sends it an IPI, then executes the request and posts the
//! result. The boot CPU waits for the answer with a bounded spin, so a
//! wedged AP is reported, never waited on forever. Each request carries a
//! sequence number and the answer names the one it answers
//! (`kerncore::mailbox`): after a timeout the late answer is never taken
//! for the next request, and the AP is refused new requests until it has
//! finished the abandoned one.
//!
//! Start-up follows the SDM's INIT-SIPI-SIPI sequence. The real-mode
//! trampoline is copied to [`TRAMPOLINE`] (below 1 MiB, as SIPI requires),
//! identity-mapped only while APs start, and walks real → protected → long
//! mode itself on the kernel's page tables. An AP that does not check in
//! within the timeout is reported and left alone.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use kerncore::mailbox::Mailbox;
pub use kerncore::mailbox::Ticket;

use super::paging::{map_page, phys_to_virt, Access, TablePhys, PAGE_SIZE};
use super::{apic, cpu, gdt};

/// Physical address of the AP trampoline (SIPI vector 0x08).
pub const TRAMPOLINE: u64 = 0x8000;
/// Most CPUs the kernel drives (the boot CPU is index 0): the system limit.
pub const MAX_CPUS: usize = abi::limits::MAX_CPUS;
const AP_STACK_SIZE: u64 = 32 * 1024;
/// One CPU's slot in the per-CPU area: its VMXON region (a page), then its
/// stack (unused for the boot CPU, which has its own in the image).
pub const PER_CPU_BYTES: u64 = PAGE_SIZE + AP_STACK_SIZE;
/// IPI vector that wakes an AP to look at its mailbox.
pub const SERVICE_VECTOR: u8 = 0xF0;
/// IPI vector an AP sends the boot CPU when it finished a request that
/// asked to be announced ([`Op::SeamcallAnnounced`]).
pub const DONE_VECTOR: u8 = 0xF1;

// Layout (offsets from the trampoline base): 0 a jump over the data;
// 8 the parameter block (CR3, stack top, CPU index, entry); 40 a GDT with
// 32-bit code (0x08), data (0x10) and 64-bit code (0x18); 72 its pointer.
// Fixed offsets keep every memory operand a plain number. Hand assembly:
// it runs in real and protected mode, before any Rust code can.
core::arch::global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
ap_trampoline_start:
    .code16
    jmp ap_real
    .balign 8
    .global ap_params
ap_params:
    .quad 0, 0, 0, 0
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_gdt_ptr:
    .short 31
    .long {base} + 40
ap_real:
    cli
    cld
    mov ax, cs
    mov ds, ax
    lgdt [72]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    .byte 0x66, 0xEA
    .long {base} + (ap_pm32 - ap_trampoline_start)
    .short 0x08

    .code32
ap_pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, [{base} + 8]
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, cr0
    or eax, 0x80010001
    mov cr0, eax
    .byte 0xEA
    .long {base} + (ap_lm64 - ap_trampoline_start)
    .short 0x18

    .code64
ap_lm64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, [{base} + 16]
    mov rdi, [{base} + 24]
    mov rax, [{base} + 32]
    call rax
    ud2
    .global ap_trampoline_end
ap_trampoline_end:
    .text
"#,
    base = const TRAMPOLINE,
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_params: u8;
    static ap_trampoline_end: u8;
}

/// Work a CPU can be asked to do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Op {
    /// Report this CPU's APIC id in result word 0.
    ApicId = 1,
    /// Write back and invalidate this CPU's caches.
    Wbinvd = 2,
    /// A SEAMCALL on this CPU: args and results are the register words.
    Seamcall = 3,
    /// Enter VMX root operation (hardware SEAMCALL backend); word 0 = 1 on
    /// success.
    VmxOn = 4,
    /// [`Op::Seamcall`], after which the CPU interrupts the boot CPU with
    /// [`DONE_VECTOR`] (an asynchronous SEAMCALL nobody spins on).
    SeamcallAnnounced = 5,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// No such CPU, or it never started.
    NoSuchCpu,
    /// The CPU did not answer in time, or is still busy with an earlier
    /// request that timed out (then this one was not posted at all).
    Timeout,
}

/// One mailbox per CPU; its answers carry their request's sequence number
/// (`kerncore::mailbox`), so a late answer is never taken for a later one.
static MAILBOXES: [Mailbox; MAX_CPUS] = [const { Mailbox::new() }; MAX_CPUS];
/// APIC id of each started CPU (index 0 = boot CPU); `u32::MAX` = absent.
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];
static CPU_COUNT: AtomicU32 = AtomicU32::new(1);

/// The per-CPU area: physical base and slot count, set once by
/// [`set_per_cpu_area`] before any AP starts. It lives outside the kernel
/// image (32 MiB of stacks for MAX_CPUS would not fit below the tasks), in
/// RAM the boot CPU carved after the task memory and recorded as an image
/// range, so no task and no TDX structure is ever given it.
static AREA_BASE: AtomicU64 = AtomicU64::new(0);
static AREA_SLOTS: AtomicU64 = AtomicU64::new(0);

/// Bytes of per-CPU area `cpus` CPUs need.
#[must_use]
pub const fn per_cpu_area_bytes(cpus: usize) -> u64 {
    cpus as u64 * PER_CPU_BYTES
}

/// Hands the kernel `slots` per-CPU slots at physical `base` (page-aligned
/// RAM of [`per_cpu_area_bytes`]`(slots)` bytes inside the direct map, which
/// the caller checked and keeps from everyone else), and zeroes them.
pub fn set_per_cpu_area(base: u64, slots: usize) {
    // Safety: the caller hands over this RAM for good; the direct map
    // covers it and nothing else refers to it yet.
    unsafe { core::ptr::write_bytes(phys_to_virt(base), 0, per_cpu_area_bytes(slots) as usize) };
    AREA_BASE.store(base, Ordering::Relaxed);
    AREA_SLOTS.store(slots as u64, Ordering::Release);
}

/// Physical address of CPU `index`'s slot, if the area has one.
fn slot(index: usize) -> Option<u64> {
    ((index as u64) < AREA_SLOTS.load(Ordering::Acquire))
        .then(|| AREA_BASE.load(Ordering::Relaxed) + index as u64 * PER_CPU_BYTES)
}

/// The physical address of CPU `index`'s VMXON region (a zeroed page only
/// that CPU uses), if the per-CPU area has a slot for it.
#[must_use]
pub fn vmxon_region(index: usize) -> Option<u64> {
    slot(index)
}

/// The handler of a request, installed by the kernel (SEAMCALL backend).
pub type Handler = fn(cpu: usize, op: Op, words: &mut [u64; 8]);
static HANDLER: AtomicU64 = AtomicU64::new(0);

/// Installs the function that executes requests (on whichever CPU).
pub fn set_handler(h: Handler) {
    HANDLER.store(h as usize as u64, Ordering::Release);
}

fn execute(cpu_index: usize, op: Op, words: &mut [u64; 8]) {
    match op {
        Op::ApicId => words[0] = u64::from(apic::apic_id()),
        Op::Wbinvd => cpu::wbinvd(),
        Op::VmxOn => words[0] = u64::from(super::vmx::vmxon_here(cpu_index)),
        Op::Seamcall | Op::SeamcallAnnounced => {
            let h = HANDLER.load(Ordering::Acquire);
            if h != 0 {
                // Safety: HANDLER only ever holds a `Handler` stored by
                // `set_handler`.
                let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(h as usize) };
                f(cpu_index, op, words);
            }
        }
    }
}

/// Number of CPUs running (boot CPU included).
#[must_use]
pub fn cpu_count() -> usize {
    CPU_COUNT.load(Ordering::Acquire) as usize
}

/// APIC id of CPU `index`, if it runs.
#[must_use]
pub fn apic_id_of(index: usize) -> Option<u32> {
    let id = APIC_IDS.get(index)?.load(Ordering::Acquire);
    (id != u32::MAX).then_some(id)
}

/// Runs `op` on CPU `index` and returns its result words. The boot CPU
/// (index 0) runs it directly.
pub fn run_on(index: usize, op: Op, words: [u64; 8]) -> Result<[u64; 8], SmpError> {
    match post_to(index, op, words)? {
        Posted::Done(w) => Ok(w),
        Posted::Running(ticket) => wait(index, ticket),
    }
}

/// A request handed to a CPU by [`post_to`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// The boot CPU ran it at once: its result words.
    Done([u64; 8]),
    /// An AP runs it; [`answer`] or [`wait`] with this ticket.
    Running(Ticket),
}

/// Hands `op` to CPU `index` and returns without waiting for an AP (the
/// boot CPU runs it at once). An AP still busy with an earlier request
/// refuses it (`Timeout`, nothing posted).
pub fn post_to(index: usize, op: Op, words: [u64; 8]) -> Result<Posted, SmpError> {
    let apic_id = apic_id_of(index).ok_or(SmpError::NoSuchCpu)?;
    let mut w = words;
    if index == 0 {
        execute(0, op, &mut w);
        return Ok(Posted::Done(w));
    }
    let ticket = MAILBOXES[index]
        .post(op as u64, w)
        .map_err(|_| SmpError::Timeout)?;
    apic::send_ipi(apic_id, SERVICE_VECTOR);
    Ok(Posted::Running(ticket))
}

/// Whether CPU `index` still owes the answer to a request (a new one
/// would be refused).
#[must_use]
pub fn is_busy(index: usize) -> bool {
    MAILBOXES.get(index).is_some_and(Mailbox::is_busy)
}

/// The answer of request `ticket` on CPU `index`, once it has one.
#[must_use]
pub fn answer(index: usize, ticket: Ticket) -> Option<[u64; 8]> {
    MAILBOXES.get(index)?.answer(ticket)
}

/// Waits (bounded) for the answer of request `ticket` on CPU `index`.
pub fn wait(index: usize, ticket: Ticket) -> Result<[u64; 8], SmpError> {
    let mut spins: u64 = 0;
    loop {
        if let Some(answer) = answer(index, ticket) {
            return Ok(answer);
        }
        spins += 1;
        if spins > 2_000_000_000 {
            // The ticket is abandoned: its answer, if it ever comes, is
            // never read, and the CPU refuses new requests until it gives
            // it.
            return Err(SmpError::Timeout);
        }
        core::hint::spin_loop();
    }
}

/// First Rust code of an AP, called by the trampoline with its index.
extern "C" fn ap_main(index: u64) -> ! {
    let index = index as usize;
    gdt::load_on_ap();
    super::idt::load_ap();
    cpu::enable_protections();
    apic::init_local();
    APIC_IDS[index].store(apic::apic_id(), Ordering::Release);
    let m = &MAILBOXES[index];
    loop {
        if let Some((ticket, raw, mut w)) = m.pending() {
            let op = match raw {
                1 => Op::ApicId,
                2 => Op::Wbinvd,
                4 => Op::VmxOn,
                5 => Op::SeamcallAnnounced,
                _ => Op::Seamcall,
            };
            execute(index, op, &mut w);
            m.complete(ticket, w);
            if op == Op::SeamcallAnnounced {
                if let Some(boot) = apic_id_of(0) {
                    apic::send_ipi(boot, DONE_VECTOR);
                }
            }
        }
        // `sti; hlt` is race-free: an IPI arriving after the check wakes
        // the halt, and its handler only acknowledges it.
        cpu::wait_for_interrupt();
    }
}

/// Starts every enabled CPU of the platform record other than the boot CPU.
/// Returns the APIC ids that failed to start.
pub fn start_aps(
    kernel_pml4: TablePhys,
    apic_ids: impl Iterator<Item = u32>,
    failed: &mut [u32; MAX_CPUS],
) -> usize {
    let boot_id = apic::apic_id();
    APIC_IDS[0].store(boot_id, Ordering::Release);
    // Linker symbols of the trampoline; only their addresses are taken.
    let (start, params, end) = (
        &raw const ap_trampoline_start as u64,
        &raw const ap_params as u64,
        &raw const ap_trampoline_end as u64,
    );
    let len = (end - start) as usize;
    // Safety: TRAMPOLINE is conventional RAM below 1 MiB (checked by the
    // caller against the memory map) that nothing else uses after boot-info
    // parsing; the direct map covers it.
    unsafe { core::ptr::copy_nonoverlapping(start as *const u8, phys_to_virt(TRAMPOLINE), len) };
    map_page(
        kernel_pml4,
        TRAMPOLINE,
        TRAMPOLINE,
        Access {
            write: false,
            execute: true,
            user: false,
        },
    );
    let param = |i: u64| phys_to_virt(TRAMPOLINE + (params - start) + 8 * i) as *mut u64;

    let mut nfailed = 0;
    let mut next = 1;
    for id in apic_ids.filter(|&id| id != boot_id) {
        let Some(slot) = slot(next) else {
            crate::kprintln!("smp: CPU with APIC id {id} ignored: no per-CPU slot for it");
            if nfailed < MAX_CPUS {
                failed[nfailed] = id;
                nfailed += 1;
            }
            continue;
        };
        if !apic::can_address(id) {
            crate::kprintln!(
                "smp: CPU with APIC id {id} not started: ids above 255 need x2APIC mode, which this CPU lacks"
            );
            if nfailed < MAX_CPUS {
                failed[nfailed] = id;
                nfailed += 1;
            }
            continue;
        }
        if next >= MAX_CPUS {
            crate::kprintln!(
                "smp: CPU with APIC id {id} ignored: the kernel drives at most {MAX_CPUS} CPUs"
            );
            continue;
        }
        // Safety: each AP gets its own stack (its slot's, after the VMXON
        // page, reached through the direct map); the parameter block is
        // read by exactly one starting AP at a time (we wait for it below).
        unsafe {
            let stack_top = phys_to_virt(slot + PER_CPU_BYTES) as u64;
            param(0).write_volatile(kernel_pml4.0);
            param(1).write_volatile(stack_top);
            param(2).write_volatile(next as u64);
            param(3).write_volatile(ap_main as *const () as u64);
        }
        apic::send_init(id);
        apic::delay_us(10_000);
        apic::send_sipi(id, (TRAMPOLINE >> 12) as u8);
        apic::delay_us(200);
        if apic_id_of(next).is_none() {
            apic::send_sipi(id, (TRAMPOLINE >> 12) as u8);
        }
        // Up to 100 ms to check in.
        let mut waited = 0;
        while apic_id_of(next).is_none() && waited < 100 {
            apic::delay_us(1000);
            waited += 1;
        }
        if apic_id_of(next).is_some() {
            next += 1;
            CPU_COUNT.store(next as u32, Ordering::Release);
        } else {
            crate::kprintln!("smp: CPU with APIC id {id} did not start");
            if nfailed < MAX_CPUS {
                failed[nfailed] = id;
                nfailed += 1;
            }
        }
    }
    nfailed
}
