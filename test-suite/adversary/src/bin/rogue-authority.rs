//! rogue-authority: a compromised tdx-host. The manifest gives it what
//! tdx-host has (`platform`, `seamcall`, `memory-authority`); it uses them
//! to aim the TDX module and the kernel's scrub at memory that is not its
//! own and not TD memory: the kernel image, another task (gate-canary),
//! MMIO (local APIC, IOAPIC), absent memory and firmware memory.
//!
//! Every attack must be refused by the kernel (the SEAMCALL gate, scrub,
//! the online table) with its specific outcome, before the module sees
//! it; afterwards gate-canary's page and this task's own read-only page
//! must still hold their patterns, and the real tdx-host must still be
//! Ready. Positive controls (a SYS.INFO into its own buffers, an RDMD and
//! a TDH.SYS.CONFIG naming TD memory) show the gate passes what it should.

#![no_std]
#![no_main]

use abi::kipc::KipcError;
use abi::seamcall::refusal;
use tdx_abi::{Leaf, TdmrInfo};
use tdx_host_api::{ModuleState, TdxHost};
use test_api::check;
use test_api::score::Score;
use userlib::hl::{self, KipcFailure};
use userlib::{
    sys_get_timer, sys_refresh_task_id, sys_seamcall, sys_seamcall_collect, sys_seamcall_start,
    sys_send, SeamcallOutcome, UnknownOutcome,
};

/// What one SEAMCALL came back with; an unknown outcome code fails every check that reads it.
type Outcome = Result<SeamcallOutcome, UnknownOutcome>;

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));

use task_gen::notifications::TIMER_MASK;
use task_gen::slots::{GATE_CANARY, REFEREE, TDX_HOST};

const KERNEL: u64 = 0x10_0000;
const LAPIC: u64 = 0xfee0_0000;
const IOAPIC: u64 = 0xfec0_0000;
/// Far above this image's RAM and hot-plug window, where no memory is, and below the first
/// address with KeyID bits (2^34 here: MAXPHYADDR 40, 6 KeyID bits), which the gate refuses
/// for that alone.
const ABSENT: u64 = 15 << 30;
/// Beyond everything (and in the KeyID bits).
const FAR_ABSENT: u64 = 1 << 40;
/// Inside the first MiB (firmware data; the AP trampoline lives at 0x8000).
const LOW: u64 = 0x9000;
const PAGE: u64 = 4096;

const RCX: u64 = 1;
const RDX: u64 = 2;
const R8: u64 = 3;
const R9: u64 = 4;

/// This task's own output buffers, in its writable RAM.
#[repr(C, align(4096))]
struct Buffers {
    rdall: [u8; 4096],
    /// 1024-aligned, as TD_PARAMS must be.
    params: [u8; 1024],
    info: [u8; 1024],
    cmr: [u8; 512],
    array: [u64; 64],
    tdmr: [u8; 512],
}

static mut BUFS: Buffers = Buffers {
    rdall: [0; 4096],
    params: [0; 1024],
    info: [0; 1024],
    cmr: [0; 512],
    array: [0; 64],
    tdmr: [0; 512],
};

/// A page of this task's read-only memory, which the module must not write.
#[repr(C, align(4096))]
struct RoPage([u8; 4096]);
static RO_PAGE: RoPage = RoPage([0x5a; 4096]);

fn ro_intact() -> bool {
    let p = RO_PAGE.0.as_ptr();
    // Safety: reads of this task's own static; volatile so the compiler
    // cannot fold them to the initializer.
    (0..4096).all(|i| unsafe { core::ptr::read_volatile(p.add(i)) } == 0x5a)
}

fn bufs() -> *mut Buffers {
    core::ptr::addr_of_mut!(BUFS)
}

fn info_pa() -> u64 {
    // Safety: only the address is taken.
    unsafe { core::ptr::addr_of!((*bufs()).info) as u64 }
}
fn cmr_pa() -> u64 {
    // Safety: only the address is taken.
    unsafe { core::ptr::addr_of!((*bufs()).cmr) as u64 }
}
fn rdall_pa() -> u64 {
    // Safety: only the address is taken.
    unsafe { core::ptr::addr_of!((*bufs()).rdall) as u64 }
}
fn array_pa() -> u64 {
    // Safety: only the address is taken.
    unsafe { core::ptr::addr_of!((*bufs()).array) as u64 }
}
fn tdmr_pa() -> u64 {
    // Safety: only the address is taken.
    unsafe { core::ptr::addr_of!((*bufs()).tdmr) as u64 }
}

fn params_pa() -> u64 {
    // Safety: only the address is taken.
    unsafe { core::ptr::addr_of!((*bufs()).params) as u64 }
}

fn seam(leaf: u64, regs: [u64; 6]) -> Outcome {
    sys_seamcall(Some(0), leaf, regs)
}

fn sys_info(info: u64, cmr: u64) -> Outcome {
    seam(Leaf::SysInfo as u64, [info, 1024, cmr, 32, 0, 0])
}

fn rdall(buf: u64) -> Outcome {
    seam(Leaf::SysRdall as u64, [0, buf, 0, 0, 0, 0])
}

fn rdmd(page: u64) -> Outcome {
    seam(Leaf::PhymemPageRdmd as u64, [page, 0, 0, 0, 0, 0])
}

/// TDH.SYS.CONFIG with one TDMR_INFO (in this task's memory unless
/// `entry` names another place) whose 4K PAMT is `pamt`.
fn config(array: u64, entry: Option<u64>, tdmr: TdmrInfo) -> Outcome {
    let bytes = tdmr.to_bytes();
    // Safety: this task's own buffers; nothing else holds a reference.
    unsafe {
        let b = &mut *bufs();
        b.tdmr[..bytes.len()].copy_from_slice(&bytes);
        b.array[0] = entry.unwrap_or_else(tdmr_pa);
    }
    seam(Leaf::SysConfig as u64, [array, 1, 65, 0, 0, 0])
}

/// The asynchronous SEAMCALL (START/COLLECT) under attack: a CPU that does not exist, a leaf
/// whose operand is the caller's memory, RDMD aimed at the kernel, a second call on a busy CPU,
/// collecting where nothing of this task's runs, and collecting twice. A positive control
/// starts TDH.SYS.RD on CPU 1 and collects its answer.
fn async_checks(s: &mut Score) {
    let bit = TIMER_MASK.trailing_zeros() as u8;
    let rd = Leaf::SysRd as u64;
    // MAJOR_VERSION (a harmless read after Ready).
    let field = [0, tdx_abi::metadata::field::MAJOR_VERSION.0, 0, 0, 0, 0];
    let bad_cpu = [9999, u32::MAX].map(|cpu| sys_seamcall_start(cpu, bit, rd, field));
    check!(
        s,
        "async_seamcall_bad_cpu_refused",
        bad_cpu.iter().all(|o| *o == Ok(SeamcallOutcome::NoSuchCpu)),
        "START on CPUs 9999 and u32::MAX: {bad_cpu:?}"
    );
    let info = sys_seamcall_start(
        1,
        bit,
        Leaf::SysInfo as u64,
        [info_pa(), 1024, cmr_pa(), 32, 0, 0],
    );
    let kernel = sys_seamcall_start(1, bit, Leaf::PhymemPageRdmd as u64, [KERNEL, 0, 0, 0, 0, 0]);
    check!(
        s,
        "async_seamcall_gate_holds",
        info == Ok(SeamcallOutcome::LeafRefused)
            && matches!(
                kernel,
                Ok(SeamcallOutcome::OperandRefused {
                    register: RCX,
                    why: refusal::NOT_TD_MEMORY,
                    ..
                })
            ),
        "async SYS.INFO into own memory: {info:?}; async RDMD of the kernel: {kernel:?}"
    );
    let nothing = sys_seamcall_collect(1);
    let started = sys_seamcall_start(1, bit, rd, field);
    let busy = sys_seamcall_start(1, bit, rd, field);
    let elsewhere = sys_seamcall_collect(0);
    let far = sys_seamcall_collect(u32::MAX);
    let mut answer = sys_seamcall_collect(1);
    let deadline = sys_get_timer().now + 1000;
    while answer == Ok(SeamcallOutcome::InProgress) && sys_get_timer().now < deadline {
        hl::sleep_for(1, TIMER_MASK);
        answer = sys_seamcall_collect(1);
    }
    let again = sys_seamcall_collect(1);
    check!(
        s,
        "async_seamcall_one_call_per_cpu",
        started == Ok(SeamcallOutcome::Started) && busy == Ok(SeamcallOutcome::CpuBusy),
        "START {started:?}, a second START on the same CPU {busy:?}"
    );
    check!(
        s,
        "async_seamcall_collect_only_own_result",
        nothing == Ok(SeamcallOutcome::NothingToCollect)
            && elsewhere == Ok(SeamcallOutcome::NothingToCollect)
            && far == Ok(SeamcallOutcome::NothingToCollect)
            && matches!(answer, Ok(SeamcallOutcome::Returned { rax: 0, .. }))
            && again == Ok(SeamcallOutcome::NothingToCollect),
        "before START {nothing:?}, CPU 0 {elsewhere:?}, CPU u32::MAX {far:?}, own {answer:?}, again {again:?}"
    );
}

fn tdmr_with_pamt(pamt: u64) -> TdmrInfo {
    let mut t = TdmrInfo::new(0, 1 << 30);
    t.pamt_4k_base = pamt;
    t.pamt_4k_size = PAGE;
    t
}

fn refused(o: Outcome, register: u64, why: u64) -> bool {
    matches!(o, Ok(SeamcallOutcome::OperandRefused { register: r, why: w, .. }) if r == register && w == why)
}

fn not_td(o: Outcome, register: u64, what: KipcError) -> bool {
    o == Ok(SeamcallOutcome::OperandRefused {
        register,
        why: refusal::NOT_TD_MEMORY,
        detail: what as u64,
    })
}

fn kerr<T>(r: Result<T, KipcFailure>, e: KipcError) -> bool {
    matches!(r, Err(KipcFailure::Kernel(k)) if k == e)
}

fn canary_where() -> Option<(u64, u64)> {
    let mut r = [0u8; 16];
    let id = sys_refresh_task_id(GATE_CANARY);
    let (code, n) = sys_send(id, 1, &[], &mut r, &[]);
    (code == 0 && n == 16).then(|| (test_api::word64(&r, 0), test_api::word64(&r, 1)))
}

fn canary_intact() -> bool {
    let mut r = [0u8; 8];
    let id = sys_refresh_task_id(GATE_CANARY);
    let (code, n) = sys_send(id, 2, &[], &mut r, &[]);
    code == 0 && n == 8 && test_api::word64(&r, 0) == 1
}

fn wait_ready(host: &TdxHost) -> bool {
    let start = sys_get_timer().now;
    while sys_get_timer().now - start < 60_000 {
        match host.status().state() {
            Some(ModuleState::Ready) => return true,
            Some(ModuleState::Failed | ModuleState::Unavailable) => return false,
            _ => {}
        }
        hl::sleep_for(20, TIMER_MASK);
    }
    false
}

/// A page of boot RAM that is TD memory: inside a RAM range, above 1 MiB,
/// outside the image.
fn td_page(p: &abi::platform::PlatformRecord) -> Option<u64> {
    let image_end = p.image().iter().map(|r| r.base + r.size).max()?;
    let candidate = (image_end.next_multiple_of(2 << 20)) + (64 << 20);
    p.ram()
        .iter()
        .any(|r| r.base <= candidate && candidate + PAGE <= r.base + r.size)
        .then_some(candidate)
}

/// The first page that is not RAM after the RAM range holding 1 MiB: a
/// firmware hole or reserved range below 4 GiB.
fn hole_page(p: &abi::platform::PlatformRecord) -> Option<u64> {
    let r = p
        .ram()
        .iter()
        .find(|r| r.base <= (1 << 20) && (1 << 20) < r.base + r.size)?;
    let end = (r.base + r.size).next_multiple_of(PAGE);
    let is_ram = p
        .ram()
        .iter()
        .any(|x| x.base < end + PAGE && end < x.base + x.size);
    (!is_ram && end < (4 << 30)).then_some(end)
}

#[unsafe(no_mangle)]
pub fn main() -> ! {
    let mut s = Score::default();
    let host = TdxHost::from_index(TDX_HOST);
    let ready = wait_ready(&host);
    check!(
        s,
        "rogue_sees_tdx_host_ready",
        ready,
        "tdx-host never became Ready"
    );
    let platform = hl::read_platform();
    let (canary, _) = canary_where().unwrap_or((0, 0));
    check!(
        s,
        "rogue_has_its_targets",
        platform.is_ok() && canary != 0,
        "platform record {:?}, canary at {canary:#x}",
        platform.as_ref().err()
    );
    let Ok(platform) = platform else {
        test_adversary::report_done(REFEREE, &s);
        test_adversary::park()
    };
    let ro = RO_PAGE.0.as_ptr() as u64;

    // Positive control: the module writes into this task's own buffers.
    let o = sys_info(info_pa(), cmr_pa());
    // Safety: this task's own buffer, written by the module through the
    // kernel; read volatile.
    let vendor =
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*bufs()).info[4]).cast::<u32>()) };
    let r = rdall(rdall_pa());
    check!(
        s,
        "seamcall_buffer_in_own_memory_allowed",
        matches!(o, Ok(SeamcallOutcome::Returned { rax: 0, .. }))
            && vendor == 0x8086
            && matches!(r, Ok(SeamcallOutcome::Returned { .. })),
        "SYS.INFO into this task's buffers: {o:?}, vendor {vendor:#x}; RDALL: {r:?}"
    );

    // Output buffers and TDH.SYS.CONFIG's PA array / TDMR_INFO, aimed at
    // `target`: all must be refused as not the caller's memory.
    let buffer_attack = |target: u64| -> [(bool, Outcome); 5] {
        let a = sys_info(target, cmr_pa());
        let b = sys_info(info_pa(), target);
        let c = rdall(target);
        let d = config(target, None, tdmr_with_pamt(0));
        let e = config(array_pa(), Some(target), tdmr_with_pamt(0));
        let nc = refusal::NOT_CALLER_MEMORY;
        [
            (refused(a, RCX, nc), a),
            (refused(b, R8, nc), b),
            (refused(c, RDX, nc), c),
            (refused(d, RCX, nc), d),
            (refused(e, RCX, nc), e),
        ]
    };
    let run = |name: &str, target: u64, s: &mut Score| {
        let r = buffer_attack(target);
        let bad = r.iter().find(|(ok, _)| !ok).map(|(_, o)| *o);
        check!(
            s,
            name,
            bad.is_none() && canary_intact(),
            "at {target:#x}: {bad:?}, canary intact {}",
            canary_intact()
        );
    };
    run("seamcall_buffer_at_kernel_refused", KERNEL, &mut s);
    run("seamcall_buffer_at_other_task_refused", canary, &mut s);
    run("seamcall_buffer_at_mmio_refused", LAPIC, &mut s);
    run("seamcall_buffer_at_ioapic_refused", IOAPIC, &mut s);
    run("seamcall_buffer_at_absent_memory_refused", ABSENT, &mut s);

    let a = sys_info(ro, cmr_pa());
    let b = rdall(ro);
    check!(
        s,
        "seamcall_buffer_in_own_rodata_refused",
        refused(a, RCX, refusal::NOT_WRITABLE)
            && refused(b, RDX, refusal::NOT_WRITABLE)
            && ro_intact(),
        "{a:?} {b:?}, read-only page intact {}",
        ro_intact()
    );

    // PAMTs inside a crafted TDMR_INFO: refused by the gate before the
    // module sees the TDH.SYS.CONFIG.
    let pamt = |target: u64, what: KipcError| {
        let o = config(array_pa(), None, tdmr_with_pamt(target));
        (not_td(o, RCX, what), o)
    };
    for (name, target, what) in [
        (
            "seamcall_pamt_at_kernel_refused",
            KERNEL,
            KipcError::KernelMemory,
        ),
        (
            "seamcall_pamt_at_other_task_refused",
            canary,
            KipcError::TaskMemory,
        ),
        ("seamcall_pamt_at_mmio_refused", LAPIC, KipcError::NotRam),
        (
            "seamcall_pamt_at_absent_memory_refused",
            ABSENT,
            KipcError::NotRam,
        ),
        (
            "seamcall_pamt_in_first_mib_refused",
            LOW,
            KipcError::LowMemory,
        ),
    ] {
        let (ok, o) = pamt(target, what);
        check!(s, name, ok && canary_intact(), "PAMT at {target:#x}: {o:?}");
    }
    // The same TDH.SYS.CONFIG with its PAMT in TD memory does reach the
    // module, which refuses it only because tdx-host configured it already.
    let td = td_page(&platform).unwrap_or(0);
    let o = config(array_pa(), None, tdmr_with_pamt(td));
    check!(
        s,
        "seamcall_config_with_td_memory_pamt_reaches_module",
        td != 0 && matches!(o, Ok(SeamcallOutcome::Returned { rax, .. }) if rax != 0),
        "PAMT at {td:#x}: {o:?}"
    );

    // Page operands of PHYMEM leaves.
    let pages = [
        (KERNEL, KipcError::KernelMemory),
        (canary, KipcError::TaskMemory),
        (ro, KipcError::TaskMemory),
        (LAPIC, KipcError::NotRam),
        (ABSENT, KipcError::NotRam),
        (LOW, KipcError::LowMemory),
    ];
    let bad = pages
        .iter()
        .map(|&(pa, what)| (pa, rdmd(pa), what))
        .find(|&(_, o, what)| !not_td(o, RCX, what));
    let control = rdmd(td);
    check!(
        s,
        "seamcall_page_operand_refused",
        bad.is_none() && matches!(control, Ok(SeamcallOutcome::Returned { .. })),
        "RDMD: first wrong answer {bad:?}; at TD memory {td:#x}: {control:?}"
    );

    td_leaf_attacks(&mut s, td, canary, ro, hole_page(&platform));

    let leaves = [
        0xFFFF,
        Leaf::VpEnter as u64,
        Leaf::MemSeptRemove as u64,
        Leaf::MngRd as u64,
        Leaf::MemSeptAdd as u64 | 1 << 16,
        Leaf::MngCreate as u64 | 1 << 16,
        Leaf::SysShutdown as u64,
        Leaf::SysRd as u64 | 1 << 16,
        Leaf::SysRd as u64 | 1 << 40,
    ];
    let bad = leaves
        .iter()
        .map(|&l| (l, seam(l, [0; 6])))
        .find(|(_, o)| *o != Ok(SeamcallOutcome::LeafRefused));
    check!(
        s,
        "seamcall_unknown_leaf_refused",
        bad.is_none(),
        "leaf word {bad:?} was not refused by the gate"
    );

    // Scrub.
    check!(
        s,
        "scrub_of_mmio_refused",
        kerr(hl::scrub(LAPIC, PAGE), KipcError::NotRam)
            && kerr(hl::scrub(IOAPIC, PAGE), KipcError::NotRam),
        "LAPIC {:?}, IOAPIC {:?}",
        hl::scrub(LAPIC, PAGE),
        hl::scrub(IOAPIC, PAGE)
    );
    check!(
        s,
        "scrub_of_kernel_refused",
        kerr(hl::scrub(KERNEL, PAGE), KipcError::KernelMemory),
        "{:?}",
        hl::scrub(KERNEL, PAGE)
    );
    check!(
        s,
        "scrub_of_task_refused",
        kerr(hl::scrub(canary, PAGE), KipcError::TaskMemory)
            && kerr(hl::scrub(ro, PAGE), KipcError::TaskMemory)
            && canary_intact()
            && ro_intact(),
        "canary {:?}, own page {:?}",
        hl::scrub(canary, PAGE),
        hl::scrub(ro, PAGE)
    );
    check!(
        s,
        "scrub_of_absent_memory_refused",
        kerr(hl::scrub(ABSENT, PAGE), KipcError::NotRam)
            && kerr(hl::scrub(FAR_ABSENT, PAGE), KipcError::NotRam),
        "{:?} {:?}",
        hl::scrub(ABSENT, PAGE),
        hl::scrub(FAR_ABSENT, PAGE)
    );
    let hole = hole_page(&platform);
    check!(
        s,
        "scrub_of_firmware_memory_refused",
        kerr(hl::scrub(LOW, PAGE), KipcError::LowMemory)
            && hole.is_some_and(|h| kerr(hl::scrub(h, PAGE), KipcError::NotRam)),
        "first MiB {:?}, hole {hole:?}: {:?}",
        hl::scrub(LOW, PAGE),
        hole.map(|h| hl::scrub(h, PAGE))
    );
    check!(
        s,
        "scrub_misaligned_refused",
        kerr(hl::scrub(td + 8, PAGE), KipcError::Misaligned),
        "{:?}",
        hl::scrub(td + 8, PAGE)
    );

    // Online.
    let window = platform.hotplug;
    let outside = [LAPIC, IOAPIC, ABSENT, FAR_ABSENT];
    let bad = outside
        .iter()
        .map(|&b| (b, hl::online_memory(b, PAGE)))
        .find(|(_, r)| !kerr(*r, KipcError::OutsideHotplugWindow));
    check!(
        s,
        "online_memory_outside_window_refused",
        bad.is_none(),
        "online of {bad:?} (window {window:?})"
    );
    let r = hl::online_memory(td, PAGE);
    check!(
        s,
        "online_memory_of_boot_ram_refused",
        kerr(r, KipcError::OverlapsBootRam),
        "online of boot RAM {td:#x}: {r:?}"
    );
    if let Some(w) = window {
        let b = w.base.next_multiple_of(PAGE);
        let before = hl::scrub(b, PAGE);
        let first = hl::online_memory(b, PAGE);
        let again = hl::online_memory(b, 2 * PAGE);
        let misaligned = hl::online_memory(b + 8, PAGE);
        let partial = hl::offline_memory(b, 2 * PAGE);
        let off = hl::offline_memory(b, PAGE);
        let off_again = hl::offline_memory(b, PAGE);
        check!(
            s,
            "online_memory_rules_hold",
            kerr(before, KipcError::NotRam)
                && first.is_ok()
                && kerr(again, KipcError::OverlapsOnline)
                && kerr(misaligned, KipcError::Misaligned)
                && kerr(partial, KipcError::NotOnline)
                && off.is_ok()
                && kerr(off_again, KipcError::NotOnline),
            "scrub before {before:?}, online {first:?}, overlap {again:?}, misaligned {misaligned:?}, partial offline {partial:?}, offline {off:?}, again {off_again:?}"
        );
    }

    async_checks(&mut s);

    // The victims and the real memory authority are unharmed.
    let still = host.status().state();
    check!(
        s,
        "tdx_host_serves_after_gate_attacks",
        still == Some(ModuleState::Ready) && canary_intact() && ro_intact(),
        "tdx-host {still:?}, canary intact {}, own page intact {}",
        canary_intact(),
        ro_intact()
    );

    test_adversary::report_done(REFEREE, &s);
    test_adversary::park()
}

/// Where each TD leaf takes a page operand: (leaf, register index 0 = RCX .. 3 = R9, the other
/// registers' values). The other page operands hold `td`, a page of TD memory, so only the
/// aimed one can be refused.
fn td_page_operands(td: u64) -> [(Leaf, usize, [u64; 6]); 23] {
    let p = params_pa();
    [
        (Leaf::MngCreate, 0, [0, 64, 0, 0, 0, 0]),
        (Leaf::MngKeyConfig, 0, [0; 6]),
        (Leaf::MngVpflushdone, 0, [0; 6]),
        (Leaf::MngKeyFreeid, 0, [0; 6]),
        (Leaf::MemTrack, 0, [0; 6]),
        (Leaf::MrFinalize, 0, [0; 6]),
        (Leaf::VpInit, 0, [0; 6]),
        (Leaf::VpFlush, 0, [0; 6]),
        (Leaf::PhymemPageReclaim, 0, [0; 6]),
        (Leaf::MngAddcx, 0, [0, td, 0, 0, 0, 0]),
        (Leaf::MngAddcx, 1, [td, 0, 0, 0, 0, 0]),
        (Leaf::VpCreate, 0, [0, td, 0, 0, 0, 0]),
        (Leaf::VpCreate, 1, [td, 0, 0, 0, 0, 0]),
        (Leaf::VpAddcx, 0, [0, td, 0, 0, 0, 0]),
        (Leaf::VpAddcx, 1, [td, 0, 0, 0, 0, 0]),
        (Leaf::MngInit, 0, [0, p, 0, 0, 0, 0]),
        (Leaf::MemSeptAdd, 1, [3, 0, td, 0, 0, 0]),
        (Leaf::MemSeptAdd, 2, [3, td, 0, 0, 0, 0]),
        (Leaf::MemPageAdd, 1, [0, 0, td, p & !4095, 0, 0]),
        (Leaf::MemPageAdd, 2, [0, td, 0, p & !4095, 0, 0]),
        (Leaf::MemPageAug, 2, [0, td, 0, 0, 0, 0]),
        (Leaf::MemRangeBlock, 1, [0, 0, 0, 0, 0, 0]),
        (Leaf::MemPageRemove, 1, [0, 0, 0, 0, 0, 0]),
    ]
}

/// The TD life-cycle leaves aimed at the kernel, another task, this task's own memory and MMIO:
/// every page operand is refused as not TD memory, TD_PARAMS and PAGE.ADD's source outside the
/// caller's memory as not the caller's, WBINVD with a KeyID that is not a TDX private KeyID as
/// a bad KeyID. Positive controls show the same calls with TD memory reach the module.
fn td_leaf_attacks(s: &mut Score, td: u64, canary: u64, ro: u64, hole: Option<u64>) {
    let targets = [
        (KERNEL, KipcError::KernelMemory),
        (canary, KipcError::TaskMemory),
        (ro, KipcError::TaskMemory),
        (LAPIC, KipcError::NotRam),
        (IOAPIC, KipcError::NotRam),
        (ABSENT, KipcError::NotRam),
        (LOW, KipcError::LowMemory),
    ];
    let mut bad = None;
    for (leaf, reg, regs) in td_page_operands(td) {
        for &(target, what) in &targets {
            let mut r = regs;
            // Fill every other zero page operand with TD memory, the aimed one with the target.
            r[reg] = target;
            let o = seam(leaf as u64, r);
            if bad.is_none() && !not_td(o, reg as u64 + 1, what) {
                bad = Some((leaf, reg, target, o));
            }
        }
    }
    check!(
        s,
        "seamcall_td_page_operand_at_foreign_memory_refused",
        bad.is_none() && canary_intact() && ro_intact(),
        "first wrong answer (leaf, register, target, outcome): {bad:?}"
    );

    // A 2 MiB AUG page is checked whole: the last page of RAM before a hole passes as a 4 KiB
    // page and is refused as the start of a 2 MiB one.
    let last = hole.map_or(0, |h| h - PAGE);
    let aug4k = seam(Leaf::MemPageAug as u64, [0, td, last, 0, 0, 0]);
    let aug2m = seam(Leaf::MemPageAug as u64, [1, td, last, 0, 0, 0]);
    let aug_level = seam(Leaf::MemPageAug as u64, [2, td, td, 0, 0, 0]);
    check!(
        s,
        "seamcall_page_aug_checks_the_whole_page",
        hole.is_some()
            && matches!(aug4k, Ok(SeamcallOutcome::Returned { .. }))
            && not_td(aug2m, R8, KipcError::NotRam)
            && refused(aug_level, RCX, refusal::BAD_RANGE),
        "last RAM page {last:#x}: 4 KiB {aug4k:?}, 2 MiB {aug2m:?}; level 2: {aug_level:?}"
    );

    // Buffers the module reads: TD_PARAMS and PAGE.ADD's source.
    let nc = refusal::NOT_CALLER_MEMORY;
    let mut bad = None;
    for target in [KERNEL, canary & !1023, LAPIC, ABSENT, td] {
        let a = seam(Leaf::MngInit as u64, [td, target, 0, 0, 0, 0]);
        let b = seam(Leaf::MemPageAdd as u64, [0, td, td, target & !4095, 0, 0]);
        if bad.is_none() && !(refused(a, RDX, nc) && refused(b, R9, nc)) {
            bad = Some((target, a, b));
        }
    }
    let misaligned = seam(Leaf::MngInit as u64, [td, params_pa() + 8, 0, 0, 0, 0]);
    check!(
        s,
        "seamcall_td_source_buffer_elsewhere_refused",
        bad.is_none() && refused(misaligned, RDX, refusal::MISALIGNED) && canary_intact(),
        "first wrong answer (target, MNG.INIT, PAGE.ADD): {bad:?}; misaligned {misaligned:?}"
    );

    // WBINVD: the KeyID must be a TDX private KeyID and the page TD memory.
    let kp = hl::keyid_partition();
    let maxpa = {
        use core::arch::x86_64::__cpuid;
        if __cpuid(0x8000_0000).eax >= 0x8000_0008 {
            __cpuid(0x8000_0008).eax & 0xff
        } else {
            36
        }
    };
    let ok = if let Ok((bits, mktme, tdx)) = kp {
        let shift = maxpa - u32::from(bits);
        let private = u64::from(mktme + 1) << shift;
        let last_private = u64::from(mktme + tdx) << shift;
        let shared = seam(Leaf::PhymemPageWbinvd as u64, [td, 0, 0, 0, 0, 0]);
        let beyond = seam(
            Leaf::PhymemPageWbinvd as u64,
            [td | u64::from(mktme + tdx + 1) << shift, 0, 0, 0, 0, 0],
        );
        let above = seam(
            Leaf::PhymemPageWbinvd as u64,
            [td | private | 1 << 62, 0, 0, 0, 0, 0],
        );
        let kernel = seam(
            Leaf::PhymemPageWbinvd as u64,
            [KERNEL | private, 0, 0, 0, 0, 0],
        );
        let other = seam(
            Leaf::PhymemPageWbinvd as u64,
            [canary | last_private, 0, 0, 0, 0, 0],
        );
        let good = seam(
            Leaf::PhymemPageWbinvd as u64,
            [td | last_private, 0, 0, 0, 0, 0],
        );
        // A page operand that reaches the KeyID bits is refused for that, before anything
        // else is asked of it: a TDR with a KeyID, the first such address, one far beyond.
        let keyed_tdr = seam(Leaf::MngKeyConfig as u64, [td | private, 0, 0, 0, 0, 0]);
        let first_keyed = rdmd(1 << shift);
        let far = rdmd(FAR_ABSENT);
        let below = rdmd((1 << shift) - PAGE);
        let bk = refusal::BAD_KEYID;
        let r = refused(shared, RCX, bk)
            && refused(beyond, RCX, bk)
            && refused(above, RCX, bk)
            && not_td(kernel, RCX, KipcError::KernelMemory)
            && not_td(other, RCX, KipcError::TaskMemory)
            && matches!(good, Ok(SeamcallOutcome::Returned { .. }))
            && refused(keyed_tdr, RCX, bk)
            && refused(first_keyed, RCX, bk)
            && refused(far, RCX, bk)
            && not_td(below, RCX, KipcError::NotRam);
        if !r {
            userlib::ulog!(
                "WBINVD: shared {shared:?} beyond {beyond:?} above {above:?} kernel {kernel:?} other {other:?} good {good:?}; with KeyID bits: KEY.CONFIG {keyed_tdr:?}, RDMD {first_keyed:?} and {far:?}; below them {below:?}"
            );
        }
        r
    } else {
        false
    };
    check!(
        s,
        "seamcall_wbinvd_keyid_and_page_checked",
        ok,
        "KeyID partition {kp:?}, MAXPHYADDR {maxpa}"
    );

    // Positive controls: with TD memory and this task's own TD_PARAMS the calls reach the module,
    // which refuses them for its own reasons (the page is not a TDR), changing nothing.
    let init = seam(Leaf::MngInit as u64, [td, params_pa(), 0, 0, 0, 0]);
    let add = seam(
        Leaf::MemPageAdd as u64,
        [0, td, td, params_pa() & !4095, 0, 0],
    );
    let reclaim = seam(Leaf::PhymemPageReclaim as u64, [td, 0, 0, 0, 0, 0]);
    let wb = seam(Leaf::PhymemCacheWb as u64, [0, 0, 0, 0, 0, 0]);
    let reached = |o: Outcome| matches!(o, Ok(SeamcallOutcome::Returned { rax, .. }) if rax != 0);
    check!(
        s,
        "seamcall_td_leaf_with_td_memory_reaches_module",
        reached(init) && reached(add) && reached(reclaim) && reached(wb),
        "MNG.INIT {init:?}, PAGE.ADD {add:?}, RECLAIM {reclaim:?}, CACHE.WB {wb:?}"
    );
}
