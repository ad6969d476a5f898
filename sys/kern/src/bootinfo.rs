//! Hand-written, not the `multiboot2` crate: it knows no PVH, and we need only the memory map and RSDP.
//!
//! The boot protocol's memory map, in one internal form.
//!
//! PVH (`hvm_start_info`, QEMU `-kernel`) and multiboot2 (GRUB) both hand
//! over an E820-style list; it is copied here before the boot-time identity
//! map goes away. Only type 1 ("usable RAM") counts as RAM. The parsing
//! itself is `kerncore::bootmap` (host-tested); this module only finds the
//! loader's bytes. Malformed input (bad magic, absurd counts, an entry whose
//! end wraps past 2^64) gives a clear message and skips what is wrong, never
//! a crash; the kernel then refuses to place tasks it cannot prove are in
//! RAM.

use core::cell::UnsafeCell;

pub use kerncore::bootmap::MemRange;
use kerncore::bootmap::{self, Rejected};

pub const PVH_MAGIC: u32 = 0x336e_c578;
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
const MAX_RANGES: usize = 128;
/// The boot stub identity-maps the first GiB; the loader's structures must
/// lie below it.
const BOOT_MAPPED: u64 = 1 << 30;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pvh,
    Multiboot2,
    Unknown,
}

pub struct MemoryMap {
    pub protocol: Protocol,
    map: bootmap::MemoryMap<MAX_RANGES>,
    /// Entries the boot loader gave beyond `MAX_RANGES`.
    pub dropped: usize,
    /// Where the ACPI RSDP is: PVH's `rsdp_paddr`, or the copy inside a
    /// multiboot2 tag 15 (ACPI 2.0+) or 14 (ACPI 1.0).
    pub rsdp: Option<u64>,
}

struct Cell(UnsafeCell<MemoryMap>);
// Safety: written once during single-threaded boot, read-only afterwards.
unsafe impl Sync for Cell {}

static MAP: Cell = Cell(UnsafeCell::new(MemoryMap {
    protocol: Protocol::Unknown,
    map: bootmap::MemoryMap::new(),
    dropped: 0,
    rsdp: None,
}));

impl MemoryMap {
    /// The stored ranges; each one's end fits in 64 bits.
    #[must_use]
    pub fn ranges(&self) -> &[MemRange] {
        self.map.ranges()
    }

    /// Whether `[base, base+size)` is wholly usable RAM (possibly spanning
    /// touching RAM entries).
    #[must_use]
    pub fn is_ram(&self, base: u64, size: u64) -> bool {
        self.map.is_ram(base, size)
    }

    /// Counts or reports an entry the parser did not store.
    fn reject(&mut self, why: Rejected) {
        match why {
            Rejected::Full => self.dropped += 1,
            Rejected::Wraps { base, size } => crate::kprintln!(
                "boot: memory map entry {base:#x}+{size:#x} ends past 2^64; skipped"
            ),
        }
    }
}

/// The memory map parsed at boot.
#[must_use]
pub fn memory_map() -> &'static MemoryMap {
    // Safety: only `parse` writes, once, before anyone reads.
    unsafe { &*MAP.0.get() }
}

/// Reads a value from boot memory (identity-mapped during early boot).
///
/// # Safety
/// `addr` must be readable memory the boot loader gave us.
unsafe fn read<T: Copy>(addr: u64) -> T {
    // Safety: forwarded; unaligned reads because loaders only promise
    // natural alignment for some fields.
    unsafe { core::ptr::read_unaligned(addr as *const T) }
}

/// The loader's bytes at `[base, base+len)`, if they lie inside the boot
/// identity map.
///
/// # Safety
/// The range must be memory the boot loader handed over, and the boot
/// identity map must still be active while the slice is used.
unsafe fn boot_bytes(base: u64, len: u64) -> Option<&'static [u8]> {
    let end = base.checked_add(len)?;
    if base == 0 || end > BOOT_MAPPED {
        return None;
    }
    // Safety: below 1 GiB, so identity-mapped; the caller vouches that the
    // loader owns it. Only read, only during boot.
    Some(unsafe { core::slice::from_raw_parts(base as *const u8, len as usize) })
}

/// Parses the boot information. Must run while the boot stub's identity
/// map of the first GiB is still active. Kept out of `kmain`'s frame,
/// which already holds the platform discovery.
#[inline(never)]
pub fn parse(magic: u32, info: u32) {
    // Safety: single-threaded boot, before any reader.
    let map = unsafe { &mut *MAP.0.get() };
    let info = u64::from(info);
    if info == 0 || info >= BOOT_MAPPED {
        crate::kprintln!("boot: no boot information (magic {magic:#x}); memory map empty");
        return;
    }
    // Safety: the loader passed `info` in EBX; it is below 1 GiB (checked)
    // and therefore inside the boot identity map.
    if magic == MULTIBOOT2_MAGIC {
        map.protocol = Protocol::Multiboot2;
        unsafe { parse_multiboot2(map, info) };
    } else if unsafe { read::<u32>(info) } == PVH_MAGIC {
        map.protocol = Protocol::Pvh;
        unsafe { parse_pvh(map, info) };
    } else {
        crate::kprintln!("boot: unknown boot protocol (magic {magic:#x}); memory map empty");
    }
}

/// # Safety
/// `info` must point at a PVH `hvm_start_info` in identity-mapped memory.
unsafe fn parse_pvh(map: &mut MemoryMap, info: u64) {
    // Safety: fields of hvm_start_info at their documented offsets.
    let (version, memmap, entries) = unsafe {
        (
            read::<u32>(info + 4),
            read::<u64>(info + 40),
            read::<u32>(info + 48),
        )
    };
    // Safety: rsdp_paddr at offset 32 of hvm_start_info.
    let rsdp = unsafe { read::<u64>(info + 32) };
    map.rsdp = (rsdp != 0).then_some(rsdp);
    let len = u64::from(entries.min(1024)) * bootmap::E820_ENTRY_SIZE as u64;
    // Safety: the table the loader points at, bounds-checked by boot_bytes.
    let table = if version < 1 || entries == 0 {
        None
    } else {
        unsafe { boot_bytes(memmap, len) }
    };
    let Some(table) = table else {
        crate::kprintln!("boot: PVH start info has no usable memory map (version {version})");
        return;
    };
    let mut rejected = [None; 4];
    let mut nrejected = 0;
    bootmap::parse_e820(table, &mut map.map, |why| {
        if let Some(slot) = rejected.get_mut(nrejected) {
            *slot = Some(why);
        }
        nrejected += 1;
    });
    report(map, &rejected, nrejected);
}

/// Reports the first few rejected entries and counts the rest.
fn report(map: &mut MemoryMap, rejected: &[Option<Rejected>], count: usize) {
    for why in rejected.iter().flatten() {
        map.reject(*why);
    }
    if count > rejected.len() {
        crate::kprintln!(
            "boot: {} more memory map entries not stored",
            count - rejected.len()
        );
        map.dropped += count - rejected.len();
    }
}

/// # Safety
/// `info` must point at a multiboot2 information structure in
/// identity-mapped memory.
unsafe fn parse_multiboot2(map: &mut MemoryMap, info: u64) {
    // Safety: the MBI starts with its total size.
    let total = u64::from(unsafe { read::<u32>(info) });
    // Safety: the MBI, bounds-checked by boot_bytes.
    let Some(mbi) = (unsafe { boot_bytes(info, total) }) else {
        crate::kprintln!(
            "boot: multiboot2 information of {total} bytes at {info:#x} is out of reach"
        );
        return;
    };
    let mut rejected = [None; 4];
    let mut nrejected = 0;
    let rsdp = bootmap::parse_multiboot2(mbi, &mut map.map, |why| {
        if let Some(slot) = rejected.get_mut(nrejected) {
            *slot = Some(why);
        }
        nrejected += 1;
    });
    map.rsdp = rsdp.map(|offset| info + offset as u64);
    report(map, &rejected, nrejected);
}
