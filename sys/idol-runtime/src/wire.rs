//! Response codes on the wire, and how a client reads one.
//!
//! Invariant: the code spaces never overlap.
//!
//! | code                         | meaning                                  |
//! |------------------------------|------------------------------------------|
//! | `0`                          | success; the body is the encoded value   |
//! | `1`                          | reserved: the kernel's `DEFECT`           |
//! | `2`                          | a Complex error; the body is postcard     |
//! | `3..=0xFFFE`                 | a CLike error code                        |
//! | `0xFFFF`                     | a CLike `ServerRestarted` (never needed, but representable) |
//! | `0x1_0000..0xFFFD_0000`      | unused; a client treats it as a broken reply |
//! | `0xFFFD_0000..0xFFFE_0000`   | the kernel's (`IPC_REFUSED`: no such edge) |
//! | `0xFFFE_0000..0xFFFF_0000`   | kernel-IPC errors                         |
//! | `0xFFFF_0000..`              | dead codes: the server restarted          |
//!
//! From `0xFFFD_0000` (`abi::FIRST_RESERVED_CODE`) up only the kernel answers: a server's
//! REPLY with such a code faults the server, so a client never mistakes a lie for the
//! kernel's word.

use abi::Generation;

/// Success.
pub const OK: u32 = 0;

/// A Complex error; the reply body is its postcard encoding.
pub const COMPLEX_ERROR: u32 = 2;

/// The smallest code a CLike error variant may use.
pub const FIRST_CLIKE_CODE: u16 = 3;

/// The largest code a CLike error variant may use.
pub const LAST_CLIKE_CODE: u16 = 0xFFFE;

/// The code of the `ServerRestarted` variant [`crate::clike_error!`] adds.
pub const SERVER_RESTARTED_CODE: u16 = 0xFFFF;

/// The first code the kernel reserves for its own IPC errors.
pub const FIRST_KERNEL_CODE: u32 = 0xFFFE_0000;

/// What a response code means to a client.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplyCode {
    /// The server answered with success.
    Ok,
    /// The server restarted; this is its new generation.
    Dead(Generation),
    /// The server answered with a CLike error code.
    CLike(u16),
    /// The server answered with a Complex error (postcard body).
    Complex,
    /// A code no conforming server sends (DEFECT, kernel codes, or a value
    /// outside every range).
    Invalid(u32),
}

impl ReplyCode {
    /// Classifies the response code of a SEND.
    #[must_use]
    pub fn classify(rc: u32) -> Self {
        if let Some(generation) = abi::extract_new_generation(rc) {
            return ReplyCode::Dead(generation);
        }
        match rc {
            OK => ReplyCode::Ok,
            COMPLEX_ERROR => ReplyCode::Complex,
            _ => match u16::try_from(rc) {
                Ok(code) if code >= FIRST_CLIKE_CODE => ReplyCode::CLike(code),
                _ => ReplyCode::Invalid(rc),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ReplyCode, COMPLEX_ERROR, FIRST_KERNEL_CODE};
    use abi::{dead_response_code, Generation, DEFECT};

    #[test]
    fn classification_covers_each_range() {
        assert_eq!(ReplyCode::classify(0), ReplyCode::Ok);
        assert_eq!(ReplyCode::classify(DEFECT), ReplyCode::Invalid(DEFECT));
        assert_eq!(ReplyCode::classify(COMPLEX_ERROR), ReplyCode::Complex);
        assert_eq!(ReplyCode::classify(3), ReplyCode::CLike(3));
        assert_eq!(ReplyCode::classify(0xFFFF), ReplyCode::CLike(0xFFFF));
        assert_eq!(ReplyCode::classify(0x1_0000), ReplyCode::Invalid(0x1_0000));
        assert_eq!(
            ReplyCode::classify(FIRST_KERNEL_CODE),
            ReplyCode::Invalid(FIRST_KERNEL_CODE)
        );
        assert_eq!(
            ReplyCode::classify(dead_response_code(Generation(9))),
            ReplyCode::Dead(Generation(9))
        );
    }
}
