//! A test rig as `rig.toml` describes it: how an image gets onto the
//! machine, how the machine is reset, where its console is, and how long
//! each step may take.
//!
//! ```toml
//! name = "lab-7"                      # default: the file's stem
//! [deliver]                           # exactly one of:
//! command = "deploy-iso {iso}"        #   a shell command given the ISO
//! already-booted = true               #   or: nothing to deliver
//! [reset]                             # exactly one of:
//! command = "ipmitool … power cycle"  #   a shell command
//! qmp = "{work}/qmp.sock"             #   or: QMP `system_reset` (+ `cont`)
//! [console]                           # exactly one of:
//! serial = "/dev/ttyUSB0"             #   a serial device (with `baud`)
//! command = "ipmitool … sol activate" #   a command whose stdout is the console
//! socket = "{work}/console.sock"      #   a Unix socket (QEMU's chardev)
//! [stop]                              # optional, after the last image
//! command = "…"
//! [timeouts]                          # seconds
//! boot = 300, silence = 60, run = 600
//! ```
//!
//! Invariants: every table refuses unknown keys and every "exactly one of"
//! is checked when the file is loaded, so a rig that loads can be driven;
//! every `{placeholder}` in a command or path is one of [`PLACEHOLDERS`]
//! (checked at load, so a typo is an error, not a literal `{isp}` passed to
//! a deploy script). Placeholders in shell commands are substituted
//! shell-quoted, and each is also in the environment as
//! `TDXHOST_<NAME>` (`{image-dir}` → `TDXHOST_IMAGE_DIR`). A `$` before
//! `{` leaves it to the shell (`${HOME}`). Every step is bounded: a
//! command that outlives its timeout is killed with its process group.
//!
//! The console side (opening it, reading it with deadlines) is in
//! `rig/console.rs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub mod console;

/// The placeholders commands and paths may use.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("iso", "the bootable ISO of the image"),
    ("image", "the image's label (e.g. hil-kernel)"),
    ("image-dir", "the directory of the built image and its ELFs"),
    ("build-id", "the build id baked into the image"),
    (
        "work",
        "a scratch directory of this rig (sockets, pid files)",
    ),
    ("rig-dir", "the directory of the rig file"),
    ("qemu-memory", "the image manifest's [qemu] memory"),
    ("qemu-smp", "the image manifest's [qemu] smp"),
    (
        "qemu-args",
        "the image manifest's [qemu] args (each shell-quoted)",
    ),
];

/// A loaded rig file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub deliver: Deliver,
    pub reset: Reset,
    pub console: ConsoleSpec,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The directory of the rig file.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Deliver {
    pub command: Option<String>,
    #[serde(default)]
    pub already_booted: bool,
    /// Seconds.
    #[serde(default = "default_deliver_timeout")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Reset {
    pub command: Option<String>,
    /// A QMP socket path: reset with `system_reset`, then `cont` a paused
    /// machine.
    pub qmp: Option<String>,
    #[serde(default = "default_reset_timeout")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConsoleSpec {
    pub serial: Option<String>,
    pub baud: Option<u32>,
    pub command: Option<String>,
    pub socket: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Stop {
    pub command: String,
    #[serde(default = "default_reset_timeout")]
    pub timeout: u64,
}

/// Deadlines of a run, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timeouts {
    /// From the reset to the console's first byte (firmware, boot loader).
    #[serde(default = "default_boot")]
    pub boot: u64,
    /// The longest quiet stretch once the console has spoken.
    #[serde(default = "default_silence")]
    pub silence: u64,
    /// From the reset to the verdict line.
    #[serde(default = "default_run")]
    pub run: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            boot: default_boot(),
            silence: default_silence(),
            run: default_run(),
        }
    }
}

fn default_deliver_timeout() -> u64 {
    300
}
fn default_reset_timeout() -> u64 {
    60
}
fn default_boot() -> u64 {
    300
}
fn default_silence() -> u64 {
    60
}
fn default_run() -> u64 {
    600
}

/// How the console is reached, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleKind {
    Serial { device: String, baud: u32 },
    Command(String),
    Socket(String),
}

/// Values for the placeholders of one image's run.
pub type Values = BTreeMap<&'static str, Value>;

/// One placeholder's value.
#[derive(Debug, Clone)]
pub enum Value {
    One(String),
    /// Several words (`{qemu-args}`): quoted one by one in a command.
    Many(Vec<String>),
}

impl Rig {
    /// Loads and checks `path`.
    pub fn load(path: &Path) -> Result<Rig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the rig file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks a rig file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Rig> {
        let mut rig: Rig = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        rig.dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if rig.name.is_empty() {
            rig.name = path
                .file_stem()
                .map_or_else(|| "rig".into(), |s| s.to_string_lossy().into_owned());
        }
        rig.check()
            .with_context(|| format!("{}: not a usable rig", path.display()))?;
        Ok(rig)
    }

    fn check(&self) -> Result<()> {
        match (&self.deliver.command, self.deliver.already_booted) {
            (Some(_), true) => {
                bail!("[deliver] has both `command` and `already-booted = true`: choose one")
            }
            (None, false) => bail!(
                "[deliver] needs `command = \"…{{iso}}…\"` (how the ISO gets onto the \
                 machine) or `already-booted = true`"
            ),
            _ => {}
        }
        match (&self.reset.command, &self.reset.qmp) {
            (Some(_), Some(_)) => bail!("[reset] has both `command` and `qmp`: choose one"),
            (None, None) => bail!("[reset] needs `command` or `qmp` (a QMP socket path)"),
            _ => {}
        }
        self.console_kind()?;
        let t = &self.timeouts;
        for (name, v) in [
            ("deliver.timeout", self.deliver.timeout),
            ("reset.timeout", self.reset.timeout),
            ("timeouts.boot", t.boot),
            ("timeouts.silence", t.silence),
            ("timeouts.run", t.run),
        ] {
            if v == 0 {
                bail!("{name} is 0 seconds: every step needs time to happen");
            }
        }
        let texts = [
            ("deliver.command", self.deliver.command.as_deref()),
            ("reset.command", self.reset.command.as_deref()),
            ("reset.qmp", self.reset.qmp.as_deref()),
            ("console.serial", self.console.serial.as_deref()),
            ("console.command", self.console.command.as_deref()),
            ("console.socket", self.console.socket.as_deref()),
            (
                "stop.command",
                self.stop.as_ref().map(|s| s.command.as_str()),
            ),
        ];
        for (key, text) in texts {
            if let Some(text) = text {
                for p in placeholders(text) {
                    if !PLACEHOLDERS.iter().any(|(n, _)| *n == p) {
                        let known: Vec<&str> = PLACEHOLDERS.iter().map(|(n, _)| *n).collect();
                        bail!(
                            "{key} uses the unknown placeholder {{{p}}}; known: {{{}}}",
                            known.join("}, {")
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The console, checked: exactly one kind, a baud rate with a serial
    /// device only.
    pub fn console_kind(&self) -> Result<ConsoleKind> {
        let c = &self.console;
        let kinds = [c.serial.is_some(), c.command.is_some(), c.socket.is_some()];
        let n = kinds.iter().filter(|k| **k).count();
        if n != 1 {
            bail!(
                "[console] needs exactly one of `serial` (a device, with `baud`), `command` \
                 (whose stdout is the console) and `socket` (a Unix socket); it has {n}"
            );
        }
        if c.baud.is_some() && c.serial.is_none() {
            bail!("[console] `baud` goes with `serial` only");
        }
        Ok(if let Some(device) = &c.serial {
            let baud = c.baud.unwrap_or(115_200);
            if !console::BAUD_RATES.contains(&baud) {
                bail!(
                    "[console] baud = {baud} is not a standard rate ({})",
                    console::BAUD_RATES
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            ConsoleKind::Serial {
                device: device.clone(),
                baud,
            }
        } else if let Some(cmd) = &c.command {
            ConsoleKind::Command(cmd.clone())
        } else {
            ConsoleKind::Socket(c.socket.clone().unwrap_or_default())
        })
    }

    /// This rig's scratch directory.
    #[must_use]
    pub fn work_dir(&self) -> PathBuf {
        crate::dist::target_dir().join("hil").join(&self.name)
    }
}

/// The `{name}` placeholders of `text` (not `${…}`, which is the shell's).
fn placeholders(text: &str) -> Vec<&str> {
    let mut out = vec![];
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find('{') {
        let at = i + off;
        i = at + 1;
        if at > 0 && bytes[at - 1] == b'$' {
            continue;
        }
        let Some(len) = text[at + 1..].find('}') else {
            break;
        };
        let name = &text[at + 1..at + 1 + len];
        if !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            out.push(name);
        }
    }
    out
}

/// `text` with its placeholders replaced; in a shell command (`shell`),
/// each value is quoted.
pub fn substitute(text: &str, values: &Values, shell: bool) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let name = from[1..].find('}').map(|len| &from[1..=len]);
        let is_placeholder =
            !out.ends_with('$') && name.is_some_and(|n| placeholders(&format!("{{{n}}}")) == [n]);
        match name.filter(|_| is_placeholder) {
            Some(n) => {
                let v = values
                    .get(n)
                    .with_context(|| format!("{{{n}}} has no value for this run"))?;
                match (v, shell) {
                    (Value::One(s), true) => out.push_str(&shell_quote(s)),
                    (Value::One(s), false) => out.push_str(s),
                    (Value::Many(v), true) => out.push_str(
                        &v.iter()
                            .map(|s| shell_quote(s))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    (Value::Many(_), false) => {
                        bail!("{{{n}}} is a list; it fits only in a command")
                    }
                }
                rest = &from[n.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./,:=+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The environment variable that carries placeholder `name`.
fn env_name(name: &str) -> String {
    format!("TDXHOST_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// A shell command of the rig with this run's values.
pub fn shell(template: &str, values: &Values) -> Result<Command> {
    let text = substitute(template, values, true)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(text);
    for (name, v) in values {
        let v = match v {
            Value::One(s) => s.clone(),
            Value::Many(v) => v.join(" "),
        };
        cmd.env(env_name(name), v);
    }
    Ok(cmd)
}

/// Why a rig command failed.
#[derive(Debug)]
pub enum CommandError {
    Spawn(std::io::Error),
    Failed { status: String, output: String },
    TimedOut { after: Duration, output: String },
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |o: &str| {
            let lines: Vec<&str> = o.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
            if tail.is_empty() {
                String::new()
            } else {
                format!("; its output ended: {tail}")
            }
        };
        match self {
            CommandError::Spawn(e) => write!(f, "could not be started: {e}"),
            CommandError::Failed { status, output } => {
                write!(f, "failed ({status}){}", tail(output))
            }
            CommandError::TimedOut { after, output } => write!(
                f,
                "did not finish within {} s and was killed{}",
                after.as_secs(),
                tail(output)
            ),
        }
    }
}

impl std::error::Error for CommandError {}

/// Runs `cmd` in its own process group, its output going to a file (a
/// command that leaves a daemon behind must not hold our pipes), and kills
/// the group if it outlives `timeout`. Returns the output on success.
pub fn run_bounded(
    mut cmd: Command,
    timeout: Duration,
    log: &Path,
) -> Result<String, CommandError> {
    let file = File::create(log).map_err(CommandError::Spawn)?;
    let err = file.try_clone().map_err(CommandError::Spawn)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(CommandError::Spawn)?;
    let start = Instant::now();
    let read_log = || {
        let mut s = String::new();
        let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut s));
        s
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(read_log()),
            Ok(Some(status)) => {
                return Err(CommandError::Failed {
                    status: status.to_string(),
                    output: read_log(),
                })
            }
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(CommandError::TimedOut {
                    after: timeout,
                    output: read_log(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(CommandError::Spawn(e)),
        }
    }
}

/// Kills the process group led by `pid` (a child spawned with
/// `process_group(0)`).
pub fn kill_group(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{
        placeholders, run_bounded, shell, substitute, CommandError, ConsoleKind, Rig, Value, Values,
    };

    fn parse(text: &str) -> anyhow::Result<Rig> {
        Rig::parse(text, Path::new("rigs/lab.toml"))
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    const GOOD: &str = r#"
        [deliver]
        command = "cp {iso} /srv/tftp/"
        [reset]
        command = "ipmitool power cycle"
        [console]
        serial = "/dev/ttyUSB0"
        baud = 921600
        [timeouts]
        run = 900
    "#;

    #[test]
    fn loads_a_rig_with_defaults() {
        let rig = parse(GOOD).unwrap();
        assert_eq!(rig.name, "lab");
        assert_eq!(rig.dir, Path::new("rigs"));
        assert_eq!(
            rig.console_kind().unwrap(),
            ConsoleKind::Serial {
                device: "/dev/ttyUSB0".into(),
                baud: 921_600
            }
        );
        assert_eq!(
            (rig.timeouts.boot, rig.timeouts.silence, rig.timeouts.run),
            (300, 60, 900)
        );
        assert_eq!(rig.deliver.timeout, 300);
    }

    #[test]
    fn refuses_bad_rigs_with_the_reason() {
        let e = err(&GOOD.replace("baud = 921600", "baud = 921600\nparity = \"even\""));
        assert!(
            e.contains("lab.toml") && e.contains("unknown field `parity`"),
            "{e}"
        );
        let e = err(&GOOD.replace("[timeouts]", "[timeout]"));
        assert!(e.contains("unknown field `timeout`"), "{e}");
        let e = err(&GOOD.replace(
            "command = \"cp {iso} /srv/tftp/\"",
            "already-booted = false",
        ));
        assert!(e.contains("[deliver] needs"), "{e}");
        let e = err(&GOOD.replace("cp {iso}", "cp {isp}"));
        assert!(e.contains("unknown placeholder {isp}"), "{e}");
        let e = err(&GOOD.replace("baud = 921600", "baud = 12345"));
        assert!(e.contains("not a standard rate"), "{e}");
        let e = err(&GOOD.replace("baud = 921600", "socket = \"/tmp/s\""));
        assert!(
            e.contains("exactly one of") && e.contains("it has 2"),
            "{e}"
        );
        let e = err(&GOOD.replace("run = 900", "run = 0"));
        assert!(e.contains("timeouts.run is 0"), "{e}");
        let e = err(&GOOD.replace("[reset]\n        command = \"ipmitool power cycle\"", ""));
        assert!(e.contains("missing field `reset`"), "{e}");
        let e = err("deliver = 3");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn substitutes_placeholders_quoted_for_the_shell() {
        let mut v = Values::new();
        v.insert("iso", Value::One("/t/a b's.iso".into()));
        v.insert(
            "qemu-args",
            Value::Many(vec!["-numa".into(), "node,nodeid=0".into(), "x y".into()]),
        );
        assert_eq!(placeholders("${HOME} {iso} { x } {}"), ["iso"]);
        assert_eq!(
            substitute(
                "cp {iso} ${HOME}/x; qemu {qemu-args} && { true; }",
                &v,
                true
            )
            .unwrap(),
            "cp '/t/a b'\\''s.iso' ${HOME}/x; qemu -numa node,nodeid=0 'x y' && { true; }"
        );
        assert_eq!(
            substitute("{iso}.sock", &v, false).unwrap(),
            "/t/a b's.iso.sock"
        );
        assert!(substitute("{qemu-args}", &v, false).is_err());
        assert!(substitute("{work}", &v, true).is_err());
        let out = run_bounded(
            shell("printf '%s|%s' {iso} \"$TDXHOST_ISO\"", &v).unwrap(),
            Duration::from_secs(10),
            &std::env::temp_dir().join(format!("xtask-rig-sub-{}", std::process::id())),
        )
        .unwrap();
        assert_eq!(out, "/t/a b's.iso|/t/a b's.iso");
    }

    #[test]
    fn a_failing_or_hanging_command_is_an_error_with_the_reason() {
        let log = std::env::temp_dir().join(format!("xtask-rig-cmd-{}", std::process::id()));
        let v = Values::new();
        let e = run_bounded(
            shell("echo no power; exit 3", &v).unwrap(),
            Duration::from_secs(10),
            &log,
        )
        .unwrap_err();
        assert!(matches!(e, CommandError::Failed { .. }));
        let text = e.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("no power"),
            "{text}"
        );
        let start = std::time::Instant::now();
        let e = run_bounded(
            shell("sleep 30 & sleep 30", &v).unwrap(),
            Duration::from_millis(300),
            &log,
        )
        .unwrap_err();
        assert!(matches!(e, CommandError::TimedOut { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let _ = std::fs::remove_file(&log);
    }
}
