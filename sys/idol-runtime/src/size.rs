//! Upper bounds on postcard encodings, so buffers can be sized statically.
//!
//! A postcard-encoded argument or reply travels in a fixed buffer whose size
//! the generator computes as [`PostcardMaxSize::MAX_SIZE`]. The invariant an
//! implementation must keep: no value of the type encodes to more bytes.
//! Integers are varints (`ceil(bits / 7)` bytes; signed ones zig-zagged),
//! sequences carry a varint length, arrays and tuples carry none.
//!
//! Implement it for your own structs by summing the fields, and for enums
//! as `varint(u32)` for the discriminant plus the largest variant:
//!
//! ```ignore
//! impl PostcardMaxSize for Point {
//!     const MAX_SIZE: usize = i32::MAX_SIZE + i32::MAX_SIZE;
//! }
//! ```

/// An upper bound on the postcard encoding of every value of a type.
pub trait PostcardMaxSize {
    /// No value of the type encodes to more bytes than this.
    const MAX_SIZE: usize;
}

/// Bytes of a varint holding at most `bits` significant bits.
#[must_use]
pub const fn varint_max(bits: usize) -> usize {
    bits.div_ceil(7)
}

/// Bytes of the varint encoding of `n` (used for sequence lengths).
#[must_use]
pub const fn varint_len(n: usize) -> usize {
    let mut n = n;
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The larger of two sizes, usable in constants.
#[must_use]
pub const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The largest of `sizes` (0 for none), usable in constants.
#[must_use]
pub const fn max_of(sizes: &[usize]) -> usize {
    let mut best = 0;
    let mut i = 0;
    while i < sizes.len() {
        best = max(best, sizes[i]);
        i += 1;
    }
    best
}

macro_rules! fixed {
    ($($t:ty => $n:expr),+ $(,)?) => {
        $(impl PostcardMaxSize for $t { const MAX_SIZE: usize = $n; })+
    };
}

fixed! {
    () => 0,
    bool => 1,
    u8 => 1,
    i8 => 1,
    u16 => varint_max(16),
    i16 => varint_max(16),
    u32 => varint_max(32),
    i32 => varint_max(32),
    u64 => varint_max(64),
    i64 => varint_max(64),
    u128 => varint_max(128),
    i128 => varint_max(128),
    usize => varint_max(64),
    isize => varint_max(64),
    f32 => 4,
    f64 => 8,
    // A char is a length-prefixed UTF-8 string of at most 4 bytes.
    char => 5,
}

impl<T: PostcardMaxSize> PostcardMaxSize for Option<T> {
    const MAX_SIZE: usize = 1 + T::MAX_SIZE;
}

impl<T: PostcardMaxSize, const N: usize> PostcardMaxSize for [T; N] {
    const MAX_SIZE: usize = N * T::MAX_SIZE;
}

impl<T: PostcardMaxSize, const N: usize> PostcardMaxSize for heapless::Vec<T, N> {
    const MAX_SIZE: usize = varint_len(N) + N * T::MAX_SIZE;
}

impl<const N: usize> PostcardMaxSize for heapless::String<N> {
    const MAX_SIZE: usize = varint_len(N) + N;
}

macro_rules! tuple {
    ($($name:ident)+) => {
        impl<$($name: PostcardMaxSize),+> PostcardMaxSize for ($($name,)+) {
            const MAX_SIZE: usize = 0 $(+ $name::MAX_SIZE)+;
        }
    };
}

tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);

#[cfg(test)]
mod tests {
    use super::{max_of, varint_len, PostcardMaxSize};

    fn encoded_len<T: serde::Serialize>(v: &T) -> usize {
        let mut buf = [0u8; 256];
        postcard::to_slice(v, &mut buf).expect("fits").len()
    }

    #[test]
    fn bounds_hold_for_extreme_values() {
        assert_eq!(encoded_len(&u16::MAX), u16::MAX_SIZE);
        assert_eq!(encoded_len(&u32::MAX), u32::MAX_SIZE);
        assert_eq!(encoded_len(&u64::MAX), u64::MAX_SIZE);
        assert_eq!(encoded_len(&i64::MIN), i64::MAX_SIZE);
        assert_eq!(encoded_len(&i32::MIN), i32::MAX_SIZE);
        assert_eq!(encoded_len(&u128::MAX), u128::MAX_SIZE);
        assert_eq!(encoded_len(&'\u{10FFFF}'), char::MAX_SIZE);
        assert_eq!(encoded_len(&Some(u32::MAX)), Option::<u32>::MAX_SIZE);
        let mut v: heapless::Vec<u32, 200> = heapless::Vec::new();
        while v.push(u32::MAX).is_ok() {}
        let mut buf = [0u8; 2048];
        let used = postcard::to_slice(&v, &mut buf).expect("fits").len();
        assert_eq!(used, heapless::Vec::<u32, 200>::MAX_SIZE);
        assert_eq!(
            encoded_len(&(1u8, u16::MAX, true)),
            <(u8, u16, bool)>::MAX_SIZE
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(max_of(&[]), 0);
        assert_eq!(max_of(&[3, 9, 4]), 9);
    }
}
