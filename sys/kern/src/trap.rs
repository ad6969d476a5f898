//! Interrupts and exceptions, after the entry stubs.
//!
//! From a task: an exception faults the task (never the kernel) and
//! notifies the supervisor; an interrupt is handled and may let a more
//! important task run. In the kernel: only interrupts during the idle halt
//! are expected; an exception there is a kernel bug and stops the machine.
//!
//! NMIs and machine checks never come here (their gates go to
//! `arch::nmi`), so neither can be taken for a task's fault; the NMIs that
//! `arch::nmi` counted are reported at the next timer tick, where the
//! console lock is free to take.

use core::sync::atomic::Ordering;

use abi::FaultInfo;

use crate::arch::entry::SavedState;
use crate::arch::idt::{
    IRQ_BASE_VECTOR, IRQ_COUNT, MACHINE_CHECK, NMI, SPURIOUS_VECTOR, TIMER_VECTOR,
};
use crate::arch::smp::DONE_VECTOR;
use crate::arch::{apic, cpu, nmi};
use crate::task::{self, force_fault, with_tasks, Task, CURRENT};
use crate::{irq, time};

const DIVIDE_ERROR: u32 = 0;
const INVALID_OPCODE: u32 = 6;
const GENERAL_PROTECTION: u32 = 13;
const PAGE_FAULT: u32 = 14;

/// Handles an interrupt; returns whether a task woke.
fn interrupt(tasks: &mut [Task], vector: u32) -> Option<bool> {
    if vector == u32::from(TIMER_VECTOR) {
        apic::eoi();
        report_nmis();
        // A completion whose interrupt was lost is seen one tick late.
        let settled = crate::seam_async::poll(tasks);
        return Some(time::tick(tasks) | settled);
    }
    if vector == u32::from(DONE_VECTOR) {
        apic::eoi();
        return Some(crate::seam_async::poll(tasks));
    }
    if vector == u32::from(SPURIOUS_VECTOR) {
        // Spurious interrupts take no EOI.
        return Some(false);
    }
    let base = u32::from(IRQ_BASE_VECTOR);
    if (base..base + u32::from(IRQ_COUNT)).contains(&vector) {
        let woke = irq::fire(tasks, (vector - base) as u8);
        apic::eoi();
        return Some(woke);
    }
    None
}

/// Says on the console that NMIs arrived since the last report.
fn report_nmis() {
    if let Some(n) = nmi::take_unreported() {
        crate::kprintln!(
            "kernel: NMI received ({} total: {} in a task, {} in the kernel, {} on other CPUs, {} with SERR#/IOCHK# up)",
            n.total(),
            n.in_task,
            n.in_kernel,
            n.on_other_cpus,
            n.error_lines,
        );
    }
}

fn fault_for(t: &Task, vector: u32, error_code: u64, rip: u64) -> FaultInfo {
    match vector {
        // Not the task's doing, and their gates bypass this path: reaching
        // here means the IDT is wrong, which must not cost a task its life.
        v if v == u32::from(NMI) || v == u32::from(MACHINE_CHECK) => {
            panic!("vector {v} reached the trap path; its gate must go to arch::nmi")
        }
        DIVIDE_ERROR => FaultInfo::DivideError { rip },
        INVALID_OPCODE => FaultInfo::IllegalInstruction { rip },
        GENERAL_PROTECTION => FaultInfo::GeneralProtection { error_code },
        PAGE_FAULT => {
            let address = cpu::read_cr2();
            if t.stack_guard_page().contains(&address) {
                FaultInfo::StackOverflow { address }
            } else {
                FaultInfo::MemoryAccess {
                    address,
                    error_code,
                }
            }
        }
        v => FaultInfo::Exception {
            vector: v as u8,
            error_code,
        },
    }
}

/// Called by the trap stub for a trap taken in ring 3, with the task's
/// registers saved in its save area. Returns the save area to resume.
pub extern "C" fn trap_from_task(
    vector: u32,
    error_code: u64,
    _frame: *mut SavedState,
) -> *const SavedState {
    cpu::check_entry_flags();
    let current = CURRENT.load(Ordering::Relaxed);
    let resume = with_tasks(|tasks| -> Option<*const SavedState> {
        tasks[current].set_entered_by_syscall(false);
        let reschedule = match interrupt(tasks, vector) {
            // Without `[kernel.chaos]` the test is a constant `false`.
            Some(woke)
                if crate::tables::CHAOS_TASK == Some(current)
                    && vector == u32::from(TIMER_VECTOR)
                    && tasks[current].is_runnable() =>
            {
                let pc = tasks[current].saved_instruction_pointer();
                match crate::inject::chaos(kerncore::inject::ChaosEvent::Tick, pc) {
                    Some((cause, ordinal)) => {
                        crate::inject::chaos_kill(tasks, current, cause, ordinal);
                        true
                    }
                    None => woke,
                }
            }
            Some(woke) => woke,
            None => {
                let rip = tasks[current].saved_instruction_pointer();
                let fault = fault_for(&tasks[current], vector, error_code, rip);
                force_fault(tasks, current, fault);
                true
            }
        };
        // Without a reschedule the interrupted task resumes and its save
        // area is already the current one.
        let next = if reschedule {
            let next = task::select(tasks, current)?;
            task::switch_to(tasks, next);
            next
        } else {
            current
        };
        Some(tasks[next].save_area())
    });
    // Nothing runnable (idle stopped or faulted): halt in the kernel.
    resume.unwrap_or_else(|| task::halt_until_runnable(current))
}

/// Called by the trap stub for a trap taken in ring 0 (only expected while
/// halting in WaitForInterrupt).
pub extern "C" fn trap_in_kernel(vector: u32, error_code: u64, frame: *mut SavedState) {
    if vector >= 32 {
        // The halted syscall reschedules when it resumes, so whether a
        // task woke does not matter here.
        let handled = with_tasks(|tasks| interrupt(tasks, vector));
        if handled.is_some() {
            return;
        }
    }
    // Safety: the stub passes a pointer to the frame it just pushed, and
    // pops it (with any change made here) when we return.
    let rip = unsafe { (*frame).instruction_pointer() };
    if let Some((resume, code)) = crate::arch::vmx::fixup(rip, vector) {
        // Safety: as above.
        unsafe { (*frame).resume_at_with_status(resume, code) };
        return;
    }
    panic!(
        "exception {vector} in kernel mode at rip={rip:#x} error={error_code:#x} cr2={:#x}",
        cpu::read_cr2()
    );
}
