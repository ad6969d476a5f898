//! test-platform: checks, from a task, that the kernel's view of the
//! machine matches the QEMU command line of this image (CPU count,
//! packages, NUMA nodes and their RAM, the hot-plug window), that a
//! privileged operation runs on each CPU and reports that CPU's own APIC
//! id, and that SEAMCALLs reach the configured backend on the CPU named,
//! with injected faults exactly where the manifest put them.
//!
//! Prints one `test NAME ... ok|FAILED: why` line per check and reports
//! the verdict to the supervisor, which ends the run.

#![no_std]
#![no_main]

use abi::platform::{PlatformRecord, RecordFlags};
use tdx_abi::{Leaf, TdxStatus};
use userlib::{
    hl, sys_refresh_task_id, sys_seamcall, sys_send, ulog, SeamcallOutcome, UnknownOutcome,
};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
mod expect {
    include!(concat!(env!("OUT_DIR"), "/expect.rs"));
}

use test_api::check;
use test_api::score::Score;

fn seam(cpu: u32, leaf: Leaf, rcx: u64) -> Result<SeamcallOutcome, UnknownOutcome> {
    sys_seamcall(Some(cpu), u64::from(leaf.number()), [rcx, 0, 0, 0, 0, 0])
}

fn status(o: Result<SeamcallOutcome, UnknownOutcome>) -> Option<TdxStatus> {
    match o {
        Ok(SeamcallOutcome::Returned { rax, .. }) => Some(TdxStatus(rax)),
        _ => None,
    }
}

/// The mode the kernel says (platform record flag X2APIC) it drives the
/// local APICs in, against the manifest's expectation: a QEMU `-cpu` flag
/// only says what the CPU offers, this says what the kernel does.
fn lapic_check(s: &mut Score, r: &PlatformRecord) {
    if expect::LAPIC.is_empty() {
        return;
    }
    let mode = if r.flags.contains(RecordFlags::X2APIC) {
        "x2apic"
    } else {
        "xapic"
    };
    check!(
        s,
        "platform_kernel_runs_lapic_in_expected_mode",
        mode == expect::LAPIC,
        "kernel reports {mode}, expected {}",
        expect::LAPIC
    );
}

fn platform_checks(s: &mut Score, r: &PlatformRecord) {
    lapic_check(s, r);
    let cpus = r.cpus().iter().filter(|c| c.enabled).count();
    check!(
        s,
        "platform_cpu_count_matches_qemu",
        cpus == expect::CPUS,
        "{cpus} CPUs, expected {}",
        expect::CPUS
    );
    check!(
        s,
        "platform_package_count_matches_qemu",
        r.package_count == expect::PACKAGES,
        "{} packages, expected {}",
        r.package_count,
        expect::PACKAGES
    );
    check!(
        s,
        "platform_node_count_matches_qemu",
        r.nodes().len() == expect::NODES,
        "{} nodes, expected {}",
        r.nodes().len(),
        expect::NODES
    );
    let mut ram_ok = true;
    for (node, &want) in expect::NODE_RAM_MIB.iter().enumerate() {
        let got: u64 = r
            .ram()
            .iter()
            .filter(|m| m.node as usize == node)
            .map(|m| m.size)
            .sum::<u64>()
            >> 20;
        if got + 2 < want || got > want + 2 {
            ram_ok = false;
            ulog!("node {node}: {got} MiB of RAM, expected about {want}");
        }
    }
    check!(s, "platform_node_ram_matches_qemu", ram_ok, "see above");
    check!(
        s,
        "platform_hotplug_window_reported_as_configured",
        r.hotplug.is_some() == expect::HOTPLUG,
        "hot-plug window {:?}, expected present = {}",
        r.hotplug,
        expect::HOTPLUG
    );
    if let Some(h) = r.hotplug {
        let in_ram = r
            .ram()
            .iter()
            .any(|m| m.base < h.base + h.size && h.base < m.base + m.size);
        check!(
            s,
            "platform_hotplug_memory_is_not_boot_ram",
            !in_ram,
            "the window overlaps boot RAM"
        );
    }
    // Every CPU answers a privileged request with its own APIC id.
    let running = hl::cpu_count().unwrap_or(0);
    let mut ids_ok = running == expect::CPUS;
    for i in 0..running {
        match hl::cpu_apic_id(i) {
            Ok(id) if r.cpus().iter().any(|c| c.apic_id == id) => {
                // Distinct CPUs give distinct ids.
                for j in 0..i {
                    if hl::cpu_apic_id(j) == Ok(id) {
                        ids_ok = false;
                    }
                }
            }
            other => {
                ulog!("cpu {i}: {other:?}");
                ids_ok = false;
            }
        }
    }
    check!(
        s,
        "smp_each_cpu_runs_a_request_and_reports_its_apic_id",
        ids_ok,
        "{running} CPUs running"
    );
    check!(
        s,
        "smp_request_to_missing_cpu_is_refused",
        hl::cpu_apic_id(running + 3).is_err(),
        "no error"
    );
}

fn seam_checks(s: &mut Score) {
    let cpus = hl::cpu_count().unwrap_or(1) as u32;
    match expect::TDX {
        "absent" => {
            let o = seam(0, Leaf::SysInit, 0);
            check!(
                s,
                "seam_absent_module_is_vmfailinvalid",
                o == Ok(SeamcallOutcome::VmFailInvalid),
                "{o:?}"
            );
        }
        "emulated" => {
            // The manifest injects TDX_SYS_BUSY on the first TDH.SYS.INIT and
            // TDX_RND_NO_ENTROPY on TDH.SYS.LP.INIT on the last CPU, once.
            let first = status(seam(0, Leaf::SysInit, 0));
            check!(
                s,
                "seam_injected_fault_on_first_sys_init",
                first == Some(TdxStatus::SYS_BUSY),
                "{first:?}"
            );
            let second = status(seam(0, Leaf::SysInit, 0));
            check!(
                s,
                "seam_sys_init_succeeds_on_retry",
                second.is_some_and(|st| st.is_success()),
                "{second:?}"
            );
            let mut lp_ok = true;
            for cpu in 0..cpus {
                let st = status(seam(cpu, Leaf::SysLpInit, 0));
                let injected = cpu == cpus - 1;
                let want_first = if injected {
                    TdxStatus::RND_NO_ENTROPY
                } else {
                    TdxStatus::SUCCESS
                };
                if st != Some(want_first) {
                    ulog!("LP.INIT on cpu {cpu}: {st:?}, expected {want_first:?}");
                    lp_ok = false;
                }
                if injected {
                    let retry = status(seam(cpu, Leaf::SysLpInit, 0));
                    if retry != Some(TdxStatus::SUCCESS) {
                        ulog!("LP.INIT retry on cpu {cpu}: {retry:?}");
                        lp_ok = false;
                    }
                }
            }
            check!(
                s,
                "seam_lp_init_on_every_cpu_with_fault_where_configured",
                lp_ok,
                "see above"
            );
            let again = status(seam(0, Leaf::SysLpInit, 0));
            check!(
                s,
                "seam_lp_init_counts_each_cpu_once",
                again == Some(TdxStatus::SYS_LP_INIT_DONE),
                "second LP.INIT on cpu 0: {again:?}"
            );
            let o = seam(cpus + 5, Leaf::SysLpInit, 0);
            check!(
                s,
                "seam_call_to_missing_cpu_is_refused",
                o == Ok(SeamcallOutcome::NoSuchCpu),
                "{o:?}"
            );
            let o = sys_seamcall(Some(0), 0xFFFF, [0; 6]);
            check!(
                s,
                "seam_unknown_leaf_is_refused_by_the_gate",
                o == Ok(SeamcallOutcome::LeafRefused),
                "{o:?}"
            );
        }
        _ => {
            let o = seam(0, Leaf::SysInit, 0);
            check!(
                s,
                "seam_without_backend_is_vmfailinvalid",
                o == Ok(SeamcallOutcome::VmFailInvalid),
                "{o:?}"
            );
        }
    }
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    match hl::read_platform() {
        Ok(r) => platform_checks(&mut s, &r),
        Err(e) => s.fail("platform_record_is_readable", format_args!("{e:?}")),
    }
    seam_checks(&mut s);
    s.verdict(task_gen::IMAGE_NAME);
    let jefe = sys_refresh_task_id(task_gen::slots::JEFE);
    sys_send(jefe, 1, &[u8::from(s.failed() == 0)], &mut [], &[]);
    loop {
        hl::sleep_for(1_000_000, 1);
    }
}
