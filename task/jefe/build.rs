//! Generates jefe's constants from the manifest: notifications, and from
//! `[tasks.jefe.config]` which tasks may report the image finished and
//! whether jefe may end a QEMU run through isa-debug-exit.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    /// Tasks allowed to say "the image has shown what it does".
    #[serde(default)]
    may_finish: Vec<String>,
    /// isa-debug-exit port jefe writes the verdict to (needs an ioports
    /// grant); absent on hardware images.
    #[serde(default)]
    exit_port: Option<u16>,
    /// End the run with failure when any task faults.
    #[serde(default)]
    fail_on_fault: bool,
    /// Tasks jefe restarts whatever `fail-on-fault` says: the ones whose
    /// restart the image is about (tdx-host in the restart images).
    #[serde(default)]
    restart: Vec<String>,
}

fn main() {
    // defmt logging (userlib feature `defmt`): `.defmt` string table.
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let config: Config = if env.name.is_empty() {
        Config::default()
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut out = String::new();
    let finishers: Vec<u16> = config
        .may_finish
        .iter()
        .map(|n| {
            env.task_index(n).unwrap_or_else(|| {
                panic!("jefe config: may-finish names `{n}`, which is not a task")
            })
        })
        .collect();
    let _ = writeln!(out, "pub const MAY_FINISH: &[u16] = &{finishers:?};");
    let _ = writeln!(
        out,
        "pub const EXIT_PORT: Option<u16> = {:?};",
        config.exit_port
    );
    let _ = writeln!(
        out,
        "pub const FAIL_ON_FAULT: bool = {};",
        config.fail_on_fault
    );
    let restart: Vec<u16> = config
        .restart
        .iter()
        .map(|n| {
            env.task_index(n)
                .unwrap_or_else(|| panic!("jefe config: restart names `{n}`, which is not a task"))
        })
        .collect();
    if restart.contains(&0) {
        panic!("jefe config: restart names jefe itself, which cannot be restarted");
    }
    let _ = writeln!(out, "pub const ALWAYS_RESTART: &[u16] = &{restart:?};");
    let dir = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{dir}/jefe_config.rs"), out).unwrap();
}
