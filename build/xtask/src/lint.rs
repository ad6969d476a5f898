//! `cargo xtask clippy`: lints target crates the way they are built.
//!
//! A task crate only compiles inside an image (its build script reads the
//! task's slots and config from the environment xtask sets), so plain
//! `cargo clippy --workspace` cannot check it. This runs clippy once per
//! (image, task) with that environment, then on the kernel and the host
//! crates, denying warnings. Last, it checks that no crate's modules import
//! each other in a circle (`cycles`).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use build_util::TASK_ENV_VAR;

use crate::{dist, manifest, test};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command, what: &str) -> Result<bool> {
    let ok = cmd
        .status()
        .with_context(|| format!("running clippy for {what}"))?
        .success();
    if !ok {
        println!("xtask: clippy found problems in {what}");
    }
    Ok(ok)
}

pub fn clippy(manifests: &[PathBuf]) -> Result<ExitCode> {
    let mut list: Vec<PathBuf> = manifests.to_vec();
    if list.is_empty() {
        list.push("app.toml".into());
        list.extend(test::SUITES.iter().map(|(m, _)| PathBuf::from(m)));
        list.push("test-suite/bench/app.toml".into());
    }
    let mut ok = true;
    let mut seen = std::collections::BTreeSet::new();
    for path in &list {
        let m = manifest::load(path)?;
        for (i, (name, t)) in m.parsed_tasks.iter().enumerate() {
            // One lint per crate binary is enough: the code is the same.
            if !seen.insert((t.crate_name.clone(), t.binary_name().to_string())) {
                continue;
            }
            let env = serde_json::to_string(&dist::task_env(&m, i)?)?;
            ok &= run(
                cargo()
                    .args([
                        "clippy",
                        "--quiet",
                        "--release",
                        "--target",
                        "x86_64-unknown-none",
                        "-p",
                        &t.crate_name,
                    ])
                    .args(["--bin", t.binary_name(), "--", "-D", "warnings"])
                    .env(TASK_ENV_VAR, env),
                &format!("task `{name}` of {}", path.display()),
            )?;
        }
    }
    ok &= run(
        cargo().args([
            "clippy",
            "--quiet",
            "--release",
            "--target",
            "x86_64-unknown-none",
            "-p",
            "kern",
            "--",
            "-D",
            "warnings",
        ]),
        "the kernel",
    )?;
    let mut host = cargo();
    host.args(["clippy", "--quiet", "--all-targets"]);
    for c in test::host_crates()? {
        host.args(["-p", &c]);
    }
    ok &= run(host.args(["--", "-D", "warnings"]), "host crates")?;
    let cycles = crate::cycles::new_cycles(std::path::Path::new("."))?;
    for c in &cycles {
        print!("xtask: modules import each other in a circle: {c}");
    }
    ok &= cycles.is_empty();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
