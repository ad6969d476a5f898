//! A deterministic server of the Test interface (`idl/test.idol`).
//!
//! Every operation does exactly what its `doc` in the `.idol` file says, so
//! the in-QEMU suite can check each IDL path (encodings, errors, leases,
//! access lists, restarts) against a known answer. State: a counter, the
//! current [`Mode`] and the notification bits seen, all reset when the task
//! restarts (which the suite uses to test server death).
//!
//! Pattern: the generated [`TestServer`] trait, implemented by
//! [`TestState`], driven by `dispatch_test` in an endless loop. Handlers
//! never panic on client input: bad input is a `RequestError`.

#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

use core::convert::Infallible;
use core::fmt::Write as _;

use idol_runtime::{CLikeError, ClientError, Leased, RequestError, R, RW, W};
use idol_test_api::{ComplexError, Message, Mode, Point, TestError};
use userlib::RecvMessage;

include!(concat!(env!("OUT_DIR"), "/server_stub.rs"));

/// The notification bits this server listens to (see `notifications_seen`).
const NOTIFICATION_MASK: u64 = 0b10;

/// Bytes moved per BORROW in the byte-lease operations.
const CHUNK: usize = 16;

/// The longest lease `reverse` accepts (its `max_len`).
const REVERSE_MAX: usize = 256;

/// Everything the server remembers between requests.
struct TestState {
    counter: u64,
    mode: Mode,
    notifications: u64,
}

type Simple<T> = Result<T, RequestError<Infallible>>;

impl TestServer for TestState {
    fn notification_mask(&self) -> u64 {
        NOTIFICATION_MASK
    }

    fn handle_notification(&mut self, bits: u64) {
        self.notifications |= bits;
    }

    fn add(&mut self, _msg: &RecvMessage, a: u32, b: u32) -> Simple<u32> {
        Ok(a.wrapping_add(b))
    }

    fn mix(
        &mut self,
        _msg: &RecvMessage,
        a: u8,
        b: u16,
        c: u64,
        d: i32,
        flag: bool,
    ) -> Simple<u64> {
        let sum = u64::from(a)
            .wrapping_add(u64::from(b))
            .wrapping_add(c)
            .wrapping_add(i64::from(d) as u64);
        Ok(if flag { sum.wrapping_neg() } else { sum })
    }

    fn divide(
        &mut self,
        _msg: &RecvMessage,
        a: u32,
        b: u32,
    ) -> Result<u32, RequestError<TestError>> {
        a.checked_div(b)
            .ok_or(RequestError::Runtime(TestError::DivideByZero))
    }

    fn fail_clike(&mut self, _msg: &RecvMessage, code: u16) -> Result<(), RequestError<TestError>> {
        if code == 0 {
            return Ok(());
        }
        match TestError::from_code(code) {
            Some(e) => Err(RequestError::Runtime(e)),
            None => Err(ClientError::BadMessageContents.into()),
        }
    }

    fn fail_complex(
        &mut self,
        _msg: &RecvMessage,
        kind: u8,
        value: u32,
    ) -> Result<u32, RequestError<ComplexError>> {
        match kind {
            0 => Ok(value.wrapping_mul(2)),
            1 => Err(RequestError::Runtime(ComplexError::TooBig {
                limit: 100,
                got: value,
            })),
            2 => {
                // "value-" plus at most 10 digits fits the 16 bytes.
                let mut name = heapless::String::<16>::new();
                let _ = write!(name, "value-{value}");
                Err(RequestError::Runtime(ComplexError::Named(name)))
            }
            other => Err(RequestError::Runtime(ComplexError::UnknownKind(other))),
        }
    }

    fn sum_bytes(&mut self, _msg: &RecvMessage, data: Leased<R, [u8]>) -> Simple<u32> {
        let mut sum = 0u32;
        let mut chunk = [0u8; CHUNK];
        let mut offset = 0;
        while offset < data.len() {
            let n = CHUNK.min(data.len() - offset);
            data.read_range(offset..offset + n, &mut chunk[..n])?;
            sum = chunk[..n]
                .iter()
                .fold(sum, |s, &b| s.wrapping_add(u32::from(b)));
            offset += n;
        }
        Ok(sum)
    }

    fn fill(&mut self, _msg: &RecvMessage, value: u8, buf: Leased<W, [u8]>) -> Simple<u32> {
        let chunk = [value; CHUNK];
        let mut offset = 0;
        while offset < buf.len() {
            let n = CHUNK.min(buf.len() - offset);
            buf.write_range(offset..offset + n, &chunk[..n])?;
            offset += n;
        }
        Ok(u32::try_from(buf.len()).unwrap_or(u32::MAX))
    }

    fn reverse(&mut self, _msg: &RecvMessage, buf: Leased<RW, [u8]>) -> Simple<u32> {
        // `max_len` guarantees the lease fits; a mismatch is the client's
        // lease being wrong, reported as such rather than panicking.
        let mut local = [0u8; REVERSE_MAX];
        let bytes = local.get_mut(..buf.len()).ok_or(ClientError::BadLease)?;
        buf.read_range(0..bytes.len(), bytes)?;
        bytes.reverse();
        buf.write_range(0..bytes.len(), bytes)?;
        Ok(u32::try_from(bytes.len()).unwrap_or(u32::MAX))
    }

    fn scale_point(
        &mut self,
        _msg: &RecvMessage,
        factor: i32,
        input: Leased<R, Point>,
        output: Leased<W, Point>,
    ) -> Result<(), RequestError<TestError>> {
        if factor == 0 {
            return Err(RequestError::Runtime(TestError::ZeroFactor));
        }
        let p = input.read()?;
        output.write(&Point {
            x: p.x.wrapping_mul(factor),
            y: p.y.wrapping_mul(factor),
        })?;
        Ok(())
    }

    fn echo_postcard(&mut self, _msg: &RecvMessage, message: Message) -> Simple<Message> {
        let mut name = message.name;
        name.make_ascii_uppercase();
        let mut values = message.values;
        values.reverse();
        Ok(Message {
            id: message.id.wrapping_add(1),
            tag: message.tag,
            name,
            values,
        })
    }

    fn set_mode(&mut self, _msg: &RecvMessage, mode: Mode) -> Simple<u8> {
        let previous = core::mem::replace(&mut self.mode, mode);
        Ok(u8::from(previous))
    }

    fn bump_counter(&mut self, _msg: &RecvMessage) -> Simple<u64> {
        self.counter = self.counter.wrapping_add(1);
        Ok(self.counter)
    }

    fn notifications_seen(&mut self, _msg: &RecvMessage) -> Simple<u64> {
        Ok(self.notifications)
    }

    fn stall(&mut self, _msg: &RecvMessage, ms: u32) -> Simple<u32> {
        // Bit 2 is ours alone (NOTIFICATION_MASK is bit 1), so sleeping
        // here swallows no notification meant for `handle_notification`.
        userlib::hl::sleep_for(u64::from(ms), 1 << 2);
        Ok(ms)
    }

    fn restricted_ping(&mut self, _msg: &RecvMessage, token: u32) -> Simple<u32> {
        Ok(token ^ 0x5A5A_5A5A)
    }
}

// Safety: `main` is the one symbol userlib's `_start` calls; no other item
// in the image is named `main`, so the unmangled name cannot collide.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
fn main() -> ! {
    let mut state = TestState {
        counter: 0,
        mode: Mode::Slow,
        notifications: 0,
    };
    let mut buffers = TestBuffers::new();
    loop {
        dispatch_test(&mut state, &mut buffers);
    }
}
