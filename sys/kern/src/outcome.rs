//! What a syscall handler tells the dispatcher.
//!
//! Pattern: every handler returns `Result<Next, UserError>`. `Ok` means the
//! handler wrote the caller's results itself (or the caller is blocked and
//! its results come later); `Err` hands the caller's fate to the dispatcher
//! (`syscalls::settle`), which alone decides between the two kinds of
//! failure: a [`UserError::Recoverable`] code is written to the caller's
//! result registers and it runs on; a [`UserError::Fault`] faults it. No
//! handler writes an error code or faults its caller on its own.
//!
//! This module depends on nothing in the kernel, so every handler module
//! can use it without importing the dispatcher (or each other).

use abi::UsageError;

/// What the dispatcher does after a syscall.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// Return to the caller.
    Same,
    /// Something changed; pick the most important runnable task.
    Reschedule,
}

/// A syscall that did not complete normally.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserError {
    /// Something the caller must be told and can act on (a dead code, a
    /// refused edge, a defective lease, a kernel-IPC error): the caller
    /// gets this response code, nothing else happened, and it runs on.
    Recoverable(u32),
    /// The caller misused the syscall: it is faulted.
    Fault(UsageError),
}

impl From<UsageError> for UserError {
    fn from(e: UsageError) -> Self {
        UserError::Fault(e)
    }
}
