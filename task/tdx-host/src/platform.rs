//! The platform as bring-up sees it, built once from the kernel's platform record and the
//! manifest's boot-offline ranges: owned tables behind the borrowed [`PlatformView`].
//!
//! Pattern: [`Platform::from_record`] is a pure function of the record, the APIC ids of the
//! CPUs the kernel runs (in its CPU order) and the KeyID partition, so the server binary only
//! makes the three syscalls and the derivations are tested on the host.
//!
//! Invariants:
//! - `cpus[i]` is the kernel's CPU `i` (a [`CpuIndex`]); a running CPU the record does not list
//!   still counts (package 0, node 0): TDX needs every CPU, so none is dropped silently;
//! - boot RAM holds no byte of a boot-offline range (those are in `boot_offline` only), and
//!   every byte of the record's RAM is in one of the two;
//! - `complete` is false when anything did not fit (or the record was truncated): bring-up then
//!   stops at Detect rather than configure TDX without some CPU or memory;
//! - the set of packages is derived in one place, [`abi::platform::Packages`], through
//!   [`PlatformView::package_leaders`].

use abi::platform::{Packages, PlatformRecord, RecordFlags};
use heapless::Vec;
use tdx_planner::addr::PhysRange;
use tdx_planner::types::{MemRange, MAX_MEMORY_RANGES};

use crate::seam::{Cpu, CpuIndex, KeyIdPartition, PlatformView};

/// Most CPUs tracked (the record's capacity).
pub const MAX_CPUS: usize = abi::platform::MAX_CPUS;
/// Most image ranges tracked.
pub const MAX_IMAGE: usize = 8;

/// Owned platform tables (about 6 KiB); [`Platform::view`] lends them to bring-up.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    cpus: Vec<Cpu, MAX_CPUS>,
    ram: Vec<MemRange, MAX_MEMORY_RANGES>,
    offline: Vec<MemRange, MAX_MEMORY_RANGES>,
    image: Vec<PhysRange, MAX_IMAGE>,
    hotplug_window: Option<PhysRange>,
    keyids: Option<KeyIdPartition>,
    nodes: u16,
    complete: bool,
}

impl Platform {
    /// No record could be read: no CPU, no memory, incomplete (bring-up stops at Detect).
    #[must_use]
    pub fn unreadable() -> Self {
        Platform {
            nodes: 1,
            ..Platform::default()
        }
    }

    /// The platform of `record`: the running CPUs by their APIC ids (`None`: the CPU did not
    /// say), its RAM minus the manifest's `boot_offline` ranges `(base, size, node)`, which are
    /// kept apart, its image ranges and hot-plug window, and the KeyID partition (`None`: no
    /// TDX KeyIDs readable).
    #[must_use]
    pub fn from_record(
        record: &PlatformRecord,
        running_apic_ids: impl IntoIterator<Item = Option<u32>>,
        boot_offline: &[(u64, u64, u16)],
        keyids: Option<KeyIdPartition>,
    ) -> Self {
        let mut p = Platform::unreadable();
        let mut complete = !record.flags.contains(RecordFlags::TRUNCATED);
        for apic in running_apic_ids {
            let info = apic.and_then(|a| record.cpus().iter().find(|c| c.apic_id == a));
            let cpu = Cpu {
                package: info.map_or(0, |c| c.package),
                node: info.map_or(0, |c| c.node as u16),
                enabled: true,
            };
            complete &= p.cpus.push(cpu).is_ok();
        }
        let offline = boot_offline.iter().map(|&(base, size, node)| MemRange {
            range: PhysRange::saturating(base, size),
            node,
        });
        for m in offline.clone() {
            complete &= p.offline.push(m).is_ok();
        }
        for m in record.ram() {
            let r = MemRange {
                range: PhysRange::saturating(m.base, m.size),
                node: m.node as u16,
            };
            complete &= minus(r, offline.clone().map(|o| o.range), &mut p.ram);
        }
        for r in record.image() {
            complete &= p.image.push(PhysRange::saturating(r.base, r.size)).is_ok();
        }
        p.hotplug_window = record.hotplug.and_then(|h| PhysRange::new(h.base, h.size));
        p.nodes = (record.nodes().len() as u16).max(1);
        p.keyids = keyids;
        p.complete = complete;
        p
    }

    /// The borrowed view bring-up reads.
    #[must_use]
    pub fn view(&self) -> PlatformView<'_> {
        PlatformView {
            cpus: &self.cpus,
            ram: &self.ram,
            boot_offline: &self.offline,
            image: &self.image,
            keyids: self.keyids,
            nodes: self.nodes,
            complete: self.complete,
        }
    }

    /// The firmware's hot-plug window, if any.
    #[must_use]
    pub fn hotplug_window(&self) -> Option<PhysRange> {
        self.hotplug_window
    }
}

/// Pushes `r` minus every range of `holes` into `out`, piece by piece in address order; false
/// when `out` (or the 16-piece scratch list) is full.
fn minus(
    r: MemRange,
    holes: impl Iterator<Item = PhysRange>,
    out: &mut Vec<MemRange, MAX_MEMORY_RANGES>,
) -> bool {
    let end = |x: PhysRange| x.base().0.saturating_add(x.size().0);
    let mut pieces: Vec<(u64, u64), 16> = Vec::new();
    let _ = pieces.push((r.range.base().0, end(r.range)));
    let mut fits = true;
    for h in holes {
        let (hb, he) = (h.base().0, end(h));
        let mut next: Vec<(u64, u64), 16> = Vec::new();
        for &(pb, pe) in &pieces {
            if he <= pb || hb >= pe {
                fits &= next.push((pb, pe)).is_ok();
                continue;
            }
            if pb < hb {
                fits &= next.push((pb, hb)).is_ok();
            }
            if he < pe {
                fits &= next.push((he, pe)).is_ok();
            }
        }
        pieces = next;
    }
    for (b, e) in pieces {
        let m = MemRange {
            range: PhysRange::saturating(b, e - b),
            node: r.node,
        };
        fits &= out.push(m).is_ok();
    }
    fits
}

impl PlatformView<'_> {
    /// The first enabled CPU of each physical package, in CPU order: where TDH.SYS.KEY.CONFIG
    /// runs (once per package, §3.2), and the count of packages the init report gives.
    /// Derived by [`abi::platform::Packages`] from the enabled CPUs; a [`Platform`] holds at
    /// most [`MAX_CPUS`] CPUs, the bound of that table, so no package is left out.
    pub fn package_leaders(&self) -> impl Iterator<Item = CpuIndex> + '_ {
        let enabled = self.cpus.iter().map(|c| c.enabled.then_some(c.package));
        <Packages>::from_cpus(enabled)
            .into_leaders()
            .map(|i| CpuIndex(i as u32))
    }

    /// Bytes of boot RAM (online, then kept offline), for the bring-up summary.
    #[must_use]
    pub fn ram_bytes(&self) -> (u64, u64) {
        let sum = |m: &[MemRange]| m.iter().map(|m| m.range.size().0).sum::<u64>();
        (sum(self.ram), sum(self.boot_offline))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use abi::platform::{CpuInfo, NodeInfo, PlatformRecord, RamRange, RecordFlags};
    use tdx_planner::addr::PhysRange;

    use super::Platform;
    use crate::seam::{CpuIndex, KeyIdPartition};

    const MIB: u64 = 1 << 20;

    fn record() -> PlatformRecord {
        let mut r = PlatformRecord::new();
        for node in 0..2 {
            r.push_node(NodeInfo::default()).unwrap();
            r.push_ram(RamRange {
                base: (node as u64 + 1) * 256 * MIB,
                size: 256 * MIB,
                node,
            })
            .unwrap();
        }
        // APIC ids 0..4; packages 0, 0, 1, 1; nodes follow the packages.
        for apic in 0..4 {
            let cpu = CpuInfo {
                apic_id: apic,
                package: apic / 2,
                node: apic / 2,
                enabled: true,
            };
            r.push_cpu(cpu).unwrap();
        }
        r
    }

    /// Boot RAM loses exactly the boot-offline ranges (split where one sits inside a range),
    /// which are kept apart with their node; CPUs take package and node from the record by
    /// APIC id, in the kernel's CPU order.
    #[test]
    fn record_becomes_ram_minus_boot_offline_and_cpus_in_kernel_order() {
        let offline = [(300 * MIB, 16 * MIB, 0), (512 * MIB, 16 * MIB, 1)];
        let keyids = Some(KeyIdPartition {
            nr_mktme: 15,
            nr_tdx: 48,
        });
        let running = [Some(3), Some(0), None];
        let p = Platform::from_record(&record(), running, &offline, keyids);
        let v = p.view();
        let ram: std::vec::Vec<_> = v.ram.iter().map(|m| (m.range, m.node)).collect();
        assert_eq!(
            ram,
            [
                (PhysRange::literal(256 * MIB, 44 * MIB), 0),
                (PhysRange::literal(316 * MIB, 196 * MIB), 0),
                (PhysRange::literal(528 * MIB, 240 * MIB), 1),
            ]
        );
        assert_eq!(v.boot_offline.len(), 2);
        assert_eq!(v.ram_bytes(), (480 * MIB, 32 * MIB));
        let cpus: std::vec::Vec<_> = v.cpus.iter().map(|c| (c.package, c.node)).collect();
        assert_eq!(cpus, [(1, 1), (0, 0), (0, 0)]);
        assert!(v.complete);
        assert_eq!((v.nodes, v.keyids), (2, keyids));
    }

    /// One leader per package: the first enabled CPU of it, in CPU order.
    #[test]
    fn package_leaders_are_the_first_enabled_cpu_of_each_package() {
        let p = Platform::from_record(&record(), [0, 2, 1, 3].map(Some), &[], None);
        let leaders: std::vec::Vec<_> = p.view().package_leaders().collect();
        assert_eq!(leaders, [CpuIndex(0), CpuIndex(1)]);
        let mut cpus = p.view().cpus.to_vec();
        cpus[0].enabled = false;
        let v = super::PlatformView {
            cpus: &cpus,
            ..p.view()
        };
        let leaders: std::vec::Vec<_> = v.package_leaders().collect();
        assert_eq!(leaders, [CpuIndex(1), CpuIndex(2)]);

        // A running CPU the record does not list counts in package 0 (the invariant above);
        // with package 0's CPUs listed after it, it leads package 0.
        let p = Platform::from_record(&record(), [None, Some(3), Some(0)], &[], None);
        let leaders: std::vec::Vec<_> = p.view().package_leaders().collect();
        assert_eq!(leaders, [CpuIndex(0), CpuIndex(1)]);
        // Sparse package ids and a package whose CPUs are all disabled.
        let cpus =
            [(7, true), (3, false), (7, true), (3, false), (12, true)].map(|(package, enabled)| {
                crate::seam::Cpu {
                    package,
                    node: 0,
                    enabled,
                }
            });
        let v = super::PlatformView {
            cpus: &cpus,
            ..p.view()
        };
        let leaders: std::vec::Vec<_> = v.package_leaders().collect();
        assert_eq!(leaders, [CpuIndex(0), CpuIndex(4)]);
    }

    /// A truncated record, or more pieces than the tables hold, is incomplete, never silently
    /// short; an unreadable record has no CPU and is incomplete.
    #[test]
    fn anything_that_does_not_fit_makes_the_platform_incomplete() {
        let mut r = record();
        r.flags.insert(RecordFlags::TRUNCATED);
        assert!(
            !Platform::from_record(&r, [Some(0)], &[], None)
                .view()
                .complete
        );
        let holes: std::vec::Vec<_> = (0..40).map(|i| (260 * MIB + i * 2 * MIB, MIB, 0)).collect();
        assert!(
            !Platform::from_record(&record(), [Some(0)], &holes, None)
                .view()
                .complete
        );
        let u = Platform::unreadable();
        assert!(u.view().cpus.is_empty() && !u.view().complete);
    }
}
