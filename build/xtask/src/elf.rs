//! Just enough ELF64 to read the segments of the kernel and task images
//! (through the `object` crate's ELF reader) and to write the one bootable
//! image that holds them all (with `object`'s header structs).
//!
//! The image is written deterministically (no timestamps, segments in a
//! fixed order, zero padding), so two builds of the same tree give the same
//! bytes. The kernel's segments come first: GRUB looks for the multiboot2
//! header in the first 32 KiB of the file, and QEMU finds the PVH note
//! through the `PT_NOTE` program header.

use anyhow::{anyhow, bail, Context, Result};
use object::elf::{FileHeader64, ProgramHeader64, EM_X86_64, ET_EXEC, EV_CURRENT};
use object::pod::bytes_of;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{LittleEndian as LE, U16, U32, U64};

pub use object::elf::{PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE};

/// One program header and its file bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub flags: u32,
    pub vaddr: u64,
    pub paddr: u64,
    pub memsz: u64,
    pub data: Vec<u8>,
    pub align: u64,
}

#[derive(Clone, Debug)]
pub struct Elf {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

/// Reads the program headers of a little-endian ELF64 executable.
pub fn read(bytes: &[u8]) -> Result<Elf> {
    let header = FileHeader64::<LE>::parse(bytes).map_err(|e| anyhow!("not an ELF64 file: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| anyhow!("not a little-endian ELF64 file: {e}"))?;
    let headers = header
        .program_headers(endian, bytes)
        .map_err(|e| anyhow!("bad program header table: {e}"))?;
    let mut segments = vec![];
    for (i, p) in headers.iter().enumerate() {
        let data = p
            .data(endian, bytes)
            .map_err(|()| anyhow!("segment {i} lies outside the file"))?
            .to_vec();
        segments.push(Segment {
            kind: p.p_type(endian),
            flags: p.p_flags(endian),
            vaddr: p.p_vaddr(endian),
            paddr: p.p_paddr(endian),
            memsz: p.p_memsz(endian),
            data,
            align: p.p_align(endian),
        });
    }
    Ok(Elf {
        entry: header.e_entry(endian),
        segments,
    })
}

/// Writes an ELF64 executable for x86_64 with the given segments, each
/// placed at a file offset congruent to its address modulo 4 KiB.
pub fn write(entry: u64, segments: &[Segment]) -> Result<Vec<u8>> {
    const EHSIZE: usize = size_of::<FileHeader64<LE>>();
    const PHSIZE: usize = size_of::<ProgramHeader64<LE>>();
    let phnum = u16::try_from(segments.len()).context("too many segments")?;
    let ident = object::elf::Ident {
        magic: object::elf::ELFMAG,
        class: object::elf::ELFCLASS64,
        data: object::elf::ELFDATA2LSB,
        version: EV_CURRENT,
        os_abi: object::elf::ELFOSABI_NONE,
        abi_version: 0,
        padding: [0; 7],
    };
    let file_header = FileHeader64::<LE> {
        e_ident: ident,
        e_type: U16::new(LE, ET_EXEC),
        e_machine: U16::new(LE, EM_X86_64),
        e_version: U32::new(LE, u32::from(EV_CURRENT)),
        e_entry: U64::new(LE, entry),
        e_phoff: U64::new(LE, EHSIZE as u64),
        e_shoff: U64::new(LE, 0),
        e_flags: U32::new(LE, 0),
        e_ehsize: U16::new(LE, EHSIZE as u16),
        e_phentsize: U16::new(LE, PHSIZE as u16),
        e_phnum: U16::new(LE, phnum),
        e_shentsize: U16::new(LE, size_of::<object::elf::SectionHeader64<LE>>() as u16),
        e_shnum: U16::new(LE, 0),
        e_shstrndx: U16::new(LE, 0),
    };
    let mut out = bytes_of(&file_header).to_vec();
    let table_end = EHSIZE + PHSIZE * segments.len();

    let mut offsets = vec![];
    let mut cursor = table_end.next_multiple_of(4096) as u64;
    for s in segments {
        if s.data.is_empty() {
            offsets.push(0);
            continue;
        }
        // File offset ≡ address (mod 4 KiB), as loaders mapping pages want.
        let want = s.paddr % 4096;
        let mut off = cursor - cursor % 4096 + want;
        if off < cursor {
            off += 4096;
        }
        offsets.push(off);
        cursor = off + s.data.len() as u64;
    }
    for (s, &offset) in segments.iter().zip(&offsets) {
        let header = ProgramHeader64::<LE> {
            p_type: U32::new(LE, s.kind),
            p_flags: U32::new(LE, s.flags),
            p_offset: U64::new(LE, offset),
            p_vaddr: U64::new(LE, s.vaddr),
            p_paddr: U64::new(LE, s.paddr),
            p_filesz: U64::new(LE, s.data.len() as u64),
            p_memsz: U64::new(LE, s.memsz),
            p_align: U64::new(LE, s.align),
        };
        out.extend_from_slice(bytes_of(&header));
    }
    for (i, s) in segments.iter().enumerate() {
        if s.data.is_empty() {
            continue;
        }
        let off = offsets[i] as usize;
        if out.len() < off {
            out.resize(off, 0);
        }
        if out.len() > off {
            bail!("segment {i} overlaps the previous one in the file");
        }
        out.extend_from_slice(&s.data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{read, write, Segment, PF_R, PF_X, PT_LOAD};

    #[test]
    fn write_then_read_round_trips_and_is_deterministic() {
        let segs = vec![
            Segment {
                kind: PT_LOAD,
                flags: PF_R | PF_X,
                vaddr: 0x10_0000,
                paddr: 0x10_0000,
                memsz: 3,
                data: vec![1, 2, 3],
                align: 4096,
            },
            Segment {
                kind: PT_LOAD,
                flags: PF_R,
                vaddr: 0x20_0010,
                paddr: 0x20_0010,
                memsz: 0x100,
                data: vec![],
                align: 4096,
            },
            Segment {
                kind: PT_LOAD,
                flags: PF_R,
                vaddr: 0x30_0123,
                paddr: 0x30_0123,
                memsz: 2,
                data: vec![9, 9],
                align: 4096,
            },
        ];
        let a = write(0x10_0000, &segs).unwrap();
        let b = write(0x10_0000, &segs).unwrap();
        assert_eq!(a, b);
        let back = read(&a).unwrap();
        assert_eq!(back.entry, 0x10_0000);
        assert_eq!(back.segments, segs);
    }

    #[test]
    fn read_refuses_malformed_files_with_an_error() {
        let segs = vec![Segment {
            kind: PT_LOAD,
            flags: PF_R,
            vaddr: 0x10_0000,
            paddr: 0x10_0000,
            memsz: 4,
            data: vec![1, 2, 3, 4],
            align: 4096,
        }];
        let good = write(0x10_0000, &segs).unwrap();
        assert!(read(b"not an elf file at all").is_err());
        // Cut inside the program header table, then inside the segment.
        assert!(read(&good[..80]).is_err());
        assert!(read(&good[..good.len() - 1]).is_err());
        let mut big_endian = good.clone();
        big_endian[5] = 2;
        assert!(read(&big_endian).is_err());
    }
}
