//! The IDL compiler: `.idol` files in, Rust client stubs and server support
//! out.
//!
//! Pipeline, one stage per module:
//! 1. [`syntax`] parses RON into an [`Interface`], rejecting unknown and
//!    duplicate keys;
//! 2. [`Interface::validate`] (in `validate`) checks meaning;
//! 3. [`numbering`] gives every operation its stable number from the lock
//!    file;
//! 4. [`client`] and [`server`] generate code (through `common`), which is
//!    pretty-printed so a reader can follow it.
//!
//! Build scripts call [`client::build_client_stub`] (an `-api` crate) or
//! [`server::build_server_support`] (a server task); both write into
//! `OUT_DIR` and tell cargo when to rerun. The generated code relies on
//! `idol-runtime`, `userlib`, `zerocopy`, `postcard` and `serde` being
//! dependencies of the including crate (and `hubpack`, for deriving
//! `SerializedSize`, when an interface uses `encoding: Hubpack`).
//!
//! Hubris's own `.idol` files are accepted as they are (see [`syntax`]).

#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

mod acl;
pub mod client;
mod common;
pub mod numbering;
pub mod server;
pub mod syntax;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use syntax::Interface;

/// Everything that can go wrong between a `.idol` file and generated code.
///
/// `Debug` prints the same text as `Display`, so a build script can return
/// `Result<(), idol::Error>` from `main` and still show a readable message.
#[derive(thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a well-formed interface (syntax, unknown or
    /// duplicate key, missing key).
    #[error("{path}:{line}:{col}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    /// The interface is well-formed but means something unsupported.
    #[error("{path}: {item}: {problem}")]
    Invalid {
        path: PathBuf,
        item: String,
        problem: String,
    },
    /// The lock file is malformed.
    #[error("{path}:{line}: {message}")]
    Lock {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The interface would renumber an operation without permission.
    #[error(
        "{path}: operation `{op}` would be renumbered ({problem}); this breaks every peer \
         built before. If it is intended, rebuild with IDOL_ALLOW_RENUMBER=1 (or \
         Options::allow_renumber) and check in the updated lock file"
    )]
    Renumber {
        path: PathBuf,
        op: String,
        problem: String,
    },
    /// Every operation number is used.
    #[error("{path}: no operation numbers left")]
    NumbersExhausted { path: PathBuf },
    /// The lock file is out of date and `IDOL_FROZEN_LOCK` forbids updating it.
    #[error("{path}: out of date and IDOL_FROZEN_LOCK=1 forbids updating it")]
    FrozenLock { path: PathBuf },
    /// The manifest's access list for a server is wrong.
    #[error("task `{task}`: config.access: {problem}")]
    Access { task: String, problem: String },
    /// A build script ran outside cargo.
    #[error("OUT_DIR is not set; this must run from a build script")]
    NoOutDir,
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Knobs of a generation run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Let explicit `number:`s change locked numbers.
    pub allow_renumber: bool,
    /// Refuse to update the lock file (CI: the checked-in lock must match).
    pub frozen_lock: bool,
    /// Write an updated lock file back (build scripts: yes; tests: no).
    pub write_lock: bool,
}

impl Options {
    /// The options of a build script: lock updates on, renumbering and
    /// freezing from `IDOL_ALLOW_RENUMBER=1` and `IDOL_FROZEN_LOCK=1`.
    #[must_use]
    pub fn from_env() -> Self {
        println!("cargo:rerun-if-env-changed=IDOL_ALLOW_RENUMBER");
        println!("cargo:rerun-if-env-changed=IDOL_FROZEN_LOCK");
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
        Options {
            allow_renumber: flag("IDOL_ALLOW_RENUMBER"),
            frozen_lock: flag("IDOL_FROZEN_LOCK"),
            write_lock: true,
        }
    }
}

/// An interface with its operation numbers: what the generators consume.
#[derive(Clone, Debug)]
pub struct Numbered {
    /// The interface.
    pub iface: Interface,
    /// Operation name to number.
    pub numbers: BTreeMap<String, u16>,
    /// The `.idol` file it came from.
    pub path: PathBuf,
}

impl Interface {
    /// Reads, parses and validates a `.idol` file.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Parse`] or [`Error::Invalid`].
    pub fn load(path: impl AsRef<Path>) -> Result<Interface, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let iface = syntax::parse(path, &text)?;
        iface.validate(path)?;
        Ok(iface)
    }
}

/// The lock file of `idl_path`: `<idl_path>.lock`.
#[must_use]
pub fn lock_path(idl_path: &Path) -> PathBuf {
    let mut os = idl_path.as_os_str().to_owned();
    os.push(".lock");
    PathBuf::from(os)
}

/// Loads an interface and numbers its operations, updating the lock file
/// if `options` allow.
///
/// # Errors
/// Any [`Error`] of parsing, validation or numbering.
pub fn load_numbered(path: impl AsRef<Path>, options: &Options) -> Result<Numbered, Error> {
    let path = path.as_ref();
    let iface = Interface::load(path)?;
    let lock_file = lock_path(path);
    let old_text = match std::fs::read_to_string(&lock_file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Io {
                path: lock_file,
                source,
            })
        }
    };
    let old = match &old_text {
        Some(text) => numbering::Lock::parse(&lock_file, text)?,
        None => numbering::Lock::default(),
    };
    let (numbers, lock) = numbering::assign(path, &iface, &old, options.allow_renumber)?;
    let new_text = lock.render(&iface.name);
    if old_text.as_deref() != Some(new_text.as_str()) {
        if options.frozen_lock {
            return Err(Error::FrozenLock { path: lock_file });
        }
        if options.write_lock {
            write_atomically(&lock_file, &new_text)?;
        }
    }
    Ok(Numbered {
        iface,
        numbers,
        path: path.to_path_buf(),
    })
}

/// Writes through a temporary file and a rename, because an `-api` crate's
/// and a server's build scripts may update the same lock concurrently (with
/// identical contents).
fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension(format!("lock.tmp{}", std::process::id()));
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The candidate closest to `found`, if it is close enough to suggest.
#[must_use]
pub fn did_you_mean<'a>(
    found: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(found, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Writes generated code to `OUT_DIR/<file_name>` and registers the inputs
/// with cargo.
fn emit(numbered: &Numbered, file_name: &str, code: &str) -> Result<(), Error> {
    println!("cargo:rerun-if-changed={}", numbered.path.display());
    println!(
        "cargo:rerun-if-changed={}",
        lock_path(&numbered.path).display()
    );
    let out = std::env::var_os("OUT_DIR").ok_or(Error::NoOutDir)?;
    let out = Path::new(&out).join(file_name);
    std::fs::write(&out, code).map_err(|source| Error::Io { path: out, source })
}
