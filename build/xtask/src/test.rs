//! `cargo xtask test` (filled in below).
use std::process::ExitCode;

use anyhow::Result;

pub fn run(_host: bool, _qemu: bool) -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
