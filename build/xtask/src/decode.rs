//! Reading an image's console with its ELFs: in-band defmt frames decoded,
//! fault addresses symbolized, and `cargo xtask decode FILE`, which judges
//! a captured console log offline as `cargo xtask test` judges a live one.
//!
//! [`ImageAnnotator`] is the [`Annotate`] that `cargo xtask test` (and a rig
//! harness) plugs into the [`Judge`]. It recognizes two fault reports:
//! the kernel's `kernel: task NAME faulted: ... (pc=0x...)` (a task's
//! saved instruction pointer, looked up in `NAME.elf`) and a kernel-mode
//! exception `... in kernel mode at rip=0x...` (looked up in `kernel.elf`).
//! Each becomes `at FUNCTION (FILE:LINE)` notes, innermost (inlined) frame
//! first, from the ELF's DWARF; an ELF without debug info falls back to
//! its symbol table. A missing or unreadable ELF gives a note saying so,
//! never an error: symbolizing explains a failure, it does not judge one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use gimli::{EndianArcSlice, RunTimeEndian};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::defmt_decode::Decoder;
use crate::verdict::{build_id_of, Annotate, End, Event, Judge, Verdict};

type Reader = EndianArcSlice<RunTimeEndian>;

/// One ELF's debug info and symbols.
struct Elf {
    dwarf: Option<addr2line::Context<Reader>>,
    /// (address, size, name), sorted by address.
    symbols: Vec<(u64, u64, String)>,
}

fn load_elf(path: &Path) -> Result<Elf> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let bytes = file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(EndianArcSlice::new(Arc::from(bytes), endian))
    };
    let dwarf = gimli::Dwarf::load(load)
        .ok()
        .and_then(|d| addr2line::Context::from_dwarf(d).ok());
    let mut symbols: Vec<(u64, u64, String)> = file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
        .collect();
    symbols.sort();
    Ok(Elf { dwarf, symbols })
}

impl Elf {
    /// `at FUNCTION (FILE:LINE)` lines for `pc`, innermost first.
    fn describe(&self, pc: u64) -> Vec<String> {
        let mut out = vec![];
        if let Some(ctx) = &self.dwarf {
            if let Ok(mut frames) = ctx.find_frames(pc).skip_all_loads() {
                while let Ok(Some(f)) = frames.next() {
                    let func = f
                        .function
                        .as_ref()
                        .and_then(|n| n.demangle().ok().map(|d| d.into_owned()))
                        .unwrap_or_else(|| "?".into());
                    let at = f.location.map_or_else(
                        || "?".to_string(),
                        |l| format!("{}:{}", l.file.unwrap_or("?"), l.line.unwrap_or(0)),
                    );
                    out.push(format!("at {func} ({at})"));
                }
            }
        }
        if out.is_empty() {
            let sym = self
                .symbols
                .iter()
                .rev()
                .find(|(a, size, _)| *a <= pc && pc < a + (*size).max(1));
            if let Some((a, _, name)) = sym {
                let name = addr2line::demangle_auto(name.into(), None);
                out.push(format!("at {name}+{:#x} (no line information)", pc - a));
            }
        }
        out
    }
}

/// A fault report in a console line: (ELF file name, address).
fn fault_address(line: &str) -> Option<(String, u64)> {
    let hex = |s: &str| {
        let digits: String = s.chars().take_while(char::is_ascii_hexdigit).collect();
        u64::from_str_radix(&digits, 16).ok()
    };
    if let Some(rest) = line.split("kernel: task ").nth(1) {
        let (name, rest) = rest.split_once(' ')?;
        if !rest.starts_with("faulted") {
            return None;
        }
        let pc = hex(rest.rsplit_once("pc=0x")?.1)?;
        return Some((format!("{name}.elf"), pc));
    }
    if line.contains("in kernel mode at rip=0x") {
        let pc = hex(line.split_once("rip=0x")?.1)?;
        return Some(("kernel.elf".into(), pc));
    }
    None
}

/// Decodes in-band frames and symbolizes faults with the ELFs of one image.
pub struct ImageAnnotator {
    dir: PathBuf,
    defmt: Decoder,
    elves: HashMap<String, Result<Elf, String>>,
}

impl ImageAnnotator {
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        ImageAnnotator {
            dir: dir.to_path_buf(),
            defmt: Decoder::new(dir),
            elves: HashMap::new(),
        }
    }

    /// What `pc` is in `elf` (a file name in the image directory).
    pub fn symbolize(&mut self, elf: &str, pc: u64) -> Vec<String> {
        let dir = &self.dir;
        let loaded = self
            .elves
            .entry(elf.to_string())
            .or_insert_with(|| load_elf(&dir.join(elf)).map_err(|e| format!("{e:#}")));
        match loaded {
            Ok(e) => {
                let lines = e.describe(pc);
                if lines.is_empty() {
                    vec![format!("{pc:#x} is in no function of {elf}")]
                } else {
                    lines
                }
            }
            Err(e) => vec![format!("cannot symbolize {pc:#x}: {e}")],
        }
    }
}

impl Annotate for ImageAnnotator {
    fn frame(&mut self, payload: &[u8]) -> Result<Vec<String>, String> {
        Ok(self.defmt.record(payload)?.into_iter().collect())
    }

    fn explain(&mut self, line: &str) -> Vec<String> {
        match fault_address(line) {
            Some((elf, pc)) => self.symbolize(&elf, pc),
            None => vec![],
        }
    }
}

/// The kernel suite's deliberate `#UD` (the assist task's `ud2` in
/// `do_fault`, source file `SOURCE`): its fault report must be symbolized
/// to that function and the `ud2` line.
pub fn check_symbolized_fault(events: &[Event], source: &str) -> Result<(), String> {
    const FILE: &str = "test-suite/assist/src/main.rs";
    let line = source
        .lines()
        .position(|l| l.contains("asm!(\"ud2\")"))
        .map(|i| i + 1)
        .ok_or_else(|| format!("{FILE} has no `ud2`"))?;
    let want = format!("{FILE}:{line}");
    let mut after_fault = false;
    let mut notes = vec![];
    for e in events {
        match e {
            Event::Text(t) => {
                after_fault = t.contains("kernel: task assist faulted: IllegalInstruction");
            }
            Event::Note(n) if after_fault => {
                if n.contains("do_fault") && n.contains(&want) {
                    return Ok(());
                }
                notes.push(n.clone());
            }
            _ => {}
        }
    }
    Err(if notes.is_empty() {
        "no symbolized report of assist's illegal instruction".into()
    } else {
        format!(
            "assist's illegal instruction was not placed at do_fault ({want}): {}",
            notes.join(" / ")
        )
    })
}

/// Judges a whole console capture of the image in `dir` named `label`;
/// returns the events to show and the verdict.
pub fn judge_capture(bytes: &[u8], dir: &Path, label: &str, end: End) -> (Vec<Event>, Verdict) {
    let mut judge =
        Judge::new(label, build_id_of(dir).ok()).with_decoder(Box::new(ImageAnnotator::new(dir)));
    let events = judge.feed(bytes);
    (events, judge.finish(end))
}

/// How an event reads on the terminal.
#[must_use]
pub fn show(e: &Event) -> String {
    match e {
        Event::Case(c) if c.ok => format!("test {} ... ok", c.name),
        Event::Case(c) => format!("test {} ... FAILED: {}", c.name, c.reason),
        Event::Text(l) | Event::Defmt(l) => l.clone(),
        Event::Note(n) => format!("    {n}"),
        Event::Verdict {
            passed,
            failed,
            build,
            ok,
        } => format!(
            "verdict: build={build} passed={passed} failed={failed} ({})",
            if *ok {
                "checks out"
            } else {
                "DOES NOT CHECK OUT"
            }
        ),
        Event::Problem(p) => format!("xtask: problem: {p}"),
    }
}

/// The image a console names: its kernel's boot line or its verdict.
fn image_named_in(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        if let Some(rest) = line.split("tdxhost kernel, image `").nth(1) {
            return rest.split('`').next().map(String::from);
        }
        if let Some(rest) = line.split("verdict: image=").nth(1) {
            return rest.split(' ').next().map(String::from);
        }
    }
    None
}

/// `cargo xtask decode FILE [--image-dir DIR] [--defmt COM2FILE]`.
pub fn command(file: &Path, image_dir: Option<&Path>, com2: Option<&Path>) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let label = image_named_in(&bytes);
    let dir = match (image_dir, &label) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(name)) => crate::dist::target_dir().join("image").join(name),
        (None, None) => anyhow::bail!(
            "{} names no image (no kernel boot line, no verdict line): give --image-dir",
            file.display()
        ),
    };
    let label = label.unwrap_or_default();
    println!(
        "xtask: decoding {} with the ELFs in {}",
        file.display(),
        dir.display()
    );
    let (events, verdict) = judge_capture(
        &bytes,
        &dir,
        &label,
        End::ConsoleLost("the captured log ends".into()),
    );
    for e in &events {
        println!("{}", show(e));
    }
    if let Some(com2) = com2 {
        let stream = std::fs::read(com2).with_context(|| format!("reading {}", com2.display()))?;
        let mut d = Decoder::new(&dir);
        println!("xtask: the COM2 defmt stream {}:", com2.display());
        for l in d.feed(&stream) {
            println!("{}", l.text);
        }
        d.finish();
        if d.saw_anything() {
            println!("{}", d.verdict());
        }
    }
    if let Some(p) = &verdict.problem {
        println!("xtask: the run FAILED as a whole: {p}");
    }
    println!("\n{} passed, {} failed", verdict.passed, verdict.failed);
    Ok(if verdict.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::{fault_address, image_named_in, ImageAnnotator};
    use crate::defmt_decode::{record, FRAME, NAME};
    use crate::verdict::Annotate;

    #[test]
    fn in_band_payloads_must_be_one_decodable_record() {
        let dir = std::env::temp_dir().join("xtask-decode-test-no-elves");
        let mut a = ImageAnnotator::new(&dir);
        // A task name: no line, no error.
        assert_eq!(a.frame(&record(NAME, 1, 0, b"ping")), Ok(vec![]));
        // Not a record, two records, a frame no ELF decodes: errors.
        assert!(a.frame(b"garbage").is_err());
        let mut two = record(NAME, 1, 0, b"a");
        two.extend(record(NAME, 2, 0, b"b"));
        assert!(a.frame(&two).is_err());
        let e = a.frame(&record(FRAME, 1, 0, &[1, 0])).unwrap_err();
        assert!(e.contains("no defmt table for `ping`"), "{e}");
        // A fault in a task whose ELF is missing is explained as such.
        let notes = a.explain("kernel: task ping faulted: Panic (task 1 pc=0x1000)");
        assert!(notes[0].starts_with("cannot symbolize 0x1000"), "{notes:?}");
    }

    #[test]
    fn fault_reports_are_found() {
        assert_eq!(
            fault_address(
                "kernel: task assist faulted: IllegalInstruction { rip: 1 } (pc=0x1001234)"
            ),
            Some(("assist.elf".into(), 0x100_1234))
        );
        assert_eq!(
            fault_address("PANIC: exception 14 in kernel mode at rip=0xffff8000 error=0x2 cr2=0x0"),
            Some(("kernel.elf".into(), 0xffff_8000))
        );
        assert_eq!(fault_address("[runner] test a ... ok"), None);
        assert_eq!(fault_address("kernel: task x faulted: Panic"), None);
    }

    #[test]
    fn the_image_is_named_by_the_console() {
        assert_eq!(
            image_named_in(b"x\ntdxhost kernel, image `tdx-numa`\n").as_deref(),
            Some("tdx-numa")
        );
        assert_eq!(
            image_named_in(b"verdict: image=k build=0 passed=1").as_deref(),
            Some("k")
        );
        assert_eq!(image_named_in(b"nothing"), None);
    }
}
