//! In-band frames: binary records on the text console.
//!
//! A frame is `FRAME_MARK, COBS(payload ‖ CRC-32(payload) as LE), FRAME_MARK`.
//! COBS removes every zero byte from what it encodes, and console text never
//! holds a zero byte, so a reader splits text from frames byte by byte; the
//! CRC catches a frame damaged on the way (dropped, changed or interleaved
//! bytes). Encoding and decoding work in caller buffers (no allocation) and
//! report every failure as a [`FrameError`], never a panic.

use core::fmt;

use crate::crc32;

/// Starts and ends every frame; never inside one, never in text.
pub const FRAME_MARK: u8 = 0;
/// Largest payload a frame carries (a kernel log record).
pub const PAYLOAD_MAX: usize = 300;
/// Largest COBS body (payload and CRC, encoded), marks not included.
pub const BODY_MAX: usize = cobs_max(PAYLOAD_MAX + 4);
/// Largest whole frame, marks included.
pub const FRAME_MAX: usize = BODY_MAX + 2;

/// Longest COBS encoding of `n` bytes.
#[must_use]
pub const fn cobs_max(n: usize) -> usize {
    n + n / 254 + 1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The payload or the output buffer is too large / too small.
    TooLong,
    /// A COBS code points past the end, or is zero.
    Cobs,
    /// Fewer bytes than the CRC alone.
    TooShort,
    /// The CRC does not match the payload.
    Crc { carried: u32, computed: u32 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong => f.write_str("frame too long"),
            FrameError::Cobs => f.write_str("invalid COBS encoding"),
            FrameError::TooShort => f.write_str("frame shorter than its CRC"),
            FrameError::Crc { carried, computed } => write!(
                f,
                "CRC mismatch (frame says {carried:08x}, payload has {computed:08x})"
            ),
        }
    }
}

/// COBS-encodes the concatenation of `parts` into `dst`; returns the length.
fn cobs_encode(parts: &[&[u8]], dst: &mut [u8]) -> Result<usize, FrameError> {
    let mut code_at = 0;
    let mut out = 1;
    let mut code = 1u8;
    let put = |at: usize, b: u8, dst: &mut [u8]| -> Result<(), FrameError> {
        *dst.get_mut(at).ok_or(FrameError::TooLong)? = b;
        Ok(())
    };
    for &b in parts.iter().flat_map(|p| p.iter()) {
        if b == 0 {
            put(code_at, code, dst)?;
            code_at = out;
            out += 1;
            code = 1;
        } else {
            put(out, b, dst)?;
            out += 1;
            code += 1;
            if code == 0xFF {
                put(code_at, code, dst)?;
                code_at = out;
                out += 1;
                code = 1;
            }
        }
    }
    put(code_at, code, dst)?;
    Ok(out)
}

/// Decodes a COBS body into `dst`; returns the length.
fn cobs_decode(src: &[u8], dst: &mut [u8]) -> Result<usize, FrameError> {
    let mut at = 0;
    let mut out = 0;
    while at < src.len() {
        let code = usize::from(src[at]);
        if code == 0 {
            return Err(FrameError::Cobs);
        }
        let block = src.get(at + 1..at + code).ok_or(FrameError::Cobs)?;
        if block.contains(&0) {
            return Err(FrameError::Cobs);
        }
        dst.get_mut(out..out + block.len())
            .ok_or(FrameError::TooLong)?
            .copy_from_slice(block);
        out += block.len();
        at += code;
        if code < 0xFF && at < src.len() {
            *dst.get_mut(out).ok_or(FrameError::TooLong)? = 0;
            out += 1;
        }
    }
    Ok(out)
}

/// Writes the whole frame for `payload` (marks included) into `dst`;
/// returns its length.
pub fn encode(payload: &[u8], dst: &mut [u8]) -> Result<usize, FrameError> {
    if payload.len() > PAYLOAD_MAX || dst.len() < 2 {
        return Err(FrameError::TooLong);
    }
    let crc = crc32(payload).to_le_bytes();
    let end = dst.len() - 1;
    let n = cobs_encode(&[payload, &crc], &mut dst[1..end])?;
    dst[0] = FRAME_MARK;
    dst[n + 1] = FRAME_MARK;
    Ok(n + 2)
}

/// Decodes a frame's body (the bytes between its marks) into `dst` and
/// checks its CRC; returns the payload length.
pub fn decode(body: &[u8], dst: &mut [u8]) -> Result<usize, FrameError> {
    if body.len() > BODY_MAX {
        return Err(FrameError::TooLong);
    }
    let n = cobs_decode(body, dst)?;
    let len = n.checked_sub(4).ok_or(FrameError::TooShort)?;
    let mut carried = [0u8; 4];
    carried.copy_from_slice(&dst[len..n]);
    let carried = u32::from_le_bytes(carried);
    let computed = crc32(&dst[..len]);
    if carried != computed {
        return Err(FrameError::Crc { carried, computed });
    }
    Ok(len)
}
