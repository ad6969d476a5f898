//! Constant arithmetic on buffer sizes for generated code.
//!
//! The bounds themselves come from the encodings' own traits, never from
//! hand-summed fields: zerocopy's `size_of`, postcard's
//! [`MaxSize`](crate::MaxSize) (derived) and hubpack's
//! [`SerializedSize`](crate::hubpack::SerializedSize) (derived). What is
//! left here is combining them in constants: a reply buffer holds the
//! larger of the ok value and the error, a dispatch buffer the largest
//! message of any operation.

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

#[cfg(test)]
mod tests {
    use super::{max, max_of};

    #[test]
    fn max_and_max_of_pick_the_largest() {
        assert_eq!(max(3, 9), 9);
        assert_eq!(max(9, 3), 9);
        assert_eq!(max_of(&[]), 0);
        assert_eq!(max_of(&[3, 9, 4]), 9);
    }
}
