//! The platform record's wire layout as zerocopy structs: one struct per
//! row group of the table in the parent module's doc, in that order.
//!
//! Every field is a little-endian integer of alignment 1, so the structs
//! have no padding, their sizes are the `*_LEN` constants (checked at
//! compile time below), and a decoder can view any byte slice as them
//! without copying or alignment concerns. Meaning (counts, flags, reserved
//! words) is checked by the parent's `decode`, not here.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{CPU_LEN, HEADER_LEN, IMAGE_LEN, NODE_LEN, RAM_LEN};

/// The fixed header at offset 0.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct Header {
    pub version: U32,
    pub magic: U32,
    /// Total encoded length in bytes.
    pub len: U32,
    pub flags: U32,
    pub cpu_count: U32,
    pub ram_count: U32,
    pub image_count: U32,
    pub node_count: U32,
    pub package_count: U32,
    /// 0 or 1.
    pub hotplug_present: U32,
    pub hotplug_base: U64,
    pub hotplug_size: U64,
    pub hotplug_node: U32,
    pub reserved: U32,
}

/// One CPU; `flags` bit 0 is "enabled".
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct Cpu {
    pub apic_id: U32,
    pub package: U32,
    pub node: U32,
    pub flags: U32,
}

/// One RAM range.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct Ram {
    pub base: U64,
    pub size: U64,
    pub node: U32,
    pub reserved: U32,
}

/// One image range.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct Image {
    pub base: U64,
    pub size: U64,
}

/// One node.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct Node {
    pub proximity: U32,
    pub flags: U32,
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Header>() == HEADER_LEN);
    assert!(size_of::<Cpu>() == CPU_LEN);
    assert!(size_of::<Ram>() == RAM_LEN);
    assert!(size_of::<Image>() == IMAGE_LEN);
    assert!(size_of::<Node>() == NODE_LEN);
};

/// Appends values to a buffer that the caller sized beforehand.
pub(super) struct Writer<'a> {
    pub out: &'a mut [u8],
    pub at: usize,
}

impl Writer<'_> {
    /// Writes `value`'s bytes at the cursor; the caller has checked that
    /// the buffer holds the whole record.
    pub fn put<T: IntoBytes + Immutable>(&mut self, value: &T) {
        let bytes = value.as_bytes();
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}
