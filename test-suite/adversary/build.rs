//! Task constants for every binary of the adversary crate, and the
//! referee's configuration (`[tasks.referee.config]`) as constants: which
//! tasks are attackers it waits for, which may fault by design, and how long
//! the image may run.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RefereeConfig {
    /// Attacker tasks; the image ends when each has reported DONE.
    #[serde(default)]
    attackers: Vec<String>,
    /// Tasks whose faults are part of an attack (restarted at once, not
    /// counted as failures).
    #[serde(default)]
    may_fault: Vec<String>,
    /// Tasks an attacker faults on purpose and restarts itself (idle): the
    /// referee records their faults as expected and does not restart them.
    #[serde(default)]
    hold_faulted: Vec<String>,
    /// Milliseconds before the referee gives up on missing attackers.
    #[serde(default)]
    timeout_ms: u64,
    /// isa-debug-exit port for the verdict.
    #[serde(default)]
    exit_port: u16,
}

fn indices(env: &build_util::TaskEnv, names: &[String], key: &str) -> Vec<u16> {
    names
        .iter()
        .map(|n| {
            env.task_index(n)
                .unwrap_or_else(|| panic!("referee config: {key} names `{n}`, which is not a task"))
        })
        .collect()
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let config: RefereeConfig = if env.config.get("attackers").is_some() {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    } else {
        RefereeConfig::default()
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pub const ATTACKERS: &[u16] = &{:?};",
        indices(&env, &config.attackers, "attackers")
    );
    let _ = writeln!(
        s,
        "pub const MAY_FAULT: &[u16] = &{:?};",
        indices(&env, &config.may_fault, "may-fault")
    );
    let _ = writeln!(
        s,
        "pub const HOLD_FAULTED: &[u16] = &{:?};",
        indices(&env, &config.hold_faulted, "hold-faulted")
    );
    let _ = writeln!(
        s,
        "pub const TIMEOUT_MS: u64 = {};",
        config.timeout_ms.max(1000)
    );
    let _ = writeln!(s, "pub const EXIT_PORT: u16 = {};", config.exit_port);
    std::fs::write(
        format!("{}/referee_config.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
