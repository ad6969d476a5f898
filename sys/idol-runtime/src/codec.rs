//! The serde encodings an operation may choose (`encoding: Postcard` or
//! `encoding: Hubpack` in the IDL) for its arguments, its ok value and a
//! Complex error.
//!
//! Each encoding is a zero-sized type implementing [`Codec`], so generated
//! code names the encoding once and the client and dispatch helpers stay
//! generic over it. Both decoders are strict: a value must use every byte
//! it was given, so trailing garbage is an error, not ignored.
//!
//! Buffers are sized statically from each encoding's bound on the types
//! involved: postcard's `MaxSize::POSTCARD_MAX_SIZE` (derive it with
//! `#[derive(idol_runtime::MaxSize)]`, re-exported from postcard's
//! `experimental-derive`) and hubpack's `SerializedSize::MAX_SIZE`.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A serde encoding of message bodies.
pub trait Codec {
    /// Encodes `value` into the front of `buf`; `None` when it does not fit.
    fn encode<'b, T: Serialize>(value: &T, buf: &'b mut [u8]) -> Option<&'b [u8]>;

    /// Decodes a value that must use every byte of `bytes`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T>;
}

/// postcard: varint integers, length-prefixed sequences; compact for small
/// values of wide types.
#[derive(Copy, Clone, Debug)]
pub struct Postcard;

/// hubpack: fixed-size little-endian fields, no varints; the encoding
/// Hubris's own interfaces use.
#[derive(Copy, Clone, Debug)]
pub struct Hubpack;

impl Codec for Postcard {
    fn encode<'b, T: Serialize>(value: &T, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        postcard::to_slice(value, buf).ok().map(|b| &*b)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
        match postcard::take_from_bytes(bytes) {
            Ok((value, [])) => Some(value),
            _ => None,
        }
    }
}

impl Codec for Hubpack {
    fn encode<'b, T: Serialize>(value: &T, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let len = hubpack::serialize(buf, value).ok()?;
        buf.get(..len)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
        match hubpack::deserialize(bytes) {
            Ok((value, [])) => Some(value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Codec, Hubpack, Postcard};
    use hubpack::SerializedSize;
    use postcard::experimental::max_size::MaxSize;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize, MaxSize, SerializedSize)]
    struct Reading {
        value: u32,
        timestamp: u64,
        valid: bool,
        kind: Option<u8>,
    }

    const FULLEST: Reading = Reading {
        value: u32::MAX,
        timestamp: u64::MAX,
        valid: true,
        kind: Some(u8::MAX),
    };

    fn round_trip<C: Codec>(bound: usize) {
        let mut buf = [0u8; 64];
        let bytes = C::encode(&FULLEST, &mut buf[..bound]).expect("fits its bound");
        assert_eq!(C::decode::<Reading>(bytes), Some(FULLEST));
        // One byte short of the encoding does not fit; a trailing byte or a
        // missing one does not decode.
        let len = bytes.len();
        assert!(C::encode(&FULLEST, &mut [0u8; 64][..len - 1]).is_none());
        let mut longer = [0u8; 65];
        longer[..len].copy_from_slice(&buf[..len]);
        assert_eq!(C::decode::<Reading>(&longer[..len + 1]), None);
        assert_eq!(C::decode::<Reading>(&buf[..len - 1]), None);
    }

    #[test]
    fn postcard_round_trips_within_its_derived_bound_and_is_strict() {
        round_trip::<Postcard>(Reading::POSTCARD_MAX_SIZE);
    }

    #[test]
    fn hubpack_round_trips_within_its_derived_bound_and_is_strict() {
        round_trip::<Hubpack>(<Reading as SerializedSize>::MAX_SIZE);
    }
}
