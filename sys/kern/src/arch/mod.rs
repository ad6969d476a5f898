//! Everything specific to x86_64: boot, descriptor tables, entry stubs,
//! paging, interrupt controllers and the serial port. The portable kernel
//! (tasks, IPC, scheduling) never issues a privileged instruction itself.
//!
//! Registers, MSRs, descriptor tables, page-table entries and port I/O are
//! the `x86_64` crate's. Hand assembly is left only where the crate has
//! nothing to offer: the boot and AP trampolines (they run before Rust can),
//! the entry and trap stubs, SEAMCALL, VMXON and WBINVD.

pub mod apic;
mod boot;
pub mod cpu;
pub mod entry;
pub mod gdt;
pub mod idt;
pub mod nmi;
pub mod paging;
pub mod serial;
pub mod smp;
pub mod stacks;
pub mod vmx;
