//! Build script of vmm-demo: the task's constants, and from `[tasks.vmm-demo.config]` how many
//! times the image's kill rules restart tdx-host while the demo runs:
//!
//! ```toml
//! [tasks.vmm-demo.config]
//! tdx-host-restarts = 1   # default 0: the demo fails unless it saw exactly this many
//! ```
//!
//! Outside `cargo xtask` (clippy) the environment is empty and the default is used.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    /// Restarts of tdx-host (its generation's advance) the demo must see.
    #[serde(default)]
    tdx_host_restarts: u16,
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let config: Config = if env.name.is_empty() {
        Config::default()
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pub const TDX_HOST_RESTARTS: u16 = {};",
        config.tdx_host_restarts
    );
    let dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(format!("{dir}/demo_config.rs"), out).expect("writing demo_config.rs");
}
