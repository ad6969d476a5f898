//! CPU topology: which package (socket) an APIC id belongs to.
//!
//! TDH.SYS.KEY.CONFIG must run once on one CPU of every package, so the
//! record needs a package id per CPU. x86 encodes the topology in the APIC
//! id itself: the package id is the APIC id shifted right by the width of
//! all lower levels (SMT, core, module, tile, die). The boot CPU's CPUID
//! says how wide those are; firmware builds every CPU's id the same way.
//!
//! Pattern: the caller supplies CPUID results through [`Cpuid`] (the kernel
//! executes the instruction; tests answer from tables), so this module is
//! pure. Sources, in order of preference (Intel SDM Vol. 3A §10.9
//! "Hierarchical mapping of shared resources", Vol. 2A CPUID):
//! 1. Leaf 0x1F (V2 extended topology): every level up to die.
//! 2. Leaf 0xB (extended topology): SMT and core levels.
//!    For both, the shift of the last valid sub-leaf (EAX\[4:0\]) is the
//!    package shift; a level type (ECX\[15:8\]) of 0 ends the list.
//! 3. Legacy leaves 1 and 4: CPUID.1:EBX\[23:16\] is the number of
//!    addressable logical processor ids per package (when CPUID.1:EDX.HTT
//!    is set), CPUID.4:EAX\[31:26\]+1 the number of addressable core ids;
//!    the package shift is the order of the larger of the two.
//!
//! APIC ids are 32-bit x2APIC ids throughout (an 8-bit xAPIC id is the
//! same number); [`Topology::package_of`] shifts the whole id, so ids
//! above 255 land in their package like any other.
//!
//! Every sub-leaf walk is bounded by [`MAX_LEVELS`].

/// Most sub-leaves read from leaf 0xB/0x1F. The SDM defines level types 1
/// (SMT) to 5 (die) and 6 (die group); anything beyond is garbage.
pub const MAX_LEVELS: u32 = 8;

/// The four registers of one CPUID query.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Executes (or replays) CPUID on the CPU whose topology is wanted.
pub trait Cpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
}

/// Any `Fn(leaf, subleaf) -> (eax, ebx, ecx, edx)` is a [`Cpuid`], so the
/// kernel can pass a closure around `core::arch::x86_64::__cpuid_count`.
impl<F: Fn(u32, u32) -> (u32, u32, u32, u32)> Cpuid for F {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let (eax, ebx, ecx, edx) = self(leaf, subleaf);
        CpuidResult { eax, ebx, ecx, edx }
    }
}

/// Where the package shift came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TopologySource {
    Leaf1F,
    Leaf0B,
    /// Leaves 1 and 4.
    Legacy,
    /// No usable CPUID answer: every CPU is taken to be in package 0.
    None,
}

/// The package layout of APIC ids, as seen from the boot CPU.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Right shift of an APIC id that yields its package id (0..=32).
    pub package_shift: u32,
    pub source: TopologySource,
    /// The boot CPU's APIC id (x2APIC id from leaf 0xB/0x1F, else the
    /// 8-bit initial APIC id from CPUID.1:EBX\[31:24\]).
    pub boot_apic_id: crate::ApicId,
}

/// `ceil(log2(n))`, with 0 and 1 giving 0.
fn order(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

impl Topology {
    /// One package, for tests and for a CPU that answers nothing useful.
    #[must_use]
    pub const fn single_package(boot_apic_id: crate::ApicId) -> Topology {
        Topology {
            package_shift: 32,
            source: TopologySource::None,
            boot_apic_id,
        }
    }

    /// Reads the boot CPU's topology leaves.
    #[must_use]
    pub fn from_cpuid(c: &impl Cpuid) -> Topology {
        let max_leaf = c.cpuid(0, 0).eax;
        for (leaf, source) in [
            (0x1F, TopologySource::Leaf1F),
            (0xB, TopologySource::Leaf0B),
        ] {
            if max_leaf >= leaf {
                if let Some(t) = extended(c, leaf, source) {
                    return t;
                }
            }
        }
        if max_leaf >= 1 {
            return legacy(c, max_leaf);
        }
        Topology::single_package(crate::ApicId(0))
    }

    /// The package id of a CPU.
    #[must_use]
    pub fn package_of(&self, apic: crate::ApicId) -> u32 {
        apic.0.checked_shr(self.package_shift).unwrap_or(0)
    }
}

/// Leaf 0xB or 0x1F. `None` if the leaf is not implemented: SDM says
/// software must check that sub-leaf 0's EBX\[15:0\] (logical processors at
/// this level) is non-zero.
fn extended(c: &impl Cpuid, leaf: u32, source: TopologySource) -> Option<Topology> {
    let first = c.cpuid(leaf, 0);
    if first.ebx & 0xFFFF == 0 || (first.ecx >> 8) & 0xFF == 0 {
        return None;
    }
    let mut shift = 0;
    for sub in 0..MAX_LEVELS {
        let r = c.cpuid(leaf, sub);
        if (r.ecx >> 8) & 0xFF == 0 {
            break;
        }
        shift = r.eax & 0x1F;
    }
    Some(Topology {
        package_shift: shift,
        source,
        boot_apic_id: crate::ApicId(first.edx),
    })
}

fn legacy(c: &impl Cpuid, max_leaf: u32) -> Topology {
    let one = c.cpuid(1, 0);
    let htt = one.edx & (1 << 28) != 0;
    let logical = if htt { (one.ebx >> 16) & 0xFF } else { 1 };
    // Leaf 4 sub-leaf 0 is valid when its cache type (EAX[4:0]) is not 0.
    let cores = if max_leaf >= 4 {
        let four = c.cpuid(4, 0);
        if four.eax & 0x1F != 0 {
            (four.eax >> 26) + 1
        } else {
            1
        }
    } else {
        1
    };
    Topology {
        package_shift: order(logical.max(cores)),
        source: TopologySource::Legacy,
        boot_apic_id: crate::ApicId(one.ebx >> 24),
    }
}

#[cfg(test)]
mod tests {
    use super::{order, Topology, TopologySource};
    use crate::testutil::qemu_cpuid;
    use crate::ApicId;

    #[test]
    fn order_is_ceil_log2() {
        let got: Vec<u32> = [0, 1, 2, 3, 4, 5, 8, 9, 255, 256].map(order).to_vec();
        assert_eq!(got, [0, 0, 1, 2, 2, 3, 3, 4, 8, 8]);
    }

    #[test]
    fn leaf_0b_gives_package_shift_for_qemu_topologies() {
        // -smp 4,sockets=2: cores=2, threads=1 → shift 1.
        let t = Topology::from_cpuid(&qemu_cpuid(1, 2, 2));
        assert_eq!(
            (t.source, t.package_shift, t.boot_apic_id),
            (TopologySource::Leaf0B, 1, ApicId(2))
        );
        assert_eq!([0, 1, 2, 3].map(|a| t.package_of(ApicId(a))), [0, 0, 1, 1]);
        // threads=2, cores=3 → SMT 1 bit, core 2 bits → shift 3.
        let t = Topology::from_cpuid(&qemu_cpuid(2, 3, 0));
        assert_eq!(t.package_shift, 3);
        assert_eq!(t.package_of(ApicId(8)), 1);
        // -smp 1.
        let t = Topology::from_cpuid(&qemu_cpuid(1, 1, 0));
        assert_eq!(t.package_shift, 0);
    }

    #[test]
    fn leaf_1f_is_preferred_and_includes_dies() {
        // SMT 1 bit, core 3 bits, die 1 bit → package shift 5.
        let c = |leaf: u32, sub: u32| match (leaf, sub) {
            (0, _) => (0x1F, 0, 0, 0),
            (0x1F, 0) => (1, 2, 0x100, 0x21),
            (0x1F, 1) => (4, 16, 0x201, 0x21),
            (0x1F, 2) => (5, 32, 0x502, 0x21),
            (0x1F, n) => (0, 0, n, 0x21),
            (0xB, 0) => (1, 2, 0x100, 0x21),
            (0xB, 1) => (4, 16, 0x201, 0x21),
            _ => (0, 0, 0, 0),
        };
        let t = Topology::from_cpuid(&c);
        assert_eq!(
            (t.source, t.package_shift, t.boot_apic_id),
            (TopologySource::Leaf1F, 5, ApicId(0x21))
        );
        assert_eq!(t.package_of(ApicId(0x21)), 1);
    }

    #[test]
    fn legacy_leaves_when_0b_is_absent() {
        // Max leaf 4: 4 logical per package (HTT), 2 cores → shift 2.
        let c = |leaf: u32, _sub: u32| match leaf {
            0 => (4, 0, 0, 0),
            1 => (0, (5 << 24) | (4 << 16), 0, 1 << 28),
            4 => ((1 << 26) | 0x121, 0, 0, 0),
            _ => (0, 0, 0, 0),
        };
        let t = Topology::from_cpuid(&c);
        assert_eq!(
            (t.source, t.package_shift, t.boot_apic_id),
            (TopologySource::Legacy, 2, ApicId(5))
        );
        assert_eq!(t.package_of(ApicId(5)), 1);
        // Leaf 0xB advertised but empty (EBX = 0): legacy too.
        let c2 = |leaf: u32, sub: u32| {
            if leaf == 0 {
                (0xB, 0, 0, 0)
            } else {
                c(leaf, sub)
            }
        };
        assert_eq!(Topology::from_cpuid(&c2).source, TopologySource::Legacy);
        // No HTT: one logical processor per package.
        let c3 = |leaf: u32, _sub: u32| match leaf {
            0 => (1, 0, 0, 0),
            1 => (0, 3 << 24, 0, 0),
            _ => (0, 0, 0, 0),
        };
        let t = Topology::from_cpuid(&c3);
        assert_eq!((t.package_shift, t.package_of(ApicId(3))), (0, 3));
    }

    #[test]
    fn garbage_cpuid_is_bounded_and_safe() {
        // Every sub-leaf claims a valid level with shift 31: the walk stops
        // at MAX_LEVELS and package_of does not overflow.
        let c = |leaf: u32, _sub: u32| match leaf {
            0 => (u32::MAX, 0, 0, 0),
            _ => (u32::MAX, u32::MAX, u32::MAX, u32::MAX),
        };
        let t = Topology::from_cpuid(&c);
        assert_eq!(t.package_shift, 31);
        assert_eq!(t.package_of(ApicId(u32::MAX)), 1);
        let none = |_: u32, _: u32| (0, 0, 0, 0);
        let t = Topology::from_cpuid(&none);
        assert_eq!(t.source, TopologySource::None);
        assert_eq!(t.package_of(ApicId(u32::MAX)), 0);
    }

    #[test]
    fn packages_of_32_bit_x2apic_ids_come_from_the_full_id() {
        // Leaf 0x1F: SMT 1 bit, core 6 bits, die 1 bit → package shift 8;
        // the boot CPU's id (EDX) is a full 32-bit x2APIC id.
        let c = |leaf: u32, sub: u32| match (leaf, sub) {
            (0, _) => (0x1F, 0, 0, 0),
            (0x1F, 0) => (1, 2, 0x100, 0x1234_5678),
            (0x1F, 1) => (7, 128, 0x201, 0x1234_5678),
            (0x1F, 2) => (8, 256, 0x502, 0x1234_5678),
            (0x1F, n) => (0, 0, n, 0x1234_5678),
            _ => (0, 0, 0, 0),
        };
        let t = Topology::from_cpuid(&c);
        assert_eq!(
            (t.source, t.package_shift, t.boot_apic_id),
            (TopologySource::Leaf1F, 8, ApicId(0x1234_5678))
        );
        let ids = [0xFF, 0x100, 300, 600, 0x1234_5678, 0xFFFF_FFFE];
        assert_eq!(
            ids.map(|a| t.package_of(ApicId(a))),
            [0, 1, 1, 2, 0x12_3456, 0xFF_FFFF]
        );
        // Leaf 0xB as QEMU reports it for 2 threads × 128 cores, from a CPU
        // whose id needs more than 8 bits.
        let t = Topology::from_cpuid(&qemu_cpuid(2, 128, 600));
        assert_eq!(
            (t.source, t.package_shift, t.boot_apic_id),
            (TopologySource::Leaf0B, 8, ApicId(600))
        );
        assert_eq!(t.package_of(ApicId(600)), 2);
    }
}
