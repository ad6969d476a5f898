//! Hand-written, not the `multiboot2` crate: it knows no PVH, and we need only the memory map and RSDP.
//!
//! The boot protocol's memory map, in one internal form.
//!
//! PVH (`hvm_start_info`, QEMU `-kernel`) hands over an E820-style list;
//! multiboot2 (GRUB, under BIOS or UEFI) an E820-style list and, under
//! UEFI, the firmware's EFI memory map, which is preferred and translated
//! into the same kinds (`kerncore::multiboot2`). Everything the kernel
//! needs from the loader's memory is copied here before that memory can be
//! reused: the ranges, and the RSDP, of which a multiboot2 tag holds a copy
//! inside the boot information (EFI loader data, which counts as RAM). Only
//! type 1 ("usable RAM") counts as RAM. The parsing itself is in
//! `kerncore` (host-tested); this module only finds the loader's bytes.
//! Malformed input (bad magic, absurd counts, a truncated or malformed tag,
//! an entry whose end wraps past 2^64) gives a clear message and skips what
//! is wrong, never a crash; the kernel then refuses to place tasks it
//! cannot prove are in RAM.

use core::cell::UnsafeCell;

pub use kerncore::bootmap::MemRange;
use kerncore::bootmap::{self, Rejected};
use kerncore::multiboot2::{self as mb2, kind, MapSource, Problem};

pub const PVH_MAGIC: u32 = 0x336e_c578;
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
const MAX_RANGES: usize = 128;
/// The boot stub identity-maps the first 4 GiB; the loader's structures
/// must lie below it (a multiboot2 loader passes them below 4 GiB anyway:
/// EBX is 32 bits; UEFI GRUB may put them anywhere up to there).
const BOOT_MAPPED: u64 = 4 << 30;

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
    /// Where the ACPI RSDP is: PVH's `rsdp_paddr`, or the kernel's copy of
    /// the one a multiboot2 tag 15 (ACPI 2.0+) or 14 (ACPI 1.0) holds.
    pub rsdp: Option<u64>,
    /// Multiboot2: where the memory map came from.
    pub source: MapSource,
    /// Multiboot2: the tag that gave the RSDP (15 or 14), if one did.
    pub rsdp_tag: Option<u32>,
    /// Multiboot2: the loader passed an EFI system table (UEFI boot).
    pub uefi: bool,
}

/// The kernel's copy of a multiboot2 tag's RSDP. The kernel runs
/// identity-mapped, so its address is its physical address, which is what
/// the ACPI parser reads through the direct map.
#[repr(C, align(16))]
struct RsdpBytes([u8; RSDP_MAX]);
/// An RSDP is 20 (ACPI 1.0) or 36 bytes (2.0+); room for a longer one.
const RSDP_MAX: usize = 64;

struct RsdpCell(UnsafeCell<RsdpBytes>);
// Safety: written once during single-threaded boot, read-only afterwards.
unsafe impl Sync for RsdpCell {}

static RSDP_COPY: RsdpCell = RsdpCell(UnsafeCell::new(RsdpBytes([0; RSDP_MAX])));

struct Cell(UnsafeCell<MemoryMap>);
// Safety: written once during single-threaded boot, read-only afterwards.
unsafe impl Sync for Cell {}

static MAP: Cell = Cell(UnsafeCell::new(MemoryMap {
    protocol: Protocol::Unknown,
    map: bootmap::MemoryMap::new(),
    dropped: 0,
    rsdp: None,
    source: MapSource::None,
    rsdp_tag: None,
    uefi: false,
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
            Rejected::Misaligned { base } => crate::kprintln!(
                "boot: EFI memory descriptor at {base:#x} is not page-aligned; skipped"
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
    let found = mb2::parse(mbi, &mut map.map, |p| match p {
        Problem::Entry(why) => {
            if let Some(slot) = rejected.get_mut(nrejected) {
                *slot = Some(why);
            }
            nrejected += 1;
        }
        Problem::Malformed(m) => crate::kprintln!("boot: multiboot2 information: {m}"),
    });
    map.source = found.source;
    map.uefi = found.uefi;
    if found.boot_services_running {
        crate::kprintln!(
            "boot: the loader left EFI boot services running; their memory is not counted as RAM"
        );
    }
    if let Some(r) = found.rsdp {
        // Safety: single-threaded boot, before any reader of the copy.
        let copy = unsafe { &mut (*RSDP_COPY.0.get()).0 };
        let len = r.len.min(RSDP_MAX);
        if let (Some(dst), Some(src)) = (copy.get_mut(..len), mbi.get(r.offset..r.offset + len)) {
            dst.copy_from_slice(src);
            map.rsdp = Some(copy.as_ptr() as u64);
            map.rsdp_tag = Some(if r.v2 {
                mb2::tag::ACPI_NEW
            } else {
                mb2::tag::ACPI_OLD
            });
        }
    }
    report(map, &rejected, nrejected);
}

/// The name of a memory map kind.
fn kind_name(k: u32) -> &'static str {
    match k {
        kind::RAM => "RAM",
        kind::ACPI_RECLAIM => "ACPI",
        kind::ACPI_NVS => "ACPI NVS",
        kind::UNUSABLE => "unusable",
        kind::PERSISTENT => "persistent",
        kind::SOFT_RESERVED => "soft-reserved",
        _ => "reserved",
    }
}

/// Prints where the memory map and the RSDP came from, and the ranges.
pub fn print_summary() {
    let map = memory_map();
    crate::kprintln!(
        "boot: protocol {:?}, {} memory ranges",
        map.protocol,
        map.ranges().len()
    );
    if map.protocol == Protocol::Multiboot2 {
        match map.source {
            MapSource::Efi {
                descriptors,
                version,
            } => crate::kprintln!(
                "boot: memory from the EFI memory map ({descriptors} descriptors, version {version})"
            ),
            MapSource::Basic { entries } => {
                crate::kprintln!("boot: memory from the multiboot2 memory map ({entries} entries)")
            }
            MapSource::None => crate::kprintln!("boot: no usable multiboot2 memory map"),
        }
        crate::kprintln!(
            "boot: firmware {}; ACPI RSDP {}",
            if map.uefi { "UEFI" } else { "BIOS" },
            match map.rsdp_tag {
                Some(mb2::tag::ACPI_NEW) => "from multiboot2 tag 15 (ACPI 2.0+)",
                Some(_) => "from multiboot2 tag 14 (ACPI 1.0)",
                None => "not given (searched in the BIOS areas)",
            }
        );
    }
    for r in map.ranges() {
        crate::kprintln!(
            "  {:#014x}..{:#014x} {:>9} KiB {} (type {})",
            r.base,
            r.end(),
            r.size >> 10,
            kind_name(r.kind),
            r.kind
        );
    }
}
