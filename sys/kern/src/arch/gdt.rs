//! The GDT and the TSS of the boot CPU, which is the CPU that runs tasks.
//!
//! Segment layout is dictated by SYSCALL/SYSRET: STAR[47:32] names the
//! kernel code selector (data follows it) and STAR[63:48] a base from which
//! SYSRET derives user SS (= base + 8) and user 64-bit CS (= base + 16).
//!
//! The TSS carries RSP0 — pointed at the end of the running task's saved
//! register frame, so that an interrupt from ring 3 pushes its frame
//! straight into the task's save area — IST stacks for double faults, NMIs
//! and machine checks (the last two may arrive in the instructions that
//! still run on the task's RSP, see `nmi`), and the I/O permission bitmap that grants each task exactly the ports the
//! manifest gives it (IOPL stays 0 for every task).
//!
//! Descriptors, the TSS and the loads are the `x86_64` crate's; this module
//! decides only the layout, and checks at boot that the table came out in
//! the order its selector constants (and the entry stubs) assume.

use core::cell::UnsafeCell;

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, DescriptorFlags, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

pub const KERNEL_CS: SegmentSelector = SegmentSelector::new(1, PrivilegeLevel::Ring0);
pub const KERNEL_DS: SegmentSelector = SegmentSelector::new(2, PrivilegeLevel::Ring0);
/// 32-bit user code: never loaded, but SYSRET's arithmetic puts user SS
/// and 64-bit CS 8 and 16 bytes above the slot STAR names, which is this.
const USER_CS32: SegmentSelector = SegmentSelector::new(3, PrivilegeLevel::Ring3);
pub const USER_DS: SegmentSelector = SegmentSelector::new(4, PrivilegeLevel::Ring3);
pub const USER_CS: SegmentSelector = SegmentSelector::new(5, PrivilegeLevel::Ring3);
const TSS_SELECTOR: SegmentSelector = SegmentSelector::new(6, PrivilegeLevel::Ring0);
/// The selectors in table order, as `init` appends their descriptors.
const LAYOUT: [SegmentSelector; 6] = [
    KERNEL_CS,
    KERNEL_DS,
    USER_CS32,
    USER_DS,
    USER_CS,
    TSS_SELECTOR,
];

/// The interrupt stack (0-based, as the crate counts: IST1 to the CPU) the
/// double-fault handler runs on.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// The NMI handler's interrupt stack (IST2).
pub const NMI_IST: u16 = 1;
/// The machine-check handler's interrupt stack (IST3).
pub const MACHINE_CHECK_IST: u16 = 2;

/// Bytes of I/O permission bitmap: one bit per port, plus the terminating
/// all-ones byte the CPU may read past the last port.
const IOPB_BYTES: usize = 65536 / 8 + 1;

/// The TSS with its I/O permission bitmap right behind it, where the
/// crate's `TaskStateSegment::new` points `iomap_base`.
#[repr(C)]
struct TssWithIopb {
    tss: TaskStateSegment,
    iopb: [u8; IOPB_BYTES],
}

const _: () =
    assert!(core::mem::offset_of!(TssWithIopb, iopb) == core::mem::size_of::<TaskStateSegment>());

struct CpuTables {
    gdt: UnsafeCell<GlobalDescriptorTable>,
    tss: UnsafeCell<TssWithIopb>,
}

// Safety: the tables are written only by the boot CPU, with interrupts off,
// during init and at context switches (which run on the boot CPU only).
unsafe impl Sync for CpuTables {}

static TABLES: CpuTables = CpuTables {
    gdt: UnsafeCell::new(GlobalDescriptorTable::new()),
    tss: UnsafeCell::new(TssWithIopb {
        tss: TaskStateSegment::new(),
        iopb: [0xFF; IOPB_BYTES],
    }),
};

/// Loads the GDT and TSS on the boot CPU. `double_fault_stack_top` becomes
/// the stack of [`DOUBLE_FAULT_IST`]; [`NMI_IST`] and
/// [`MACHINE_CHECK_IST`] get their stacks from `stacks`.
pub fn init(double_fault_stack_top: u64) {
    // Safety: init runs once on the boot CPU before interrupts are enabled;
    // nothing else references the tables yet.
    let (gdt, tss) = unsafe { (&mut *TABLES.gdt.get(), &mut *TABLES.tss.get()) };
    // The crate's TSS is packed: the table is copied out, filled and
    // written back (a reference into it could be unaligned).
    let mut ist = tss.tss.interrupt_stack_table;
    ist[usize::from(DOUBLE_FAULT_IST)] = VirtAddr::new(double_fault_stack_top);
    ist[usize::from(NMI_IST)] = VirtAddr::new(super::stacks::NMI_STACK.top());
    ist[usize::from(MACHINE_CHECK_IST)] = VirtAddr::new(super::stacks::MACHINE_CHECK_STACK.top());
    tss.tss.interrupt_stack_table = ist;
    let tss: &'static TssWithIopb = tss;
    let tss_descriptor = match Descriptor::tss_segment_with_iomap(&tss.tss, &tss.iopb) {
        Ok(d) => d,
        Err(e) => panic!("TSS I/O bitmap rejected: {e}"),
    };
    let selectors = [
        gdt.append(Descriptor::kernel_code_segment()),
        gdt.append(Descriptor::kernel_data_segment()),
        gdt.append(Descriptor::UserSegment(DescriptorFlags::USER_CODE32.bits())),
        gdt.append(Descriptor::user_data_segment()),
        gdt.append(Descriptor::user_code_segment()),
        gdt.append(tss_descriptor),
    ];
    assert!(
        selectors == LAYOUT,
        "GDT built in a different order than its selectors say"
    );
    load_gdt_and_segments();
    // Safety: the descriptor at TSS_SELECTOR is the TSS above, which lives
    // for good in a static.
    unsafe { load_tss(TSS_SELECTOR) };
}

/// Sets RSP0, where the CPU puts the frame of an interrupt taken in ring 3.
pub fn set_rsp0(rsp0: u64) {
    // Safety: boot-CPU-only, interrupts off (kernel invariant); a plain
    // field write the CPU reads at the next privilege change. `rsp0` is the
    // end of a save area in the kernel image, so it is canonical, the one
    // thing `new_unsafe` skips checking on this context-switch path.
    unsafe { (*TABLES.tss.get()).tss.privilege_stack_table[0] = VirtAddr::new_unsafe(rsp0) }
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
    // Safety: the GDT was filled by `init` on the boot CPU before any use
    // and never changes afterwards; the selectors name its kernel code and
    // data descriptors.
    unsafe {
        (*TABLES.gdt.get()).load_unsafe();
        CS::set_reg(KERNEL_CS);
        DS::set_reg(KERNEL_DS);
        ES::set_reg(KERNEL_DS);
        SS::set_reg(KERNEL_DS);
    }
}
