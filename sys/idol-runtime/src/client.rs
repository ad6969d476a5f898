//! The client half: reading a reply.
//!
//! Generated client methods send, classify the response code with
//! [`crate::wire::ReplyCode`], and use these helpers for the rest. Server
//! death is never fatal: a dead code refreshes the handle's [`TaskId`] (so
//! the next call reaches the new incarnation) and becomes the error type's
//! `ServerRestarted` value, or a retry for idempotent operations.
//!
//! A reply that breaks the interface (an undefined code, a body that does
//! not decode) is different: a live server violated the contract both
//! sides were generated from, which no client can recover from sensibly,
//! so the client panics with a short message. That is the only panic here.

use core::cell::Cell;

use abi::TaskId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use userlib::sys_refresh_task_id;
use zerocopy::{Immutable, KnownLayout, TryFromBytes};

use crate::{CLikeError, Codec};

/// Points `current` at the server's present incarnation.
pub fn refresh(current: &Cell<TaskId>) {
    current.set(sys_refresh_task_id(current.get().index()));
}

/// The first `len` bytes of `reply`: the body the server sent. The kernel
/// never reports more than the buffer holds.
#[must_use]
pub fn body(reply: &[u8], len: usize) -> &[u8] {
    match reply.get(..len) {
        Some(b) => b,
        None => bad_reply(),
    }
}

/// Checks that a unit reply carried no body.
pub fn expect_empty(body: &[u8]) {
    if !body.is_empty() {
        bad_reply();
    }
}

/// Decodes a zerocopy reply body.
#[must_use]
pub fn decode_zerocopy<T: TryFromBytes + KnownLayout + Immutable>(body: &[u8]) -> T {
    match T::try_read_from_bytes(body) {
        Ok(v) => v,
        Err(_) => bad_reply(),
    }
}

/// Decodes a serde reply body (an ok value or a Complex error) in
/// encoding `C`.
#[must_use]
pub fn decode<C: Codec, T: DeserializeOwned>(body: &[u8]) -> T {
    match C::decode(body) {
        Some(v) => v,
        None => bad_reply(),
    }
}

/// Converts an ok value received as a primitive (`recv: FromPrimitive(..)`
/// on a reply) into its type; a value the type refuses is a bad reply.
#[must_use]
pub fn from_primitive<P, T: TryFrom<P>>(raw: P) -> T {
    match T::try_from(raw) {
        Ok(v) => v,
        Err(_) => bad_reply(),
    }
}

/// The CLike error with `code`.
#[must_use]
pub fn clike<E: CLikeError>(code: u16) -> E {
    match E::from_code(code) {
        Some(e) => e,
        None => bad_reply(),
    }
}

/// Encodes serde arguments in encoding `C` into `buf`, sized by their
/// encoding's bound.
///
/// # Panics
/// If they do not fit: a derived size bound cannot be too small, so only
/// a hand-written `MaxSize`/`SerializedSize` impl of the interface crate
/// gets here, which is a bug in that crate, not a runtime event.
pub fn encode<'b, C: Codec, T: Serialize>(args: &T, buf: &'b mut [u8]) -> &'b [u8] {
    match C::encode(args, buf) {
        Some(bytes) => bytes,
        None => panic!("idol: an encoding's size bound is too small for a request"),
    }
}

/// A reply no conforming server sends.
///
/// # Panics
/// Always; see the module documentation.
#[cold]
pub fn bad_reply() -> ! {
    panic!("idol: server reply violates the interface")
}
