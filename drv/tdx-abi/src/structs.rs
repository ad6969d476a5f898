//! In-memory structures the module reads from physical memory (§5.1, §5.3).
//!
//! Pattern: `#[repr(C)]` plain-old-data with only `u64` fields, so the Rust layout *is* the packed
//! ABI layout (no padding exists to be packed away); `const` assertions pin sizes and alignments.
//! With the `zerocopy` feature the types derive `FromBytes`/`IntoBytes`/`Immutable`/`KnownLayout`,
//! so emulators and hosts convert to and from byte buffers without `unsafe`.
//!
//! Invariants: [`CmrInfo`] is 16 bytes; [`TdmrInfo`] is 64 + 16 × 16 = 320 bytes (all the module
//! reads); [`TdmrInfoBuf`] is 512 bytes and 512-aligned (Linux's per-TDMR allocation, §5.3).

use crate::consts::{GIB, MAX_RESERVED_PER_TDMR, TDMR_INFO_READ_BYTES, TDMR_INFO_SIZE};
use crate::pamt::PageSize;

#[cfg(feature = "zerocopy")]
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One Convertible Memory Range: `{base, size}`, both 4 KiB-aligned; size 0 = null entry (§5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[repr(C)]
pub struct CmrInfo {
    /// Physical base.
    pub base: u64,
    /// Size in bytes (0 = null entry).
    pub size: u64,
}

impl CmrInfo {
    /// A CMR `[base, base + size)`.
    #[must_use]
    pub const fn new(base: u64, size: u64) -> Self {
        CmrInfo { base, size }
    }

    /// Exclusive end, saturating (a wrapping CMR is invalid anyway).
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Null entry (size 0).
    #[must_use]
    pub const fn is_null(&self) -> bool {
        self.size == 0
    }
}

/// One reserved area of a TDMR: offset from the TDMR base and size; size 0 ends the list (§5.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[repr(C)]
pub struct ReservedArea {
    /// Offset from the TDMR base (4 KiB-aligned).
    pub offset: u64,
    /// Size (4 KiB-aligned; 0 = null).
    pub size: u64,
}

/// TDMR_INFO exactly as the module reads it (§5.3).
///
/// ```text
/// +0 base +8 size +16 pamt_1g_base +24 pamt_1g_size +32 pamt_2m_base +40 pamt_2m_size
/// +48 pamt_4k_base +56 pamt_4k_size +64 reserved[16] of {offset, size}
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[repr(C)]
pub struct TdmrInfo {
    /// TDMR base (1 GiB-aligned).
    pub base: u64,
    /// TDMR size (non-zero multiple of 1 GiB).
    pub size: u64,
    /// 1G-level PAMT base.
    pub pamt_1g_base: u64,
    /// 1G-level PAMT size.
    pub pamt_1g_size: u64,
    /// 2M-level PAMT base.
    pub pamt_2m_base: u64,
    /// 2M-level PAMT size.
    pub pamt_2m_size: u64,
    /// 4K-level PAMT base.
    pub pamt_4k_base: u64,
    /// 4K-level PAMT size.
    pub pamt_4k_size: u64,
    /// Reserved areas, sorted, non-overlapping, null-terminated (§6).
    pub reserved: [ReservedArea; MAX_RESERVED_PER_TDMR],
}

impl TdmrInfo {
    /// A TDMR with no PAMTs and no reserved areas.
    #[must_use]
    pub const fn new(base: u64, size: u64) -> Self {
        TdmrInfo {
            base,
            size,
            pamt_1g_base: 0,
            pamt_1g_size: 0,
            pamt_2m_base: 0,
            pamt_2m_size: 0,
            pamt_4k_base: 0,
            pamt_4k_size: 0,
            reserved: [ReservedArea { offset: 0, size: 0 }; MAX_RESERVED_PER_TDMR],
        }
    }

    /// Exclusive end, saturating.
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// `(base, size)` of the PAMT for `level`.
    #[must_use]
    pub const fn pamt(&self, level: PageSize) -> (u64, u64) {
        match level {
            PageSize::Size4K => (self.pamt_4k_base, self.pamt_4k_size),
            PageSize::Size2M => (self.pamt_2m_base, self.pamt_2m_size),
            PageSize::Size1G => (self.pamt_1g_base, self.pamt_1g_size),
        }
    }

    /// Set the PAMT for `level`.
    pub fn set_pamt(&mut self, level: PageSize, base: u64, size: u64) {
        match level {
            PageSize::Size4K => (self.pamt_4k_base, self.pamt_4k_size) = (base, size),
            PageSize::Size2M => (self.pamt_2m_base, self.pamt_2m_size) = (base, size),
            PageSize::Size1G => (self.pamt_1g_base, self.pamt_1g_size) = (base, size),
        }
    }

    /// Number of leading non-null reserved slots.
    #[must_use]
    pub fn reserved_count(&self) -> usize {
        self.reserved.iter().take_while(|r| r.size != 0).count()
    }

    /// Number of whole GiB covered.
    #[must_use]
    pub const fn gib(&self) -> u64 {
        self.size / GIB
    }

    /// Serialize to the module's little-endian byte layout (works without `zerocopy`).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; TDMR_INFO_READ_BYTES] {
        let mut out = [0u8; TDMR_INFO_READ_BYTES];
        let head = [
            self.base,
            self.size,
            self.pamt_1g_base,
            self.pamt_1g_size,
            self.pamt_2m_base,
            self.pamt_2m_size,
            self.pamt_4k_base,
            self.pamt_4k_size,
        ];
        let words = head
            .iter()
            .copied()
            .chain(self.reserved.iter().flat_map(|r| [r.offset, r.size]));
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Parse the module's byte layout (the inverse of [`TdmrInfo::to_bytes`]).
    #[must_use]
    pub fn from_bytes(bytes: &[u8; TDMR_INFO_READ_BYTES]) -> Self {
        let mut w = [0u64; TDMR_INFO_READ_BYTES / 8];
        for (slot, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *slot = u64::from_le_bytes(b);
        }
        let mut t = TdmrInfo::new(w[0], w[1]);
        (t.pamt_1g_base, t.pamt_1g_size) = (w[2], w[3]);
        (t.pamt_2m_base, t.pamt_2m_size) = (w[4], w[5]);
        (t.pamt_4k_base, t.pamt_4k_size) = (w[6], w[7]);
        for (j, r) in t.reserved.iter_mut().enumerate() {
            *r = ReservedArea {
                offset: w[8 + 2 * j],
                size: w[9 + 2 * j],
            };
        }
        t
    }
}

/// A [`TdmrInfo`] in Linux's 512-byte, 512-aligned slot (§5.3: TDMR_INFO_ALIGNMENT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "zerocopy",
    derive(FromBytes, IntoBytes, Immutable, KnownLayout)
)]
#[repr(C, align(512))]
pub struct TdmrInfoBuf {
    /// The TDMR_INFO the module reads.
    pub info: TdmrInfo,
    /// Padding to 512 bytes; the module never reads it.
    pub pad: [u8; TDMR_INFO_SIZE - TDMR_INFO_READ_BYTES],
}

impl TdmrInfoBuf {
    /// Wrap a TDMR_INFO.
    #[must_use]
    pub const fn new(info: TdmrInfo) -> Self {
        TdmrInfoBuf {
            info,
            pad: [0; TDMR_INFO_SIZE - TDMR_INFO_READ_BYTES],
        }
    }
}

impl Default for TdmrInfoBuf {
    fn default() -> Self {
        TdmrInfoBuf::new(TdmrInfo::default())
    }
}

const _: () = assert!(core::mem::size_of::<CmrInfo>() == 16);
const _: () = assert!(core::mem::size_of::<ReservedArea>() == 16);
const _: () = assert!(core::mem::size_of::<TdmrInfo>() == TDMR_INFO_READ_BYTES);
const _: () = assert!(core::mem::offset_of!(TdmrInfo, reserved) == 64);
const _: () = assert!(core::mem::offset_of!(TdmrInfo, pamt_4k_size) == 56);
const _: () = assert!(core::mem::size_of::<TdmrInfoBuf>() == TDMR_INFO_SIZE);
const _: () = assert!(core::mem::align_of::<TdmrInfoBuf>() == 512);

#[cfg(test)]
mod tests {
    use super::{PageSize, ReservedArea, TdmrInfo};

    #[test]
    fn bytes_roundtrip_and_offsets() {
        let mut t = TdmrInfo::new(0x4000_0000, 0x8000_0000);
        t.set_pamt(PageSize::Size2M, 0x1234_5000, 0x2000);
        t.reserved[15] = ReservedArea {
            offset: 0xAA,
            size: 0xBB,
        };
        let b = t.to_bytes();
        assert_eq!(&b[0..8], &0x4000_0000u64.to_le_bytes());
        assert_eq!(&b[32..40], &0x1234_5000u64.to_le_bytes());
        assert_eq!(&b[40..48], &0x2000u64.to_le_bytes());
        assert_eq!(&b[304..312], &0xAAu64.to_le_bytes());
        assert_eq!(&b[312..320], &0xBBu64.to_le_bytes());
        assert_eq!(TdmrInfo::from_bytes(&b), t);
        assert_eq!(t.pamt(PageSize::Size2M), (0x1234_5000, 0x2000));
        assert_eq!(t.reserved_count(), 0);
    }

    #[cfg(feature = "zerocopy")]
    #[test]
    fn zerocopy_matches_manual_layout() {
        use super::TdmrInfoBuf;
        use zerocopy::IntoBytes;
        let mut t = TdmrInfo::new(1 << 30, 1 << 30);
        t.reserved[0] = ReservedArea {
            offset: 0x1000,
            size: 0x2000,
        };
        assert_eq!(t.as_bytes(), &t.to_bytes()[..]);
        let buf = TdmrInfoBuf::new(t);
        assert_eq!(buf.as_bytes().len(), 512);
    }
}
