//! `[tasks.<this>.config]`: which tdx-host hotplug policy the image runs
//! (`policy = "reject" | "per-node"`), so the checks know what to expect, and whether the image
//! is the high-memory one (`highmem = true`: DIMMs above 64 GiB and 1 TiB, see
//! `test-suite/tdx-highmem.toml`).

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    policy: String,
    #[serde(default)]
    highmem: bool,
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let c: Config = if env.name.is_empty() {
        Config {
            policy: "reject".into(),
            highmem: false,
        }
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let per_node = match c.policy.as_str() {
        "reject" => false,
        "per-node" => true,
        other => {
            panic!("hotplug-check config: policy `{other}` is neither \"reject\" nor \"per-node\"")
        }
    };
    let mut s = String::new();
    if c.highmem && !per_node {
        panic!(
            "hotplug-check config: highmem needs the per-node policy (DIMMs become non-TDX memory)"
        );
    }
    let _ = writeln!(s, "pub const PER_NODE: bool = {per_node};");
    let _ = writeln!(s, "pub const HIGHMEM: bool = {};", c.highmem);
    std::fs::write(
        format!("{}/check_config.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
