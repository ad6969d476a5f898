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
        list.push(crate::nmi_test::MANIFEST.into());
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

/// Checks of the kernel's layering that clippy cannot express: the
/// portable kernel (`sys/kern/src` outside `arch/`) reaches a task's saved
/// registers only through the typed words of `abi::syscall`, never by
/// register name.
#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn kernel_src() -> PathBuf {
        crate::dist::workspace_root().join("sys/kern/src")
    }

    /// The fields of `struct SavedState` in the arch layer, as written.
    fn saved_state_fields() -> Vec<String> {
        let path = kernel_src().join("arch/entry.rs");
        let text = std::fs::read_to_string(&path).expect("reading arch/entry.rs");
        let start = text
            .find("pub struct SavedState {")
            .expect("arch/entry.rs defines SavedState");
        let body = &text[start..];
        let end = body.find("\n}").expect("SavedState's body ends");
        body[..end]
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(str::to_string)
            .collect()
    }

    fn portable_sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("listing the kernel sources") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "arch") {
                    portable_sources(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn saved_registers_are_visible_only_inside_the_arch_layer() {
        let fields = saved_state_fields();
        assert!(
            fields.iter().any(|f| f.contains("rdi:")),
            "SavedState's fields were not found: {fields:?}"
        );
        for f in &fields {
            assert!(
                f.starts_with("pub(in crate::arch) ") || !f.starts_with("pub"),
                "SavedState field `{f}` is visible outside arch/; the portable kernel must use \
                 the abi::syscall words instead"
            );
        }
    }

    #[test]
    fn the_portable_kernel_names_no_saved_register() {
        let registers: Vec<String> = saved_state_fields()
            .iter()
            .filter_map(|f| f.split(':').next())
            .map(|f| {
                f.trim_start_matches("pub(in crate::arch)")
                    .trim()
                    .to_string()
            })
            .collect();
        let mut files = Vec::new();
        portable_sources(&kernel_src(), &mut files);
        assert!(files.len() > 10, "kernel sources not found: {files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("reading a kernel source");
            for (n, line) in text.lines().enumerate() {
                for reg in &registers {
                    let by_name = format!("save.{reg}");
                    let hit = line.match_indices(&by_name).any(|(i, _)| {
                        !line[i + by_name.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    assert!(
                        !hit,
                        "{}:{}: names saved register `{reg}`; use the task's syscall words",
                        file.display(),
                        n + 1
                    );
                }
            }
        }
    }
}
