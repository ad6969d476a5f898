//! The platform record: every CPU and every byte of RAM the kernel found at
//! boot, as handed to the memory-authority task (tdx-host).
//!
//! Pattern: a fixed-capacity, allocation-free value with a fallible wire
//! form whose layout is the zerocopy structs of `wire`. The kernel fills it once (crate `platform`), encodes
//! it into a kernel-IPC reply or a lease, and the task decodes it. The task
//! must not trust the bytes more than any other message, so [`decode`]
//! checks everything [`encode`] promises:
//!
//! - every count is at most its capacity ([`MAX_CPUS`], [`MAX_RAM_RANGES`],
//!   [`MAX_IMAGE_RANGES`], [`MAX_NODES`]) and there is at least one node;
//! - every node index (CPU, RAM range, hot-plug window) is below the node
//!   count; node indices are dense, node `i`'s ACPI proximity domain is
//!   `nodes()[i].proximity`;
//! - no range wraps the 64-bit address space;
//! - unknown flag bits and reserved words are zero.
//!
//! A record that [`encode`] accepts always decodes to an equal record.
//!
//! Capacities: [`MAX_CPUS`], [`MAX_RAM_RANGES`] and [`MAX_NODES`] are the
//! system-wide limits of [`crate::limits`] (why those numbers is said
//! there). TDX needs *every* logical CPU (TDH.SYS.LP.INIT on each before
//! TDH.SYS.CONFIG), so overflow is flagged (TRUNCATED), never silent, and
//! the kernel refuses such a machine at boot.
//! [`MAX_IMAGE_RANGES`] = 4: the kernel and task image is loaded as a
//! handful of contiguous physical ranges (kernel, tasks, per-CPU stacks).
//!
//! Wire layout (all little-endian; the version word comes first so a future
//! layout can be told apart before anything else is read):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | version ([`RECORD_VERSION`]) |
//! | 4 | 4 | magic ([`RECORD_MAGIC`], `"PLAT"`) |
//! | 8 | 4 | total encoded length in bytes |
//! | 12 | 4 | flags ([`RecordFlags`]) |
//! | 16 | 4 | cpu count |
//! | 20 | 4 | RAM range count |
//! | 24 | 4 | image range count |
//! | 28 | 4 | node count |
//! | 32 | 4 | package count |
//! | 36 | 4 | hot-plug window present (0 or 1) |
//! | 40 | 8 | hot-plug window base |
//! | 48 | 8 | hot-plug window size |
//! | 56 | 4 | hot-plug window node |
//! | 60 | 4 | reserved, 0 |
//! | 64 | 16 × cpus | `{u32 apic_id, u32 package, u32 node, u32 flags}` (flags bit 0 = enabled) |
//! | … | 24 × ram | `{u64 base, u64 size, u32 node, u32 reserved}` |
//! | … | 16 × image | `{u64 base, u64 size}` |
//! | … | 8 × nodes | `{u32 proximity, u32 flags}` ([`NodeFlags`]) |
//!
//! Bytes after the total length are ignored (a lease may be larger than the
//! record); fewer bytes are an error.

use zerocopy::FromBytes;

mod packages;
mod wire;

pub use packages::{Packages, MAX_PACKAGES};

/// Most CPUs a record holds.
pub const MAX_CPUS: usize = crate::limits::MAX_CPUS;
/// Most RAM ranges a record holds (after splitting at node boundaries).
pub const MAX_RAM_RANGES: usize = crate::limits::MAX_RAM_RANGES;
/// Most physical ranges the kernel+tasks image is described by.
pub const MAX_IMAGE_RANGES: usize = 4;
/// Most NUMA nodes a record holds.
pub const MAX_NODES: usize = crate::limits::MAX_NODES;

/// The layout version this crate writes and reads.
pub const RECORD_VERSION: u32 = 1;
/// The second word of every record: `"PLAT"`.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"PLAT");

/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one encoded [`CpuInfo`].
pub const CPU_LEN: usize = 16;
/// Size of one encoded [`RamRange`].
pub const RAM_LEN: usize = 24;
/// Size of one encoded image [`PhysRange`].
pub const IMAGE_LEN: usize = 16;
/// Size of one encoded [`NodeInfo`].
pub const NODE_LEN: usize = 8;

/// The largest encoded record, for sizing reply buffers and leases.
pub const ENCODED_MAX: usize = HEADER_LEN
    + MAX_CPUS * CPU_LEN
    + MAX_RAM_RANGES * RAM_LEN
    + MAX_IMAGE_RANGES * IMAGE_LEN
    + MAX_NODES * NODE_LEN;

/// Bit 0 of an encoded CPU's flags word.
const CPU_ENABLED: u32 = 1;

/// Record-wide flags.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RecordFlags(pub u32);

impl RecordFlags {
    /// A valid SRAT was found and used for node placement.
    pub const SRAT_PRESENT: RecordFlags = RecordFlags(1 << 0);
    /// A valid MADT was found and the CPU list comes from it.
    pub const MADT_PRESENT: RecordFlags = RecordFlags(1 << 1);
    /// Some table was missing or malformed and a fallback was used (one
    /// node, or the boot CPU alone). The kernel's log says which.
    pub const FALLBACK_USED: RecordFlags = RecordFlags(1 << 2);
    /// Something did not fit (CPUs, RAM ranges, image ranges or nodes), or
    /// a malformed firmware entry that may have named a CPU or a node
    /// placement was skipped. The record is incomplete: TDX initialisation
    /// must not rely on it.
    pub const TRUNCATED: RecordFlags = RecordFlags(1 << 3);
    /// Package ids come from CPUID leaves 1/4, not 0xB/0x1F.
    pub const TOPOLOGY_LEGACY: RecordFlags = RecordFlags(1 << 4);
    /// The boot CPU was missing from the MADT and was added.
    pub const BOOT_CPU_ADDED: RecordFlags = RecordFlags(1 << 5);
    /// SRAT described more than one hot-plug window; only the first is
    /// recorded.
    pub const HOTPLUG_AMBIGUOUS: RecordFlags = RecordFlags(1 << 6);
    /// A MADT or SRAT entry was shorter than its type's layout and was
    /// skipped. When the entry could have named a CPU or placed CPUs or
    /// memory in a node, TRUNCATED is set as well.
    pub const ENTRIES_SKIPPED: RecordFlags = RecordFlags(1 << 7);
    /// The kernel drives the local APICs in x2APIC mode (MSRs, 32-bit APIC
    /// ids); clear means xAPIC (MMIO, 8-bit ids). Set by the kernel, not by
    /// table parsing.
    pub const X2APIC: RecordFlags = RecordFlags(1 << 8);

    /// Every flag this version defines.
    pub const KNOWN: RecordFlags = RecordFlags(0x1FF);

    #[must_use]
    pub const fn contains(self, other: RecordFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: RecordFlags) {
        self.0 |= other.0;
    }
}

/// Per-node flags.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeFlags(pub u32);

impl NodeFlags {
    /// At least one CPU of the record is in this node.
    pub const HAS_CPUS: NodeFlags = NodeFlags(1 << 0);
    /// At least one RAM range of the record is in this node.
    pub const HAS_RAM: NodeFlags = NodeFlags(1 << 1);
    /// The hot-plug window belongs to this node.
    pub const HAS_HOTPLUG: NodeFlags = NodeFlags(1 << 2);
    /// Every flag this version defines.
    pub const KNOWN: NodeFlags = NodeFlags(0x7);

    #[must_use]
    pub const fn contains(self, other: NodeFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: NodeFlags) {
        self.0 |= other.0;
    }
}

/// One logical CPU.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// Local APIC id (x2APIC id when above 254).
    pub apic_id: u32,
    /// Physical package (socket) id, from the APIC id and CPUID topology.
    pub package: u32,
    /// Dense node index (see [`PlatformRecord::nodes`]).
    pub node: u32,
    /// Usable now. `false` means firmware marked it online-capable only
    /// (MADT revision ≥ 5): it may appear later, TDX cannot count on it.
    pub enabled: bool,
}

/// A range of usable RAM inside one node.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RamRange {
    pub base: u64,
    pub size: u64,
    /// Dense node index.
    pub node: u32,
}

/// A physical range without node information.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    pub base: u64,
    pub size: u64,
}

/// One NUMA node.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The ACPI proximity domain this node index stands for. The memory
    /// hot-plug registers report proximity domains, not node indices.
    pub proximity: u32,
    pub flags: NodeFlags,
}

/// Where memory may be hot-plugged later (QEMU: the whole device-memory
/// window, SRAT memory affinity with HOTPLUGGABLE set).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HotplugWindow {
    pub base: u64,
    pub size: u64,
    /// Dense node index.
    pub node: u32,
}

/// Why a record could not be encoded or decoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The output buffer is smaller than the encoded record.
    BufferTooSmall { need: usize, have: usize },
    /// The input ends before the record does.
    Truncated { need: usize, have: usize },
    /// The version word is not [`RECORD_VERSION`].
    BadVersion(u32),
    /// The magic word is not [`RECORD_MAGIC`].
    BadMagic(u32),
    /// The length word disagrees with the counts.
    LengthMismatch { claimed: u32, computed: usize },
    /// A count exceeds its capacity (or there are no nodes).
    BadCount { field: Field, count: u32 },
    /// A node index is not below the node count.
    BadNode { field: Field, index: u32, node: u32 },
    /// A range wraps the address space.
    RangeOverflow { field: Field, index: u32 },
    /// Unknown flag bits, a non-boolean boolean or a non-zero reserved word.
    Reserved { field: Field, index: u32 },
}

/// The part of the record an error refers to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Header,
    Cpus,
    Ram,
    Image,
    Nodes,
    Hotplug,
}

/// The record is full.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Full;

/// Everything the kernel found; see the module doc for invariants.
///
/// Arrays and their counts are private so that `count <= capacity` always
/// holds; the node-index invariant is checked by [`PlatformRecord::validate`]
/// (and therefore by [`encode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformRecord {
    cpus: [CpuInfo; MAX_CPUS],
    cpu_count: usize,
    ram: [RamRange; MAX_RAM_RANGES],
    ram_count: usize,
    image: [PhysRange; MAX_IMAGE_RANGES],
    image_count: usize,
    nodes: [NodeInfo; MAX_NODES],
    node_count: usize,
    /// Distinct physical packages among the CPUs. TDH.SYS.KEY.CONFIG must
    /// run once on one CPU of each.
    pub package_count: u32,
    pub hotplug: Option<HotplugWindow>,
    pub flags: RecordFlags,
}

impl Default for PlatformRecord {
    fn default() -> Self {
        Self::new()
    }
}

impl PlatformRecord {
    /// An empty record. Not yet valid: every record needs at least one node.
    #[must_use]
    pub const fn new() -> Self {
        const CPU: CpuInfo = CpuInfo {
            apic_id: 0,
            package: 0,
            node: 0,
            enabled: false,
        };
        const RAM: RamRange = RamRange {
            base: 0,
            size: 0,
            node: 0,
        };
        const RANGE: PhysRange = PhysRange { base: 0, size: 0 };
        const NODE: NodeInfo = NodeInfo {
            proximity: 0,
            flags: NodeFlags(0),
        };
        PlatformRecord {
            cpus: [CPU; MAX_CPUS],
            cpu_count: 0,
            ram: [RAM; MAX_RAM_RANGES],
            ram_count: 0,
            image: [RANGE; MAX_IMAGE_RANGES],
            image_count: 0,
            nodes: [NODE; MAX_NODES],
            node_count: 0,
            package_count: 0,
            hotplug: None,
            flags: RecordFlags(0),
        }
    }

    #[must_use]
    pub fn cpus(&self) -> &[CpuInfo] {
        &self.cpus[..self.cpu_count]
    }

    #[must_use]
    pub fn ram(&self) -> &[RamRange] {
        &self.ram[..self.ram_count]
    }

    #[must_use]
    pub fn image(&self) -> &[PhysRange] {
        &self.image[..self.image_count]
    }

    #[must_use]
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes[..self.node_count]
    }

    /// Mutable access to the CPUs, e.g. to merge two firmware entries for
    /// the same CPU.
    pub fn cpus_mut(&mut self) -> &mut [CpuInfo] {
        &mut self.cpus[..self.cpu_count]
    }

    /// Mutable access to the nodes, e.g. to set their flags.
    pub fn nodes_mut(&mut self) -> &mut [NodeInfo] {
        &mut self.nodes[..self.node_count]
    }

    /// Appends a CPU.
    ///
    /// # Errors
    /// [`Full`] when [`MAX_CPUS`] are already recorded.
    pub fn push_cpu(&mut self, cpu: CpuInfo) -> Result<(), Full> {
        push(&mut self.cpus, &mut self.cpu_count, cpu)
    }

    /// Appends a RAM range.
    ///
    /// # Errors
    /// [`Full`] when [`MAX_RAM_RANGES`] are already recorded.
    pub fn push_ram(&mut self, range: RamRange) -> Result<(), Full> {
        push(&mut self.ram, &mut self.ram_count, range)
    }

    /// Appends an image range.
    ///
    /// # Errors
    /// [`Full`] when [`MAX_IMAGE_RANGES`] are already recorded.
    pub fn push_image(&mut self, range: PhysRange) -> Result<(), Full> {
        push(&mut self.image, &mut self.image_count, range)
    }

    /// Appends a node; its index is the previous node count.
    ///
    /// # Errors
    /// [`Full`] when [`MAX_NODES`] are already recorded.
    pub fn push_node(&mut self, node: NodeInfo) -> Result<(), Full> {
        push(&mut self.nodes, &mut self.node_count, node)
    }

    /// Checks the invariants of the module doc.
    ///
    /// # Errors
    /// The first violated invariant.
    pub fn validate(&self) -> Result<(), RecordError> {
        let nodes = self.node_count as u32;
        if self.node_count == 0 {
            return Err(RecordError::BadCount {
                field: Field::Nodes,
                count: 0,
            });
        }
        if self.flags.0 & !RecordFlags::KNOWN.0 != 0 {
            return Err(RecordError::Reserved {
                field: Field::Header,
                index: 0,
            });
        }
        for (i, c) in self.cpus().iter().enumerate() {
            if c.node >= nodes {
                return Err(bad_node(Field::Cpus, i, c.node));
            }
        }
        for (i, r) in self.ram().iter().enumerate() {
            if r.node >= nodes {
                return Err(bad_node(Field::Ram, i, r.node));
            }
            if r.base.checked_add(r.size).is_none() {
                return Err(overflow(Field::Ram, i));
            }
        }
        for (i, r) in self.image().iter().enumerate() {
            if r.base.checked_add(r.size).is_none() {
                return Err(overflow(Field::Image, i));
            }
        }
        for (i, n) in self.nodes().iter().enumerate() {
            if n.flags.0 & !NodeFlags::KNOWN.0 != 0 {
                return Err(RecordError::Reserved {
                    field: Field::Nodes,
                    index: i as u32,
                });
            }
        }
        if let Some(h) = self.hotplug {
            if h.node >= nodes {
                return Err(bad_node(Field::Hotplug, 0, h.node));
            }
            if h.base.checked_add(h.size).is_none() {
                return Err(overflow(Field::Hotplug, 0));
            }
        }
        Ok(())
    }

    /// Bytes [`encode`] will write for this record.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        encoded_len(
            self.cpu_count,
            self.ram_count,
            self.image_count,
            self.node_count,
        )
    }

    /// Encodes into `out`; see the module doc for the layout.
    ///
    /// # Errors
    /// An invalid record, or `out` too small.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, RecordError> {
        encode(self, out)
    }

    /// Decodes what [`encode`] wrote.
    ///
    /// # Errors
    /// Truncated, inconsistent or unknown input.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        decode(bytes)
    }
}

fn push<T>(array: &mut [T], count: &mut usize, value: T) -> Result<(), Full> {
    let slot = array.get_mut(*count).ok_or(Full)?;
    *slot = value;
    *count += 1;
    Ok(())
}

fn bad_node(field: Field, index: usize, node: u32) -> RecordError {
    RecordError::BadNode {
        field,
        index: index as u32,
        node,
    }
}

fn overflow(field: Field, index: usize) -> RecordError {
    RecordError::RangeOverflow {
        field,
        index: index as u32,
    }
}

const fn encoded_len(cpus: usize, ram: usize, image: usize, nodes: usize) -> usize {
    HEADER_LEN + cpus * CPU_LEN + ram * RAM_LEN + image * IMAGE_LEN + nodes * NODE_LEN
}

/// Encodes `record` into `out`, returning the number of bytes written.
///
/// # Errors
/// [`RecordError`] if the record is invalid or `out` is too small; nothing
/// meaningful is written then.
pub fn encode(record: &PlatformRecord, out: &mut [u8]) -> Result<usize, RecordError> {
    record.validate()?;
    let len = record.encoded_len();
    if out.len() < len {
        return Err(RecordError::BufferTooSmall {
            need: len,
            have: out.len(),
        });
    }
    let mut w = wire::Writer {
        out: &mut out[..len],
        at: 0,
    };
    let h = record.hotplug.unwrap_or_default();
    w.put(&wire::Header {
        version: RECORD_VERSION.into(),
        magic: RECORD_MAGIC.into(),
        // Bounded by ENCODED_MAX, far below u32::MAX.
        len: (len as u32).into(),
        flags: record.flags.0.into(),
        cpu_count: (record.cpu_count as u32).into(),
        ram_count: (record.ram_count as u32).into(),
        image_count: (record.image_count as u32).into(),
        node_count: (record.node_count as u32).into(),
        package_count: record.package_count.into(),
        hotplug_present: u32::from(record.hotplug.is_some()).into(),
        hotplug_base: h.base.into(),
        hotplug_size: h.size.into(),
        hotplug_node: h.node.into(),
        reserved: 0.into(),
    });
    for c in record.cpus() {
        w.put(&wire::Cpu {
            apic_id: c.apic_id.into(),
            package: c.package.into(),
            node: c.node.into(),
            flags: (if c.enabled { CPU_ENABLED } else { 0 }).into(),
        });
    }
    for r in record.ram() {
        w.put(&wire::Ram {
            base: r.base.into(),
            size: r.size.into(),
            node: r.node.into(),
            reserved: 0.into(),
        });
    }
    for r in record.image() {
        w.put(&wire::Image {
            base: r.base.into(),
            size: r.size.into(),
        });
    }
    for n in record.nodes() {
        w.put(&wire::Node {
            proximity: n.proximity.into(),
            flags: n.flags.0.into(),
        });
    }
    debug_assert_eq!(w.at, len);
    Ok(len)
}

fn count(field: Field, raw: u32, max: usize) -> Result<usize, RecordError> {
    match usize::try_from(raw) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(RecordError::BadCount { field, count: raw }),
    }
}

/// Decodes a record from `bytes`; trailing bytes beyond the encoded length
/// are ignored.
///
/// # Errors
/// [`RecordError`] for truncated, inconsistent or unknown input.
pub fn decode(bytes: &[u8]) -> Result<PlatformRecord, RecordError> {
    let Ok((header, rest)) = wire::Header::read_from_prefix(bytes) else {
        return Err(RecordError::Truncated {
            need: HEADER_LEN,
            have: bytes.len(),
        });
    };
    let version = header.version.get();
    if version != RECORD_VERSION {
        return Err(RecordError::BadVersion(version));
    }
    let magic = header.magic.get();
    if magic != RECORD_MAGIC {
        return Err(RecordError::BadMagic(magic));
    }
    let claimed = header.len.get();
    let cpus = count(Field::Cpus, header.cpu_count.get(), MAX_CPUS)?;
    let ram = count(Field::Ram, header.ram_count.get(), MAX_RAM_RANGES)?;
    let image = count(Field::Image, header.image_count.get(), MAX_IMAGE_RANGES)?;
    let nodes = count(Field::Nodes, header.node_count.get(), MAX_NODES)?;
    let computed = encoded_len(cpus, ram, image, nodes);
    if claimed as usize != computed {
        return Err(RecordError::LengthMismatch { claimed, computed });
    }
    let truncated = RecordError::Truncated {
        need: computed,
        have: bytes.len(),
    };
    // The length check above makes every split below succeed on a
    // complete record; a short one fails at the first.
    let (cpu_entries, rest) =
        <[wire::Cpu]>::ref_from_prefix_with_elems(rest, cpus).map_err(|_| truncated)?;
    let (ram_entries, rest) =
        <[wire::Ram]>::ref_from_prefix_with_elems(rest, ram).map_err(|_| truncated)?;
    let (image_entries, rest) =
        <[wire::Image]>::ref_from_prefix_with_elems(rest, image).map_err(|_| truncated)?;
    let (node_entries, _) =
        <[wire::Node]>::ref_from_prefix_with_elems(rest, nodes).map_err(|_| truncated)?;
    let mut rec = PlatformRecord::new();
    rec.flags = RecordFlags(header.flags.get());
    rec.package_count = header.package_count.get();
    let h = HotplugWindow {
        base: header.hotplug_base.get(),
        size: header.hotplug_size.get(),
        node: header.hotplug_node.get(),
    };
    rec.hotplug = match header.hotplug_present.get() {
        1 => Some(h),
        0 if h == HotplugWindow::default() => None,
        _ => {
            return Err(RecordError::Reserved {
                field: Field::Hotplug,
                index: 0,
            })
        }
    };
    if header.reserved.get() != 0 {
        return Err(RecordError::Reserved {
            field: Field::Header,
            index: 0,
        });
    }
    // The pushes below cannot fail: each count was checked against its
    // capacity above. `Full` is mapped anyway rather than unwrapped.
    let full = |field, n: usize| RecordError::BadCount {
        field,
        count: n as u32,
    };
    for (i, c) in cpu_entries.iter().enumerate() {
        let f = c.flags.get();
        if f & !CPU_ENABLED != 0 {
            return Err(RecordError::Reserved {
                field: Field::Cpus,
                index: i as u32,
            });
        }
        let cpu = CpuInfo {
            apic_id: c.apic_id.get(),
            package: c.package.get(),
            node: c.node.get(),
            enabled: f == CPU_ENABLED,
        };
        rec.push_cpu(cpu).map_err(|_| full(Field::Cpus, cpus))?;
    }
    for (i, r) in ram_entries.iter().enumerate() {
        if r.reserved.get() != 0 {
            return Err(RecordError::Reserved {
                field: Field::Ram,
                index: i as u32,
            });
        }
        rec.push_ram(RamRange {
            base: r.base.get(),
            size: r.size.get(),
            node: r.node.get(),
        })
        .map_err(|_| full(Field::Ram, ram))?;
    }
    for r in image_entries {
        rec.push_image(PhysRange {
            base: r.base.get(),
            size: r.size.get(),
        })
        .map_err(|_| full(Field::Image, image))?;
    }
    for n in node_entries {
        rec.push_node(NodeInfo {
            proximity: n.proximity.get(),
            flags: NodeFlags(n.flags.get()),
        })
        .map_err(|_| full(Field::Nodes, nodes))?;
    }
    rec.validate()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::{
        decode, encode, CpuInfo, Field, HotplugWindow, NodeFlags, NodeInfo, PhysRange,
        PlatformRecord, RamRange, RecordError, RecordFlags, CPU_LEN, ENCODED_MAX, HEADER_LEN,
        MAX_CPUS, MAX_IMAGE_RANGES, MAX_NODES, MAX_RAM_RANGES, RECORD_VERSION,
    };

    fn sample() -> PlatformRecord {
        let mut r = PlatformRecord::new();
        for (p, flags) in [(0, NodeFlags(3)), (7, NodeFlags(7))] {
            r.push_node(NodeInfo {
                proximity: p,
                flags,
            })
            .unwrap();
        }
        for i in 0..4 {
            r.push_cpu(CpuInfo {
                apic_id: i,
                package: i / 2,
                node: i / 2,
                enabled: i != 3,
            })
            .unwrap();
        }
        r.push_ram(RamRange {
            base: 0x10_0000,
            size: 0x1FF0_0000,
            node: 0,
        })
        .unwrap();
        r.push_ram(RamRange {
            base: 0x2000_0000,
            size: 0x2000_0000,
            node: 1,
        })
        .unwrap();
        r.push_image(PhysRange {
            base: 0x10_0000,
            size: 0x4_0000,
        })
        .unwrap();
        r.package_count = 2;
        r.hotplug = Some(HotplugWindow {
            base: 1 << 32,
            size: 7 << 30,
            node: 1,
        });
        r.flags = RecordFlags(RecordFlags::SRAT_PRESENT.0 | RecordFlags::MADT_PRESENT.0);
        r
    }

    fn full() -> PlatformRecord {
        let mut r = PlatformRecord::new();
        for i in 0..MAX_NODES as u32 {
            r.push_node(NodeInfo {
                proximity: i * 3,
                flags: NodeFlags(i % 8),
            })
            .unwrap();
        }
        for i in 0..MAX_CPUS as u32 {
            r.push_cpu(CpuInfo {
                apic_id: 0x1_0000 + i,
                package: i / 64,
                node: i % MAX_NODES as u32,
                enabled: true,
            })
            .unwrap();
        }
        for i in 0..MAX_RAM_RANGES as u64 {
            r.push_ram(RamRange {
                base: i << 32,
                size: 1 << 31,
                node: (i % MAX_NODES as u64) as u32,
            })
            .unwrap();
        }
        for i in 0..MAX_IMAGE_RANGES as u64 {
            r.push_image(PhysRange {
                base: i << 20,
                size: 4096,
            })
            .unwrap();
        }
        r.package_count = 4;
        r
    }

    #[test]
    fn round_trips_sample_and_full_record() {
        for rec in [sample(), full()] {
            let mut buf = [0xAAu8; ENCODED_MAX + 8];
            let n = encode(&rec, &mut buf).unwrap();
            assert_eq!(n, rec.encoded_len());
            assert_eq!(decode(&buf[..n]).unwrap(), rec);
            // Trailing bytes (a larger lease) are ignored.
            assert_eq!(decode(&buf).unwrap(), rec);
        }
        assert_eq!(full().encoded_len(), ENCODED_MAX);
    }

    #[test]
    fn version_word_comes_first() {
        let mut buf = [0u8; ENCODED_MAX];
        encode(&sample(), &mut buf).unwrap();
        assert_eq!(buf[..4], RECORD_VERSION.to_le_bytes());
        assert_eq!(&buf[4..8], b"PLAT");
    }

    #[test]
    fn push_stops_at_capacity() {
        let mut r = full();
        assert!(r.push_cpu(CpuInfo::default()).is_err());
        assert!(r.push_ram(RamRange::default()).is_err());
        assert!(r.push_image(PhysRange::default()).is_err());
        assert!(r.push_node(NodeInfo::default()).is_err());
        assert_eq!(r.cpus().len(), MAX_CPUS);
    }

    #[test]
    fn encode_rejects_small_buffer_and_invalid_record() {
        let mut small = [0u8; HEADER_LEN];
        assert!(matches!(
            encode(&sample(), &mut small),
            Err(RecordError::BufferTooSmall { .. })
        ));
        let mut buf = [0u8; ENCODED_MAX];
        // No nodes.
        assert_eq!(
            encode(&PlatformRecord::new(), &mut buf),
            Err(RecordError::BadCount {
                field: Field::Nodes,
                count: 0
            })
        );
        let mut bad = sample();
        bad.hotplug = Some(HotplugWindow {
            base: 0,
            size: 1,
            node: 2,
        });
        assert!(matches!(
            encode(&bad, &mut buf),
            Err(RecordError::BadNode {
                field: Field::Hotplug,
                ..
            })
        ));
        let mut bad = sample();
        bad.flags = RecordFlags(1 << 31);
        assert!(encode(&bad, &mut buf).is_err());
    }

    #[test]
    fn decode_rejects_every_truncation() {
        let mut buf = [0u8; ENCODED_MAX];
        let n = encode(&sample(), &mut buf).unwrap();
        for cut in 0..n {
            assert!(
                matches!(decode(&buf[..cut]), Err(RecordError::Truncated { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        let mut good = [0u8; ENCODED_MAX];
        let n = encode(&sample(), &mut good).unwrap();
        let with = |at: usize, v: u32| {
            let mut b = good;
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            decode(&b[..n])
        };
        assert_eq!(with(0, 2), Err(RecordError::BadVersion(2)));
        assert!(matches!(with(4, 0), Err(RecordError::BadMagic(0))));
        assert!(matches!(
            with(8, n as u32 + 1),
            Err(RecordError::LengthMismatch { .. })
        ));
        assert!(matches!(
            with(16, MAX_CPUS as u32 + 1),
            Err(RecordError::BadCount { .. })
        ));
        assert!(matches!(
            with(16, u32::MAX),
            Err(RecordError::BadCount { .. })
        ));
        // A count inside capacity that disagrees with the length.
        assert!(matches!(
            with(16, 5),
            Err(RecordError::LengthMismatch { .. })
        ));
        assert!(matches!(with(36, 2), Err(RecordError::Reserved { .. })));
        assert!(matches!(with(60, 1), Err(RecordError::Reserved { .. })));
        // CPU 0's node beyond the node count.
        assert!(matches!(
            with(HEADER_LEN + 8, 2),
            Err(RecordError::BadNode { .. })
        ));
        // CPU 0's flags with a reserved bit.
        assert!(matches!(
            with(HEADER_LEN + 12, 3),
            Err(RecordError::Reserved { .. })
        ));
        // RAM 0 wraps.
        let ram0 = HEADER_LEN + 4 * CPU_LEN;
        let mut b = good;
        b[ram0..ram0 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode(&b[..n]),
            Err(RecordError::RangeOverflow { .. })
        ));
        // All-zero and all-ones buffers.
        assert!(decode(&[0u8; ENCODED_MAX]).is_err());
        assert!(decode(&[0xFFu8; ENCODED_MAX]).is_err());
    }

    #[test]
    fn absent_hotplug_must_be_zero() {
        let mut rec = sample();
        rec.hotplug = None;
        let mut buf = [0u8; ENCODED_MAX];
        let n = encode(&rec, &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]).unwrap().hotplug, None);
        buf[40] = 1;
        assert!(matches!(
            decode(&buf[..n]),
            Err(RecordError::Reserved {
                field: Field::Hotplug,
                ..
            })
        ));
    }
}
