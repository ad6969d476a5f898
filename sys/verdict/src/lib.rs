//! Console protocol v1: what a test image writes so that a reader of the
//! console alone can judge the run.
//!
//! An image writes one line per case, `test NAME ... ok` or
//! `test NAME ... FAILED: REASON`, and ends with exactly one
//!
//! ```text
//! verdict: image=NAME build=BUILDID passed=P failed=F crc=XXXXXXXX
//! ```
//!
//! where `crc` is the wrapping 32-bit sum, over every case line, of the
//! CRC-32 (IEEE) of that line's text — from `test ` to the end of the
//! line, without CR/LF — followed by one `\n`. A sum rather than one CRC
//! over all lines because several tasks of an image may print cases (the
//! adversary's attackers): each keeps its own [`Tally`] and the one that
//! prints the verdict adds the others in ([`Tally::absorb`]), whatever
//! order the console interleaved their lines in. A lost, cut or changed
//! line still changes the sum. A console may put a prefix before either
//! line (the kernel tags a task's lines `[task] `); the prefix is not part
//! of the checked text.
//!
//! Invariants that make the checksum trustworthy:
//! - [`Tally`] formats each case line into a fixed buffer, with the same
//!   byte mapping the kernel applies to a task's log line (control and
//!   non-ASCII bytes become `?`), and checksums exactly those bytes; the
//!   task prints those bytes, so what the console shows is what was summed.
//! - The build id lives in one slot per linked copy of this crate
//!   ([`BUILD_ID_MAGIC`] then 8 bytes); `cargo xtask dist` finds every slot
//!   in the built image and writes the id there, after hashing the image
//!   with the slots zeroed. It is read with a volatile load, so the
//!   compiler never folds the placeholder.
//!
//! In-band frames (binary records sharing the console with text) are
//! `FRAME_MARK, COBS(payload ‖ CRC-32(payload) LE), FRAME_MARK`: COBS output
//! has no zero byte and console text never holds one, so a reader tells
//! the two apart byte by byte, and the CRC catches a damaged frame.
//!
//! The host side (`cargo xtask`) parses with the same functions, so the
//! format is defined once.

#![no_std]

use core::fmt;

/// Where a case line's checked text starts.
pub const CASE_PREFIX: &str = "test ";
/// Where the verdict line's checked text starts.
pub const VERDICT_PREFIX: &str = "verdict: ";
/// Longest case line a [`Tally`] produces (longer ones are cut).
pub const CASE_LINE_MAX: usize = 160;

/// CRC-32 (IEEE 802.3, reflected, the one zlib and crc32fast compute).
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

impl Crc32 {
    #[must_use]
    pub const fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC_TABLE[usize::from((self.0 as u8) ^ b)] ^ (self.0 >> 8);
        }
    }

    #[must_use]
    pub const fn value(&self) -> u32 {
        !self.0
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32 of `bytes`.
#[must_use]
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.value()
}

/// An image's build id: 16 lowercase hex digits on the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BuildId(pub u64);

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl BuildId {
    /// Parses exactly 16 lowercase hex digits.
    #[must_use]
    pub fn parse(s: &str) -> Option<BuildId> {
        let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(BuildId)
    }
}

/// Marks a build id slot in a built image.
pub const BUILD_ID_MAGIC: [u8; 16] = *b"tdxhost:buildid:";

#[repr(C)]
struct BuildIdSlot {
    magic: [u8; 16],
    id: [u8; 8],
}

#[used]
static BUILD_ID_SLOT: BuildIdSlot = BuildIdSlot {
    magic: BUILD_ID_MAGIC,
    id: [0; 8],
};

/// The build id `cargo xtask dist` wrote into this image (0 if none).
#[must_use]
pub fn build_id() -> BuildId {
    // Safety: a plain read of a static that lives as long as the program;
    // volatile because xtask rewrites the bytes after linking.
    let id = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(BUILD_ID_SLOT.id)) };
    BuildId(u64::from_le_bytes(id))
}

/// The byte the kernel's console shows for byte `b` of a task's line.
#[must_use]
pub const fn shown(b: u8) -> u8 {
    if b == b'\t' || (b >= 0x20 && b < 0x7f) {
        b
    } else {
        b'?'
    }
}

/// One case line, formatted, mapped as the console shows it, and cut to
/// [`CASE_LINE_MAX`].
pub struct CaseText {
    buf: [u8; CASE_LINE_MAX],
    len: usize,
}

impl CaseText {
    fn new() -> Self {
        CaseText {
            buf: [0; CASE_LINE_MAX],
            len: 0,
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        // Every byte went through `shown`, which yields ASCII only.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for CaseText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = shown(b);
                self.len += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Display for CaseText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts an image's cases and checksums their lines.
#[derive(Clone, Copy, Debug)]
pub struct Tally {
    passed: u64,
    failed: u64,
    crc: u32,
}

/// What one case line adds to a verdict's `crc`.
#[must_use]
pub fn line_sum(text: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(text);
    c.update(b"\n");
    c.value()
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    #[must_use]
    pub const fn new() -> Self {
        Tally {
            passed: 0,
            failed: 0,
            crc: 0,
        }
    }

    /// Counts a case and returns the line to print (exactly as given).
    pub fn case(
        &mut self,
        name: &dyn fmt::Display,
        outcome: Result<(), &dyn fmt::Display>,
    ) -> CaseText {
        let mut text = CaseText::new();
        // Writing into a CaseText cannot fail; overflow is cut.
        let _ = match outcome {
            Ok(()) => {
                self.passed += 1;
                fmt::write(&mut text, format_args!("{CASE_PREFIX}{name} ... ok"))
            }
            Err(why) => {
                self.failed += 1;
                fmt::write(
                    &mut text,
                    format_args!("{CASE_PREFIX}{name} ... FAILED: {why}"),
                )
            }
        };
        self.crc = self.crc.wrapping_add(line_sum(&text.buf[..text.len]));
        text
    }

    /// A passed case: its line.
    pub fn pass(&mut self, name: &dyn fmt::Display) -> CaseText {
        self.case(name, Ok(()))
    }

    /// A failed case: its line.
    pub fn fail(&mut self, name: &dyn fmt::Display, why: &dyn fmt::Display) -> CaseText {
        self.case(name, Err(why))
    }

    /// Adds the cases another task counted (and printed): its
    /// [`Tally::parts`].
    pub fn absorb(&mut self, passed: u64, failed: u64, crc: u32) {
        self.passed += passed;
        self.failed += failed;
        self.crc = self.crc.wrapping_add(crc);
    }

    /// (passed, failed, crc), for handing to the task that absorbs them.
    #[must_use]
    pub const fn parts(&self) -> (u64, u64, u32) {
        (self.passed, self.failed, self.crc)
    }

    #[must_use]
    pub const fn passed(&self) -> u64 {
        self.passed
    }

    #[must_use]
    pub const fn failed(&self) -> u64 {
        self.failed
    }

    /// The closing line for image `image`, with this image's build id.
    #[must_use]
    pub fn verdict<'a>(&self, image: &'a str) -> VerdictLine<'a> {
        VerdictLine {
            image,
            build: build_id(),
            passed: self.passed,
            failed: self.failed,
            crc: self.crc,
        }
    }
}

/// The verdict line's fields; `Display` writes the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictLine<'a> {
    pub image: &'a str,
    pub build: BuildId,
    pub passed: u64,
    pub failed: u64,
    pub crc: u32,
}

impl fmt::Display for VerdictLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERDICT_PREFIX}image={} build={} passed={} failed={} crc={:08x}",
            self.image, self.build, self.passed, self.failed, self.crc
        )
    }
}

/// Why a line that starts like a verdict is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictError {
    /// A field is missing, out of order, or extra.
    Shape,
    /// A field's value does not parse.
    Value(&'static str),
}

impl fmt::Display for VerdictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerdictError::Shape => f.write_str("fields missing, extra or out of order"),
            VerdictError::Value(field) => write!(f, "bad value of `{field}`"),
        }
    }
}

impl<'a> VerdictLine<'a> {
    /// Parses the text after [`VERDICT_PREFIX`].
    pub fn parse(fields: &'a str) -> Result<Self, VerdictError> {
        let mut it = fields.split(' ');
        let mut field = |key: &'static str| -> Result<&'a str, VerdictError> {
            it.next()
                .and_then(|kv| kv.strip_prefix(key))
                .and_then(|kv| kv.strip_prefix('='))
                .ok_or(VerdictError::Shape)
        };
        let image = field("image")?;
        let build = BuildId::parse(field("build")?).ok_or(VerdictError::Value("build"))?;
        let passed = field("passed")?
            .parse()
            .map_err(|_| VerdictError::Value("passed"))?;
        let failed = field("failed")?
            .parse()
            .map_err(|_| VerdictError::Value("failed"))?;
        let crc = field("crc")?;
        let crc = if crc.len() == 8 {
            u32::from_str_radix(crc, 16).map_err(|_| VerdictError::Value("crc"))?
        } else {
            return Err(VerdictError::Value("crc"));
        };
        if it.next().is_some() || image.is_empty() {
            return Err(VerdictError::Shape);
        }
        Ok(VerdictLine {
            image,
            build,
            passed,
            failed,
            crc,
        })
    }
}

/// One parsed case line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseLine<'a> {
    /// The checked text: from `test ` to the end of the line.
    pub text: &'a str,
    pub name: &'a str,
    pub ok: bool,
    /// Empty when the case passed.
    pub reason: &'a str,
}

/// Finds a case line in a console line (after any prefix).
#[must_use]
pub fn find_case(line: &str) -> Option<CaseLine<'_>> {
    let at = line.find(CASE_PREFIX)?;
    let text = &line[at..];
    let (name, outcome) = text[CASE_PREFIX.len()..].split_once(" ... ")?;
    if outcome == "ok" {
        Some(CaseLine {
            text,
            name,
            ok: true,
            reason: "",
        })
    } else {
        let reason = outcome.strip_prefix("FAILED")?;
        let reason = reason.strip_prefix(": ").unwrap_or(reason);
        Some(CaseLine {
            text,
            name,
            ok: false,
            reason,
        })
    }
}

/// Finds the verdict fields in a console line: the text after
/// [`VERDICT_PREFIX`], if the line has one.
#[must_use]
pub fn find_verdict(line: &str) -> Option<&str> {
    let at = line.find(VERDICT_PREFIX)?;
    Some(&line[at + VERDICT_PREFIX.len()..])
}

pub mod frame;

#[cfg(test)]
mod tests;
