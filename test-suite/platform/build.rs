//! Turns `[tasks.<this>.config]` — what the QEMU command line of this
//! image should produce — into constants the checks compare against.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    cpus: u32,
    packages: u32,
    nodes: u32,
    /// MiB of boot RAM per node (within 2 MiB).
    #[serde(default)]
    node_ram_mib: Vec<u64>,
    /// A hot-plug window is reported.
    #[serde(default)]
    hotplug: bool,
    /// The local APIC mode the kernel must report running in ("x2apic" or
    /// "xapic"; empty: not checked).
    #[serde(default)]
    lapic: String,
    /// What the SEAMCALL checks expect: "none", "absent" or "emulated".
    #[serde(default)]
    tdx: String,
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let e: Expect = if env.name.is_empty() {
        Expect::default()
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut s = String::new();
    let _ = writeln!(s, "pub const CPUS: usize = {};", e.cpus);
    let _ = writeln!(s, "pub const PACKAGES: u32 = {};", e.packages);
    let _ = writeln!(s, "pub const NODES: usize = {};", e.nodes);
    let _ = writeln!(s, "pub const NODE_RAM_MIB: &[u64] = &{:?};", e.node_ram_mib);
    let _ = writeln!(s, "pub const HOTPLUG: bool = {};", e.hotplug);
    let _ = writeln!(s, "pub const TDX: &str = {:?};", e.tdx);
    let _ = writeln!(s, "pub const LAPIC: &str = {:?};", e.lapic);
    std::fs::write(
        format!("{}/expect.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
