//! The multiboot2 boot information, parsed from bytes: memory map, ACPI
//! RSDP and what the firmware was.
//!
//! GRUB hands the kernel one information structure (MBI): a `u32` total
//! size, a reserved `u32`, then 8-aligned tags `(type: u32, size: u32,
//! payload)` up to an end tag (type 0, size 8). This module walks it once,
//! remembers where each tag it uses is, and then reads them in the order
//! of preference:
//!
//! - **Memory.** The EFI memory map (tag 17) when there is one, else the
//!   basic E820-style map (tag 6). The EFI map is the firmware's own
//!   picture; GRUB's tag 6 is its translation of it, which folds some
//!   types together. Each EFI descriptor is classified into the E820-style
//!   kinds the rest of the kernel knows ([`efi_kind`]); touching
//!   descriptors of one kind are merged, since firmware splits RAM into
//!   hundreds of descriptors.
//! - **ACPI.** Tag 15 (a copy of the ACPI 2.0+ RSDP) wins over tag 14 (a
//!   copy of the ACPI 1.0 RSDP). The tag holds a *copy*, inside the MBI,
//!   so the kernel copies it out before the MBI's memory is reused.
//! - **Firmware.** An EFI system table tag (11 or 12) says the machine
//!   booted through UEFI. Tag 18 says GRUB left EFI boot services running,
//!   which happens only when the kernel's header asks for it (ours does
//!   not); then boot-services memory still belongs to the firmware and is
//!   not counted as RAM.
//!
//! Invariants: parsing never reads outside the slice it is given and never
//! panics, whatever the bytes say. Every malformed part is reported once as
//! a [`Problem`] and skipped: a bad tag ends the walk (its size cannot be
//! trusted to find the next one), a bad memory map tag is ignored in favour
//! of the other one, a bad entry is dropped. Only ranges whose end fits in
//! 64 bits are stored ([`MemoryMap`]'s invariant).

use core::fmt;

use crate::bootmap::{MemRange, MemoryMap, Rejected, E820_ENTRY_SIZE};

/// Tag types this parser reads.
pub mod tag {
    pub const END: u32 = 0;
    pub const MMAP: u32 = 6;
    pub const EFI32: u32 = 11;
    pub const EFI64: u32 = 12;
    pub const ACPI_OLD: u32 = 14;
    pub const ACPI_NEW: u32 = 15;
    pub const EFI_MMAP: u32 = 17;
    pub const EFI_BS: u32 = 18;
}

/// E820-style kinds the memory map is expressed in (ACPI 6.5 §15, "System
/// Address Map Interfaces"; the soft-reserved value is Linux's).
pub mod kind {
    pub const RAM: u32 = 1;
    pub const RESERVED: u32 = 2;
    pub const ACPI_RECLAIM: u32 = 3;
    pub const ACPI_NVS: u32 = 4;
    pub const UNUSABLE: u32 = 5;
    pub const PERSISTENT: u32 = 7;
    pub const SOFT_RESERVED: u32 = 0xefff_ffff;
}

/// EFI memory types (UEFI 2.10 §7.2, `EFI_MEMORY_TYPE`).
pub mod efi {
    pub const RESERVED: u32 = 0;
    pub const LOADER_CODE: u32 = 1;
    pub const LOADER_DATA: u32 = 2;
    pub const BOOT_SERVICES_CODE: u32 = 3;
    pub const BOOT_SERVICES_DATA: u32 = 4;
    pub const RUNTIME_SERVICES_CODE: u32 = 5;
    pub const RUNTIME_SERVICES_DATA: u32 = 6;
    pub const CONVENTIONAL: u32 = 7;
    pub const UNUSABLE: u32 = 8;
    pub const ACPI_RECLAIM: u32 = 9;
    pub const ACPI_NVS: u32 = 10;
    pub const MMIO: u32 = 11;
    pub const MMIO_PORT_SPACE: u32 = 12;
    pub const PAL_CODE: u32 = 13;
    pub const PERSISTENT: u32 = 14;
    pub const UNACCEPTED: u32 = 15;
    /// `EFI_MEMORY_SP`: specific-purpose memory, for a particular use
    /// (e.g. high-bandwidth memory), not the general allocator.
    pub const ATTR_SPECIFIC_PURPOSE: u64 = 0x4_0000;
    /// The size of `EFI_MEMORY_DESCRIPTOR` version 1; a map's descriptor
    /// size may be larger (later fields), never smaller.
    pub const DESCRIPTOR_SIZE: usize = 40;
    pub const DESCRIPTOR_VERSION: u32 = 1;
    pub const PAGE_SIZE: u64 = 4096;
}

/// The E820-style kind of an EFI descriptor.
///
/// Conventional memory, boot-services code and data and loader code and
/// data are RAM once the firmware's boot services are gone: GRUB's own
/// allocations (loader data: our image, the MBI) are ours after the jump,
/// and the kernel copies what it needs from the MBI before anything
/// reuses it. While boot services run, their memory is the firmware's.
/// Runtime services, ACPI reclaim (it holds the tables the kernel reads;
/// reusing it would need a copy of them), ACPI NVS, MMIO, PAL code,
/// unaccepted memory (it must be accepted before use) and unknown types
/// are not RAM; neither is specific-purpose memory, whatever its type.
#[must_use]
pub fn efi_kind(efi_type: u32, attribute: u64, boot_services_running: bool) -> u32 {
    let ram = match efi_type {
        efi::CONVENTIONAL | efi::LOADER_CODE | efi::LOADER_DATA => kind::RAM,
        efi::BOOT_SERVICES_CODE | efi::BOOT_SERVICES_DATA if !boot_services_running => kind::RAM,
        efi::UNUSABLE => kind::UNUSABLE,
        efi::ACPI_RECLAIM => kind::ACPI_RECLAIM,
        efi::ACPI_NVS => kind::ACPI_NVS,
        efi::PERSISTENT => kind::PERSISTENT,
        _ => kind::RESERVED,
    };
    if ram == kind::RAM && attribute & efi::ATTR_SPECIFIC_PURPOSE != 0 {
        kind::SOFT_RESERVED
    } else {
        ram
    }
}

/// Something wrong in the information structure.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer than the 8 header bytes, or a total size below that.
    NoHeader { available: usize },
    /// The total size is more than the bytes the loader's range holds.
    Truncated { total: usize, available: usize },
    /// A tag whose size is below its 8-byte header.
    TagTooSmall { at: usize, kind: u32, size: u32 },
    /// A tag that reaches past the total size.
    TagOverruns {
        at: usize,
        kind: u32,
        size: u32,
        total: usize,
    },
    /// The walk reached the total size without an end tag.
    NoEndTag,
    /// A memory map tag shorter than its own header.
    MapTagShort { kind: u32, size: u32 },
    /// A basic memory map whose entries are smaller than an E820 entry.
    MmapEntrySize { size: u32 },
    /// An EFI memory map whose descriptors are smaller than version 1's.
    EfiDescriptorSize { size: u32 },
    /// An EFI memory map of a descriptor version before 1.
    EfiDescriptorVersion { version: u32 },
    /// Bytes after the last whole entry of a memory map.
    TrailingBytes { kind: u32, bytes: usize },
    /// An RSDP tag too short for its RSDP revision (20 or 36 bytes).
    RsdpTooShort { kind: u32, len: usize },
    /// A second tag of a kind that may appear once; the first is used.
    Duplicate { kind: u32 },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::NoHeader { available } => {
                write!(f, "no header ({available} bytes, at least 8 needed)")
            }
            Malformed::Truncated { total, available } => write!(
                f,
                "total size {total} is more than the {available} bytes available; truncated"
            ),
            Malformed::TagTooSmall { at, kind, size } => write!(
                f,
                "tag {kind} at offset {at} has size {size}, below its header; walk stopped"
            ),
            Malformed::TagOverruns {
                at,
                kind,
                size,
                total,
            } => write!(
                f,
                "tag {kind} at offset {at} (size {size}) runs past the total size {total}; walk stopped"
            ),
            Malformed::NoEndTag => write!(f, "no end tag before the total size; the tags read so far are used"),
            Malformed::MapTagShort { kind, size } => {
                write!(f, "memory map tag {kind} of size {size} is shorter than its header; ignored")
            }
            Malformed::MmapEntrySize { size } => write!(
                f,
                "memory map entry size {size} is below {E820_ENTRY_SIZE}; tag ignored"
            ),
            Malformed::EfiDescriptorSize { size } => write!(
                f,
                "EFI memory descriptor size {size} is below {}; tag ignored",
                efi::DESCRIPTOR_SIZE
            ),
            Malformed::EfiDescriptorVersion { version } => write!(
                f,
                "EFI memory descriptor version {version} is below {}; tag ignored",
                efi::DESCRIPTOR_VERSION
            ),
            Malformed::TrailingBytes { kind, bytes } => write!(
                f,
                "memory map tag {kind} ends with {bytes} bytes that are no whole entry; ignored"
            ),
            Malformed::RsdpTooShort { kind, len } => {
                write!(f, "RSDP tag {kind} holds {len} bytes, too short; ignored")
            }
            Malformed::Duplicate { kind } => {
                write!(f, "tag {kind} appears again; the first one is used")
            }
        }
    }
}

/// One thing the parser did not use, and why.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A memory map entry that was not stored.
    Entry(Rejected),
    /// A malformed part of the structure.
    Malformed(Malformed),
}

/// Where the memory map came from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum MapSource {
    /// No usable memory map tag.
    #[default]
    None,
    /// Tag 6: `entries` E820-style entries.
    Basic { entries: usize },
    /// Tag 17: `descriptors` EFI memory descriptors of `version`.
    Efi { descriptors: usize, version: u32 },
}

/// An RSDP copy inside the MBI: `len` bytes at `offset`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RsdpCopy {
    pub offset: usize,
    pub len: usize,
    /// From tag 15 (ACPI 2.0+), else tag 14 (ACPI 1.0).
    pub v2: bool,
}

/// What the parse found besides the memory map.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub source: MapSource,
    pub rsdp: Option<RsdpCopy>,
    /// An EFI system table tag was present: the machine booted via UEFI.
    pub uefi: bool,
    /// Tag 18: EFI boot services were not exited.
    pub boot_services_running: bool,
}

/// Minimum RSDP lengths: revision 0 (20 bytes), 2+ (36 bytes).
const RSDP_V1_LEN: usize = 20;
const RSDP_V2_LEN: usize = 36;

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let b = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Where the tags this parser uses are: (offset, size) of each.
#[derive(Default)]
struct Tags {
    mmap: Option<(usize, usize)>,
    efi_mmap: Option<(usize, usize)>,
    acpi_old: Option<(usize, usize)>,
    acpi_new: Option<(usize, usize)>,
    uefi: bool,
    boot_services: bool,
}

/// Walks the tags of `mbi` (already cut to its total size).
fn walk(mbi: &[u8], problem: &mut impl FnMut(Problem)) -> Tags {
    let mut tags = Tags::default();
    let total = mbi.len();
    let mut at = 8usize;
    loop {
        let (Some(kind), Some(size)) = (u32_at(mbi, at), u32_at(mbi, at.saturating_add(4))) else {
            problem(Problem::Malformed(Malformed::NoEndTag));
            return tags;
        };
        if size < 8 {
            problem(Problem::Malformed(Malformed::TagTooSmall {
                at,
                kind,
                size,
            }));
            return tags;
        }
        let end = at.checked_add(size as usize).filter(|&e| e <= total);
        let Some(end) = end else {
            problem(Problem::Malformed(Malformed::TagOverruns {
                at,
                kind,
                size,
                total,
            }));
            return tags;
        };
        let place = Some((at, size as usize));
        let slot = match kind {
            tag::END => return tags,
            tag::MMAP => Some(&mut tags.mmap),
            tag::EFI_MMAP => Some(&mut tags.efi_mmap),
            tag::ACPI_OLD => Some(&mut tags.acpi_old),
            tag::ACPI_NEW => Some(&mut tags.acpi_new),
            tag::EFI32 | tag::EFI64 => {
                tags.uefi = true;
                None
            }
            tag::EFI_BS => {
                tags.boot_services = true;
                None
            }
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                problem(Problem::Malformed(Malformed::Duplicate { kind }));
            } else {
                *slot = place;
            }
        }
        // Tags start 8-aligned; `end <= total`, so this cannot overflow.
        at = (end + 7) & !7;
    }
}

/// Parses a multiboot2 information structure (`mbi` starts at its total
/// size field) into `map`; each part not used is reported to `problem`.
pub fn parse<const N: usize>(
    mbi: &[u8],
    map: &mut MemoryMap<N>,
    mut problem: impl FnMut(Problem),
) -> Info {
    let mut info = Info::default();
    let total = match u32_at(mbi, 0).map(|t| t as usize) {
        Some(t) if t >= 8 => t,
        _ => {
            problem(Problem::Malformed(Malformed::NoHeader {
                available: mbi.len(),
            }));
            return info;
        }
    };
    if total > mbi.len() {
        problem(Problem::Malformed(Malformed::Truncated {
            total,
            available: mbi.len(),
        }));
    }
    let mbi = &mbi[..total.min(mbi.len())];
    let tags = walk(mbi, &mut problem);
    info.uefi = tags.uefi;
    info.boot_services_running = tags.boot_services;
    info.rsdp = rsdp(mbi, tag::ACPI_NEW, tags.acpi_new, &mut problem)
        .or_else(|| rsdp(mbi, tag::ACPI_OLD, tags.acpi_old, &mut problem));
    let body = |(at, size): (usize, usize)| mbi.get(at..at + size).unwrap_or(&[]);
    if let Some(t) = tags.efi_mmap {
        info.source = efi_map(body(t), tags.boot_services, map, &mut problem);
    }
    if info.source == MapSource::None {
        if let Some(t) = tags.mmap {
            info.source = basic_map(body(t), map, &mut problem);
        }
    }
    info
}

/// The RSDP copy of tag `kind` found at `place`, if it is long enough.
fn rsdp(
    mbi: &[u8],
    kind: u32,
    place: Option<(usize, usize)>,
    problem: &mut impl FnMut(Problem),
) -> Option<RsdpCopy> {
    let (at, size) = place?;
    let v2 = kind == tag::ACPI_NEW;
    let len = size - 8;
    let need = if v2 { RSDP_V2_LEN } else { RSDP_V1_LEN };
    if len < need || mbi.len() < at + size {
        problem(Problem::Malformed(Malformed::RsdpTooShort { kind, len }));
        return None;
    }
    Some(RsdpCopy {
        offset: at + 8,
        len,
        v2,
    })
}

/// The entries of a memory map tag: its header fields (entry size and
/// version/reserved word at offsets 8 and 12) and the entry bytes.
fn map_tag<'a>(
    tag: &'a [u8],
    kind: u32,
    problem: &mut impl FnMut(Problem),
) -> Option<(u32, u32, &'a [u8])> {
    let (Some(entry_size), Some(version), Some(entries)) =
        (u32_at(tag, 8), u32_at(tag, 12), tag.get(16..))
    else {
        problem(Problem::Malformed(Malformed::MapTagShort {
            kind,
            size: tag.len() as u32,
        }));
        return None;
    };
    Some((entry_size, version, entries))
}

/// Reports the bytes after the last whole entry, if any.
fn trailing(entries: &[u8], size: usize, kind: u32, problem: &mut impl FnMut(Problem)) {
    let bytes = entries.len() % size;
    if bytes != 0 {
        problem(Problem::Malformed(Malformed::TrailingBytes { kind, bytes }));
    }
}

/// Tag 6: E820-style entries of `entry_size` bytes (at least 24).
fn basic_map<const N: usize>(
    tag: &[u8],
    map: &mut MemoryMap<N>,
    problem: &mut impl FnMut(Problem),
) -> MapSource {
    let Some((entry_size, _, entries)) = map_tag(tag, tag::MMAP, problem) else {
        return MapSource::None;
    };
    let size = entry_size as usize;
    if size < E820_ENTRY_SIZE {
        problem(Problem::Malformed(Malformed::MmapEntrySize {
            size: entry_size,
        }));
        return MapSource::None;
    }
    trailing(entries, size, tag::MMAP, problem);
    let mut count = 0;
    for e in entries.chunks_exact(size) {
        count += 1;
        let (Some(base), Some(len), Some(kind)) = (u64_at(e, 0), u64_at(e, 8), u32_at(e, 16))
        else {
            continue;
        };
        if let Err(why) = map.push(MemRange {
            base,
            size: len,
            kind,
        }) {
            problem(Problem::Entry(why));
        }
    }
    MapSource::Basic { entries: count }
}

/// Tag 17: EFI memory descriptors of `descriptor size` bytes (at least
/// 40; a larger size means later fields, which are skipped).
fn efi_map<const N: usize>(
    tag: &[u8],
    boot_services_running: bool,
    map: &mut MemoryMap<N>,
    problem: &mut impl FnMut(Problem),
) -> MapSource {
    let Some((desc_size, version, entries)) = map_tag(tag, tag::EFI_MMAP, problem) else {
        return MapSource::None;
    };
    let size = desc_size as usize;
    if size < efi::DESCRIPTOR_SIZE {
        problem(Problem::Malformed(Malformed::EfiDescriptorSize {
            size: desc_size,
        }));
        return MapSource::None;
    }
    if version < efi::DESCRIPTOR_VERSION {
        problem(Problem::Malformed(Malformed::EfiDescriptorVersion {
            version,
        }));
        return MapSource::None;
    }
    trailing(entries, size, tag::EFI_MMAP, problem);
    let mut count = 0;
    for d in entries.chunks_exact(size) {
        count += 1;
        // type (u32, then padding), physical start, virtual start, pages,
        // attribute.
        let (Some(efi_type), Some(base), Some(pages), Some(attribute)) =
            (u32_at(d, 0), u64_at(d, 8), u64_at(d, 24), u64_at(d, 32))
        else {
            continue;
        };
        if pages == 0 {
            continue;
        }
        let Some(len) = pages.checked_mul(efi::PAGE_SIZE) else {
            problem(Problem::Entry(Rejected::Wraps {
                base,
                size: u64::MAX,
            }));
            continue;
        };
        if base % efi::PAGE_SIZE != 0 {
            problem(Problem::Entry(Rejected::Misaligned { base }));
            continue;
        }
        let r = MemRange {
            base,
            size: len,
            kind: efi_kind(efi_type, attribute, boot_services_running),
        };
        if let Err(why) = map.push_merged(r) {
            problem(Problem::Entry(why));
        }
    }
    MapSource::Efi {
        descriptors: count,
        version,
    }
}

#[cfg(test)]
#[path = "multiboot2_tests.rs"]
mod tests;
