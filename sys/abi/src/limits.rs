//! The machine sizes the system is built for, in one place.
//!
//! Every fixed-capacity table that describes the platform — the kernel's
//! platform record and CPU table, the software TDX module's per-CPU and
//! per-package state, tdx-host's CPU, memory and TDMR tables, the planner's
//! inputs — takes its capacity from here, so raising a limit is one edit
//! and no two tables can disagree. A machine beyond any of them is refused
//! at boot with a message naming the constant (`platform::Report`), never
//! run with a silently shortened picture: TDX must see every CPU and every
//! byte of RAM.
//!
//! Why these numbers (the largest TDX hosts sold today are 2- to 8-socket
//! servers; the limits leave room above them):
//! - [`MAX_CPUS`] = 1024 logical CPUs: 8 sockets × 64 cores × 2 threads.
//! - [`MAX_PACKAGES`] = 16 sockets.
//! - [`MAX_NODES`] = 64 NUMA nodes: 16 sockets × sub-NUMA clustering 4,
//!   twice the 32 the largest configurations report.
//! - [`MAX_RAM_RANGES`] = 128 RAM ranges after splitting at node
//!   boundaries: a firmware map rarely has more than ~40 RAM entries, plus
//!   one split per node.
//! - [`MAX_PLAN_RANGES`] = twice that: the planner's input holds online and
//!   boot-offline memory together, and holding RAM offline splits a range.
//! - [`MAX_TDMRS`] = 64: the TDX module's own maximum (TDMR_INFO array).
//!
//! Memory: the record grows with these (16 bytes per CPU, 24 per RAM
//! range), about 20 KiB encoded at capacity ([`crate::platform::ENCODED_MAX`]);
//! the kernel keeps per-CPU stacks outside its image, sized by the CPUs
//! actually found, so only its small per-CPU tables scale with
//! [`MAX_CPUS`].

/// Most logical CPUs (the record, the kernel's CPU table, the module's LPs).
pub const MAX_CPUS: usize = 1024;
/// Most physical packages (sockets).
pub const MAX_PACKAGES: usize = 16;
/// Most NUMA nodes (distinct SRAT proximity domains).
pub const MAX_NODES: usize = 64;
/// Most RAM ranges the platform record holds, split at node boundaries.
pub const MAX_RAM_RANGES: usize = 128;
/// Most memory ranges a plan starts from (online plus boot-offline).
pub const MAX_PLAN_RANGES: usize = 2 * MAX_RAM_RANGES;
/// Most TDMRs a plan may use.
pub const MAX_TDMRS: usize = 64;

/// One of the limits above, for messages that name it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    Cpus,
    Packages,
    Nodes,
    RamRanges,
}

impl Limit {
    /// The constant's name, as a person would grep for it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Limit::Cpus => "MAX_CPUS",
            Limit::Packages => "MAX_PACKAGES",
            Limit::Nodes => "MAX_NODES",
            Limit::RamRanges => "MAX_RAM_RANGES",
        }
    }

    /// What is counted, in words.
    #[must_use]
    pub const fn what(self) -> &'static str {
        match self {
            Limit::Cpus => "logical CPUs",
            Limit::Packages => "packages (sockets)",
            Limit::Nodes => "NUMA nodes",
            Limit::RamRanges => "RAM ranges",
        }
    }

    /// The limit's value.
    #[must_use]
    pub const fn max(self) -> usize {
        match self {
            Limit::Cpus => MAX_CPUS,
            Limit::Packages => MAX_PACKAGES,
            Limit::Nodes => MAX_NODES,
            Limit::RamRanges => MAX_RAM_RANGES,
        }
    }
}

/// A machine larger than a limit: at least `found` of what `limit` counts
/// (exact for CPUs and packages; a lower bound for nodes and RAM ranges,
/// whose excess is seen entry by entry, not counted distinct).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    pub found: usize,
}

impl core::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "this machine has {}{} {}, more than {} = {} (sys/abi/src/limits.rs)",
            if matches!(self.limit, Limit::RamRanges | Limit::Nodes) {
                "at least "
            } else {
                ""
            },
            self.found,
            self.limit.what(),
            self.limit.name(),
            self.limit.max()
        )
    }
}

const _: () = assert!(MAX_PACKAGES <= MAX_CPUS && MAX_NODES <= u16::MAX as usize);
