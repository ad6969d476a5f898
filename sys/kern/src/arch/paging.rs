//! Page tables: the kernel's, a direct map of physical memory, and one
//! address space per task.
//!
//! Invariants:
//! - The kernel image is identity-mapped, supervisor-only, with W^X
//!   permissions, in every address space; the page tables for it are
//!   shared, so the kernel image and tasks never share a 2 MiB block.
//! - All physical memory up to [`DIRECT_MAP_LIMIT`] is mapped at
//!   [`PHYS_OFFSET`] + pa, supervisor-only and non-executable, through one
//!   PML4 entry shared by every address space. The kernel touches task
//!   memory only through this map, never through task addresses, so SMAP
//!   can stay on.
//! - A task's address space adds exactly its own regions, user-accessible,
//!   identity-mapped, with the manifest's permissions. Nothing else is
//!   user-accessible: a stray access faults.
//! - Table pages come from a fixed pool in `.bss`; running out is a boot
//!   failure, reported as such, because it is a build-time sizing error.
//!
//! Tables, entries and their flags are the `x86_64` crate's; the walk is
//! our own, because it runs on identity-mapped pool pages at boot and
//! needs none of the crate's mapper machinery (frame allocators, recursive
//! or offset table access).

use core::cell::UnsafeCell;

use x86_64::instructions::tlb;
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};
use x86_64::{PhysAddr, VirtAddr};

/// Where the direct map of physical memory starts.
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;
/// How much physical memory the direct map covers.
pub const DIRECT_MAP_LIMIT: u64 = 64 << 30;

pub const PAGE_SIZE: u64 = 4096;
const LARGE_PAGE: u64 = 2 << 20;

/// Access a mapping grants.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub execute: bool,
    pub user: bool,
}

impl Access {
    fn leaf_flags(self) -> Flags {
        let mut flags = Flags::PRESENT;
        flags.set(Flags::WRITABLE, self.write);
        flags.set(Flags::NO_EXECUTE, !self.execute);
        // The kernel image is the same in every address space, so its TLB
        // entries may survive CR3 switches.
        flags.set(Flags::USER_ACCESSIBLE, self.user);
        flags.set(Flags::GLOBAL, !self.user);
        flags
    }
}

/// A physical address of a 4 KiB-aligned page-table page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TablePhys(pub u64);

const POOL_PAGES: usize = 384;

struct Pool {
    pages: UnsafeCell<[PageTable; POOL_PAGES]>,
    used: UnsafeCell<usize>,
}

// Safety: the pool is used only by the boot CPU during boot, with
// interrupts off, before any task runs.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool {
    pages: UnsafeCell::new([const { PageTable::new() }; POOL_PAGES]),
    used: UnsafeCell::new(0),
};

/// The pool lives in the identity-mapped kernel image, so a table page's
/// physical address is also a usable pointer to it.
fn table(phys: TablePhys) -> &'static mut PageTable {
    // Safety: `phys` always comes from `alloc_table`, i.e. it is a pool
    // page, identity-mapped and exclusively owned by the paging code during
    // boot.
    unsafe { &mut *(phys.0 as *mut PageTable) }
}

fn alloc_table() -> TablePhys {
    // Safety: single-threaded boot-time use (see `Pool`).
    let used = unsafe { &mut *POOL.used.get() };
    if *used == POOL_PAGES {
        crate::fail::boot_failure(format_args!(
            "page-table pool exhausted ({POOL_PAGES} pages): too many or too fragmented task regions"
        ));
    }
    // Safety: as above; the page at `used` has never been handed out.
    let page = unsafe { &mut (*POOL.pages.get())[*used] };
    *used += 1;
    page.zero();
    TablePhys(page as *mut PageTable as u64)
}

/// Returns the table the entry at `index` of `parent` points to, creating
/// it if absent. Intermediate entries allow everything; the leaf decides.
fn next_level(parent: TablePhys, index: usize) -> TablePhys {
    let entry = &mut table(parent)[index];
    let flags = entry.flags();
    if !flags.contains(Flags::PRESENT) {
        let new = alloc_table();
        entry.set_addr(
            PhysAddr::new(new.0),
            Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE,
        );
    } else if flags.contains(Flags::HUGE_PAGE) {
        crate::fail::boot_failure(format_args!("mapping inside a large page"));
    }
    child(entry)
}

/// The PML4, PDPT, PD and PT indices of `va`. Only the low 48 bits count,
/// as for the CPU; the upper bits of a non-canonical address are ignored.
fn indices(va: u64) -> [usize; 4] {
    let va = VirtAddr::new_truncate(va);
    [
        usize::from(va.p4_index()),
        usize::from(va.p3_index()),
        usize::from(va.p2_index()),
        usize::from(va.p1_index()),
    ]
}

/// The table an entry known to be present points to.
fn child(entry: &PageTableEntry) -> TablePhys {
    TablePhys(entry.addr().as_u64())
}

/// Maps one 4 KiB page.
pub fn map_page(pml4: TablePhys, va: u64, pa: u64, access: Access) {
    let [i4, i3, i2, i1] = indices(va);
    let pt = next_level(next_level(next_level(pml4, i4), i3), i2);
    table(pt)[i1].set_addr(PhysAddr::new(pa), access.leaf_flags());
}

/// Maps `[start, end)` identically with `access`, 4 KiB at a time.
pub fn map_identity(pml4: TablePhys, start: u64, end: u64, access: Access) {
    let mut va = start & !(PAGE_SIZE - 1);
    while va < end {
        map_page(pml4, va, va, access);
        va += PAGE_SIZE;
    }
}

/// The parts of an address space every task shares with the kernel.
pub struct KernelSpace {
    pub pml4: TablePhys,
    /// Page directory entries covering the kernel image.
    kernel_pd: TablePhys,
    kernel_pd_entries: usize,
    /// The PML4 entry of the direct map.
    direct_map_entry: PageTableEntry,
}

extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Builds the kernel's address space: the image with W^X permissions and
/// the direct map. Returns the handles task spaces are built from.
pub fn build_kernel_space() -> KernelSpace {
    // Safety: linker-script symbols; only their addresses are taken.
    let (kstart, tstart, tend, rstart, dstart, kend) = unsafe {
        (
            sym(&__kernel_start),
            sym(&__text_start),
            sym(&__text_end),
            sym(&__rodata_start),
            sym(&__data_start),
            sym(&__kernel_end),
        )
    };
    let pml4 = alloc_table();
    let kernel = |write, execute| Access {
        write,
        execute,
        user: false,
    };
    // Boot stub and multiboot header: executable (the stub ran from here).
    map_identity(pml4, kstart, tstart, kernel(false, true));
    map_identity(pml4, tstart, tend, kernel(false, true));
    map_identity(pml4, rstart, dstart, kernel(false, false));
    map_identity(pml4, dstart, kend, kernel(true, false));

    // Direct map with 2 MiB pages; the top GiB below 4 GiB is MMIO on PCs
    // (LAPIC, IOAPIC, HPET, PCI windows), so it is mapped uncached.
    let direct_pdpt = next_level(pml4, indices(PHYS_OFFSET)[0]);
    let mut pa = 0;
    while pa < DIRECT_MAP_LIMIT {
        let [_, i3, i2, _] = indices(PHYS_OFFSET + pa);
        let pd = next_level(direct_pdpt, i3);
        let mut flags =
            Flags::PRESENT | Flags::WRITABLE | Flags::HUGE_PAGE | Flags::NO_EXECUTE | Flags::GLOBAL;
        if (3 << 30..4 << 30).contains(&pa) {
            flags |= Flags::NO_CACHE | Flags::WRITE_THROUGH;
        }
        table(pd)[i2].set_addr(PhysAddr::new(pa), flags);
        pa += LARGE_PAGE;
    }

    let [i4, i3, _, _] = indices(kstart);
    let kernel_pdpt = child(&table(pml4)[i4]);
    let kernel_pd = child(&table(kernel_pdpt)[i3]);
    KernelSpace {
        pml4,
        kernel_pd,
        kernel_pd_entries: kend.div_ceil(LARGE_PAGE) as usize,
        direct_map_entry: table(pml4)[indices(PHYS_OFFSET)[0]].clone(),
    }
}

impl KernelSpace {
    /// First address a task region may use: the 2 MiB block after the
    /// kernel image, whose page tables tasks share.
    #[must_use]
    pub fn first_task_address(&self) -> u64 {
        self.kernel_pd_entries as u64 * LARGE_PAGE
    }

    /// A new address space holding the kernel; the caller adds the task's
    /// regions with [`map_identity`].
    #[must_use]
    pub fn new_task_space(&self) -> TablePhys {
        let pml4 = alloc_table();
        table(pml4)[indices(PHYS_OFFSET)[0]] = self.direct_map_entry.clone();
        let pd = next_level(next_level(pml4, 0), 0);
        for i in 0..self.kernel_pd_entries {
            table(pd)[i] = table(self.kernel_pd)[i].clone();
        }
        pml4
    }
}

/// Pointer to physical address `pa` through the direct map.
///
/// Only an address computation: it never fails, whatever `pa` (a task may
/// name any address with an empty slice, which is legal and never
/// accessed). Whoever dereferences the pointer must have checked `pa`.
#[must_use]
pub fn phys_to_virt(pa: u64) -> *mut u8 {
    PHYS_OFFSET.wrapping_add(pa) as *mut u8
}

/// The physical address of a kernel static. The kernel image is
/// identity-mapped (see the module doc), so it is the static's own address;
/// anything outside the image has no such translation and is a kernel bug.
#[must_use]
pub fn kernel_static_phys<T>(static_ref: *const T) -> u64 {
    // Safety: linker-script symbols; only their addresses are taken.
    let (start, end) = unsafe { (sym(&__kernel_start), sym(&__kernel_end)) };
    let va = static_ref as u64;
    assert!(
        (start..end).contains(&va),
        "kernel_static_phys: {va:#x} is not in the kernel image"
    );
    va
}

/// Table pages used so far, for the boot report.
#[must_use]
pub fn pool_pages_used() -> usize {
    // Safety: a plain read during single-threaded boot.
    unsafe { *POOL.used.get() }
}

/// Removes a 4 KiB mapping made with [`map_page`] (no-op if absent) and
/// flushes it from this CPU's TLB.
pub fn unmap_page(pml4: TablePhys, va: u64) {
    let [i4, i3, i2, i1] = indices(va);
    let mut t = pml4;
    for i in [i4, i3, i2] {
        let e = &table(t)[i];
        if !e.flags().contains(Flags::PRESENT) || e.flags().contains(Flags::HUGE_PAGE) {
            return;
        }
        t = child(e);
    }
    table(t)[i1].set_unused();
    tlb::flush(VirtAddr::new_truncate(va));
}
