//! Running an image in QEMU and reading what it says.
//!
//! The console (COM1) streams to our stdout as it arrives and is also
//! captured for the caller. The run ends when QEMU exits — by
//! isa-debug-exit from the image, which encodes a value `v` as exit status
//! `(v << 1) | 1` — or when the timeout passes, in which case QEMU is
//! killed and the run reported as hung.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::manifest::QemuSettings;

/// Value an image writes to isa-debug-exit when it succeeded.
pub const EXIT_SUCCESS_VALUE: u8 = 0x10;
/// QEMU's exit status for [`EXIT_SUCCESS_VALUE`].
pub const EXIT_SUCCESS: i32 = ((EXIT_SUCCESS_VALUE as i32) << 1) | 1;
/// QEMU's exit status when the kernel failed (it writes 3).
pub const EXIT_KERNEL_FAILURE: i32 = (3 << 1) | 1;

pub struct Options<'a> {
    pub settings: &'a QemuSettings,
    /// Attach isa-debug-exit (off for interactive runs that should stay up).
    pub debug_exit: bool,
    /// Count instructions deterministically (`-icount shift=0`).
    pub icount: bool,
    /// Echo the console to stdout while running.
    pub echo: bool,
    /// Multiplex the QEMU monitor onto the console (Ctrl-A C, Ctrl-A X).
    pub interactive: bool,
    pub extra_args: Vec<String>,
    /// Override the manifest's timeout.
    pub timeout: Option<Duration>,
}

pub struct Outcome {
    /// QEMU's exit status, or `None` if it was killed after the timeout.
    pub status: Option<i32>,
    pub console: Vec<String>,
}

impl Outcome {
    #[must_use]
    pub fn describe(&self) -> String {
        match self.status {
            None => "hung (killed after the timeout)".into(),
            Some(EXIT_SUCCESS) => "success".into(),
            Some(EXIT_KERNEL_FAILURE) => "kernel failure".into(),
            Some(s) if s % 2 == 1 && s > 1 => {
                format!("image reported failure (exit value {:#x})", s >> 1)
            }
            Some(s) => format!("QEMU exited with status {s}"),
        }
    }
}

pub fn command(image: &Path, o: &Options<'_>) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ])
    .args(["-m", &o.settings.memory, "-smp", &o.settings.smp])
    .args(["-serial", if o.interactive { "mon:stdio" } else { "stdio" }])
    .arg("-kernel")
    .arg(image)
    .args(&o.settings.args)
    .args(&o.extra_args);
    if o.debug_exit {
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    }
    if o.icount {
        cmd.args(["-icount", "shift=0"]);
    }
    cmd
}

/// Runs `image` to completion (or timeout).
pub fn run(image: &Path, o: &Options<'_>) -> Result<Outcome> {
    let mut child = command(image, o)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("no QEMU stdout")?;
    let (tx, rx) = mpsc::channel();
    let echo = o.echo;
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if echo {
                println!("{text}");
            }
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    let timeout = o.timeout.unwrap_or(Duration::from_secs(o.settings.timeout));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    Ok(Outcome {
        status,
        console: rx.try_iter().collect(),
    })
}
