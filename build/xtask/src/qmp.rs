//! A small QMP client (QEMU Machine Protocol over a Unix socket), enough to drive memory
//! hotplug from tests: connect and negotiate, run commands, and wait for events.
//!
//! QMP sends one JSON object per line: a greeting, then for each command either
//! `{"return": …}` or `{"error": {"class", "desc"}}`, and asynchronous `{"event": …}` objects at
//! any time. Events that arrive while waiting for a command's answer are kept, so
//! [`Qmp::wait_event`] also finds events that came earlier.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Bytes of a line not yet complete (a read timed out in the middle of it).
    partial: Vec<u8>,
    /// Events received and not yet taken by [`Qmp::wait_event`].
    events: Vec<Value>,
}

impl Qmp {
    /// Connects to the socket at `path` (retrying until `timeout` while QEMU creates it) and
    /// leaves capability negotiation mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < timeout => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("connecting to QMP at {}", path.display()))
                }
            }
        };
        let writer = stream.try_clone().context("cloning the QMP socket")?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
            partial: Vec::new(),
            events: Vec::new(),
        };
        let greeting = q
            .read_message(Instant::now() + timeout)?
            .ok_or_else(|| anyhow!("no QMP greeting within {timeout:?}"))?;
        if greeting.get("QMP").is_none() {
            bail!("unexpected QMP greeting: {greeting}");
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    /// Reads one message, or `None` once `deadline` passes.
    fn read_message(&mut self, deadline: Instant) -> Result<Option<Value>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => bail!("QMP connection closed"),
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let line = std::mem::take(&mut self.partial);
                    let text = String::from_utf8_lossy(&line);
                    if text.trim().is_empty() {
                        continue;
                    }
                    return serde_json::from_str(text.trim())
                        .map(Some)
                        .with_context(|| format!("bad QMP message: {text}"));
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => return Err(e).context("reading QMP"),
            }
        }
    }

    /// Runs `command` with `arguments`; returns its `return` value, or the QMP error as an
    /// error. Events that arrive meanwhile are kept for [`Qmp::wait_event`].
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        let mut text = serde_json::to_vec(&msg)?;
        text.push(b'\n');
        self.writer.write_all(&text).context("writing to QMP")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Some(m) = self.read_message(deadline)? else {
                bail!("QMP `{command}`: no answer within 10 s");
            };
            if m.get("event").is_some() {
                self.events.push(m);
            } else if let Some(r) = m.get("return") {
                return Ok(r.clone());
            } else if let Some(e) = m.get("error") {
                bail!(
                    "QMP `{command}` failed: {} ({})",
                    e["desc"].as_str().unwrap_or("?"),
                    e["class"].as_str().unwrap_or("?")
                );
            }
        }
    }

    /// Waits until an event named `name` whose `data` satisfies `pred` arrives (or already
    /// has), and takes it; `None` after `timeout`.
    pub fn wait_event(
        &mut self,
        name: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Option<Value>> {
        let matches = |e: &Value| e["event"] == name && pred(&e["data"]);
        if let Some(i) = self.events.iter().position(matches) {
            return Ok(Some(self.events.remove(i)));
        }
        let deadline = Instant::now() + timeout;
        while let Some(m) = self.read_message(deadline)? {
            if matches(&m) {
                return Ok(Some(m));
            }
            if m.get("event").is_some() {
                self.events.push(m);
            }
        }
        Ok(None)
    }

    /// The ids of the memory devices QEMU lists (`query-memory-devices`).
    pub fn memory_device_ids(&mut self) -> Result<Vec<String>> {
        let r = self.execute("query-memory-devices", json!({}))?;
        Ok(r.as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["data"]["id"].as_str().map(str::to_string))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    use serde_json::json;

    use super::Qmp;

    /// A scripted QMP server: greeting, capabilities, an event before the answer of the next
    /// command, and an error.
    #[test]
    fn negotiates_runs_commands_and_keeps_early_events() {
        let dir = std::env::temp_dir().join(format!("xtask-qmp-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            s.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            assert!(line.contains("qmp_capabilities"));
            s.write_all(b"{\"return\": {}}\r\n").unwrap();
            line.clear();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            assert!(line.contains("device_del"));
            // An event split across two writes, then the answer.
            s.write_all(b"{\"event\": \"DEVICE_DEL").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b"ETED\", \"data\": {\"device\": \"d1\"}}\n{\"return\": {}}\n")
                .unwrap();
            line.clear();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            s.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\n")
                .unwrap();
            line.clear();
            let _ = std::io::BufRead::read_line(&mut r, &mut line);
        });
        let mut q = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        q.execute("device_del", json!({"id": "d1"})).unwrap();
        let e = q
            .wait_event(
                "DEVICE_DELETED",
                |d| d["device"] == "d1",
                Duration::from_millis(10),
            )
            .unwrap();
        assert!(e.is_some(), "the event that came before the answer is kept");
        let err = q.execute("device_del", json!({"id": "d9"})).unwrap_err();
        assert!(format!("{err}").contains("nope"));
        assert!(q
            .wait_event("DEVICE_DELETED", |_| true, Duration::from_millis(50))
            .unwrap()
            .is_none());
        drop(q);
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
