//! Operation numbers are stable: reordering keeps them, new operations get
//! fresh ones, removed ones are retired and never reused, and an explicit
//! renumbering is refused unless allowed.

use std::path::Path;

use idol::numbering::{assign, Lock, LockEntry};
use idol::syntax::parse;
use idol::{load_numbered, lock_path, Error, Options};

fn iface(ops: &[(&str, Option<u16>)]) -> idol::Interface {
    let body: Vec<String> = ops
        .iter()
        .map(|(name, n)| match n {
            Some(n) => format!("\"{name}\": (reply: Simple(\"u8\"), number: Some({n}))"),
            None => format!("\"{name}\": (reply: Simple(\"u8\"))"),
        })
        .collect();
    let text = format!("Interface(name: \"Demo\", ops: {{ {} }})", body.join(", "));
    parse(Path::new("demo.idol"), &text).expect("parses")
}

fn number(numbers: &std::collections::BTreeMap<String, u16>, op: &str) -> u16 {
    numbers[op]
}

const P: &str = "demo.idol";

#[test]
fn reordering_keeps_numbers() {
    let (first, lock) = assign(
        Path::new(P),
        &iface(&[("a", None), ("b", None)]),
        &Lock::default(),
        false,
    )
    .expect("numbers");
    assert_eq!((number(&first, "a"), number(&first, "b")), (1, 2));
    let (second, lock2) = assign(
        Path::new(P),
        &iface(&[("b", None), ("a", None)]),
        &lock,
        false,
    )
    .expect("numbers");
    assert_eq!(first, second);
    assert_eq!(lock, lock2);
}

#[test]
fn removed_numbers_are_retired_and_never_reused() {
    let (_, lock) = assign(
        Path::new(P),
        &iface(&[("a", None), ("b", None), ("c", None)]),
        &Lock::default(),
        false,
    )
    .expect("numbers");
    let (numbers, lock) = assign(
        Path::new(P),
        &iface(&[("a", None), ("c", None), ("d", None)]),
        &lock,
        false,
    )
    .expect("numbers");
    assert_eq!(number(&numbers, "d"), 4, "b's number 2 must not be reused");
    assert!(lock.entries.contains(&LockEntry {
        name: "b".into(),
        number: 2,
        retired: true
    }));
    // The text form round-trips, retired entries included.
    let text = lock.render("Demo");
    assert_eq!(
        Lock::parse(Path::new("demo.idol.lock"), &text).expect("parses"),
        lock
    );
}

#[test]
fn explicit_renumbering_is_refused_unless_allowed() {
    let (_, lock) = assign(
        Path::new(P),
        &iface(&[("a", None), ("b", None)]),
        &Lock::default(),
        false,
    )
    .expect("numbers");
    let moved = iface(&[("a", Some(7)), ("b", None)]);
    let err = assign(Path::new(P), &moved, &lock, false).expect_err("refused");
    assert!(
        matches!(&err, Error::Renumber { op, .. } if op == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("IDOL_ALLOW_RENUMBER=1"), "{err}");
    let (numbers, lock) = assign(Path::new(P), &moved, &lock, true).expect("allowed");
    assert_eq!(number(&numbers, "a"), 7);
    // a's old number 1 is retired, not handed to the next new operation.
    let (numbers, _) = assign(
        Path::new(P),
        &iface(&[("a", Some(7)), ("b", None), ("c", None)]),
        &lock,
        false,
    )
    .expect("numbers");
    assert_eq!(number(&numbers, "c"), 3);
}

#[test]
fn explicit_number_may_not_steal_a_retired_one() {
    let (_, lock) = assign(
        Path::new(P),
        &iface(&[("a", None), ("b", None)]),
        &Lock::default(),
        false,
    )
    .expect("numbers");
    let (_, lock) = assign(Path::new(P), &iface(&[("a", None)]), &lock, false).expect("numbers");
    let err = assign(
        Path::new(P),
        &iface(&[("a", None), ("z", Some(2))]),
        &lock,
        false,
    )
    .expect_err("refused");
    assert!(err.to_string().contains("retired operation `b`"), "{err}");
}

#[test]
fn explicit_numbers_matching_the_lock_are_fine() {
    let (_, lock) = assign(
        Path::new(P),
        &iface(&[("a", Some(5))]),
        &Lock::default(),
        false,
    )
    .expect("numbers");
    let (numbers, _) = assign(
        Path::new(P),
        &iface(&[("x", None), ("a", Some(5))]),
        &lock,
        false,
    )
    .expect("numbers");
    assert_eq!((number(&numbers, "a"), number(&numbers, "x")), (5, 1));
}

#[test]
fn lock_file_is_written_and_then_respected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let idl = dir.path().join("demo.idol");
    let write_idl = |ops: &str| {
        std::fs::write(&idl, format!("Interface(name: \"Demo\", ops: {{ {ops} }})")).expect("write")
    };
    let opts = Options {
        write_lock: true,
        ..Options::default()
    };
    write_idl("\"a\": (reply: Simple(\"u8\")), \"b\": (reply: Simple(\"u8\"))");
    load_numbered(&idl, &opts).expect("first build");
    let text = std::fs::read_to_string(lock_path(&idl)).expect("lock written");
    assert!(text.contains("a = 1\nb = 2\n"), "{text}");

    write_idl("\"b\": (reply: Simple(\"u8\")), \"a\": (reply: Simple(\"u8\"), number: Some(9))");
    let err = load_numbered(&idl, &opts).expect_err("renumbering refused");
    assert!(matches!(err, Error::Renumber { .. }));
    assert_eq!(
        std::fs::read_to_string(lock_path(&idl)).expect("lock"),
        text,
        "lock untouched"
    );

    let frozen = Options {
        frozen_lock: true,
        allow_renumber: true,
        ..opts.clone()
    };
    assert!(matches!(
        load_numbered(&idl, &frozen),
        Err(Error::FrozenLock { .. })
    ));

    let allow = Options {
        allow_renumber: true,
        ..opts
    };
    let n = load_numbered(&idl, &allow).expect("explicitly allowed");
    assert_eq!(n.numbers["a"], 9);
    let text = std::fs::read_to_string(lock_path(&idl)).expect("lock");
    assert!(
        text.contains("a = 1 retired") || text.contains("= 1 retired"),
        "{text}"
    );
}

#[test]
fn malformed_lock_lines_are_named() {
    let err = Lock::parse(Path::new("x.idol.lock"), "a = 1\nb = zero\n").expect_err("bad");
    assert!(err.to_string().starts_with("x.idol.lock:2:"), "{err}");
}
