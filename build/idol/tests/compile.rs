//! The generated code really compiles: this test generates the client stub
//! and the server support of `idl/test.idol` (with a restrictive access
//! list) into a scratch crate that depends on `idol-test-api` for the
//! interface's types, and runs `cargo check` on it with warnings denied.
//! The server half is instantiated through a generic function, so every
//! handler body is type-checked without a hand-written mock.
//!
//! Slow the first time (it builds the dependencies in its own target
//! directory under `CARGO_TARGET_TMPDIR`); cached afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use build_util::TaskEnv;
use idol::{load_numbered, Options};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest(root: &Path) -> String {
    let path = |p: &str| root.join(p).display().to_string();
    format!(
        r#"[package]
name = "idol-generated-check"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[lib]
path = "lib.rs"

[dependencies]
idol-runtime = {{ path = "{runtime}" }}
idol-test-api = {{ path = "{api}" }}
userlib = {{ path = "{userlib}" }}
zerocopy = {{ version = "0.8", features = ["derive"] }}
postcard = {{ version = "1", default-features = false }}
heapless = {{ version = "0.8", features = ["serde"] }}
hubpack = {{ version = "0.1", default-features = false }}
serde = {{ version = "1", default-features = false, features = ["derive"] }}
"#,
        runtime = path("sys/idol-runtime"),
        api = path("test-suite/idol-test-api"),
        userlib = path("sys/userlib"),
    )
}

const LIB: &str = r#"//! Generated code for idl/test.idol, compiled on the host.
#![no_std]
#![deny(warnings)]
#![forbid(clippy::wildcard_imports)]

use idol_test_api::{ComplexError, Message, Mode, Point, TestError};

include!("client_stub.rs");
include!("server_stub.rs");

/// A field-less enum that travels as a `u8` (`recv: FromPrimitive("u8")`).
macro_rules! primitive_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($v:ident = $n:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name { $($v = $n),+ }

        impl TryFrom<u8> for $name {
            type Error = ();
            fn try_from(raw: u8) -> Result<Self, ()> {
                $(if raw == $n { return Ok($name::$v); })+
                Err(())
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v as u8
            }
        }
    };
}

/// The Hubris-shaped interfaces of the golden tests, each with its types.
pub mod hubris {
    include!("hubris.rs");
}

/// Instantiates the dispatch for any server, type-checking every handler.
pub fn serve_forever<S: TestServer>(server: &mut S) -> ! {
    let mut buffers = TestBuffers::new();
    loop {
        dispatch_test(server, &mut buffers);
    }
}

/// Uses every client method once, so none is dead code.
pub fn call_everything(t: &Test) -> u64 {
    let mut out = [0u8; 8];
    let mut point = Point::default();
    let mut total = 0u64;
    total += u64::from(t.add(1, 2));
    total += t.mix(1, 2, 3, -4, true).unwrap_or(0);
    total += u64::from(t.divide(4, 2).unwrap_or(0));
    total += u64::from(t.fail_clike(3) == Err(TestError::Unlucky));
    total += u64::from(matches!(t.fail_complex(1, 2), Err(ComplexError::TooBig { .. })));
    total += u64::from(t.sum_bytes(&[1, 2, 3]));
    total += u64::from(t.fill(7, &mut out));
    total += u64::from(t.reverse(&mut out).unwrap_or(0));
    total += u64::from(t.scale_point(2, &Point { x: 1, y: 2 }, &mut point).is_ok());
    total += u64::from(t.echo_postcard(Message::default()).id);
    total += u64::from(t.set_mode(Mode::Fast).unwrap_or(0));
    total += t.bump_counter().unwrap_or(0);
    total += t.notifications_seen();
    total += u64::from(t.restricted_ping(5));
    total
}
"#;

#[test]
fn generated_client_and_server_compile() {
    let root = workspace();
    let n = load_numbered(root.join("idl/test.idol"), &Options::default()).expect("loads");
    let env = TaskEnv {
        name: "idol-test-server".into(),
        tasks: vec!["runner".into(), "idol-test-server".into(), "suite".into()],
        config: serde_json::json!({ "access": { "restricted_ping": ["suite"], "bump_counter": [] } }),
        ..TaskEnv::default()
    };
    let acl = idol::server::acl_from_task_env(&env, &n.iface).expect("acl");

    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("idol-generated-check");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let write = |name: &str, text: &str| std::fs::write(scratch.join(name), text).expect("write");
    write("Cargo.toml", &manifest(&root));
    write("lib.rs", LIB);
    write("client_stub.rs", &idol::client::generate(&n));
    write("server_stub.rs", &idol::server::generate(&n, &acl));

    // Each Hubris-shaped interface in a module of its own, with its types,
    // client and server, and a function that instantiates its dispatch.
    let golden = root.join("build/idol/tests/golden/hubris");
    let mut modules = String::new();
    for stem in ["sensor", "sequencer", "gpio", "spi"] {
        let n =
            load_numbered(golden.join(format!("{stem}.idol")), &Options::default()).expect("loads");
        let acl = idol::server::acl_from_task_env(&TaskEnv::default(), &n.iface).expect("acl");
        let types =
            std::fs::read_to_string(golden.join(format!("{stem}_types.rs"))).expect("types");
        write(&format!("{stem}_types.rs"), &types);
        write(&format!("{stem}_client.rs"), &idol::client::generate(&n));
        write(
            &format!("{stem}_server.rs"),
            &idol::server::generate(&n, &acl),
        );
        let iface = &n.iface.name;
        modules.push_str(&format!(
            "pub mod {stem} {{\n\
             include!(\"{stem}_types.rs\");\n\
             include!(\"{stem}_client.rs\");\n\
             include!(\"{stem}_server.rs\");\n\
             /// Instantiates the dispatch.\n\
             pub fn serve_forever<S: {iface}Server>(server: &mut S) -> ! {{\n\
             let mut buffers = {iface}Buffers::new();\n\
             loop {{ dispatch_{stem}(server, &mut buffers); }}\n\
             }}\n\
             }}\n"
        ));
    }
    write("hubris.rs", &modules);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .arg("check")
        .arg("--quiet")
        .args(["-j", "1"])
        .arg("--manifest-path")
        .arg(scratch.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "generated code does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
