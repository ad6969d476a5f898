//! The static tables generated from the manifest: every task's
//! descriptor, the IRQ bindings, the TDX backend's settings, the chaos
//! schedule.
//!
//! `build.rs` writes `kconfig.rs` from the JSON that `cargo xtask dist`
//! computed; it defines `TASK_COUNT`, `TASK_DESCS`, `IRQS`, `TDX`,
//! `RESTART_NOTIFY`, `CHAOS` and `CHAOS_TASK` over the types below. A leaf module: the scheduler, the
//! task table and start-up all read it, and it reads nothing of theirs.

use abi::kipc::NUM_RIGHTS;

/// Region attribute bits (`build-kconfig::attr` is the same module).
pub use abi::region_attr;

#[derive(Debug)]
pub struct RegionDesc {
    pub base: u64,
    pub size: u64,
    pub attributes: u32,
}

#[derive(Debug)]
pub struct TaskDesc {
    pub name: &'static str,
    pub priority: u8,
    pub start: bool,
    pub entry: u64,
    /// Sorted by base.
    pub regions: &'static [RegionDesc],
    pub stack_base: u64,
    pub stack_top: u64,
    /// Zeroed at every (re)start.
    pub ram_base: u64,
    pub ram_size: u64,
    /// Zeroed once at boot, kept across restarts (size 0: none); also one
    /// of `regions`, with `region_attr::DURABLE`.
    pub durable_base: u64,
    pub durable_size: u64,
    pub data_load: u64,
    pub data_vma: u64,
    pub data_len: u64,
    pub ioports: &'static [(u16, u16)],
    pub rights: [u64; NUM_RIGHTS],
    /// Bits of `abi::capability`.
    pub capabilities: u32,
    /// Task indices this task may SEND to (the manifest's task slots).
    pub send_to: u64,
    /// `(target index, bits)`: the notifications this task may POST to
    /// each target the manifest names, sorted by index.
    pub posts: &'static [(u16, u64)],
}

/// The SEAMCALL backend (see `seam`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
// Constructed by the generated configuration; an image uses one of them.
#[allow(dead_code)]
pub enum TdxBackendKind {
    None,
    Emulated,
    Hardware,
}

#[derive(Debug)]
pub struct FaultRuleDesc {
    pub leaf: u16,
    pub status: u64,
    pub on_call: Option<u32>,
    pub on_cpu: Option<u32>,
    pub repeat: u32,
    /// `Some`: kill the caller instead of answering `status` (`inject`).
    pub kill: Option<kerncore::inject::When>,
}

/// `[kernel.chaos]` (see `inject`).
#[derive(Debug)]
pub struct ChaosDesc {
    pub task: usize,
    pub seed: u64,
    pub kills: u32,
    pub every: u32,
    pub after: u32,
}

#[derive(Debug)]
pub struct TdxConfig {
    pub backend: TdxBackendKind,
    pub keyid_bits: u8,
    pub mktme_keyids: u32,
    pub tdx_keyids: u32,
    pub max_tdmrs: u16,
    pub max_reserved_per_tdmr: u16,
    pub pamt_entry_size: u16,
    pub features0: u64,
    pub absent: bool,
    pub faults: &'static [FaultRuleDesc],
}

#[derive(Debug)]
pub struct IrqBinding {
    pub irq: u8,
    pub task: u16,
    pub mask: u64,
}

include!(concat!(env!("OUT_DIR"), "/kconfig.rs"));
