//! Tasks: their state, the task table, scheduling and the state changes
//! that IPC, faults and restarts make.
//!
//! Invariants:
//! - The table is fixed at build time; index 0 is the supervisor.
//! - A task's `state` only changes through the methods here, which keep
//!   "who is blocked on whom" consistent: a task in `InReply(t)` has had
//!   its message delivered to `t`; a task in `InSend(t)` has not.
//! - Faulted is sticky: only a restart (kernel IPC) clears it, and a
//!   restart bumps the generation, so every stale reference becomes a dead
//!   code, never a fault in someone else.
//! - The kernel runs with interrupts off on one CPU, so the table is only
//!   ever borrowed by one path at a time; [`with_tasks`] checks this.
//! - A task's lease table lives in kernel storage ([`Task::lend`]): it is
//!   copied from the task and checked once, at SEND, and BORROW reads only
//!   that copy, so nothing written to task memory after the SEND (by the
//!   task, or by a server holding a lease over the table) changes what a
//!   server may touch. The copy is emptied at every (re)start.
//! - A task's fields are private to this module. The rest of the kernel
//!   reads a syscall's arguments and writes its results only as words
//!   (`abi::syscall` gives them types), never a saved register by name.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use abi::kipc::Right;
use abi::syscall::{ArgRegs, Received, Response};
use abi::{
    dead_response_code, FaultInfo, Generation, TaskId, TaskIndex, ULease, FAULT_NOTIFICATION,
    MAX_LEASES,
};

use crate::arch::entry::{SavedState, CURRENT_SAVE_END, FRAME_END};
use crate::arch::paging::{phys_to_virt, TablePhys, PAGE_SIZE};
use crate::arch::{cpu, gdt};
use crate::tables::{RegionDesc, TaskDesc, TASK_COUNT};

/// A scheduling priority: lower numbers are more important. Deliberately
/// not `Ord`, so `<` cannot be misread.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Priority(pub u8);

impl Priority {
    #[must_use]
    pub fn is_more_important_than(self, other: Priority) -> bool {
        self.0 < other.0
    }
}

/// What a healthy task is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SchedState {
    Stopped,
    Runnable,
    InSend(TaskId),
    InReply(TaskId),
    /// `Some(t)`: a closed receive from `t` (or `TaskId::KERNEL` for
    /// notifications only).
    InRecv(Option<TaskId>),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    Healthy(SchedState),
    Faulted {
        fault: FaultInfo,
        original: SchedState,
    },
}

/// An armed timer: when the tick count reaches `deadline`, the kernel
/// posts `notifications` to the task and disarms it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    pub deadline: u64,
    pub notifications: u64,
}

pub struct Task {
    /// Registers while not running. Kept first: the entry stubs address it.
    save: SavedState,
    state: TaskState,
    generation: Generation,
    /// Posted, not yet delivered notification bits.
    notifications: u64,
    /// While in RECV: which notification bits end the wait.
    recv_mask: u64,
    timer: Option<Timer>,
    desc: &'static TaskDesc,
    pml4: TablePhys,
    panic_message: [u8; abi::PANIC_MESSAGE_MAX],
    panic_len: usize,
    /// The leases of the task's last SEND, copied and checked at SEND.
    leases: [ULease; MAX_LEASES],
    lease_count: usize,
    /// The task's index in the table (its bit in [`RUNNABLE`] and
    /// [`SENDING`]), set by [`install`].
    index: usize,
}

/// Bit `i` set: task `i` is healthy and runnable. Kept equal to the states
/// by [`Task::set_state`], the only writer of a state, so the scheduler
/// visits only these tasks ([`select`]).
static RUNNABLE: AtomicU64 = AtomicU64::new(0);
/// Bit `i` set: task `i` is healthy and blocked in SEND (its message not
/// yet delivered). Kept like [`RUNNABLE`]; RECV looks for senders only here.
static SENDING: AtomicU64 = AtomicU64::new(0);

/// Sets or clears `bit` in `set`. (Only the boot CPU runs the task table,
/// borrowed exclusively: relaxed plain loads and stores suffice.)
#[inline(always)]
fn update_set(set: &AtomicU64, bit: u64, on: bool) {
    let old = set.load(Ordering::Relaxed);
    set.store(if on { old | bit } else { old & !bit }, Ordering::Relaxed);
}

/// The tasks blocked in SEND, as bits (see [`SENDING`]).
#[inline(always)]
#[must_use]
pub fn sending_set() -> u64 {
    SENDING.load(Ordering::Relaxed)
}

impl Task {
    #[must_use]
    pub fn new(desc: &'static TaskDesc, pml4: TablePhys) -> Self {
        Task {
            save: SavedState::default(),
            state: TaskState::Healthy(SchedState::Stopped),
            generation: Generation(0),
            notifications: 0,
            recv_mask: 0,
            timer: None,
            desc,
            pml4,
            panic_message: [0; abi::PANIC_MESSAGE_MAX],
            panic_len: 0,
            leases: [ULease::default(); MAX_LEASES],
            lease_count: 0,
            index: 0,
        }
    }

    /// The one writer of `state`: keeps [`RUNNABLE`] and [`SENDING`] equal
    /// to the states.
    #[inline(always)]
    fn set_state(&mut self, s: TaskState) {
        self.state = s;
        let bit = 1u64 << self.index;
        update_set(
            &RUNNABLE,
            bit,
            matches!(s, TaskState::Healthy(SchedState::Runnable)),
        );
        update_set(
            &SENDING,
            bit,
            matches!(s, TaskState::Healthy(SchedState::InSend(_))),
        );
    }

    #[must_use]
    pub fn state(&self) -> TaskState {
        self.state
    }

    #[must_use]
    pub fn generation(&self) -> Generation {
        self.generation
    }

    #[must_use]
    pub fn priority(&self) -> Priority {
        Priority(self.desc.priority)
    }

    #[must_use]
    pub fn is_runnable(&self) -> bool {
        matches!(self.state, TaskState::Healthy(SchedState::Runnable))
    }

    /// Healthy and blocked sending to `to` (not yet delivered).
    #[must_use]
    pub fn is_sending_to(&self, to: TaskId) -> bool {
        matches!(self.state, TaskState::Healthy(SchedState::InSend(t)) if t == to)
    }

    /// Healthy and waiting for `from`'s reply (its message was delivered).
    #[must_use]
    pub fn is_awaiting_reply_from(&self, from: TaskId) -> bool {
        matches!(self.state, TaskState::Healthy(SchedState::InReply(t)) if t == from)
    }

    /// The task's state in the ABI's terms.
    #[must_use]
    pub fn abi_state(&self) -> abi::TaskState {
        match self.state {
            TaskState::Faulted { fault, .. } => abi::TaskState::Faulted(fault),
            TaskState::Healthy(s) => match s {
                SchedState::Stopped => abi::TaskState::Stopped,
                SchedState::Runnable => abi::TaskState::Runnable,
                SchedState::InSend(t) => abi::TaskState::InSend(t),
                SchedState::InReply(t) => abi::TaskState::InReply(t),
                SchedState::InRecv(t) => abi::TaskState::InRecv(t),
            },
        }
    }

    /// Changes the scheduling state of a healthy task.
    ///
    /// # Panics
    /// If the task is faulted: only a restart may leave that state, and a
    /// caller trying otherwise is a kernel bug.
    #[inline(always)]
    pub fn set_healthy_state(&mut self, s: SchedState) {
        assert!(
            matches!(self.state, TaskState::Healthy(_)),
            "state change of a faulted task"
        );
        self.set_state(TaskState::Healthy(s));
    }

    /// Marks the task as waiting in RECV for notifications in `mask` or a
    /// message from `from`.
    #[inline(always)]
    pub fn block_in_recv(&mut self, from: Option<TaskId>, mask: u64) {
        self.recv_mask = mask;
        self.set_healthy_state(SchedState::InRecv(from));
    }

    /// The pending bits in `mask`, left pending.
    #[must_use]
    pub fn pending_notifications(&self, mask: u64) -> u64 {
        self.notifications & mask
    }

    /// Takes the pending bits in `mask` out of the notification word.
    pub fn take_notifications(&mut self, mask: u64) -> u64 {
        let fired = self.notifications & mask;
        self.notifications &= !fired;
        fired
    }

    /// Records the panic message (already copied out of task memory).
    pub fn set_panic_message(&mut self, message: &[u8]) {
        let n = message.len().min(self.panic_message.len());
        self.panic_message[..n].copy_from_slice(&message[..n]);
        self.panic_len = n;
    }

    #[must_use]
    pub fn panic_message(&self) -> &[u8] {
        &self.panic_message[..self.panic_len]
    }

    /// Whether the manifest gives this task a SEND edge to task `target`
    /// (one of its task slots).
    #[must_use]
    pub fn may_send_to(&self, target: usize) -> bool {
        target < abi::MAX_TASKS && self.desc.send_to & (1 << target) != 0
    }

    /// Whether the manifest lets this task POST every bit of `bits` to task
    /// `target` (posting to oneself is the caller's business and is
    /// checked by the caller of this).
    #[must_use]
    pub fn may_post(&self, target: usize, bits: u64) -> bool {
        self.desc
            .posts
            .iter()
            .any(|&(t, allowed)| usize::from(t) == target && bits & !allowed == 0)
    }

    /// Records the leases of a SEND, already copied out of task memory and
    /// checked against this task's regions. At most [`MAX_LEASES`] are
    /// kept (the SEND refuses more before it gets here).
    pub fn lend(&mut self, leases: &[ULease]) {
        let n = leases.len().min(MAX_LEASES);
        self.leases[..n].copy_from_slice(&leases[..n]);
        self.lease_count = n;
    }

    /// How many leases the last SEND carried.
    #[must_use]
    pub fn lease_count(&self) -> usize {
        self.lease_count
    }

    /// Lease `index` of the last SEND, as checked at that SEND.
    #[must_use]
    pub fn lease(&self, index: u64) -> Option<ULease> {
        let i = usize::try_from(index).ok()?;
        self.leases[..self.lease_count].get(i).copied()
    }

    /// The task's name in the manifest.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.desc.name
    }

    /// The task's durable memory as `(base, size)` (size 0: none). Task
    /// memory is identity-mapped, so `base` is also its physical address.
    #[must_use]
    pub fn durable(&self) -> (u64, u64) {
        (self.desc.durable_base, self.desc.durable_size)
    }

    /// The task's memory regions, sorted by base.
    #[must_use]
    pub fn regions(&self) -> &'static [RegionDesc] {
        self.desc.regions
    }

    /// The task's RAM (data, bss, stack): `(base, size)`; startup checked
    /// that its regions cover it read-write.
    #[inline(always)]
    #[must_use]
    pub fn ram(&self) -> (u64, u64) {
        (self.desc.ram_base, self.desc.ram_size)
    }

    /// Whether the manifest grants this task capability `bit`
    /// (`abi::capability`).
    #[must_use]
    pub fn has_capability(&self, bit: u32) -> bool {
        self.desc.capabilities & bit != 0
    }

    /// Whether the manifest grants this task kernel-IPC right `right` over
    /// task `target`.
    #[must_use]
    pub fn holds_right(&self, right: Right, target: usize) -> bool {
        target < abi::MAX_TASKS && self.desc.rights[right as usize] & (1 << target) != 0
    }

    /// Whether the manifest starts this task at boot (rather than holding
    /// it for its supervisor).
    #[must_use]
    pub fn starts_at_boot(&self) -> bool {
        self.desc.start
    }

    /// The unmapped page below the task's stack: a fault there is a stack
    /// overflow.
    #[must_use]
    pub fn stack_guard_page(&self) -> core::ops::Range<u64> {
        let base = self.desc.stack_base;
        base.saturating_sub(PAGE_SIZE)..base
    }

    /// The armed timer, if any.
    #[must_use]
    pub fn timer(&self) -> Option<Timer> {
        self.timer
    }

    /// Arms (`Some`) or disarms the timer.
    pub fn set_timer(&mut self, timer: Option<Timer>) {
        self.timer = timer;
    }

    /// If the timer's deadline is at or before `now`, disarms it and
    /// returns the bits it posts.
    pub fn take_expired_timer(&mut self, now: u64) -> Option<u64> {
        let t = self.timer.filter(|t| t.deadline <= now)?;
        self.timer = None;
        Some(t.notifications)
    }

    /// The save area the entry stubs resume this task from.
    #[must_use]
    pub fn save_area(&self) -> *const SavedState {
        core::ptr::addr_of!(self.save)
    }

    /// Where the task resumes (for a fault: the faulting instruction).
    #[must_use]
    pub fn saved_instruction_pointer(&self) -> u64 {
        self.save.instruction_pointer()
    }

    /// Records that the task entered the kernel by SYSCALL (`true`) or by
    /// an interrupt or exception.
    #[inline]
    pub fn set_entered_by_syscall(&mut self, by_syscall: bool) {
        self.save.set_entered_by_syscall(by_syscall);
    }

    /// The number of the syscall the task made (or is blocked in).
    #[inline]
    #[must_use]
    pub fn syscall_number(&self) -> u64 {
        self.save.syscall_number()
    }

    /// The argument words of the syscall the task made (or is blocked in),
    /// for an `abi::syscall` `*Args::from_regs`.
    #[inline]
    #[must_use]
    pub fn syscall_args(&self) -> ArgRegs {
        self.save.syscall_args()
    }

    /// Sets the result words the task's syscall returns with, from an
    /// `abi::syscall` result's `to_regs`.
    #[inline]
    pub fn set_syscall_results<const N: usize>(&mut self, words: [u64; N]) {
        self.save.set_syscall_results(words);
    }

    /// Completes the task's syscall with a response code and value.
    #[inline]
    pub fn respond(&mut self, response: Response) {
        self.set_syscall_results(response.to_regs());
    }
}

/// The task table: written element by element during startup, then
/// borrowed through [`with_tasks`] only.
pub struct Table {
    tasks: UnsafeCell<MaybeUninit<[Task; TASK_COUNT]>>,
    installed: AtomicUsize,
    borrowed: AtomicBool,
}

// Safety: only the boot CPU touches the table, with interrupts off, and
// `with_tasks` refuses nested borrows.
unsafe impl Sync for Table {}

/// `borrowed` starts set: the table opens (the flag clears) only when
/// [`install`] has written its last task, so the one test in
/// [`with_tasks`] refuses both a nested borrow and a borrow before startup
/// finished.
pub static TABLE: Table = Table {
    tasks: UnsafeCell::new(MaybeUninit::uninit()),
    installed: AtomicUsize::new(0),
    borrowed: AtomicBool::new(true),
};

/// The task on the CPU (the one whose save area is current).
pub static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// Installs the next task, in table order, during startup.
///
/// # Panics
/// If more than `TASK_COUNT` tasks are installed.
pub fn install(mut task: Task) {
    let i = TABLE.installed.load(Ordering::Relaxed);
    task.index = i;
    // A task is installed stopped; its first state change sets its bits.
    debug_assert!(matches!(
        task.state,
        TaskState::Healthy(SchedState::Stopped)
    ));
    // TASK_COUNT is generated; it is 0 in an unconfigured (lint-only) build.
    #[allow(clippy::absurd_extreme_comparisons)]
    let fits = i < TASK_COUNT;
    assert!(fits, "too many tasks installed");
    // Safety: single-threaded startup; `i < TASK_COUNT` keeps the write in
    // bounds, and each element is written exactly once, in order.
    unsafe {
        (*TABLE.tasks.get())
            .as_mut_ptr()
            .cast::<Task>()
            .add(i)
            .write(task)
    };
    TABLE.installed.store(i + 1, Ordering::Release);
    if i + 1 == TASK_COUNT {
        // Every element is written: open the table (see `TABLE`).
        TABLE.borrowed.store(false, Ordering::Release);
    }
}

/// Runs `f` with exclusive access to the task table.
///
/// # Panics
/// On a nested borrow, or before every task is installed; both would be
/// kernel bugs. One test covers both: the table stays closed (`borrowed`
/// set) until the last task is installed.
#[inline(always)]
pub fn with_tasks<R>(f: impl FnOnce(&mut [Task]) -> R) -> R {
    if TABLE.borrowed.swap(true, Ordering::Acquire) {
        table_unavailable();
    }
    // Safety: the flag was clear, so every element was written by
    // `install` (which clears it only after the last one), and setting it
    // guarantees this is the only live reference.
    let tasks = unsafe { (*TABLE.tasks.get()).assume_init_mut() };
    let r = f(tasks);
    TABLE.borrowed.store(false, Ordering::Release);
    r
}

/// The failure of [`with_tasks`], out of line.
#[cold]
#[inline(never)]
fn table_unavailable() -> ! {
    let installed = TABLE.installed.load(Ordering::Acquire);
    if installed == TASK_COUNT {
        panic!("task table borrowed twice");
    }
    panic!("task table used before startup finished ({installed} of {TASK_COUNT} tasks installed)");
}

/// The id (with current generation) of task `index`.
#[must_use]
pub fn current_id(tasks: &[Task], index: usize) -> TaskId {
    TaskId::new(TaskIndex(index as u16), tasks[index].generation)
}

/// Outcome of checking a task id named by a caller.
pub enum IdCheck {
    /// Live; the index.
    Live(usize),
    /// The index exists but the generation is stale: answer with this
    /// dead code.
    Dead(u32),
    /// No such index: a usage error by the caller.
    OutOfRange,
}

#[must_use]
pub fn check_id(tasks: &[Task], id: TaskId) -> IdCheck {
    let i = usize::from(id.index().0);
    match tasks.get(i) {
        None => IdCheck::OutOfRange,
        Some(t) if t.generation == id.generation() => IdCheck::Live(i),
        Some(t) => IdCheck::Dead(dead_response_code(t.generation)),
    }
}

/// The scheduler's masks for the manifest's fixed priorities, built at
/// compile time.
// TASK_COUNT is generated; it is 0 in an unconfigured (lint-only) build.
#[allow(clippy::absurd_extreme_comparisons)]
static RANKS: kerncore::sched::Ranks = {
    let mut priorities = [0u8; TASK_COUNT];
    let mut i = 0;
    while i < TASK_COUNT {
        priorities[i] = crate::tables::TASK_DESCS[i].priority;
        i += 1;
    }
    kerncore::sched::Ranks::new(&priorities)
};

/// Picks the most important runnable task, round-robin among equals
/// starting after `previous`; `None` if nothing is runnable.
///
/// Normally `idle` is always runnable, but a task holding `restart` or
/// `fault` rights over idle can stop or fault it; then the kernel halts in
/// [`halt_until_runnable`] instead of running a task.
///
/// Visits only the runnable tasks ([`RUNNABLE`]), by the rule of
/// `kerncore::sched::pick`, computed by `pick_ranked` from the masks of the
/// fixed priorities (both host-tested against the scan of every index).
#[inline]
#[must_use]
pub fn select(_tasks: &[Task], previous: usize) -> Option<usize> {
    kerncore::sched::pick_ranked(RUNNABLE.load(Ordering::Relaxed), previous, &RANKS)
}

/// Whether a task other than `index` is runnable.
#[inline(always)]
#[must_use]
pub fn any_runnable_but(index: usize) -> bool {
    RUNNABLE.load(Ordering::Relaxed) & !(1u64 << index) != 0
}

/// Halts the CPU in the kernel until an interrupt (a timer, an IRQ) makes
/// some task runnable, then switches to it and returns its save area.
/// Must be called with the task table not borrowed: the interrupts that
/// end each halt are handled in ring 0 and need it.
#[must_use]
pub fn halt_until_runnable(previous: usize) -> *const SavedState {
    loop {
        cpu::wait_for_interrupt();
        let chosen = with_tasks(|tasks| {
            let next = select(tasks, previous)?;
            switch_to(tasks, next);
            Some(tasks[next].save_area())
        });
        if let Some(save) = chosen {
            return save;
        }
    }
}

/// Makes `next` the task on the CPU: its address space, its I/O ports and
/// the save area the entry stubs use. Staying on the same task changes
/// nothing: only [`load`] writes the save area, CR3 and `CURRENT`, always
/// together, so they already name `next`.
#[inline]
pub fn switch_to(tasks: &mut [Task], next: usize) {
    let prev = CURRENT.load(Ordering::Relaxed);
    if prev != next {
        for &(first, count) in tasks[prev].desc.ioports {
            gdt::set_io_permission(first, count, false);
        }
        load(tasks, next);
    }
}

/// Loads task `index`'s address space and I/O ports unconditionally (the
/// first switch at boot, and every real switch).
pub fn load(tasks: &mut [Task], index: usize) {
    for &(first, count) in tasks[index].desc.ioports {
        gdt::set_io_permission(first, count, true);
    }
    // Safety: every task's PML4 maps the kernel (built by
    // `KernelSpace::new_task_space`).
    unsafe { cpu::write_cr3(tasks[index].pml4.0) };
    CURRENT.store(index, Ordering::Relaxed);
    set_save_area(tasks, index);
}

fn set_save_area(tasks: &mut [Task], index: usize) {
    let save_end = tasks[index].save_area() as u64 + FRAME_END;
    gdt::set_rsp0(save_end);
    CURRENT_SAVE_END.store(save_end, Ordering::Relaxed);
}

/// ORs `bits` into task `index`'s notifications and wakes it if it is
/// waiting for them. Returns whether it woke.
pub fn post(tasks: &mut [Task], index: usize, bits: u64) -> bool {
    let t = &mut tasks[index];
    t.notifications |= bits;
    if let TaskState::Healthy(SchedState::InRecv(_)) = t.state {
        let fired = t.take_notifications(t.recv_mask);
        if fired != 0 {
            deliver_notification(t, fired);
            return true;
        }
    }
    false
}

/// Completes a RECV with a notification message.
pub fn deliver_notification(t: &mut Task, fired: u64) {
    t.set_syscall_results(Received::notification(fired).to_regs());
    t.set_healthy_state(SchedState::Runnable);
}

/// Faults task `index` and tells the supervisor.
///
/// A fault in the supervisor itself cannot be supervised: the kernel
/// fails loudly instead of running on unsupervised.
pub fn force_fault(tasks: &mut [Task], index: usize, fault: FaultInfo) {
    let t = &mut tasks[index];
    let original = match t.state {
        TaskState::Healthy(s) => s,
        // A second fault keeps the first's original state.
        TaskState::Faulted { original, .. } => original,
    };
    t.set_state(TaskState::Faulted { fault, original });
    // The saved pc lets the host name the function and line (xtask decode).
    crate::kprintln!(
        "kernel: task {} faulted: {:?} (task {index} pc={:#x})",
        t.desc.name,
        fault,
        t.save.instruction_pointer()
    );
    if index == 0 {
        panic!("the supervisor ({}) faulted: {:?}", t.desc.name, fault);
    }
    post(tasks, 0, FAULT_NOTIFICATION);
}

/// Resets a task's memory and registers: RAM zeroed, `.data` re-copied,
/// registers at the entry point, no notifications or timer. The
/// generation is not touched, and neither is durable memory
/// (`TaskDesc::durable_*`, zeroed once at boot by `startup`): it keeps its
/// contents across every restart by design.
pub fn reinitialize(t: &mut Task, start: bool) {
    let d = t.desc;
    // Safety: `ram_*` and `data_*` describe this task's own memory (checked
    // at startup to be RAM the image owns, outside the kernel); the direct
    // map covers it, and no one else uses it while the task is reset.
    unsafe {
        core::ptr::write_bytes(phys_to_virt(d.ram_base), 0, d.ram_size as usize);
        core::ptr::copy_nonoverlapping(
            phys_to_virt(d.data_load),
            phys_to_virt(d.data_vma),
            d.data_len as usize,
        );
    }
    t.save = SavedState::initial(d.entry, d.stack_top);
    t.notifications = 0;
    t.recv_mask = 0;
    t.timer = None;
    t.panic_len = 0;
    t.lease_count = 0;
    t.set_state(TaskState::Healthy(if start {
        SchedState::Runnable
    } else {
        SchedState::Stopped
    }));
}

/// Restarts task `index` with a new generation. Every task blocked on its
/// old incarnation is woken with a dead code carrying the new generation.
pub fn restart(tasks: &mut [Task], index: usize, start: bool) {
    let old = current_id(tasks, index);
    tasks[index].generation = tasks[index].generation.next();
    reinitialize(&mut tasks[index], start);
    if let Some((who, bits)) = crate::tables::RESTART_NOTIFY {
        if usize::from(who) != index {
            post(tasks, usize::from(who), bits);
        }
    }
    let code = dead_response_code(tasks[index].generation);
    for (i, t) in tasks.iter_mut().enumerate() {
        if i == index {
            continue;
        }
        if let TaskState::Healthy(
            SchedState::InSend(p) | SchedState::InReply(p) | SchedState::InRecv(Some(p)),
        ) = t.state
        {
            if p == old {
                t.respond(Response::code(code));
                t.set_healthy_state(SchedState::Runnable);
            }
        }
    }
}
