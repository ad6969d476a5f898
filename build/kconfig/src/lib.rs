//! The kernel configuration that `cargo xtask dist` computes from the
//! manifest and the linked tasks, and that `sys/kern/build.rs` turns into
//! static tables.
//!
//! It travels as JSON in the environment variable [`KCONFIG_ENV_VAR`]. Every
//! address here is physical and, because tasks are identity-mapped, also
//! the virtual address the task uses. The xtask side guarantees: regions are
//! page-aligned, disjoint across tasks, and inside the RAM the image claims;
//! the kernel re-checks what it can at boot.

use serde::{Deserialize, Serialize};

/// The environment variable carrying the JSON [`KernelConfig`].
pub const KCONFIG_ENV_VAR: &str = "TDXHOST_KCONFIG";

/// Region attribute bits.
pub mod attr {
    pub const READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const EXECUTE: u32 = 1 << 2;
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Image name, printed in the boot banner.
    pub image: String,
    /// Timer tick period in microseconds.
    pub tick_us: u32,
    /// The I/O port of QEMU's isa-debug-exit device, if the image may use
    /// it to report a kernel panic (test and demo images under QEMU only).
    pub debug_exit_port: Option<u16>,
    /// Tasks in table order; index 0 is the supervisor.
    pub tasks: Vec<TaskDesc>,
    /// Interrupt lines bound to task notifications.
    pub irqs: Vec<IrqBinding>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaskDesc {
    pub name: String,
    /// 0 is most important.
    pub priority: u8,
    /// Started at boot (else it waits for a restart through kernel IPC).
    pub start: bool,
    pub entry: u64,
    /// Mapped regions (not including the stack guard page).
    pub regions: Vec<RegionDesc>,
    /// Lowest address of the stack; the page below it is the guard page.
    pub stack_base: u64,
    /// Initial RSP.
    pub stack_top: u64,
    /// The task's writable memory, zeroed at every (re)start.
    pub ram_base: u64,
    pub ram_size: u64,
    /// Where the initial `.data` image sits (inside a read-only region),
    /// where it goes, and its length.
    pub data_load: u64,
    pub data_vma: u64,
    pub data_len: u64,
    /// I/O port ranges `(first, count)` the task may access directly.
    pub ioports: Vec<(u16, u16)>,
    /// Kernel-IPC rights: for each right (in `abi::kipc::Right` order), a
    /// mask of the task indices this task may act on.
    pub rights: Vec<u64>,
}

#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegionDesc {
    pub base: u64,
    pub size: u64,
    /// Bits from [`attr`].
    pub attributes: u32,
}

#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IrqBinding {
    /// ISA IRQ / IOAPIC input.
    pub irq: u8,
    pub task: u16,
    /// Notification bits posted when it fires.
    pub mask: u64,
}
