//! tdx-host, the server task: brings the TDX module up, prints the init report, then serves
//! `idl/tdx-host.idol` (RECV/REPLY only; it never SENDs).
//!
//! Pattern: all logic lives in the library (`init`, `regions`, `server`); this binary only
//! implements its traits over kernel syscalls ([`KernelSeam`], [`KernelScrubber`],
//! [`StaticBuffer`]), builds the [`PlatformView`] from the kernel's platform record, keeps the big
//! tables in `static`s, and glues the generated dispatch (leases, reply codes) to
//! [`tdx_host::server::Server`]. Policy (quotas, nodes, classes, hotplug policy, boot-offline
//! ranges) comes from the manifest through `build.rs`; per-operation rights are enforced by the
//! generated dispatch (`[tasks.tdx-host.config.access]`).
//!
//! Hygiene: a free or a reclaim only moves frames to quarantine (the caller's usage drops at
//! once). Between requests, one timer tick apart, the binary runs bounded scrub steps (kernel
//! zeroes at most 2 MiB, TDH.PHYMEM.PAGE.RDMD must say PT_NDA for each TDX page of it), so a
//! frame is never handed out again unscrubbed and no request or lower-priority task waits for
//! more than one step. Onlining hot-plugged memory goes through the kernel's online-memory
//! table first (the kernel scrubs only memory it knows).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod task_main;
