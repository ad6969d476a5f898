extern crate std;

use std::format;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use crate::frame::{self, FrameError, FRAME_MARK, FRAME_MAX, PAYLOAD_MAX};
use crate::{crc32, find_case, find_verdict, BuildId, Tally, VerdictError, VerdictLine};

#[test]
fn crc_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn tally_sums_the_lines_it_returns() {
    let mut t = Tally::new();
    let a = t.pass(&"alpha");
    let b = t.fail(&"beta", &"x\x1b[2Jé");
    assert_eq!(a.as_str(), "test alpha ... ok");
    // Control and non-ASCII bytes are shown as the kernel shows them.
    assert_eq!(b.as_str(), "test beta ... FAILED: x?[2J??");
    let v = t.verdict("img");
    let expected =
        crc32(format!("{a}\n").as_bytes()).wrapping_add(crc32(format!("{b}\n").as_bytes()));
    assert_eq!((v.passed, v.failed, v.crc), (1, 1, expected));
}

#[test]
fn absorbed_tallies_sum_in_any_order() {
    let (mut one, mut two, mut all) = (Tally::new(), Tally::new(), Tally::new());
    let _ = one.pass(&"a");
    let _ = two.fail(&"b", &"why");
    let _ = all.fail(&"b", &"why");
    let _ = all.pass(&"a");
    let (p, f, c) = two.parts();
    one.absorb(p, f, c);
    assert_eq!(one.verdict("i"), all.verdict("i"));
}

#[test]
fn long_case_lines_are_cut_and_summed_as_cut() {
    let mut t = Tally::new();
    let long = "y".repeat(500);
    let line = t.fail(&"n", &long);
    assert_eq!(line.as_str().len(), crate::CASE_LINE_MAX);
    let v = t.verdict("i");
    assert_eq!(v.crc, crc32(format!("{line}\n").as_bytes()));
}

#[test]
fn verdict_line_round_trips() {
    let v = VerdictLine {
        image: "kernel-tests",
        build: BuildId(0x0123_4567_89ab_cdef),
        passed: 12,
        failed: 1,
        crc: 0xdead_beef,
    };
    let line = format!("[runner] {v}");
    assert_eq!(
        line,
        "[runner] verdict: image=kernel-tests build=0123456789abcdef passed=12 failed=1 crc=deadbeef"
    );
    assert_eq!(VerdictLine::parse(find_verdict(&line).unwrap()), Ok(v));
}

#[test]
fn malformed_verdicts_are_refused() {
    for (text, err) in [
        (
            "image=a build=0123456789abcdef passed=1 failed=0",
            VerdictError::Shape,
        ),
        (
            "image=a build=0123456789ABCDEF passed=1 failed=0 crc=00000000",
            VerdictError::Value("build"),
        ),
        (
            "image=a build=0123456789abcdef passed=x failed=0 crc=00000000",
            VerdictError::Value("passed"),
        ),
        (
            "image=a build=0123456789abcdef passed=1 failed=0 crc=0000",
            VerdictError::Value("crc"),
        ),
        (
            "image=a build=0123456789abcdef passed=1 failed=0 crc=00000000 x=1",
            VerdictError::Shape,
        ),
        (
            "build=0123456789abcdef image=a passed=1 failed=0 crc=00000000",
            VerdictError::Shape,
        ),
    ] {
        assert_eq!(VerdictLine::parse(text), Err(err), "{text}");
    }
}

#[test]
fn case_lines_are_found_after_a_prefix() {
    let c = find_case("[runner] test a_b ... ok").unwrap();
    assert_eq!((c.text, c.name, c.ok), ("test a_b ... ok", "a_b", true));
    let c = find_case("[suite] test x ... FAILED: boom").unwrap();
    assert_eq!((c.name, c.ok, c.reason), ("x", false, "boom"));
    assert!(find_case("[runner] kernel suite: 3 passed").is_none());
    assert!(find_case("test x ... maybe").is_none());
}

fn round_trip(payload: &[u8]) {
    let mut buf = [0u8; FRAME_MAX];
    let n = frame::encode(payload, &mut buf).unwrap();
    assert_eq!((buf[0], buf[n - 1]), (FRAME_MARK, FRAME_MARK));
    assert!(!buf[1..n - 1].contains(&FRAME_MARK));
    let mut out = [0u8; FRAME_MAX];
    let len = frame::decode(&buf[1..n - 1], &mut out).unwrap();
    assert_eq!(&out[..len], payload);
}

#[test]
fn frames_round_trip() {
    round_trip(b"");
    round_trip(&[0, 0, 0]);
    round_trip(&[1; 253]);
    round_trip(&[1; 254]);
    round_trip(&[1; 255]);
    let mixed: Vec<u8> = (0..PAYLOAD_MAX).map(|i| (i * 7) as u8).collect();
    round_trip(&mixed);
}

#[test]
fn damaged_frames_are_detected() {
    let payload: Vec<u8> = (0u8..40).collect();
    let mut buf = [0u8; FRAME_MAX];
    let n = frame::encode(&payload, &mut buf).unwrap();
    let body = &buf[1..n - 1];
    let mut out = [0u8; FRAME_MAX];
    // Every single-byte change (to a non-zero value) is caught.
    for i in 0..body.len() {
        let mut bad = body.to_vec();
        bad[i] = bad[i].wrapping_add(1).max(1);
        if bad[i] == body[i] {
            continue;
        }
        assert!(frame::decode(&bad, &mut out).is_err(), "byte {i}");
    }
    // A dropped byte is caught.
    let mut short = body.to_vec();
    short.remove(10);
    assert!(frame::decode(&short, &mut out).is_err());
    assert_eq!(frame::decode(&[1, 1], &mut out), Err(FrameError::TooShort));
    assert_eq!(frame::decode(&[9, 1], &mut out), Err(FrameError::Cobs));
    assert!(frame::encode(&vec![1; PAYLOAD_MAX + 1], &mut buf).is_err());
    assert!(FrameError::Crc {
        carried: 1,
        computed: 2
    }
    .to_string()
    .contains("CRC mismatch"));
}
