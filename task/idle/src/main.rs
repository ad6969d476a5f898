//! idle: runs when nothing else can, and asks the kernel to halt the CPU
//! until the next interrupt (x86 has no unprivileged halt).

#![no_std]
#![no_main]

#[unsafe(no_mangle)]
pub fn main() -> ! {
    loop {
        userlib::sys_wait_for_interrupt();
    }
}
