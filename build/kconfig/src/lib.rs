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

mod check;

pub use check::{ConfigError, MAX_DURABLE_BYTES, PAGE_SIZE};

/// The environment variable carrying the JSON [`KernelConfig`].
pub const KCONFIG_ENV_VAR: &str = "TDXHOST_KCONFIG";

/// Region attribute bits, defined once in `abi` (the kernel reads them
/// from the same module).
pub use abi::region_attr as attr;

/// Capability bits a task may hold, defined once in `abi`.
pub use abi::capability;

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
    /// The SEAMCALL backend and, for the emulated one, the module it models.
    pub tdx: TdxConfig,
    /// `(task index, notification bits)` posted whenever any task is
    /// restarted, so a server holding per-client state (tdx-host's frames)
    /// learns of it without polling.
    pub restart_notify: Option<(u16, u64)>,
    /// Write defmt records to the text console (COM1) as in-band frames
    /// (`verdict::frame`) instead of to COM2: for machines with one UART.
    #[serde(default)]
    pub defmt_in_band: bool,
    /// What the supervisor's `EndRun` does.
    #[serde(default)]
    pub on_finish: OnFinish,
    /// Seeded random kills of one task, for restart soaks.
    #[serde(default)]
    pub chaos: Option<ChaosDesc>,
    /// Count the instructions of each phase of the syscall path and print
    /// them (`kern::breakdown`); off except in the breakdown bench image.
    #[serde(default)]
    pub breakdown: bool,
}

/// What the kernel does when the supervisor ends the run (`EndRun`).
#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFinish {
    /// Nothing: the machine keeps running (interactive runs, production).
    #[default]
    Stay,
    /// Halt the CPU.
    Halt,
    /// Reset the machine (a rig boots the next image).
    Reset,
}

/// Which SEAMCALL backend the kernel uses.
#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TdxBackend {
    /// No TDX: every SEAMCALL reports the module as not loaded.
    #[default]
    None,
    /// The software module (drv/tdx-emu) inside the kernel.
    Emulated,
    /// VMXON on every CPU and the real SEAMCALL instruction.
    Hardware,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct TdxConfig {
    pub backend: TdxBackend,
    /// KeyID partitioning (MSR 0x87): bits, MKTME KeyIDs, TDX KeyIDs.
    pub keyid_bits: u8,
    pub mktme_keyids: u32,
    pub tdx_keyids: u32,
    pub max_tdmrs: u16,
    pub max_reserved_per_tdmr: u16,
    pub pamt_entry_size: u16,
    /// TDX_FEATURES0 as the module reports it.
    pub features0: u64,
    /// The module is not loaded (every SEAMCALL: VMfailInvalid).
    pub absent: bool,
    pub faults: Vec<FaultRuleDesc>,
}

/// A deterministic fault: `leaf` returns `status`, from its `on_call`-th
/// call (1-based) or on CPU `on_cpu`, `repeat` times. With `kill`, the
/// kernel instead kills the calling task (a fault its supervisor sees)
/// before or after the module executes the call; `status` is then unused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FaultRuleDesc {
    pub leaf: u16,
    pub status: u64,
    pub on_call: Option<u32>,
    pub on_cpu: Option<u32>,
    pub repeat: u32,
    #[serde(default)]
    pub kill: Option<KillWhen>,
}

/// When a kill rule kills the caller, relative to the module running the
/// SEAMCALL.
#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KillWhen {
    Before,
    After,
}

/// `[kernel.chaos]`: seeded pseudo-random kills of one task (see
/// `kerncore::inject::Chaos`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChaosDesc {
    /// Task index of the target (never 0).
    pub task: u16,
    pub seed: u64,
    pub kills: u32,
    /// Most events (the target's syscalls and the ticks that interrupt it)
    /// between two kills.
    pub every: u32,
    /// Events before the schedule starts.
    pub after: u32,
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
    /// The task's durable memory (size 0: none): also one of `regions`,
    /// with [`attr::DURABLE`]; zeroed once at boot, kept across restarts.
    #[serde(default)]
    pub durable_base: u64,
    #[serde(default)]
    pub durable_size: u64,
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
    /// Bits from [`capability`].
    pub capabilities: u32,
    /// IPC edges: the mask of task indices this task may SEND to (its task
    /// slots, downhill ones included). REPLY and kernel IPC need no edge.
    #[serde(default)]
    pub send_to: u64,
    /// POST edges: `(target task index, notification bits of the target
    /// this task may post)`, one entry per target, sorted by index. A task
    /// may always post to itself.
    #[serde(default)]
    pub posts: Vec<(u16, u64)>,
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
