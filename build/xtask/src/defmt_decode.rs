//! The images' defmt log: demultiplexing the records the kernel writes to
//! COM2 and decoding their frames with the kernel and task ELFs.
//!
//! Each record is a 9-byte header and a payload (see `sys/kern/src/klog.rs`):
//!
//! | offset | size | field                                               |
//! |--------|------|-----------------------------------------------------|
//! | 0      | 1    | kind: [`FRAME`] (0xDF) or [`NAME`] (0xDE)           |
//! | 1      | 2    | source, LE: task index, or [`KERNEL`] (0xFFFF)      |
//! | 3      | 4    | console lines (COM1 newlines) written before it, LE |
//! | 7      | 2    | payload length, LE                                  |
//!
//! A `FRAME` payload is one whole rzcobs defmt frame; a `NAME` payload is a
//! task's name (sent once per task before any frame), which says which
//! `<name>.elf` of the image directory decodes that index. The line count
//! lets the runner print each decoded frame between the console lines it
//! was written between.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use defmt_decoder::{DecodeError, Table};

pub const FRAME: u8 = 0xDF;
pub const NAME: u8 = 0xDE;
pub const KERNEL: u16 = 0xFFFF;
pub const HEADER_LEN: usize = 9;
/// The kernel's limit on a frame (`klog::FRAME_MAX`).
pub const FRAME_MAX: usize = 256;
/// Longest task name accepted in a `NAME` record.
const NAME_MAX: usize = 64;

/// The file the runner attaches COM2 to, in the image directory.
pub const STREAM_FILE: &str = "defmt.bin";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub source: u16,
    /// Console lines completed before this record was written.
    pub line: u32,
    pub payload: Vec<u8>,
}

/// Splits the COM2 byte stream into records. Bytes that cannot start a
/// record (after corruption) are skipped one at a time until a plausible
/// header appears; an incomplete record waits for more bytes.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
    /// Bytes skipped while looking for a header.
    pub skipped: usize,
}

impl Demux {
    /// Adds `bytes` and returns every record now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Record> {
        self.buf.extend_from_slice(bytes);
        let mut out = vec![];
        let mut at = 0;
        while self.buf.len() - at >= HEADER_LEN {
            let h = &self.buf[at..at + HEADER_LEN];
            let kind = h[0];
            let len = usize::from(u16::from_le_bytes([h[7], h[8]]));
            let plausible = match kind {
                FRAME => (1..=FRAME_MAX).contains(&len),
                NAME => (1..=NAME_MAX).contains(&len),
                _ => false,
            };
            if !plausible {
                at += 1;
                self.skipped += 1;
                continue;
            }
            if self.buf.len() - at < HEADER_LEN + len {
                break;
            }
            out.push(Record {
                kind,
                source: u16::from_le_bytes([h[1], h[2]]),
                line: u32::from_le_bytes([h[3], h[4], h[5], h[6]]),
                payload: self.buf[at + HEADER_LEN..at + HEADER_LEN + len].to_vec(),
            });
            at += HEADER_LEN + len;
        }
        self.buf.drain(..at);
        out
    }

    /// Bytes of an incomplete record still waiting.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// One decoded (or undecodable) frame, with the console line count it
/// came after.
pub struct Line {
    pub after_console_lines: u32,
    pub text: String,
}

/// Demultiplexes and decodes an image's defmt stream.
pub struct Decoder {
    dir: PathBuf,
    demux: Demux,
    names: HashMap<u16, String>,
    /// Per source: its table, or `None` if its ELF has none (or is missing).
    tables: HashMap<u16, Option<Table>>,
    pub frames: usize,
    pub malformed: usize,
    /// The first problems met, for the verdict line.
    pub problems: Vec<String>,
}

impl Decoder {
    /// A decoder for the image whose ELFs are in `dir`.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Decoder {
            dir: dir.to_path_buf(),
            demux: Demux::default(),
            names: HashMap::new(),
            tables: HashMap::new(),
            frames: 0,
            malformed: 0,
            problems: vec![],
        }
    }

    fn problem(&mut self, p: String) {
        self.malformed += 1;
        if self.problems.len() < 3 {
            self.problems.push(p);
        }
    }

    fn name(&self, source: u16) -> String {
        if source == KERNEL {
            "kernel".into()
        } else {
            self.names
                .get(&source)
                .cloned()
                .unwrap_or_else(|| format!("task{source}"))
        }
    }

    fn table(&mut self, source: u16) -> Option<&Table> {
        if !self.tables.contains_key(&source) {
            let file = if source == KERNEL {
                "kernel.elf".to_string()
            } else {
                format!("{}.elf", self.name(source))
            };
            let table = std::fs::read(self.dir.join(&file))
                .ok()
                .and_then(|elf| Table::parse(&elf).ok().flatten());
            self.tables.insert(source, table);
        }
        self.tables.get(&source).and_then(Option::as_ref)
    }

    /// Decodes one record: `Ok(None)` for a task name, `Ok(Some(line))` for
    /// a frame, `Err((line shown, why))` for a frame that does not decode.
    fn decode_record(&mut self, r: &Record) -> Result<Option<String>, (String, String)> {
        if r.kind == NAME {
            let name = String::from_utf8_lossy(&r.payload).into_owned();
            self.names.insert(r.source, name);
            return Ok(None);
        }
        self.frames += 1;
        let who = self.name(r.source);
        let decoded = match self.table(r.source) {
            None => Err(format!("no defmt table for `{who}`")),
            Some(table) => {
                let mut d = table.new_stream_decoder();
                d.received(&r.payload);
                match d.decode() {
                    Ok(f) => {
                        let level = f
                            .level()
                            .map_or_else(|| "PRINT".to_string(), |l| l.as_str().to_uppercase());
                        Ok(format!("[{who}] {level} {}", f.display_message()))
                    }
                    Err(DecodeError::Malformed) => Err(format!("malformed frame from `{who}`")),
                    Err(DecodeError::UnexpectedEof) => Err(format!("truncated frame from `{who}`")),
                }
            }
        };
        decoded.map(Some).map_err(|why| {
            let line = format!("[{who}] defmt: {why} ({} bytes)", r.payload.len());
            self.problem(why.clone());
            (line, why)
        })
    }

    /// Feeds stream bytes; returns the frames they complete, decoded.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut out = vec![];
        for r in self.demux.push(bytes) {
            let text = match self.decode_record(&r) {
                Ok(None) => continue,
                Ok(Some(text)) | Err((text, _)) => text,
            };
            out.push(Line {
                after_console_lines: r.line,
                text,
            });
        }
        out
    }

    /// Decodes one record that came whole in an in-band console frame
    /// (the frame's CRC already checked): its line, if it is a frame.
    pub fn record(&mut self, bytes: &[u8]) -> Result<Option<String>, String> {
        let mut demux = Demux::default();
        let records = demux.push(bytes);
        match (&records[..], demux.skipped, demux.pending()) {
            ([r], 0, 0) => self.decode_record(r).map_err(|(_, why)| why),
            _ => {
                let why = format!(
                    "an in-band frame of {} bytes is not one log record",
                    bytes.len()
                );
                self.problem(why.clone());
                Err(why)
            }
        }
    }

    /// Call at the end of the stream: counts leftovers as problems.
    pub fn finish(&mut self) {
        if self.demux.skipped > 0 {
            let n = self.demux.skipped;
            self.problem(format!("{n} stray bytes between records"));
        }
        if self.demux.pending() > 0 {
            let n = self.demux.pending();
            self.problem(format!("{n} bytes of an unfinished record at the end"));
        }
    }

    /// Whether anything at all came through the stream.
    #[must_use]
    pub fn saw_anything(&self) -> bool {
        self.frames > 0 || !self.names.is_empty() || self.demux.skipped > 0
    }

    /// A `test defmt_frames ... ok|FAILED` verdict line, which the test
    /// runner counts as a case of the suite.
    #[must_use]
    pub fn verdict(&self) -> String {
        if self.malformed == 0 {
            format!(
                "xtask: test defmt_frames ... ok ({} frames decoded)",
                self.frames
            )
        } else {
            format!(
                "xtask: test defmt_frames ... FAILED: {} problems in {} frames: {}",
                self.malformed,
                self.frames,
                self.problems.join("; ")
            )
        }
    }
}

/// Decodes a whole stream file after the run (for `run --stay`).
pub fn decode_file(dir: &Path) -> std::io::Result<Vec<String>> {
    let bytes = std::fs::read(dir.join(STREAM_FILE))?;
    let mut d = Decoder::new(dir);
    let mut lines: Vec<String> = d.feed(&bytes).into_iter().map(|l| l.text).collect();
    d.finish();
    if d.saw_anything() {
        lines.push(d.verdict());
    }
    Ok(lines)
}

/// Encodes one COM2 record as the kernel writes it (for tests here and in
/// `qemu.rs`).
#[cfg(test)]
pub(crate) fn record(kind: u8, source: u16, line: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&source.to_le_bytes());
    v.extend_from_slice(&line.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::{record, Decoder, Demux, Record, FRAME, KERNEL, NAME};

    #[test]
    fn splits_records_across_reads() {
        let mut stream = record(NAME, 2, 0, b"ping");
        stream.extend(record(FRAME, 2, 7, &[1, 2, 3, 0]));
        stream.extend(record(FRAME, KERNEL, 9, &[4, 0]));
        let mut d = Demux::default();
        let mut got = vec![];
        // Feed in awkward pieces: records must come out whole and in order.
        for chunk in stream.chunks(5) {
            got.extend(d.push(chunk));
        }
        assert_eq!(
            got,
            vec![
                Record {
                    kind: NAME,
                    source: 2,
                    line: 0,
                    payload: b"ping".to_vec()
                },
                Record {
                    kind: FRAME,
                    source: 2,
                    line: 7,
                    payload: vec![1, 2, 3, 0]
                },
                Record {
                    kind: FRAME,
                    source: KERNEL,
                    line: 9,
                    payload: vec![4, 0]
                },
            ]
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.skipped, 0);
    }

    #[test]
    fn resynchronises_after_garbage() {
        let mut stream = vec![0x00, 0x41, 0xFF];
        stream.extend(record(FRAME, 1, 3, &[9, 0]));
        let mut d = Demux::default();
        let got = d.push(&stream);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].source, 1);
        assert_eq!(got[0].line, 3);
        assert_eq!(d.skipped, 3);
    }

    #[test]
    fn rejects_implausible_lengths_and_waits_for_the_rest() {
        let mut d = Demux::default();
        // A frame header claiming 0 or more than the kernel's limit is not
        // a header; a valid one whose payload has not arrived waits.
        let mut bad = record(FRAME, 1, 0, &[]);
        bad.truncate(9);
        assert!(d.push(&bad).is_empty());
        assert_eq!(d.skipped, 1);
        let mut d = Demux::default();
        let full = record(FRAME, 1, 0, &[5, 6, 0]);
        assert!(d.push(&full[..10]).is_empty());
        assert_eq!(d.pending(), 10);
        assert_eq!(d.push(&full[10..]).len(), 1);
    }

    #[test]
    fn frames_without_a_table_are_reported() {
        let dir = std::env::temp_dir().join("xtask-defmt-decode-test-none");
        let mut dec = Decoder::new(&dir);
        let mut stream = record(NAME, 0, 0, b"nosuch");
        stream.extend(record(FRAME, 0, 1, &[1, 0]));
        let lines = dec.feed(&stream);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].after_console_lines, 1);
        assert!(lines[0].text.starts_with("[nosuch] defmt: no defmt table"));
        dec.finish();
        assert_eq!(dec.malformed, 1);
        assert!(dec.verdict().contains("test defmt_frames ... FAILED"));
    }
}
