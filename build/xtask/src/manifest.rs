//! The manifest (`app.toml`): parsing, did-you-mean errors, and the
//! build-time rules.
//!
//! Every table denies unknown keys; a rejected key is reported with the
//! file, the line, and the closest known key. After parsing, [`validate`]
//! enforces the system's structural rules: the supervisor is task 0 at
//! priority 0 and nothing else is; `idle` is strictly least important;
//! every task slot points uphill (IPC goes to more important tasks only),
//! except the ones an image declares as `downhill-slots`; every right and
//! every `posts` edge names a real task (and real notifications of it);
//! and names, ports and IRQs are sane.
//!
//! The task slots (both kinds) are a task's SEND edges and `posts` its
//! POST edges: the kernel refuses IPC along any other edge.
//!
//! A manifest may `inherit` another ([`inherit`]): the chain is merged into
//! one table first, and everything above applies to the merged result, so
//! no consumer (dist, the task build scripts' config, kconfig, the QEMU
//! settings of run/test/hotplug) sees a file on its own. A file whose text
//! is the whole manifest is parsed directly, for errors with line numbers;
//! a merged one's errors name the section and the file of a bad key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

mod inherit;

pub use inherit::{Chain, BASE_KEY, INHERIT_KEY};

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Image name.
    pub name: String,
    /// One line saying what the image is for.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kernel: KernelSettings,
    #[serde(default)]
    pub qemu: QemuSettings,
    /// Tasks in table order (index 0 = supervisor).
    pub tasks: toml::map::Map<String, toml::Value>,
    /// The file it came from (set after parsing).
    #[serde(skip)]
    pub path: PathBuf,
    /// Parsed tasks, in order.
    #[serde(skip)]
    pub parsed_tasks: Vec<(String, TaskSettings)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelSettings {
    /// Timer tick in microseconds.
    #[serde(default = "default_tick")]
    pub tick_us: u32,
    /// Where task memory starts (2 MiB-aligned, above the kernel image).
    #[serde(default = "default_task_base")]
    pub task_base: u64,
    /// isa-debug-exit port the kernel may use to report a kernel panic.
    #[serde(default)]
    pub debug_exit_port: Option<u16>,
    /// The SEAMCALL backend; absent = no TDX.
    #[serde(default)]
    pub tdx: Option<crate::tdxconf::TdxSettings>,
    /// Post a notification to a task whenever any task restarts.
    #[serde(default)]
    pub restart_notify: Option<RestartNotify>,
    /// Where defmt records go: `com2` (a second UART, the default) or
    /// `console` (framed in-band on COM1, for a machine with one serial
    /// console; see `verdict::frame`).
    #[serde(default)]
    pub defmt: DefmtPort,
    /// How the run ends when the image is done and no isa-debug-exit
    /// device ended it (a rig): `stay` (the default: keep running),
    /// `halt`, or `reset` (the rig boots the next image).
    #[serde(default)]
    pub on_finish: build_kconfig::OnFinish,
    /// Seeded random kills of one task (restart soaks).
    #[serde(default)]
    pub chaos: Option<ChaosSettings>,
    /// Count the guest instructions of each phase of the syscall path and
    /// print them (`cargo xtask bench --breakdown`; benchmark images only).
    #[serde(default)]
    pub breakdown: bool,
}

/// `[kernel.chaos] task = "tdx-host", seed = 1, kills = 200, every = 40, after = 0`:
/// the kernel kills `task` `kills` times at seeded pseudo-random points, each 1..=`every`
/// events (its system calls and the timer ticks that interrupt it) after the previous,
/// the first after `after` events more; it prints the seed at boot and every kill.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChaosSettings {
    pub task: String,
    pub seed: u64,
    pub kills: u32,
    #[serde(default = "default_chaos_every")]
    pub every: u32,
    #[serde(default)]
    pub after: u32,
}

fn default_chaos_every() -> u32 {
    50
}

/// The most kills `[kernel.chaos]` may ask for.
pub const MAX_CHAOS_KILLS: u32 = 100_000;

/// `[kernel] defmt = "com2" | "console"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefmtPort {
    #[default]
    Com2,
    Console,
}

/// `restart-notify = { task = "tdx-host", notification = "client-restarted" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartNotify {
    pub task: String,
    pub notification: String,
}

fn default_tick() -> u32 {
    1000
}

fn default_task_base() -> u64 {
    16 << 20
}

impl Default for KernelSettings {
    fn default() -> Self {
        KernelSettings {
            tick_us: default_tick(),
            task_base: default_task_base(),
            debug_exit_port: None,
            tdx: None,
            restart_notify: None,
            defmt: DefmtPort::Com2,
            on_finish: build_kconfig::OnFinish::Stay,
            chaos: None,
            breakdown: false,
        }
    }
}

/// How `cargo xtask run`/`test` start QEMU for this image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QemuSettings {
    #[serde(default = "default_memory")]
    pub memory: String,
    #[serde(default = "default_smp")]
    pub smp: String,
    /// Further QEMU arguments (NUMA, hotplug slots, devices).
    #[serde(default)]
    pub args: Vec<String>,
    /// Wall-clock seconds after which a run counts as hung.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_memory() -> String {
    "256M".into()
}

fn default_smp() -> String {
    "1".into()
}

fn default_timeout() -> u64 {
    120
}

impl Default for QemuSettings {
    fn default() -> Self {
        QemuSettings {
            memory: default_memory(),
            smp: default_smp(),
            args: vec![],
            timeout: default_timeout(),
        }
    }
}

/// One `[tasks.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskSettings {
    /// The crate (and binary) that implements the task.
    #[serde(rename = "crate")]
    pub crate_name: String,
    /// The binary in that crate, when it is not named like the crate.
    #[serde(default)]
    pub binary: Option<String>,
    pub priority: u8,
    /// Memory budget.
    pub memory: MemoryBudget,
    #[serde(default = "default_stack")]
    pub stack_size: u64,
    #[serde(default = "default_true")]
    pub start: bool,
    /// Tasks this one sends to: `"name"` or `{ slot = "task" }`. Each must
    /// be strictly more important than this task.
    #[serde(default)]
    pub task_slots: Vec<SlotSpec>,
    /// Task slots exempt from the uphill rule, to tasks as or less
    /// important than this one. Each is a deadlock hazard the image
    /// accepts (a cycle of SENDs blocks forever); test images use them for
    /// servers that call their own clients back.
    #[serde(default)]
    pub downhill_slots: Vec<SlotSpec>,
    /// POST edges: target task → names of the target's notifications this
    /// task may post, e.g. `posts = { "tdx-host" = ["wake"] }`. Posting to
    /// oneself needs no edge.
    #[serde(default)]
    pub posts: BTreeMap<String, Vec<String>>,
    /// Notification names; bit i is the i-th name.
    #[serde(default)]
    pub notifications: Vec<String>,
    /// IOAPIC input → notification name.
    #[serde(default)]
    pub interrupts: BTreeMap<String, String>,
    /// I/O port ranges the task may use directly.
    #[serde(default)]
    pub ioports: Vec<PortRange>,
    /// Kernel-IPC rights over other tasks.
    #[serde(default)]
    pub rights: Rights,
    /// Capabilities beyond kernel-IPC rights: `platform` (read the platform
    /// record), `seamcall`, `memory-authority` (scrub frames, flush caches).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Task-specific configuration, handed to the task's build script.
    #[serde(default)]
    pub config: Option<toml::Value>,
}

fn default_stack() -> u64 {
    8192
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryBudget {
    /// Code, read-only data and the initial `.data` image.
    pub text: u64,
    /// `.data` and `.bss` (the stack is separate).
    pub ram: u64,
    /// Durable memory: a page multiple, placed after the RAM behind a
    /// guard page; statics go there with `#[link_section = ".durable"]`.
    /// Zeroed once at boot; the task's restarts keep it (see
    /// `build_kconfig::check` for the rules).
    #[serde(default)]
    pub durable: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SlotSpec {
    Same(String),
    Renamed(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub base: u16,
    pub count: u16,
}

/// Kernel-IPC rights: for each kind, the tasks it may be used on
/// (`"*"` for all).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rights {
    #[serde(default)]
    pub status: Vec<String>,
    #[serde(default)]
    pub restart: Vec<String>,
    #[serde(default)]
    pub fault: Vec<String>,
    #[serde(default)]
    pub panic_message: Vec<String>,
}

impl Rights {
    /// In `abi::kipc::Right` order.
    pub fn by_kind(&self) -> [(&'static str, &Vec<String>); 4] {
        [
            ("status", &self.status),
            ("restart", &self.restart),
            ("fault", &self.fault),
            ("panic-message", &self.panic_message),
        ]
    }
}

impl TaskSettings {
    /// The binary target that is the task.
    pub fn binary_name(&self) -> &str {
        self.binary.as_deref().unwrap_or(&self.crate_name)
    }

    /// `(slot name, target task)` pairs of both kinds of slot.
    pub fn slots(&self) -> Vec<(String, String)> {
        let mut out = Self::resolve(&self.task_slots);
        out.extend(Self::resolve(&self.downhill_slots));
        out
    }

    fn resolve(specs: &[SlotSpec]) -> Vec<(String, String)> {
        let mut out = vec![];
        for s in specs {
            match s {
                SlotSpec::Same(t) => out.push((t.clone(), t.clone())),
                SlotSpec::Renamed(m) => {
                    for (slot, task) in m {
                        out.push((slot.clone(), task.clone()));
                    }
                }
            }
        }
        out
    }
}

/// Names accepted in `capabilities`.
fn capability_names() -> impl Iterator<Item = &'static str> {
    build_kconfig::capability::BY_NAME
        .into_iter()
        .map(|(n, _)| n)
}

/// The kernel's bit for capability `name`.
pub fn capability_bit(name: &str) -> Option<u32> {
    build_kconfig::capability::BY_NAME
        .into_iter()
        .find_map(|(n, bit)| (n == name).then_some(bit))
}

/// The key of serde's "unknown field" message, if it is one.
fn unknown_field(message: &str) -> Option<&str> {
    message.split("unknown field `").nth(1)?.split('`').next()
}

/// Adds "did you mean" to serde's "unknown field" messages.
fn explain(message: &str) -> String {
    let Some(field) = unknown_field(message) else {
        return message.to_string();
    };
    let expected: Vec<&str> = message
        .split("expected one of ")
        .nth(1)
        .or_else(|| message.split("expected ").nth(1))
        .map(|l| {
            l.split(',')
                .map(|x| x.trim().trim_matches(|c| c == '`' || c == ' ' || c == '\n'))
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let best = expected
        .iter()
        .map(|e| (strsim::jaro_winkler(field, e), e))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, e)) => format!("{message}\n  hint: did you mean `{e}`?"),
        None => message.to_string(),
    }
}

/// Reads and checks a manifest, with the files it inherits.
pub fn load(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    parse(&text, path)
}

/// Parses manifest text (`path` is for messages, and the directory a
/// base named by `inherit` is found in).
pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
    let chain = Chain::from_text(text, path)?;
    if chain.is_marked_base() {
        bail!(
            "{}: marked `{BASE_KEY} = true`: it is only a base for manifests that `{INHERIT_KEY}` it, not an image; name one of those instead",
            path.display()
        );
    }
    let source = chain.describe();
    // For a merged manifest, which file an unknown key came from.
    let origin = |under: &[&str], message: &str| -> String {
        let Some(key) = unknown_field(message).filter(|_| !chain.is_plain()) else {
            return String::new();
        };
        let files: Vec<String> = chain
            .origins_of(under, key)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if files.is_empty() {
            String::new()
        } else {
            format!("\n  note: `{key}` is set in {}", files.join(" and "))
        }
    };
    let fail = |under: &[&str], context: &str, e: &toml::de::Error| {
        let message = e.to_string();
        anyhow::anyhow!(
            "{source}: {context}{}{}",
            explain(&message),
            origin(under, &message)
        )
    };
    let mut m: Manifest = if chain.is_plain() {
        // The text is the whole manifest: its errors carry line numbers.
        toml::from_str(text).map_err(|e| fail(&[], "", &e))?
    } else {
        let merged = chain.merged();
        // The sections on their own first, so an error names its section.
        if let Some(v) = merged.get("kernel") {
            KernelSettings::deserialize(v.clone())
                .map_err(|e| fail(&["kernel"], "in [kernel]: ", &e))?;
        }
        if let Some(v) = merged.get("qemu") {
            QemuSettings::deserialize(v.clone()).map_err(|e| fail(&["qemu"], "in [qemu]: ", &e))?;
        }
        Manifest::deserialize(toml::Value::Table(merged)).map_err(|e| fail(&[], "", &e))?
    };
    m.path = path.to_path_buf();
    for (name, value) in &m.tasks {
        let t = TaskSettings::deserialize(value.clone()).map_err(|e| {
            fail(
                &["tasks", name.as_str()],
                &format!("in [tasks.{name}]: "),
                &e,
            )
        })?;
        m.parsed_tasks.push((name.clone(), t));
    }
    validate(&m).with_context(|| format!("{source}: invalid manifest"))?;
    Ok(m)
}

fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let best = known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(s, _)| *s > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

/// The structural rules of an image.
pub fn validate(m: &Manifest) -> Result<()> {
    if let Some(tdx) = &m.kernel.tdx {
        tdx.check()?;
    }
    let tasks = &m.parsed_tasks;
    if tasks.is_empty() {
        bail!("the image has no tasks");
    }
    if tasks.len() > 64 {
        bail!("{} tasks; at most 64 are supported", tasks.len());
    }
    let names: Vec<&String> = tasks.iter().map(|(n, _)| n).collect();
    let index_of = |n: &str| names.iter().position(|x| *x == n);
    for (name, _) in tasks {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("task name `{name}`: use letters, digits, `-` and `_`");
        }
    }
    let (sup, sup_t) = &tasks[0];
    if sup_t.priority != 0 {
        bail!(
            "task `{sup}` is first, so it is the supervisor, and must have priority 0 (has {})",
            sup_t.priority
        );
    }
    for (name, t) in &tasks[1..] {
        if t.priority == 0 {
            bail!("task `{name}` has priority 0, which is reserved for the supervisor `{sup}` (the first task)");
        }
    }
    if !sup_t.start {
        bail!("the supervisor `{sup}` must start at boot");
    }
    match index_of("idle") {
        None => {
            bail!("the image has no `idle` task; the scheduler needs one that is always runnable")
        }
        Some(i) => {
            let p = tasks[i].1.priority;
            for (name, t) in tasks {
                if name != "idle" && t.priority >= p {
                    bail!("`idle` must be strictly less important than every task, but `{name}` has priority {} and idle {p}", t.priority);
                }
            }
            if !tasks[i].1.start {
                bail!("`idle` must start at boot");
            }
        }
    }
    if let Some(rn) = &m.kernel.restart_notify {
        let Some(i) = index_of(&rn.task) else {
            bail!(
                "kernel.restart-notify names `{}`, which is not a task{}",
                rn.task,
                suggest(&rn.task, names.iter().map(|n| n.as_str()))
            );
        };
        if !tasks[i].1.notifications.contains(&rn.notification) {
            bail!(
                "kernel.restart-notify: task `{}` has no notification `{}`",
                rn.task,
                rn.notification
            );
        }
    }
    if let Some(c) = &m.kernel.chaos {
        let Some(i) = index_of(&c.task) else {
            bail!(
                "kernel.chaos.task names `{}`, which is not a task{}",
                c.task,
                suggest(&c.task, names.iter().map(|n| n.as_str()))
            );
        };
        if i == 0 {
            bail!("kernel.chaos.task = `{}` is the supervisor, whose fault stops the kernel; name a task it restarts", c.task);
        }
        if c.kills == 0 || c.kills > MAX_CHAOS_KILLS {
            bail!(
                "kernel.chaos.kills = {} is out of range 1..={MAX_CHAOS_KILLS}",
                c.kills
            );
        }
        if c.every == 0 {
            bail!("kernel.chaos.every = 0 is out of range 1..=4294967295 (the most events between two kills)");
        }
    }
    for (name, t) in tasks {
        let mut seen_slots = std::collections::BTreeSet::new();
        for (slot, target) in t.slots() {
            if index_of(&target).is_none() {
                bail!(
                    "task `{name}`: task slot `{slot}` names `{target}`, which is not a task{}",
                    suggest(&target, names.iter().map(|n| n.as_str()))
                );
            }
            if !seen_slots.insert(slot.clone()) {
                bail!("task `{name}`: task slot `{slot}` is declared twice");
            }
            if target == *name {
                bail!("task `{name}`: task slot `{slot}` names the task itself; a task cannot SEND to itself");
            }
        }
        for (_, target) in TaskSettings::resolve(&t.task_slots) {
            let tp = tasks[index_of(&target).expect("checked above")].1.priority;
            if tp >= t.priority {
                bail!(
                    "task `{name}` (priority {}) has a task slot to `{target}` (priority {tp}): IPC must go uphill, to a strictly more important task (an image that needs this edge declares it in `downhill-slots`)",
                    t.priority
                );
            }
        }
        for (slot, target) in TaskSettings::resolve(&t.downhill_slots) {
            let tp = tasks[index_of(&target).expect("checked above")].1.priority;
            if tp < t.priority {
                bail!(
                    "task `{name}` (priority {}): downhill slot `{slot}` names `{target}` (priority {tp}), which is more important; list it in `task-slots`",
                    t.priority
                );
            }
        }
        for (target, notes) in &t.posts {
            let Some(j) = index_of(target) else {
                bail!(
                    "task `{name}`: `posts` names `{target}`, which is not a task{}",
                    suggest(target, names.iter().map(|n| n.as_str()))
                );
            };
            if target == name {
                bail!("task `{name}`: `posts` names the task itself; a task may always post to itself, so remove the entry");
            }
            let declared = &tasks[j].1.notifications;
            for note in notes {
                if !declared.contains(note) {
                    bail!(
                        "task `{name}`: `posts` lets it post `{note}` to `{target}`, which has no such notification{}",
                        suggest(note, declared.iter().map(|n| n.as_str()))
                    );
                }
            }
        }
        for (kind, list) in t.rights.by_kind() {
            for target in list {
                if target != "*" && index_of(target).is_none() {
                    bail!(
                        "task `{name}`: right `{kind}` names `{target}`, which is not a task{}",
                        suggest(target, names.iter().map(|n| n.as_str()))
                    );
                }
            }
        }
        if t.notifications.len() > 64 {
            bail!(
                "task `{name}`: {} notifications; at most 64",
                t.notifications.len()
            );
        }
        for (irq, note) in &t.interrupts {
            let n: u8 = irq.parse().ok().filter(|n| *n < 24).with_context(|| {
                format!("task `{name}`: interrupt `{irq}` is not an IOAPIC input 0..23")
            })?;
            if !t.notifications.contains(note) {
                bail!(
                    "task `{name}`: interrupt {n} posts `{note}`, which is not in its notifications{}",
                    suggest(note, t.notifications.iter().map(|n| n.as_str()))
                );
            }
        }
        for p in &t.ioports {
            if p.count == 0 || u32::from(p.base) + u32::from(p.count) > 0x1_0000 {
                bail!(
                    "task `{name}`: I/O port range {:#x}+{} is empty or past 0xffff",
                    p.base,
                    p.count
                );
            }
        }
        for c in &t.capabilities {
            if capability_bit(c).is_none() {
                bail!(
                    "task `{name}`: unknown capability `{c}`{} (known: {})",
                    suggest(c, capability_names()),
                    capability_names().collect::<Vec<_>>().join(", ")
                );
            }
        }
        if let Some(d) = t.memory.durable {
            check_durable(name, d, std::ptr::eq(t, sup_t))?;
        }
        if t.memory.text == 0 || t.stack_size < 4096 {
            bail!("task `{name}`: text budget must be non-zero and the stack at least 4096 bytes");
        }
    }
    Ok(())
}

/// `memory.durable` of task `name`: a non-zero page multiple up to the
/// kernel's limit, and not on the supervisor.
fn check_durable(name: &str, size: u64, supervisor: bool) -> Result<()> {
    let page = build_kconfig::PAGE_SIZE;
    let max = build_kconfig::MAX_DURABLE_BYTES;
    if supervisor {
        bail!("task `{name}`: memory.durable is not allowed on the supervisor (the first task): it is never restarted (a fault of it stops the kernel), so durable memory would be plain RAM; give it to the task that is restarted");
    }
    if size == 0 {
        bail!("task `{name}`: memory.durable = 0; leave the key out for no durable memory");
    }
    if !size.is_multiple_of(page) {
        bail!("task `{name}`: memory.durable = {size:#x} is not a multiple of the page size {page:#x}");
    }
    if size > max {
        bail!(
            "task `{name}`: memory.durable = {size:#x} is larger than the limit {max:#x} (64 MiB)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
