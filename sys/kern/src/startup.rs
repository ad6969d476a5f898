//! The static configuration generated from the manifest, and bringing the
//! tasks to life.
//!
//! `build.rs` writes `kconfig.rs` from the JSON that `cargo xtask dist`
//! computed; it defines `TASK_COUNT`, `TASK_DESCS`, `IRQS`, `IMAGE_NAME`,
//! `TICK_US` and `DEBUG_EXIT_PORT`. Startup trusts the build but re-checks
//! what a wrong build or an odd machine could break: every task region must
//! be RAM the boot loader reported and must lie above the kernel's shared
//! page tables. A violation stops boot with a message naming the task.

use abi::kipc::NUM_RIGHTS;

use crate::arch::paging::{map_identity, Access, KernelSpace};
use crate::task::{self, Task};

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
    pub ram_base: u64,
    pub ram_size: u64,
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

/// Builds every task's address space, installs the tasks and starts the
/// ones marked `start`.
pub fn create_tasks(space: &KernelSpace) {
    let map = crate::bootinfo::memory_map();
    for d in &TASK_DESCS {
        for r in d.regions {
            if r.base < space.first_task_address() {
                crate::fail::boot_failure(format_args!(
                    "task {}: region {:#x} overlaps the kernel's page-table range (below {:#x})",
                    d.name,
                    r.base,
                    space.first_task_address()
                ));
            }
            if !map.is_ram(r.base, r.size) {
                crate::fail::boot_failure(format_args!(
                    "task {}: region {:#x}+{:#x} is not RAM in the boot memory map (give QEMU more memory?)",
                    d.name, r.base, r.size
                ));
            }
        }
        let pml4 = space.new_task_space();
        for r in d.regions {
            let access = Access {
                write: r.attributes & region_attr::WRITE != 0,
                execute: r.attributes & region_attr::EXECUTE != 0,
                user: true,
            };
            map_identity(pml4, r.base, r.base + r.size, access);
        }
        task::install(Task::new(d, pml4));
    }
    task::with_tasks(|tasks| {
        for t in tasks.iter_mut() {
            let start = t.starts_at_boot();
            task::reinitialize(t, start);
        }
    });
}
