//! Kernel stacks of the boot CPU.
//!
//! The kernel stack is entered fresh on every trap and syscall (nothing
//! stays on it between kernel entries), so one stack serves every task.
//! Double faults, NMIs and machine checks each have a stack of their own
//! (IST1 to IST3, `gdt`), which the CPU switches to whatever RSP held: an
//! NMI or machine check may arrive where RSP is still the task's.

use core::cell::UnsafeCell;

/// `kmain` runs platform discovery on this stack with a frame of about
/// 74 KiB when the record held 256 CPUs (the platform record and the ACPI
/// parsers' buffers inlined into it); at 64 KiB it overflowed into the
/// neighbouring `.bss` unnoticed. The record grew fourfold with
/// `abi::limits` (about 20 KiB per copy), hence 256 KiB.
pub const KERNEL_STACK_SIZE: usize = 256 * 1024;
pub const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
pub struct Stack<const N: usize>(UnsafeCell<[u8; N]>);

// Safety: a stack is only ever used as raw memory by the CPU that owns it.
unsafe impl<const N: usize> Sync for Stack<N> {}

impl<const N: usize> Stack<N> {
    #[must_use]
    pub fn top(&self) -> u64 {
        self.0.get() as u64 + N as u64
    }
}

/// The boot CPU's kernel stack; the boot stub runs `kmain` on it too.
#[unsafe(no_mangle)]
pub static BOOT_CPU_STACK: Stack<KERNEL_STACK_SIZE> =
    Stack(UnsafeCell::new([0; KERNEL_STACK_SIZE]));

/// The double-fault stack (IST1).
pub static DOUBLE_FAULT_STACK: Stack<IST_STACK_SIZE> = Stack(UnsafeCell::new([0; IST_STACK_SIZE]));

/// The NMI stack (IST2). The stub pushes one register on it; NMIs do not
/// nest (the CPU holds the next one back until the stub's IRETQ), so one
/// page is plenty.
pub static NMI_STACK: Stack<NMI_STACK_SIZE> = Stack(UnsafeCell::new([0; NMI_STACK_SIZE]));
pub const NMI_STACK_SIZE: usize = 4096;

/// The machine-check stack (IST3): the fatal report formats on it.
pub static MACHINE_CHECK_STACK: Stack<IST_STACK_SIZE> = Stack(UnsafeCell::new([0; IST_STACK_SIZE]));
