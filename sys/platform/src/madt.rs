//! MADT ("APIC"): processors, I/O APICs, interrupt source overrides, local
//! NMI wiring.
//!
//! Pattern: [`Madt::from_sdt`] walks every subtable once. A walk that
//! cannot continue (a length below 2, an entry running past the table) is
//! an error for the whole table. An entry of a known type that is shorter
//! than its type's layout is skipped and counted in [`Madt::skipped`]: its
//! fields cannot be trusted, but the walk is still in step, so the other
//! entries are kept. An entry longer than its layout is decoded from its
//! known prefix and skipped by its length (later spec revisions append
//! fields that way), as are unknown types. [`Madt::entries`] then decodes
//! lazily through [`PhysRead`] (no copy of the table on the boot stack).
//!
//! Processors come as Processor Local APIC (type 0, 8-bit ids) and, from
//! ACPI 4.0, Processor Local x2APIC (type 9, 32-bit ids) entries. The spec
//! asks firmware for type 9 where an id does not fit in 8 bits (255 and
//! up), but allows either for small ids, and some firmware lists a CPU in
//! both: the record builder counts it once. The "no processor" marker is
//! the all-ones id of the entry's width (0xFF for type 0, 0xFFFF_FFFF for
//! type 9); id 255 is therefore only expressible with type 9.
//!
//! Reference: ACPI 6.5 §5.2.12 "Multiple APIC Description Table" and its
//! sections "Processor Local APIC Structure", "I/O APIC Structure",
//! "Interrupt Source Override Structure", "Local APIC NMI Structure",
//! "Local APIC Address Override Structure", "Processor Local x2APIC
//! Structure" and "Local x2APIC NMI Structure".

use crate::acpi::{
    AcpiError, RootTable, Sdt, Signature, SkippedEntries, Subtable, Subtables, SDT_HEADER_LEN,
};
use crate::{ApicId, PhysAddr, PhysRead};

/// Header (36) + Local Interrupt Controller Address (4) + Flags (4).
pub const MADT_MIN_LEN: u32 = SDT_HEADER_LEN + 8;

/// Processor flags bit 0: the processor is usable now (Table 5.23).
const PROC_ENABLED: u32 = 1 << 0;
/// Processor flags bit 1: may be enabled at run time. Defined from MADT
/// revision 5 (ACPI 6.3); reserved (and ignored here) before.
const PROC_ONLINE_CAPABLE: u32 = 1 << 1;
const ONLINE_CAPABLE_REVISION: u8 = 5;

/// Subtable types (Table 5.21) this parser decodes.
const LOCAL_APIC: u8 = 0;
const IO_APIC: u8 = 1;
const SOURCE_OVERRIDE: u8 = 2;
const LOCAL_APIC_NMI: u8 = 4;
const LAPIC_ADDRESS_OVERRIDE: u8 = 5;
const LOCAL_X2APIC: u8 = 9;
const LOCAL_X2APIC_NMI: u8 = 10;

/// The length of a decoded type's layout in the spec; a shorter entry is
/// skipped. `None` for types this parser does not decode.
const fn layout_len(kind: u8) -> Option<u8> {
    match kind {
        LOCAL_APIC => Some(8),
        IO_APIC => Some(12),
        SOURCE_OVERRIDE => Some(10),
        LOCAL_APIC_NMI => Some(6),
        LAPIC_ADDRESS_OVERRIDE => Some(12),
        // Type(1) Length(1) Reserved(2) x2APIC id(4) Flags(4) UID(4).
        LOCAL_X2APIC => Some(16),
        // Type(1) Length(1) INTI flags(2) UID(4) LINT#(1) Reserved(3).
        LOCAL_X2APIC_NMI => Some(12),
        _ => None,
    }
}

/// Whether a skipped entry of this type may have named a processor.
const fn names_processor(kind: u8) -> bool {
    matches!(kind, LOCAL_APIC | LOCAL_X2APIC)
}

/// The processor UID that means "every processor" in a local NMI entry:
/// all ones of the UID field's width.
const ALL_PROCESSORS_UID8: u8 = 0xFF;
const ALL_PROCESSORS_UID32: u32 = u32::MAX;

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

fn polarity_of(flags: u16) -> Polarity {
    match flags & 3 {
        0 => Polarity::BusDefault,
        1 => Polarity::ActiveHigh,
        2 => Polarity::Reserved,
        _ => Polarity::ActiveLow,
    }
}

fn trigger_of(flags: u16) -> Trigger {
    match (flags >> 2) & 3 {
        0 => Trigger::BusDefault,
        1 => Trigger::Edge,
        2 => Trigger::Reserved,
        _ => Trigger::Level,
    }
}

impl SourceOverride {
    #[must_use]
    pub fn polarity(&self) -> Polarity {
        polarity_of(self.flags)
    }

    #[must_use]
    pub fn trigger(&self) -> Trigger {
        trigger_of(self.flags)
    }
}

/// The processors a local NMI entry is for, by ACPI processor UID (the
/// `uid` of [`Processor`], not its APIC id).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NmiProcessors {
    All,
    Uid(u32),
}

/// Which local APIC interrupt input (LINT0 or LINT1) the NMI line reaches,
/// on which processors: "Local APIC NMI Structure" (type 4, 8-bit UID) and
/// "Local x2APIC NMI Structure" (type 10, 32-bit UID). The spec wants type
/// 10 for processors with ids of 255 and up, and for the "all processors"
/// form as soon as any such processor exists.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LocalNmi {
    pub processors: NmiProcessors,
    /// MPS INTI flags (Table 5.26).
    pub flags: u16,
    /// The LINT input number, as the table gives it (0 or 1 on x86;
    /// anything else is the consumer's to reject).
    pub lint: u8,
    /// From a type 10 (x2APIC) entry.
    pub x2apic: bool,
}

impl LocalNmi {
    #[must_use]
    pub fn polarity(&self) -> Polarity {
        polarity_of(self.flags)
    }

    #[must_use]
    pub fn trigger(&self) -> Trigger {
        trigger_of(self.flags)
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
    /// Types 4 and 10.
    LocalNmi(LocalNmi),
    /// A known type shorter than its layout
    /// ([`AcpiError::EntryTooShort`]); skipped, see [`Madt::skipped`].
    Malformed(AcpiError),
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
    /// Entries of known types skipped for being too short.
    pub skipped: SkippedEntries,
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
            skipped: SkippedEntries::default(),
        };
        for e in madt.entries(mem) {
            match e? {
                MadtEntry::LapicAddressOverride(a) => madt.lapic_address = a,
                MadtEntry::Malformed(err) => {
                    let processor = match err {
                        AcpiError::EntryTooShort { kind, .. } => names_processor(kind),
                        _ => false,
                    };
                    madt.skipped.note(err, processor);
                }
                _ => {}
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
        Some(Ok(decode(&sub, self.revision)))
    }
}

fn processor_flags(flags: u32, revision: u8) -> (bool, bool) {
    let enabled = flags & PROC_ENABLED != 0;
    let online_capable =
        revision >= ONLINE_CAPABLE_REVISION && !enabled && flags & PROC_ONLINE_CAPABLE != 0;
    (enabled, online_capable)
}

fn decode(s: &Subtable, revision: u8) -> MadtEntry {
    if let Some(min) = layout_len(s.kind) {
        if let Err(e) = s.require(Signature::MADT, min) {
            return MadtEntry::Malformed(e);
        }
    }
    match s.kind {
        LOCAL_APIC => {
            let (enabled, online_capable) = processor_flags(s.u32(4), revision);
            MadtEntry::Processor(Processor {
                apic_id: ApicId(u32::from(s.u8(3))),
                uid: u32::from(s.u8(2)),
                enabled,
                online_capable,
                x2apic: false,
            })
        }
        LOCAL_X2APIC => {
            let (enabled, online_capable) = processor_flags(s.u32(8), revision);
            MadtEntry::Processor(Processor {
                apic_id: ApicId(s.u32(4)),
                uid: s.u32(12),
                enabled,
                online_capable,
                x2apic: true,
            })
        }
        IO_APIC => MadtEntry::IoApic(IoApic {
            id: s.u8(2),
            address: PhysAddr(u64::from(s.u32(4))),
            gsi_base: s.u32(8),
        }),
        SOURCE_OVERRIDE => MadtEntry::SourceOverride(SourceOverride {
            bus: s.u8(2),
            source: s.u8(3),
            gsi: s.u32(4),
            flags: s.u16(8),
        }),
        LOCAL_APIC_NMI => {
            let uid = s.u8(2);
            MadtEntry::LocalNmi(LocalNmi {
                processors: if uid == ALL_PROCESSORS_UID8 {
                    NmiProcessors::All
                } else {
                    NmiProcessors::Uid(u32::from(uid))
                },
                flags: s.u16(3),
                lint: s.u8(5),
                x2apic: false,
            })
        }
        LOCAL_X2APIC_NMI => {
            let uid = s.u32(4);
            MadtEntry::LocalNmi(LocalNmi {
                processors: if uid == ALL_PROCESSORS_UID32 {
                    NmiProcessors::All
                } else {
                    NmiProcessors::Uid(uid)
                },
                flags: s.u16(2),
                lint: s.u8(8),
                x2apic: true,
            })
        }
        LAPIC_ADDRESS_OVERRIDE => MadtEntry::LapicAddressOverride(PhysAddr(s.u64(4))),
        kind => MadtEntry::Other { kind, len: s.len },
    }
}

#[cfg(test)]
mod tests {
    use super::{
        LocalNmi, Madt, MadtEntry, NmiProcessors, Polarity, Processor, SourceOverride, Trigger,
    };
    use crate::acpi::{AcpiError, Sdt, Signature};
    use crate::testutil::{
        m_iso, m_lapic, m_lapic_nmi, m_x2apic, m_x2apic_nmi, madt_body, resize, table, TestMem,
    };
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
        assert_eq!(
            all[5],
            MadtEntry::LocalNmi(LocalNmi {
                processors: NmiProcessors::All,
                flags: 0,
                lint: 1,
                x2apic: false
            })
        );
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

    #[test]
    fn x2apic_processors_carry_32_bit_ids_uids_and_flags() {
        let entries = [
            m_x2apic(0x1_0000, 1, 0xDEAD_BEEF),
            // Id 255 is a real processor in an x2APIC entry.
            m_x2apic(255, 1, 1),
            // Online-capable (revision 5), not enabled.
            m_x2apic(600, 2, 2),
            // The all-ones x2APIC id means "no processor", enabled or not.
            m_x2apic(u32::MAX, 1, 3),
            // Neither enabled nor online-capable: not usable.
            m_x2apic(601, 0, 4),
        ];
        let (mem, m) = load(5, &madt_body(0xFEE0_0000, 0, &entries)).unwrap();
        let p: Vec<Processor> = m.processors(&mem).collect();
        let got: Vec<(u32, u32, bool, bool)> = p
            .iter()
            .map(|p| (p.apic_id.0, p.uid, p.enabled, p.online_capable))
            .collect();
        assert_eq!(
            got,
            [
                (0x1_0000, 0xDEAD_BEEF, true, false),
                (255, 1, true, false),
                (600, 2, false, true)
            ]
        );
        assert!(p.iter().all(|p| p.x2apic));
        assert_eq!(m.skipped.count, 0);
    }

    #[test]
    fn x2apic_nmi_entries_decode_uid_lint_and_flags() {
        let entries = [
            m_x2apic_nmi(u32::MAX, 0xD, 1),
            m_x2apic_nmi(600, 0xF, 0),
            m_lapic_nmi(3, 0x5, 1),
        ];
        let (mem, m) = load(3, &madt_body(0xFEE0_0000, 0, &entries)).unwrap();
        let nmis: Vec<LocalNmi> = m
            .entries(&mem)
            .map(|e| match e {
                Ok(MadtEntry::LocalNmi(n)) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            (nmis[0].processors, nmis[0].lint, nmis[0].x2apic),
            (NmiProcessors::All, 1, true)
        );
        assert_eq!(
            (nmis[0].polarity(), nmis[0].trigger()),
            (Polarity::ActiveHigh, Trigger::Level)
        );
        assert_eq!(
            (nmis[1].processors, nmis[1].lint, nmis[1].polarity()),
            (NmiProcessors::Uid(600), 0, Polarity::ActiveLow)
        );
        assert_eq!(
            (nmis[2].processors, nmis[2].x2apic, nmis[2].trigger()),
            (NmiProcessors::Uid(3), false, Trigger::Edge)
        );
    }

    #[test]
    fn short_entries_of_known_types_are_skipped_counted_and_the_rest_kept() {
        let entries = [
            m_lapic(0, 0, 1),
            resize(m_x2apic(0x300, 1, 1), 15),
            resize(m_x2apic_nmi(u32::MAX, 0, 1), 11),
            resize(m_lapic(2, 2, 1), 6),
            m_x2apic(0x301, 1, 2),
        ];
        let (mem, m) = load(1, &madt_body(0xFEE0_0000, 0, &entries)).unwrap();
        let ids: Vec<u32> = m.processors(&mem).map(|p| p.apic_id.0).collect();
        assert_eq!(ids, [0, 0x301]);
        assert_eq!(m.skipped.count, 3);
        assert!(m.skipped.lost_placement, "a processor entry was skipped");
        assert_eq!(
            m.skipped.first,
            Some(AcpiError::EntryTooShort {
                sig: Signature::MADT,
                offset: 52,
                kind: 9,
                len: 15
            })
        );
        let kinds: Vec<u8> = m
            .entries(&mem)
            .filter_map(|e| match e {
                Ok(MadtEntry::Malformed(AcpiError::EntryTooShort { kind, .. })) => Some(kind),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, [9, 10, 0]);
        // Only an NMI entry skipped: no processor can be missing.
        let nmi_only = [m_lapic(0, 0, 1), resize(m_x2apic_nmi(1, 0, 1), 2)];
        let (_, m) = load(1, &madt_body(0xFEE0_0000, 0, &nmi_only)).unwrap();
        assert_eq!((m.skipped.count, m.skipped.lost_placement), (1, false));
    }

    #[test]
    fn long_entries_are_decoded_from_their_known_prefix() {
        let entries = [
            resize(m_x2apic(0x300, 1, 7), 20),
            resize(m_x2apic_nmi(7, 0xD, 1), 16),
            m_lapic(1, 1, 1),
        ];
        let (mem, m) = load(1, &madt_body(0xFEE0_0000, 0, &entries)).unwrap();
        let all: Vec<MadtEntry> = m.entries(&mem).map(Result::unwrap).collect();
        let MadtEntry::Processor(p) = all[0] else {
            panic!("{:?}", all[0])
        };
        assert_eq!((p.apic_id, p.uid, p.enabled), (ApicId(0x300), 7, true));
        let MadtEntry::LocalNmi(n) = all[1] else {
            panic!("{:?}", all[1])
        };
        assert_eq!((n.processors, n.lint), (NmiProcessors::Uid(7), 1));
        let MadtEntry::Processor(p) = all[2] else {
            panic!("{:?}", all[2])
        };
        assert_eq!(p.apic_id, ApicId(1));
        assert_eq!(m.skipped.count, 0);
    }
}
