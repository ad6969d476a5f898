//! Booting an image the way a server does: GRUB, multiboot2, from an ISO
//! that boots under BIOS and under UEFI.
//!
//! QEMU's `-kernel` boots our ELF through its PVH note; real machines boot
//! it from GRUB through the multiboot2 header. `grub-mkrescue` builds one
//! hybrid ISO for every GRUB platform installed: with `grub-pc-bin` and
//! `grub-efi-amd64-bin` (which `deps::ensure_grub` provides) it carries an
//! El Torito BIOS boot image and an EFI system partition with
//! `/EFI/BOOT/BOOTX64.EFI`, so the same file boots on SeaBIOS and on OVMF
//! or a server's UEFI. `cargo xtask test` boots the kernel suite from it
//! under both (`kernel-grub`, `kernel-uefi`), and `cargo xtask dist --iso`
//! builds it for a machine.
//!
//! GRUB's configuration drives the serial port (COM1, 115200 8N1) and no
//! screen: the kernel's console is the UART, whatever the firmware is. The
//! multiboot2 header asks for no EFI boot services, so on UEFI GRUB calls
//! `ExitBootServices` before it enters the kernel (see `arch/boot.rs`).

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

/// Builds `<image dir>/image.iso`, a GRUB ISO bootable under BIOS and UEFI
/// that loads the image with `multiboot2`.
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
    check_hybrid(&iso)?;
    Ok(iso)
}

/// Checks that the ISO boots both ways: its El Torito catalog must list a
/// BIOS (platform 0x00) and a UEFI (platform 0xEF) boot image, which
/// grub-mkrescue adds only for the GRUB platforms it found.
fn check_hybrid(iso: &std::path::Path) -> Result<()> {
    let out = Command::new("xorriso")
        .args(["-indev"])
        .arg(iso)
        .args(["-report_el_torito", "plain"])
        .output()
        .context("running xorriso to read the ISO's boot catalog")?;
    let report = String::from_utf8_lossy(&out.stdout);
    let (bios, uefi) = boot_platforms(&report);
    match (bios, uefi) {
        (true, true) => Ok(()),
        _ => bail!(
            "{} is not a BIOS+UEFI hybrid (BIOS boot image: {bios}, UEFI boot image: {uefi}); \
             grub-mkrescue needs /usr/lib/grub/i386-pc and /usr/lib/grub/x86_64-efi",
            iso.display()
        ),
    }
}

/// Which boot platforms an `xorriso -report_el_torito plain` report lists:
/// (BIOS, UEFI). Its image lines read `El Torito boot img :   1  BIOS  y …`
/// and `El Torito boot img :   2  UEFI  y …`.
fn boot_platforms(report: &str) -> (bool, bool) {
    let images = report
        .lines()
        .filter_map(|l| l.strip_prefix("El Torito boot img :"))
        .filter_map(|l| l.split_whitespace().nth(1));
    let mut found = (false, false);
    for platform in images {
        match platform {
            "BIOS" => found.0 = true,
            "UEFI" => found.1 = true,
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::boot_platforms;

    #[test]
    fn reads_the_boot_catalog() {
        let hybrid = "El Torito catalog  : 17  1\n\
            El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA\n\
            El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4          62\n\
            El Torito boot img :   2  UEFI  y   none  0x0000  0x00   5760          34\n\
            El Torito img blks :   1  1\n";
        assert_eq!(boot_platforms(hybrid), (true, true));
        let bios_only =
            "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4          62\n";
        assert_eq!(boot_platforms(bios_only), (true, false));
        assert_eq!(boot_platforms(""), (false, false));
    }
}
