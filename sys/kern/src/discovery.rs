//! The platform record: every CPU and every byte, found once at boot.
//!
//! After the direct map is up, the boot CPU reads ACPI (MADT, SRAT, FADT)
//! and CPUID through the `platform` crate, which never trusts a table byte
//! and falls back to "one node, the boot CPU" rather than failing. The
//! record is kept in a static and handed, read-only, to tasks the manifest
//! gives the `platform` capability (tdx-host). Any problem found is
//! printed at boot.

use core::cell::UnsafeCell;

use abi::platform::{PlatformRecord, RecordFlags};
use platform::{PhysAddr, PhysRead};

use crate::arch::paging::phys_to_virt_checked;
use crate::arch::{apic, cpu};
use crate::bootinfo::memory_map;

struct DirectMap;

impl PhysRead for DirectMap {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        let Some(src) = phys_to_virt_checked(pa, buf.len() as u64) else {
            return false;
        };
        // Safety: the range lies inside the direct map (checked above);
        // firmware tables are plain memory and reading them has no effect.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

struct Cell(UnsafeCell<PlatformRecord>);
// Safety: written once by the boot CPU before any other CPU or task runs;
// read-only afterwards.
unsafe impl Sync for Cell {}

static RECORD: Cell = Cell(UnsafeCell::new(PlatformRecord::new()));

struct Encoded(UnsafeCell<([u8; abi::platform::ENCODED_MAX], usize)>);
// Safety: as for `Cell`.
unsafe impl Sync for Encoded {}
static ENCODED: Encoded = Encoded(UnsafeCell::new(([0; abi::platform::ENCODED_MAX], 0)));

/// The record in its wire encoding, for kernel IPC.
#[must_use]
pub fn encoded() -> &'static [u8] {
    // Safety: see `Cell`.
    let (buf, len) = unsafe { &*ENCODED.0.get() };
    &buf[..*len]
}

/// The record (valid after [`discover`]).
#[must_use]
pub fn record() -> &'static PlatformRecord {
    // Safety: see `Cell`.
    unsafe { &*RECORD.0.get() }
}

/// How an ISA IRQ reaches the IOAPIC (MADT interrupt source override).
#[derive(Copy, Clone, Debug, Default)]
pub struct IrqRoute {
    pub gsi: u32,
    pub level: bool,
    pub active_low: bool,
}

const MAX_OVERRIDES: usize = 16;

/// IRQ routes (with their count) and the FADT.
type ExtraTables = (
    [(u8, IrqRoute); MAX_OVERRIDES],
    usize,
    Option<platform::fadt::Fadt>,
);

struct Extra(UnsafeCell<ExtraTables>);
// Safety: as for `Cell`.
unsafe impl Sync for Extra {}
static EXTRA: Extra = Extra(UnsafeCell::new((
    [(
        0,
        IrqRoute {
            gsi: 0,
            level: false,
            active_low: false,
        },
    ); MAX_OVERRIDES],
    0,
    None,
)));

/// The route of ISA IRQ `irq`: the MADT override, or identity, edge,
/// active high (the ISA default).
#[must_use]
pub fn irq_route(irq: u8) -> IrqRoute {
    // Safety: see `Cell`.
    let (routes, n, _) = unsafe { &*EXTRA.0.get() };
    routes[..*n]
        .iter()
        .find(|(source, _)| *source == irq)
        .map_or(
            IrqRoute {
                gsi: u32::from(irq),
                level: false,
                active_low: false,
            },
            |(_, r)| *r,
        )
}

/// The FADT's hot-plug-relevant fields, if the table was found.
#[must_use]
pub fn fadt() -> Option<platform::fadt::Fadt> {
    // Safety: see `Cell`.
    unsafe { (*EXTRA.0.get()).2 }
}

/// Reads the MADT's interrupt source overrides.
fn read_overrides(rsdp: Option<u64>) -> ([(u8, IrqRoute); MAX_OVERRIDES], usize) {
    use platform::madt::{MadtEntry, Polarity, Trigger};
    let mut out = [(0, IrqRoute::default()); MAX_OVERRIDES];
    let mut n = 0;
    let madt = platform::acpi::find_rsdp(&DirectMap, rsdp.map(PhysAddr))
        .and_then(|r| platform::acpi::RootTable::from_rsdp(&DirectMap, &r))
        .and_then(|root| platform::madt::Madt::find(&DirectMap, &root));
    if let Ok(madt) = madt {
        for e in madt.entries(&DirectMap) {
            if let Ok(MadtEntry::SourceOverride(o)) = e {
                if n < MAX_OVERRIDES {
                    let route = IrqRoute {
                        gsi: o.gsi,
                        level: o.trigger() == Trigger::Level,
                        active_low: o.polarity() == Polarity::ActiveLow,
                    };
                    out[n] = (o.source, route);
                    n += 1;
                }
            }
        }
    }
    (out, n)
}

/// Fills the platform record. `image` lists the physical ranges the kernel
/// and tasks occupy; `lapic` is the mode the kernel drives the local APICs
/// in, which the record reports (flag `X2APIC`). Returns the system limit
/// the machine exceeds, if any: the caller refuses to go on.
#[must_use]
pub fn discover(image: &[(u64, u64)], lapic: apic::Mode) -> Option<abi::limits::Exceeded> {
    let map = memory_map();
    let ram = map
        .ranges()
        .iter()
        .filter(|r| r.kind == 1)
        .map(|r| (r.base, r.size));
    let mut found = platform::discover(
        &DirectMap,
        map.rsdp.map(PhysAddr),
        ram,
        image.iter().copied(),
        &|leaf, sub| cpu::cpuid(leaf, sub),
    );
    if !found.report.is_clean() {
        crate::kprintln!("platform: {}", found.report);
    }
    let exceeded = found.report.exceeded(&found.record);
    if lapic == apic::Mode::X2Apic {
        found.record.flags.insert(RecordFlags::X2APIC);
    }
    let (routes, nroutes) = read_overrides(map.rsdp);
    // Safety: single-threaded boot, before any reader.
    unsafe {
        *EXTRA.0.get() = (routes, nroutes, found.fadt);
        *RECORD.0.get() = found.record;
        let (buf, len) = &mut *ENCODED.0.get();
        match abi::platform::encode(&*RECORD.0.get(), buf) {
            Ok(n) => *len = n,
            Err(e) => crate::kprintln!("platform: record cannot be encoded: {e:?}"),
        }
    }
    exceeded
}

/// Adds an image range found after discovery (the per-CPU area) to the
/// record and re-encodes it. Boot CPU only, before any task runs.
///
/// # Errors
/// The record has no room for another image range.
pub fn add_image(base: u64, size: u64) -> Result<(), abi::platform::Full> {
    // Safety: as for `discover`: single-threaded boot, no reader yet.
    unsafe {
        let record = &mut *RECORD.0.get();
        record.push_image(abi::platform::PhysRange { base, size })?;
        let (buf, len) = &mut *ENCODED.0.get();
        match abi::platform::encode(record, buf) {
            Ok(n) => *len = n,
            Err(e) => crate::kprintln!("platform: record cannot be encoded: {e:?}"),
        }
    }
    Ok(())
}

/// Calls `cover` with every enabled SRAT memory range, hot-pluggable ones
/// included (the direct map covers them all); nothing without an SRAT.
pub fn srat_memory(mut cover: impl FnMut(u64, u64)) {
    let srat = platform::acpi::find_rsdp(&DirectMap, memory_map().rsdp.map(PhysAddr))
        .and_then(|r| platform::acpi::RootTable::from_rsdp(&DirectMap, &r))
        .and_then(|root| platform::srat::Srat::find(&DirectMap, &root));
    if let Ok(srat) = srat {
        for m in srat.memory(&DirectMap) {
            cover(m.base.0, m.length);
        }
    }
}

/// Prints the boot banner: CPUs, packages, nodes and memory by node.
pub fn print_banner() {
    let r = record();
    crate::kprintln!(
        "platform: {} CPUs, {} packages, {} NUMA nodes (flags {:#x})",
        r.cpus().len(),
        r.package_count,
        r.nodes().len(),
        r.flags.0
    );
    crate::kprintln!("  cpu  apic-id  package  node  enabled");
    for (i, c) in r.cpus().iter().enumerate() {
        crate::kprintln!(
            "  {i:>3}  {:>7}  {:>7}  {:>4}  {}",
            c.apic_id,
            c.package,
            c.node,
            c.enabled
        );
    }
    crate::kprintln!("  node  proximity  RAM");
    for (i, n) in r.nodes().iter().enumerate() {
        // Saturating: the record's ranges are disjoint, but a banner is no place to panic.
        let bytes = r
            .ram()
            .iter()
            .filter(|m| m.node as usize == i)
            .fold(0u64, |sum, m| sum.saturating_add(m.size));
        crate::kprintln!("  {i:>4}  {:>9}  {:>6} MiB", n.proximity, bytes >> 20);
    }
    crate::kprintln!("  RAM range                          node");
    for m in r.ram() {
        crate::kprintln!(
            "  {:#014x}..{:#014x}  {:>4}",
            m.base,
            m.base + m.size,
            m.node
        );
    }
    for i in r.image() {
        crate::kprintln!("  image {:#014x}..{:#014x}", i.base, i.base + i.size);
    }
    match r.hotplug {
        Some(h) => crate::kprintln!(
            "  hot-plug window {:#014x}..{:#014x} node {}",
            h.base,
            h.base + h.size,
            h.node
        ),
        None => crate::kprintln!("  no hot-plug window"),
    }
}
