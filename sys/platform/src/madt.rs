//! MADT ("APIC"): processors, I/O APICs, interrupt source overrides.
//!
//! Pattern: [`Madt::from_sdt`] walks every subtable once and checks each
//! known type's minimum length, so a table that passes has no length lies;
//! [`Madt::entries`] then decodes lazily through [`PhysRead`] (no copy of
//! the table on the boot stack). Unknown types are skipped by length, as
//! ACPI requires for forward compatibility.
//!
//! Reference: ACPI 6.5 §5.2.12 (Table 5.19 header, 5.21 types, 5.22 local
//! APIC, 5.23 processor flags, 5.24 I/O APIC, 5.25 ISO, 5.26 MPS INTI
//! flags, 5.30 LAPIC address override, 5.39 x2APIC).

use crate::acpi::{AcpiError, RootTable, Sdt, Signature, Subtable, Subtables, SDT_HEADER_LEN};
use crate::{ApicId, PhysAddr, PhysRead};

/// Header (36) + Local Interrupt Controller Address (4) + Flags (4).
pub const MADT_MIN_LEN: u32 = SDT_HEADER_LEN + 8;

/// Processor flags bit 0: the processor is usable now (Table 5.23).
const PROC_ENABLED: u32 = 1 << 0;
/// Processor flags bit 1: may be enabled at run time. Defined from MADT
/// revision 5 (ACPI 6.3); reserved (and ignored here) before.
const PROC_ONLINE_CAPABLE: u32 = 1 << 1;
const ONLINE_CAPABLE_REVISION: u8 = 5;

/// Subtable types (Table 5.21) and their minimum lengths.
const LOCAL_APIC: (u8, u8) = (0, 8);
const IO_APIC: (u8, u8) = (1, 12);
const SOURCE_OVERRIDE: (u8, u8) = (2, 10);
const LAPIC_ADDRESS_OVERRIDE: (u8, u8) = (5, 12);
const LOCAL_X2APIC: (u8, u8) = (9, 16);

/// One processor entry (local APIC or local x2APIC).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Processor {
    pub apic_id: ApicId,
    /// ACPI processor UID (8 bits for type 0, 32 bits for type 9).
    pub uid: u32,
    pub enabled: bool,
    pub online_capable: bool,
    /// From a type 9 (x2APIC) entry.
    pub x2apic: bool,
}

impl Processor {
    /// Whether the entry names a real processor: enabled or online-capable
    /// (Table 5.23: with both clear the OS must not try to use it), and not
    /// the all-ones id that firmware uses for "no processor".
    #[must_use]
    pub fn usable(&self) -> bool {
        let invalid = if self.x2apic { u32::MAX } else { 0xFF };
        (self.enabled || self.online_capable) && self.apic_id.0 != invalid
    }
}

/// An I/O APIC (Table 5.24).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IoApic {
    pub id: u8,
    pub address: PhysAddr,
    pub gsi_base: u32,
}

/// An interrupt source override (Table 5.25): ISA IRQ `source` is wired to
/// `gsi` with the MPS INTI `flags` (Table 5.26).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SourceOverride {
    pub bus: u8,
    pub source: u8,
    pub gsi: u32,
    pub flags: u16,
}

/// Polarity of an MPS INTI flags word (Table 5.26, bits 1:0).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Polarity {
    BusDefault,
    ActiveHigh,
    Reserved,
    ActiveLow,
}

/// Trigger mode of an MPS INTI flags word (Table 5.26, bits 3:2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    BusDefault,
    Edge,
    Reserved,
    Level,
}

impl SourceOverride {
    #[must_use]
    pub fn polarity(&self) -> Polarity {
        match self.flags & 3 {
            0 => Polarity::BusDefault,
            1 => Polarity::ActiveHigh,
            2 => Polarity::Reserved,
            _ => Polarity::ActiveLow,
        }
    }

    #[must_use]
    pub fn trigger(&self) -> Trigger {
        match (self.flags >> 2) & 3 {
            0 => Trigger::BusDefault,
            1 => Trigger::Edge,
            2 => Trigger::Reserved,
            _ => Trigger::Level,
        }
    }
}

/// A decoded MADT subtable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MadtEntry {
    Processor(Processor),
    IoApic(IoApic),
    SourceOverride(SourceOverride),
    /// Type 5: a 64-bit local APIC address replacing the header's.
    LapicAddressOverride(PhysAddr),
    /// A type this parser does not interpret (NMI sources, GIC, …).
    Other {
        kind: u8,
        len: u8,
    },
}

/// A validated MADT.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Madt {
    pub sdt: Sdt,
    /// The local APIC MMIO base: the header field, or the type 5 override.
    pub lapic_address: PhysAddr,
    /// Header flags; bit 0 PCAT_COMPAT (dual 8259s present).
    pub flags: u32,
}

impl Madt {
    /// Finds and validates the MADT.
    ///
    /// # Errors
    /// Not found, or malformed.
    pub fn find(mem: &impl PhysRead, root: &RootTable) -> Result<Madt, AcpiError> {
        let sdt = root.find(mem, Signature::MADT, MADT_MIN_LEN)?;
        Madt::from_sdt(mem, sdt)
    }

    /// Validates every subtable of an already checksummed table.
    ///
    /// # Errors
    /// Wrong signature, too short, or a malformed subtable.
    pub fn from_sdt(mem: &impl PhysRead, sdt: Sdt) -> Result<Madt, AcpiError> {
        if sdt.signature != Signature::MADT {
            return Err(AcpiError::BadSignature {
                at: sdt.at,
                expected: Signature::MADT,
                found: sdt.signature,
            });
        }
        if sdt.length < MADT_MIN_LEN {
            return Err(AcpiError::TableTooShort {
                sig: sdt.signature,
                len: sdt.length,
                min: MADT_MIN_LEN,
            });
        }
        let mut fixed = [0u8; 8];
        sdt.read(mem, SDT_HEADER_LEN, &mut fixed)?;
        let mut madt = Madt {
            sdt,
            lapic_address: PhysAddr(u64::from(crate::acpi::le_u32(&fixed, 0))),
            flags: crate::acpi::le_u32(&fixed, 4),
        };
        for e in madt.entries(mem) {
            if let MadtEntry::LapicAddressOverride(a) = e? {
                madt.lapic_address = a;
            }
        }
        Ok(madt)
    }

    /// The decoded subtables, in table order.
    #[must_use]
    pub fn entries<'m, M: PhysRead>(&self, mem: &'m M) -> MadtEntries<'m, M> {
        MadtEntries {
            inner: self.sdt.subtables(mem, MADT_MIN_LEN),
            revision: self.sdt.revision,
        }
    }

    /// The processor entries that name a real processor
    /// ([`Processor::usable`]); entries that fail to decode are skipped
    /// (cannot happen after [`Madt::from_sdt`] unless memory changes).
    pub fn processors<'m, M: PhysRead>(&self, mem: &'m M) -> impl Iterator<Item = Processor> + 'm {
        self.entries(mem).filter_map(|e| match e {
            Ok(MadtEntry::Processor(p)) if p.usable() => Some(p),
            _ => None,
        })
    }
}

/// Iterator over [`MadtEntry`]s; see [`Madt::entries`].
pub struct MadtEntries<'m, M> {
    inner: Subtables<'m, M>,
    revision: u8,
}

impl<M: PhysRead> Iterator for MadtEntries<'_, M> {
    type Item = Result<MadtEntry, AcpiError>;

    fn next(&mut self) -> Option<Self::Item> {
        let sub = match self.inner.next()? {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        Some(decode(&sub, self.revision))
    }
}

fn processor_flags(flags: u32, revision: u8) -> (bool, bool) {
    let enabled = flags & PROC_ENABLED != 0;
    let online_capable =
        revision >= ONLINE_CAPABLE_REVISION && !enabled && flags & PROC_ONLINE_CAPABLE != 0;
    (enabled, online_capable)
}

fn decode(s: &Subtable, revision: u8) -> Result<MadtEntry, AcpiError> {
    let sig = Signature::MADT;
    let need = |(_, min): (u8, u8)| s.require(sig, min);
    Ok(match s.kind {
        k if k == LOCAL_APIC.0 => {
            need(LOCAL_APIC)?;
            let (enabled, online_capable) = processor_flags(s.u32(4), revision);
            MadtEntry::Processor(Processor {
                apic_id: ApicId(u32::from(s.u8(3))),
                uid: u32::from(s.u8(2)),
                enabled,
                online_capable,
                x2apic: false,
            })
        }
        k if k == LOCAL_X2APIC.0 => {
            need(LOCAL_X2APIC)?;
            let (enabled, online_capable) = processor_flags(s.u32(8), revision);
            MadtEntry::Processor(Processor {
                apic_id: ApicId(s.u32(4)),
                uid: s.u32(12),
                enabled,
                online_capable,
                x2apic: true,
            })
        }
        k if k == IO_APIC.0 => {
            need(IO_APIC)?;
            MadtEntry::IoApic(IoApic {
                id: s.u8(2),
                address: PhysAddr(u64::from(s.u32(4))),
                gsi_base: s.u32(8),
            })
        }
        k if k == SOURCE_OVERRIDE.0 => {
            need(SOURCE_OVERRIDE)?;
            MadtEntry::SourceOverride(SourceOverride {
                bus: s.u8(2),
                source: s.u8(3),
                gsi: s.u32(4),
                flags: s.u16(8),
            })
        }
        k if k == LAPIC_ADDRESS_OVERRIDE.0 => {
            need(LAPIC_ADDRESS_OVERRIDE)?;
            MadtEntry::LapicAddressOverride(PhysAddr(s.u64(4)))
        }
        kind => MadtEntry::Other { kind, len: s.len },
    })
}

#[cfg(test)]
mod tests {
    use super::{Madt, MadtEntry, Polarity, Processor, SourceOverride, Trigger};
    use crate::acpi::{AcpiError, Sdt, Signature};
    use crate::testutil::{m_iso, m_lapic, m_lapic_nmi, m_x2apic, madt_body, table, TestMem};
    use crate::{ApicId, PhysAddr};

    fn load(rev: u8, body: &[u8]) -> Result<(TestMem, Madt), AcpiError> {
        let mut mem = TestMem::default();
        mem.put(0x1000, &table(b"APIC", rev, body));
        let sdt = Sdt::load(&mem, PhysAddr(0x1000), Signature::MADT, 44)?;
        let m = Madt::from_sdt(&mem, sdt)?;
        Ok((mem, m))
    }

    #[test]
    fn decodes_processors_ioapic_overrides_and_skips_unknown() {
        let body = madt_body(
            0xFEE0_0000,
            1,
            &[
                m_lapic(0, 0, 1),
                m_lapic(1, 1, 0),
                m_x2apic(0x300, 1, 7),
                crate::testutil::m_ioapic(0, 0xFEC0_0000, 0),
                m_iso(9, 9, 0xD),
                m_lapic_nmi(0xFF, 0, 1),
            ],
        );
        let (mem, m) = load(1, &body).unwrap();
        assert_eq!(m.lapic_address, PhysAddr(0xFEE0_0000));
        assert_eq!(m.flags, 1);
        let all: Vec<MadtEntry> = m.entries(&mem).map(Result::unwrap).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(
            all[2],
            MadtEntry::Processor(Processor {
                apic_id: ApicId(0x300),
                uid: 7,
                enabled: true,
                online_capable: false,
                x2apic: true
            })
        );
        let MadtEntry::IoApic(io) = all[3] else {
            panic!("{:?}", all[3])
        };
        assert_eq!((io.address, io.gsi_base), (PhysAddr(0xFEC0_0000), 0));
        let MadtEntry::SourceOverride(o) = all[4] else {
            panic!("{:?}", all[4])
        };
        assert_eq!((o.source, o.gsi), (9, 9));
        assert_eq!(
            (o.polarity(), o.trigger()),
            (Polarity::ActiveHigh, Trigger::Level)
        );
        assert_eq!(all[5], MadtEntry::Other { kind: 4, len: 6 });
        let ids: Vec<u32> = m.processors(&mem).map(|p| p.apic_id.0).collect();
        assert_eq!(ids, [0, 0x300]);
    }

    #[test]
    fn online_capable_needs_revision_5_and_broadcast_ids_are_skipped() {
        let entries = [m_lapic(0, 0, 1), m_lapic(1, 1, 2), m_lapic(2, 0xFF, 1)];
        let (mem, m) = load(5, &madt_body(0xFEE0_0000, 0, &entries)).unwrap();
        let p: Vec<Processor> = m.processors(&mem).collect();
        assert_eq!(p.len(), 2);
        assert!(p[1].online_capable && !p[1].enabled);
        let (mem, m) = load(4, &madt_body(0xFEE0_0000, 0, &entries)).unwrap();
        assert_eq!(m.processors(&mem).count(), 1);
    }

    #[test]
    fn lapic_address_override_wins() {
        let mut ovr = vec![5, 12, 0, 0];
        ovr.extend_from_slice(&0x1_FEE0_0000u64.to_le_bytes());
        let (_, m) = load(3, &madt_body(0xFEE0_0000, 0, &[ovr])).unwrap();
        assert_eq!(m.lapic_address, PhysAddr(0x1_FEE0_0000));
    }

    #[test]
    fn malformed_entries_are_errors_not_loops() {
        // Entry length 0: must not loop forever.
        let zero = madt_body(0xFEE0_0000, 0, &[m_lapic(0, 0, 1), vec![0, 0, 0, 0]]);
        assert!(matches!(
            load(1, &zero),
            Err(AcpiError::EntryTooShort {
                len: 0,
                offset: 52,
                ..
            })
        ));
        // Entry length 1.
        let one = madt_body(0, 0, &[vec![7, 1]]);
        assert!(matches!(
            load(1, &one),
            Err(AcpiError::EntryTooShort { len: 1, .. })
        ));
        // Entry claims to run past the table.
        let over = madt_body(0, 0, &[vec![0, 200, 0, 0, 1, 0, 0, 0]]);
        assert!(matches!(
            load(1, &over),
            Err(AcpiError::EntryOverrun { .. })
        ));
        // A local APIC entry shorter than its type requires.
        let short = madt_body(0, 0, &[vec![0, 6, 0, 0, 1, 0]]);
        assert!(matches!(
            load(1, &short),
            Err(AcpiError::EntryTooShort {
                kind: 0,
                len: 6,
                ..
            })
        ));
        // A single trailing byte.
        let trail = madt_body(0, 0, &[m_lapic(0, 0, 1), vec![0]]);
        assert!(matches!(
            load(1, &trail),
            Err(AcpiError::EntryOverrun { .. })
        ));
        // Zero entries is valid and yields no processors.
        let (mem, m) = load(1, &madt_body(0xFEE0_0000, 0, &[])).unwrap();
        assert_eq!(m.entries(&mem).count(), 0);
        // Shorter than the fixed part.
        assert!(matches!(
            load(1, &[0u8; 4]),
            Err(AcpiError::TableTooShort { .. })
        ));
    }

    #[test]
    fn polarity_and_trigger_decode_every_value() {
        let o = |flags| SourceOverride {
            bus: 0,
            source: 0,
            gsi: 2,
            flags,
        };
        assert_eq!(o(0).polarity(), Polarity::BusDefault);
        assert_eq!(o(3).polarity(), Polarity::ActiveLow);
        assert_eq!(o(0b0100).trigger(), Trigger::Edge);
        assert_eq!(o(0b1000).trigger(), Trigger::Reserved);
    }
}
