//! PAMT vocabulary: page types, page sizes, KOT states and PAMT sizing (§5.5, §6, §7.3).
//!
//! Invariant: [`pamt_bytes`] is the allocation a host should make (rounded up to 4 KiB, as the
//! module requires PAMT sizes to be 4 KiB multiples); [`pamt_min_bytes`] is the exact lower bound
//! SYS.CONFIG enforces (`(tdmr_size / page_size) × entry_size`, §6).

use crate::consts::PAGE_SIZE_4K;

/// PAMT page type (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PageType {
    /// Not assigned (free for the host to hand to the module).
    Nda = 0,
    /// Reserved area (including PAMT itself).
    Rsvd = 1,
    /// TD private page.
    Reg = 3,
    /// TD root.
    Tdr = 4,
    /// TD control-structure page.
    Tdcx = 5,
    /// vCPU root.
    Tdvpr = 6,
    /// Secure-EPT page.
    Ept = 8,
}

impl PageType {
    /// Decode; `None` for unknown values.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<PageType> {
        Some(match v {
            0 => PageType::Nda,
            1 => PageType::Rsvd,
            3 => PageType::Reg,
            4 => PageType::Tdr,
            5 => PageType::Tdcx,
            6 => PageType::Tdvpr,
            8 => PageType::Ept,
            _ => return None,
        })
    }
}

/// Page size / PAMT level (§5.5: PT_4KB 0, PT_2MB 1, PT_1GB 2; also the config-error level byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PageSize {
    /// 4 KiB.
    Size4K = 0,
    /// 2 MiB.
    Size2M = 1,
    /// 1 GiB.
    Size1G = 2,
}

impl PageSize {
    /// Levels in SYS.CONFIG check order (1G, 2M, 4K; §6).
    pub const CONFIG_ORDER: [PageSize; 3] = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K];

    /// log2 of the page size.
    #[must_use]
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// Page size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// Level number.
    #[must_use]
    pub const fn level(self) -> u8 {
        self as u8
    }

    /// Decode a level number.
    #[must_use]
    pub const fn from_level(v: u64) -> Option<PageSize> {
        match v {
            0 => Some(PageSize::Size4K),
            1 => Some(PageSize::Size2M),
            2 => Some(PageSize::Size1G),
            _ => None,
        }
    }
}

/// KeyID Ownership Table entry state (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KotState {
    /// Free.
    HkidFree = 0,
    /// Assigned to a TD.
    Assigned = 1,
    /// Flushed, awaiting CACHE.WB.
    Flushed = 2,
    /// Reserved (the global KeyID after SYS.CONFIG).
    Reserved = 3,
}

/// Exact minimum PAMT bytes SYS.CONFIG accepts for a level: `(tdmr_size >> shift) × entry_size`.
#[must_use]
pub const fn pamt_min_bytes(tdmr_size: u64, level: PageSize, entry_size: u64) -> u64 {
    (tdmr_size >> level.shift()).saturating_mul(entry_size)
}

/// PAMT bytes to allocate for one level: the minimum rounded up to 4 KiB (§7.3).
///
/// For 1 GiB of TDMR with 16-byte entries: 4 MiB (4K), 8 KiB (2M), 4 KiB (1G).
#[must_use]
pub const fn pamt_bytes(tdmr_size: u64, level: PageSize, entry_size: u64) -> u64 {
    let min = pamt_min_bytes(tdmr_size, level, entry_size);
    min.div_ceil(PAGE_SIZE_4K).saturating_mul(PAGE_SIZE_4K)
}

/// Total PAMT bytes for a TDMR over all three levels, with per-level entry sizes `[4K, 2M, 1G]`.
#[must_use]
pub const fn tdmr_pamt_bytes(tdmr_size: u64, entry_sizes: [u64; 3]) -> u64 {
    pamt_bytes(tdmr_size, PageSize::Size4K, entry_sizes[0])
        + pamt_bytes(tdmr_size, PageSize::Size2M, entry_sizes[1])
        + pamt_bytes(tdmr_size, PageSize::Size1G, entry_sizes[2])
}

#[cfg(test)]
mod tests {
    use super::{pamt_bytes, pamt_min_bytes, tdmr_pamt_bytes, PageSize, PageType};
    use crate::consts::{GIB, KIB, MIB};

    #[test]
    fn one_gib_needs_about_1_256() {
        assert_eq!(pamt_bytes(GIB, PageSize::Size4K, 16), 4 * MIB);
        assert_eq!(pamt_bytes(GIB, PageSize::Size2M, 16), 8 * KIB);
        assert_eq!(pamt_bytes(GIB, PageSize::Size1G, 16), 4 * KIB);
        assert_eq!(pamt_min_bytes(GIB, PageSize::Size1G, 16), 16);
        assert_eq!(tdmr_pamt_bytes(GIB, [16; 3]), 4 * MIB + 12 * KIB);
        assert_eq!(pamt_bytes(300 * GIB, PageSize::Size1G, 16), 8 * KIB);
        assert_eq!(pamt_bytes(0, PageSize::Size4K, 16), 0);
    }

    #[test]
    fn page_types_and_levels() {
        assert_eq!(PageType::from_u8(8), Some(PageType::Ept));
        assert_eq!(PageType::from_u8(2), None);
        assert_eq!(PageSize::from_level(2), Some(PageSize::Size1G));
        assert_eq!(PageSize::Size2M.bytes(), 2 * MIB);
    }
}
