//! The error vocabulary shared by generated clients and servers.
//!
//! Two audiences, two types:
//! - [`ClientError`] is the *server's* verdict that a request was malformed
//!   (or that its sender vanished). It never reaches the client as a value:
//!   it becomes a REPLY_FAULT, or no reply at all.
//! - An interface's own error type `E` is what the client receives. Every
//!   such type implements [`ServerDeath`], so a client can always report
//!   "the server restarted" without panicking.
//!
//! A handler returns [`RequestError<E>`], which is either of the two.

use abi::ReplyFaultReason;

use crate::wire::{FIRST_CLIKE_CODE, LAST_CLIKE_CODE};

/// Why the server refuses to handle a request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The operation number names no operation of the interface.
    UnknownOperation,
    /// The message is longer or shorter than the operation's arguments.
    BadMessageSize,
    /// The message has the right size but does not decode (e.g. a `bool`
    /// that is neither 0 nor 1, or an out-of-range enum value).
    BadMessageContents,
    /// Wrong number of leases, or a lease lacking an attribute, exceeding
    /// `max_len`, or of the wrong size for a typed lease.
    BadLease,
    /// The client's reply buffer cannot hold the largest possible reply.
    ReplyBufferTooSmall,
    /// The manifest does not allow this client to call this operation.
    AccessViolation,
    /// The client restarted (or stopped lending) while we worked; there is
    /// nobody to answer.
    WentAway,
}

impl ClientError {
    /// The REPLY_FAULT reason for this error, or `None` when the right
    /// answer is silence ([`ClientError::WentAway`]).
    #[must_use]
    pub fn fault_reason(self) -> Option<ReplyFaultReason> {
        Some(match self {
            ClientError::UnknownOperation => ReplyFaultReason::UndefinedOperation,
            ClientError::BadMessageSize => ReplyFaultReason::BadMessageSize,
            ClientError::BadMessageContents => ReplyFaultReason::BadMessageContents,
            ClientError::BadLease => ReplyFaultReason::BadLeases,
            ClientError::ReplyBufferTooSmall => ReplyFaultReason::ReplyBufferTooSmall,
            ClientError::AccessViolation => ReplyFaultReason::AccessViolation,
            ClientError::WentAway => return None,
        })
    }
}

/// Why a lease access failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// The lender restarted or no longer lends (the kernel answered DEFECT
    /// or a dead code).
    WentAway,
    /// The access lies outside the lease. Checked before the syscall, since
    /// the kernel would fault the *server* for it.
    OutOfBounds,
    /// The leased bytes are not a valid value of the typed lease's type.
    BadContents,
}

impl From<LeaseError> for ClientError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::WentAway => ClientError::WentAway,
            // The server computes offsets from what the client sent, so an
            // access outside the lease means the client lent too little.
            LeaseError::OutOfBounds => ClientError::BadLease,
            LeaseError::BadContents => ClientError::BadMessageContents,
        }
    }
}

/// What a server handler returns on failure.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RequestError<E> {
    /// An error of the interface, sent to the client as a reply.
    Runtime(E),
    /// The request itself was bad; the client is reply-faulted (or, for
    /// [`ClientError::WentAway`], ignored).
    Fail(ClientError),
}

impl<E> RequestError<E> {
    /// The lender is gone: answer nothing.
    #[must_use]
    pub fn went_away() -> Self {
        RequestError::Fail(ClientError::WentAway)
    }
}

impl<E> From<ClientError> for RequestError<E> {
    fn from(e: ClientError) -> Self {
        RequestError::Fail(e)
    }
}

impl<E> From<LeaseError> for RequestError<E> {
    fn from(e: LeaseError) -> Self {
        RequestError::Fail(e.into())
    }
}

/// An error type that can say "the server restarted". Every error a
/// generated client returns implements it.
pub trait ServerDeath {
    /// The value meaning "the server restarted before answering".
    fn server_restarted() -> Self;
}

/// Compile-time proof that `E` can report server death; generated clients
/// use it in a `const` item for every error type they return.
pub const fn assert_server_death<E: ServerDeath>() {}

/// The error of operations whose reply is `Simple`: the only way they can
/// fail, as seen by the client, is that the server restarted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ServerRestarted;

impl ServerDeath for ServerRestarted {
    fn server_restarted() -> Self {
        ServerRestarted
    }
}

/// A CLike error: an enum whose values travel as `u16` response codes.
/// Implement it with [`crate::clike_error!`].
pub trait CLikeError: Sized {
    /// This value's code.
    fn code(&self) -> u16;
    /// The value with `code`, if any.
    fn from_code(code: u16) -> Option<Self>;
}

/// Compile-time check of a CLike enum's codes: each in
/// `FIRST_CLIKE_CODE..=LAST_CLIKE_CODE`, no two equal.
///
/// # Panics
/// At compile time (it is used in a `const` item) when a code is out of
/// range or repeated.
pub const fn assert_clike_codes(codes: &[u16]) {
    let mut i = 0;
    while i < codes.len() {
        assert!(
            codes[i] >= FIRST_CLIKE_CODE && codes[i] <= LAST_CLIKE_CODE,
            "CLike error codes must lie in 3..=0xFFFE (0-2 and 0xFFFF are reserved)"
        );
        let mut j = i + 1;
        while j < codes.len() {
            assert!(codes[i] != codes[j], "CLike error codes must be distinct");
            j += 1;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientError, LeaseError, RequestError};
    use crate::{CLikeError, ServerDeath};
    use abi::ReplyFaultReason;

    crate::clike_error! {
        /// A test enum.
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        pub enum Sample {
            /// First.
            First = 3,
            Second = 0x1234,
        }
    }

    #[test]
    fn clike_codes_round_trip_and_include_server_death() {
        for v in [Sample::First, Sample::Second, Sample::ServerRestarted] {
            assert_eq!(Sample::from_code(v.code()), Some(v));
        }
        assert_eq!(Sample::from_code(4), None);
        assert_eq!(Sample::server_restarted(), Sample::ServerRestarted);
        assert_eq!(Sample::ServerRestarted.code(), 0xFFFF);
    }

    #[test]
    fn went_away_is_silent_and_everything_else_faults() {
        assert_eq!(ClientError::WentAway.fault_reason(), None);
        assert_eq!(
            ClientError::AccessViolation.fault_reason(),
            Some(ReplyFaultReason::AccessViolation)
        );
        assert_eq!(
            ClientError::BadLease.fault_reason(),
            Some(ReplyFaultReason::BadLeases)
        );
        let e: RequestError<()> = LeaseError::WentAway.into();
        assert_eq!(e, RequestError::went_away());
        let e: RequestError<()> = LeaseError::OutOfBounds.into();
        assert_eq!(e, RequestError::Fail(ClientError::BadLease));
    }
}
