//! Page tables: the kernel's, a direct map of physical memory, and one
//! address space per task.
//!
//! Invariants:
//! - The kernel image is identity-mapped, supervisor-only, with W^X
//!   permissions, in every address space; the page tables for it are
//!   shared, so the kernel image and tasks never share a 2 MiB block.
//! - All physical memory the platform reports is mapped at
//!   `PHYS_OFFSET + pa`, supervisor-only and non-executable: the low 4 GiB (its top GiB,
//!   the PC MMIO window, uncached), the boot memory map's RAM and ACPI
//!   ranges, and every enabled SRAT memory range, hot-pluggable ones
//!   included, up to the CPU's MAXPHYADDR; 1 GiB pages where the CPU has
//!   them, 2 MiB pages elsewhere (`kerncore::directmap` decides the extent
//!   and leaves). Holes (high PCI windows, reserved ranges above 4 GiB) are
//!   not mapped, so no cached alias of device memory exists. The map is
//!   built in two steps: from the boot memory map before ACPI is read (the
//!   tables are read through it), then extended with the SRAT's ranges
//!   ([`cover`], [`finish_direct_map`]) before any task space or other CPU
//!   exists; it never changes afterwards. Its PML4 entries (the upper
//!   half) are copied into every address space, so they and everything
//!   below them are shared. Every dereference of [`phys_to_virt`] for an
//!   address someone else named is checked with [`direct_map_covers`] or
//!   [`phys_to_virt_checked`]. The kernel touches task memory only through
//!   this map, never through task addresses, so SMAP can stay on.
//! - A task's address space adds exactly its own regions, user-accessible,
//!   identity-mapped, with the manifest's permissions. Nothing else is
//!   user-accessible: a stray access faults.
//! - Table pages come from fixed pools in `.bss`, one for task spaces and
//!   the kernel image, one for the direct map; running out is a boot
//!   failure, reported as such, naming the limit. The direct map's pool
//!   fits every extent the span table can hold when the CPU has 1 GiB
//!   pages (see [`DIRECT_POOL_PAGES`]).
//!
//! Tables, entries and their flags are the `x86_64` crate's; the walk is
//! our own, because it runs on identity-mapped pool pages at boot and
//! needs none of the crate's mapper machinery (frame allocators, recursive
//! or offset table access).

use core::cell::UnsafeCell;

use kerncore::directmap::{Added, Extent, ExtentError, Leaf, PageSize, HUGE_PAGE};
use x86_64::instructions::tlb;
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};
use x86_64::{PhysAddr, VirtAddr};

/// Where the direct map of physical memory starts: the upper half of the
/// 4-level address space.
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;
/// Virtual space the direct map has (PML4 entries 256..512): physical
/// memory must lie below 128 TiB.
pub const DIRECT_MAP_WINDOW: u64 = 1 << 47;
/// The first PML4 entry of the direct map.
const DIRECT_FIRST_PML4: usize = 256;
/// Most separate spans of physical memory the direct map holds.
pub const MAX_DIRECT_SPANS: usize = 64;
/// Table pages for the direct map: with 1 GiB pages the worst extent the
/// span table holds needs a page-directory-pointer table for each 512 GiB
/// of the window (256) and a page directory at each end of each span.
/// With 2 MiB pages only, each GiB touched needs a page directory, so
/// about 380 GiB fit; more is a boot failure naming this limit.
pub const DIRECT_POOL_PAGES: usize = 256 + 2 * MAX_DIRECT_SPANS;
/// Boot memory map kinds the direct map covers above 4 GiB: RAM, ACPI
/// reclaimable, ACPI NVS, persistent memory. Reserved ranges there are
/// often device memory and stay unmapped.
const MAPPED_KINDS: [u32; 4] = [1, 3, 4, 7];

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

/// Table pages for the kernel image and task address spaces.
const POOL_PAGES: usize = 256;

struct Pool<const N: usize> {
    pages: UnsafeCell<[PageTable; N]>,
    used: UnsafeCell<usize>,
    what: &'static str,
}

// Safety: the pools are used only by the boot CPU during boot, with
// interrupts off, before any task runs.
unsafe impl<const N: usize> Sync for Pool<N> {}

static POOL: Pool<POOL_PAGES> = Pool {
    pages: UnsafeCell::new([const { PageTable::new() }; POOL_PAGES]),
    used: UnsafeCell::new(0),
    what: "too many or too fragmented task regions",
};

static DIRECT_POOL: Pool<DIRECT_POOL_PAGES> = Pool {
    pages: UnsafeCell::new([const { PageTable::new() }; DIRECT_POOL_PAGES]),
    used: UnsafeCell::new(0),
    what: "the direct map of physical memory (DIRECT_POOL_PAGES)",
};

/// The pool lives in the identity-mapped kernel image, so a table page's
/// physical address is also a usable pointer to it.
fn table(phys: TablePhys) -> &'static mut PageTable {
    // Safety: `phys` always comes from `alloc_table`, i.e. it is a pool
    // page, identity-mapped and exclusively owned by the paging code during
    // boot.
    unsafe { &mut *(phys.0 as *mut PageTable) }
}

impl<const N: usize> Pool<N> {
    fn alloc(&self) -> TablePhys {
        // Safety: single-threaded boot-time use (see `Pool`).
        let used = unsafe { &mut *self.used.get() };
        if *used == N {
            crate::fail::boot_failure(format_args!(
                "page-table pool exhausted ({N} pages): {}",
                self.what
            ));
        }
        // Safety: as above; the page at `used` has never been handed out.
        let page = unsafe { &mut (*self.pages.get())[*used] };
        *used += 1;
        page.zero();
        TablePhys(page as *mut PageTable as u64)
    }

    fn used(&self) -> usize {
        // Safety: a plain read during single-threaded boot.
        unsafe { *self.used.get() }
    }
}

fn alloc_table() -> TablePhys {
    POOL.alloc()
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

    start_direct_map(pml4);

    let [i4, i3, _, _] = indices(kstart);
    let kernel_pdpt = child(&table(pml4)[i4]);
    let kernel_pd = child(&table(kernel_pdpt)[i3]);
    KernelSpace {
        pml4,
        kernel_pd,
        kernel_pd_entries: kend.div_ceil(LARGE_PAGE) as usize,
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
        for i in DIRECT_FIRST_PML4..512 {
            table(pml4)[i] = table(self.pml4)[i].clone();
        }
        let pd = next_level(next_level(pml4, 0), 0);
        for i in 0..self.kernel_pd_entries {
            table(pd)[i] = table(self.kernel_pd)[i].clone();
        }
        pml4
    }
}

/// The direct map's extent and how it is mapped.
struct DirectMap {
    extent: Extent<MAX_DIRECT_SPANS>,
    page: PageSize,
    phys_bits: u8,
    /// Ranges reported partly or wholly beyond MAXPHYADDR.
    clipped: usize,
}

struct DirectCell(UnsafeCell<DirectMap>);
// Safety: written only by the boot CPU during boot, before any other CPU
// starts or any task runs (see the module doc); read-only afterwards.
unsafe impl Sync for DirectCell {}

static DIRECT: DirectCell = DirectCell(UnsafeCell::new(DirectMap {
    extent: Extent::new(kerncore::directmap::DEFAULT_PHYS_BITS, DIRECT_MAP_WINDOW),
    page: PageSize::Large2M,
    phys_bits: kerncore::directmap::DEFAULT_PHYS_BITS,
    clipped: 0,
}));

fn direct() -> &'static DirectMap {
    // Safety: see `DirectCell`; after boot nothing writes it.
    unsafe { &*DIRECT.0.get() }
}

fn direct_mut() -> &'static mut DirectMap {
    // Safety: see `DirectCell`; only boot-time callers, one at a time.
    unsafe { &mut *DIRECT.0.get() }
}

/// Adds `[base, base + size)` to the direct map's extent; it is mapped by
/// the next [`finish_direct_map`]. Boot only.
pub fn cover(base: u64, size: u64) {
    let d = direct_mut();
    match d.extent.add(base, size) {
        Ok(Added::Clipped) => d.clipped += 1,
        Ok(Added::Whole | Added::Empty) => {}
        Err(ExtentError::BeyondWindow { end, window }) => crate::fail::boot_failure(format_args!(
            "direct map: memory at {base:#x}+{size:#x} (up to {end:#x}) lies beyond the {} the direct map can cover with 4-level paging (DIRECT_MAP_WINDOW)",
            Size(window)
        )),
        Err(ExtentError::TooManySpans { limit }) => crate::fail::boot_failure(format_args!(
            "direct map: physical memory is split into more than {limit} separate spans (MAX_DIRECT_SPANS); {base:#x}+{size:#x} does not fit"
        )),
    }
}

/// Reads MAXPHYADDR and the page size from CPUID, covers the low 4 GiB and
/// the boot memory map, and maps them: enough to read ACPI.
fn start_direct_map(pml4: TablePhys) {
    use kerncore::directmap::max_phys_bits;
    let cpuid = crate::arch::cpu::cpuid;
    let (max_ext, ..) = cpuid(0x8000_0000, 0);
    let (.., edx) = cpuid(0x8000_0001, 0);
    let (eax, ..) = cpuid(0x8000_0008, 0);
    let phys_bits = max_phys_bits(max_ext, eax);
    *direct_mut() = DirectMap {
        extent: Extent::new(phys_bits, DIRECT_MAP_WINDOW),
        page: PageSize::from_cpuid(max_ext, edx),
        phys_bits,
        clipped: 0,
    };
    cover(0, 4 << 30);
    for r in crate::bootinfo::memory_map().ranges() {
        if MAPPED_KINDS.contains(&r.kind) {
            cover(r.base, r.size);
        }
    }
    map_direct(pml4);
}

/// Maps every leaf of the extent not mapped yet into the kernel's PML4.
fn map_direct(pml4: TablePhys) {
    let d = direct();
    let need = d.extent.table_pages(d.page);
    if need > DIRECT_POOL_PAGES {
        crate::fail::boot_failure(format_args!(
            "direct map: {} of physical memory up to {:#x} needs {need} page-table pages with {} pages; the pool has {DIRECT_POOL_PAGES} (DIRECT_POOL_PAGES)",
            Size(d.extent.covered()),
            d.extent.end(),
            d.page.name()
        ));
    }
    for leaf in d.extent.leaves(d.page) {
        map_direct_leaf(pml4, leaf);
    }
}

/// The table `parent[index]` points to, created from the direct map's pool
/// if absent; `None` if the entry is a large page (already mapped).
fn direct_next(parent: TablePhys, index: usize) -> Option<TablePhys> {
    let entry = &mut table(parent)[index];
    let flags = entry.flags();
    if !flags.contains(Flags::PRESENT) {
        let new = DIRECT_POOL.alloc();
        // Supervisor-only all the way down: nothing here is a task's.
        entry.set_addr(PhysAddr::new(new.0), Flags::PRESENT | Flags::WRITABLE);
    } else if flags.contains(Flags::HUGE_PAGE) {
        return None;
    }
    Some(child(entry))
}

fn direct_flags(uncached: bool) -> Flags {
    let mut flags =
        Flags::PRESENT | Flags::WRITABLE | Flags::HUGE_PAGE | Flags::NO_EXECUTE | Flags::GLOBAL;
    if uncached {
        flags |= Flags::NO_CACHE | Flags::WRITE_THROUGH;
    }
    flags
}

/// Sets the 2 MiB entries of `pd` for `[pa, pa + len)` that are not present.
fn fill_directory(pd: TablePhys, pa: u64, len: u64, uncached: bool) {
    let mut at = pa;
    while at < pa + len {
        let e = &mut table(pd)[indices(PHYS_OFFSET + at)[2]];
        if !e.flags().contains(Flags::PRESENT) {
            e.set_addr(PhysAddr::new(at), direct_flags(uncached));
        }
        at += LARGE_PAGE;
    }
}

/// Maps one leaf; a part already mapped (by the first step) stays as it is.
fn map_direct_leaf(pml4: TablePhys, leaf: Leaf) {
    let [i4, i3, _, _] = indices(PHYS_OFFSET + leaf.pa);
    let Some(pdpt) = direct_next(pml4, i4) else {
        return;
    };
    let entry = &mut table(pdpt)[i3];
    if leaf.size == HUGE_PAGE && !entry.flags().contains(Flags::PRESENT) {
        entry.set_addr(PhysAddr::new(leaf.pa), direct_flags(leaf.uncached));
        return;
    }
    // A 2 MiB leaf, or a whole GiB the first step mapped in part: 2 MiB
    // entries in the GiB's page directory.
    if let Some(pd) = direct_next(pdpt, i3) {
        fill_directory(pd, leaf.pa, leaf.size, leaf.uncached);
    }
}

/// Maps what [`cover`] added since the first step and reports the map.
/// Boot only, before any task space or other CPU exists.
pub fn finish_direct_map(space: &KernelSpace) {
    map_direct(space.pml4);
    let d = direct();
    let spans = d.extent.spans();
    crate::kprintln!(
        "kernel: direct map: 0..{:#x} ({}) in {} span{}, {} mapped with {} pages (MAXPHYADDR {}), {} table pages",
        d.extent.end(),
        Size(d.extent.end()),
        spans.len(),
        if spans.len() == 1 { "" } else { "s" },
        Size(d.extent.covered()),
        d.page.name(),
        d.phys_bits,
        DIRECT_POOL.used()
    );
    if spans.len() > 1 {
        for s in spans {
            crate::kprintln!(
                "  {:#014x}..{:#014x} {}",
                s.base().0,
                s.end().0,
                Size(s.size().0)
            );
        }
    }
    if d.clipped > 0 {
        crate::kprintln!(
            "kernel: direct map: {} memory ranges reach beyond MAXPHYADDR ({} bits); only the part below is mapped",
            d.clipped,
            d.phys_bits
        );
    }
}

/// Whether `[pa, pa + len)` lies in the direct map (an empty range always
/// does; a wrapping one never).
#[must_use]
pub fn direct_map_covers(pa: u64, len: u64) -> bool {
    direct().extent.covers(pa, len)
}

/// Pointer to `[pa, pa + len)` through the direct map, if the map covers
/// it.
#[must_use]
pub fn phys_to_virt_checked(pa: u64, len: u64) -> Option<*mut u8> {
    direct_map_covers(pa, len).then(|| phys_to_virt(pa))
}

/// A byte count in the largest binary unit that divides it.
struct Size(u64);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        write!(f, "{} bytes", self.0)
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

/// Table pages used so far for the kernel image and task spaces, for the
/// boot report (the direct map's are reported by [`finish_direct_map`]).
#[must_use]
pub fn pool_pages_used() -> usize {
    POOL.used()
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
