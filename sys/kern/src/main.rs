//! The tdxhost kernel.
//!
//! Principles (after Hubris): everything is configured statically from the
//! manifest; the kernel is small and prefers simple algorithms; tasks are
//! isolated by page tables and talk only through kernel IPC; a task's
//! mistake faults that task, never the kernel. Tasks run on the boot CPU.

#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]
#![forbid(clippy::wildcard_imports)]

mod arch;
mod bootinfo;
mod breakdown;
mod config;
mod console;
mod discovery;
mod fail;
mod fastpath;
mod inject;
mod ipc;
mod irq;
mod kipc;
mod outcome;
mod seam;
mod seam_async;
mod seamgate;
mod startup;
mod sync;
mod syscalls;
mod tables;
mod task;
mod tdmem;
mod time;
mod trap;
mod umem;

use core::sync::atomic::Ordering;

use arch::{apic, cpu, entry, gdt, idt, paging, serial, stacks};

/// Carves the per-CPU area for `cpus` CPUs from the RAM right after the
/// task memory, and records it as kernel memory and as an image range, so
/// tdx-host never hands it out and the kernel never scrubs it. A machine
/// whose RAM does not continue there cannot start its other CPUs: a boot
/// failure, named.
fn reserve_per_cpu_area(cpus: usize) {
    use arch::smp;
    let tasks = tdmem::image_ranges()[1];
    let base = tasks.end().0.next_multiple_of(paging::PAGE_SIZE);
    let size = smp::per_cpu_area_bytes(cpus);
    let fits = paging::direct_map_covers(base, size);
    if !fits || !bootinfo::memory_map().is_ram(base, size) {
        fail::boot_failure(format_args!(
            "smp: the per-CPU area for {cpus} CPUs ({} KiB at {base:#x}, after the tasks) is not RAM",
            size >> 10
        ));
    }
    smp::set_per_cpu_area(base, cpus);
    tdmem::set_per_cpu_area(kerncore::tdmem::PhysRange::saturating(base, size));
    if discovery::add_image(base, size).is_err() {
        fail::boot_failure(format_args!(
            "platform: no room in the record for the per-CPU area's image range"
        ));
    }
    kprintln!(
        "smp: per-CPU area {base:#x}..{:#x} ({cpus} CPUs)",
        base + size
    );
}

/// Starts every other CPU of the platform record and checks each answers
/// a request with its own APIC id.
fn start_application_processors(space: &paging::KernelSpace) {
    use arch::smp;
    idt::init_ap();
    if !bootinfo::memory_map().is_ram(smp::TRAMPOLINE, paging::PAGE_SIZE) {
        kprintln!(
            "smp: {:#x} is not RAM; not starting other CPUs",
            smp::TRAMPOLINE
        );
        return;
    }
    let ids = discovery::record()
        .cpus()
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.apic_id);
    reserve_per_cpu_area(ids.clone().count());
    let mut failed = [0u32; smp::MAX_CPUS];
    let nfailed = smp::start_aps(space.pml4, ids, &mut failed);
    paging::unmap_page(space.pml4, smp::TRAMPOLINE);
    kprint!("smp: {} CPUs running;", smp::cpu_count());
    for i in 0..smp::cpu_count() {
        match smp::run_on(i, smp::Op::ApicId, [0; 8]) {
            Ok(w) => kprint!(" cpu{i}=apic{}", w[0]),
            Err(e) => kprint!(" cpu{i}={e:?}"),
        }
    }
    kprintln!();
    for id in &failed[..nfailed] {
        kprintln!("smp: CPU with APIC id {id} failed to start and is not used");
    }
}

/// Rust entry from the boot stub: `magic` is EAX, `info` EBX at entry.
#[unsafe(no_mangle)]
pub extern "C" fn kmain(magic: u32, info: u32) -> ! {
    serial::init(serial::COM1);
    kprintln!("tdxhost kernel, image `{}`", config::IMAGE_NAME);
    bootinfo::parse(magic, info);
    bootinfo::print_summary();

    gdt::init(stacks::DOUBLE_FAULT_STACK.top());
    idt::init();
    entry::KERNEL_STACK_TOP.store(stacks::BOOT_CPU_STACK.top(), Ordering::Relaxed);
    entry::init_syscall();
    let (smep, smap) = cpu::enable_protections();

    let space = paging::build_kernel_space();
    // Safety: the new tables map the kernel image exactly where it runs and
    // the direct map; the boot identity map is no longer needed.
    unsafe { cpu::write_cr3(space.pml4.0) };

    let (lapic, handed_over) = apic::init_boot_cpu();
    let boot_apic_id = apic::apic_id();
    kprintln!(
        "lapic: {}{}, boot CPU APIC id {boot_apic_id}",
        lapic.name(),
        if handed_over {
            " (firmware handed over in x2APIC mode)"
        } else {
            ""
        }
    );
    if boot_apic_id > 0xFF {
        kprintln!("lapic: boot CPU APIC id {boot_apic_id} is beyond the IOAPIC's 8-bit destination: no device interrupts");
    }
    irq::BOOT_APIC_ID.store(boot_apic_id, Ordering::Relaxed);
    irq::init();

    if let Some(over) = discovery::discover(
        &tdmem::image_ranges().map(|r| (r.base().0, r.size().0)),
        lapic,
    ) {
        fail::boot_failure(format_args!(
            "platform: {over}; this build refuses the machine rather than run TDX on part of it"
        ));
    }
    discovery::srat_memory(paging::cover);
    paging::finish_direct_map(&space);
    discovery::print_banner();
    start_application_processors(&space);
    seam::init();
    inject::init();

    startup::create_tasks(&space);
    kprintln!(
        "kernel: {} tasks, {} page-table pages, SMEP {}, SMAP {}, scrub by {}",
        tables::TASK_COUNT,
        paging::pool_pages_used(),
        if smep { "on" } else { "off" },
        if smap { "on" } else { "off" },
        kipc::platform::scrub_method().describe(),
    );
    for (i, d) in tables::TASK_DESCS.iter().enumerate() {
        kprintln!(
            "  task {i:>2} {:<12} prio {:>2} {} entry {:#x} stack {:#x}..{:#x}",
            d.name,
            d.priority,
            if d.start { "start" } else { "held " },
            d.entry,
            d.stack_base,
            d.stack_top
        );
    }

    let counts = apic::start_timer(config::TICK_US);
    kprintln!(
        "kernel: timer tick {} us ({counts} LAPIC counts)",
        config::TICK_US
    );

    let first = task::with_tasks(|tasks| {
        // The build requires an `idle` that starts at boot, so something
        // is runnable; a wrong configuration still stops cleanly.
        let Some(first) = task::select(tasks, tasks.len() - 1) else {
            fail::boot_failure(format_args!("no task starts at boot"));
        };
        task::load(tasks, first);
        tasks[first].save_area()
    });
    // Safety: `first` is the save area of a freshly initialized task whose
    // address space is loaded.
    unsafe { entry::enter_first_task(first) }
}
