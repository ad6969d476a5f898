//! TDX host supervisor logic for the `tdx-host` task: the TDMR/PAMT planner.
//!
//! Pattern: a `no_std`, heap-free library of pure functions. The planner turns the module's CMRs
//! and limits plus the host's memory map into TDMRs, reserved areas and PAMT placements that pass
//! every TDH.SYS.CONFIG rule (§6 of `docs/tdx-module.md`, which every § in this crate cites) and avoid Linux's failure modes (§7):
//! holes come from the coarse CMRs, not the fine RAM map; PAMTs of a node share one block placed
//! next to an existing hole; TDMRs are split or merged to meet `max_tdmrs`/`max_reserved`; memory
//! that is not online yet is covered too, so it can be onlined as TDX memory later (§8.1).
//!
//! Bounds (all fixed at compile time):
//! - inputs: ≤ [`MAX_CMRS`] CMRs, ≤ [`MAX_MEMORY_RANGES`] memory ranges (online + offline),
//!   ≤ [`MAX_EXCLUDED`] excluded ranges;
//! - output: ≤ [`MAX_TDMRS`] TDMRs × [`MAX_RESERVED_PER_TDMR`] areas, ≤ [`MAX_PAMT_BLOCKS`] PAMT
//!   blocks, all inside the caller-provided [`Plan`] (`size_of::<Plan>()` is under 48 KiB,
//!   pinned by a test), so the planner's own stack frame stays small (under 1 KiB of locals
//!   besides a `64 × 3 × u64` size table, about 1.5 KiB).
//! - time: O(T · R · (R + B)) per placement, T TDMRs, R memory ranges, B PAMT blocks; well under a
//!   millisecond for 8-socket maps.
//!
//! The [`baseline`] module reproduces Linux's algorithm (§7) for comparison only.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod addr;
pub mod baseline;
pub mod frames;
pub mod init;
mod layout;
mod normalize;
pub mod pamt;
mod place;
mod planner;
pub mod regions;
pub mod seam;
pub mod server;
pub mod types;
pub mod verify;

pub use addr::{ByteLen, PhysAddr, PhysRange, GIB, PAGE_4K};
pub use planner::plan_tdmrs;
pub use types::{
    InputKind, Limits, MemRange, PaBits, PamtBlock, PamtLevel, Plan, PlanError, PlanInput,
    ReservedArea, Tdmr, MAX_CMRS, MAX_EXCLUDED, MAX_MEMORY_RANGES, MAX_PAMT_BLOCKS,
    MAX_RESERVED_PER_TDMR, MAX_TDMRS, MAX_WORK_TDMRS,
};

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod tests;
