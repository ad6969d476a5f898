//! Stable operation numbers, kept in a lock file beside the `.idol` file.
//!
//! Idol numbered operations by declaration order, so reordering an
//! interface silently broke every peer built before. Here a number, once
//! given, belongs to its operation for good:
//!
//! - `<file>.idol.lock` (checked into git) maps each operation name to its
//!   number; an operation removed from the interface stays in the lock as
//!   `retired`, so its number is never handed out again.
//! - An explicit `number:` in the interface wins, but if it differs from
//!   the locked number, or takes a number the lock gives another (live or
//!   retired) operation, generation stops unless renumbering is explicitly
//!   allowed ([`crate::Options::allow_renumber`], or `IDOL_ALLOW_RENUMBER=1`).
//! - A new operation without `number:` gets the smallest number never
//!   used (not live, not retired, not explicit).
//!
//! [`assign`] is a pure function of the interface and the old lock, so it is
//! tested without touching files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::syntax::Interface;
use crate::Error;

/// One line of the lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockEntry {
    /// Operation name.
    pub name: String,
    /// Its number.
    pub number: u16,
    /// The operation no longer exists; the number stays taken.
    pub retired: bool,
}

/// The contents of a lock file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lock {
    /// Entries sorted by number.
    pub entries: Vec<LockEntry>,
}

impl Lock {
    /// Parses lock-file text: `name = number` or `name = number retired`
    /// per line; `#` starts a comment.
    ///
    /// # Errors
    /// [`Error::Lock`] naming the bad line.
    pub fn parse(path: &Path, text: &str) -> Result<Lock, Error> {
        let mut lock = Lock::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |message: &str| Error::Lock {
                path: path.to_path_buf(),
                line: i + 1,
                message: message.to_string(),
            };
            let (name, rest) = line
                .split_once('=')
                .ok_or_else(|| bad("expected `name = number`"))?;
            let mut words = rest.split_whitespace();
            let number = words
                .next()
                .and_then(|w| w.parse::<u16>().ok())
                .filter(|&n| n != 0)
                .ok_or_else(|| bad("expected a number from 1 to 65535"))?;
            let retired = match words.next() {
                None => false,
                Some("retired") => true,
                Some(_) => return Err(bad("only `retired` may follow the number")),
            };
            if words.next().is_some() {
                return Err(bad("unexpected text after `retired`"));
            }
            let name = name.trim().to_string();
            if lock.entries.iter().any(|e| e.number == number) {
                return Err(bad("number appears twice"));
            }
            if !retired && lock.entries.iter().any(|e| !e.retired && e.name == name) {
                return Err(bad("operation appears twice"));
            }
            lock.entries.push(LockEntry {
                name,
                number,
                retired,
            });
        }
        lock.entries.sort_by_key(|e| e.number);
        Ok(lock)
    }

    /// Renders the lock file.
    #[must_use]
    pub fn render(&self, interface: &str) -> String {
        let mut out = format!(
            "# Operation numbers of interface {interface}; maintained by build/idol.\n\
             # Check this file in. A number is never reused: a removed operation\n\
             # stays here as `retired`. Renumbering needs IDOL_ALLOW_RENUMBER=1.\n"
        );
        for e in &self.entries {
            let _ = write!(out, "{} = {}", e.name, e.number);
            out.push_str(if e.retired { " retired\n" } else { "\n" });
        }
        out
    }

    /// The live entry of operation `name`. Retired entries are never
    /// reclaimed, even by an operation of the same name.
    fn find(&self, name: &str) -> Option<&LockEntry> {
        self.entries.iter().find(|e| !e.retired && e.name == name)
    }

    fn holder(&self, number: u16) -> Option<&LockEntry> {
        self.entries.iter().find(|e| e.number == number)
    }
}

/// Gives every operation of `iface` its number.
///
/// Returns the numbers by operation name and the lock to write back.
///
/// # Errors
/// [`Error::Renumber`] when an explicit number would change or steal a
/// locked number and `allow_renumber` is false; [`Error::NumbersExhausted`]
/// past 65535.
pub fn assign(
    path: &Path,
    iface: &Interface,
    old: &Lock,
    allow_renumber: bool,
) -> Result<(BTreeMap<String, u16>, Lock), Error> {
    let mut numbers: BTreeMap<String, u16> = BTreeMap::new();
    // Explicit numbers first, so fresh numbers never collide with them.
    for (name, op) in iface.ops.iter() {
        let Some(n) = op.number else { continue };
        if let Some(locked) = old.find(name) {
            if locked.number != n && !allow_renumber {
                return Err(Error::Renumber {
                    path: path.to_path_buf(),
                    op: name.to_string(),
                    problem: format!(
                        "the lock gives it {}, the interface says {n}",
                        locked.number
                    ),
                });
            }
        }
        if let Some(holder) = old.holder(n) {
            if holder.name != name && !allow_renumber {
                let state = if holder.retired { "retired " } else { "" };
                return Err(Error::Renumber {
                    path: path.to_path_buf(),
                    op: name.to_string(),
                    problem: format!(
                        "number {n} belongs to {state}operation `{}` in the lock",
                        holder.name
                    ),
                });
            }
        }
        numbers.insert(name.to_string(), n);
    }
    // Every number ever handed out (live or retired) or given explicitly.
    let mut used: std::collections::BTreeSet<u16> = old
        .entries
        .iter()
        .map(|e| e.number)
        .chain(numbers.values().copied())
        .collect();
    for (name, op) in iface.ops.iter() {
        if op.number.is_some() {
            continue;
        }
        let taken_by_explicit = |n: u16| numbers.values().any(|&m| m == n);
        let n = match old.find(name) {
            Some(locked) if !taken_by_explicit(locked.number) => locked.number,
            Some(locked) if !allow_renumber => {
                return Err(Error::Renumber {
                    path: path.to_path_buf(),
                    op: name.to_string(),
                    problem: format!(
                        "its locked number {} is now given explicitly to another operation",
                        locked.number
                    ),
                });
            }
            _ => {
                let fresh = (1..=u16::MAX).find(|n| !used.contains(n)).ok_or_else(|| {
                    Error::NumbersExhausted {
                        path: path.to_path_buf(),
                    }
                })?;
                used.insert(fresh);
                fresh
            }
        };
        numbers.insert(name.to_string(), n);
    }
    // The new lock: every live operation, plus every old number no live
    // operation holds now, kept as retired so it is never handed out again
    // (this includes the old number of an explicitly renumbered operation).
    let mut lock = Lock::default();
    for (name, &number) in &numbers {
        lock.entries.push(LockEntry {
            name: name.clone(),
            number,
            retired: false,
        });
    }
    for e in &old.entries {
        let live = numbers.values().any(|&n| n == e.number);
        if !live {
            lock.entries.push(LockEntry {
                retired: true,
                ..e.clone()
            });
        }
    }
    lock.entries.sort_by_key(|e| e.number);
    Ok((numbers, lock))
}
