//! How a kernel-IPC service answers: the reply bytes (written into a
//! kernel buffer the dispatcher provides, or kernel data that outlives the
//! call) and whether the scheduler must choose again. Requests carry
//! little-endian `u64` words, and most answers are words too.

use abi::kipc::KipcError;

use crate::outcome::Next;

/// A service's successful answer to one request.
pub struct Answer<'a> {
    /// The reply, copied to the caller's reply buffer.
    pub bytes: &'a [u8],
    pub next: Next,
}

impl<'a> Answer<'a> {
    /// No reply bytes.
    #[must_use]
    pub fn empty(next: Next) -> Self {
        Answer { bytes: &[], next }
    }

    /// `words`, little-endian, written into `out` (which the dispatcher
    /// sizes for the largest answer; the words that would not fit are
    /// left out rather than panicking).
    #[must_use]
    pub fn words(out: &'a mut [u8], words: &[u64]) -> Self {
        let len = (words.len() * 8).min(out.len() / 8 * 8);
        for (chunk, w) in out[..len].chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Answer {
            bytes: &out[..len],
            next: Next::Same,
        }
    }

    /// Bytes the answer already has (kernel data, or a prefix of `out`).
    #[must_use]
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Answer {
            bytes,
            next: Next::Same,
        }
    }
}

/// Request word `index`; a request with fewer words is malformed.
///
/// # Errors
/// `BadRequest` if the request is too short.
pub fn arg(args: &[u64], index: usize) -> Result<u64, KipcError> {
    args.get(index).copied().ok_or(KipcError::BadRequest)
}
