//! Turns `[tasks.<this>.config]` into the driver's constants: how many slots
//! to scan, the GPE0 block and SCI the manifest grants (checked against the
//! FADT at run time), and the poll period.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    /// Memory slots (`-m ...,slots=N`).
    slots: u32,
    /// The GPE0 block granted in `ioports` (must equal the FADT's).
    gpe0_port: u16,
    gpe0_len: u16,
    /// The ISA IRQ bound to the `sci` notification (must equal the FADT's SCI_INT).
    #[serde(default = "default_sci")]
    sci_irq: u16,
    /// Fallback poll period in ms.
    #[serde(default = "default_poll")]
    poll_ms: u64,
}

fn default_sci() -> u16 {
    9
}

fn default_poll() -> u64 {
    500
}

fn main() {
    let env = build_util::generate_task_consts().unwrap_or_else(|e| panic!("{e}"));
    let c = if env.name.is_empty() {
        Config {
            slots: 4,
            gpe0_port: 0x620,
            gpe0_len: 16,
            sci_irq: 9,
            poll_ms: 500,
        }
    } else {
        env.config().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut s = String::new();
    let _ = writeln!(s, "pub const SLOTS: u32 = {};", c.slots);
    let _ = writeln!(s, "pub const GPE0_PORT: u16 = {:#x};", c.gpe0_port);
    let _ = writeln!(s, "pub const GPE0_LEN: u16 = {};", c.gpe0_len);
    let _ = writeln!(s, "pub const SCI_IRQ: u16 = {};", c.sci_irq);
    let _ = writeln!(s, "pub const POLL_MS: u64 = {};", c.poll_ms);
    std::fs::write(
        format!("{}/driver_config.rs", std::env::var("OUT_DIR").unwrap()),
        s,
    )
    .unwrap();
}
