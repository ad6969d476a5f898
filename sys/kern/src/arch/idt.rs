//! The interrupt descriptor table and one tiny stub per vector.
//!
//! Each stub makes the stack look the same for every vector — pushing a
//! zero where the CPU pushes no error code — records its vector, and jumps
//! to [`trap_common`](super::entry::trap_common). All gates are interrupt
//! gates (IF cleared on entry): the kernel runs with interrupts off.
//!
//! NMI and machine check are the exceptions: they cannot be masked, so
//! they may arrive where RSP is still the task's, and they are never a
//! task's fault. Their gates go to the stubs of [`nmi`](super::nmi), on
//! IST stacks of their own, and never reach `trap_common`.
//!
//! The table and its gates are the `x86_64` crate's. Its typed handlers
//! need the unstable x86-interrupt ABI, so gates are set by address to the
//! naked stubs here, which stay hand-written: they are the entry path.

use core::cell::UnsafeCell;

use x86_64::structures::idt::{Entry, EntryOptions, InterruptDescriptorTable};
use x86_64::{PrivilegeLevel, VirtAddr};

use super::entry::{trap_common, TRAP_VECTOR};
use super::gdt::{DOUBLE_FAULT_IST, KERNEL_CS, MACHINE_CHECK_IST, NMI_IST};
use super::nmi;

/// Vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// Vector of IOAPIC input 0; input n uses `IRQ_BASE_VECTOR + n`.
pub const IRQ_BASE_VECTOR: u8 = 0x30;
/// Number of IOAPIC inputs the kernel routes.
pub const IRQ_COUNT: u8 = 24;
/// Vector the LAPIC uses for spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// Vector of the double-fault exception, which runs on IST1.
pub const DOUBLE_FAULT: u8 = 8;
/// Vector of the NMI, which runs on IST2.
pub const NMI: u8 = 2;
/// Vector of the machine-check exception, which runs on IST3.
pub const MACHINE_CHECK: u8 = 18;
const BREAKPOINT: u8 = 3;

#[repr(transparent)]
struct Idt(UnsafeCell<InterruptDescriptorTable>);

// Safety: written once during boot-CPU init, read-only afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new(InterruptDescriptorTable::new()));

macro_rules! stub {
    ($name:ident, $vector:expr, error_code) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "mov dword ptr [rip + {v}], {n}",
                "jmp {common}",
                v = sym TRAP_VECTOR,
                n = const $vector,
                common = sym trap_common,
            )
        }
    };
    ($name:ident, $vector:expr) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "push 0",
                "mov dword ptr [rip + {v}], {n}",
                "jmp {common}",
                v = sym TRAP_VECTOR,
                n = const $vector,
                common = sym trap_common,
            )
        }
    };
}

stub!(v00, 0);
stub!(v01, 1);
stub!(v03, 3);
stub!(v04, 4);
stub!(v05, 5);
stub!(v06, 6);
stub!(v07, 7);
stub!(v08, 8, error_code);
stub!(v09, 9);
stub!(v10, 10, error_code);
stub!(v11, 11, error_code);
stub!(v12, 12, error_code);
stub!(v13, 13, error_code);
stub!(v14, 14, error_code);
stub!(v16, 16);
stub!(v17, 17, error_code);
stub!(v19, 19);
stub!(v20, 20);
stub!(v21, 21, error_code);
stub!(vtimer, TIMER_VECTOR);
stub!(vspurious, SPURIOUS_VECTOR);
stub!(vdone, super::smp::DONE_VECTOR);

macro_rules! irq_stubs {
    ($($name:ident = $n:expr),* $(,)?) => {
        $( stub!($name, IRQ_BASE_VECTOR + $n); )*
        const IRQ_STUBS: [Stub; IRQ_COUNT as usize] = [$($name),*];
    };
}

irq_stubs!(
    i00 = 0,
    i01 = 1,
    i02 = 2,
    i03 = 3,
    i04 = 4,
    i05 = 5,
    i06 = 6,
    i07 = 7,
    i08 = 8,
    i09 = 9,
    i10 = 10,
    i11 = 11,
    i12 = 12,
    i13 = 13,
    i14 = 14,
    i15 = 15,
    i16 = 16,
    i17 = 17,
    i18 = 18,
    i19 = 19,
    i20 = 20,
    i21 = 21,
    i22 = 22,
    i23 = 23,
);

type Stub = unsafe extern "C" fn();

/// The crate names the entries of exceptions that push an error code (or
/// never return) by field, because their handler types differ, and panics
/// when they are indexed; this reaches any vector's entry by number.
/// Reserved vectors (15, 22–27, 31) have none: the CPU never raises them.
fn set_gate(idt: &mut InterruptDescriptorTable, vector: u8, stub: Stub) -> &mut EntryOptions {
    fn set<F>(entry: &mut Entry<F>, stub: Stub) -> &mut EntryOptions {
        // Safety: the stubs of this module are the only handlers, each
        // written for the frame its vector delivers (with or without an
        // error code).
        let options = unsafe { entry.set_handler_addr(VirtAddr::new(stub as usize as u64)) };
        // Safety: KERNEL_CS is the GDT's 64-bit kernel code descriptor,
        // loaded before any gate is used; naming it keeps the gate right
        // whatever CS the filling CPU happens to run on.
        unsafe { options.set_code_selector(KERNEL_CS) }
    }
    match vector {
        8 => set(&mut idt.double_fault, stub),
        10 => set(&mut idt.invalid_tss, stub),
        11 => set(&mut idt.segment_not_present, stub),
        12 => set(&mut idt.stack_segment_fault, stub),
        13 => set(&mut idt.general_protection_fault, stub),
        14 => set(&mut idt.page_fault, stub),
        17 => set(&mut idt.alignment_check, stub),
        18 => set(&mut idt.machine_check, stub),
        21 => set(&mut idt.cp_protection_exception, stub),
        29 => set(&mut idt.vmm_communication_exception, stub),
        30 => set(&mut idt.security_exception, stub),
        v => set(&mut idt[v], stub),
    }
}

/// Whether the crate's table has an entry for exception `vector`.
fn is_reserved(vector: u8) -> bool {
    matches!(vector, 15 | 22..=27 | 31)
}

/// Fills the IDT and loads it on this CPU.
pub fn init() {
    let exceptions: [(u8, Stub); 19] = [
        (0, v00),
        (1, v01),
        (3, v03),
        (4, v04),
        (5, v05),
        (6, v06),
        (7, v07),
        (9, v09),
        (10, v10),
        (11, v11),
        (12, v12),
        (13, v13),
        (14, v14),
        (16, v16),
        (17, v17),
        (19, v19),
        (20, v20),
        (21, v21),
        (TIMER_VECTOR, vtimer),
    ];
    // Safety: boot-CPU init, before interrupts are enabled; nothing reads
    // the table concurrently.
    let idt = unsafe { &mut *IDT.0.get() };
    for (vector, handler) in exceptions {
        set_gate(idt, vector, handler);
    }
    // Safety: IST slot DOUBLE_FAULT_IST holds the double-fault stack
    // (`gdt::init`), used by no other vector.
    unsafe { set_gate(idt, DOUBLE_FAULT, v08).set_stack_index(DOUBLE_FAULT_IST) };
    // Safety: IST slot NMI_IST holds the NMI stack (`gdt::init`), used by
    // no other vector; NMIs do not nest, so the stub never finds its own
    // frame in use.
    unsafe { set_gate(idt, NMI, nmi::nmi_entry).set_stack_index(NMI_IST) };
    // Safety: IST slot MACHINE_CHECK_IST holds the machine-check stack
    // (`gdt::init`), used by no other vector; its handler never returns,
    // so no second frame can land on a live one it still needs.
    unsafe {
        set_gate(idt, MACHINE_CHECK, nmi::machine_check_entry).set_stack_index(MACHINE_CHECK_IST)
    };
    // DPL 3 lets `int3` from ring 3 reach the gate (only #BP, so that a
    // task's breakpoint is reported as one rather than as #GP); every other
    // gate keeps DPL 0, so tasks cannot `int` into the kernel.
    set_gate(idt, BREAKPOINT, v03).set_privilege_level(PrivilegeLevel::Ring3);
    set_gate(idt, SPURIOUS_VECTOR, vspurious);
    set_gate(idt, super::smp::DONE_VECTOR, vdone);
    for (vector, handler) in (IRQ_BASE_VECTOR..).zip(IRQ_STUBS) {
        set_gate(idt, vector, handler);
    }
    load();
    nmi::enable_machine_checks();
}

/// Loads the (already filled) IDT on the calling CPU.
pub fn load() {
    // Safety: the IDT is static, fully initialized by `init` and never
    // changed afterwards.
    unsafe { (*IDT.0.get()).load_unsafe() }
}

/// The APs' table: their only interrupt is the service IPI, and any
/// exception on an AP is a kernel bug. NMIs (an NMI IPI, or LINT1 where
/// the firmware unmasked it) are counted; a machine check is fatal, as on
/// the boot CPU.
/// APs have no TSS, so these gates use no IST: an AP only ever runs on its
/// own kernel stack.
static AP_IDT: Idt = Idt(UnsafeCell::new(InterruptDescriptorTable::new()));

#[unsafe(naked)]
unsafe extern "C" fn ap_service_stub() {
    core::arch::naked_asm!(
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "call {eoi}",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "iretq",
        eoi = sym ap_service,
    )
}

extern "C" fn ap_service() {
    super::apic::eoi();
}

/// #UD and #GP on an AP: the SEAMCALL fix-up, else a kernel bug.
#[unsafe(naked)]
unsafe extern "C" fn ap_ud_stub() {
    core::arch::naked_asm!("push 0", "push rax", "mov eax, 6", "jmp {c}", c = sym ap_fixup_common)
}

#[unsafe(naked)]
unsafe extern "C" fn ap_gp_stub() {
    core::arch::naked_asm!("push rax", "mov eax, 13", "jmp {c}", c = sym ap_fixup_common)
}

/// Stack: saved RAX, error code, then the CPU's frame (RIP first). Calls
/// `ap_fixup(rip, vector)`, which returns the resume address and the RAX
/// to resume with, or panics.
#[unsafe(naked)]
unsafe extern "C" fn ap_fixup_common() {
    core::arch::naked_asm!(
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push rbx",
        "mov rdi, [rsp + 88]",
        "mov esi, eax",
        "mov rbx, rsp",
        "and rsp, -16",
        "call {f}",
        "mov rsp, rbx",
        "mov [rsp + 88], rax",
        "mov [rsp + 72], rdx",
        "pop rbx",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "add rsp, 8",
        "iretq",
        f = sym ap_fixup,
    )
}

/// Returns `(resume rip, rax)` in RAX:RDX.
extern "C" fn ap_fixup(rip: u64, vector: u32) -> FixupResult {
    match super::vmx::fixup(rip, vector) {
        Some((resume, code)) => FixupResult {
            rip: resume,
            rax: code,
        },
        None => panic!(
            "exception {vector} on application processor (APIC id {}) at {rip:#x}",
            super::apic::apic_id()
        ),
    }
}

#[repr(C)]
struct FixupResult {
    rip: u64,
    rax: u64,
}

#[unsafe(naked)]
unsafe extern "C" fn ap_exception_stub() {
    core::arch::naked_asm!("and rsp, -16", "call {f}", "ud2", f = sym ap_exception)
}

extern "C" fn ap_exception() -> ! {
    panic!(
        "exception on application processor (APIC id {})",
        super::apic::apic_id()
    );
}

/// Fills the APs' IDT (once, on the boot CPU, before APs start).
pub fn init_ap() {
    // Safety: boot CPU, before any AP runs; nothing reads it yet.
    let idt = unsafe { &mut *AP_IDT.0.get() };
    for vector in (0..32).filter(|&v| !is_reserved(v)) {
        set_gate(idt, vector, ap_exception_stub);
    }
    set_gate(idt, 6, ap_ud_stub);
    set_gate(idt, 13, ap_gp_stub);
    set_gate(idt, NMI, nmi::ap_nmi_entry);
    set_gate(idt, MACHINE_CHECK, nmi::machine_check_entry);
    set_gate(idt, super::smp::SERVICE_VECTOR, ap_service_stub);
    set_gate(idt, SPURIOUS_VECTOR, ap_service_stub);
}

/// Loads the APs' IDT on the calling AP.
pub fn load_ap() {
    // Safety: filled by `init_ap` before any AP started, never changed
    // afterwards.
    unsafe { (*AP_IDT.0.get()).load_unsafe() }
}
