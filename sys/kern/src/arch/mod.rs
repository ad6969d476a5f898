//! Everything specific to x86_64: boot, descriptor tables, entry stubs,
//! paging, interrupt controllers and the serial port. The portable kernel
//! (tasks, IPC, scheduling) never issues a privileged instruction itself.

pub mod apic;
mod boot;
pub mod cpu;
pub mod entry;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod serial;
pub mod smp;
pub mod stacks;
pub mod vmx;
