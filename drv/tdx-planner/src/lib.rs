//! The TDMR/PAMT planner: which memory the TDX module will protect, and where its metadata lives.
//!
//! Pattern: a `no_std`, heap-free library of pure functions. The planner turns the module's CMRs
//! and limits plus the host's memory map into TDMRs, reserved areas and PAMT placements that pass
//! every TDH.SYS.CONFIG rule (§6 of `docs/tdx-module.md`, which every § in this crate cites) and
//! avoid Linux's failure modes (§7): holes come from the coarse CMRs, not the fine RAM map; PAMTs
//! of a node share one block placed next to an existing hole; TDMRs are split or merged to meet
//! `max_tdmrs`/`max_reserved`; memory that is not online yet is covered too, so it can be onlined
//! as TDX memory later (§8.1).
//!
//! Stages, each a module that only looks down the list (no module imports in a circle):
//! - [`addr`], [`types`]: the vocabulary (addresses, inputs, limits, the [`Plan`], errors); `types`
//!   depends on `addr` alone;
//! - [`pamt`]: PAMT sizes (the arithmetic is `tdx_abi`'s, shared with the emulator);
//! - `normalize`: validate the input once and sort it into the plan's scratch;
//! - `layout`: reserved areas as a function of a TDMR span; TDMR formation;
//! - `place`: PAMT placement next to existing holes;
//! - `planner`: [`plan_tdmrs`], which runs the three stages and materializes reserved areas;
//! - [`verify`]: an independent check of a plan against the raw input, sharing no planner code;
//! - [`baseline`]: Linux's algorithm (§7), for comparison only;
//! - [`abi`]: a plan as the module's `TDMR_INFO` array (§5.3).
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
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod addr;
pub mod baseline;
mod layout;
mod normalize;
pub mod pamt;
mod place;
mod planner;
pub mod types;
pub mod verify;

#[cfg(test)]
mod testing;

pub use addr::{ByteLen, PhysAddr, PhysRange, GIB, PAGE_4K};
pub use planner::plan_tdmrs;
pub use types::{
    InputKind, Limits, MemRange, PaBits, PamtBlock, PamtLevel, Plan, PlanError, PlanInput,
    ReservedArea, Tdmr, MAX_CMRS, MAX_EXCLUDED, MAX_MEMORY_RANGES, MAX_PAMT_BLOCKS,
    MAX_RESERVED_PER_TDMR, MAX_TDMRS, MAX_WORK_TDMRS,
};
