//! FADT ("FACP"): the few fixed-hardware registers the memory hot-plug
//! driver needs without an AML interpreter: the SCI interrupt, the GPE0
//! block (QEMU signals DIMM insertion on GPE0 bit 3) and the PM1a event
//! and control blocks (SCI_EN lives in PM1a control); and the reset
//! register, with which a test image resets the machine when its run ends.
//!
//! Pattern: one validated read of the fixed part. For each block the
//! 64-bit extended field (a Generic Address Structure) wins when the table
//! is long enough to hold it and its address is non-zero; otherwise the
//! legacy 32-bit I/O port field is used (ACPI 6.5 §5.2.9: "If the X_ field
//! is non-zero, OSPM uses it and ignores the legacy field").
//!
//! Reference: ACPI 6.5 §5.2.9 (Table 5.9, FADT format), §5.2.3.2 (Table
//! 5.1, Generic Address Structure).

use crate::acpi::{le_u32, le_u64, AcpiError, RootTable, Sdt, Signature};
use crate::PhysRead;

/// An ACPI 1.0 FADT is 116 bytes and already holds every legacy field we
/// read (the last one, GPE0_BLK_LEN, is at offset 92).
pub const FADT_MIN_LEN: u32 = 116;

/// Bytes of the fixed part we read: through X_GPE0_BLK (offset 220 + 12).
const FADT_READ_LEN: usize = 232;

// Legacy field offsets (Table 5.9).
const SCI_INT: usize = 46;
const PM1A_EVT_BLK: usize = 56;
const PM1A_CNT_BLK: usize = 64;
const GPE0_BLK: usize = 80;
const PM1_EVT_LEN: usize = 88;
const PM1_CNT_LEN: usize = 89;
const GPE0_BLK_LEN: usize = 92;
// Extended (GAS) field offsets (Table 5.9, ACPI 2.0+).
const X_PM1A_EVT_BLK: usize = 148;
const X_PM1A_CNT_BLK: usize = 172;
const X_GPE0_BLK: usize = 220;
const GAS_LEN: usize = 12;
const FLAGS: usize = 112;
/// FADT Flags bit: RESET_REG and RESET_VALUE are valid.
const RESET_REG_SUP: u32 = 1 << 10;
const RESET_REG: usize = 116;
const RESET_VALUE: usize = 128;

/// The address space of a register block (Table 5.1 "Address Space ID").
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AddressSpace {
    SystemMemory,
    SystemIo,
    /// PCI configuration space, embedded controller, …: not usable without
    /// more machinery; reported so the caller can say so.
    Other(u8),
}

impl AddressSpace {
    fn from_raw(raw: u8) -> Self {
        match raw {
            0 => AddressSpace::SystemMemory,
            1 => AddressSpace::SystemIo,
            other => AddressSpace::Other(other),
        }
    }
}

/// A fixed-hardware register block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RegisterBlock {
    pub space: AddressSpace,
    pub address: u64,
    /// Block length in bytes, from the legacy `*_LEN` field (the GAS bit
    /// width is not reliable for blocks; Linux uses the legacy length too).
    pub len: u8,
}

/// What the FADT tells the memory hot-plug driver.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fadt {
    pub sdt: Sdt,
    /// The SCI's interrupt: an ISA IRQ on 8259 systems, else a GSI (QEMU:
    /// 9, level, active high; check MADT overrides).
    pub sci_int: u16,
    pub pm1a_event: Option<RegisterBlock>,
    pub pm1a_control: Option<RegisterBlock>,
    /// General-purpose event block 0; half status, half enable.
    pub gpe0: Option<RegisterBlock>,
    /// The reset register, when the table says it is supported.
    pub reset: Option<ResetRegister>,
}

/// Writing `value` to this register resets the machine (§4.8.3.6).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    pub space: AddressSpace,
    pub address: u64,
    pub value: u8,
}

impl Fadt {
    /// Finds and reads the FADT.
    ///
    /// # Errors
    /// Not found, or malformed.
    pub fn find(mem: &impl PhysRead, root: &RootTable) -> Result<Fadt, AcpiError> {
        let sdt = root.find(mem, Signature::FADT, FADT_MIN_LEN)?;
        Fadt::from_sdt(mem, sdt)
    }

    /// Reads the fields from an already checksummed table.
    ///
    /// # Errors
    /// Wrong signature or shorter than an ACPI 1.0 FADT.
    pub fn from_sdt(mem: &impl PhysRead, sdt: Sdt) -> Result<Fadt, AcpiError> {
        if sdt.signature != Signature::FADT {
            return Err(AcpiError::BadSignature {
                at: sdt.at,
                expected: Signature::FADT,
                found: sdt.signature,
            });
        }
        if sdt.length < FADT_MIN_LEN {
            return Err(AcpiError::TableTooShort {
                sig: sdt.signature,
                len: sdt.length,
                min: FADT_MIN_LEN,
            });
        }
        // Read what the table has of the first 232 bytes; the rest stays 0
        // and therefore means "no extended field".
        let mut b = [0u8; FADT_READ_LEN];
        let have = (sdt.length as usize).min(FADT_READ_LEN);
        sdt.read(mem, 0, &mut b[..have])?;
        let block = |legacy: usize, x: usize, len: usize| {
            let len = b[len];
            let ext = if have >= x + GAS_LEN {
                le_u64(&b, x + 4)
            } else {
                0
            };
            if ext != 0 {
                return Some(RegisterBlock {
                    space: AddressSpace::from_raw(b[x]),
                    address: ext,
                    len,
                });
            }
            let port = le_u32(&b, legacy);
            (port != 0).then_some(RegisterBlock {
                space: AddressSpace::SystemIo,
                address: u64::from(port),
                len,
            })
        };
        let reset = (have > RESET_VALUE
            && le_u32(&b, FLAGS) & RESET_REG_SUP != 0
            && le_u64(&b, RESET_REG + 4) != 0)
            .then(|| ResetRegister {
                space: AddressSpace::from_raw(b[RESET_REG]),
                address: le_u64(&b, RESET_REG + 4),
                value: b[RESET_VALUE],
            });
        Ok(Fadt {
            sdt,
            reset,
            sci_int: u16::from_le_bytes([b[SCI_INT], b[SCI_INT + 1]]),
            pm1a_event: block(PM1A_EVT_BLK, X_PM1A_EVT_BLK, PM1_EVT_LEN),
            pm1a_control: block(PM1A_CNT_BLK, X_PM1A_CNT_BLK, PM1_CNT_LEN),
            gpe0: block(GPE0_BLK, X_GPE0_BLK, GPE0_BLK_LEN),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{AddressSpace, Fadt, RegisterBlock};
    use crate::acpi::{AcpiError, Sdt, Signature};
    use crate::testutil::{table, TestMem};
    use crate::PhysAddr;

    fn gas(space: u8, bits: u8, addr: u64) -> [u8; 12] {
        let mut g = [0u8; 12];
        g[0] = space;
        g[1] = bits;
        g[3] = 1;
        g[4..].copy_from_slice(&addr.to_le_bytes());
        g
    }

    /// A FADT body as QEMU 7.2 q35 builds it (revision 3, 244 bytes, ICH9
    /// PMBASE 0x600): SCI 9, PM1a_EVT 0x600/4, PM1a_CNT 0x604/2, GPE0
    /// 0x620/16, with matching X_ fields.
    pub(crate) fn q35_fadt_body(with_x: bool) -> Vec<u8> {
        let mut t = vec![0u8; 244 - 36];
        let mut put = |off: usize, v: &[u8]| t[off - 36..off - 36 + v.len()].copy_from_slice(v);
        put(46, &9u16.to_le_bytes());
        put(56, &0x600u32.to_le_bytes());
        put(64, &0x604u32.to_le_bytes());
        put(76, &0x608u32.to_le_bytes());
        put(80, &0x620u32.to_le_bytes());
        put(88, &[4, 2, 0, 4, 16]);
        // Flags: RESET_REG_SUP; RESET_REG = I/O 0xCF9, RESET_VALUE 0x0F.
        put(112, &(1u32 << 10).to_le_bytes());
        put(116, &gas(1, 8, 0xCF9));
        put(128, &[0x0F]);
        if with_x {
            put(148, &gas(1, 32, 0x600));
            put(172, &gas(1, 16, 0x604));
            put(220, &gas(1, 128, 0x620));
        }
        t
    }

    fn load(body: &[u8]) -> Result<Fadt, AcpiError> {
        let mut mem = TestMem::default();
        mem.put(0x3000, &table(b"FACP", 3, body));
        let sdt = Sdt::load(&mem, PhysAddr(0x3000), Signature::FADT, 0)?;
        Fadt::from_sdt(&mem, sdt)
    }

    #[test]
    fn q35_values_from_legacy_and_extended_fields() {
        for with_x in [false, true] {
            let f = load(&q35_fadt_body(with_x)).unwrap();
            assert_eq!(f.sci_int, 9);
            assert_eq!(
                f.reset,
                Some(super::ResetRegister {
                    space: AddressSpace::SystemIo,
                    address: 0xCF9,
                    value: 0x0F,
                })
            );
            let io = |address, len| {
                Some(RegisterBlock {
                    space: AddressSpace::SystemIo,
                    address,
                    len,
                })
            };
            assert_eq!(f.pm1a_event, io(0x600, 4));
            assert_eq!(f.pm1a_control, io(0x604, 2));
            assert_eq!(f.gpe0, io(0x620, 16));
        }
    }

    #[test]
    fn extended_field_wins_and_short_tables_use_legacy() {
        let mut body = q35_fadt_body(false);
        body[220 - 36..232 - 36].copy_from_slice(&gas(0, 128, 0xFE00_0000));
        let f = load(&body).unwrap();
        assert_eq!(
            f.gpe0,
            Some(RegisterBlock {
                space: AddressSpace::SystemMemory,
                address: 0xFE00_0000,
                len: 16
            })
        );
        // ACPI 1.0 length: the extended fields are absent, not read.
        let mut v1 = q35_fadt_body(true);
        v1.truncate(116 - 36);
        let f = load(&v1).unwrap();
        assert_eq!(f.gpe0.unwrap().address, 0x620);
        // Shorter than ACPI 1.0.
        v1.truncate(90 - 36);
        assert!(matches!(load(&v1), Err(AcpiError::TableTooShort { .. })));
        // No GPE0 block at all.
        let mut none = q35_fadt_body(false);
        none[80 - 36..84 - 36].fill(0);
        assert_eq!(load(&none).unwrap().gpe0, None);
    }
}
