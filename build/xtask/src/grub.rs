//! Booting an image the way a server does: GRUB (BIOS), multiboot2.
//!
//! QEMU's `-kernel` boots our ELF through its PVH note; real machines boot
//! it from GRUB through the multiboot2 header. To keep the second path
//! honest, `cargo xtask test` also wraps the kernel test image in a GRUB
//! rescue ISO (`grub-mkrescue`, serial console) and runs the suite from it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{deps, dist};

const GRUB_CFG: &str = r#"serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
menuentry "tdxhost" {
    multiboot2 /boot/kernel.elf
    boot
}
"#;

/// Builds `<image dir>/image.iso`, a BIOS-bootable GRUB ISO that loads the
/// image with `multiboot2`.
pub fn make_iso(image: &dist::Image) -> Result<PathBuf> {
    deps::ensure_grub()?;
    let tree = image.dir.join("iso");
    let boot = tree.join("boot");
    std::fs::create_dir_all(boot.join("grub"))?;
    std::fs::copy(&image.elf, boot.join("kernel.elf"))?;
    std::fs::write(boot.join("grub").join("grub.cfg"), GRUB_CFG)?;
    let iso = image.dir.join("image.iso");
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&tree)
        .output()
        .context("running grub-mkrescue")?;
    if !out.status.success() {
        bail!(
            "grub-mkrescue failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(iso)
}
