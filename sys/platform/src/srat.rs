//! SRAT: which proximity domain each CPU and each memory range is in, and
//! where memory may be hot-plugged.
//!
//! Pattern as in [`crate::madt`]: [`Srat::from_sdt`] validates every
//! subtable once (a walk that cannot continue or a memory range that wraps
//! is an error for the table; an entry of a known type shorter than its
//! layout is skipped and counted in [`Srat::skipped`]; a longer one is
//! decoded from its known prefix); lookups then re-read through
//! [`PhysRead`]. Entries with ENABLED clear are ignored, as the spec
//! requires ("OSPM ignores the contents"): QEMU pads its SRAT with such
//! zero entries.
//!
//! Processors with ids that do not fit in 8 bits are placed by "Processor
//! Local x2APIC Affinity" entries (type 2: 32-bit proximity domain, 32-bit
//! x2APIC id, flags, clock domain); lookups by APIC id treat both kinds
//! alike.
//!
//! QEMU 7.2 (`hw/i386/acpi-build.c`, `build_srat`, revision 1) emits: one
//! CPU affinity per possible CPU (type 0 below APIC id 255, else type 2);
//! memory affinity per node, split around the 640 KiB hole and the PCI
//! hole below 4 GiB; zero padding up to nodes + 2 entries; and, when
//! `maxmem` leaves device memory, one entry HOTPLUGGABLE|ENABLED covering
//! the whole device-memory window with the last node's domain.
//!
//! Reference: ACPI 6.5 §5.2.16 "System Resource Affinity Table" and its
//! sections "Processor Local APIC/SAPIC Affinity Structure", "Memory
//! Affinity Structure" and "Processor Local x2APIC Affinity Structure".

use crate::acpi::{
    le_u32, AcpiError, RootTable, Sdt, Signature, SkippedEntries, Subtable, Subtables,
    SDT_HEADER_LEN,
};
use crate::{ApicId, PhysAddr, PhysRead, ProximityDomain};

/// Header (36) + reserved u32 + reserved u64.
pub const SRAT_MIN_LEN: u32 = SDT_HEADER_LEN + 12;

/// Before SRAT revision 2 (ACPI 3.0) proximity domains were 8 bits; Linux
/// masks the upper bits of such tables the same way.
const WIDE_DOMAIN_REVISION: u8 = 2;

const ENABLED: u32 = 1 << 0;
const HOT_PLUGGABLE: u32 = 1 << 1;
const NON_VOLATILE: u32 = 1 << 2;

const LAPIC_AFFINITY: u8 = 0;
const MEMORY_AFFINITY: u8 = 1;
const X2APIC_AFFINITY: u8 = 2;

/// The length of a decoded type's layout in the spec; a shorter entry is
/// skipped. `None` for types this parser does not decode.
const fn layout_len(kind: u8) -> Option<u8> {
    match kind {
        LAPIC_AFFINITY => Some(16),
        MEMORY_AFFINITY => Some(40),
        // Type(1) Length(1) Reserved(2) Proximity domain(4) x2APIC id(4)
        // Flags(4) Clock domain(4) Reserved(4).
        X2APIC_AFFINITY => Some(24),
        _ => None,
    }
}

/// A processor's proximity domain (types 0 and 2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CpuAffinity {
    pub apic_id: ApicId,
    pub domain: ProximityDomain,
    pub enabled: bool,
    /// The `_CDM` clock domain the processor is in.
    pub clock_domain: u32,
    pub x2apic: bool,
}

/// A memory range's proximity domain (type 1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MemAffinity {
    pub base: PhysAddr,
    pub length: u64,
    pub domain: ProximityDomain,
    pub enabled: bool,
    pub hot_pluggable: bool,
    pub non_volatile: bool,
}

impl MemAffinity {
    /// One past the last byte; validation guarantees no wrap.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.base.0.saturating_add(self.length)
    }

    #[must_use]
    pub fn contains(&self, pa: u64) -> bool {
        self.base.0 <= pa && pa < self.end()
    }
}

/// A decoded SRAT subtable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SratEntry {
    Cpu(CpuAffinity),
    Memory(MemAffinity),
    /// A known type shorter than its layout
    /// ([`AcpiError::EntryTooShort`]); skipped, see [`Srat::skipped`].
    Malformed(AcpiError),
    /// GICC, ITS, generic initiator/port affinity, or unknown.
    Other {
        kind: u8,
        len: u8,
    },
}

/// A validated SRAT.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Srat {
    pub sdt: Sdt,
    /// Entries of known types skipped for being too short. Every type this
    /// parser decodes places a processor or memory in a node.
    pub skipped: SkippedEntries,
}

impl Srat {
    /// Finds and validates the SRAT. Absence is
    /// [`AcpiError::TableNotFound`]: normal on a machine without NUMA.
    ///
    /// # Errors
    /// Not found, or malformed.
    pub fn find(mem: &impl PhysRead, root: &RootTable) -> Result<Srat, AcpiError> {
        let sdt = root.find(mem, Signature::SRAT, SRAT_MIN_LEN)?;
        Srat::from_sdt(mem, sdt)
    }

    /// Validates every subtable of an already checksummed table.
    ///
    /// # Errors
    /// Wrong signature, too short, or a malformed subtable.
    pub fn from_sdt(mem: &impl PhysRead, sdt: Sdt) -> Result<Srat, AcpiError> {
        if sdt.signature != Signature::SRAT {
            return Err(AcpiError::BadSignature {
                at: sdt.at,
                expected: Signature::SRAT,
                found: sdt.signature,
            });
        }
        if sdt.length < SRAT_MIN_LEN {
            return Err(AcpiError::TableTooShort {
                sig: sdt.signature,
                len: sdt.length,
                min: SRAT_MIN_LEN,
            });
        }
        let mut srat = Srat {
            sdt,
            skipped: SkippedEntries::default(),
        };
        for e in srat.entries(mem) {
            if let SratEntry::Malformed(err) = e? {
                srat.skipped.note(err, true);
            }
        }
        Ok(srat)
    }

    /// The decoded subtables, in table order.
    #[must_use]
    pub fn entries<'m, M: PhysRead>(&self, mem: &'m M) -> SratEntries<'m, M> {
        SratEntries {
            inner: self.sdt.subtables(mem, SRAT_MIN_LEN),
            revision: self.sdt.revision,
        }
    }

    /// Enabled memory affinity entries, in table order.
    pub fn memory<'m, M: PhysRead>(&self, mem: &'m M) -> impl Iterator<Item = MemAffinity> + 'm {
        self.entries(mem).filter_map(|e| match e {
            Ok(SratEntry::Memory(m)) if m.enabled => Some(m),
            _ => None,
        })
    }

    /// Enabled processor affinity entries, in table order.
    pub fn cpus<'m, M: PhysRead>(&self, mem: &'m M) -> impl Iterator<Item = CpuAffinity> + 'm {
        self.entries(mem).filter_map(|e| match e {
            Ok(SratEntry::Cpu(c)) if c.enabled => Some(c),
            _ => None,
        })
    }

    /// The proximity domain of the processor with `apic_id`, if an enabled
    /// entry names it. Bounded by the table length.
    #[must_use]
    pub fn cpu_domain(&self, mem: &impl PhysRead, apic_id: ApicId) -> Option<ProximityDomain> {
        self.cpus(mem)
            .find(|c| c.apic_id == apic_id)
            .map(|c| c.domain)
    }
}

/// Iterator over [`SratEntry`]s; see [`Srat::entries`].
pub struct SratEntries<'m, M> {
    inner: Subtables<'m, M>,
    revision: u8,
}

impl<M: PhysRead> Iterator for SratEntries<'_, M> {
    type Item = Result<SratEntry, AcpiError>;

    fn next(&mut self) -> Option<Self::Item> {
        let sub = match self.inner.next()? {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        Some(decode(&sub, self.revision))
    }
}

fn decode(s: &Subtable, revision: u8) -> Result<SratEntry, AcpiError> {
    let sig = Signature::SRAT;
    if let Some(min) = layout_len(s.kind) {
        if let Err(e) = s.require(sig, min) {
            return Ok(SratEntry::Malformed(e));
        }
    }
    let wide = revision >= WIDE_DOMAIN_REVISION;
    Ok(match s.kind {
        LAPIC_AFFINITY => {
            // Proximity domain bits 7:0 at offset 2, bits 31:8 at 9..12.
            let hi = if wide {
                le_u32(&[s.u8(9), s.u8(10), s.u8(11), 0], 0) << 8
            } else {
                0
            };
            SratEntry::Cpu(CpuAffinity {
                apic_id: ApicId(u32::from(s.u8(3))),
                domain: ProximityDomain(u32::from(s.u8(2)) | hi),
                enabled: s.u32(4) & ENABLED != 0,
                clock_domain: s.u32(12),
                x2apic: false,
            })
        }
        X2APIC_AFFINITY => SratEntry::Cpu(CpuAffinity {
            apic_id: ApicId(s.u32(8)),
            domain: ProximityDomain(s.u32(4)),
            enabled: s.u32(12) & ENABLED != 0,
            clock_domain: s.u32(16),
            x2apic: true,
        }),
        MEMORY_AFFINITY => {
            let raw = s.u32(2);
            let domain = if wide { raw } else { raw & 0xFF };
            // Base and length are each two u32 halves (Table 5.67).
            let base = u64::from(s.u32(8)) | u64::from(s.u32(12)) << 32;
            let length = u64::from(s.u32(16)) | u64::from(s.u32(20)) << 32;
            let flags = s.u32(28);
            if base.checked_add(length).is_none() {
                return Err(AcpiError::RangeOverflow {
                    sig,
                    offset: s.offset,
                });
            }
            SratEntry::Memory(MemAffinity {
                base: PhysAddr(base),
                length,
                domain: ProximityDomain(domain),
                enabled: flags & ENABLED != 0,
                hot_pluggable: flags & HOT_PLUGGABLE != 0,
                non_volatile: flags & NON_VOLATILE != 0,
            })
        }
        kind => SratEntry::Other { kind, len: s.len },
    })
}

#[cfg(test)]
mod tests {
    use super::{CpuAffinity, MemAffinity, Srat, SratEntry};
    use crate::acpi::{AcpiError, Sdt, Signature};
    use crate::testutil::{
        resize, s_lapic, s_mem, s_x2apic, s_x2apic_clock, srat_body, table, TestMem,
    };
    use crate::{ApicId, PhysAddr, ProximityDomain};

    fn load(rev: u8, entries: &[Vec<u8>]) -> Result<(TestMem, Srat), AcpiError> {
        let mut mem = TestMem::default();
        mem.put(0x2000, &table(b"SRAT", rev, &srat_body(entries)));
        let sdt = Sdt::load(&mem, PhysAddr(0x2000), Signature::SRAT, 48)?;
        let s = Srat::from_sdt(&mem, sdt)?;
        Ok((mem, s))
    }

    #[test]
    fn decodes_cpu_and_memory_affinity_with_flags() {
        let (mem, s) = load(
            3,
            &[
                s_lapic(1, 0x0102_0304, 1),
                s_x2apic(0x1234, 9, 1),
                s_mem(1 << 32, 1 << 30, 3, 0b111),
                s_mem(0, 0, 0, 0),
                vec![
                    5, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0,
                ],
            ],
        )
        .unwrap();
        // Revision ≥ 2: all 32 bits of the type 0 domain.
        assert_eq!(
            s.cpu_domain(&mem, ApicId(1)),
            Some(ProximityDomain(0x0102_0304))
        );
        assert_eq!(s.cpu_domain(&mem, ApicId(0x1234)), Some(ProximityDomain(9)));
        assert_eq!(s.cpu_domain(&mem, ApicId(2)), None);
        let m: Vec<MemAffinity> = s.memory(&mem).collect();
        assert_eq!(m.len(), 1, "the disabled padding entry is ignored");
        assert_eq!(
            m[0],
            MemAffinity {
                base: PhysAddr(1 << 32),
                length: 1 << 30,
                domain: ProximityDomain(3),
                enabled: true,
                hot_pluggable: true,
                non_volatile: true
            }
        );
        assert!(matches!(
            s.entries(&mem).last(),
            Some(Ok(SratEntry::Other { kind: 5, len: 32 }))
        ));
    }

    #[test]
    fn revision_1_domains_are_8_bits() {
        let (mem, s) = load(1, &[s_lapic(1, 0x0102_0304, 1), s_mem(0, 4096, 0x1FF, 1)]).unwrap();
        assert_eq!(s.cpu_domain(&mem, ApicId(1)), Some(ProximityDomain(4)));
        assert_eq!(s.memory(&mem).next().unwrap().domain, ProximityDomain(0xFF));
    }

    #[test]
    fn disabled_cpu_affinity_is_ignored() {
        let (mem, s) = load(1, &[s_lapic(1, 1, 0)]).unwrap();
        assert_eq!(s.cpu_domain(&mem, ApicId(1)), None);
    }

    #[test]
    fn malformed_srat_is_rejected() {
        assert!(matches!(
            load(1, &[s_lapic(0, 0, 1), vec![1, 0]]),
            Err(AcpiError::EntryTooShort { len: 0, .. })
        ));
        assert!(matches!(
            load(1, &[s_mem(u64::MAX - 10, 100, 0, 1)]),
            Err(AcpiError::RangeOverflow { .. })
        ));
        let mut over = s_x2apic(1, 1, 1);
        over[1] = 100;
        assert!(matches!(
            load(1, &[over]),
            Err(AcpiError::EntryOverrun { .. })
        ));
        // Zero entries: valid, nothing in it.
        let (mem, s) = load(1, &[]).unwrap();
        assert_eq!(s.entries(&mem).count(), 0);
    }

    #[test]
    fn x2apic_affinity_places_ids_above_255_with_32_bit_domains() {
        // Revision 1 (QEMU's): type 2 arrived with 32-bit domains (ACPI
        // 4.0), so nothing is masked even though type 0 domains would be.
        let (mem, s) = load(
            1,
            &[
                s_x2apic_clock(256, 0x0102_0304, 1, 9),
                s_x2apic(0xFFFF_FFFE, 7, 1),
                s_x2apic(600, 5, 0),
            ],
        )
        .unwrap();
        assert_eq!(
            s.cpus(&mem).next(),
            Some(CpuAffinity {
                apic_id: ApicId(256),
                domain: ProximityDomain(0x0102_0304),
                enabled: true,
                clock_domain: 9,
                x2apic: true
            })
        );
        assert_eq!(
            s.cpu_domain(&mem, ApicId(0xFFFF_FFFE)),
            Some(ProximityDomain(7))
        );
        // Disabled: no placement; and an id that is only 8 bits of 256
        // does not alias CPU 0.
        assert_eq!(s.cpu_domain(&mem, ApicId(600)), None);
        assert_eq!(s.cpu_domain(&mem, ApicId(0)), None);
    }

    #[test]
    fn short_srat_entries_are_skipped_and_long_ones_decoded() {
        let (mem, s) = load(
            3,
            &[
                resize(s_x2apic(300, 1, 1), 23),
                resize(s_lapic(1, 1, 1), 15),
                resize(s_mem(0, 4096, 1, 1), 39),
                resize(s_x2apic(301, 2, 1), 28),
                s_mem(1 << 32, 1 << 30, 3, 1),
            ],
        )
        .unwrap();
        assert_eq!(s.skipped.count, 3);
        assert!(s.skipped.lost_placement);
        assert_eq!(
            s.skipped.first,
            Some(AcpiError::EntryTooShort {
                sig: Signature::SRAT,
                offset: 48,
                kind: 2,
                len: 23
            })
        );
        assert_eq!(s.cpu_domain(&mem, ApicId(300)), None);
        assert_eq!(s.cpu_domain(&mem, ApicId(1)), None);
        assert_eq!(s.cpu_domain(&mem, ApicId(301)), Some(ProximityDomain(2)));
        let m: Vec<u64> = s.memory(&mem).map(|m| m.base.0).collect();
        assert_eq!(m, [1 << 32]);
    }
}
