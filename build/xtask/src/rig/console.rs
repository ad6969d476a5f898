//! A rig's console: a serial device (raw mode at the rig's baud rate), a
//! Unix socket, or a command's stdout, read with deadlines.
//!
//! Every read waits in `poll` for at most the time left to the caller's
//! deadline, so a console that goes quiet can never block the harness; a
//! read returns data, the end of the console (EOF, a hung-up line, a dead
//! console command), or "nothing before the deadline". A console command
//! runs in its own process group with its stdin held open (SOL clients
//! end on EOF there) and is killed with its group when the console is
//! dropped; its stderr goes to a file whose tail explains a lost console.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, ControlModes, OptionalActions, QueueSelector};

use super::{kill_group, ConsoleKind, Values};

/// Baud rates a rig may ask for.
pub const BAUD_RATES: &[u32] = &[
    9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 500_000, 576_000, 921_600, 1_000_000,
    1_500_000, 2_000_000, 3_000_000, 4_000_000,
];

/// What one read got.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// This many bytes, at the start of the buffer.
    Data(usize),
    /// Nothing arrived before the deadline.
    Quiet,
    /// The console is gone, with the reason.
    Lost(String),
}

enum Source {
    Serial(File),
    Socket(UnixStream),
    Command {
        child: Child,
        stdout: ChildStdout,
        /// Held open so the command does not see EOF on its input.
        _stdin: ChildStdin,
        log: PathBuf,
    },
}

/// An open console.
pub struct Console {
    source: Source,
    /// What it is, for messages.
    what: String,
}

impl Console {
    /// Opens the console, retrying a socket until `deadline` (the machine
    /// may still be creating it). `log` takes a console command's stderr.
    pub fn open(
        kind: &ConsoleKind,
        values: &Values,
        deadline: Instant,
        log: &Path,
    ) -> Result<Console> {
        match kind {
            ConsoleKind::Serial { device, baud } => {
                let device = super::substitute(device, values, false)?;
                let file = open_serial(Path::new(&device), *baud)
                    .with_context(|| format!("opening the serial console {device}"))?;
                Ok(Console {
                    source: Source::Serial(file),
                    what: format!("serial {device} at {baud} baud"),
                })
            }
            ConsoleKind::Socket(path) => {
                let path = super::substitute(path, values, false)?;
                let stream = loop {
                    match UnixStream::connect(&path) {
                        Ok(s) => break s,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("connecting to the console socket {path}")
                            })
                        }
                    }
                };
                stream.set_nonblocking(true)?;
                Ok(Console {
                    source: Source::Socket(stream),
                    what: format!("socket {path}"),
                })
            }
            ConsoleKind::Command(template) => {
                let mut cmd = super::shell(template, values)?;
                let err =
                    File::create(log).with_context(|| format!("creating {}", log.display()))?;
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(err)
                    .process_group(0)
                    .spawn()
                    .context("starting the console command")?;
                let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
                    kill_group(child.id());
                    let _ = child.wait();
                    bail!("the console command has no stdout");
                };
                Ok(Console {
                    source: Source::Command {
                        child,
                        stdout,
                        _stdin: stdin,
                        log: log.to_path_buf(),
                    },
                    what: "the console command".into(),
                })
            }
        }
    }

    /// What the console is.
    #[must_use]
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Reads what the console has, waiting until `deadline` at most.
    pub fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Got {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        let ready = {
            let fd = match &self.source {
                Source::Serial(f) => f.as_fd(),
                Source::Socket(s) => s.as_fd(),
                Source::Command { stdout, .. } => stdout.as_fd(),
            };
            let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return Got::Quiet,
                Ok(_) => fds[0].revents(),
                Err(rustix::io::Errno::INTR) => return Got::Quiet,
                Err(e) => return Got::Lost(format!("waiting for the {}: {e}", self.what)),
            }
        };
        let n = match &mut self.source {
            Source::Serial(f) => f.read(buf),
            Source::Socket(s) => s.read(buf),
            Source::Command { stdout, .. } => stdout.read(buf),
        };
        match n {
            Ok(0) => Got::Lost(self.why_ended("ended (EOF)")),
            Ok(n) => Got::Data(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                if ready.contains(PollFlags::HUP) || ready.contains(PollFlags::ERR) {
                    Got::Lost(self.why_ended("hung up"))
                } else {
                    Got::Quiet
                }
            }
            Err(e) => Got::Lost(self.why_ended(&format!("failed: {e}"))),
        }
    }

    /// Why the console ended, with a console command's status and stderr.
    fn why_ended(&mut self, how: &str) -> String {
        let mut why = format!("the {} {how}", self.what);
        if let Source::Command { child, log, .. } = &mut self.source {
            // Give an exiting command a moment to be reaped.
            for _ in 0..10 {
                if let Ok(Some(status)) = child.try_wait() {
                    why.push_str(&format!("; it exited ({status})"));
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let err = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = err.lines().collect();
            if !lines.is_empty() {
                let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
                why.push_str(&format!("; its stderr ended: {tail}"));
            }
        }
        why
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Source::Command { child, .. } = &mut self.source {
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}

/// Opens a serial device in raw mode at `baud`, 8N1, ignoring modem
/// lines, with stale input discarded (the previous run's tail is not this
/// run's console).
fn open_serial(path: &Path, baud: u32) -> Result<File> {
    // Non-blocking: the open must not wait for carrier, and reads follow a
    // poll anyway.
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut t = termios::tcgetattr(&fd).context("not a terminal device")?;
    t.make_raw();
    t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
    t.control_modes -= ControlModes::CSTOPB | ControlModes::PARENB;
    t.set_speed(baud)
        .with_context(|| format!("setting {baud} baud"))?;
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    termios::tcflush(&fd, QueueSelector::IFlush)?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::{Duration, Instant};

    use rustix::fs::OFlags;
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use rustix::termios;

    use super::{Console, Got};
    use crate::rig::{ConsoleKind, Values};

    fn log(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("xtask-console-{tag}-{}", std::process::id()))
    }

    /// Reads until `want` bytes came or the console says something else.
    fn read_all(c: &mut Console, secs: u64) -> (Vec<u8>, Got) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = vec![];
        let mut buf = [0u8; 64];
        loop {
            match c.read(&mut buf, deadline) {
                Got::Data(n) => out.extend_from_slice(&buf[..n]),
                other => return (out, other),
            }
        }
    }

    #[test]
    fn a_serial_device_is_set_raw_and_read_until_the_line_drops() {
        // A pseudo-terminal stands in for the USB serial adapter.
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let device = name.to_str().unwrap().to_string();
        let kind = ConsoleKind::Serial {
            device,
            baud: 115_200,
        };
        let mut c = Console::open(&kind, &Values::new(), Instant::now(), &log("serial")).unwrap();
        let t = termios::tcgetattr(&master).unwrap();
        assert!(
            !t.local_modes.contains(termios::LocalModes::ICANON),
            "raw mode"
        );
        assert_eq!(t.input_speed(), 115_200);
        let mut m = std::fs::File::from(master);
        // Raw: no CR/LF translation, control bytes pass through.
        m.write_all(b"test a ... ok\r\n\x03\x1a").unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut got = vec![];
        let mut buf = [0u8; 64];
        while let Got::Data(n) = c.read(&mut buf, deadline) {
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"test a ... ok\r\n\x03\x1a");
        drop(m);
        let (_, end) = read_all(&mut c, 5);
        assert!(matches!(end, Got::Lost(_)), "{end:?}");
        let _ = OFlags::empty();
    }

    #[test]
    fn a_console_command_is_read_with_deadlines_and_its_end_explained() {
        let kind = ConsoleKind::Command(
            "printf 'one\\ntwo\\n'; sleep 1; echo 'SOL: link lost' >&2; exit 7".into(),
        );
        let mut c = Console::open(&kind, &Values::new(), Instant::now(), &log("cmd")).unwrap();
        let start = Instant::now();
        let (got, end) = read_all(&mut c, 0);
        assert!(matches!(end, Got::Quiet) || matches!(end, Got::Data(_)) || got.is_empty());
        let (more, end) = read_all(&mut c, 10);
        let all = [got, more].concat();
        assert_eq!(all, b"one\ntwo\n");
        let Got::Lost(why) = end else {
            panic!("{end:?}")
        };
        assert!(
            why.contains("exit status: 7") && why.contains("SOL: link lost"),
            "{why}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_quiet_console_returns_at_the_deadline() {
        let kind = ConsoleKind::Command("sleep 30".into());
        let mut c = Console::open(&kind, &Values::new(), Instant::now(), &log("quiet")).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 8];
        assert_eq!(
            c.read(&mut buf, Instant::now() + Duration::from_millis(200)),
            Got::Quiet
        );
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(3));
        // Dropping kills the command (the test would hang on its group otherwise).
    }

    #[test]
    fn a_missing_socket_is_an_error_after_its_deadline() {
        let kind = ConsoleKind::Socket("/nonexistent/console.sock".into());
        let e = Console::open(
            &kind,
            &Values::new(),
            Instant::now() + Duration::from_millis(100),
            &log("sock"),
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("/nonexistent/console.sock"));
    }
}
