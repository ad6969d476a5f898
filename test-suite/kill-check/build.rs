//! `[tasks.kill-check.config]`: how many chaos kills the image's
//! `[kernel.chaos]` makes, and which task it kills.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default)]
    chaos_kills: u32,
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let c: Config = if env.name.is_empty() {
        Config::default()
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut s = String::new();
    let _ = writeln!(s, "pub const CHAOS_KILLS: u32 = {};", c.chaos_kills);
    std::fs::write(
        format!("{}/expect.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
