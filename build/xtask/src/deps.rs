//! Installing what the commands need, saying so.
//!
//! `cargo xtask run` and `test` must work on a fresh machine: the Rust
//! target comes from rustup, QEMU from apt. Each install is announced
//! before it runs, and a failure says what to install by hand.

use std::process::Command;

use anyhow::{bail, Context, Result};

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Ensures the `x86_64-unknown-none` target is installed.
pub fn ensure_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let installed = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "x86_64-unknown-none"),
        // Without rustup, trust the toolchain; the build will say if not.
        Err(_) => return Ok(()),
    };
    if !installed {
        eprintln!("xtask: installing the Rust target x86_64-unknown-none (rustup target add)");
        let ok = Command::new("rustup")
            .args(["target", "add", "x86_64-unknown-none"])
            .status()?
            .success();
        if !ok {
            bail!("could not install the Rust target; run `rustup target add x86_64-unknown-none`");
        }
    }
    Ok(())
}

/// Ensures `qemu-system-x86_64` is available, installing Debian's
/// `qemu-system-x86` if it is not.
pub fn ensure_qemu() -> Result<()> {
    if have("qemu-system-x86_64") {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("qemu-system-x86_64 is not installed and apt-get is unavailable; install QEMU (x86_64 system emulator) by hand");
    }
    eprintln!("xtask: qemu-system-x86_64 not found; installing Debian package qemu-system-x86 with apt-get");
    let sudo = if running_as_root() { "" } else { "sudo " };
    let status = Command::new("sh")
        .args([
            "-c",
            &format!("{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq qemu-system-x86"),
        ])
        .status()
        .context("running apt-get")?;
    if !status.success() || !have("qemu-system-x86_64") {
        bail!("installing qemu-system-x86 failed; install it by hand (apt-get install qemu-system-x86)");
    }
    Ok(())
}

/// Ensures GRUB's BIOS image builder is available (grub-mkrescue with the
/// i386-pc platform, xorriso, mtools), installing the Debian packages if
/// not.
pub fn ensure_grub() -> Result<()> {
    let ready = have("grub-mkrescue")
        && have("xorriso")
        && have("mformat")
        && std::path::Path::new("/usr/lib/grub/i386-pc").is_dir();
    if ready {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("GRUB tools are missing and apt-get is unavailable; install grub-pc-bin, xorriso and mtools");
    }
    eprintln!("xtask: installing GRUB tools (grub-common grub-pc-bin xorriso mtools) with apt-get, to test the multiboot2 boot path");
    let sudo = if running_as_root() { "" } else { "sudo " };
    let status = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq grub-common grub-pc-bin xorriso mtools"
            ),
        ])
        .status()
        .context("running apt-get")?;
    if !status.success() || !have("grub-mkrescue") {
        bail!("installing the GRUB tools failed; install grub-pc-bin, xorriso and mtools by hand");
    }
    Ok(())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
