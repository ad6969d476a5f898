//! Test support: a sparse physical memory and builders for ACPI tables laid
//! out as in the ACPI 6.5 spec (and as QEMU 7.2 `hw/i386/acpi-build.c`
//! fills them). Written from the spec tables, one field at a time, so a
//! parser bug and a builder bug are unlikely to cancel out.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::PhysRead;

/// Sparse memory: bytes that were never `put` are unreadable.
#[derive(Default)]
pub struct TestMem {
    bytes: BTreeMap<u64, u8>,
}

impl TestMem {
    pub fn put(&mut self, at: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.bytes.insert(at + i as u64, b);
        }
    }

    /// Overwrites one byte that must already exist.
    pub fn poke(&mut self, at: u64, b: u8) {
        *self.bytes.get_mut(&at).expect("poke of unmapped byte") = b;
    }

    /// Removes every byte in `[at, at+len)`.
    pub fn unmap(&mut self, at: u64, len: u64) {
        for a in at..at + len {
            self.bytes.remove(&a);
        }
    }
}

impl PhysRead for TestMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        for (i, out) in buf.iter_mut().enumerate() {
            let Some(a) = pa.checked_add(i as u64) else {
                return false;
            };
            match self.bytes.get(&a) {
                Some(&b) => *out = b,
                None => return false,
            }
        }
        true
    }
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
}

/// Sets byte 9 (the header checksum) so the whole table sums to zero.
pub fn fix_table_checksum(t: &mut [u8]) {
    t[9] = 0;
    t[9] = 0u8.wrapping_sub(sum(t));
}

/// A table with the common 36-byte header (ACPI 6.5 Table 5.4), QEMU's OEM
/// fields, and a correct length and checksum.
pub fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(b"BOCHS ");
    t.extend_from_slice(b"BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    assert_eq!(t.len(), 36);
    t.extend_from_slice(body);
    fix_table_checksum(&mut t);
    t
}

/// Recomputes both RSDP checksums (bytes 8 and 32).
pub fn fix_rsdp_checksums(r: &mut [u8]) {
    r[8] = 0;
    r[8] = 0u8.wrapping_sub(sum(&r[..20]));
    if r.len() >= 36 {
        r[32] = 0;
        r[32] = 0u8.wrapping_sub(sum(r));
    }
}

/// An ACPI 1.0 RSDP (revision 0), as SeaBIOS publishes QEMU's.
pub fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"BOCHS ");
    r.push(0);
    r.extend_from_slice(&rsdt.to_le_bytes());
    fix_rsdp_checksums(&mut r);
    r
}

/// An ACPI 2.0+ RSDP (revision 2, length 36), as OVMF publishes.
pub fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"BOCHS ");
    r.push(2);
    r.extend_from_slice(&rsdt.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    fix_rsdp_checksums(&mut r);
    r
}

/// MADT body (§5.2.12, Table 5.19): LAPIC address, flags, entries.
pub fn madt_body(lapic: u32, flags: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&lapic.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    for e in entries {
        b.extend_from_slice(e);
    }
    b
}

/// MADT type 0, Processor Local APIC (Table 5.22), 8 bytes.
pub fn m_lapic(uid: u8, apic: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![0, 8, uid, apic];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// MADT type 9, Processor Local x2APIC (Table 5.39), 16 bytes.
pub fn m_x2apic(apic: u32, flags: u32, uid: u32) -> Vec<u8> {
    let mut e = vec![9, 16, 0, 0];
    e.extend_from_slice(&apic.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e
}

/// MADT type 10, Local x2APIC NMI, 12 bytes: INTI flags at 2, UID at 4,
/// LINT number at 8, three reserved bytes.
pub fn m_x2apic_nmi(uid: u32, flags: u16, lint: u8) -> Vec<u8> {
    let mut e = vec![10, 12];
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e.extend_from_slice(&[lint, 0, 0, 0]);
    e
}

/// An entry cut or padded (with 0xAA) to `len` bytes, its length byte set
/// to match: a short or long entry that keeps the walk in step.
pub fn resize(mut entry: Vec<u8>, len: u8) -> Vec<u8> {
    entry.resize(usize::from(len), 0xAA);
    entry[1] = len;
    entry
}

/// MADT type 1, I/O APIC (Table 5.24), 12 bytes.
pub fn m_ioapic(id: u8, addr: u32, gsi_base: u32) -> Vec<u8> {
    let mut e = vec![1, 12, id, 0];
    e.extend_from_slice(&addr.to_le_bytes());
    e.extend_from_slice(&gsi_base.to_le_bytes());
    e
}

/// MADT type 2, Interrupt Source Override (Table 5.25), 10 bytes.
pub fn m_iso(source: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = vec![2, 10, 0, source];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// MADT type 4, Local APIC NMI (Table 5.31), 6 bytes.
pub fn m_lapic_nmi(uid: u8, flags: u16, lint: u8) -> Vec<u8> {
    let mut e = vec![4, 6, uid];
    e.extend_from_slice(&flags.to_le_bytes());
    e.push(lint);
    e
}

/// SRAT body (§5.2.16, Table 5.65): reserved 1 (for compatibility),
/// reserved u64, entries.
pub fn srat_body(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    for e in entries {
        b.extend_from_slice(e);
    }
    b
}

/// SRAT type 0, Processor Local APIC/SAPIC Affinity (Table 5.66), 16 bytes.
pub fn s_lapic(apic: u8, pxm: u32, flags: u32) -> Vec<u8> {
    let p = pxm.to_le_bytes();
    let mut e = vec![0, 16, p[0], apic];
    e.extend_from_slice(&flags.to_le_bytes());
    e.push(0); // local SAPIC EID
    e.extend_from_slice(&p[1..4]);
    e.extend_from_slice(&0u32.to_le_bytes()); // clock domain
    e
}

/// SRAT type 2, Processor Local x2APIC Affinity (Table 5.69), 24 bytes.
pub fn s_x2apic(apic: u32, pxm: u32, flags: u32) -> Vec<u8> {
    s_x2apic_clock(apic, pxm, flags, 0)
}

/// [`s_x2apic`] with a clock domain.
pub fn s_x2apic_clock(apic: u32, pxm: u32, flags: u32, clock: u32) -> Vec<u8> {
    let mut e = vec![2, 24, 0, 0];
    e.extend_from_slice(&pxm.to_le_bytes());
    e.extend_from_slice(&apic.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&clock.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e
}

/// SRAT type 1, Memory Affinity (Table 5.67), 40 bytes.
pub fn s_mem(base: u64, len: u64, pxm: u32, flags: u32) -> Vec<u8> {
    let mut e = vec![1, 40];
    e.extend_from_slice(&pxm.to_le_bytes());
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&(base as u32).to_le_bytes());
    e.extend_from_slice(&((base >> 32) as u32).to_le_bytes());
    e.extend_from_slice(&(len as u32).to_le_bytes());
    e.extend_from_slice(&((len >> 32) as u32).to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&0u64.to_le_bytes());
    e
}

/// Builds CPUID answers for a QEMU-like CPU whose topology has
/// `threads` threads per core and `cores` cores per package, as QEMU 7.2
/// `cpu_x86_cpuid` reports them (leaves 0, 1, 4, 0xB; no 0x1F).
pub fn qemu_cpuid(
    threads: u32,
    cores: u32,
    apic: u32,
) -> impl Fn(u32, u32) -> (u32, u32, u32, u32) {
    fn order(n: u32) -> u32 {
        if n <= 1 {
            0
        } else {
            32 - (n - 1).leading_zeros()
        }
    }
    let smt = order(threads);
    let pkg = smt + order(cores);
    move |leaf, sub| match (leaf, sub) {
        (0, _) => (0xD, 0, 0, 0),
        (1, _) => {
            let logical = threads * cores;
            let htt = if logical > 1 { 1 << 28 } else { 0 };
            (0x663, (apic << 24) | (logical << 16), 0, htt)
        }
        (4, 0) => (((cores - 1) << 26) | 0x121, 0, 0, 0),
        (0xB, 0) => (smt, threads, 0x100, apic),
        (0xB, 1) => (pkg, threads * cores, 0x201, apic),
        (0xB, n) => (0, 0, n, apic),
        _ => (0, 0, 0, 0),
    }
}
