//! Turns `[tasks.<this>.config]` — what tdx-host should end up as in this image — into
//! constants the checks compare against.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    /// "ready", "failed" or "unavailable".
    #[serde(default)]
    state: String,
    #[serde(default)]
    nodes: u16,
    /// For "failed": the step (InitStep value) and the status.
    #[serde(default)]
    fail_step: u8,
    /// Hex string: statuses with bit 63 set do not fit a TOML integer.
    #[serde(default)]
    fail_status: String,
    /// For "unavailable": the UnavailableReason value.
    #[serde(default)]
    reason: u8,
    /// Steps (InitStep values) where a transient fault was injected: at least one retry each.
    #[serde(default)]
    retries_at: Vec<u8>,
    /// "reject" or "per-node".
    #[serde(default)]
    policy: String,
    /// A boot-offline TDX range `[base, size, node]` to online.
    #[serde(default)]
    boot_offline: Vec<u64>,
    /// Run the exhaustion, quota and bad-input cases.
    #[serde(default)]
    full: bool,
    /// The local APIC mode the kernel must report running in ("x2apic" or
    /// "xapic"; empty: not checked).
    #[serde(default)]
    lapic: String,
    /// A victim task shares a frame, then is killed holding frames.
    #[serde(default)]
    victim: bool,
    /// Kill tdx-host in the middle of requests, a scrub, a reclaim and hot-plug steps, then
    /// damage its ledger (`restart.rs`; needs the Fault right over tdx-host, the Restart right
    /// over the victim and a task slot for it).
    #[serde(default)]
    restart_cases: bool,
    /// TDMR.INIT must have run on at least this many CPUs at once, each within the list
    /// scheduling bound (`parinit.rs`; 0: not checked).
    #[serde(default)]
    parallel_tdmr_init: u16,
    /// tdx-host must serve TDX frames while TDMR.INIT still runs (`early.rs`; the image needs
    /// several 1 GiB blocks so that some are initialized before others).
    #[serde(default)]
    early_serve: bool,
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let e: Expect = if env.name.is_empty() || env.config.get("state").is_none() {
        Expect::default()
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut s = String::new();
    let _ = writeln!(s, "pub const STATE: &str = {:?};", e.state);
    let _ = writeln!(s, "pub const NODES: u16 = {};", e.nodes);
    let _ = writeln!(s, "pub const FAIL_STEP: u8 = {};", e.fail_step);
    let status = if e.fail_status.is_empty() {
        0
    } else {
        let hex = e.fail_status.trim_start_matches("0x").replace('_', "");
        u64::from_str_radix(&hex, 16)
            .unwrap_or_else(|err| panic!("fail-status {:?}: {err}", e.fail_status))
    };
    let _ = writeln!(s, "pub const FAIL_STATUS: u64 = {status:#x};");
    let _ = writeln!(s, "pub const REASON: u8 = {};", e.reason);
    let _ = writeln!(s, "pub const RETRIES_AT: &[u8] = &{:?};", e.retries_at);
    let _ = writeln!(s, "pub const POLICY: &str = {:?};", e.policy);
    let _ = writeln!(s, "pub const BOOT_OFFLINE: &[u64] = &{:?};", e.boot_offline);
    let _ = writeln!(s, "pub const FULL: bool = {};", e.full);
    let _ = writeln!(s, "pub const VICTIM: bool = {};", e.victim);
    let _ = writeln!(s, "pub const RESTART_CASES: bool = {};", e.restart_cases);
    let _ = writeln!(s, "pub const LAPIC: &str = {:?};", e.lapic);
    let _ = writeln!(s, "pub const EARLY_SERVE: bool = {};", e.early_serve);
    let _ = writeln!(
        s,
        "pub const PARALLEL_TDMR_INIT: u16 = {};",
        e.parallel_tdmr_init
    );
    std::fs::write(
        format!("{}/expect.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
