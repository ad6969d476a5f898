//! The interrupt descriptor table and one tiny stub per vector.
//!
//! Each stub makes the stack look the same for every vector — pushing a
//! zero where the CPU pushes no error code — records its vector, and jumps
//! to [`trap_common`](super::entry::trap_common). All gates are interrupt
//! gates (IF cleared on entry): the kernel runs with interrupts off.

use core::cell::UnsafeCell;
use core::mem::size_of;

use super::entry::{trap_common, TRAP_VECTOR};
use super::gdt::KERNEL_CS;

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
const BREAKPOINT: u8 = 3;

#[derive(Copy, Clone)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const MISSING: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
};

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);

// Safety: written once during boot-CPU init, read-only afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([MISSING; 256]));

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
stub!(v02, 2);
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
stub!(v18, 18);
stub!(v19, 19);
stub!(v20, 20);
stub!(v21, 21, error_code);
stub!(vtimer, TIMER_VECTOR);
stub!(vspurious, SPURIOUS_VECTOR);

macro_rules! irq_stubs {
    ($($name:ident = $n:expr),* $(,)?) => {
        $( stub!($name, IRQ_BASE_VECTOR + $n); )*
        const IRQ_STUBS: [unsafe extern "C" fn(); IRQ_COUNT as usize] = [$($name),*];
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

fn gate(handler: unsafe extern "C" fn(), ist: u8) -> Gate {
    gate_with_dpl(handler, ist, 0)
}

/// A gate; `dpl` 3 lets `int n` from ring 3 reach it (only #BP, so that a
/// task's breakpoint is reported as one rather than as #GP).
fn gate_with_dpl(handler: unsafe extern "C" fn(), ist: u8, dpl: u8) -> Gate {
    let addr = handler as *const () as u64;
    Gate {
        offset_low: addr as u16,
        selector: KERNEL_CS,
        ist,
        // Present, 64-bit interrupt gate; with DPL 0 tasks cannot `int`
        // into the kernel.
        type_attr: 0x8E | (dpl << 5),
        offset_mid: (addr >> 16) as u16,
        offset_high: (addr >> 32) as u32,
        reserved: 0,
    }
}

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Fills the IDT and loads it on this CPU.
pub fn init() {
    let exceptions: [(u8, unsafe extern "C" fn()); 21] = [
        (0, v00),
        (1, v01),
        (2, v02),
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
        (18, v18),
        (19, v19),
        (20, v20),
        (21, v21),
        (TIMER_VECTOR, vtimer),
    ];
    // Safety: boot-CPU init, before interrupts are enabled; nothing reads
    // the table concurrently.
    let idt = unsafe { &mut *IDT.0.get() };
    for (vector, handler) in exceptions {
        idt[usize::from(vector)] = gate(handler, 0);
    }
    idt[usize::from(DOUBLE_FAULT)] = gate(v08, 1);
    idt[usize::from(BREAKPOINT)] = gate_with_dpl(v03, 0, 3);
    idt[usize::from(SPURIOUS_VECTOR)] = gate(vspurious, 0);
    for (n, handler) in IRQ_STUBS.iter().enumerate() {
        idt[usize::from(IRQ_BASE_VECTOR) + n] = gate(*handler, 0);
    }
    load();
}

/// Loads the (already filled) IDT on the calling CPU.
pub fn load() {
    let ptr = DescriptorPointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: IDT.0.get() as u64,
    };
    // Safety: the IDT is static and fully initialized by `init`.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags))
    }
}

/// The APs' table: their only interrupt is the service IPI, and any
/// exception on an AP is a kernel bug.
static AP_IDT: Idt = Idt(UnsafeCell::new([MISSING; 256]));

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
    for g in idt.iter_mut().take(32) {
        *g = gate(ap_exception_stub, 0);
    }
    idt[6] = gate(ap_ud_stub, 0);
    idt[13] = gate(ap_gp_stub, 0);
    idt[usize::from(super::smp::SERVICE_VECTOR)] = gate(ap_service_stub, 0);
    idt[usize::from(SPURIOUS_VECTOR)] = gate(ap_service_stub, 0);
}

/// Loads the APs' IDT on the calling AP.
pub fn load_ap() {
    let ptr = DescriptorPointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: AP_IDT.0.get() as u64,
    };
    // Safety: filled by `init_ap` before any AP started.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags))
    }
}
