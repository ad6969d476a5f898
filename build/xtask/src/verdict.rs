//! Judging a test image from its console alone (console protocol v1).
//!
//! [`Judge`] is pure: it is fed the raw console bytes in any chunking and
//! told how the console ended; it never reads clocks, files or processes,
//! so `cargo xtask test`, `cargo xtask hil` and `cargo xtask decode` judge
//! the same bytes the same way. The line formats, the CRC and the in-band
//! frame layout come from the `verdict` crate that the images use too.
//!
//! A run passes only if its console holds exactly one well-formed verdict
//! line whose image name, build id (when one is expected), counts and CRC
//! match the case lines before it, no case line follows it, no line is
//! garbled and no in-band frame is damaged. Anything else is a `problem`
//! that fails the run as a whole, with the reason. How the console ended
//! (QEMU's exit status, a timeout, a lost connection) only explains a
//! missing verdict: the console decides.
//!
//! Refinements of the protocol note: LABEL is the image's manifest name
//! (what the image knows about itself; `kernel-grub` boots the
//! `kernel-tests` image); the CRC covers each case line from `test ` on, so
//! the kernel's `[task] ` tag is not part of it, and it is a sum of
//! per-line CRCs so several tasks may print cases (see the `verdict`
//! crate); [`Judge::with_decoder`]
//! plugs in the defmt decoder and the fault symbolizer ([`Annotate`]).

use std::path::Path;

use anyhow::{Context, Result};
pub use verdict::BuildId;
use verdict::{frame, VerdictLine};

/// The file beside a built image that holds its build id.
pub const BUILD_ID_FILE: &str = "build-id";

/// The build id `cargo xtask dist` wrote beside the image in `image_dir`.
pub fn build_id_of(image_dir: &Path) -> Result<BuildId> {
    let path = image_dir.join(BUILD_ID_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    BuildId::parse(text.trim())
        .with_context(|| format!("{} does not hold 16 lowercase hex digits", path.display()))
}

/// Decodes what the console carries besides text.
pub trait Annotate {
    /// Decodes one in-band frame's payload (a kernel log record) into
    /// lines; an error is a damaged or undecodable record.
    fn frame(&mut self, payload: &[u8]) -> Result<Vec<String>, String>;
    /// Lines that explain a console line, e.g. a fault address as
    /// function and file:line.
    fn explain(&mut self, _line: &str) -> Vec<String> {
        Vec::new()
    }
}

/// One case as the console reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub ok: bool,
    /// Why it failed; empty when it passed.
    pub reason: String,
}

/// What one chunk of console bytes held, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Case(Case),
    /// A console line that is neither a case nor the verdict.
    Text(String),
    /// A decoded defmt line from an in-band frame.
    Defmt(String),
    /// An explanation of the line before (a symbolized address).
    Note(String),
    /// The verdict line; `ok` says whether it checked out.
    Verdict {
        passed: u64,
        failed: u64,
        build: BuildId,
        ok: bool,
    },
    /// Something that fails the run as a whole.
    Problem(String),
}

/// How the console ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The machine (QEMU) exited with this status.
    Exited(i32),
    /// The run outlived its deadline, or the console went silent.
    TimedOut,
    /// The console could not be read any more.
    ConsoleLost(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Exited(s) => write!(f, "the machine exited (status {s})"),
            End::TimedOut => f.write_str("the run timed out"),
            End::ConsoleLost(why) => write!(f, "the console was lost ({why})"),
        }
    }
}

/// The judgement of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub cases: Vec<Case>,
    pub passed: u64,
    pub failed: u64,
    /// Why the run failed as a whole (every reason, `; `-joined).
    pub problem: Option<String>,
}

impl Verdict {
    /// The run and every case passed.
    #[must_use]
    pub fn success(&self) -> bool {
        self.problem.is_none() && self.failed == 0
    }
}

/// Longest console line kept; longer lines are cut and flagged.
const LINE_MAX: usize = 4096;

/// Reads one image's console. See the module doc.
pub struct Judge {
    /// The image the verdict must name; `None` for [`Judge::reader`].
    label: Option<String>,
    expected_build: Option<BuildId>,
    decoder: Option<Box<dyn Annotate + Send>>,
    /// The current text line's bytes.
    line: Vec<u8>,
    /// `Some` while inside an in-band frame: its body so far.
    frame: Option<Vec<u8>>,
    cases: Vec<Case>,
    crc: u32,
    verdict_seen: bool,
    problems: Vec<String>,
}

impl Judge {
    #[must_use]
    pub fn new(label: &str, expected_build: Option<BuildId>) -> Judge {
        Judge {
            label: Some(label.into()),
            expected_build,
            decoder: None,
            line: vec![],
            frame: None,
            cases: vec![],
            crc: 0,
            verdict_seen: false,
            problems: vec![],
        }
    }

    /// A judge that accepts a verdict for any image: for showing a console
    /// live (the caller judges the whole capture afterwards).
    #[must_use]
    pub fn reader() -> Judge {
        Judge {
            label: None,
            ..Judge::new("", None)
        }
    }

    /// Decodes in-band frames and explains lines with `decoder`. Without
    /// one, a frame that checks out is shown as its size.
    #[must_use]
    pub fn with_decoder(mut self, decoder: Box<dyn Annotate + Send>) -> Judge {
        self.decoder = Some(decoder);
        self
    }

    fn problem(&mut self, why: String, out: &mut Vec<Event>) {
        self.problems.push(why.clone());
        out.push(Event::Problem(why));
    }

    /// Raw console bytes, in any chunking.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = vec![];
        for &b in bytes {
            match (&mut self.frame, b) {
                (Some(_), frame::FRAME_MARK) => {
                    let body = self.frame.take().unwrap_or_default();
                    if body.is_empty() {
                        // Two marks in a row: the second starts a frame
                        // (after a lost end mark, this resynchronizes).
                        self.frame = Some(vec![]);
                    } else {
                        self.end_frame(&body, &mut out);
                    }
                }
                (Some(body), _) => {
                    body.push(b);
                    if body.len() > frame::BODY_MAX {
                        self.frame = None;
                        self.problem("an in-band frame has no end mark".into(), &mut out);
                    }
                }
                (None, frame::FRAME_MARK) => self.frame = Some(vec![]),
                (None, b'\n') => {
                    let line = std::mem::take(&mut self.line);
                    self.end_line(&line, &mut out);
                }
                (None, _) => {
                    if self.line.len() < LINE_MAX {
                        self.line.push(b);
                    } else if self.line.len() == LINE_MAX {
                        self.line.push(b);
                        self.problem(
                            format!("a console line is longer than {LINE_MAX} bytes"),
                            &mut out,
                        );
                    }
                }
            }
        }
        out
    }

    fn end_frame(&mut self, body: &[u8], out: &mut Vec<Event>) {
        let mut payload = vec![0u8; frame::BODY_MAX];
        let len = match frame::decode(body, &mut payload) {
            Ok(len) => len,
            Err(e) => {
                return self.problem(format!("a damaged in-band frame: {e}"), out);
            }
        };
        let payload = &payload[..len];
        match self.decoder.as_mut() {
            Some(d) => match d.frame(payload) {
                Ok(lines) => out.extend(lines.into_iter().map(Event::Defmt)),
                Err(e) => self.problem(format!("an in-band frame does not decode: {e}"), out),
            },
            None => out.push(Event::Defmt(format!(
                "<in-band frame, {len} bytes, no decoder>"
            ))),
        }
    }

    fn end_line(&mut self, raw: &[u8], out: &mut Vec<Event>) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            let shown = String::from_utf8_lossy(raw).into_owned();
            self.problem(
                format!("a garbled console line (not UTF-8): {shown:?}"),
                out,
            );
            return;
        };
        if let Some(c) = verdict::find_case(line) {
            if self.verdict_seen {
                self.problem(format!("a case line after the verdict: {line:?}"), out);
                return;
            }
            self.crc = self.crc.wrapping_add(verdict::line_sum(c.text.as_bytes()));
            let case = Case {
                name: c.name.into(),
                ok: c.ok,
                reason: c.reason.into(),
            };
            self.cases.push(case.clone());
            out.push(Event::Case(case));
        } else if let Some(fields) = verdict::find_verdict(line) {
            self.verdict_line(line, fields, out);
        } else {
            out.push(Event::Text(line.into()));
            if let Some(d) = self.decoder.as_mut() {
                out.extend(d.explain(line).into_iter().map(Event::Note));
            }
        }
    }

    fn verdict_line(&mut self, line: &str, fields: &str, out: &mut Vec<Event>) {
        if self.verdict_seen {
            return self.problem(format!("a second verdict line: {line:?}"), out);
        }
        self.verdict_seen = true;
        let v = match VerdictLine::parse(fields) {
            Ok(v) => v,
            Err(e) => {
                return self.problem(format!("a malformed verdict line ({e}): {line:?}"), out)
            }
        };
        let passed = self.cases.iter().filter(|c| c.ok).count() as u64;
        let failed = self.cases.len() as u64 - passed;
        let mut wrong = vec![];
        if let Some(label) = self.label.as_ref().filter(|l| v.image != l.as_str()) {
            wrong.push(format!("it is for image `{}`, not `{label}`", v.image));
        }
        if let Some(b) = self.expected_build.filter(|b| *b != v.build) {
            wrong.push(format!(
                "its build id {} is not the deployed build {b}",
                v.build
            ));
        }
        if (v.passed, v.failed) != (passed, failed) {
            wrong.push(format!(
                "it counts {} passed, {} failed, the console shows {passed} passed, {failed} failed",
                v.passed, v.failed
            ));
        }
        if v.crc != self.crc {
            wrong.push(format!(
                "its checksum {:08x} does not match the case lines' {:08x} (lost or garbled lines)",
                v.crc, self.crc
            ));
        }
        let ok = wrong.is_empty();
        out.push(Event::Verdict {
            passed: v.passed,
            failed: v.failed,
            build: v.build,
            ok,
        });
        for w in wrong {
            self.problem(format!("the verdict line does not check out: {w}"), out);
        }
    }

    /// The reader stops at the verdict line: whatever the same read brought after it (the
    /// start of a frame the image sends on its way out) is not part of the run, so an unfinished
    /// frame there is no problem. Before the verdict nothing is dropped.
    pub fn stop_after_verdict(&mut self) {
        if self.verdict_seen {
            self.frame = None;
            self.line.clear();
        }
    }

    /// Ends the run: the console ended as `end`.
    #[must_use]
    pub fn finish(mut self, end: End) -> Verdict {
        let mut ignored = vec![];
        if self.frame.as_ref().is_some_and(|f| !f.is_empty()) {
            self.problem(
                "the console ended inside an in-band frame".into(),
                &mut ignored,
            );
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, &mut ignored);
        }
        if !self.verdict_seen {
            let n = self.cases.len();
            self.problem(
                format!(
                    "no verdict line: {end} after {n} cases (truncated console or unfinished run)"
                ),
                &mut ignored,
            );
        }
        let passed = self.cases.iter().filter(|c| c.ok).count() as u64;
        Verdict {
            passed,
            failed: self.cases.len() as u64 - passed,
            cases: self.cases,
            problem: (!self.problems.is_empty()).then(|| self.problems.join("; ")),
        }
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
