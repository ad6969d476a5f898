//! Meaning checks on a parsed [`Interface`], run before any code is made.
//!
//! Everything the generated code assumes is checked here, so a mistake is a
//! message naming the file and the operation rather than a compile error in
//! generated text:
//! - names are Rust identifiers (and not names the generated code uses for
//!   its own locals, constants or methods); type strings parse as Rust
//!   types;
//! - a lease allows reading or writing; `max_len` is positive and only on
//!   `[u8]` leases;
//! - an idempotent operation has no read-write lease: a retry after a
//!   restart could replay a half-applied read-modify-write;
//! - `FromPrimitive` names a primitive integer, `From` a type and an
//!   optional function path, on arguments and ok values alike;
//! - an idempotent operation does not declare `err: ServerDeath`: it is
//!   retried after a restart, so it never reports one (Hubris's rule);
//! - explicit operation numbers are non-zero and distinct.

use std::collections::BTreeMap;
use std::path::Path;

use crate::syntax::{Arg, ErrorKind, Interface, Lease, Operation, Recv, Reply};
use crate::Error;

/// Names the generated client and server use for their own locals, so an
/// argument or lease may not take them.
const RESERVED: &[&str] = &[
    "msg",
    "server",
    "body",
    "outbox",
    "request",
    "request_buf",
    "reply_buf",
    "reply_code",
    "reply_len",
    "reply_body",
    "result_ok",
    "result_err",
    "fail",
    "never",
    "OPERATION",
    "REPLY_SIZE",
    "REQUEST_SIZE",
    "SPEC",
];

/// Methods the generated client stub (`task_id`, `from_index`) and server
/// trait (`notification_mask`, `handle_notification`) define beside the
/// operations, so an operation may not take their names.
const RESERVED_OPS: &[&str] = &[
    "task_id",
    "from_index",
    "notification_mask",
    "handle_notification",
];

/// Integer types a `FromPrimitive` argument may travel as.
pub const PRIMITIVES: &[&str] = &["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"];

impl Interface {
    /// Checks the interface's meaning; `path` is for messages.
    ///
    /// # Errors
    /// [`Error::Invalid`] for the first problem found.
    pub fn validate(&self, path: &Path) -> Result<(), Error> {
        let invalid = |item: String, problem: String| Error::Invalid {
            path: path.to_path_buf(),
            item,
            problem,
        };
        if !is_ident(&self.name) || !self.name.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Err(invalid(
                "interface".into(),
                format!("name `{}` must be an UpperCamelCase identifier", self.name),
            ));
        }
        if self.ops.is_empty() {
            return Err(invalid("interface".into(), "declares no operations".into()));
        }
        let mut numbers: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, op) in self.ops.iter() {
            let item = format!("operation `{name}`");
            if !is_ident(name) || name.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(invalid(item, "name must be a snake_case identifier".into()));
            }
            if RESERVED_OPS.contains(&name) {
                return Err(invalid(
                    item,
                    format!(
                        "the generated code defines a method of this name; reserved \
                         operation names are {}",
                        RESERVED_OPS.join(", ")
                    ),
                ));
            }
            if let Some(n) = op.number {
                if n == 0 {
                    return Err(invalid(item, "number 0 is not a valid operation".into()));
                }
                if let Some(first) = numbers.insert(n, name) {
                    return Err(invalid(
                        item,
                        format!("number {n} is also given to operation `{first}`"),
                    ));
                }
            }
            let mut seen: Vec<&str> = Vec::new();
            for (arg, a) in op.args.iter() {
                check_name(arg, &seen)
                    .map_err(|p| invalid(format!("{item}, argument `{arg}`"), p))?;
                seen.push(arg);
                check_attributed(a).map_err(|p| invalid(format!("{item}, argument `{arg}`"), p))?;
            }
            for (lease, l) in op.leases.iter() {
                let at = format!("{item}, lease `{lease}`");
                check_name(lease, &seen).map_err(|p| invalid(at.clone(), p))?;
                seen.push(lease);
                check_lease(l).map_err(|p| invalid(at.clone(), p))?;
                if op.idempotent && l.read && l.write {
                    return Err(invalid(
                        at,
                        "an idempotent operation may not take a read-write lease: a retry \
                         after a server restart could replay a half-applied update"
                            .into(),
                    ));
                }
            }
            for ty in op.reply_types() {
                check_type(ty).map_err(|p| invalid(format!("{item}, reply"), p))?;
            }
            let ok = match &op.reply {
                Reply::Simple(t) | Reply::Result { ok: t, .. } => t,
            };
            check_attributed(ok).map_err(|p| invalid(format!("{item}, reply"), p))?;
            if op.idempotent
                && matches!(
                    op.reply,
                    Reply::Result {
                        err: ErrorKind::ServerDeath,
                        ..
                    }
                )
            {
                return Err(invalid(
                    item,
                    "an idempotent operation is retried after a server restart, so it \
                     never reports ServerDeath; use a Simple reply"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

fn check_name(name: &str, seen: &[&str]) -> Result<(), String> {
    if !is_ident(name) {
        return Err("name must be a Rust identifier".into());
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "`{name}` is used by the generated code; reserved names are {}",
            RESERVED.join(", ")
        ));
    }
    if seen.contains(&name) {
        return Err("an argument or lease of the same name already exists".into());
    }
    Ok(())
}

/// An attributed type: its type, and what its `recv:` names.
fn check_attributed(a: &Arg) -> Result<(), String> {
    check_type(&a.ty)?;
    match &a.recv {
        Recv::FromBytes => Ok(()),
        Recv::FromPrimitive(prim) if PRIMITIVES.contains(&prim.as_str()) => Ok(()),
        Recv::FromPrimitive(prim) => Err(format!(
            "FromPrimitive(\"{prim}\") must name one of {}",
            PRIMITIVES.join(", ")
        )),
        Recv::From(wire, f) => {
            check_type(wire)?;
            match f {
                Some(f) if syn::parse_str::<syn::Path>(f).is_err() => {
                    Err(format!("From(.., Some(\"{f}\")) must name a function path"))
                }
                _ => Ok(()),
            }
        }
    }
}

fn check_lease(lease: &Lease) -> Result<(), String> {
    if !lease.read && !lease.write {
        return Err("must allow `read: true`, `write: true`, or both".into());
    }
    check_type(&lease.ty)?;
    match lease.max_len {
        Some(0) => Err("max_len must be positive".into()),
        Some(_) if !lease.is_bytes() => Err("max_len applies only to `[u8]` leases".into()),
        _ => Ok(()),
    }
}

fn check_type(ty: &str) -> Result<(), String> {
    syn::parse_str::<syn::Type>(ty)
        .map(|_| ())
        .map_err(|e| format!("`{ty}` is not a Rust type: {e}"))
}

fn is_ident(s: &str) -> bool {
    syn::parse_str::<syn::Ident>(s).is_ok()
}

impl Operation {
    /// The type strings of the reply: the ok type and any error type.
    #[must_use]
    pub fn reply_types(&self) -> Vec<&str> {
        match &self.reply {
            Reply::Simple(t) => vec![t.ty.as_str()],
            Reply::Result { ok, err } => match err {
                ErrorKind::CLike(e) | ErrorKind::Complex(e) => vec![ok.ty.as_str(), e.as_str()],
                ErrorKind::ServerDeath => vec![ok.ty.as_str()],
            },
        }
    }
}

impl Lease {
    /// Whether this is a byte-buffer lease rather than a typed one.
    #[must_use]
    pub fn is_bytes(&self) -> bool {
        self.ty.replace(' ', "") == "[u8]"
    }
}
