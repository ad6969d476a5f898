//! Generates the kernel's static tables from the configuration that
//! `cargo xtask dist` passes in `TDXHOST_KCONFIG` (JSON), and links the
//! kernel with `link.x`. Without the variable (e.g. `cargo clippy`), an
//! empty image is generated so the kernel still type-checks.

use std::fmt::Write as _;
use std::path::PathBuf;

use build_kconfig::{KernelConfig, KCONFIG_ENV_VAR};

fn main() {
    println!("cargo:rerun-if-env-changed={KCONFIG_ENV_VAR}");
    println!("cargo:rerun-if-changed=link.x");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!(
        "cargo:rustc-link-arg-bins=-T{}",
        dir.join("link.x").display()
    );
    // defmt's interned strings: a non-allocated `.defmt` section whose
    // addresses are the ids (defmt's build script puts `defmt.x` on the
    // link search path).
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");

    let config = match std::env::var(KCONFIG_ENV_VAR) {
        Ok(text) => serde_json::from_str::<KernelConfig>(&text)
            .unwrap_or_else(|e| panic!("{KCONFIG_ENV_VAR} is not a valid kernel config: {e}")),
        Err(_) => KernelConfig {
            image: "unconfigured".into(),
            tick_us: 1000,
            debug_exit_port: None,
            tasks: vec![],
            irqs: vec![],
            tdx: Default::default(),
            restart_notify: None,
            defmt_in_band: false,
            on_finish: Default::default(),
            chaos: None,
            breakdown: false,
        },
    };
    // xtask checked this already; a stale or hand-written configuration
    // must not reach the kernel either.
    if let Err(e) = config.check() {
        panic!("{KCONFIG_ENV_VAR}: {e}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("kconfig_scalars.rs"), render_scalars(&config)).unwrap();
    std::fs::write(out.join("kconfig.rs"), render(&config)).unwrap();
}

/// The image's scalar settings, for `config.rs`: a leaf module, so the
/// failure paths can read them without depending on startup.
fn render_scalars(c: &KernelConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "pub const IMAGE_NAME: &str = {:?};", c.image);
    let _ = writeln!(s, "pub const TICK_US: u32 = {};", c.tick_us);
    let _ = writeln!(
        s,
        "pub const DEBUG_EXIT_PORT: Option<u16> = {:?};",
        c.debug_exit_port
    );
    let _ = writeln!(s, "pub const DEFMT_IN_BAND: bool = {};", c.defmt_in_band);
    // A constant, so that without it every probe of `breakdown` compiles away.
    let _ = writeln!(s, "pub const BREAKDOWN: bool = {};", c.breakdown);
    let _ = writeln!(
        s,
        "/// What `EndRun` does: 0 stay, 1 halt, 2 reset.\npub const ON_FINISH: u8 = {};",
        c.on_finish as u8
    );
    s
}

fn render(c: &KernelConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "pub const TASK_COUNT: usize = {};", c.tasks.len());
    let _ = writeln!(s, "pub static TASK_DESCS: [TaskDesc; TASK_COUNT] = [");
    for t in &c.tasks {
        let _ = writeln!(s, "    TaskDesc {{");
        let _ = writeln!(
            s,
            "        name: {:?}, priority: {}, start: {}, entry: {:#x},",
            t.name, t.priority, t.start, t.entry
        );
        let _ = writeln!(s, "        regions: &[");
        let mut regions = t.regions.clone();
        regions.sort_by_key(|r| r.base);
        for r in regions {
            let _ = writeln!(
                s,
                "            RegionDesc {{ base: {:#x}, size: {:#x}, attributes: {} }},",
                r.base, r.size, r.attributes
            );
        }
        let _ = writeln!(s, "        ],");
        let _ = writeln!(
            s,
            "        stack_base: {:#x}, stack_top: {:#x},",
            t.stack_base, t.stack_top
        );
        let _ = writeln!(
            s,
            "        ram_base: {:#x}, ram_size: {:#x}, durable_base: {:#x}, durable_size: {:#x},",
            t.ram_base, t.ram_size, t.durable_base, t.durable_size
        );
        let _ = writeln!(
            s,
            "        data_load: {:#x}, data_vma: {:#x}, data_len: {:#x},",
            t.data_load, t.data_vma, t.data_len
        );
        let _ = writeln!(s, "        ioports: &{:?},", t.ioports);
        let rights: Vec<String> = t.rights.iter().map(|r| format!("{r:#x}")).collect();
        let _ = writeln!(s, "        rights: [{}],", rights.join(", "));
        let _ = writeln!(s, "        capabilities: {:#x},", t.capabilities);
        let _ = writeln!(s, "        send_to: {:#x},", t.send_to);
        let posts: Vec<String> = t
            .posts
            .iter()
            .map(|(i, bits)| format!("({i}, {bits:#x})"))
            .collect();
        let _ = writeln!(s, "        posts: &[{}],", posts.join(", "));
        let _ = writeln!(s, "    }},");
    }
    let _ = writeln!(s, "];");
    let _ = writeln!(s, "pub static IRQS: &[IrqBinding] = &[");
    for b in &c.irqs {
        let _ = writeln!(
            s,
            "    IrqBinding {{ irq: {}, task: {}, mask: {:#x} }},",
            b.irq, b.task, b.mask
        );
    }
    let _ = writeln!(s, "];");
    let _ = writeln!(
        s,
        "pub const RESTART_NOTIFY: Option<(u16, u64)> = {:?};",
        c.restart_notify
    );
    let x = &c.tdx;
    let backend = match x.backend {
        build_kconfig::TdxBackend::None => "None",
        build_kconfig::TdxBackend::Emulated => "Emulated",
        build_kconfig::TdxBackend::Hardware => "Hardware",
    };
    let _ = writeln!(s, "pub static TDX: TdxConfig = TdxConfig {{");
    let _ = writeln!(s, "    backend: TdxBackendKind::{backend},");
    let _ = writeln!(
        s,
        "    keyid_bits: {}, mktme_keyids: {}, tdx_keyids: {}, max_tdmrs: {}, max_reserved_per_tdmr: {}, pamt_entry_size: {},",
        x.keyid_bits, x.mktme_keyids, x.tdx_keyids, x.max_tdmrs, x.max_reserved_per_tdmr, x.pamt_entry_size
    );
    let _ = writeln!(
        s,
        "    features0: {:#x}, absent: {},",
        x.features0, x.absent
    );
    let _ = writeln!(s, "    faults: &[");
    for f in &x.faults {
        let _ = writeln!(
            s,
            "        FaultRuleDesc {{ leaf: {}, status: {:#x}, on_call: {:?}, on_cpu: {:?}, repeat: {}, kill: {} }},",
            f.leaf,
            f.status,
            f.on_call,
            f.on_cpu,
            f.repeat,
            match f.kill {
                None => "None",
                Some(build_kconfig::KillWhen::Before) => "Some(kerncore::inject::When::Before)",
                Some(build_kconfig::KillWhen::After) => "Some(kerncore::inject::When::After)",
            }
        );
    }
    let _ = writeln!(s, "    ],\n}};");
    // Whether any task may arm a kill (it holds a Fault right): without
    // one, the syscall path's test for an armed kill compiles away.
    let fault = abi::kipc::Right::Fault as usize;
    let armable = c
        .tasks
        .iter()
        .any(|t| t.rights.get(fault).is_some_and(|&m| m != 0));
    let _ = writeln!(s, "pub const KILLS_ARMABLE: bool = {armable};");
    // `CHAOS_TASK` is a constant so that, without chaos, the syscall path's
    // test of it compiles away (`syscalls`).
    match &c.chaos {
        Some(ch) => {
            let _ = writeln!(
                s,
                "pub static CHAOS: Option<ChaosDesc> = Some(ChaosDesc {{ task: {}, seed: {}, kills: {}, every: {}, after: {} }});",
                ch.task, ch.seed, ch.kills, ch.every, ch.after
            );
            let _ = writeln!(
                s,
                "pub const CHAOS_TASK: Option<usize> = Some({});",
                ch.task
            );
        }
        None => {
            let _ = writeln!(s, "pub static CHAOS: Option<ChaosDesc> = None;");
            let _ = writeln!(s, "pub const CHAOS_TASK: Option<usize> = None;");
        }
    }
    s
}
