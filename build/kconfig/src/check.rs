//! The structural rules of a [`KernelConfig`]'s memory layout, checked by
//! xtask before the kernel is built and again by the kernel's build script
//! (so a hand-written or stale configuration cannot reach the kernel).
//!
//! Rules:
//! - every region is page-aligned, non-empty and does not wrap;
//! - no two regions overlap, within a task or across tasks;
//! - a task's RAM (`ram_base`, `ram_size`) is covered by its writable
//!   regions and holds no durable memory;
//! - durable memory: at most one region with [`attr::DURABLE`] per task,
//!   exactly `(durable_base, durable_size)`, readable and writable but not
//!   executable, at most [`MAX_DURABLE_BYTES`], and never in task 0 (the
//!   supervisor is never restarted: a fault of it stops the kernel, so
//!   durable memory there would only be RAM under another name, and a
//!   manifest asking for it has misunderstood something).

use core::fmt;

use crate::{attr, KernelConfig, TaskDesc};

/// Region granularity: the kernel maps task memory with 4 KiB pages.
pub const PAGE_SIZE: u64 = 4096;

/// The largest durable region a task may declare (64 MiB): enough for a
/// ledger of every 4 KiB frame of a large host, small enough that a typo
/// in the manifest cannot silently claim most of a test machine.
pub const MAX_DURABLE_BYTES: u64 = 64 << 20;

/// Why a configuration is refused; every variant names the task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A region is empty, not page-aligned, or wraps the address space.
    BadRegion { task: String, base: u64, size: u64 },
    /// Two regions share memory.
    Overlap {
        task: String,
        other: String,
        base: u64,
        other_base: u64,
    },
    /// The RAM range is not entirely in the task's writable regions.
    RamNotMapped { task: String },
    /// More than one region carries the durable attribute.
    SecondDurableRegion { task: String },
    /// `durable_size` and the durable region disagree.
    DurableMismatch { task: String },
    /// The durable region lacks READ/WRITE or has EXECUTE.
    DurableAccess { task: String, attributes: u32 },
    /// The durable region overlaps the RAM zeroed at every restart.
    DurableInRam { task: String },
    /// Larger than [`MAX_DURABLE_BYTES`].
    DurableTooLarge { task: String, size: u64 },
    /// Task 0 (the supervisor) declared durable memory.
    DurableSupervisor { task: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadRegion { task, base, size } => write!(
                f,
                "task `{task}`: region {base:#x}+{size:#x} is empty, not {PAGE_SIZE}-byte aligned, or wraps"
            ),
            ConfigError::Overlap {
                task,
                other,
                base,
                other_base,
            } => write!(
                f,
                "task `{task}`: region at {base:#x} overlaps task `{other}`'s region at {other_base:#x}"
            ),
            ConfigError::RamNotMapped { task } => {
                write!(f, "task `{task}`: its RAM is not inside its writable regions")
            }
            ConfigError::SecondDurableRegion { task } => {
                write!(f, "task `{task}`: more than one durable region")
            }
            ConfigError::DurableMismatch { task } => write!(
                f,
                "task `{task}`: durable_base/durable_size do not name its durable region"
            ),
            ConfigError::DurableAccess { task, attributes } => write!(
                f,
                "task `{task}`: durable region attributes {attributes:#x} must be read+write and not execute"
            ),
            ConfigError::DurableInRam { task } => write!(
                f,
                "task `{task}`: durable memory overlaps the RAM zeroed at every restart"
            ),
            ConfigError::DurableTooLarge { task, size } => write!(
                f,
                "task `{task}`: memory.durable = {size:#x} is larger than the limit {MAX_DURABLE_BYTES:#x} (64 MiB)"
            ),
            ConfigError::DurableSupervisor { task } => write!(
                f,
                "task `{task}` is the supervisor (task 0), which is never restarted (its fault stops the kernel), so it cannot have memory.durable"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

fn check_durable(index: usize, t: &TaskDesc) -> Result<(), ConfigError> {
    let task = || t.name.clone();
    let mut durable = t
        .regions
        .iter()
        .filter(|r| r.attributes & attr::DURABLE != 0);
    let region = durable.next();
    if durable.next().is_some() {
        return Err(ConfigError::SecondDurableRegion { task: task() });
    }
    let Some(r) = region else {
        return if t.durable_size == 0 {
            Ok(())
        } else {
            Err(ConfigError::DurableMismatch { task: task() })
        };
    };
    if index == 0 {
        return Err(ConfigError::DurableSupervisor { task: task() });
    }
    if (r.base, r.size) != (t.durable_base, t.durable_size) {
        return Err(ConfigError::DurableMismatch { task: task() });
    }
    let rw = attr::READ | attr::WRITE;
    if r.attributes & rw != rw || r.attributes & attr::EXECUTE != 0 {
        return Err(ConfigError::DurableAccess {
            task: task(),
            attributes: r.attributes,
        });
    }
    if r.size > MAX_DURABLE_BYTES {
        return Err(ConfigError::DurableTooLarge {
            task: task(),
            size: r.size,
        });
    }
    if overlaps((r.base, r.size), (t.ram_base, t.ram_size)) {
        return Err(ConfigError::DurableInRam { task: task() });
    }
    Ok(())
}

impl KernelConfig {
    /// Checks the memory layout rules of the module documentation.
    ///
    /// # Errors
    /// The first rule broken, naming the task.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut all: Vec<(u64, u64, &str)> = vec![];
        for (i, t) in self.tasks.iter().enumerate() {
            for r in &t.regions {
                let aligned = r.base % PAGE_SIZE == 0 && r.size % PAGE_SIZE == 0;
                if r.size == 0 || !aligned || r.base.checked_add(r.size).is_none() {
                    return Err(ConfigError::BadRegion {
                        task: t.name.clone(),
                        base: r.base,
                        size: r.size,
                    });
                }
                all.push((r.base, r.size, &t.name));
            }
            check_durable(i, t)?;
            if t.ram_size != 0 {
                // The RAM must lie in writable, non-durable regions, which
                // touch one another in order (one pass over sorted ones).
                let mut rw: Vec<_> = t
                    .regions
                    .iter()
                    .filter(|r| {
                        r.attributes & attr::WRITE != 0 && r.attributes & attr::DURABLE == 0
                    })
                    .map(|r| (r.base, r.base + r.size))
                    .collect();
                rw.sort_unstable();
                let end = t.ram_base.saturating_add(t.ram_size);
                let mut cursor = t.ram_base;
                for (b, e) in rw {
                    if b <= cursor && cursor < e {
                        cursor = e;
                    }
                }
                if cursor < end {
                    return Err(ConfigError::RamNotMapped {
                        task: t.name.clone(),
                    });
                }
            }
        }
        all.sort_unstable();
        for w in all.windows(2) {
            let ((b0, s0, t0), (b1, s1, t1)) = (w[0], w[1]);
            if overlaps((b0, s0), (b1, s1)) {
                return Err(ConfigError::Overlap {
                    task: t0.to_string(),
                    other: t1.to_string(),
                    base: b0,
                    other_base: b1,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, MAX_DURABLE_BYTES};
    use crate::{attr, KernelConfig, RegionDesc, TaskDesc};

    const RW: u32 = attr::READ | attr::WRITE;
    const DURABLE: u32 = RW | attr::DURABLE;

    fn task(name: &str, base: u64, durable: u64) -> TaskDesc {
        let mut regions = vec![
            RegionDesc {
                base,
                size: 0x2000,
                attributes: attr::READ | attr::EXECUTE,
            },
            RegionDesc {
                base: base + 0x3000,
                size: 0x3000,
                attributes: RW,
            },
        ];
        if durable != 0 {
            regions.push(RegionDesc {
                base: base + 0x7000,
                size: durable,
                attributes: DURABLE,
            });
        }
        TaskDesc {
            name: name.into(),
            priority: 1,
            start: true,
            entry: base,
            regions,
            stack_base: base + 0x3000,
            stack_top: base + 0x4000,
            ram_base: base + 0x3000,
            ram_size: 0x3000,
            durable_base: if durable != 0 { base + 0x7000 } else { 0 },
            durable_size: durable,
            data_load: 0,
            data_vma: 0,
            data_len: 0,
            ioports: vec![],
            rights: vec![0; 4],
            capabilities: 0,
            send_to: 0,
            posts: vec![],
        }
    }

    fn config(tasks: Vec<TaskDesc>) -> KernelConfig {
        KernelConfig {
            image: "t".into(),
            tick_us: 1000,
            debug_exit_port: None,
            tasks,
            irqs: vec![],
            tdx: Default::default(),
            restart_notify: None,
            defmt_in_band: false,
            on_finish: Default::default(),
            chaos: None,
            breakdown: false,
        }
    }

    #[test]
    fn a_durable_region_outside_ram_is_accepted() {
        let c = config(vec![
            task("sup", 0x100_0000, 0),
            task("a", 0x200_0000, 0x2000),
        ]);
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn the_supervisor_cannot_have_durable_memory() {
        let c = config(vec![task("sup", 0x100_0000, 0x1000)]);
        let e = c.check().unwrap_err();
        assert_eq!(e, ConfigError::DurableSupervisor { task: "sup".into() });
        assert!(e.to_string().contains("never restarted"), "{e}");
    }

    #[test]
    fn durable_memory_inside_ram_is_refused() {
        let mut t = task("a", 0x200_0000, 0x1000);
        t.regions[2].base = t.ram_base + 0x1000;
        t.durable_base = t.regions[2].base;
        let c = config(vec![task("sup", 0x100_0000, 0), t]);
        // It overlaps the RW region too; either refusal names the task.
        let e = c.check().unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::DurableInRam { .. } | ConfigError::Overlap { .. }
            ),
            "{e}"
        );
        let mut t = task("a", 0x200_0000, 0x1000);
        t.ram_size = 0x5000; // the RAM now claims the durable page
        let c = config(vec![task("sup", 0x100_0000, 0), t]);
        assert_eq!(
            c.check(),
            Err(ConfigError::DurableInRam { task: "a".into() })
        );
    }

    #[test]
    fn durable_shape_errors() {
        let sup = || task("sup", 0x100_0000, 0);
        let mut t = task("a", 0x200_0000, 0x1000);
        t.durable_size = 0x2000;
        let e = config(vec![sup(), t]).check().unwrap_err();
        assert_eq!(e, ConfigError::DurableMismatch { task: "a".into() });

        let mut t = task("a", 0x200_0000, 0);
        t.durable_size = 0x1000;
        let e = config(vec![sup(), t]).check().unwrap_err();
        assert_eq!(e, ConfigError::DurableMismatch { task: "a".into() });

        let mut t = task("a", 0x200_0000, 0x1000);
        t.regions[2].attributes |= attr::EXECUTE;
        let e = config(vec![sup(), t]).check().unwrap_err();
        assert!(matches!(e, ConfigError::DurableAccess { .. }), "{e}");

        let mut t = task("a", 0x200_0000, 0x1000);
        t.regions.push(RegionDesc {
            base: 0x200_0000 + 0x9000,
            size: 0x1000,
            attributes: DURABLE,
        });
        let e = config(vec![sup(), t]).check().unwrap_err();
        assert_eq!(e, ConfigError::SecondDurableRegion { task: "a".into() });

        let t = task("a", 0x200_0000, MAX_DURABLE_BYTES + 0x1000);
        let e = config(vec![sup(), t]).check().unwrap_err();
        assert!(e.to_string().contains("64 MiB"), "{e}");
    }

    #[test]
    fn regions_must_be_pages_and_disjoint_across_tasks() {
        let sup = || task("sup", 0x100_0000, 0);
        let mut t = task("a", 0x200_0000, 0x1000);
        t.regions[2].size = 0x800;
        t.durable_size = 0x800;
        let e = config(vec![sup(), t]).check().unwrap_err();
        assert!(matches!(e, ConfigError::BadRegion { .. }), "{e}");

        // b's text starts inside a's durable region.
        let a = task("a", 0x200_0000, 0x2000);
        let b = task("b", 0x200_8000, 0);
        let e = config(vec![sup(), a, b]).check().unwrap_err();
        assert!(
            matches!(&e, ConfigError::Overlap { task, other, .. } if task == "a" && other == "b"),
            "{e}"
        );
    }

    #[test]
    fn ram_must_be_mapped_writable() {
        let mut t = task("a", 0x200_0000, 0);
        t.ram_size = 0x4000;
        let e = config(vec![task("sup", 0x100_0000, 0), t])
            .check()
            .unwrap_err();
        assert_eq!(e, ConfigError::RamNotMapped { task: "a".into() });
    }
}
