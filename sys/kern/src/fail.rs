//! What happens when the kernel itself cannot go on.
//!
//! A kernel panic or a boot failure prints its reason on the console and
//! then, in images that name QEMU's isa-debug-exit port, exits QEMU with a
//! status the host tooling reads as "kernel failure" (never the success
//! code); on hardware it halts. Task faults never come here.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::cpu;

/// Value written to isa-debug-exit on a kernel failure: QEMU exits with
/// (3 << 1) | 1 = 7.
pub const EXIT_KERNEL_FAILURE: u8 = 3;

static FAILING: AtomicBool = AtomicBool::new(false);

/// Exits QEMU through isa-debug-exit with `value` if the image allows it;
/// returns if it does not.
pub fn qemu_exit(value: u8) {
    if let Some(port) = crate::startup::DEBUG_EXIT_PORT {
        // Safety: the manifest names this port as QEMU's isa-debug-exit
        // device; writing it ends the virtual machine.
        unsafe { cpu::outb(port, value) }
    }
}

fn die(kind: &str, args: fmt::Arguments<'_>) -> ! {
    if FAILING.swap(true, Ordering::SeqCst) {
        // A failure while reporting a failure: stop quietly.
        cpu::halt_forever();
    }
    crate::kprintln!("\n*** KERNEL {kind}: {args}");
    qemu_exit(EXIT_KERNEL_FAILURE);
    cpu::halt_forever()
}

/// Stops the machine because boot cannot complete.
pub fn boot_failure(args: fmt::Arguments<'_>) -> ! {
    die("BOOT FAILURE", args)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    die("PANIC", format_args!("{info}"))
}
