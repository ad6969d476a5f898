//! The boot protocol's memory map, in one internal form.
//!
//! PVH (`hvm_start_info`, QEMU `-kernel`) and multiboot2 (GRUB) both hand
//! over an E820-style list; it is copied here before the boot-time identity
//! map goes away. Only type 1 ("usable RAM") counts as RAM. Malformed
//! input (bad magic, absurd counts) gives a clear message and an empty map,
//! never a crash; the kernel then refuses to place tasks it cannot prove
//! are in RAM.

use core::cell::UnsafeCell;

pub const PVH_MAGIC: u32 = 0x336e_c578;
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
const MAX_RANGES: usize = 128;
const E820_RAM: u32 = 1;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pvh,
    Multiboot2,
    Unknown,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemRange {
    pub base: u64,
    pub size: u64,
    pub kind: u32,
}

pub struct MemoryMap {
    pub protocol: Protocol,
    ranges: [MemRange; MAX_RANGES],
    count: usize,
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
    ranges: [MemRange {
        base: 0,
        size: 0,
        kind: 0,
    }; MAX_RANGES],
    count: 0,
    dropped: 0,
    rsdp: None,
}));

impl MemoryMap {
    #[must_use]
    pub fn ranges(&self) -> &[MemRange] {
        &self.ranges[..self.count]
    }

    fn push(&mut self, r: MemRange) {
        if self.count == MAX_RANGES {
            self.dropped += 1;
        } else {
            self.ranges[self.count] = r;
            self.count += 1;
        }
    }

    /// Whether `[base, base+size)` is wholly usable RAM (possibly spanning
    /// touching RAM entries).
    #[must_use]
    pub fn is_ram(&self, base: u64, size: u64) -> bool {
        let Some(end) = base.checked_add(size) else {
            return false;
        };
        let mut cursor = base;
        let mut progressed = true;
        while cursor < end && progressed {
            progressed = false;
            for r in self.ranges().iter().filter(|r| r.kind == E820_RAM) {
                if r.base <= cursor && cursor < r.base + r.size {
                    cursor = r.base + r.size;
                    progressed = true;
                }
            }
        }
        cursor >= end
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

/// Parses the boot information. Must run while the boot stub's identity
/// map of the first GiB is still active.
pub fn parse(magic: u32, info: u32) {
    // Safety: single-threaded boot, before any reader.
    let map = unsafe { &mut *MAP.0.get() };
    let info = u64::from(info);
    if info == 0 || info >= 1 << 30 {
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
    if version < 1 || memmap == 0 || entries == 0 || memmap >= 1 << 30 {
        crate::kprintln!("boot: PVH start info has no memory map (version {version})");
        return;
    }
    for i in 0..u64::from(entries.min(1024)) {
        let e = memmap + i * 24;
        // Safety: entry i of the loader's array of 24-byte entries.
        let r = unsafe {
            MemRange {
                base: read(e),
                size: read(e + 8),
                kind: read(e + 16),
            }
        };
        map.push(r);
    }
}

/// # Safety
/// `info` must point at a multiboot2 information structure in
/// identity-mapped memory.
unsafe fn parse_multiboot2(map: &mut MemoryMap, info: u64) {
    // Safety: the MBI starts with its total size.
    let total = u64::from(unsafe { read::<u32>(info) });
    let mut tag = info + 8;
    while tag + 8 <= info + total {
        // Safety: tags are 8-aligned and lie inside `total`.
        let (kind, size) = unsafe { (read::<u32>(tag), read::<u32>(tag + 4)) };
        if kind == 0 || size < 8 {
            break;
        }
        // Tag 15 (ACPI 2.0+ RSDP) wins over tag 14 (ACPI 1.0 RSDP); both
        // carry a copy of the RSDP as their payload.
        if kind == 15 || (kind == 14 && map.rsdp.is_none()) {
            map.rsdp = Some(tag + 8);
        }
        if kind == 6 {
            // Safety: the memory-map tag's header fields.
            let entry_size = u64::from(unsafe { read::<u32>(tag + 8) });
            if entry_size >= 24 {
                let mut e = tag + 16;
                while e + entry_size <= tag + u64::from(size) {
                    // Safety: one entry inside the tag.
                    let r = unsafe {
                        MemRange {
                            base: read(e),
                            size: read(e + 8),
                            kind: read(e + 16),
                        }
                    };
                    map.push(r);
                    e += entry_size;
                }
            }
        }
        tag += (u64::from(size) + 7) & !7;
    }
}
