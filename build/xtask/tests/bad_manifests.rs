//! `cargo xtask dist` on manifests with out-of-range `[kernel.tdx]` numbers: a clear error that
//! names the key, exit status 1 (not a panic's 101), and nothing built. The manifests are the
//! two reported in issue 11 (`tests/fixtures/*.toml`). A manifest marked as a base is refused too.

use std::path::Path;
use std::process::Command;

fn dist(fixture: &str) -> (Option<i32>, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .arg(&path)
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[test]
fn dist_refuses_out_of_range_keyid_numbers_without_panicking() {
    for (fixture, key) in [
        ("keyid-bits-40.toml", "kernel.tdx.keyid-bits = 40"),
        (
            "mktme-keyids-u32-max.toml",
            "kernel.tdx.mktme-keyids = 4294967295",
        ),
    ] {
        let (code, stderr) = dist(fixture);
        assert!(!stderr.contains("panicked"), "{fixture}: {stderr}");
        assert_eq!(code, Some(1), "{fixture}: {stderr}");
        assert!(stderr.contains(key), "{fixture}: {stderr}");
        assert!(stderr.contains("invalid manifest"), "{fixture}: {stderr}");
    }
}

/// A file marked `base = true` is only a base for others: `dist` refuses it with a clear error.
#[test]
fn dist_refuses_a_manifest_marked_as_a_base() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-suite/tdx-fail-base.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .arg(&path)
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tdx-fail-base.toml"), "{stderr}");
    assert!(stderr.contains("only a base"), "{stderr}");
}

/// A bad `memory.durable` is refused at load, naming the task and the rule.
#[test]
fn dist_refuses_bad_durable_memory() {
    for (fixture, want) in [
        (
            "durable-bad.toml",
            "task `worker`: memory.durable = 0x1800 is not a multiple of the page size 0x1000",
        ),
        (
            "durable-supervisor.toml",
            "task `jefe`: memory.durable is not allowed on the supervisor",
        ),
    ] {
        let (code, stderr) = dist(fixture);
        assert!(!stderr.contains("panicked"), "{fixture}: {stderr}");
        assert_eq!(code, Some(1), "{fixture}: {stderr}");
        assert!(stderr.contains(want), "{fixture}: {stderr}");
    }
}
