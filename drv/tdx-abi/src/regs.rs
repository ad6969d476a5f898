//! SEAMCALL register sets (§2.1).
//!
//! Pattern: `#[repr(C)]`, `Copy` register images that an assembly stub can load/store in field
//! order (rax, rcx, rdx, r8, r9, r10, r11). Only the registers host initialization leaves use are
//! modelled; TDH.VP.ENTER and migration leaves need more and are out of scope.

use crate::leaf::{Leaf, LeafWord};
use crate::status::TdxStatus;

/// SEAMCALL inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
#[allow(missing_docs)] // register names
pub struct SeamcallArgs {
    /// leaf[15:0] | version[23:16] (see [`LeafWord`]).
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
}

impl SeamcallArgs {
    /// Arguments for `leaf` at version 0 with all other registers zero.
    #[must_use]
    pub const fn leaf(leaf: Leaf) -> Self {
        SeamcallArgs {
            rax: leaf as u64,
            rcx: 0,
            rdx: 0,
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
        }
    }

    /// Replace RCX.
    #[must_use]
    pub const fn rcx(mut self, v: u64) -> Self {
        self.rcx = v;
        self
    }

    /// Replace RDX.
    #[must_use]
    pub const fn rdx(mut self, v: u64) -> Self {
        self.rdx = v;
        self
    }

    /// Replace R8.
    #[must_use]
    pub const fn r8(mut self, v: u64) -> Self {
        self.r8 = v;
        self
    }

    /// Replace R9.
    #[must_use]
    pub const fn r9(mut self, v: u64) -> Self {
        self.r9 = v;
        self
    }

    /// RAX as a [`LeafWord`].
    #[must_use]
    pub const fn leaf_word(&self) -> LeafWord {
        LeafWord(self.rax)
    }
}

/// SEAMCALL outputs; `rax` is the completion status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
#[allow(missing_docs)] // register names
pub struct SeamcallResult {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
}

impl SeamcallResult {
    /// RAX as a status.
    #[must_use]
    pub const fn status(&self) -> TdxStatus {
        TdxStatus(self.rax)
    }

    /// Registers as they were on input (what the CPU returns for untouched registers).
    #[must_use]
    pub const fn echo(args: &SeamcallArgs) -> Self {
        SeamcallResult {
            rax: args.rax,
            rcx: args.rcx,
            rdx: args.rdx,
            r8: args.r8,
            r9: args.r9,
            r10: args.r10,
            r11: args.r11,
        }
    }
}

const _: () = assert!(core::mem::size_of::<SeamcallArgs>() == 56);
const _: () = assert!(core::mem::size_of::<SeamcallResult>() == 56);
