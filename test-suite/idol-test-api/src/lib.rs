//! Client of the Test interface (`idl/test.idol`): the generated stub
//! [`Test`] plus the types the interface names.
//!
//! The interface exists to exercise every IDL feature from the in-QEMU test
//! suite, so each type here is chosen to hit one path: [`TestError`] a
//! CLike error, [`ComplexError`] a postcard error, [`Point`] a typed lease,
//! [`Message`] a postcard argument and reply, and [`Mode`] a
//! `FromPrimitive("u8")` argument.

#![no_std]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

use idol_runtime::{MaxSize, ServerDeath};
use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

idol_runtime::clike_error! {
    /// Failures of `divide`, `fail_clike` and `scale_point`.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum TestError {
        /// `divide` with `b == 0`.
        DivideByZero = 3,
        /// `scale_point` with `factor == 0`.
        ZeroFactor = 4,
        /// Only returned by `fail_clike(5)`.
        Unlucky = 5,
        /// Only returned by `fail_clike(0x1234)`: a code far from the others.
        Distant = 0x1234,
    }
}

/// The error of `fail_complex`, carried as postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ComplexError {
    /// `value` exceeded `limit`.
    TooBig { limit: u32, got: u32 },
    /// An error carrying text.
    Named(heapless::String<16>),
    /// `kind` was not 0, 1 or 2.
    UnknownKind(u8),
    /// The server restarted before it answered.
    ServerRestarted,
}

impl ServerDeath for ComplexError {
    fn server_restarted() -> Self {
        ComplexError::ServerRestarted
    }
}

/// A point, lent as a typed lease to `scale_point`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// A structured message, postcard-encoded, for `echo_postcard`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Message {
    pub id: u32,
    pub tag: Option<u8>,
    pub name: heapless::String<16>,
    pub values: heapless::Vec<u16, 8>,
}

/// A mode for `set_mode`, sent as a `u8`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Slow = 1,
    Fast = 2,
}

impl From<Mode> for u8 {
    fn from(m: Mode) -> u8 {
        m as u8
    }
}

impl TryFrom<u8> for Mode {
    type Error = ();
    fn try_from(raw: u8) -> Result<Self, ()> {
        match raw {
            1 => Ok(Mode::Slow),
            2 => Ok(Mode::Fast),
            _ => Err(()),
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/client_stub.rs"));
