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

use crate::CLikeError;

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

/// Decodes a postcard reply body (an ok value or a Complex error).
#[must_use]
pub fn decode_postcard<T: DeserializeOwned>(body: &[u8]) -> T {
    match postcard::take_from_bytes(body) {
        Ok((v, [])) => v,
        _ => bad_reply(),
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

/// Encodes postcard arguments into `buf`, sized by their `MAX_SIZE`.
///
/// # Panics
/// If they do not fit: a `PostcardMaxSize` bound of the interface's types
/// is wrong, which is a bug in the interface crate, not a runtime event.
pub fn encode_postcard<'b, T: Serialize>(args: &T, buf: &'b mut [u8]) -> &'b [u8] {
    match postcard::to_slice(args, buf) {
        Ok(bytes) => bytes,
        Err(_) => panic!("idol: a PostcardMaxSize bound is too small for a request"),
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
