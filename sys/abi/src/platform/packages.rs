//! The physical packages (sockets) of a list of CPUs: the one derivation of "how many
//! packages", "which dense index is package id P" and "which CPU leads each package" that the
//! kernel (the emulator's per-LP package), the platform scan (the record's package count) and
//! tdx-host (where TDH.SYS.KEY.CONFIG runs) share.
//!
//! Pattern: [`Packages`] is built once from the package id of each CPU in some order (the
//! record's, or the kernel's CPU order); a CPU given as `None` (disabled, say) takes no part.
//! Package ids are opaque and may be sparse (`0, 4, 9`); the dense index of a package is its
//! rank in order of first appearance.
//!
//! Invariants:
//! - at most `N` packages are tracked, in order of first appearance; a package first seen
//!   after the table is full is not tracked ([`Packages::index_of`] is `None` for it) and sets
//!   [`Packages::overflowed`], so a hostile or oversized list is reported, never a panic or a
//!   silent wrap;
//! - the leader of a package is the position, in the input, of its first CPU; leaders come in
//!   input order, one per tracked package.

/// Most packages tracked by default: one per CPU a record can hold, so a decoded record never
/// overflows it.
pub const MAX_PACKAGES: usize = super::MAX_CPUS;

/// The packages of a CPU list, in order of first appearance (at most `N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packages<const N: usize = MAX_PACKAGES> {
    /// Package ids; `ids[..count]` are valid, in order of first appearance.
    ids: [u32; N],
    /// Input position of the first CPU of `ids[i]` (u32 keeps the table small; a position
    /// past `u32::MAX` is treated like a package past the bound).
    leaders: [u32; N],
    count: usize,
    overflowed: bool,
}

impl<const N: usize> Default for Packages<N> {
    fn default() -> Self {
        Self {
            ids: [0; N],
            leaders: [0; N],
            count: 0,
            overflowed: false,
        }
    }
}

impl<const N: usize> Packages<N> {
    /// The packages of `cpus`, each CPU's package id in order (`None`: the CPU takes no part).
    pub fn from_cpus(cpus: impl IntoIterator<Item = Option<u32>>) -> Self {
        let mut p = Self::default();
        for (position, package) in cpus.into_iter().enumerate() {
            let Some(package) = package else { continue };
            if p.ids().contains(&package) {
                continue;
            }
            let slot = (p.ids.get_mut(p.count), p.leaders.get_mut(p.count));
            match (slot, u32::try_from(position)) {
                ((Some(id), Some(leader)), Ok(position)) => {
                    *id = package;
                    *leader = position;
                    p.count += 1;
                }
                _ => p.overflowed = true,
            }
        }
        p
    }

    /// The packages of every CPU the record lists, enabled or not, in record order: a disabled
    /// CPU's socket is still a socket of the machine.
    #[must_use]
    pub fn of_record(record: &super::PlatformRecord) -> Self {
        Self::from_cpus(record.cpus().iter().map(|c| Some(c.package)))
    }

    /// Tracked packages.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Tracked package ids, in order of first appearance.
    #[must_use]
    pub fn ids(&self) -> &[u32] {
        &self.ids[..self.count]
    }

    /// Dense index of package id `package`, or `None` when no CPU has it (or it came after the
    /// table was full).
    #[must_use]
    pub fn index_of(&self, package: u32) -> Option<usize> {
        self.ids().iter().position(|&p| p == package)
    }

    /// Input position of the first CPU of each tracked package, in input order.
    pub fn leaders(&self) -> impl Iterator<Item = usize> + '_ {
        self.leaders[..self.count].iter().map(|&l| l as usize)
    }

    /// [`Packages::leaders`], owning the table (for an iterator that outlives a borrow).
    pub fn into_leaders(self) -> impl Iterator<Item = usize> {
        self.leaders
            .into_iter()
            .take(self.count)
            .map(|l| l as usize)
    }

    /// More packages than `N` appeared; the ones past the bound are not tracked.
    #[must_use]
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::super::{CpuInfo, PlatformRecord};
    use super::Packages;

    fn leaders<const N: usize>(p: &Packages<N>) -> Vec<usize> {
        p.leaders().collect()
    }

    /// Sparse ids get dense indices in order of first appearance; the leader of each is its
    /// first CPU; an id no CPU has has no index.
    #[test]
    fn sparse_ids_become_dense_in_order_of_first_appearance() {
        let p: Packages = Packages::from_cpus([9, 4, 9, 0, 4].map(Some));
        assert_eq!(p.count(), 3);
        assert_eq!(p.ids(), [9, 4, 0]);
        assert_eq!(
            [9, 4, 0, 7].map(|id| p.index_of(id)),
            [Some(0), Some(1), Some(2), None]
        );
        assert_eq!(leaders(&p), [0, 1, 3]);
        assert!(!p.overflowed());
        assert_eq!(p.into_leaders().collect::<Vec<_>>(), [0, 1, 3]);
    }

    /// A CPU given as `None` (disabled) neither leads nor creates a package; its package is
    /// led by its first CPU that takes part.
    #[test]
    fn cpus_that_take_no_part_are_skipped() {
        let p: Packages = Packages::from_cpus([None, Some(0), Some(1), None, Some(1)]);
        assert_eq!(leaders(&p), [1, 2]);
        let p: Packages = Packages::from_cpus([None, Some(5), None]);
        assert_eq!(
            (p.count(), p.index_of(0), leaders(&p)),
            (1, None, [1].to_vec())
        );
        let p: Packages = Packages::from_cpus([None, None]);
        assert_eq!((p.count(), leaders(&p)), (0, Vec::new()));
    }

    /// From a record: every listed CPU counts, a disabled one too, in record order.
    #[test]
    fn a_record_counts_disabled_cpus_sockets() {
        let mut r = PlatformRecord::new();
        for (apic_id, package, enabled) in [(0, 3, true), (1, 3, true), (2, 8, false)] {
            let cpu = CpuInfo {
                apic_id,
                package,
                node: 0,
                enabled,
            };
            r.push_cpu(cpu).unwrap();
        }
        let p: Packages = Packages::of_record(&r);
        assert_eq!((p.ids(), leaders(&p)), ([3, 8].as_slice(), [0, 2].to_vec()));
        assert!(Packages::<4>::of_record(&PlatformRecord::new())
            .ids()
            .is_empty());
    }

    /// More packages than the bound: the first `N` are tracked, the rest have no index and are
    /// reported through `overflowed`; a full-size record never overflows the default bound.
    #[test]
    fn more_packages_than_the_bound_are_reported_not_a_panic() {
        let p = Packages::<2>::from_cpus([0, 1, 0, 2, 3].map(Some));
        assert_eq!((p.count(), p.ids()), (2, [0, 1].as_slice()));
        assert_eq!((p.index_of(2), p.index_of(3)), (None, None));
        assert_eq!(leaders(&p), [0, 1]);
        assert!(p.overflowed());
        let p = Packages::<0>::from_cpus([Some(1)]);
        assert_eq!((p.count(), p.overflowed()), (0, true));

        let mut r = PlatformRecord::new();
        for i in 0..super::super::MAX_CPUS as u32 {
            let cpu = CpuInfo {
                apic_id: i,
                package: u32::MAX - i,
                node: 0,
                enabled: true,
            };
            r.push_cpu(cpu).unwrap();
        }
        let p: Packages = Packages::of_record(&r);
        assert_eq!((p.count(), p.overflowed()), (super::super::MAX_CPUS, false));
        assert_eq!(p.index_of(u32::MAX - 255), Some(255));
    }
}
