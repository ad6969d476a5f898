//! Intel TDX host-side SEAMCALL ABI, as plain data.
//!
//! Pattern: a dependency-free (`no_std`, no heap, no `unsafe`) vocabulary crate shared by the
//! kernel's TDX supervisor task, its TDMR planner, host tools and the software module `tdx-emu`.
//! Everything here is a constant, a `#[repr(C)]` layout or a pure function.
//!
//! Invariants:
//! - Every number is restated from `docs/tdx-module.md` (cited as §N), which names the public
//!   source of each; nothing is copied from Linux or the Intel module.
//! - In-memory structures ([`CmrInfo`], [`TdmrInfo`], [`TdmrInfoBuf`]) have exactly the byte
//!   layout the module reads; compile-time assertions pin their sizes and alignments.
//! - Status codes are never `enum`s: the module can return codes this crate does not know, so
//!   [`TdxStatus`] is a `u64` newtype with decoding helpers.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consts;
pub mod hw;
pub mod leaf;
pub mod metadata;
pub mod pamt;
pub mod reattach;
pub mod regs;
pub mod status;
pub mod structs;
pub mod td;

pub use consts::{
    GIB, KIB, MAX_CMRS, MAX_HKIDS, MAX_RESERVED_PER_TDMR, MAX_TDMRS, MIB, PAMT_ENTRY_SIZE,
    TDMR_INFO_ALIGNMENT, TDMR_INFO_PA_ARRAY_ALIGNMENT, TDMR_INFO_READ_BYTES, TDMR_INFO_SIZE,
};
pub use leaf::{Leaf, LeafWord};
pub use metadata::FieldId;
pub use pamt::{pamt_bytes, pamt_min_bytes, tdmr_pamt_bytes, KotState, PageSize, PageType};
pub use reattach::{step_answer, ProbeAnswer, StepAnswer};
pub use regs::{SeamcallArgs, SeamcallResult};
pub use status::{DetailKind, OperandId, StatusClass, TdxStatus};
pub use structs::{CmrInfo, ReservedArea, TdmrInfo, TdmrInfoBuf};
pub use td::{gpa_operand, TdLifecycle, TdOpState, TdParams};
