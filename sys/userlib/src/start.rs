//! Task entry and panic handling (target only).
//!
//! The kernel starts a task at `_start` with RSP at the top of its stack and
//! every other register zero; it has already zeroed the task's RAM and
//! copied the initial `.data` image, so no runtime copying is needed here.
//! A panic becomes the PANIC syscall carrying the formatted message.

use core::fmt::Write;

use crate::log::LineBuf;

extern "Rust" {
    /// The task's entry point, defined by each task crate as
    /// `#[unsafe(no_mangle)] fn main() -> !`.
    fn main() -> !;
}

/// First instruction of every task.
#[unsafe(naked)]
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.start")]
extern "C" fn _start() -> ! {
    // The System V ABI wants RSP ≡ 8 (mod 16) at a function's first
    // instruction, i.e. 16-aligned before the call pushes a return address.
    core::arch::naked_asm!(
        "and rsp, -16",
        "call {entry}",
        "ud2",
        entry = sym call_main,
    )
}

extern "C" fn call_main() -> ! {
    // Safety: `main` is provided by the task crate with exactly this
    // signature; the link fails if it is missing.
    unsafe { main() }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = LineBuf::new();
    if cfg!(feature = "panic-messages") {
        let _ = write!(line, "{}", info);
    }
    crate::sys_panic(line.as_bytes())
}
