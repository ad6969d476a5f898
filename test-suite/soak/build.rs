//! `[tasks.<this>.config]` of a soak task: how many chaos kills the image's `[kernel.chaos]`
//! makes of tdx-host (both the checker and the clients run until tdx-host has been restarted
//! that many times), and the client's seed.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default)]
    kills: u32,
    #[serde(default)]
    seed: u64,
    /// The chaos seed the kernel was given (printed in the checker's summary line).
    #[serde(default)]
    chaos_seed: u64,
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let c: Config = if env.name.is_empty() {
        Config::default()
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut s = String::new();
    let _ = writeln!(s, "pub const KILLS: u32 = {};", c.kills);
    let _ = writeln!(s, "pub const SEED: u64 = {};", c.seed);
    let _ = writeln!(s, "pub const CHAOS_SEED: u64 = {};", c.chaos_seed);
    std::fs::write(
        format!("{}/config.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
