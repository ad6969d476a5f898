//! The GDT and the TSS of the boot CPU, which is the CPU that runs tasks.
//!
//! Segment layout is dictated by SYSCALL/SYSRET: STAR[47:32] names the
//! kernel code selector (data follows it) and STAR[63:48] a base from which
//! SYSRET derives user SS (= base + 8) and user 64-bit CS (= base + 16).
//!
//! The TSS carries RSP0 — pointed at the end of the running task's saved
//! register frame, so that an interrupt from ring 3 pushes its frame
//! straight into the task's save area — an IST stack for double faults, and
//! the I/O permission bitmap that grants each task exactly the ports the
//! manifest gives it (IOPL stays 0 for every task).

use core::cell::UnsafeCell;
use core::mem::size_of;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
/// SYSRET base: user SS = 0x20 | 3, user CS = 0x28 | 3.
pub const SYSRET_BASE: u16 = 0x18;
pub const USER_DS: u16 = 0x20 | 3;
pub const USER_CS: u16 = 0x28 | 3;
const TSS_SELECTOR: u16 = 0x30;

/// Bytes of I/O permission bitmap: one bit per port, plus the terminating
/// all-ones byte the CPU may read past the last port.
const IOPB_BYTES: usize = 65536 / 8 + 1;

#[repr(C, packed)]
struct TaskStateSegment {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
    iopb: [u8; IOPB_BYTES],
}

#[repr(C, align(16))]
struct Gdt([u64; 8]);

struct CpuTables {
    gdt: UnsafeCell<Gdt>,
    tss: UnsafeCell<TaskStateSegment>,
}

// Safety: the tables are written only by the boot CPU, with interrupts off,
// during init and at context switches (which run on the boot CPU only).
unsafe impl Sync for CpuTables {}

static TABLES: CpuTables = CpuTables {
    gdt: UnsafeCell::new(Gdt([0; 8])),
    tss: UnsafeCell::new(TaskStateSegment {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        iomap_base: 104,
        iopb: [0xFF; IOPB_BYTES],
    }),
};

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT and TSS on the boot CPU. `double_fault_stack_top` becomes
/// IST1.
pub fn init(double_fault_stack_top: u64) {
    let tss_base = TABLES.tss.get() as u64;
    let tss_limit = (size_of::<TaskStateSegment>() - 1) as u64;
    // Safety: init runs once on the boot CPU before interrupts are enabled;
    // nothing else references the tables yet.
    unsafe {
        (*TABLES.tss.get()).ist[0] = double_fault_stack_top;
        let gdt = &mut *TABLES.gdt.get();
        gdt.0[1] = 0x00af_9a00_0000_ffff; // kernel code, 64-bit
        gdt.0[2] = 0x00cf_9200_0000_ffff; // kernel data
        gdt.0[3] = 0x00cf_fa00_0000_ffff; // user code, 32-bit (unused; SYSRET layout)
        gdt.0[4] = 0x00cf_f200_0000_ffff; // user data
        gdt.0[5] = 0x00af_fa00_0000_ffff; // user code, 64-bit
                                          // 64-bit available TSS descriptor (type 9), present.
        gdt.0[6] = (tss_limit & 0xffff)
            | (tss_base & 0xff_ffff) << 16
            | 0x89 << 40
            | ((tss_limit >> 16) & 0xf) << 48
            | ((tss_base >> 24) & 0xff) << 56;
        gdt.0[7] = tss_base >> 32;
        load_gdt_and_segments();
        core::arch::asm!("ltr {tss:x}", tss = in(reg) TSS_SELECTOR as u64);
    }
}

/// Sets RSP0, where the CPU puts the frame of an interrupt taken in ring 3.
pub fn set_rsp0(rsp0: u64) {
    // Safety: boot-CPU-only, interrupts off (kernel invariant); a plain
    // field write the CPU reads at the next privilege change.
    unsafe { core::ptr::addr_of_mut!((*TABLES.tss.get()).rsp[0]).write_unaligned(rsp0) }
}

/// Grants (or with `allow == false`, revokes) direct access to the ports
/// `first..first+count` for whatever runs next in ring 3.
pub fn set_io_permission(first: u16, count: u16, allow: bool) {
    // Safety: as for `set_rsp0`.
    let iopb = unsafe { &mut (*TABLES.tss.get()).iopb };
    for port in u32::from(first)..u32::from(first) + u32::from(count) {
        let (byte, bit) = ((port / 8) as usize, port % 8);
        if allow {
            iopb[byte] &= !(1 << bit);
        } else {
            iopb[byte] |= 1 << bit;
        }
    }
}

/// Loads the boot CPU's GDT on an AP and reloads its segments. APs never
/// change privilege level, so they need no TSS of their own.
pub fn load_on_ap() {
    load_gdt_and_segments();
}

/// Loads the GDT and reloads CS (by a far return) and the data segments.
fn load_gdt_and_segments() {
    let ptr = DescriptorPointer {
        limit: (size_of::<Gdt>() - 1) as u16,
        base: TABLES.gdt.get() as u64,
    };
    // Safety: the GDT was filled by `init` on the boot CPU before any use;
    // only its kernel code and data descriptors are loaded here.
    unsafe {
        core::arch::asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            ptr = in(reg) &ptr,
            cs = const KERNEL_CS as u64,
            ds = in(reg) KERNEL_DS as u64,
            tmp = lateout(reg) _,
        );
    }
}
