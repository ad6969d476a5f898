//! A spin lock for kernel state that several CPUs touch (the emulated
//! module, the SEAMCALL gate). The lock is held only for the closure passed
//! to [`SpinLock::with`], so no caller can forget to release it. Where one
//! is taken inside another the order is fixed: a CPU's SEAMCALL gate slot,
//! then the gate's staging, then the emulated module (`seamgate`, `seam`);
//! the async slots (`seam_async`) and the kill tables are never held while
//! another is taken.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A lock for state shared between CPUs (the emulated module, the gate).
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// Safety: access to `value` is serialized by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self.locked.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // Safety: we hold the lock.
        let r = f(unsafe { &mut *self.value.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}
