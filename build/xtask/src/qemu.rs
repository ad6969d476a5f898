//! Running an image in QEMU and reading what it says.
//!
//! The console (COM1) streams to our stdout as it arrives and is also
//! captured for the caller. The run ends when QEMU exits — by
//! isa-debug-exit from the image, which encodes a value `v` as exit status
//! `(v << 1) | 1` — or when the timeout passes, in which case QEMU is
//! killed and the run reported as hung.
//!
//! COM2 carries the defmt log (binary records from the kernel, see
//! [`crate::defmt_decode`]) into `defmt.bin` in the image directory. While
//! the console streams, the file is read and its frames decoded with the
//! kernel and task ELFs beside it; each decoded line is placed among the
//! console lines by the console line count its record carries, so the
//! combined output is in the order the kernel wrote it.
//!
//! The console itself is shown through a [`Judge::reader`], which splits
//! in-band defmt frames (the shared-console mode) from the text, decodes
//! them, and symbolizes fault addresses; the raw bytes are kept for the
//! caller's own judgement.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::decode::{show, ImageAnnotator};
use crate::defmt_decode::{self, Decoder};
use crate::manifest::QemuSettings;
use crate::verdict::{Event, Judge};

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
    /// Boot under UEFI: OVMF's code (read-only) and this run's own copy of
    /// its variable store (writable; the firmware records boot entries).
    /// `None`: QEMU's default BIOS (SeaBIOS).
    pub uefi: Option<Uefi>,
}

/// The firmware flash of a UEFI run.
#[derive(Clone, Debug)]
pub struct Uefi {
    pub code: PathBuf,
    pub vars: PathBuf,
    /// OVMF makes every serial port a firmware console, so COM2 carries
    /// its text too. For an image whose defmt shares COM1 (nothing of the
    /// kernel's is on COM2) COM2 is not captured, rather than read as a
    /// damaged defmt stream.
    pub com2_unused: bool,
}

impl Uefi {
    /// OVMF with a fresh copy of its variable store beside `image`, so
    /// runs share nothing and the system's template stays untouched.
    pub fn fresh(ovmf: &crate::deps::Ovmf, image: &Path, com2_unused: bool) -> Result<Uefi> {
        let vars = image
            .parent()
            .unwrap_or(Path::new("."))
            .join("ovmf-vars.fd");
        std::fs::copy(&ovmf.vars, &vars).with_context(|| {
            format!(
                "copying the OVMF variable store {} to {}",
                ovmf.vars.display(),
                vars.display()
            )
        })?;
        Ok(Uefi {
            code: ovmf.code.clone(),
            vars,
            com2_unused,
        })
    }
}

pub struct Outcome {
    /// QEMU's exit status, or `None` if it was killed after the timeout.
    pub status: Option<i32>,
    /// The console's bytes as they came (what a judge reads).
    pub raw: Vec<u8>,
    /// The console lines, with the decoded defmt lines among them and, if
    /// the image sent any defmt records, a closing
    /// `test defmt_frames ... ok|FAILED` line (a case of the suite).
    pub console: Vec<String>,
    /// Each case line as it arrived, with the time since the previous one
    /// (or since QEMU started): the case's duration for JUnit.
    pub case_times: Vec<(String, Duration)>,
}

/// When each case line arrived, measured while the console is read.
struct CaseClock {
    last: Instant,
    times: Vec<(String, Duration)>,
}

impl CaseClock {
    fn see(&mut self, e: &Event) {
        if let Event::Case(c) = e {
            let now = Instant::now();
            self.times.push((c.name.clone(), now - self.last));
            self.last = now;
        }
    }
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

/// Where COM2 (the defmt log) of `image` goes: beside it.
#[must_use]
pub fn defmt_stream(image: &Path) -> PathBuf {
    image
        .parent()
        .unwrap_or(Path::new("."))
        .join(defmt_decode::STREAM_FILE)
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
    .arg("-serial")
    .arg(if o.uefi.as_ref().is_some_and(|u| u.com2_unused) {
        "null".into()
    } else {
        format!("file:{}", defmt_stream(image).display())
    })
    // An ISO boots through GRUB (multiboot2); an ELF through -kernel (PVH).
    .arg(if image.extension().is_some_and(|e| e == "iso") {
        "-cdrom"
    } else {
        "-kernel"
    })
    .arg(image)
    .args(&o.settings.args)
    .args(&o.extra_args);
    if let Some(u) = &o.uefi {
        cmd.arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                u.code.display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                u.vars.display()
            ));
    }
    if o.debug_exit {
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    }
    if o.icount {
        // sleep=off: while the guest idles, virtual time jumps to the next timer instead of
        // following the host clock, so host scheduling noise never enters a measurement.
        cmd.args(["-icount", "shift=0,sleep=off"]);
        // QEMU's TCG reads the virtual clock in the x2APIC timer MSRs
        // outside an I/O point, which -icount refuses ("Bad icount read"),
        // so counted runs offer the CPU without x2APIC and the kernel
        // drives the xAPIC (MMIO) instead; this -cpu comes last and wins.
        cmd.args(["-cpu", "max,-x2apic"]);
    }
    cmd
}

/// Merges the console with the decoded defmt stream in the order the
/// kernel wrote them.
struct Merger {
    decoder: Decoder,
    stream_path: PathBuf,
    stream: Option<std::fs::File>,
    /// Decoded frames not yet placed.
    pending: VecDeque<defmt_decode::Line>,
    /// Console lines placed so far.
    console_lines: u32,
    echo: bool,
    out: Vec<String>,
}

impl Merger {
    fn emit(&mut self, text: String) {
        if self.echo {
            println!("{text}");
        }
        self.out.push(text);
    }

    /// Reads what the stream file has now and decodes it.
    fn poll(&mut self) {
        if self.stream.is_none() {
            self.stream = std::fs::File::open(&self.stream_path).ok();
        }
        let Some(f) = self.stream.as_mut() else {
            return;
        };
        let mut bytes = vec![];
        if f.read_to_end(&mut bytes).is_ok() && !bytes.is_empty() {
            let lines = self.decoder.feed(&bytes);
            self.pending.extend(lines);
        }
    }

    /// Places the frames written before console line `console_lines + 1`
    /// was complete (all of them with `all`).
    fn place_frames(&mut self, all: bool) {
        while let Some(l) = self.pending.front() {
            if !all && l.after_console_lines > self.console_lines {
                break;
            }
            let l = self.pending.pop_front().expect("front exists");
            self.emit(l.text);
        }
    }

    /// A console line arrived: frames written before it completed (which
    /// QEMU has already put in the file) go first.
    fn console_line(&mut self, text: String) {
        self.poll();
        self.place_frames(false);
        self.emit(text);
        self.console_lines += 1;
    }

    /// Shows one console event; lines of the console count for placing
    /// COM2 frames, decoded in-band frames and notes do not.
    fn event(&mut self, e: &Event) {
        match e {
            Event::Text(_) | Event::Case(_) | Event::Verdict { .. } => self.console_line(show(e)),
            Event::Defmt(_) | Event::Note(_) | Event::Problem(_) => self.emit(show(e)),
        }
    }

    fn idle(&mut self) {
        self.poll();
        self.place_frames(false);
    }

    fn finish(mut self) -> Vec<String> {
        self.poll();
        self.place_frames(true);
        self.decoder.finish();
        if self.decoder.saw_anything() {
            let verdict = self.decoder.verdict();
            self.emit(verdict);
        }
        self.out
    }
}

/// Runs `image` to completion (or timeout).
pub fn run(image: &Path, o: &Options<'_>) -> Result<Outcome> {
    let stream_path = defmt_stream(image);
    let _ = std::fs::remove_file(&stream_path);
    let mut child = command(image, o)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("no QEMU stdout")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut chunk = vec![];
            match stdout.read_until(b'\n', &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(chunk).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let dir = image.parent().unwrap_or(Path::new("."));
    let mut shown = Judge::reader().with_decoder(Box::new(ImageAnnotator::new(dir)));
    let mut raw = vec![];
    let mut merger = Merger {
        decoder: Decoder::new(image.parent().unwrap_or(Path::new("."))),
        stream_path,
        stream: None,
        pending: VecDeque::new(),
        console_lines: 0,
        echo: o.echo,
        out: vec![],
    };
    let timeout = o.timeout.unwrap_or(Duration::from_secs(o.settings.timeout));
    let start = Instant::now();
    let mut clock = CaseClock {
        last: start,
        times: vec![],
    };
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(chunk) => {
                raw.extend_from_slice(&chunk);
                for e in shown.feed(&chunk) {
                    clock.see(&e);
                    merger.event(&e);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => merger.idle(),
            // The console closed: QEMU is exiting.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
    };
    let _ = reader.join();
    for chunk in rx.try_iter() {
        raw.extend_from_slice(&chunk);
        for e in shown.feed(&chunk) {
            clock.see(&e);
            merger.event(&e);
        }
    }
    Ok(Outcome {
        status,
        raw,
        console: merger.finish(),
        case_times: clock.times,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::{Decoder, Merger};
    use crate::defmt_decode::{record, FRAME, NAME};

    #[test]
    fn frames_are_placed_between_the_console_lines_they_came_between() {
        let dir = std::env::temp_dir().join(format!("xtask-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("defmt.bin");
        let mut stream = record(NAME, 0, 0, b"a");
        stream.extend(record(FRAME, 0, 1, &[1, 0])); // after console line 1
        stream.extend(record(FRAME, 0, 3, &[2, 0])); // after console line 3
        std::fs::write(&path, &stream).unwrap();
        let mut m = Merger {
            decoder: Decoder::new(&dir),
            stream_path: path,
            stream: None,
            pending: VecDeque::new(),
            console_lines: 0,
            echo: false,
            out: vec![],
        };
        for l in ["one", "two", "three"] {
            m.console_line(l.into());
        }
        let out = m.finish();
        let _ = std::fs::remove_dir_all(&dir);
        let shape: Vec<&str> = out
            .iter()
            .map(|l| {
                if l.starts_with("[a]") {
                    "F"
                } else {
                    l.as_str()
                }
            })
            .collect();
        assert_eq!(shape[..5], ["one", "F", "two", "three", "F"]);
        // No ELF in the directory: the frames are reported, and the verdict
        // line fails the suite.
        assert!(out[5].contains("test defmt_frames ... FAILED"));
    }
}
