//! ACPI plumbing: RSDP, system description table headers, RSDT/XSDT, and
//! the "type, length" subtable lists that MADT and SRAT share.
//!
//! Hand-written, not the `acpi` crate: that crate reads tables through an
//! `unsafe` mapping handler that trusts their length fields and needs an
//! allocator for its MADT/processor view; here every read is bounds-checked
//! through [`PhysRead`], nothing is allocated, and failures are [`AcpiError`]s.
//!
//! Pattern: validate, then read. [`Sdt::load`] checks a table's signature,
//! length bounds and checksum before anyone looks inside; all later reads
//! go through [`Sdt::read`], which refuses offsets beyond the validated
//! length. Nothing is cached: bytes are re-read through [`PhysRead`], so
//! no table is ever copied onto the (small) boot stack.
//!
//! References: ACPI 6.5 §5.2.5 (RSDP), §5.2.6 (SDT header), §5.2.7 (RSDT),
//! §5.2.8 (XSDT).

use core::fmt;

use crate::{PhysAddr, PhysRead};

/// Largest table we will checksum or walk. Real MADT/SRAT/FADT/XSDT are a
/// few KiB; the bound turns a lying length field into an error instead of
/// a four-gigabyte walk.
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// Size of the common table header (ACPI 6.5 Table 5.4).
pub const SDT_HEADER_LEN: u32 = 36;

/// Size of an ACPI 1.0 RSDP (§5.2.5.3); the first checksum covers it.
const RSDP_V1_LEN: usize = 20;
/// Size of an ACPI 2.0+ RSDP, the smallest valid `Length` field.
const RSDP_V2_LEN: usize = 36;
/// `Length` values beyond this are treated as lies (the structure is 36
/// bytes in every ACPI revision so far).
const RSDP_MAX_LEN: u32 = 256;
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";

/// BIOS data area word holding the EBDA segment (§5.2.5.1).
const EBDA_POINTER: u64 = 0x40E;
/// The part of the EBDA that is searched (§5.2.5.1: "the first 1 KB").
const EBDA_SEARCH_LEN: u64 = 1024;
/// The BIOS read-only area that is searched (§5.2.5.1).
const BIOS_AREA: (u64, u64) = (0xE_0000, 0x10_0000);

/// A table signature, such as `b"APIC"`.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    pub const RSDT: Signature = Signature(*b"RSDT");
    pub const XSDT: Signature = Signature(*b"XSDT");
    /// The MADT's signature is "APIC" (§5.2.12).
    pub const MADT: Signature = Signature(*b"APIC");
    pub const SRAT: Signature = Signature(*b"SRAT");
    /// The FADT's signature is "FACP" (§5.2.9).
    pub const FADT: Signature = Signature(*b"FACP");
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why an ACPI structure could not be used.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No valid RSDP at the given address nor in the BIOS areas.
    RsdpNotFound,
    /// The RSDP's ACPI 1.0 checksum (first 20 bytes) is wrong.
    RsdpChecksum { at: PhysAddr },
    /// The RSDP's extended checksum (whole `Length`) is wrong.
    RsdpExtendedChecksum { at: PhysAddr },
    /// The RSDP's `Length` is below 36 or absurd.
    RsdpLength { at: PhysAddr, len: u32 },
    /// The RSDP names neither an RSDT nor an XSDT.
    NoRootTable,
    /// Memory could not be read (outside the direct map, or wraps).
    Unreadable { at: PhysAddr, len: u32 },
    /// A table pointer is zero.
    NullTable { expected: Signature },
    /// The table at a pointer has another signature.
    BadSignature {
        at: PhysAddr,
        expected: Signature,
        found: Signature,
    },
    /// The header's length is below the header or the table's fixed part.
    TableTooShort { sig: Signature, len: u32, min: u32 },
    /// The header's length exceeds [`MAX_TABLE_LEN`].
    TableTooLong { sig: Signature, len: u32 },
    /// The bytes of the table do not sum to zero.
    TableChecksum { sig: Signature, at: PhysAddr },
    /// The root table lists no table with this signature.
    TableNotFound { sig: Signature },
    /// A subtable's length is below 2 (would loop forever) or below the
    /// size its type requires.
    EntryTooShort {
        sig: Signature,
        offset: u32,
        kind: u8,
        len: u8,
    },
    /// A subtable extends past the end of its table.
    EntryOverrun {
        sig: Signature,
        offset: u32,
        len: u8,
    },
    /// A read past the validated length was attempted (a bug in a parser,
    /// reported rather than panicking).
    OutOfTable { sig: Signature, offset: u32 },
    /// A subtable describes an address range that wraps 2^64.
    RangeOverflow { sig: Signature, offset: u32 },
    /// The table is well formed but lists nothing usable (e.g. a MADT
    /// without a single enabled processor).
    NoEntries { sig: Signature },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcpiError::RsdpNotFound => write!(f, "no ACPI RSDP found"),
            AcpiError::RsdpChecksum { at } => write!(f, "RSDP at {at}: bad checksum"),
            AcpiError::RsdpExtendedChecksum { at } => {
                write!(f, "RSDP at {at}: bad extended checksum")
            }
            AcpiError::RsdpLength { at, len } => write!(f, "RSDP at {at}: bad length {len}"),
            AcpiError::NoRootTable => write!(f, "RSDP names no RSDT/XSDT"),
            AcpiError::Unreadable { at, len } => write!(f, "cannot read {len} bytes at {at}"),
            AcpiError::NullTable { expected } => write!(f, "{expected}: null pointer"),
            AcpiError::BadSignature {
                at,
                expected,
                found,
            } => write!(f, "table at {at}: expected {expected}, found {found}"),
            AcpiError::TableTooShort { sig, len, min } => {
                write!(f, "{sig}: length {len} below minimum {min}")
            }
            AcpiError::TableTooLong { sig, len } => {
                write!(f, "{sig}: length {len} above limit {MAX_TABLE_LEN}")
            }
            AcpiError::TableChecksum { sig, at } => write!(f, "{sig} at {at}: bad checksum"),
            AcpiError::TableNotFound { sig } => write!(f, "{sig}: not present"),
            AcpiError::EntryTooShort {
                sig,
                offset,
                kind,
                len,
            } => write!(
                f,
                "{sig}: entry type {kind} at offset {offset} has length {len}, too short"
            ),
            AcpiError::EntryOverrun { sig, offset, len } => write!(
                f,
                "{sig}: entry at offset {offset} (length {len}) runs past the table"
            ),
            AcpiError::OutOfTable { sig, offset } => {
                write!(f, "{sig}: read at offset {offset} beyond the table")
            }
            AcpiError::NoEntries { sig } => write!(f, "{sig}: no usable entries"),
            AcpiError::RangeOverflow { sig, offset } => {
                write!(f, "{sig}: entry at offset {offset} wraps the address space")
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes at `at`.
pub(crate) fn read_exact(mem: &impl PhysRead, at: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
    let unreadable = AcpiError::Unreadable {
        at: PhysAddr(at),
        len: buf.len() as u32,
    };
    // A range that wraps is unreadable whatever the implementation says.
    if at.checked_add(buf.len() as u64).is_none() || !mem.read(at, buf) {
        return Err(unreadable);
    }
    Ok(())
}

fn le_u16(b: &[u8], off: usize) -> u16 {
    let mut w = [0; 2];
    if let Some(s) = b.get(off..off + 2) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}

/// Little-endian `u32` at `off`, or 0 when `b` is too short.
pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    let mut w = [0; 4];
    if let Some(s) = b.get(off..off + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// Little-endian `u64` at `off`, or 0 when `b` is too short.
pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut w = [0; 8];
    if let Some(s) = b.get(off..off + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Sums `len` bytes at `at` modulo 256, reading in small chunks so the
/// boot stack stays small. `len` is bounded by the caller.
fn checksum(mem: &impl PhysRead, at: u64, len: u32) -> Result<u8, AcpiError> {
    let mut buf = [0u8; 64];
    let mut sum = 0u8;
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(buf.len() as u32) as usize;
        read_exact(mem, at + u64::from(done), &mut buf[..n])?;
        sum = buf[..n].iter().fold(sum, |s, &b| s.wrapping_add(b));
        done += n as u32;
    }
    Ok(sum)
}

/// The Root System Description Pointer (§5.2.5.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rsdp {
    pub at: PhysAddr,
    /// 0 for ACPI 1.0; 2 for ACPI 2.0 and later.
    pub revision: u8,
    pub oem_id: [u8; 6],
    /// 32-bit RSDT address; 0 if absent.
    pub rsdt: u32,
    /// 64-bit XSDT address (revision ≥ 2 only, and non-zero).
    pub xsdt: Option<u64>,
}

impl Rsdp {
    /// Validates the RSDP at `at`: signature, the ACPI 1.0 checksum over the
    /// first 20 bytes, and for revision ≥ 2 the `Length` field and the
    /// extended checksum over `Length` bytes.
    ///
    /// # Errors
    /// Why the bytes at `at` are not an RSDP.
    pub fn parse(mem: &impl PhysRead, at: PhysAddr) -> Result<Rsdp, AcpiError> {
        let mut b = [0u8; RSDP_V2_LEN];
        read_exact(mem, at.0, &mut b[..RSDP_V1_LEN])?;
        if &b[..8] != RSDP_SIGNATURE {
            return Err(AcpiError::RsdpNotFound);
        }
        if checksum(mem, at.0, RSDP_V1_LEN as u32)? != 0 {
            return Err(AcpiError::RsdpChecksum { at });
        }
        let revision = b[15];
        let mut oem_id = [0; 6];
        oem_id.copy_from_slice(&b[9..15]);
        let rsdt = le_u32(&b, 16);
        let mut xsdt = None;
        if revision >= 2 {
            read_exact(mem, at.0, &mut b)?;
            let len = le_u32(&b, 20);
            if len < RSDP_V2_LEN as u32 || len > RSDP_MAX_LEN {
                return Err(AcpiError::RsdpLength { at, len });
            }
            if checksum(mem, at.0, len)? != 0 {
                return Err(AcpiError::RsdpExtendedChecksum { at });
            }
            xsdt = Some(le_u64(&b, 24)).filter(|&x| x != 0);
        }
        Ok(Rsdp {
            at,
            revision,
            oem_id,
            rsdt,
            xsdt,
        })
    }
}

/// Finds the RSDP.
///
/// With a `hint` (PVH `rsdp_paddr`, or the kernel's copy of the payload of
/// multiboot2 tag 15 or 14) only the RSDP there is used: the loader said
/// where it is, and a UEFI machine need have nothing at the legacy BIOS
/// addresses. Without one, the first KiB of the EBDA and then
/// 0xE0000–0xFFFFF are searched on 16-byte boundaries (§5.2.5.1);
/// candidates with a bad checksum are skipped.
///
/// # Errors
/// The hint's error if there was a hint, else [`AcpiError::RsdpNotFound`]
/// if the search found nothing.
pub fn find_rsdp(mem: &impl PhysRead, hint: Option<PhysAddr>) -> Result<Rsdp, AcpiError> {
    if let Some(at) = hint {
        return Rsdp::parse(mem, at);
    }
    let mut seg = [0u8; 2];
    let ebda = if read_exact(mem, EBDA_POINTER, &mut seg).is_ok() {
        u64::from(le_u16(&seg, 0)) << 4
    } else {
        0
    };
    // An EBDA pointer of 0 (or into the BIOS data area) means none.
    let areas = [
        (
            ebda,
            if ebda >= 0x500 {
                ebda + EBDA_SEARCH_LEN
            } else {
                0
            },
        ),
        BIOS_AREA,
    ];
    for (start, end) in areas {
        let mut at = start;
        while at + 16 <= end {
            if let Ok(r) = Rsdp::parse(mem, PhysAddr(at)) {
                return Ok(r);
            }
            at += 16;
        }
    }
    Err(AcpiError::RsdpNotFound)
}

/// A validated system description table: signature, length bounds and
/// checksum have been checked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sdt {
    pub at: PhysAddr,
    pub signature: Signature,
    /// Total length including the header; `SDT_HEADER_LEN..=MAX_TABLE_LEN`.
    pub length: u32,
    pub revision: u8,
}

impl Sdt {
    /// Loads and validates the table at `at`, which must have signature
    /// `expected` and be at least `min_len` bytes long.
    ///
    /// # Errors
    /// Why the table cannot be used.
    pub fn load(
        mem: &impl PhysRead,
        at: PhysAddr,
        expected: Signature,
        min_len: u32,
    ) -> Result<Sdt, AcpiError> {
        if at.0 == 0 {
            return Err(AcpiError::NullTable { expected });
        }
        let mut h = [0u8; SDT_HEADER_LEN as usize];
        read_exact(mem, at.0, &mut h)?;
        let found = Signature([h[0], h[1], h[2], h[3]]);
        if found != expected {
            return Err(AcpiError::BadSignature {
                at,
                expected,
                found,
            });
        }
        let length = le_u32(&h, 4);
        let min = min_len.max(SDT_HEADER_LEN);
        if length < min {
            return Err(AcpiError::TableTooShort {
                sig: found,
                len: length,
                min,
            });
        }
        if length > MAX_TABLE_LEN {
            return Err(AcpiError::TableTooLong {
                sig: found,
                len: length,
            });
        }
        if at.checked_add(u64::from(length)).is_none() {
            return Err(AcpiError::Unreadable { at, len: length });
        }
        if checksum(mem, at.0, length)? != 0 {
            return Err(AcpiError::TableChecksum { sig: found, at });
        }
        Ok(Sdt {
            at,
            signature: found,
            length,
            revision: h[8],
        })
    }

    /// Reads `buf.len()` bytes at `offset` inside the table.
    ///
    /// # Errors
    /// [`AcpiError::OutOfTable`] if the range leaves the validated length;
    /// [`AcpiError::Unreadable`] if memory cannot be read.
    pub fn read(&self, mem: &impl PhysRead, offset: u32, buf: &mut [u8]) -> Result<(), AcpiError> {
        let end = u64::from(offset) + buf.len() as u64;
        if end > u64::from(self.length) {
            return Err(AcpiError::OutOfTable {
                sig: self.signature,
                offset,
            });
        }
        read_exact(mem, self.at.0 + u64::from(offset), buf)
    }

    /// Walks the "type, length" subtables from `start` to the end of the
    /// table (MADT §5.2.12, SRAT §5.2.16).
    #[must_use]
    pub fn subtables<'m, M: PhysRead>(&self, mem: &'m M, start: u32) -> Subtables<'m, M> {
        Subtables {
            sdt: *self,
            mem,
            offset: start,
            done: false,
        }
    }
}

/// The root table: an RSDT (32-bit pointers) or XSDT (64-bit pointers).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RootTable {
    pub sdt: Sdt,
    /// Bytes per entry: 4 (RSDT) or 8 (XSDT).
    pub entry_size: u32,
}

impl RootTable {
    /// The XSDT if the RSDP names one and it is valid, else the RSDT. Like
    /// Linux, a broken XSDT falls back to the RSDT when there is one.
    ///
    /// # Errors
    /// The XSDT's error if both fail (or the RSDT's if there is no XSDT).
    pub fn from_rsdp(mem: &impl PhysRead, rsdp: &Rsdp) -> Result<RootTable, AcpiError> {
        let mut first_err = None;
        if let Some(x) = rsdp.xsdt {
            match Sdt::load(mem, PhysAddr(x), Signature::XSDT, 0) {
                Ok(sdt) => return Ok(RootTable { sdt, entry_size: 8 }),
                Err(e) => first_err = Some(e),
            }
        }
        if rsdp.rsdt == 0 {
            return Err(first_err.unwrap_or(AcpiError::NoRootTable));
        }
        match Sdt::load(mem, PhysAddr(u64::from(rsdp.rsdt)), Signature::RSDT, 0) {
            Ok(sdt) => Ok(RootTable { sdt, entry_size: 4 }),
            Err(e) => Err(first_err.unwrap_or(e)),
        }
    }

    /// Number of table pointers (bounded by [`MAX_TABLE_LEN`] / 4).
    #[must_use]
    pub fn len(&self) -> u32 {
        (self.sdt.length - SDT_HEADER_LEN) / self.entry_size
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pointer number `i`.
    ///
    /// # Errors
    /// Out of range or unreadable.
    pub fn entry(&self, mem: &impl PhysRead, i: u32) -> Result<PhysAddr, AcpiError> {
        let mut b = [0u8; 8];
        let n = self.entry_size as usize;
        self.sdt
            .read(mem, SDT_HEADER_LEN + i * self.entry_size, &mut b[..n])?;
        Ok(PhysAddr(le_u64(&b, 0)))
    }

    /// The first valid table with signature `sig` and at least `min_len`
    /// bytes. Invalid candidates are skipped (a firmware may list a stale
    /// copy); if every candidate is invalid, the first one's error is
    /// returned so the log says why.
    ///
    /// # Errors
    /// [`AcpiError::TableNotFound`] or the first candidate's error.
    pub fn find(
        &self,
        mem: &impl PhysRead,
        sig: Signature,
        min_len: u32,
    ) -> Result<Sdt, AcpiError> {
        let mut first_err = None;
        // Bounded: len() ≤ MAX_TABLE_LEN / 4.
        for i in 0..self.len() {
            let at = self.entry(mem, i)?;
            if at.0 == 0 {
                continue;
            }
            let mut s = [0u8; 4];
            if read_exact(mem, at.0, &mut s).is_err() || Signature(s) != sig {
                continue;
            }
            match Sdt::load(mem, at, sig, min_len) {
                Ok(t) => return Ok(t),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(AcpiError::TableNotFound { sig }))
    }
}

/// Subtables of a known type that were shorter than that type's layout.
///
/// Such an entry still has a sane length (at least 2, inside its table),
/// so the walk stays in step and the entries after it are read; only the
/// entry itself is skipped. It is counted here so discovery can say so
/// rather than quietly lose, say, a processor.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedEntries {
    pub count: u32,
    /// The first one skipped ([`AcpiError::EntryTooShort`]), for the log.
    pub first: Option<AcpiError>,
    /// Whether any skipped entry was of a type that names a processor or
    /// places something in a node, so the record built from the table may
    /// be incomplete (as opposed to, say, a skipped NMI entry).
    pub lost_placement: bool,
}

impl SkippedEntries {
    pub(crate) fn note(&mut self, error: AcpiError, lost_placement: bool) {
        self.count = self.count.saturating_add(1);
        self.first.get_or_insert(error);
        self.lost_placement |= lost_placement;
    }
}

/// Largest subtable: its length is one byte.
const SUBTABLE_MAX: usize = 255;

/// One subtable's bytes, copied out (at most 255 bytes).
#[derive(Clone, Debug)]
pub struct Subtable {
    pub kind: u8,
    /// Offset from the start of the table.
    pub offset: u32,
    /// The subtable's own length field (≥ 2).
    pub len: u8,
    bytes: [u8; SUBTABLE_MAX],
}

impl Subtable {
    /// Requires the subtable to be at least `min` bytes, as its type says.
    ///
    /// # Errors
    /// [`AcpiError::EntryTooShort`].
    pub fn require(&self, sig: Signature, min: u8) -> Result<(), AcpiError> {
        if self.len < min {
            return Err(AcpiError::EntryTooShort {
                sig,
                offset: self.offset,
                kind: self.kind,
                len: self.len,
            });
        }
        Ok(())
    }

    /// The byte at `off`; 0 beyond the subtable (callers check
    /// [`Subtable::require`] first).
    #[must_use]
    pub fn u8(&self, off: usize) -> u8 {
        self.valid().get(off).copied().unwrap_or(0)
    }

    #[must_use]
    pub fn u16(&self, off: usize) -> u16 {
        le_u16(self.valid(), off)
    }

    #[must_use]
    pub fn u32(&self, off: usize) -> u32 {
        le_u32(self.valid(), off)
    }

    #[must_use]
    pub fn u64(&self, off: usize) -> u64 {
        le_u64(self.valid(), off)
    }

    fn valid(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Iterator over subtables. Yields an error and then stops on a length
/// below 2, a subtable running past the table, or unreadable memory.
/// Bounded: each step advances by at least 2 bytes inside a table of at
/// most [`MAX_TABLE_LEN`] bytes.
pub struct Subtables<'m, M> {
    sdt: Sdt,
    mem: &'m M,
    offset: u32,
    done: bool,
}

impl<M: PhysRead> Iterator for Subtables<'_, M> {
    type Item = Result<Subtable, AcpiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.sdt.length {
            return None;
        }
        let result = self.step();
        match &result {
            Ok(s) => self.offset += u32::from(s.len),
            Err(_) => self.done = true,
        }
        Some(result)
    }
}

impl<M: PhysRead> Subtables<'_, M> {
    fn step(&self) -> Result<Subtable, AcpiError> {
        let sig = self.sdt.signature;
        let remaining = self.sdt.length - self.offset;
        if remaining < 2 {
            return Err(AcpiError::EntryOverrun {
                sig,
                offset: self.offset,
                len: 0,
            });
        }
        let mut h = [0u8; 2];
        self.sdt.read(self.mem, self.offset, &mut h)?;
        let (kind, len) = (h[0], h[1]);
        if len < 2 {
            // A zero length would never advance: the classic infinite loop.
            return Err(AcpiError::EntryTooShort {
                sig,
                offset: self.offset,
                kind,
                len,
            });
        }
        if u32::from(len) > remaining {
            return Err(AcpiError::EntryOverrun {
                sig,
                offset: self.offset,
                len,
            });
        }
        let mut s = Subtable {
            kind,
            offset: self.offset,
            len,
            bytes: [0; SUBTABLE_MAX],
        };
        self.sdt
            .read(self.mem, self.offset, &mut s.bytes[..usize::from(len)])?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::{find_rsdp, AcpiError, RootTable, Rsdp, Sdt, Signature, MAX_TABLE_LEN};
    use crate::testutil::{rsdp_v1, rsdp_v2, table, TestMem};
    use crate::PhysAddr;

    fn mem_with_root(xsdt: bool) -> (TestMem, Rsdp) {
        let mut mem = TestMem::default();
        let facp = table(b"FACP", 3, &[0u8; 80]);
        let apic = table(b"APIC", 1, &[0u8; 8]);
        mem.put(0x7000_0000, &facp);
        mem.put(0x7000_1000, &apic);
        let mut ptrs = std::vec::Vec::new();
        for p in [0u64, 0x7000_0000, 0x7000_1000] {
            if xsdt {
                ptrs.extend_from_slice(&p.to_le_bytes());
            } else {
                ptrs.extend_from_slice(&(p as u32).to_le_bytes());
            }
        }
        let sig = if xsdt { b"XSDT" } else { b"RSDT" };
        mem.put(0x7000_2000, &table(sig, 1, &ptrs));
        let r = if xsdt {
            rsdp_v2(0, 0x7000_2000)
        } else {
            rsdp_v1(0x7000_2000)
        };
        mem.put(0xF59E0, &r);
        let r = find_rsdp(&mem, Some(PhysAddr(0xF59E0))).unwrap();
        (mem, r)
    }

    #[test]
    fn rsdp_v1_and_v2_parse() {
        let (mem, r) = mem_with_root(false);
        assert_eq!((r.revision, r.rsdt, r.xsdt), (0, 0x7000_2000, None));
        let root = RootTable::from_rsdp(&mem, &r).unwrap();
        assert_eq!(root.entry_size, 4);
        let (mem, r) = mem_with_root(true);
        assert_eq!((r.revision, r.xsdt), (2, Some(0x7000_2000)));
        let root = RootTable::from_rsdp(&mem, &r).unwrap();
        assert_eq!((root.entry_size, root.len()), (8, 3));
    }

    #[test]
    fn finder_skips_null_and_finds_by_signature() {
        for wide in [false, true] {
            let (mem, r) = mem_with_root(wide);
            let root = RootTable::from_rsdp(&mem, &r).unwrap();
            assert_eq!(
                root.find(&mem, Signature::MADT, 0).unwrap().at,
                PhysAddr(0x7000_1000)
            );
            assert_eq!(
                root.find(&mem, Signature::SRAT, 0),
                Err(AcpiError::TableNotFound {
                    sig: Signature::SRAT
                })
            );
        }
    }

    #[test]
    fn rsdp_checksums_are_both_checked() {
        let mut bad1 = rsdp_v1(0x1000);
        bad1[8] ^= 1;
        let mut mem = TestMem::default();
        mem.put(0x9_0000, &bad1);
        assert_eq!(
            Rsdp::parse(&mem, PhysAddr(0x9_0000)),
            Err(AcpiError::RsdpChecksum {
                at: PhysAddr(0x9_0000)
            })
        );
        // Corrupt a byte covered only by the extended checksum.
        let mut bad2 = rsdp_v2(0x1000, 0x2000);
        bad2[24] ^= 0x10;
        mem.put(0xA_0000, &bad2);
        assert_eq!(
            Rsdp::parse(&mem, PhysAddr(0xA_0000)),
            Err(AcpiError::RsdpExtendedChecksum {
                at: PhysAddr(0xA_0000)
            })
        );
        // A length lie in a v2 RSDP.
        let mut lie = rsdp_v2(0x1000, 0x2000);
        lie[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        crate::testutil::fix_rsdp_checksums(&mut lie);
        mem.put(0xB_0000, &lie);
        assert!(matches!(
            Rsdp::parse(&mem, PhysAddr(0xB_0000)),
            Err(AcpiError::RsdpLength { .. })
        ));
    }

    #[test]
    fn rsdp_scan_finds_bios_area_and_ebda_and_reports_absence() {
        let mut mem = TestMem::default();
        mem.put(0, &[0u8; 0x1000]);
        mem.put(0xE_0000, &[0u8; 0x2_0000]);
        assert_eq!(find_rsdp(&mem, None), Err(AcpiError::RsdpNotFound));
        // A bad hint: the hint's error is reported.
        let bad_hint = Err(AcpiError::Unreadable {
            at: PhysAddr(0xDEAD_0000),
            len: 20,
        });
        assert_eq!(find_rsdp(&mem, Some(PhysAddr(0xDEAD_0000))), bad_hint);
        // A stale signature with a bad checksum is skipped.
        let mut stale = rsdp_v1(0x1111);
        stale[8] ^= 1;
        mem.put(0xE_1000, &stale);
        mem.put(0xF_59E0, &rsdp_v1(0x2222));
        assert_eq!(find_rsdp(&mem, None).unwrap().rsdt, 0x2222);
        // A hint is the loader's word: a bad one is not replaced by what
        // the legacy BIOS area happens to hold.
        assert_eq!(find_rsdp(&mem, Some(PhysAddr(0xDEAD_0000))), bad_hint);
        // The EBDA is searched first.
        mem.put(0x40E, &(0x9FC0u16).to_le_bytes());
        mem.put(0x9_FC00, &[0u8; 0x400]);
        mem.put(0x9_FC40, &rsdp_v1(0x3333));
        assert_eq!(find_rsdp(&mem, None).unwrap().rsdt, 0x3333);
    }

    #[test]
    fn sdt_rejects_bad_checksum_short_long_and_wrong_signature() {
        let mut mem = TestMem::default();
        let mut t = table(b"APIC", 1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        mem.put(0x1000, &t);
        assert!(Sdt::load(&mem, PhysAddr(0x1000), Signature::MADT, 44).is_ok());
        assert!(matches!(
            Sdt::load(&mem, PhysAddr(0x1000), Signature::SRAT, 0),
            Err(AcpiError::BadSignature { .. })
        ));
        assert!(matches!(
            Sdt::load(&mem, PhysAddr(0x1000), Signature::MADT, 45),
            Err(AcpiError::TableTooShort { .. })
        ));
        t[40] ^= 0xFF;
        mem.put(0x2000, &t);
        assert!(matches!(
            Sdt::load(&mem, PhysAddr(0x2000), Signature::MADT, 0),
            Err(AcpiError::TableChecksum { .. })
        ));
        // Length lies: larger than memory, larger than the limit, smaller
        // than the header.
        for (len, at) in [
            (0x100u32, 0x3000u64),
            (MAX_TABLE_LEN + 1, 0x4000),
            (10, 0x5000),
        ] {
            let mut l = table(b"APIC", 1, &[0u8; 8]);
            l[4..8].copy_from_slice(&len.to_le_bytes());
            mem.put(at, &l);
            let e = Sdt::load(&mem, PhysAddr(at), Signature::MADT, 0).unwrap_err();
            assert!(
                matches!(
                    e,
                    AcpiError::Unreadable { .. }
                        | AcpiError::TableTooLong { .. }
                        | AcpiError::TableTooShort { .. }
                ),
                "{e:?}"
            );
        }
        assert_eq!(
            Sdt::load(&mem, PhysAddr(0), Signature::MADT, 0),
            Err(AcpiError::NullTable {
                expected: Signature::MADT
            })
        );
    }

    #[test]
    fn broken_xsdt_falls_back_to_rsdt() {
        let (mut mem, r) = mem_with_root(true);
        let rsdt_ptrs = 0x7000_1000u32.to_le_bytes();
        mem.put(0x7000_3000, &table(b"RSDT", 1, &rsdt_ptrs));
        let mut r = r;
        r.rsdt = 0x7000_3000;
        // Corrupt the XSDT.
        mem.poke(0x7000_2000 + 40, 0x5A);
        let root = RootTable::from_rsdp(&mem, &r).unwrap();
        assert_eq!(root.entry_size, 4);
        r.rsdt = 0;
        assert!(matches!(
            RootTable::from_rsdp(&mem, &r),
            Err(AcpiError::TableChecksum { .. })
        ));
    }
}
