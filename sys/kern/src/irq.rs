//! Interrupts bound to tasks.
//!
//! The manifest binds ISA IRQs to (task, notification bits); each reaches
//! the IOAPIC input, trigger and polarity the MADT's overrides give. When an
//! input fires the kernel masks it, marks it pending and posts the bits;
//! the task handles the device and re-enables the input with IRQ_CONTROL.
//! A task may only control inputs bound to itself: naming bits with no
//! binding is a usage fault.

use core::sync::atomic::{AtomicU32, Ordering};

use abi::syscall::{IrqControlArgs, IrqStatus, IrqStatusArgs, Response};
use abi::UsageError;

use crate::arch::apic;
use crate::outcome::{Next, UserError};
use crate::tables::IRQS;
use crate::task::{self, Task};

/// Per-input enabled / pending bits (IOAPIC inputs 0..24).
static ENABLED: AtomicU32 = AtomicU32::new(0);
static PENDING: AtomicU32 = AtomicU32::new(0);

/// APIC id of the boot CPU, where every input is routed.
pub static BOOT_APIC_ID: AtomicU32 = AtomicU32::new(0);

/// Programs ISA IRQ `irq` at its IOAPIC input (per the MADT overrides).
fn route(irq: u8, unmasked: bool) {
    let r = crate::discovery::irq_route(irq);
    apic::set_irq(
        irq,
        r.gsi,
        r.level,
        r.active_low,
        unmasked,
        BOOT_APIC_ID.load(Ordering::Relaxed),
    );
}

/// Masks every bound input at boot.
pub fn init() {
    for b in IRQS {
        route(b.irq, false);
    }
}

/// An input fired: mask it, remember it, tell its task.
pub fn fire(tasks: &mut [Task], irq: u8) -> bool {
    let mut woke = false;
    for b in IRQS.iter().filter(|b| b.irq == irq) {
        route(irq, false);
        ENABLED.fetch_and(!(1 << irq), Ordering::Relaxed);
        PENDING.fetch_or(1 << irq, Ordering::Relaxed);
        woke |= task::post(tasks, usize::from(b.task), b.mask);
    }
    woke
}

/// IRQ_CONTROL: (un)mask the inputs bound to the caller's bits `mask`.
pub fn control(
    tasks: &mut [Task],
    caller: usize,
    args: &IrqControlArgs,
) -> Result<Next, UserError> {
    let (mask, enable) = (args.mask, args.enable);
    let mut found = false;
    for b in IRQS
        .iter()
        .filter(|b| usize::from(b.task) == caller && b.mask & mask != 0)
    {
        found = true;
        if enable {
            PENDING.fetch_and(!(1 << b.irq), Ordering::Relaxed);
            ENABLED.fetch_or(1 << b.irq, Ordering::Relaxed);
        } else {
            ENABLED.fetch_and(!(1 << b.irq), Ordering::Relaxed);
        }
        route(b.irq, enable);
    }
    if !found {
        return Err(UsageError::NoIrq.into());
    }
    tasks[caller].respond(Response::OK);
    Ok(Next::Same)
}

/// IRQ_STATUS: which inputs bound to the caller's bits `mask` are enabled
/// and pending, in those bits.
pub fn status(tasks: &mut [Task], caller: usize, args: &IrqStatusArgs) -> Result<Next, UserError> {
    let mask = args.mask;
    let (mut enabled, mut pending, mut found) = (0, 0, false);
    for b in IRQS
        .iter()
        .filter(|b| usize::from(b.task) == caller && b.mask & mask != 0)
    {
        found = true;
        if ENABLED.load(Ordering::Relaxed) & (1 << b.irq) != 0 {
            enabled |= b.mask;
        }
        if PENDING.load(Ordering::Relaxed) & (1 << b.irq) != 0 {
            pending |= b.mask;
        }
    }
    if !found {
        return Err(UsageError::NoIrq.into());
    }
    tasks[caller].set_syscall_results(IrqStatus { enabled, pending }.to_regs());
    Ok(Next::Same)
}
