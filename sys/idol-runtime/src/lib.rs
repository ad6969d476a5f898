//! Runtime support for code generated from `.idol` interfaces.
//!
//! The generator (`build/idol`) writes a client stub into each `-api` crate
//! and a server trait plus dispatch function into each server. Everything
//! those two halves share at run time lives here, so the generated code
//! stays small and the rules it relies on are written down once:
//!
//! - **Wire codes** ([`wire`]): a reply's response code is `0` for success,
//!   a CLike error's `u16` code zero-extended, or [`wire::COMPLEX_ERROR`]
//!   followed by the error in the operation's serde encoding ([`codec`]). Codes `1` ([`abi::DEFECT`]) and
//!   everything from `0xFFFE_0000` up belong to the kernel and are never
//!   produced by a server.
//! - **Server death is an error value, never a panic.** Every client-side
//!   error type implements [`ServerDeath`]; a dead code from the kernel turns
//!   into that value ([`client`]). CLike error enums get their
//!   `ServerRestarted` variant from [`clike_error!`], so nobody can forget it.
//! - **Malformed requests are the client's fault.** The dispatch checks in
//!   [`dispatch`] turn them into a [`ClientError`], which the server answers
//!   with REPLY_FAULT (or, for [`ClientError::WentAway`], with silence). The
//!   handler sees only requests that passed every check.
//! - **Leases never fault the server** ([`leased`]): every borrow is bounds
//!   checked before the syscall, and a lender that went away is an error
//!   value.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

pub mod client;
pub mod codec;
pub mod dispatch;
mod errors;
pub mod leased;
pub mod size;
pub mod wire;

pub use codec::{Codec, Hubpack, Postcard};
pub use errors::{
    assert_clike_codes, assert_server_death, CLikeError, ClientError, LeaseError, RequestError,
    ServerDeath, ServerRestarted,
};
pub use leased::{Attribute, CanRead, CanWrite, Leased, R, RW, W};
/// postcard's bound on an encoding's size; `#[derive(MaxSize)]` on the
/// serde types an interface sends with `encoding: Postcard`.
pub use postcard::experimental::max_size::MaxSize;

/// Re-exported so generated code and `clike_error!` can name them without
/// every crate depending on the exact versions.
pub use hubpack;
pub use postcard;
pub use userlib;
pub use zerocopy;

/// Declares a CLike error enum for an interface: a plain enum whose values
/// travel as the response code, with a `ServerRestarted` variant added so a
/// client can always report that its server died.
///
/// ```ignore
/// idol_runtime::clike_error! {
///     /// Why a storage request failed.
///     #[derive(Copy, Clone, Debug, PartialEq, Eq)]
///     pub enum StorageError {
///         /// No such key.
///         NotFound = 3,
///         Full = 4,
///     }
/// }
/// ```
///
/// Codes must lie in [`wire::FIRST_CLIKE_CODE`]`..=`[`wire::LAST_CLIKE_CODE`]
/// and be distinct; both are checked at compile time. The added
/// `ServerRestarted` variant travels as [`wire::SERVER_RESTARTED_CODE`].
#[macro_export]
macro_rules! clike_error {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $code:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
            /// The server restarted before it answered; the request may or
            /// may not have taken effect.
            ServerRestarted,
        }

        impl $crate::CLikeError for $name {
            fn code(&self) -> u16 {
                match self {
                    $( Self::$variant => $code, )+
                    Self::ServerRestarted => $crate::wire::SERVER_RESTARTED_CODE,
                }
            }

            fn from_code(code: u16) -> ::core::option::Option<Self> {
                $(
                    if code == $code {
                        return ::core::option::Option::Some(Self::$variant);
                    }
                )+
                if code == $crate::wire::SERVER_RESTARTED_CODE {
                    return ::core::option::Option::Some(Self::ServerRestarted);
                }
                ::core::option::Option::None
            }
        }

        impl $crate::ServerDeath for $name {
            fn server_restarted() -> Self {
                Self::ServerRestarted
            }
        }

        const _: () = $crate::assert_clike_codes(&[$($code),+]);
    };
}
