//! TDX host supervisor logic for the `tdx-host` task: module bring-up ([`init`], with its
//! report), the platform as bring-up sees it ([`platform`]), the frame allocator ([`frames`]),
//! memory regions ([`regions`]), guest KeyIDs, TDs and TD pages ([`td`]) and the server ([`server`]: handlers, scrub pacing, start-up
//! and the service the IPC glue calls). The server binary (`main.rs`) only implements the
//! traits over kernel syscalls and turns leases and reply codes into library calls.
//!
//! Pattern: a `no_std`, heap-free library of state machines and pure functions that reach the
//! outside world only through small traits ([`seam`], [`server::pacing::Timer`]), so all of it
//! is tested on the host (bring-up against `tdx-emu`). The TDMR/PAMT planner that bring-up runs
//! is the `tdx-planner` crate; its address and size newtypes are this crate's vocabulary too.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod frames;
pub mod host_code;
pub mod init;
pub mod ledger;
pub mod platform;
pub mod regions;
pub mod seam;
pub mod server;
pub mod td;

#[cfg(test)]
mod bench_buddy;
#[cfg(test)]
mod bench_tests;
