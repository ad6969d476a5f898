//! Building the [`PlatformRecord`] from the boot memory map, the image
//! ranges, MADT, SRAT and the CPU topology.
//!
//! Pattern: total function. Every input may be missing or malformed; each
//! problem lands in the [`Report`] (for the kernel log) and in the record's
//! flags (for tdx-host), and a sane fallback fills the gap:
//! - no usable SRAT → one node (proximity 0) holding everything;
//! - no usable MADT → the boot CPU alone (from CPUID);
//! - more than fits → the record is cut at capacity and TRUNCATED is set;
//! - an entry shorter than its type's layout → skipped, ENTRIES_SKIPPED
//!   set (and TRUNCATED when it may have named a CPU or a node placement).
//!
//! A CPU the MADT lists twice (as type 0 and type 9 with the same id) is
//! recorded once, enabled if either entry says so.
//!
//! Invariants of the result: at least one node; every node index is below
//! the node count; every RAM range lies inside one boot RAM range and one
//! node; no APIC id appears twice; the boot CPU is present.
//!
//! Node indices are dense: the distinct enabled proximity domains of the
//! SRAT in ascending order (so QEMU's node *n* is index *n*).

use core::fmt;

use abi::limits::{Exceeded, Limit, MAX_PACKAGES};
use abi::platform::{
    CpuInfo, HotplugWindow, NodeFlags, NodeInfo, PhysRange, PlatformRecord, RamRange, RecordFlags,
    MAX_CPUS, MAX_NODES,
};

use crate::acpi::{find_rsdp, AcpiError, RootTable, Signature, SkippedEntries};
use crate::fadt::Fadt;
use crate::madt::{Madt, MadtEntry};
use crate::srat::Srat;
use crate::topology::{Cpuid, Topology, TopologySource};
use crate::{ApicId, PhysAddr, PhysRead, ProximityDomain};

/// What went wrong during discovery, for the kernel log. A clean report
/// means the record is complete and came from valid tables.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The MADT could not be used; CPUs fell back to the boot CPU.
    pub madt: Option<AcpiError>,
    /// The SRAT was present but unusable (or the root table was); one node
    /// was assumed. A machine without NUMA has no SRAT and no error here.
    pub srat: Option<AcpiError>,
    /// The FADT could not be used (only [`discover`] sets this).
    pub fadt: Option<AcpiError>,
    pub cpus_dropped: u32,
    pub ram_dropped: u32,
    /// Boot RAM ranges that wrap 2^64 and were ignored.
    pub ram_rejected: u32,
    /// Boot RAM ranges overlapping one listed before them: the bytes already recorded were
    /// skipped (a map that lists memory twice must not count it twice).
    pub ram_overlapping: u32,
    pub image_dropped: u32,
    /// Proximity domains beyond [`MAX_NODES`], folded into node 0.
    pub nodes_dropped: u32,
    /// The boot CPU was not in the MADT and was added.
    pub boot_cpu_added: bool,
    /// Hot-plug windows found (more than one: only the first is recorded).
    pub hotplug_windows: u32,
    /// Hot-plug windows refused for covering the first MiB, the 32-bit APIC and firmware
    /// MMIO at 0xFEC0_0000 and up, or an APIC the MADT names: memory onlined there would be
    /// scrubbed through registers.
    pub hotplug_refused: u32,
    /// MADT entries skipped for being shorter than their type's layout.
    pub madt_skipped: SkippedEntries,
    /// SRAT entries skipped for being shorter than their type's layout.
    pub srat_skipped: SkippedEntries,
}

impl Report {
    /// The first system limit ([`abi::limits`]) this machine exceeds, given
    /// the record built with this report: more CPUs, NUMA nodes or RAM
    /// ranges than the record holds, or more packages than
    /// [`abi::limits::MAX_PACKAGES`]. The kernel refuses such a machine at
    /// boot with this as its message; a record that merely lost a
    /// malformed entry is not refused (it carries TRUNCATED instead).
    #[must_use]
    pub fn exceeded(&self, record: &PlatformRecord) -> Option<Exceeded> {
        // Dropped CPUs are counted one each (the MADT walk skips
        // duplicates first); dropped nodes and RAM ranges are counted per
        // entry, so only "one more than fits" is certain.
        let over = |limit: Limit, kept: usize, dropped: u32, exact: bool| {
            (dropped != 0).then_some(Exceeded {
                limit,
                found: kept + if exact { dropped as usize } else { 1 },
            })
        };
        over(Limit::Cpus, record.cpus().len(), self.cpus_dropped, true)
            .or_else(|| {
                over(
                    Limit::Nodes,
                    record.nodes().len(),
                    self.nodes_dropped,
                    false,
                )
            })
            .or_else(|| {
                over(
                    Limit::RamRanges,
                    record.ram().len(),
                    self.ram_dropped,
                    false,
                )
            })
            .or_else(|| {
                let packages = record.package_count as usize;
                (packages > MAX_PACKAGES).then_some(Exceeded {
                    limit: Limit::Packages,
                    found: packages,
                })
            })
    }

    #[must_use]
    pub fn is_clean(&self) -> bool {
        *self
            == Report {
                hotplug_windows: self.hotplug_windows.min(1),
                ..Report::default()
            }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(f, "platform: tables OK");
        }
        write!(f, "platform:")?;
        if let Some(e) = self.madt {
            write!(f, " MADT unusable ({e}), using the boot CPU only;")?;
        }
        if let Some(e) = self.srat {
            write!(f, " SRAT unusable ({e}), assuming one node;")?;
        }
        if let Some(e) = self.fadt {
            write!(f, " FADT unusable ({e});")?;
        }
        let counts = [
            (self.cpus_dropped, "CPUs dropped"),
            (self.ram_dropped, "RAM ranges dropped"),
            (self.ram_rejected, "wrapping RAM ranges ignored"),
            (self.ram_overlapping, "overlapping RAM ranges clipped"),
            (
                self.hotplug_refused,
                "hot-plug windows over MMIO or low memory refused",
            ),
            (self.image_dropped, "image ranges dropped"),
            (self.nodes_dropped, "proximity domains folded into node 0"),
        ];
        for (n, what) in counts {
            if n != 0 {
                write!(f, " {n} {what};")?;
            }
        }
        if self.boot_cpu_added {
            write!(f, " boot CPU missing from MADT, added;")?;
        }
        if self.hotplug_windows > 1 {
            write!(f, " {} hot-plug windows, first kept;", self.hotplug_windows)?;
        }
        for (sig, s) in [("MADT", self.madt_skipped), ("SRAT", self.srat_skipped)] {
            if let Some(first) = s.first {
                write!(
                    f,
                    " {} short {sig} entries skipped (first: {first});",
                    s.count
                )?;
            }
        }
        Ok(())
    }
}

/// Everything [`discover`] found.
#[derive(Clone, Debug)]
pub struct Discovery {
    pub record: PlatformRecord,
    pub report: Report,
    /// Fixed hardware for the memory hot-plug driver.
    pub fadt: Option<Fadt>,
}

/// The whole boot-time discovery: RSDP → root table → MADT, SRAT, FADT →
/// record. `boot_ram` is the E820 type-1 list as `(base, size)`; `image`
/// the physical ranges the kernel and tasks occupy; `cpuid` runs on the
/// boot CPU. See the crate doc for where `rsdp_hint` comes from.
#[must_use]
pub fn discover<M, C, R, I>(
    mem: &M,
    rsdp_hint: Option<PhysAddr>,
    boot_ram: R,
    image: I,
    cpuid: &C,
) -> Discovery
where
    M: PhysRead,
    C: Cpuid,
    R: IntoIterator<Item = (u64, u64)>,
    I: IntoIterator<Item = (u64, u64)>,
{
    let topology = Topology::from_cpuid(cpuid);
    let root = find_rsdp(mem, rsdp_hint).and_then(|r| RootTable::from_rsdp(mem, &r));
    let (madt, srat, fadt) = match root {
        Ok(root) => (
            Madt::find(mem, &root),
            Srat::find(mem, &root),
            Fadt::find(mem, &root),
        ),
        Err(e) => (Err(e), Err(e), Err(e)),
    };
    let (record, mut report) = build_record(mem, boot_ram, image, madt, srat, &topology);
    report.fadt = fadt.err();
    Discovery {
        record,
        report,
        fadt: fadt.ok(),
    }
}

/// Sorted, de-duplicated proximity domains: the dense node numbering.
struct Nodes {
    domains: [u32; MAX_NODES],
    count: usize,
    dropped: u32,
}

impl Nodes {
    fn insert(&mut self, d: ProximityDomain) {
        let known = &self.domains[..self.count];
        let Err(at) = known.binary_search(&d.0) else {
            return;
        };
        if self.count == MAX_NODES {
            self.dropped += 1;
            return;
        }
        self.domains.copy_within(at..self.count, at + 1);
        self.domains[at] = d.0;
        self.count += 1;
    }

    /// The node index of `d`; domains that did not fit map to node 0.
    fn index(&self, d: ProximityDomain) -> u32 {
        self.domains[..self.count]
            .binary_search(&d.0)
            .map_or(0, |i| i as u32)
    }
}

/// Builds the record. `madt`/`srat` are what [`Madt::find`] and
/// [`Srat::find`] returned; an SRAT that is simply absent
/// ([`AcpiError::TableNotFound`]) means "no NUMA" and is not a problem.
#[must_use]
pub fn build_record<M, R, I>(
    mem: &M,
    boot_ram: R,
    image: I,
    madt: Result<Madt, AcpiError>,
    srat: Result<Srat, AcpiError>,
    topology: &Topology,
) -> (PlatformRecord, Report)
where
    M: PhysRead,
    R: IntoIterator<Item = (u64, u64)>,
    I: IntoIterator<Item = (u64, u64)>,
{
    let mut rec = PlatformRecord::new();
    let mut report = Report::default();
    if topology.source == TopologySource::Legacy {
        rec.flags.insert(RecordFlags::TOPOLOGY_LEGACY);
    }

    let srat = match srat {
        Ok(s) => {
            rec.flags.insert(RecordFlags::SRAT_PRESENT);
            report.srat_skipped = s.skipped;
            Some(s)
        }
        Err(AcpiError::TableNotFound { sig }) if sig == Signature::SRAT => None,
        Err(e) => {
            report.srat = Some(e);
            rec.flags.insert(RecordFlags::FALLBACK_USED);
            None
        }
    };

    // Nodes: every enabled domain the SRAT mentions, or just domain 0.
    let mut nodes = Nodes {
        domains: [0; MAX_NODES],
        count: 0,
        dropped: 0,
    };
    if let Some(s) = &srat {
        s.cpus(mem).for_each(|c| nodes.insert(c.domain));
        s.memory(mem).for_each(|m| nodes.insert(m.domain));
    }
    if nodes.count == 0 {
        nodes.insert(ProximityDomain(0));
    }
    report.nodes_dropped = nodes.dropped;
    for &proximity in &nodes.domains[..nodes.count] {
        // Cannot fail: nodes.count <= MAX_NODES.
        let _ = rec.push_node(NodeInfo {
            proximity,
            flags: NodeFlags::default(),
        });
    }

    add_ram(&mut rec, &mut report, mem, srat.as_ref(), &nodes, boot_ram);
    add_cpus(
        &mut rec,
        &mut report,
        mem,
        madt,
        srat.as_ref(),
        &nodes,
        topology,
    );

    for (base, size) in image {
        if size == 0 {
            continue;
        }
        if rec.push_image(PhysRange { base, size }).is_err() {
            report.image_dropped += 1;
        }
    }

    if let Some(s) = &srat {
        add_hotplug(&mut rec, &mut report, mem, s, madt.as_ref().ok(), &nodes);
    }

    // Node flags and the package count, from what was recorded.
    let mut flags = [NodeFlags::default(); MAX_NODES];
    // Node indices are below the node count by construction; `get_mut`
    // keeps a broken invariant from becoming a panic.
    let mut mark = |node: u32, f: NodeFlags| {
        if let Some(slot) = flags.get_mut(node as usize) {
            slot.insert(f);
        }
    };
    rec.cpus()
        .iter()
        .for_each(|c| mark(c.node, NodeFlags::HAS_CPUS));
    rec.ram()
        .iter()
        .for_each(|r| mark(r.node, NodeFlags::HAS_RAM));
    if let Some(h) = rec.hotplug {
        mark(h.node, NodeFlags::HAS_HOTPLUG);
    }
    for (n, f) in rec.nodes_mut().iter_mut().zip(flags) {
        n.flags = f;
    }
    // At most MAX_CPUS CPUs, so the default bound never overflows.
    rec.package_count = <abi::platform::Packages>::of_record(&rec).count() as u32;

    let skipped = [report.madt_skipped, report.srat_skipped];
    if skipped.iter().any(|s| s.count != 0) {
        rec.flags.insert(RecordFlags::ENTRIES_SKIPPED);
    }
    if report.cpus_dropped
        + report.ram_dropped
        + report.ram_rejected
        + report.image_dropped
        + report.nodes_dropped
        != 0
        || skipped.iter().any(|s| s.lost_placement)
    {
        rec.flags.insert(RecordFlags::TRUNCATED);
    }
    (rec, report)
}

/// Splits each boot RAM range at SRAT memory-affinity boundaries. Parts no
/// enabled entry covers go to node 0.
fn add_ram<M: PhysRead>(
    rec: &mut PlatformRecord,
    report: &mut Report,
    mem: &M,
    srat: Option<&Srat>,
    nodes: &Nodes,
    boot_ram: impl IntoIterator<Item = (u64, u64)>,
) {
    for (base, size) in boot_ram {
        let Some(end) = base.checked_add(size) else {
            report.ram_rejected += 1;
            continue;
        };
        let mut cursor = base;
        let mut overlapped = false;
        // Terminates: every step moves `cursor` strictly forward (to an
        // entry's end, an entry's start above it, a recorded range's end,
        // or `end`), and a full record stops the walk.
        while cursor < end {
            // Bytes an earlier entry recorded are skipped; a segment stops
            // where the next recorded range begins.
            if let Some(r) = rec
                .ram()
                .iter()
                .find(|r| r.base <= cursor && cursor - r.base < r.size)
            {
                overlapped = true;
                cursor = (r.base + r.size).min(end);
                continue;
            }
            let stop = rec
                .ram()
                .iter()
                .filter(|r| r.base > cursor)
                .map(|r| r.base)
                .fold(end, u64::min);
            let (node, seg_end) = match srat {
                Some(s) => segment(mem, s, nodes, cursor, stop),
                None => (0, stop),
            };
            let r = RamRange {
                base: cursor,
                size: seg_end - cursor,
                node,
            };
            if rec.push_ram(r).is_err() {
                report.ram_dropped += 1;
                break;
            }
            cursor = seg_end;
        }
        report.ram_overlapping += u32::from(overlapped);
    }
}

/// The node of the byte at `cursor` and where its segment ends (≤ `end`).
fn segment<M: PhysRead>(mem: &M, s: &Srat, nodes: &Nodes, cursor: u64, end: u64) -> (u32, u64) {
    let mut next_start = end;
    for m in s.memory(mem) {
        if m.contains(cursor) {
            return (nodes.index(m.domain), m.end().min(end));
        }
        if m.base.0 > cursor {
            next_start = next_start.min(m.base.0);
        }
    }
    (0, next_start)
}

fn add_cpus<M: PhysRead>(
    rec: &mut PlatformRecord,
    report: &mut Report,
    mem: &M,
    madt: Result<Madt, AcpiError>,
    srat: Option<&Srat>,
    nodes: &Nodes,
    topology: &Topology,
) {
    let cpu = |apic: ApicId, enabled: bool| CpuInfo {
        apic_id: apic.0,
        package: topology.package_of(apic),
        node: srat
            .and_then(|s| s.cpu_domain(mem, apic))
            .map_or(0, |d| nodes.index(d)),
        enabled,
    };
    if let Ok(m) = &madt {
        // Noted even if no processor survives: the skipped entries may be
        // why.
        report.madt_skipped = m.skipped;
    }
    let madt = madt.and_then(|m| {
        if m.processors(mem).any(|p| p.enabled) {
            Ok(m)
        } else {
            Err(AcpiError::NoEntries {
                sig: Signature::MADT,
            })
        }
    });
    let boot_known = match madt {
        Ok(m) => {
            rec.flags.insert(RecordFlags::MADT_PRESENT);
            // Bounded: one pass over a validated MADT; the SRAT lookup in
            // `cpu` runs at most MAX_CPUS times (checked before the call),
            // so a huge MADT against a huge SRAT stays linear.
            for p in m.processors(mem) {
                let same = rec.cpus_mut().iter_mut().find(|c| c.apic_id == p.apic_id.0);
                if let Some(known) = same {
                    // Listed twice (type 0 and type 9): one CPU, usable now
                    // if either entry says so.
                    known.enabled |= p.enabled;
                    continue;
                }
                if rec.cpus().len() == MAX_CPUS {
                    report.cpus_dropped += 1;
                    continue;
                }
                // Cannot fail: capacity checked above.
                let _ = rec.push_cpu(cpu(p.apic_id, p.enabled));
            }
            // Without CPUID we cannot tell which CPU is the boot CPU.
            topology.source == TopologySource::None
                || rec
                    .cpus()
                    .iter()
                    .any(|c| c.apic_id == topology.boot_apic_id.0)
        }
        Err(e) => {
            report.madt = Some(e);
            rec.flags.insert(RecordFlags::FALLBACK_USED);
            false
        }
    };
    if !boot_known {
        if report.madt.is_none() {
            report.boot_cpu_added = true;
            rec.flags.insert(RecordFlags::BOOT_CPU_ADDED);
        }
        if rec.push_cpu(cpu(topology.boot_apic_id, true)).is_err() {
            report.cpus_dropped += 1;
        }
    }
}

/// The hot-plug window: enabled, hot-pluggable SRAT memory that does not
/// overlap boot RAM (hot-pluggable memory present at boot is RAM, not a
/// window). QEMU emits exactly one, covering the device-memory region.
fn add_hotplug<M: PhysRead>(
    rec: &mut PlatformRecord,
    report: &mut Report,
    mem: &M,
    s: &Srat,
    madt: Option<&Madt>,
    nodes: &Nodes,
) {
    for m in s.memory(mem) {
        let overlaps_ram = rec
            .ram()
            .iter()
            .any(|r| r.base < m.end() && m.base.0 < r.base + r.size);
        if !m.hot_pluggable || m.length == 0 || overlaps_ram {
            continue;
        }
        if covers_mmio(mem, madt, m.base.0, m.end()) {
            report.hotplug_refused += 1;
            continue;
        }
        report.hotplug_windows += 1;
        if rec.hotplug.is_none() {
            rec.hotplug = Some(HotplugWindow {
                base: m.base.0,
                size: m.length,
                node: nodes.index(m.domain),
            });
        }
    }
    if report.hotplug_windows > 1 {
        rec.flags.insert(RecordFlags::HOTPLUG_AMBIGUOUS);
    }
}

/// The 32-bit MMIO the architecture fixes at its top: I/O APICs from 0xFEC0_0000, the local
/// APIC at 0xFEE0_0000 by default, and the firmware's flash below 4 GiB.
const APIC_AND_FIRMWARE_MMIO: (u64, u64) = (0xFEC0_0000, 1 << 32);
/// Memory below 1 MiB: legacy video and ROMs, never hot-plugged RAM.
const LOW_MIB: u64 = 1 << 20;

/// Whether `[base, end)` covers the first MiB, the APIC and firmware MMIO below 4 GiB, or the
/// 4 KiB register page of the local APIC or an I/O APIC the MADT names (wherever it moved them).
fn covers_mmio<M: PhysRead>(mem: &M, madt: Option<&Madt>, base: u64, end: u64) -> bool {
    let hits = |a: u64, b: u64| base < b && a < end;
    let page = |a: u64| hits(a, a.saturating_add(4096));
    if base < LOW_MIB || hits(APIC_AND_FIRMWARE_MMIO.0, APIC_AND_FIRMWARE_MMIO.1) {
        return true;
    }
    madt.is_some_and(|t| {
        page(t.lapic_address.0)
            || t.entries(mem)
                .any(|e| matches!(e, Ok(MadtEntry::IoApic(io)) if page(io.address.0)))
    })
}
