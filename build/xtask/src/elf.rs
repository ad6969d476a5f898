//! Just enough ELF64 to read the segments of the kernel and task images
//! and to write the one bootable image that holds them all.
//!
//! The image is written deterministically (no timestamps, segments in a
//! fixed order, zero padding), so two builds of the same tree give the same
//! bytes. The kernel's segments come first: GRUB looks for the multiboot2
//! header in the first 32 KiB of the file, and QEMU finds the PVH note
//! through the `PT_NOTE` program header.

use anyhow::{bail, ensure, Result};

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

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

fn u16_at(b: &[u8], o: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(
        b.get(o..o + 2)
            .ok_or_else(|| anyhow::anyhow!("truncated ELF"))?
            .try_into()?,
    ))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(
        b.get(o..o + 4)
            .ok_or_else(|| anyhow::anyhow!("truncated ELF"))?
            .try_into()?,
    ))
}
fn u64_at(b: &[u8], o: usize) -> Result<u64> {
    Ok(u64::from_le_bytes(
        b.get(o..o + 8)
            .ok_or_else(|| anyhow::anyhow!("truncated ELF"))?
            .try_into()?,
    ))
}

/// Reads the program headers of a little-endian ELF64 executable.
pub fn read(bytes: &[u8]) -> Result<Elf> {
    ensure!(
        bytes.len() >= 64 && &bytes[..4] == b"\x7fELF",
        "not an ELF file"
    );
    ensure!(
        bytes[4] == 2 && bytes[5] == 1,
        "not a little-endian ELF64 file"
    );
    let entry = u64_at(bytes, 24)?;
    let phoff = u64_at(bytes, 32)? as usize;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    ensure!(
        phentsize == 56,
        "unexpected program header size {phentsize}"
    );
    let mut segments = vec![];
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let kind = u32_at(bytes, p)?;
        let offset = u64_at(bytes, p + 8)? as usize;
        let filesz = u64_at(bytes, p + 32)? as usize;
        let data = bytes
            .get(offset..offset + filesz)
            .ok_or_else(|| anyhow::anyhow!("segment {i} lies outside the file"))?
            .to_vec();
        segments.push(Segment {
            kind,
            flags: u32_at(bytes, p + 4)?,
            vaddr: u64_at(bytes, p + 16)?,
            paddr: u64_at(bytes, p + 24)?,
            memsz: u64_at(bytes, p + 40)?,
            data,
            align: u64_at(bytes, p + 48)?,
        });
    }
    Ok(Elf { entry, segments })
}

/// Writes an ELF64 executable for x86_64 with the given segments, each
/// placed at a file offset congruent to its address modulo 4 KiB.
pub fn write(entry: u64, segments: &[Segment]) -> Result<Vec<u8>> {
    const EHSIZE: usize = 64;
    const PHSIZE: usize = 56;
    let mut out = vec![0u8; EHSIZE];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little-endian
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&(EHSIZE as u64).to_le_bytes()); // phoff
    out[52..54].copy_from_slice(&(EHSIZE as u16).to_le_bytes());
    out[54..56].copy_from_slice(&(PHSIZE as u16).to_le_bytes());
    let phnum = u16::try_from(segments.len())?;
    out[56..58].copy_from_slice(&phnum.to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes()); // shentsize
    out.resize(EHSIZE + PHSIZE * segments.len(), 0);

    let mut offsets = vec![];
    let mut cursor = out.len().next_multiple_of(4096) as u64;
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
    for (i, s) in segments.iter().enumerate() {
        let p = EHSIZE + i * PHSIZE;
        let h = &mut out[p..p + PHSIZE];
        h[0..4].copy_from_slice(&s.kind.to_le_bytes());
        h[4..8].copy_from_slice(&s.flags.to_le_bytes());
        h[8..16].copy_from_slice(&offsets[i].to_le_bytes());
        h[16..24].copy_from_slice(&s.vaddr.to_le_bytes());
        h[24..32].copy_from_slice(&s.paddr.to_le_bytes());
        h[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        h[40..48].copy_from_slice(&s.memsz.to_le_bytes());
        h[48..56].copy_from_slice(&s.align.to_le_bytes());
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
}
