//! `cargo xtask`: the one entry point for building, running and testing
//! tdxhost images.
//!
//! - `dist [MANIFEST] [--iso]` builds an image (default `app.toml`), and
//!   with `--iso` a GRUB ISO of it that boots under BIOS and UEFI.
//! - `run [MANIFEST] [--stay]` builds and boots it in QEMU, showing the
//!   console, and exits 0 once the image reports success.
//! - `test [PATTERN] [--list]` runs every host test and the in-QEMU
//!   suites (or those whose full name contains PATTERN), ending with one
//!   `N passed, N failed` line; `--list` prints the names instead.
//! - `hil --rig RIG --image MANIFEST…` runs images on a test rig (a lab
//!   machine, or QEMU as one) and judges them by their console.
//! - `bench` runs the benchmark image under `-icount` and prints
//!   instruction counts against baselines measured in the same run.
//! - `plan` and `emu check-config` run the TDMR planner and the emulator's
//!   TDH.SYS.CONFIG validation on memory-map files.

mod bench;
mod build_id;
mod cycles;
mod decode;
mod defmt_decode;
mod deps;
mod dist;
mod elf;
mod grub;
mod hil;
mod hotplug_test;
mod junit;
mod lint;
mod manifest;
mod nmi_test;
mod qemu;
mod qmp;
mod rig;
mod tdxconf;
mod test;
mod test_select;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test tdxhost images")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an image from a manifest.
    Dist {
        #[arg(default_value = "app.toml")]
        manifest: PathBuf,
        /// Also build `image.iso`: GRUB loading the image through
        /// multiboot2, bootable under BIOS and UEFI (USB, virtual media).
        #[arg(long)]
        iso: bool,
    },
    /// Build and boot an image in QEMU.
    Run {
        #[arg(default_value = "app.toml")]
        manifest: PathBuf,
        /// Keep the machine running after the image has shown what it does
        /// (quit QEMU with Ctrl-A X).
        #[arg(long)]
        stay: bool,
        /// Boot with memory-hotplug slots and the hotplug driver (the default
        /// manifest becomes test-suite/hotplug-demo.toml), keep the machine
        /// running, and print how to hot-add a DIMM from the QEMU monitor.
        #[arg(long)]
        hotplug: bool,
        /// Extra arguments for QEMU.
        #[arg(last = true)]
        qemu_args: Vec<String>,
    },
    /// Run all host tests and in-QEMU test suites.
    Test {
        /// Only host tests.
        #[arg(long, conflicts_with = "qemu_only")]
        host_only: bool,
        /// Only the in-QEMU suites.
        #[arg(long)]
        qemu_only: bool,
        /// Print the full name of every test the command would run, one a
        /// line, instead of running them (in-QEMU cases as recorded by the
        /// image's last complete run).
        #[arg(long)]
        list: bool,
        /// Run (or list) only tests whose full name (`IMAGE::NAME`,
        /// `host:CRATE::PATH`) contains this string; images run whole,
        /// only matching cases count. Matching nothing is an error.
        pattern: Option<String>,
        /// Also write the JUnit XML report here (it always goes to
        /// target/junit.xml).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Run test images on a rig described by a rig.toml (see README,
    /// "Running tests on a rig"), judging each by its console.
    Hil {
        /// The rig file.
        #[arg(long, value_name = "RIG.toml")]
        rig: PathBuf,
        /// An image manifest to build and run; repeat for several, run in
        /// order with a reset between them.
        #[arg(long = "image", value_name = "MANIFEST", required = true)]
        images: Vec<PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Decode and judge a captured console log (text, in-band defmt
    /// frames, test lines, fault addresses) with the image's ELFs.
    Decode {
        file: PathBuf,
        /// The built image's directory (default: `target/image/NAME`, NAME
        /// as the log's kernel boot line or verdict line says).
        #[arg(long)]
        image_dir: Option<PathBuf>,
        /// A COM2 defmt stream captured beside the console.
        #[arg(long)]
        defmt: Option<PathBuf>,
    },
    /// Run the benchmarks (instruction counts under QEMU -icount).
    Bench {
        /// Only the kernel's figures, then where their instructions go:
        /// each phase of the null syscall and of the IPC round trip
        /// (test-suite/bench/breakdown.toml).
        #[arg(long)]
        breakdown: bool,
        /// Write every figure (both runs) and the goal table to FILE as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Show the figures of an earlier `--json` FILE beside this run's.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// Run only this benchmark image (repeatable; one of the default set), without the
        /// host benchmarks and the goal table: for iterating on one figure.
        #[arg(long, value_name = "MANIFEST")]
        image: Vec<String>,
    },
    /// Run clippy on every task of the given manifests (default: all
    /// images), each in its image's build environment, then on host crates.
    Clippy { manifests: Vec<PathBuf> },
    /// Plan TDMRs for a memory map.
    Plan {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// The software TDX module's host-side tools.
    Emu {
        #[command(subcommand)]
        command: EmuCmd,
    },
}

#[derive(Subcommand)]
enum EmuCmd {
    /// Run TDH.SYS.CONFIG's validation of PLAN against INPUT's CMRs.
    CheckConfig { input: PathBuf, plan: PathBuf },
}

fn run_image(manifest: PathBuf, stay: bool, qemu_args: Vec<String>) -> Result<ExitCode> {
    deps::ensure_target()?;
    deps::ensure_qemu()?;
    let image = dist::dist(&manifest)?;
    println!(
        "xtask: booting {} ({})",
        image.manifest.name,
        image.elf.display()
    );
    if !image.manifest.description.is_empty() {
        println!("xtask: {}", image.manifest.description);
    }
    if stay {
        println!("xtask: --stay: the machine keeps running; quit QEMU with Ctrl-A X");
        let status = qemu::command(
            &image.elf,
            &qemu::Options {
                settings: &image.manifest.qemu,
                debug_exit: false,
                icount: false,
                echo: true,
                interactive: true,
                extra_args: qemu_args,
                timeout: None,
                uefi: None,
            },
        )
        .status()?;
        // The console was live; the defmt log is decoded once QEMU is gone.
        if let Ok(lines) = defmt_decode::decode_file(&image.dir) {
            if !lines.is_empty() {
                println!("xtask: defmt log (COM2):");
            }
            for l in lines {
                println!("{l}");
            }
        }
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let outcome = qemu::run(
        &image.elf,
        &qemu::Options {
            settings: &image.manifest.qemu,
            debug_exit: true,
            icount: false,
            echo: true,
            interactive: false,
            extra_args: qemu_args,
            timeout: None,
            uefi: None,
        },
    )?;
    println!("xtask: {}: {}", image.manifest.name, outcome.describe());
    if outcome.status == Some(qemu::EXIT_SUCCESS) {
        Ok(ExitCode::SUCCESS)
    } else {
        bail!(
            "the image did not complete successfully: {}",
            outcome.describe()
        )
    }
}

/// `p` as the user meant it: relative to where `cargo xtask` was started
/// (the process moves to the workspace root), for an existing file or a
/// file to write; else as given (relative to the root, like manifests).
fn user_path(start: &std::path::Path, p: PathBuf, to_write: bool) -> PathBuf {
    let from_start = start.join(&p);
    if p.is_relative() && (from_start.exists() || to_write) {
        from_start
    } else {
        p
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let start = std::env::current_dir().unwrap_or_default();
    let root = dist::workspace_root();
    if let Err(e) = std::env::set_current_dir(&root) {
        eprintln!(
            "xtask: cannot enter the workspace root {}: {e}",
            root.display()
        );
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Cmd::Dist { manifest, iso } => dist::dist(&manifest).and_then(|img| {
            println!("xtask: wrote {}", img.elf.display());
            if iso {
                let iso = grub::make_iso(&img)?;
                println!("xtask: wrote {} (BIOS and UEFI)", iso.display());
            }
            Ok(ExitCode::SUCCESS)
        }),
        Cmd::Run {
            manifest,
            stay,
            hotplug,
            qemu_args,
        } => {
            if hotplug {
                hotplug_test::run_interactive(manifest, qemu_args)
            } else {
                run_image(manifest, stay, qemu_args)
            }
        }
        Cmd::Test {
            host_only,
            qemu_only,
            list,
            pattern,
            junit,
        } => {
            if list {
                test::list(!qemu_only, !host_only, pattern.as_deref())
            } else {
                let junit = junit.map(|j| user_path(&start, j, true));
                test::run(!qemu_only, !host_only, pattern.as_deref(), junit.as_deref())
            }
        }
        Cmd::Hil { rig, images, junit } => {
            let images: Vec<PathBuf> = images
                .into_iter()
                .map(|m| user_path(&start, m, false))
                .collect();
            let junit = junit.map(|j| user_path(&start, j, true));
            hil::command(&user_path(&start, rig, false), &images, junit.as_deref())
        }
        Cmd::Decode {
            file,
            image_dir,
            defmt,
        } => decode::command(&file, image_dir.as_deref(), defmt.as_deref()),
        Cmd::Bench {
            breakdown,
            json,
            baseline,
            image,
        } => bench::run(&bench::Options {
            breakdown,
            json,
            baseline,
            only: image,
        }),
        Cmd::Clippy { manifests } => lint::clippy(&manifests),
        Cmd::Plan { input, output, svg } => {
            tdx_tools::plan_command(&input, output.as_deref(), svg.as_deref()).map(exit_code)
        }
        Cmd::Emu {
            command: EmuCmd::CheckConfig { input, plan },
        } => tdx_tools::check_config_command(&input, &plan).map(exit_code),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
