//! What happens when the kernel itself cannot go on.
//!
//! A kernel panic or a boot failure prints its reason on the console and
//! then, in images that name QEMU's isa-debug-exit port, exits QEMU with a
//! status the host tooling reads as "kernel failure" (never the success
//! code); on hardware it halts. Task faults never come here.
//!
//! The end of a test run on a machine without isa-debug-exit also ends
//! here ([`end_run`], asked for by the supervisor): a reset through the
//! FADT's reset register, then the keyboard controller's reset line, then
//! a triple fault, each tried when the one before did not take; or a halt,
//! as `[kernel] on-finish` says.

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
    if let Some(port) = crate::config::DEBUG_EXIT_PORT {
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

/// Spins long enough for a reset request to take effect.
fn settle() {
    for _ in 0..10_000_000u32 {
        core::hint::spin_loop();
    }
}

/// An IDT with no entries: the next exception becomes a triple fault.
#[repr(C, packed)]
struct NullIdt {
    limit: u16,
    base: u64,
}

static NULL_IDT: NullIdt = NullIdt { limit: 0, base: 0 };

/// `config::ON_FINISH` values.
const STAY: u8 = 0;
const HALT: u8 = 1;

/// Ends the run (the supervisor's `EndRun`): resets or halts the machine,
/// or returns when the image is to stay up.
pub fn end_run() {
    let how = crate::config::ON_FINISH;
    if how == STAY {
        return;
    }
    crate::kprintln!(
        "kernel: the run is over; {}",
        if how == HALT { "halting" } else { "resetting" }
    );
    if how == HALT {
        cpu::halt_forever();
    }
    match crate::discovery::fadt().and_then(|f| f.reset) {
        Some(r) if r.space == platform::fadt::AddressSpace::SystemIo => {
            if let Ok(port) = u16::try_from(r.address) {
                // Safety: the firmware's FADT names this port as the reset
                // register and `value` as what resets the machine.
                unsafe { cpu::outb(port, r.value) };
                settle();
            }
        }
        Some(r) => {
            crate::kprintln!("kernel: FADT reset register {r:?} is not an I/O port; skipped")
        }
        None => {}
    }
    // Safety: 0xFE to the 8042 command port pulses the CPU reset line.
    unsafe { cpu::outb(0x64, 0xFE) };
    settle();
    // Safety: with an empty IDT the breakpoint cannot be delivered, which
    // is a triple fault: the CPU resets. Nothing runs after it.
    unsafe {
        core::arch::asm!(
            "lidt [{}]",
            "int3",
            in(reg) core::ptr::addr_of!(NULL_IDT),
            options(nostack)
        );
    }
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
