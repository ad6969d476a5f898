//! Typed access to a client's leases.
//!
//! A [`Leased<A, T>`] names lease `index` of the client that sent the
//! request being handled, with attribute marker `A` ([`R`], [`W`] or
//! [`RW`]) and content type `T` (`[u8]` or a zerocopy type). The dispatch
//! code builds one only after BORROW_INFO showed the lease has the needed
//! attributes, fits `max_len`, and (for a typed lease) has exactly
//! `size_of::<T>()` bytes; so methods only exist for the directions the
//! interface declared, and the type system keeps a handler from writing a
//! read-only lease.
//!
//! Invariants that keep the *server* safe: every access is checked against
//! the length BORROW_INFO reported before the syscall (the kernel faults a
//! borrower that reaches past a lease), and every kernel refusal (DEFECT, a
//! dead code) is [`LeaseError::WentAway`], never a fault.

use core::marker::PhantomData;
use core::ops::Range;

use abi::{lease_attr, TaskId};
use userlib::{sys_borrow_info, sys_borrow_read, sys_borrow_write, LeaseInfo, RecvMessage};
use zerocopy::{Immutable, IntoBytes, KnownLayout, TryFromBytes};

use crate::dispatch::{check_lease, LeaseSpec};
use crate::{ClientError, LeaseError};

/// The directions an attribute marker allows.
pub trait Attribute {
    /// The handler may read the lease.
    const READ: bool;
    /// The handler may write the lease.
    const WRITE: bool;
}

/// Attribute markers that allow reading.
pub trait CanRead: Attribute {}
/// Attribute markers that allow writing.
pub trait CanWrite: Attribute {}

/// Read-only lease.
pub struct R;
/// Write-only lease.
pub struct W;
/// Read-write lease.
pub struct RW;

impl Attribute for R {
    const READ: bool = true;
    const WRITE: bool = false;
}
impl Attribute for W {
    const READ: bool = false;
    const WRITE: bool = true;
}
impl Attribute for RW {
    const READ: bool = true;
    const WRITE: bool = true;
}
impl CanRead for R {}
impl CanRead for RW {}
impl CanWrite for W {}
impl CanWrite for RW {}

/// Marks the attribute and content type without owning either; `fn() ->`
/// keeps `Leased` free of `T`'s auto-trait and drop obligations.
type Marker<A, T> = PhantomData<(A, fn() -> *const T)>;

/// Lease `index` of the client being served, checked against its declared
/// attributes and size.
pub struct Leased<A: Attribute, T: ?Sized> {
    lender: TaskId,
    index: usize,
    len: usize,
    _marker: Marker<A, T>,
}

impl<A: Attribute, T: ?Sized> Leased<A, T> {
    /// The client lending the memory.
    #[must_use]
    pub fn lender(&self) -> TaskId {
        self.lender
    }

    /// The lease's position in the client's lease table.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// Asks the kernel about the lease and checks it against `spec`.
    fn checked(msg: &RecvMessage, index: usize, spec: &LeaseSpec) -> Result<Self, ClientError> {
        if index >= msg.lease_count {
            return Err(ClientError::BadLease);
        }
        let info: LeaseInfo =
            sys_borrow_info(msg.sender, index).map_err(|_| ClientError::WentAway)?;
        check_lease(info.attributes, info.len, spec)?;
        Ok(Leased {
            lender: msg.sender,
            index,
            len: info.len,
            _marker: PhantomData,
        })
    }
}

/// What a lease of `A` needs from BORROW_INFO's attributes.
fn needed<A: Attribute>() -> u32 {
    let mut bits = 0;
    if A::READ {
        bits |= lease_attr::READ;
    }
    if A::WRITE {
        bits |= lease_attr::WRITE;
    }
    bits
}

/// Bytes `range` of a lease of `len` bytes, if inside it.
#[must_use]
fn in_bounds(range: &Range<usize>, len: usize) -> bool {
    range.start <= range.end && range.end <= len
}

/// Maps a BORROW_* result to an outcome: all of `want` bytes or an error.
fn borrow_result(rc: u32, copied: usize, want: usize) -> Result<(), LeaseError> {
    if rc != 0 {
        // DEFECT or a dead code: either way the lender is not waiting for
        // us any more.
        return Err(LeaseError::WentAway);
    }
    if copied != want {
        return Err(LeaseError::OutOfBounds);
    }
    Ok(())
}

impl<A: Attribute> Leased<A, [u8]> {
    /// Lease `index` of `msg`'s sender as a byte slice of at most `max_len`
    /// bytes.
    ///
    /// # Errors
    /// [`ClientError::BadLease`] if the lease is missing, lacks an
    /// attribute, or is too long; [`ClientError::WentAway`] if the sender
    /// is gone.
    pub fn from_message(
        msg: &RecvMessage,
        index: usize,
        max_len: Option<usize>,
    ) -> Result<Self, ClientError> {
        Self::checked(
            msg,
            index,
            &LeaseSpec {
                attributes: needed::<A>(),
                max_len,
                exact_len: None,
            },
        )
    }

    /// Length of the lease in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the lease is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<A: CanRead> Leased<A, [u8]> {
    /// The byte at `offset`.
    ///
    /// # Errors
    /// [`LeaseError::OutOfBounds`] past the end; [`LeaseError::WentAway`]
    /// if the lender is gone.
    pub fn read_at(&self, offset: usize) -> Result<u8, LeaseError> {
        let mut byte = [0u8; 1];
        self.read_range(offset..offset.saturating_add(1), &mut byte)?;
        Ok(byte[0])
    }

    /// Copies bytes `range` of the lease into `dest`, which must be exactly
    /// `range.len()` long.
    ///
    /// # Errors
    /// As [`Leased::read_at`]; a `dest` of the wrong length is
    /// [`LeaseError::OutOfBounds`].
    pub fn read_range(&self, range: Range<usize>, dest: &mut [u8]) -> Result<(), LeaseError> {
        if !in_bounds(&range, self.len) || dest.len() != range.len() {
            return Err(LeaseError::OutOfBounds);
        }
        let (rc, n) = sys_borrow_read(self.lender, self.index, range.start, dest);
        borrow_result(rc, n, dest.len())
    }
}

impl<A: CanWrite> Leased<A, [u8]> {
    /// Writes `value` at `offset`.
    ///
    /// # Errors
    /// As [`Leased::write_range`].
    pub fn write_at(&self, offset: usize, value: u8) -> Result<(), LeaseError> {
        self.write_range(offset..offset.saturating_add(1), &[value])
    }

    /// Copies `src`, which must be exactly `range.len()` long, into bytes
    /// `range` of the lease.
    ///
    /// # Errors
    /// [`LeaseError::OutOfBounds`] past the end or for a `src` of the wrong
    /// length; [`LeaseError::WentAway`] if the lender is gone.
    pub fn write_range(&self, range: Range<usize>, src: &[u8]) -> Result<(), LeaseError> {
        if !in_bounds(&range, self.len) || src.len() != range.len() {
            return Err(LeaseError::OutOfBounds);
        }
        let (rc, n) = sys_borrow_write(self.lender, self.index, range.start, src);
        borrow_result(rc, n, src.len())
    }
}

impl<A: Attribute, T: KnownLayout + Immutable> Leased<A, T> {
    /// Lease `index` of `msg`'s sender holding one `T`: its length must be
    /// exactly `size_of::<T>()`.
    ///
    /// # Errors
    /// As [`Leased::<A, [u8]>::from_message`], plus
    /// [`ClientError::BadLease`] for a lease of another size.
    pub fn typed_from_message(msg: &RecvMessage, index: usize) -> Result<Self, ClientError> {
        Self::checked(
            msg,
            index,
            &LeaseSpec {
                attributes: needed::<A>(),
                max_len: None,
                exact_len: Some(core::mem::size_of::<T>()),
            },
        )
    }
}

impl<A: CanRead, T: TryFromBytes + KnownLayout + Immutable> Leased<A, T> {
    /// Reads the leased value.
    ///
    /// # Errors
    /// [`LeaseError::BadContents`] if the bytes are not a valid `T`;
    /// [`LeaseError::WentAway`] if the lender is gone.
    pub fn read(&self) -> Result<T, LeaseError> {
        // Large enough for any typed lease the generator allows (they are
        // small zerocopy values copied onto the stack).
        const { assert!(core::mem::size_of::<T>() <= MAX_TYPED_LEASE) };
        let mut buf = [0u8; MAX_TYPED_LEASE];
        let size = core::mem::size_of::<T>();
        let bytes = buf.get_mut(..size).ok_or(LeaseError::OutOfBounds)?;
        let (rc, n) = sys_borrow_read(self.lender, self.index, 0, bytes);
        borrow_result(rc, n, size)?;
        T::try_read_from_bytes(bytes).map_err(|_| LeaseError::BadContents)
    }
}

impl<A: CanWrite, T: IntoBytes + Immutable> Leased<A, T> {
    /// Writes `value` over the leased value.
    ///
    /// # Errors
    /// [`LeaseError::WentAway`] if the lender is gone.
    pub fn write(&self, value: &T) -> Result<(), LeaseError> {
        let bytes = value.as_bytes();
        let (rc, n) = sys_borrow_write(self.lender, self.index, 0, bytes);
        borrow_result(rc, n, bytes.len())
    }
}

/// The largest typed lease [`Leased::read`] supports, in bytes. Larger data
/// belongs in a `[u8]` lease read in pieces.
pub const MAX_TYPED_LEASE: usize = 256;

#[cfg(test)]
mod tests {
    use super::{borrow_result, in_bounds, needed, R, RW, W};
    use crate::LeaseError;
    use abi::{dead_response_code, Generation, DEFECT};

    #[test]
    fn bounds() {
        assert!(in_bounds(&(0..4), 4));
        assert!(in_bounds(&(4..4), 4));
        assert!(!in_bounds(&(3..5), 4));
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..2;
        assert!(!in_bounds(&backwards, 4));
    }

    #[test]
    fn kernel_refusals_mean_went_away() {
        assert_eq!(borrow_result(0, 4, 4), Ok(()));
        assert_eq!(borrow_result(DEFECT, 0, 4), Err(LeaseError::WentAway));
        assert_eq!(
            borrow_result(dead_response_code(Generation(2)), 0, 4),
            Err(LeaseError::WentAway)
        );
        assert_eq!(borrow_result(0, 3, 4), Err(LeaseError::OutOfBounds));
    }

    #[test]
    fn markers_need_their_attributes() {
        assert_eq!(needed::<R>(), abi::lease_attr::READ);
        assert_eq!(needed::<W>(), abi::lease_attr::WRITE);
        assert_eq!(
            needed::<RW>(),
            abi::lease_attr::READ | abi::lease_attr::WRITE
        );
    }
}
