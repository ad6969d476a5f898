//! The `.idol` format: RON text deserialized into [`Interface`].
//!
//! The syntax is Idol's, so Hubris's own `.idol` files load unchanged
//! (`Hubpack` encoding, `err: ServerDeath`, attributed reply types with
//! `recv:`, `From(..)` conversions, `description:`), with three deliberate
//! differences:
//! - **Every key is checked.** Unknown keys (a typo) and duplicate keys are
//!   errors naming the file, the position and the key, with a did-you-mean
//!   where one is close.
//! - **`doc` is first-class** on the interface and on every operation (with
//!   `description` accepted as its other name, as Hubris's files use both),
//!   and ends up in the generated code.
//! - **Operations may carry `number:`**; otherwise the lock file assigns one
//!   (see `crate::numbering`). Declaration order never decides a number.
//!
//! Parsing ([`parse`]) only checks shape; [`Interface::validate`] checks
//! meaning (identifiers, types, lease attributes, rules such as "no
//! idempotent operation with a read-write lease").

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::Error;

/// One interface: the contents of a `.idol` file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// The interface's name, in UpperCamelCase; names the client struct and
    /// the server trait.
    pub name: String,
    /// What the interface is for.
    #[serde(default, alias = "description")]
    pub doc: String,
    /// Operations, in declaration order.
    pub ops: OrderedMap<Operation>,
}

/// One operation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// What the operation does, including its documented behaviour.
    #[serde(default, alias = "description")]
    pub doc: String,
    /// By-value arguments, encoded in declaration order.
    #[serde(default)]
    pub args: OrderedMap<Arg>,
    /// Leases; a lease's index is its position here.
    #[serde(default)]
    pub leases: OrderedMap<Lease>,
    /// The reply.
    pub reply: Reply,
    /// Whether the client may silently resend after the server restarted.
    #[serde(default)]
    pub idempotent: bool,
    /// How arguments and the ok value travel.
    #[serde(default)]
    pub encoding: Encoding,
    /// An explicit, stable operation number.
    #[serde(default)]
    pub number: Option<u16>,
}

/// An attributed type: a by-value argument or a reply's ok value, written
/// `"u32"` or `(type: "Mode", recv: FromPrimitive("u8"))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// The Rust type the handler and caller see.
    pub ty: String,
    /// How the receiver (the server for an argument, the client for a
    /// reply) turns the wire value into `ty`.
    pub recv: Recv,
}

/// How an attributed type travels and is received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Recv {
    /// The wire value is the type itself.
    #[default]
    FromBytes,
    /// The wire value is this primitive; the receiver converts it with
    /// `TryFrom` (a refusal is BadMessageContents for an argument, a bad
    /// reply for an ok value) and the sender with `From<T> for primitive`.
    FromPrimitive(String),
    /// The wire value is this type; the receiver converts it infallibly
    /// with `From` (`None`) or the named function (`Some("path::to_fn")`),
    /// the sender with `From<T> for wire type`.
    From(String, #[serde(default)] Option<String>),
}

/// A lease.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// `"[u8]"` for a byte buffer, or a zerocopy type for a single value.
    #[serde(rename = "type")]
    pub ty: String,
    /// The server may read it.
    #[serde(default)]
    pub read: bool,
    /// The server may write it.
    #[serde(default)]
    pub write: bool,
    /// The longest buffer the server accepts (`[u8]` leases only).
    #[serde(default)]
    pub max_len: Option<u32>,
}

/// The reply of an operation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Reply {
    /// Always succeeds. An idempotent operation returns the value itself; a
    /// non-idempotent one `Result<T, ServerRestarted>`, as with
    /// `err: ServerDeath`.
    Simple(Arg),
    /// Succeeds with `ok` or fails with `err`.
    Result {
        /// The success type.
        ok: Arg,
        /// The error type and how it travels.
        err: ErrorKind,
    },
}

/// How an operation's error type travels.
#[derive(Clone, Debug, Deserialize)]
pub enum ErrorKind {
    /// An enum declared with `idol_runtime::clike_error!`, sent as the
    /// response code.
    CLike(String),
    /// A serde type implementing `ServerDeath` (for non-idempotent
    /// operations) and its encoding's size bound, sent after response code
    /// 2 in the operation's serde encoding (postcard for `Zerocopy`).
    Complex(String),
    /// The only failure is the server restarting: the client sees
    /// `idol_runtime::ServerRestarted`. Not allowed on idempotent
    /// operations, which retry instead.
    ServerDeath,
}

/// The encoding of arguments and the ok value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    /// Fixed-size values, packed with zerocopy.
    #[default]
    Zerocopy,
    /// Structured or variable-size values, with postcard.
    Postcard,
    /// Structured values with hubpack (fixed-size fields), as Hubris.
    Hubpack,
}

/// A RON map that keeps declaration order and rejects duplicate keys.
#[derive(Clone, Debug)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T> Default for OrderedMap<T> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<T> OrderedMap<T> {
    /// Entries in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entry called `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapVisitor<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

const ARG_FIELDS: &[&str] = &["type", "recv"];

/// A field name of a RON struct-like value. RON hands these out only as
/// identifiers (`String`'s own impl asks for a string and fails).
struct FieldName(String);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldName, E> {
                Ok(FieldName(v.to_string()))
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArgVisitor;
        impl<'de> Visitor<'de> for ArgVisitor {
            type Value = Arg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type name or (type: \"...\", recv: ...)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Arg, E> {
                Ok(Arg {
                    ty: v.to_string(),
                    recv: Recv::FromBytes,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Arg, A::Error> {
                let mut ty: Option<String> = None;
                let mut recv: Option<Recv> = None;
                while let Some(FieldName(key)) = map.next_key()? {
                    match key.as_str() {
                        "type" if ty.is_some() => return Err(de::Error::duplicate_field("type")),
                        "type" => ty = Some(map.next_value()?),
                        "recv" if recv.is_some() => return Err(de::Error::duplicate_field("recv")),
                        "recv" => recv = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, ARG_FIELDS)),
                    }
                }
                Ok(Arg {
                    ty: ty.ok_or_else(|| de::Error::missing_field("type"))?,
                    recv: recv.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(ArgVisitor)
    }
}

/// Parses the text of a `.idol` file; `path` is only for messages.
///
/// # Errors
/// [`Error::Parse`] with the position and, for an unknown key or variant,
/// a did-you-mean.
pub fn parse(path: &Path, text: &str) -> Result<Interface, Error> {
    let options = ron::Options::default();
    options
        .from_str::<Interface>(text)
        .map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: e.position.line,
            col: e.position.col,
            message: explain(&e.code),
        })
}

/// Turns a RON error into a message; unknown names get a did-you-mean.
fn explain(code: &ron::Error) -> String {
    match code {
        ron::Error::NoSuchStructField {
            expected,
            found,
            outer,
        } => unknown("key", found, expected, outer.as_deref()),
        ron::Error::NoSuchEnumVariant {
            expected,
            found,
            outer,
        } => unknown("variant", found, expected, outer.as_deref()),
        ron::Error::DuplicateStructField { field, outer } => match outer {
            Some(outer) => format!("duplicate key `{field}` in {outer}"),
            None => format!("duplicate key `{field}`"),
        },
        other => other.to_string(),
    }
}

fn unknown(what: &str, found: &str, expected: &[&str], outer: Option<&str>) -> String {
    let place = outer.map(|o| format!(" in {o}")).unwrap_or_default();
    let mut message = format!("unknown {what} `{found}`{place}");
    if let Some(best) = crate::did_you_mean(found, expected.iter().copied()) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    message.push_str(&format!(" (expected one of: {})", expected.join(", ")));
    message
}
