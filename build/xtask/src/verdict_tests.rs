use verdict::{frame, Tally};

use super::{build_id_of, Annotate, BuildId, End, Event, Judge, Verdict};

const BUILD: BuildId = BuildId(0x1234_5678_9abc_def0);

/// A console as an image writes it: cases through a [`Tally`], the
/// kernel's `[runner] ` tag, the verdict at the end.
fn console(cases: &[(&str, Result<(), &str>)]) -> String {
    let mut t = Tally::new();
    let mut out = String::from("kernel: booting\n");
    for (name, r) in cases {
        let line = match r {
            Ok(()) => t.pass(name),
            Err(why) => t.fail(name, why),
        };
        out += &format!("[runner] {line}\n[suite] some chatter\n");
    }
    let mut v = t.verdict("kernel-tests");
    v.build = BUILD;
    out += &format!("[runner] {v}\n");
    out
}

fn judge_bytes(bytes: &[u8], chunk: usize, end: End) -> Verdict {
    let mut j = Judge::new("kernel-tests", Some(BUILD));
    for c in bytes.chunks(chunk) {
        j.feed(c);
    }
    j.finish(end)
}

fn problem(v: &Verdict) -> &str {
    v.problem.as_deref().unwrap_or("")
}

#[test]
fn a_complete_console_passes_in_any_chunking() {
    let text = console(&[("a", Ok(())), ("b", Ok(()))]);
    for chunk in [1, 3, 7, 4096] {
        let v = judge_bytes(text.as_bytes(), chunk, End::Exited(33));
        assert_eq!(v.problem, None, "chunk {chunk}");
        assert_eq!((v.passed, v.failed, v.cases.len()), (2, 0, 2));
        assert!(v.success());
    }
}

#[test]
fn failed_cases_are_counted_not_problems() {
    let text = console(&[("a", Ok(())), ("b", Err("boom"))]);
    let v = judge_bytes(text.as_bytes(), 64, End::Exited(35));
    assert_eq!(v.problem, None);
    assert_eq!((v.passed, v.failed), (1, 1));
    assert_eq!(v.cases[1].reason, "boom");
    assert!(!v.success());
}

#[test]
fn a_truncated_console_fails() {
    let text = console(&[("a", Ok(())), ("b", Ok(()))]);
    let cut = text.rfind("[runner] verdict").unwrap();
    let v = judge_bytes(&text.as_bytes()[..cut], 16, End::Exited(33));
    assert!(problem(&v).contains("no verdict line"), "{v:?}");
    assert!(problem(&v).contains("exited (status 33)"));
    assert!(!v.success());
    // Cut in the middle of the verdict line itself.
    let v = judge_bytes(&text.as_bytes()[..cut + 30], 16, End::Exited(33));
    assert!(problem(&v).contains("malformed verdict"), "{v:?}");
}

#[test]
fn a_lost_case_line_fails_the_checksum_and_counts() {
    let text = console(&[("a", Ok(())), ("b", Ok(())), ("c", Ok(()))]);
    let lost: String = text
        .lines()
        .filter(|l| !l.contains("test b "))
        .map(|l| format!("{l}\n"))
        .collect();
    let v = judge_bytes(lost.as_bytes(), 5, End::Exited(33));
    assert!(problem(&v).contains("checksum"), "{v:?}");
    assert!(problem(&v).contains("counts 3 passed"), "{v:?}");
}

#[test]
fn a_garbled_checksum_fails() {
    let text = console(&[("a", Ok(()))]);
    let at = text.find("crc=").unwrap() + 4;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let v = judge_bytes(&bytes, 9, End::Exited(33));
    assert!(problem(&v).contains("checksum"), "{v:?}");
}

#[test]
fn a_garbled_case_line_fails() {
    let text = console(&[("alpha", Ok(()))]);
    // One flipped letter in a name still parses as a case: only the CRC
    // can tell.
    let garbled = text.replace("test alpha", "test alpxa");
    let v = judge_bytes(garbled.as_bytes(), 9, End::Exited(33));
    assert!(problem(&v).contains("checksum"), "{v:?}");
    // A byte that is not UTF-8.
    let mut bytes = text.into_bytes();
    let at = bytes.iter().position(|&b| b == b'c').unwrap();
    bytes[at] = 0xFF;
    let v = judge_bytes(&bytes, 9, End::Exited(33));
    assert!(problem(&v).contains("garbled"), "{v:?}");
}

#[test]
fn a_count_mismatch_fails() {
    let text = console(&[("a", Ok(()))]).replace("passed=1", "passed=2");
    let v = judge_bytes(text.as_bytes(), 9, End::Exited(33));
    assert!(problem(&v).contains("counts 2 passed"), "{v:?}");
}

#[test]
fn a_wrong_build_or_image_fails() {
    let text = console(&[("a", Ok(()))]);
    let mut j = Judge::new("kernel-tests", Some(BuildId(7)));
    j.feed(text.as_bytes());
    let v = j.finish(End::Exited(33));
    assert!(
        problem(&v).contains("not the deployed build 0000000000000007"),
        "{v:?}"
    );
    let mut j = Judge::new("tdx-numa", None);
    j.feed(text.as_bytes());
    let v = j.finish(End::Exited(33));
    assert!(problem(&v).contains("not `tdx-numa`"), "{v:?}");
    // Without an expected build, any id is accepted.
    let mut j = Judge::new("kernel-tests", None);
    j.feed(text.as_bytes());
    assert_eq!(j.finish(End::Exited(33)).problem, None);
}

#[test]
fn a_case_after_the_verdict_fails() {
    let mut text = console(&[("a", Ok(()))]);
    text += "[runner] test late ... ok\n";
    let v = judge_bytes(text.as_bytes(), 9, End::Exited(33));
    assert!(problem(&v).contains("after the verdict"), "{v:?}");
    let mut text = console(&[("a", Ok(()))]);
    let again = text.lines().last().unwrap().to_string();
    text += &format!("{again}\n");
    let v = judge_bytes(text.as_bytes(), 9, End::Exited(33));
    assert!(problem(&v).contains("second verdict"), "{v:?}");
}

#[test]
fn a_silent_or_endless_console_fails() {
    let text = console(&[("a", Ok(()))]);
    let cut = text.find("[runner] verdict").unwrap();
    let v = judge_bytes(&text.as_bytes()[..cut], 9, End::TimedOut);
    assert!(problem(&v).contains("timed out"), "{v:?}");
    let v = judge_bytes(b"", 9, End::ConsoleLost("EOF on /dev/ttyUSB0".into()));
    assert!(
        problem(&v).contains("console was lost (EOF on /dev/ttyUSB0)"),
        "{v:?}"
    );
    assert!(problem(&v).contains("after 0 cases"));
}

#[test]
fn the_exit_status_is_advisory() {
    // A good console with a failing exit status still passes: the console
    // decides.
    let text = console(&[("a", Ok(()))]);
    assert_eq!(
        judge_bytes(text.as_bytes(), 9, End::Exited(1)).problem,
        None
    );
}

/// Turns a frame payload into one line, or refuses `bad`.
struct Echo;

impl Annotate for Echo {
    fn frame(&mut self, payload: &[u8]) -> Result<Vec<String>, String> {
        if payload == b"bad" {
            return Err("no such record".into());
        }
        Ok(vec![format!("frame {}", String::from_utf8_lossy(payload))])
    }

    fn explain(&mut self, line: &str) -> Vec<String> {
        if line.contains("pc=") {
            vec!["at f (f.rs:1)".into()]
        } else {
            vec![]
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; frame::FRAME_MAX];
    let n = frame::encode(payload, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn in_band_frames_are_split_from_text_even_mid_line() {
    let text = console(&[("a", Ok(()))]);
    let at = text.find("test a").unwrap() + 3;
    let mut bytes = text.as_bytes()[..at].to_vec();
    bytes.extend(framed(b"one\0two"));
    bytes.extend(&text.as_bytes()[at..]);
    bytes.extend(b"[runner] fault pc=0x1234\n");
    bytes.extend(framed(b"three"));
    let mut j = Judge::new("kernel-tests", None).with_decoder(Box::new(Echo));
    let mut events = vec![];
    for c in bytes.chunks(2) {
        events.extend(j.feed(c));
    }
    assert!(events.contains(&Event::Defmt("frame one\0two".into())));
    assert!(events.contains(&Event::Defmt("frame three".into())));
    assert!(events.contains(&Event::Note("at f (f.rs:1)".into())));
    let v = j.finish(End::Exited(33));
    assert_eq!(v.problem, None);
    assert_eq!(v.passed, 1);
}

#[test]
fn a_corrupted_frame_fails_the_run() {
    let text = console(&[("a", Ok(()))]);
    let mut f = framed(b"a defmt record");
    f[5] ^= 0x40;
    let mut bytes = f;
    bytes.extend(text.as_bytes());
    let mut j = Judge::new("kernel-tests", None).with_decoder(Box::new(Echo));
    let events = j.feed(&bytes);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Problem(p) if p.contains("damaged"))));
    let v = j.finish(End::Exited(33));
    assert!(problem(&v).contains("damaged in-band frame"), "{v:?}");
    assert!(!v.success());
    // A frame that checks out but does not decode fails too.
    let mut bytes = framed(b"bad");
    bytes.extend(text.as_bytes());
    let mut j = Judge::new("kernel-tests", None).with_decoder(Box::new(Echo));
    j.feed(&bytes);
    assert!(problem(&j.finish(End::Exited(33))).contains("does not decode"));
    // A frame whose end never comes.
    let mut bytes = text.into_bytes();
    bytes.extend(&framed(b"cut")[..4]);
    let v = judge_bytes(&bytes, 3, End::TimedOut);
    assert!(problem(&v).contains("inside an in-band frame"), "{v:?}");
}

#[test]
fn build_ids_are_read_from_beside_the_image() {
    let dir = std::env::temp_dir().join(format!("xtask-buildid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("build-id"), "00000000000000ff\n").unwrap();
    assert_eq!(build_id_of(&dir).unwrap(), BuildId(0xff));
    std::fs::write(dir.join("build-id"), "xyz\n").unwrap();
    assert!(build_id_of(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(build_id_of(&dir).is_err());
}

#[test]
fn a_reader_stopping_at_the_verdict_drops_only_what_came_after_it() {
    // The read that brought the verdict line also brought the start of a frame the image sends
    // on its way out; the reader stops there, and the run stands.
    let mut bytes = console(&[("a", Ok(()))]).into_bytes();
    bytes.extend(&framed(b"leaving")[..4]);
    let mut j = Judge::new("kernel-tests", Some(BUILD));
    j.feed(&bytes);
    j.stop_after_verdict();
    let v = j.finish(End::Exited(0));
    assert_eq!(v.problem, None, "{v:?}");
    assert!(v.success());
    // Without a verdict, stopping drops nothing: the cut frame is still reported.
    let mut j = Judge::new("kernel-tests", Some(BUILD));
    j.feed(b"test a ... ok\n");
    j.feed(&framed(b"cut")[..4]);
    j.stop_after_verdict();
    let v = j.finish(End::TimedOut);
    assert!(problem(&v).contains("inside an in-band frame"), "{v:?}");
}
