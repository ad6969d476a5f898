//! Bringing the tasks to life from the manifest's tables (`tables`).
//!
//! Startup trusts the build but re-checks what a wrong build or an odd
//! machine could break: every task region must be RAM the boot loader
//! reported and must lie above the kernel's shared page tables, and a
//! task's RAM (which `Task::can_access` accepts without a region walk) must
//! be covered read-write by its regions. A violation stops boot with a
//! message naming the task.
//!
//! Durable memory (`region_attr::DURABLE`) is zeroed here, once per boot,
//! and nowhere else: `task::reinitialize` zeroes only the task's RAM, so a
//! restarted task finds its durable memory as its last incarnation left
//! it.

use crate::arch::paging::{map_identity, Access, KernelSpace};
use crate::tables::{region_attr, TASK_DESCS};
use crate::task::{self, Task};

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
        // `Task::can_access` answers for a slice inside the RAM without
        // reading the regions: they must cover it read-write.
        let rw = region_attr::READ | region_attr::WRITE;
        if !kerncore::regions_cover(d.regions, d.ram_base, d.ram_size, rw) {
            crate::fail::boot_failure(format_args!(
                "task {}: RAM {:#x}+{:#x} is not covered read-write by its regions",
                d.name, d.ram_base, d.ram_size
            ));
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
        if d.durable_size != 0 {
            // Safety: the region was just checked to be RAM the boot loader
            // reported, above the kernel's tables; the build keeps it
            // disjoint from every other task's memory and the kernel
            // (`KernelConfig::check`); the direct map covers it, and no
            // task runs yet.
            unsafe {
                core::ptr::write_bytes(
                    crate::arch::paging::phys_to_virt(d.durable_base),
                    0,
                    d.durable_size as usize,
                );
            }
            crate::kprintln!(
                "kernel: task {} durable memory {:#x}..{:#x} zeroed (kept across its restarts)",
                d.name,
                d.durable_base,
                d.durable_base + d.durable_size
            );
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
