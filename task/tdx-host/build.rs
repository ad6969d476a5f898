//! Build script of the `tdx-host` server binary: the TdxHost server stub (with the per-operation
//! access list from `[tasks.tdx-host.config.access]`) and the task's policy constants from the
//! rest of its manifest `config`:
//!
//! ```toml
//! [tasks.tdx-host.config]
//! hotplug-policy = "per-node"                # or "reject" (default)
//! boot-offline = [{ base = 0xe000000, size = 0x1000000, node = 1 }]
//! clients = { vmm-demo = { quota-mib = 64, nodes = [0, 1], classes = ["tdx"], hotplug = false, keyids = 2 } }
//! access = { online_region = ["hotplug"], offline_region = ["hotplug"] }
//! ```
//!
//! The task needs `notifications = ["client-restarted", "timer"]`: the kernel's restart
//! notification (reclaim) and its own timer (one bounded scrub step per tick).
//!
//! Outside `cargo xtask` (host tests, clippy) the environment is empty and defaults are used.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default)]
    hotplug_policy: Option<String>,
    #[serde(default)]
    boot_offline: Vec<Offline>,
    #[serde(default)]
    clients: std::collections::BTreeMap<String, Client>,
    /// Read by the IDL generator (per-operation access lists).
    #[serde(default)]
    access: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Offline {
    base: u64,
    size: u64,
    node: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Client {
    quota_mib: u64,
    #[serde(default)]
    nodes: Option<Vec<u16>>,
    #[serde(default = "tdx_only")]
    classes: Vec<String>,
    #[serde(default)]
    hotplug: bool,
    /// Most guest KeyIDs (TDs) the client may hold at once.
    #[serde(default)]
    keyids: u16,
}

fn tdx_only() -> Vec<String> {
    vec!["tdx".into()]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server logs progress with defmt (its `.defmt` string table); the
    // host build of the binary is a stub without defmt.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    let env = build_util::generate_task_consts()?;
    // The server paces its scrub steps with its timer and reclaims on the kernel's restart
    // notification: both bits must have names (an unclear compile error otherwise).
    if !env.name.is_empty() {
        for needed in ["client-restarted", "timer"] {
            if !env.notifications.iter().any(|n| n == needed) {
                return Err(format!(
                    "tasks.{}: tdx-host needs `notifications = [\"client-restarted\", \"timer\"]` (missing `{needed}`)",
                    env.name
                )
                .into());
            }
        }
    }
    let iface = idol::Interface::load("../../idl/tdx-host.idol")?;
    let acl = idol::server::acl_from_task_env(&env, &iface)?;
    idol::server::build_server_support("../../idl/tdx-host.idol", "server_stub.rs", &acl)?;

    let config: Config = if env.name.is_empty() {
        Config::default()
    } else {
        env.config()?
    };
    let _ = &config.access;
    let policy = match config.hotplug_policy.as_deref() {
        None | Some("reject") => "Reject",
        Some("per-node") => "PerNode",
        Some(other) => {
            return Err(format!(
                "tdx-host config: hotplug-policy `{other}` is neither \"reject\" nor \"per-node\""
            )
            .into())
        }
    };
    let mut out = String::new();
    writeln!(
        out,
        "/// Generated from the manifest by tdx-host's build.rs."
    )?;
    writeln!(
        out,
        "pub const HOTPLUG_POLICY: tdx_host::regions::HotplugPolicy = tdx_host::regions::HotplugPolicy::{policy};"
    )?;
    writeln!(out, "pub const BOOT_OFFLINE: &[(u64, u64, u16)] = &[")?;
    for o in &config.boot_offline {
        if o.base % 4096 != 0 || o.size % 4096 != 0 || o.size == 0 {
            return Err(format!(
                "tdx-host config: boot-offline range {:#x}+{:#x} is not 4 KiB-aligned and non-empty",
                o.base, o.size
            )
            .into());
        }
        writeln!(out, "    ({:#x}, {:#x}, {}),", o.base, o.size, o.node)?;
    }
    writeln!(out, "];")?;
    writeln!(
        out,
        "pub const CLIENTS: &[tdx_host::server::ClientPolicy] = &["
    )?;
    for (name, c) in &config.clients {
        let index = env.task_index(name).ok_or_else(|| {
            format!("tdx-host config: clients names `{name}`, which is not a task")
        })?;
        let mask: u64 = match &c.nodes {
            None => u64::MAX,
            Some(ns) => ns.iter().filter(|&&n| n < 64).fold(0, |m, &n| m | 1 << n),
        };
        for class in &c.classes {
            if class != "tdx" && class != "non-tdx" {
                return Err(format!(
                    "tdx-host config: client `{name}`: class `{class}` is neither \"tdx\" nor \"non-tdx\""
                )
                .into());
            }
        }
        writeln!(
            out,
            "    tdx_host::server::ClientPolicy {{ task_index: {index}, quota_bytes: {}, nodes: tdx_host::frames::NodeMask({mask:#x}), tdx: {}, non_tdx: {}, hotplug: {}, keyids: {} }}, // {name}",
            c.quota_mib.saturating_mul(1 << 20),
            c.classes.iter().any(|k| k == "tdx"),
            c.classes.iter().any(|k| k == "non-tdx"),
            c.hotplug,
            c.keyids
        )?;
    }
    writeln!(out, "];")?;
    let dir = std::env::var("OUT_DIR")?;
    std::fs::write(format!("{dir}/tdx_host_config.rs"), out)?;
    Ok(())
}
