//! Planner inputs, outputs, limits and errors.
//!
//! Pattern: plain data with fixed capacities (`heapless`), so the planner never allocates and the
//! caller decides where the large output lives (a `static` or a task's data section, not the
//! stack). Invariants of a [`Plan`] produced by [`crate::plan_tdmrs`]:
//! - TDMRs are sorted, non-overlapping, 1 GiB-aligned with non-zero 1 GiB-multiple sizes (§6);
//! - reserved areas are 4 KiB-aligned, sorted, non-overlapping, inside their TDMR, and at most
//!   `max_reserved_per_tdmr` of them (the ABI conversion null-terminates the rest, §5.3);
//! - every PAMT is 4 KiB-aligned, at least `(tdmr_size / page_size) * entry_size` bytes (§6),
//!   inside host RAM of one CMR, inside a reserved area of the TDMR holding it, and clear of
//!   every other PAMT and of the caller's excluded ranges.
//!
//! Every stage of the planner uses these types, so they depend on [`crate::addr`] alone.

use core::fmt;

use heapless::Vec;

use crate::addr::{align_down, align_up, ByteLen, PhysAddr, PhysRange, Span, GIB};

/// Maximum CMRs (module limit MAX_CMR, §5.1).
pub const MAX_CMRS: usize = 32;
/// Maximum memory ranges: online `memory` plus `offline` together (the system limit
/// `abi::limits::MAX_PLAN_RANGES`).
pub const MAX_MEMORY_RANGES: usize = abi::limits::MAX_PLAN_RANGES;
/// Maximum excluded ranges (kernel image, boot modules, firmware tables the host keeps).
pub const MAX_EXCLUDED: usize = 16;
/// Maximum TDMRs (the system limit `abi::limits::MAX_TDMRS`, at most the module's MAX_TDMRS,
/// §5.3); also the output capacity.
pub const MAX_TDMRS: usize = abi::limits::MAX_TDMRS;
const _: () = assert!(MAX_TDMRS <= tdx_abi::MAX_TDMRS);
/// Reserved-area slots per TDMR_INFO (§5.3); also the output capacity.
pub const MAX_RESERVED_PER_TDMR: usize = 16;
/// Worst case: every PAMT of every TDMR placed on its own.
pub const MAX_PAMT_BLOCKS: usize = MAX_TDMRS * 3;
/// Candidate TDMRs the planner may hold before merging down to `max_tdmrs`.
pub const MAX_WORK_TDMRS: usize = 256;

/// Module limits read with TDH.SYS.RD (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// MAX_TDMRS; values above [`MAX_TDMRS`] are clamped to it.
    pub max_tdmrs: u16,
    /// MAX_RESERVED_PER_TDMR; values above [`MAX_RESERVED_PER_TDMR`] are clamped to it.
    pub max_reserved_per_tdmr: u16,
    /// PAMT entry size in bytes for the 4K, 2M and 1G levels (indexed by [`PamtLevel`]).
    pub pamt_entry_size: [u16; 3],
}

impl Limits {
    /// The 1.5.01 module's limits: 64 TDMRs, 16 reserved areas, 16-byte PAMT entries (§5.3).
    pub const TDX_1_5: Limits = Limits {
        max_tdmrs: 64,
        max_reserved_per_tdmr: 16,
        pamt_entry_size: [16, 16, 16],
    };

    pub(crate) fn tdmrs(&self) -> usize {
        (self.max_tdmrs as usize).min(MAX_TDMRS)
    }

    pub(crate) fn reserved(&self) -> usize {
        (self.max_reserved_per_tdmr as usize).min(MAX_RESERVED_PER_TDMR)
    }
}

/// PAMT level; the discriminant is the level number the module uses in error details (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PamtLevel {
    /// One entry per 4 KiB page.
    K4 = 0,
    /// One entry per 2 MiB page.
    M2 = 1,
    /// One entry per 1 GiB page.
    G1 = 2,
}

impl PamtLevel {
    /// All levels, in index order.
    pub const ALL: [PamtLevel; 3] = [PamtLevel::K4, PamtLevel::M2, PamtLevel::G1];

    /// log2 of the page size this level tracks.
    #[must_use]
    pub const fn shift(self) -> u32 {
        match self {
            PamtLevel::K4 => 12,
            PamtLevel::M2 => 21,
            PamtLevel::G1 => 30,
        }
    }

    /// The same level in `tdx-abi`'s vocabulary.
    #[must_use]
    pub const fn abi(self) -> tdx_abi::PageSize {
        match self {
            PamtLevel::K4 => tdx_abi::PageSize::Size4K,
            PamtLevel::M2 => tdx_abi::PageSize::Size2M,
            PamtLevel::G1 => tdx_abi::PageSize::Size1G,
        }
    }
}

/// A range of host memory and the NUMA node it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemRange {
    /// The range; it need not be page-aligned (it is trimmed inward to 4 KiB).
    pub range: PhysRange,
    /// NUMA node (proximity domain) of the range.
    pub node: u16,
}

/// Everything the planner needs. Slices are borrowed: nothing is copied except into the
/// bounded scratch inside [`Plan`].
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// CMRs as reported by the module (§5.1); null (size 0) entries are ignored.
    pub cmrs: &'a [PhysRange],
    /// RAM the host owns and has online at boot. PAMTs are carved out of this.
    pub memory: &'a [MemRange],
    /// Memory the host owns but will only online later (hotplug, §8.1). It is covered by TDMRs so
    /// it can become TDX memory, but PAMTs are never placed in it.
    pub offline: &'a [MemRange],
    /// Ranges of `memory` that must not hold PAMTs (kernel image, boot modules).
    pub excluded: &'a [PhysRange],
    /// Module limits.
    pub limits: Limits,
    /// The usable physical-address width: MAXPHYADDR (CPUID 0x8000_0008) minus the KeyID bits
    /// taken from its top. Every address the planner accepts or produces is below
    /// `1 << pa_bits`; anything beyond is refused with [`PlanError::BeyondMaxPhysAddr`].
    pub pa_bits: PaBits,
}

/// A physical-address width in bits (see [`PlanInput::pa_bits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PaBits(pub u8);

impl PaBits {
    /// The narrowest width the planner accepts: one 1 GiB TDMR granule.
    pub const MIN: PaBits = PaBits(30);
    /// The widest: x86-64 MAXPHYADDR is at most 52.
    pub const MAX: PaBits = PaBits(52);

    /// `1 << bits`, the first unusable address; `None` outside [`PaBits::MIN`]..=[`PaBits::MAX`].
    #[must_use]
    pub const fn limit(self) -> Option<u64> {
        if self.0 < Self::MIN.0 || self.0 > Self::MAX.0 {
            None
        } else {
            Some(1u64 << self.0)
        }
    }
}

/// One reserved area, relative to its TDMR's base (§5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReservedArea {
    /// Offset from the TDMR base.
    pub offset: ByteLen,
    /// Length.
    pub size: ByteLen,
}

/// One planned TDMR.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tdmr {
    /// 1 GiB-aligned base.
    pub base: PhysAddr,
    /// Non-zero multiple of 1 GiB.
    pub size: ByteLen,
    /// Node whose memory the PAMTs of this TDMR were taken from (the node with most of the TDMR's
    /// memory, unless that node has no online RAM).
    pub node: u16,
    /// PAMTs indexed by [`PamtLevel`].
    pub pamt: [PhysRange; 3],
    /// Sorted, non-overlapping reserved areas.
    pub reserved: Vec<ReservedArea, MAX_RESERVED_PER_TDMR>,
}

impl Tdmr {
    /// The TDMR as a range. A TDMR the planner made never wraps (its base and size are below
    /// `2^pa_bits`); one read from elsewhere is cut off at the top of the address space, which
    /// the verifier then reports as not covering what it should.
    #[must_use]
    pub const fn range(&self) -> PhysRange {
        PhysRange::saturating(self.base.0, self.size.0)
    }

    /// Total PAMT bytes of this TDMR.
    #[must_use]
    pub fn pamt_bytes(&self) -> u64 {
        self.pamt.iter().map(|p| p.size().0).sum()
    }
}

/// A physically contiguous PAMT allocation: the host must never hand this memory out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PamtBlock {
    /// Node the memory belongs to.
    pub node: u16,
    /// The memory.
    pub range: PhysRange,
}

/// Bounded working memory of the planner (kept inside [`Plan`] so it is off the stack).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Req {
    pub span: Span,
    pub node: u16,
    pub online: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkTdmr {
    pub span: Span,
    pub node: u16,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    /// Required memory (online and offline), sorted, non-overlapping, 4 KiB-aligned.
    pub req: Vec<Req, MAX_MEMORY_RANGES>,
    /// CMRs with touching neighbours merged (the module's `is_area_in_cmr` view, §6).
    pub cmr: Vec<Span, MAX_CMRS>,
    /// Excluded ranges, sorted.
    pub excluded: Vec<Span, MAX_EXCLUDED>,
    /// Candidate TDMRs.
    pub work: Vec<WorkTdmr, MAX_WORK_TDMRS>,
}

/// The planner's output, provided by the caller (about 30 KiB; see the crate docs).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// TDMRs in address order.
    pub tdmrs: Vec<Tdmr, MAX_TDMRS>,
    /// PAMT allocations in address order.
    pub pamt_blocks: Vec<PamtBlock, MAX_PAMT_BLOCKS>,
    /// Sum of all PAMT sizes.
    pub pamt_bytes: ByteLen,
    pub(crate) scratch: Scratch,
}

impl Plan {
    /// An empty plan (usable as a `static` initializer via `Default` at run time).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of reserved areas over all TDMRs.
    #[must_use]
    pub fn reserved_count(&self) -> usize {
        self.tdmrs.iter().map(|t| t.reserved.len()).sum()
    }

    /// Total bytes covered by TDMRs.
    #[must_use]
    pub fn tdmr_bytes(&self) -> u64 {
        self.tdmrs.iter().map(|t| t.size.0).sum()
    }

    /// 1 GiB granules touched by the required memory of the last planned input: the floor on the
    /// TDMR GiB of any plan (valid after [`crate::plan_tdmrs`] or the baseline returned `Ok`).
    #[must_use]
    pub fn required_granules(&self) -> u64 {
        let mut total = 0;
        let mut covered_to = 0u64;
        for r in &self.scratch.req {
            let start = align_down(r.span.start, GIB).max(covered_to);
            let end = align_up(r.span.end, GIB);
            if end > start {
                total += (end - start) / GIB;
                covered_to = end;
            }
        }
        total
    }
}

/// Which input list an error refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `cmrs`.
    Cmrs,
    /// `memory` plus `offline`.
    Memory,
    /// `excluded`.
    Excluded,
}

/// Why no plan was produced. Field meanings are given in each variant's doc.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// An input list is longer than the planner's fixed capacity.
    TooManyInputRanges {
        kind: InputKind,
        count: usize,
        max: usize,
    },
    /// CMR `index` is unaligned, wraps, or is not sorted and disjoint from its predecessor (§5.1).
    InvalidCmr { index: usize },
    /// A memory range wraps, or overlaps another memory range.
    InvalidMemory { base: PhysAddr, size: ByteLen },
    /// Limits are zero or a PAMT entry size is zero.
    InvalidLimits,
    /// `pa_bits` is outside 30..=52.
    InvalidPaBits { bits: u8 },
    /// An input range (a CMR or memory) reaches beyond the usable physical-address width.
    BeyondMaxPhysAddr {
        kind: InputKind,
        base: PhysAddr,
        size: ByteLen,
        pa_bits: u8,
    },
    /// No memory at all (above 1 MiB) was given.
    NoMemory,
    /// Memory the host owns is not inside one (merged) CMR, so it can never be TDX memory.
    MemoryOutsideCmrs {
        base: PhysAddr,
        size: ByteLen,
        node: u16,
    },
    /// Even after merging TDMRs, more than `max` TDMRs are needed.
    TooManyTdmrs { needed: usize, max: usize },
    /// The TDMR at `tdmr_base` needs `needed` reserved areas but only `max` exist.
    ReservedAreasExhausted {
        tdmr_base: PhysAddr,
        needed: usize,
        max: usize,
    },
    /// No free online RAM run of `needed_bytes` on `node` (excluding excluded ranges) for a PAMT.
    NoRoomForPamt { node: u16, needed_bytes: ByteLen },
    /// The candidate-TDMR scratch (`MAX_WORK_TDMRS`) overflowed.
    WorkspaceExhausted,
    /// A sum of PAMT sizes does not fit in 64 bits (only reachable with absurd entry sizes; the
    /// planner refuses rather than wrap).
    ArithmeticOverflow,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::TooManyInputRanges { kind, count, max } => {
                write!(f, "too many {kind:?} ranges: {count} > {max}")
            }
            PlanError::InvalidCmr { index } => {
                write!(
                    f,
                    "CMR {index} is unaligned, wraps, or is unsorted/overlapping"
                )
            }
            PlanError::InvalidMemory { base, size } => {
                write!(
                    f,
                    "memory range {:#x}+{:#x} wraps or overlaps another",
                    base.0, size.0
                )
            }
            PlanError::InvalidLimits => write!(f, "module limits are zero"),
            PlanError::InvalidPaBits { bits } => write!(
                f,
                "physical-address width {bits} is outside {}..={} bits",
                PaBits::MIN.0,
                PaBits::MAX.0
            ),
            PlanError::BeyondMaxPhysAddr {
                kind,
                base,
                size,
                pa_bits,
            } => write!(
                f,
                "{kind:?} range {:#x}+{:#x} reaches beyond the {pa_bits}-bit physical address space \
                 (MAXPHYADDR minus KeyID bits; first unusable address {:#x})",
                base.0,
                size.0,
                1u128 << pa_bits
            ),
            PlanError::NoMemory => write!(f, "no memory above 1 MiB to plan"),
            PlanError::MemoryOutsideCmrs { base, size, node } => write!(
                f,
                "memory [{:#x}, {:#x}) on node {node} is not inside a CMR",
                base.0,
                u128::from(base.0) + u128::from(size.0)
            ),
            PlanError::TooManyTdmrs { needed, max } => {
                write!(
                    f,
                    "TDMRs exhausted: {needed} needed, {max} allowed ({} over)",
                    needed.saturating_sub(max)
                )
            }
            PlanError::ReservedAreasExhausted {
                tdmr_base,
                needed,
                max,
            } => write!(
                f,
                "TDMR at {:#x}: reserved areas exhausted: {needed} needed, {max} allowed ({} over)",
                tdmr_base.0,
                needed.saturating_sub(max)
            ),
            PlanError::NoRoomForPamt { node, needed_bytes } => write!(
                f,
                "no room for PAMT on node {node}: no free contiguous {:#x} bytes",
                needed_bytes.0
            ),
            PlanError::ArithmeticOverflow => {
                write!(f, "PAMT sizes overflow 64 bits")
            }
            PlanError::WorkspaceExhausted => {
                write!(
                    f,
                    "planner workspace exhausted (more than {MAX_WORK_TDMRS} candidates)"
                )
            }
        }
    }
}
