//! TDX host supervisor logic for the `tdx-host` task: module bring-up, the frame allocator,
//! memory regions and the request handlers; the server binary (`main.rs`, `task_main.rs`) drives
//! them over kernel syscalls.
//!
//! Pattern: a `no_std`, heap-free library of state machines and pure functions that reach the
//! outside world only through small traits ([`seam`]), so all of it is tested on the host
//! (bring-up against `tdx-emu`). The TDMR/PAMT planner that bring-up runs is the `tdx-planner`
//! crate; its address and size newtypes are this crate's vocabulary too.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod frames;
pub mod init;
pub mod platform;
pub mod regions;
pub mod seam;
pub mod server;

#[cfg(test)]
mod bench_tests;
