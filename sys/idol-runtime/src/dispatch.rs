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
//!
//! A handled request's reply waits in the server's [`Outbox`] and leaves
//! with the server's next receive, in one REPLY_RECV (the reply of request
//! N is sent by the receive of request N+1); a server with work to do
//! between requests sends each reply at once instead
//! ([`Buffers::send_reply_now`]).

use abi::TaskId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use userlib::{sys_recv_open, sys_reply, sys_reply_fault, sys_reply_recv_open, RecvMessage};
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

/// A request's answer, held back so that the server's next receive sends
/// it: one REPLY_RECV, one kernel entry, instead of a REPLY and a RECV.
/// The generated handlers write their reply here ([`Self::zerocopy`],
/// [`Self::encoded`], [`Self::clike`], [`Self::complex`]); [`serve_one`]
/// sends it with the next receive, or [`Buffers::send_reply_now`] at once.
///
/// `N` is the largest reply of the interface (every operation's reply was
/// checked to fit the client's buffer before its handler ran), so a
/// reply that does not fit here is a bug of a hand-written size bound.
pub struct Outbox<const N: usize> {
    bytes: [u8; N],
    held: Option<Held>,
}

/// A reply waiting in an [`Outbox`]: its first `len` bytes.
#[derive(Copy, Clone)]
struct Held {
    peer: TaskId,
    code: u32,
    len: usize,
}

impl<const N: usize> Outbox<N> {
    #[must_use]
    pub const fn new() -> Self {
        Outbox {
            bytes: [0; N],
            held: None,
        }
    }

    /// Holds the first `len` bytes with `code` as the answer to `peer`.
    fn hold(&mut self, peer: TaskId, code: u32, len: usize) {
        self.held = Some(Held { peer, code, len });
    }

    /// Success with a zerocopy value.
    ///
    /// # Panics
    /// If the value is larger than the interface's largest reply (a bug of
    /// the generated sizes; the server faults rather than leave the client
    /// blocked).
    pub fn zerocopy<T: IntoBytes + Immutable + ?Sized>(&mut self, peer: TaskId, value: &T) {
        let value = value.as_bytes();
        match self.bytes.get_mut(..value.len()) {
            Some(out) => out.copy_from_slice(value),
            None => encoding_overflow(),
        }
        self.hold(peer, OK, value.len());
    }

    /// Success with a serde value in encoding `C`, encoded in place.
    ///
    /// # Panics
    /// If the value does not fit, which means a hand-written size bound of
    /// the interface's types is wrong: a server bug that no client input
    /// can fix, so the server faults and restarts rather than leaving the
    /// client blocked.
    pub fn encoded<C: Codec, T: Serialize>(&mut self, peer: TaskId, value: &T) {
        let len = encode::<C, T>(value, &mut self.bytes).len();
        self.hold(peer, OK, len);
    }

    /// A CLike error.
    pub fn clike<E: CLikeError>(&mut self, peer: TaskId, error: &E) {
        self.hold(peer, u32::from(error.code()), 0);
    }

    /// A Complex error in encoding `C`, encoded in place.
    ///
    /// # Panics
    /// As [`Self::encoded`].
    pub fn complex<C: Codec, E: Serialize>(&mut self, peer: TaskId, error: &E) {
        let len = encode::<C, E>(error, &mut self.bytes).len();
        self.hold(peer, COMPLEX_ERROR, len);
    }

    /// Sends the held reply now, by REPLY.
    pub fn flush(&mut self) {
        if let Some(h) = self.held.take() {
            sys_reply(h.peer, h.code, &self.bytes[..h.len]);
        }
    }

    /// Receives into `buffer` (open, with `notification_mask`), sending the
    /// held reply first, in the same call.
    fn receive(&mut self, buffer: &mut [u8], notification_mask: u64) -> RecvMessage {
        match self.held.take() {
            Some(h) => sys_reply_recv_open(
                h.peer,
                h.code,
                &self.bytes[..h.len],
                buffer,
                notification_mask,
            ),
            None => sys_recv_open(buffer, notification_mask),
        }
    }
}

impl<const N: usize> Default for Outbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A server's buffers: `M` bytes for the message a receive takes, and the
/// [`Outbox`] for replies of up to `R` bytes. Kept by the server's loop
/// across dispatches, since a reply leaves with the next receive.
pub struct Buffers<const M: usize, const R: usize> {
    message: [u8; M],
    outbox: Outbox<R>,
}

impl<const M: usize, const R: usize> Buffers<M, R> {
    #[must_use]
    pub const fn new() -> Self {
        Buffers {
            message: [0; M],
            outbox: Outbox::new(),
        }
    }

    /// Sends the last request's reply now, by REPLY, instead of with the
    /// next receive: for a server about to do work between two
    /// dispatches, which must not delay the reply.
    pub fn send_reply_now(&mut self) {
        self.outbox.flush();
    }
}

impl<const M: usize, const R: usize> Default for Buffers<M, R> {
    fn default() -> Self {
        Self::new()
    }
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
/// which leaves its answer in the outbox; its [`ClientError`] is answered
/// here, at once.
///
/// The receive also sends the previous request's reply, if the server did
/// not send it already ([`Buffers::send_reply_now`]), in one REPLY_RECV.
pub fn serve_one<S: ?Sized, const M: usize, const R: usize>(
    server: &mut S,
    buffers: &mut Buffers<M, R>,
    notification_mask: u64,
    on_notification: impl FnOnce(&mut S, u64),
    on_message: impl FnOnce(&mut S, &RecvMessage, &[u8], &mut Outbox<R>) -> Result<(), ClientError>,
) {
    let Buffers { message, outbox } = buffers;
    let msg = outbox.receive(message, notification_mask);
    if msg.sender == TaskId::KERNEL {
        on_notification(server, msg.operation);
        return;
    }
    let result = match message.get(..msg.message_len) {
        Some(body) => on_message(server, &msg, body, outbox),
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
