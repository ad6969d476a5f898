//! The server half: receive, check, decode, reply.
//!
//! A generated `dispatch_<iface>` calls [`serve_one`] with its per-message
//! handler. The order of checks is fixed, and nothing reaches the
//! interface's handler until all pass:
//!
//! 1. notifications (sender = kernel) go to the server's notification hook;
//! 2. a message longer than the buffer: [`ClientError::BadMessageSize`];
//! 3. an unknown operation: [`ClientError::UnknownOperation`];
//! 4. [`check_request`]: access list, message size, reply capacity, lease
//!    count;
//! 5. decoding ([`decode_zerocopy`], [`decode`]): strict, so a
//!    `bool` of 2 or trailing bytes is [`ClientError::BadMessageContents`];
//! 6. each lease through BORROW_INFO ([`check_lease`]).
//!
//! A failed check answers the client with REPLY_FAULT, except
//! [`ClientError::WentAway`], which answers nothing: the client is gone and
//! a reply to a stale id is meaningless.

use abi::TaskId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use userlib::{sys_recv_open, sys_reply, sys_reply_fault, RecvMessage};
use zerocopy::{Immutable, IntoBytes, KnownLayout, TryFromBytes};

use crate::wire::{COMPLEX_ERROR, OK};
use crate::{CLikeError, ClientError, Codec};

/// Which clients may call an operation, from the manifest.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Acl {
    /// Every task.
    Any,
    /// Only the tasks whose index has its bit set (bit i = task index i;
    /// the kernel supports at most [`abi::MAX_TASKS`] = 64 tasks).
    Only(u64),
}

impl Acl {
    /// Whether `sender` may call the operation.
    #[must_use]
    pub const fn allows(&self, sender: TaskId) -> bool {
        match *self {
            Acl::Any => true,
            Acl::Only(mask) => {
                let index = sender.index().0 as u32;
                index < 64 && mask & (1 << index) != 0
            }
        }
    }
}

/// The size rule of an operation's message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MessageSize {
    /// Zerocopy arguments: exactly this many bytes.
    Exact(usize),
    /// Postcard arguments: at most this many bytes.
    AtMost(usize),
}

/// What the generated code knows statically about one operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OpSpec {
    /// Size rule of the message.
    pub message: MessageSize,
    /// The largest reply (ok or error), which the client must be able to take.
    pub reply_size: usize,
    /// Number of leases the operation declares.
    pub leases: usize,
    /// Who may call it.
    pub acl: Acl,
}

/// Checks `msg` against the operation's static description.
///
/// # Errors
/// The first failed check, in the order of the module documentation.
pub fn check_request(msg: &RecvMessage, spec: &OpSpec) -> Result<(), ClientError> {
    if !spec.acl.allows(msg.sender) {
        return Err(ClientError::AccessViolation);
    }
    let size_ok = match spec.message {
        MessageSize::Exact(n) => msg.message_len == n,
        MessageSize::AtMost(n) => msg.message_len <= n,
    };
    if !size_ok {
        return Err(ClientError::BadMessageSize);
    }
    if msg.response_capacity < spec.reply_size {
        return Err(ClientError::ReplyBufferTooSmall);
    }
    if msg.lease_count != spec.leases {
        return Err(ClientError::BadLease);
    }
    Ok(())
}

/// What a lease must look like.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LeaseSpec {
    /// Attribute bits (`abi::lease_attr`) the lease must have.
    pub attributes: u32,
    /// The longest acceptable lease, if limited.
    pub max_len: Option<usize>,
    /// The only acceptable length (typed leases).
    pub exact_len: Option<usize>,
}

/// Checks BORROW_INFO's answer against `spec`.
///
/// # Errors
/// [`ClientError::BadLease`] for a missing attribute or a wrong length.
pub fn check_lease(attributes: u32, len: usize, spec: &LeaseSpec) -> Result<(), ClientError> {
    if attributes & spec.attributes != spec.attributes {
        return Err(ClientError::BadLease);
    }
    if spec.max_len.is_some_and(|max| len > max) || spec.exact_len.is_some_and(|n| len != n) {
        return Err(ClientError::BadLease);
    }
    Ok(())
}

/// Decodes zerocopy arguments; the size was checked by [`check_request`],
/// and invalid bit patterns (a `bool` of 2, a bad enum value) are rejected.
///
/// # Errors
/// [`ClientError::BadMessageContents`].
pub fn decode_zerocopy<T: TryFromBytes + KnownLayout + Immutable>(
    body: &[u8],
) -> Result<T, ClientError> {
    T::try_read_from_bytes(body).map_err(|_| ClientError::BadMessageContents)
}

/// Decodes serde arguments in encoding `C`, which must use every byte of
/// the message.
///
/// # Errors
/// [`ClientError::BadMessageContents`].
pub fn decode<C: Codec, T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    C::decode(body).ok_or(ClientError::BadMessageContents)
}

/// Converts a primitive received on the wire into the argument's type
/// (`recv: FromPrimitive(..)` in the IDL).
///
/// # Errors
/// [`ClientError::BadMessageContents`] when the conversion refuses.
pub fn from_primitive<P, T: TryFrom<P>>(raw: P) -> Result<T, ClientError> {
    T::try_from(raw).map_err(|_| ClientError::BadMessageContents)
}

/// Replies success with a zerocopy value.
pub fn reply_zerocopy<T: IntoBytes + Immutable + ?Sized>(peer: TaskId, value: &T) {
    sys_reply(peer, OK, value.as_bytes());
}

/// Replies success with a serde value in encoding `C`, encoded in `buf`
/// (sized by the encoding's bound on the ok type).
///
/// # Panics
/// If the value does not fit, which means a hand-written size bound of the
/// interface's types is wrong: a server bug that no client input can fix,
/// so the server faults and restarts rather than leaving the client blocked.
pub fn reply_encoded<C: Codec, T: Serialize>(peer: TaskId, value: &T, buf: &mut [u8]) {
    sys_reply(peer, OK, encode::<C, T>(value, buf));
}

/// Replies with a CLike error.
pub fn reply_clike<E: CLikeError>(peer: TaskId, error: &E) {
    sys_reply(peer, u32::from(error.code()), &[]);
}

/// Replies with a Complex error in encoding `C`, encoded in `buf`.
///
/// # Panics
/// As [`reply_encoded`].
pub fn reply_complex<C: Codec, E: Serialize>(peer: TaskId, error: &E, buf: &mut [u8]) {
    sys_reply(peer, COMPLEX_ERROR, encode::<C, E>(error, buf));
}

fn encode<'b, C: Codec, T: Serialize>(value: &T, buf: &'b mut [u8]) -> &'b [u8] {
    match C::encode(value, buf) {
        Some(bytes) => bytes,
        None => encoding_overflow(),
    }
}

#[cold]
fn encoding_overflow() -> ! {
    panic!("idol: an encoding's size bound is too small for a reply")
}

/// Answers a request that failed a check: REPLY_FAULT, or silence for a
/// client that went away.
pub fn reply_client_error(peer: TaskId, error: ClientError) {
    if let Some(reason) = error.fault_reason() {
        sys_reply_fault(peer, reason);
    }
}

/// Receives one message and routes it: notifications to `on_notification`,
/// requests (already checked against the buffer size) to `on_message`,
/// whose [`ClientError`] is answered here.
pub fn serve_one<S: ?Sized>(
    server: &mut S,
    buffer: &mut [u8],
    notification_mask: u64,
    on_notification: impl FnOnce(&mut S, u64),
    on_message: impl FnOnce(&mut S, &RecvMessage, &[u8]) -> Result<(), ClientError>,
) {
    let msg = sys_recv_open(buffer, notification_mask);
    if msg.sender == TaskId::KERNEL {
        on_notification(server, msg.operation);
        return;
    }
    let result = match buffer.get(..msg.message_len) {
        Some(body) => on_message(server, &msg, body),
        // The kernel copied only what fits; the rest is lost.
        None => Err(ClientError::BadMessageSize),
    };
    if let Err(e) = result {
        reply_client_error(msg.sender, e);
    }
}

#[cfg(test)]
mod tests {
    use super::{
        check_lease, check_request, decode, decode_zerocopy, Acl, LeaseSpec, MessageSize, OpSpec,
    };
    use crate::{ClientError, Postcard};
    use abi::{lease_attr, Generation, TaskId, TaskIndex};
    use userlib::RecvMessage;

    fn msg(sender: u16, len: usize, capacity: usize, leases: usize) -> RecvMessage {
        RecvMessage {
            sender: TaskId::new(TaskIndex(sender), Generation(1)),
            operation: 1,
            message_len: len,
            response_capacity: capacity,
            lease_count: leases,
        }
    }

    const SPEC: OpSpec = OpSpec {
        message: MessageSize::Exact(8),
        reply_size: 4,
        leases: 1,
        acl: Acl::Only(0b1010),
    };

    #[test]
    fn request_checks_in_order() {
        assert_eq!(check_request(&msg(1, 8, 4, 1), &SPEC), Ok(()));
        assert_eq!(check_request(&msg(3, 8, 8, 1), &SPEC), Ok(()));
        // The ACL comes first: a forbidden caller learns nothing else.
        assert_eq!(
            check_request(&msg(2, 0, 0, 0), &SPEC),
            Err(ClientError::AccessViolation)
        );
        assert_eq!(
            check_request(&msg(1, 7, 4, 1), &SPEC),
            Err(ClientError::BadMessageSize)
        );
        assert_eq!(
            check_request(&msg(1, 8, 3, 1), &SPEC),
            Err(ClientError::ReplyBufferTooSmall)
        );
        assert_eq!(
            check_request(&msg(1, 8, 4, 2), &SPEC),
            Err(ClientError::BadLease)
        );
        let postcard = OpSpec {
            message: MessageSize::AtMost(8),
            acl: Acl::Any,
            ..SPEC
        };
        assert_eq!(check_request(&msg(9, 0, 4, 1), &postcard), Ok(()));
        assert_eq!(
            check_request(&msg(9, 9, 4, 1), &postcard),
            Err(ClientError::BadMessageSize)
        );
    }

    #[test]
    fn acl_ignores_generation_and_rejects_high_indices() {
        let acl = Acl::Only(1 << 5);
        assert!(acl.allows(TaskId::new(TaskIndex(5), Generation(77))));
        assert!(!acl.allows(TaskId::new(TaskIndex(69), Generation(0))));
        assert!(!acl.allows(TaskId::KERNEL));
    }

    #[test]
    fn lease_checks() {
        let rw = LeaseSpec {
            attributes: lease_attr::READ | lease_attr::WRITE,
            max_len: Some(16),
            exact_len: None,
        };
        assert_eq!(
            check_lease(lease_attr::READ | lease_attr::WRITE, 16, &rw),
            Ok(())
        );
        assert_eq!(
            check_lease(lease_attr::READ, 4, &rw),
            Err(ClientError::BadLease)
        );
        assert_eq!(
            check_lease(lease_attr::READ | lease_attr::WRITE, 17, &rw),
            Err(ClientError::BadLease)
        );
        let typed = LeaseSpec {
            attributes: lease_attr::READ,
            max_len: None,
            exact_len: Some(8),
        };
        assert_eq!(check_lease(lease_attr::READ, 8, &typed), Ok(()));
        assert_eq!(
            check_lease(lease_attr::READ, 7, &typed),
            Err(ClientError::BadLease)
        );
    }

    #[derive(zerocopy::TryFromBytes, zerocopy::KnownLayout, zerocopy::Immutable)]
    #[repr(C, packed)]
    struct Args {
        a: u32,
        flag: bool,
    }

    #[test]
    fn zerocopy_bool_is_strict() {
        let ok: Args = decode_zerocopy(&[1, 0, 0, 0, 1]).expect("valid");
        assert_eq!({ ok.a }, 1);
        assert!({ ok.flag });
        assert!(matches!(
            decode_zerocopy::<Args>(&[1, 0, 0, 0, 2]),
            Err(ClientError::BadMessageContents)
        ));
    }

    #[test]
    fn postcard_rejects_trailing_bytes() {
        assert_eq!(decode::<Postcard, (u8, bool)>(&[7, 1]), Ok((7, true)));
        assert_eq!(
            decode::<Postcard, (u8, bool)>(&[7, 1, 0]),
            Err(ClientError::BadMessageContents)
        );
        assert_eq!(
            decode::<Postcard, (u8, bool)>(&[7, 2]),
            Err(ClientError::BadMessageContents)
        );
    }
}
