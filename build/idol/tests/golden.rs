//! Generated code for `idl/test.idol`, and for the Hubris-shaped interfaces
//! in `tests/golden/hubris/` (a sensor hub, a power sequencer, GPIO pins and
//! an SPI controller, written in Hubris's own `.idol` dialect), matches the
//! checked-in golden files. After an intended change, regenerate them (and
//! the Hubris-shaped interfaces' lock files) with `IDOL_BLESS=1 cargo test
//! -p idol --test golden` and review the diff. `tests/compile.rs` compiles
//! all of them.

use std::path::{Path, PathBuf};

use build_util::TaskEnv;
use idol::{load_numbered, Options};

fn test_idl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../idl/test.idol")
}

/// The manifest environment the server golden is generated with.
pub fn sample_env() -> TaskEnv {
    TaskEnv {
        name: "idol-test-server".into(),
        index: 2,
        tasks: vec![
            "jefe".into(),
            "runner".into(),
            "idol-test-server".into(),
            "suite".into(),
        ],
        config: serde_json::json!({ "access": { "restricted_ping": ["runner", "suite"] } }),
        ..TaskEnv::default()
    }
}

/// The Hubris-shaped interfaces, by file stem.
pub const HUBRIS_SHAPED: &[&str] = &["sensor", "sequencer", "gpio", "spi"];

fn blessing() -> bool {
    std::env::var_os("IDOL_BLESS").is_some()
}

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if blessing() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with IDOL_BLESS=1", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or(expected.lines().count().min(actual.lines().count()), |i| i);
        panic!(
            "{} differs from the generated code at line {}; run with IDOL_BLESS=1 and review",
            path.display(),
            line + 1
        );
    }
}

fn options() -> Options {
    // Frozen: the checked-in lock must already cover test.idol.
    Options {
        frozen_lock: true,
        ..Options::default()
    }
}

#[test]
fn client_stub_matches_golden() {
    let n = load_numbered(test_idl(), &options()).expect("test.idol loads");
    check("test_client.rs", &idol::client::generate(&n));
}

#[test]
fn server_support_matches_golden() {
    let n = load_numbered(test_idl(), &options()).expect("test.idol loads");
    let acl = idol::server::acl_from_task_env(&sample_env(), &n.iface).expect("acl");
    let code = idol::server::generate(&n, &acl);
    // runner (1) and suite (3): mask 0b1010.
    assert!(
        code.contains("Acl::Only(0b1010)"),
        "ACL missing from generated code"
    );
    check("test_server.rs", &code);
}

#[test]
fn hubris_shaped_interfaces_match_golden() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hubris");
    // Their lock files live beside them; blessing writes them.
    let options = Options {
        frozen_lock: !blessing(),
        write_lock: blessing(),
        ..Options::default()
    };
    for stem in HUBRIS_SHAPED {
        let n = load_numbered(dir.join(format!("{stem}.idol")), &options)
            .unwrap_or_else(|e| panic!("{stem}.idol: {e}"));
        let acl = idol::server::acl_from_task_env(&TaskEnv::default(), &n.iface).expect("acl");
        check(
            &format!("hubris/{stem}_client.rs"),
            &idol::client::generate(&n),
        );
        check(
            &format!("hubris/{stem}_server.rs"),
            &idol::server::generate(&n, &acl),
        );
    }
}
