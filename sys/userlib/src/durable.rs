//! Durable memory: statics that survive the task's restarts.
//!
//! A task whose manifest entry declares `memory = { .., durable = SIZE }`
//! (a page multiple) gets a region after its RAM that the kernel zeroes
//! once at boot and never again: when the task faults and its supervisor
//! restarts it, its RAM is zeroed and `.data` re-copied as always, but the
//! durable region keeps its bytes and its address. Statics go there with
//! `#[link_section = ".durable"]`:
//!
//! ```ignore
//! use userlib::durable::Durable;
//!
//! #[link_section = ".durable"]
//! static LEDGER: Durable<[u64; 512]> = Durable::zeroed();
//! ```
//!
//! Rules, which the types here make hard to get wrong:
//! - **The initializer is ignored.** The section is never loaded (NOLOAD):
//!   the first incarnation finds all zeros, later ones find what the last
//!   one wrote. So a durable type must be valid as all-zero bytes —
//!   [`ZeroValid`] — and [`Durable::zeroed`] is the only constructor, so
//!   the source says what the task will see.
//! - **Never a plain `static`** of a type without interior mutability
//!   there: the compiler may fold its reads to the initializer. Use
//!   [`Durable`] (an `UnsafeCell`) or `static mut`.
//! - **The task can die at any instruction.** Whatever it wrote before
//!   survives (x86 stores reach memory in program order); a multi-word
//!   update needs its own commit scheme (a sequence number and checksum,
//!   two slots), and the next incarnation must validate what it finds,
//!   not trust it.
//! - A task without `memory.durable` that places anything in `.durable`
//!   fails to link with a message saying so.

use core::cell::UnsafeCell;

/// Types for which all-zero bytes are a valid value (what durable memory
/// holds on its first use).
///
/// # Safety
/// Implement only for types whose every field is valid when all its bytes
/// are zero (no references, no `NonZero*`, no enums without a zero
/// discriminant).
pub unsafe trait ZeroValid {}

macro_rules! zero_valid {
    ($($t:ty),* $(,)?) => { $(
        // Safety: zero is a valid value of this primitive.
        unsafe impl ZeroValid for $t {}
    )* };
}

zero_valid!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    bool,
    (),
    core::sync::atomic::AtomicBool,
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicU16,
    core::sync::atomic::AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicUsize,
);

// Safety: an array of zero-valid elements is zero-valid.
unsafe impl<T: ZeroValid, const N: usize> ZeroValid for [T; N] {}

/// A value in durable memory. Place it with
/// `#[link_section = ".durable"] static NAME: Durable<T> = Durable::zeroed();`.
#[repr(transparent)]
pub struct Durable<T>(UnsafeCell<T>);

// Safety: a task is single-threaded (no preemption inside a task runs
// other code of it), so sharing the static between "threads" cannot
// happen; access goes through `as_ptr`/`get_mut`, whose callers uphold
// exclusivity.
unsafe impl<T> Sync for Durable<T> {}

impl<T: ZeroValid> Durable<T> {
    /// The value the task will find on first use: all zero (the kernel
    /// zeroes durable memory at boot; this initializer is not loaded).
    #[must_use]
    pub const fn zeroed() -> Self {
        // Safety: `T: ZeroValid`.
        Durable(UnsafeCell::new(unsafe { core::mem::zeroed() }))
    }
}

impl<T> Durable<T> {
    /// A raw pointer to the value (for volatile or ordered stores).
    #[must_use]
    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }

    /// The value, mutably.
    ///
    /// # Safety
    /// No other reference to the value may be live while the returned one
    /// is; call it once at start and pass the reference on.
    #[allow(clippy::mut_from_ref)]
    #[must_use]
    pub unsafe fn get_mut(&self) -> &mut T {
        // Safety: the caller guarantees exclusivity.
        unsafe { &mut *self.0.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::Durable;

    #[test]
    fn zeroed_is_all_zero_and_writable() {
        static D: Durable<[u32; 8]> = Durable::zeroed();
        // Safety: the only reference in this test.
        let v = unsafe { D.get_mut() };
        assert_eq!(*v, [0; 8]);
        v[3] = 7;
        // Safety: `v` is not used after this read.
        assert_eq!(unsafe { (*D.as_ptr())[3] }, 7);
    }
}
