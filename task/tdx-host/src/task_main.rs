//! The target half of the `tdx-host` binary (see `main.rs`).

use core::convert::Infallible;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use heapless::Vec;
use idol_runtime::{Leased, RequestError, R, W};
use tdx_abi::{SeamcallArgs, SeamcallResult};
use tdx_host::frames::{bitmap_words, FrameAllocator, Owner};
use tdx_host::init::{Bringup, InitConfig, InitStorage, Progress, State};
use tdx_host::regions::{MemoryAuthority, PlatformMemory, Regions};
use tdx_host::seam::{
    Cpu, CpuIndex, KernelError, KeyIdPartition, PhysWriter, PlatformView, Seam, SeamError,
};
use tdx_host::server::{Scrubber, Server};
use tdx_host_api::{
    FrameSize, InitStep, MemClass, ModuleStatus, NodeInfo, OnlineReply, RegionMapReply,
    ServerStats, TdxHostError,
};
use tdx_planner::addr::{PhysAddr, PhysRange};
use tdx_planner::types::{MemRange, MAX_MEMORY_RANGES};
use userlib::{
    hl, sys_get_timer, sys_refresh_task_id, sys_seamcall, sys_set_timer, ulog, RecvMessage,
    SeamcallOutcome, TaskIndex, UnknownOutcome,
};

include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
include!(concat!(env!("OUT_DIR"), "/server_stub.rs"));
mod config {
    include!(concat!(env!("OUT_DIR"), "/tdx_host_config.rs"));
}

/// Pool memory the allocator can track (2 bits per 4 KiB frame): 4 GiB in 256 KiB of bitmap.
const BITMAP_BYTES_COVERED: u64 = 4 << 30;
const BITMAP_WORDS: usize = bitmap_words(BITMAP_BYTES_COVERED, tdx_host::frames::MAX_POOLS);
/// TDMR_INFO buffer: the PA array, then 512 bytes per TDMR (§5.3).
const TDMR_BUF_BYTES: usize = 512 * (1 + tdx_planner::MAX_TDMRS);

#[repr(C, align(4096))]
struct TdmrBuf([u8; TDMR_BUF_BYTES]);

static mut TDMR_BUF: TdmrBuf = TdmrBuf([0; TDMR_BUF_BYTES]);
static mut BITMAP: [u64; BITMAP_WORDS] = [0; BITMAP_WORDS];
static mut STORAGE: MaybeUninit<InitStorage> = MaybeUninit::uninit();
static mut SERVER: MaybeUninit<Server<'static>> = MaybeUninit::uninit();

// ---------------------------------------------------------------------------------------------
// The library's traits over kernel syscalls.

/// Seconds of the init report: TSC at the first call of each step (plus the end).
#[derive(Default)]
struct StepClock {
    first: [Option<u64>; 9],
    after_metadata: u64,
}

fn tsc() -> u64 {
    // Safety: RDTSC has no memory effects; the kernel does not set CR4.TSD.
    unsafe { core::arch::x86_64::_rdtsc() }
}

struct KernelSeam {
    clock: Option<StepClock>,
}

fn step_of(leaf: u64) -> Option<InitStep> {
    use tdx_abi::Leaf;
    let l = Leaf::from_number(leaf as u16)?;
    Some(match l {
        Leaf::SysInit => InitStep::SysInit,
        Leaf::SysLpInit => InitStep::LpInit,
        Leaf::SysRd => InitStep::ReadMetadata,
        Leaf::SysConfig => InitStep::Config,
        Leaf::SysKeyConfig => InitStep::KeyConfig,
        Leaf::SysTdmrInit => InitStep::TdmrInit,
        _ => return None,
    })
}

impl Seam for KernelSeam {
    fn seamcall(
        &mut self,
        cpu: Option<CpuIndex>,
        a: SeamcallArgs,
    ) -> Result<SeamcallResult, SeamError> {
        if let Some(c) = self.clock.as_mut() {
            if let Some(step) = step_of(a.rax & 0xffff) {
                let slot = &mut c.first[step as usize];
                if slot.is_none() {
                    *slot = Some(tsc());
                }
                if step == InitStep::Config && c.first[InitStep::Plan as usize].is_none() {
                    c.first[InitStep::Plan as usize] = Some(c.after_metadata);
                }
            }
        }
        let out = sys_seamcall(
            cpu.map(|c| c.0),
            a.rax,
            [a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11],
        );
        if let Some(c) = self.clock.as_mut() {
            if step_of(a.rax & 0xffff) == Some(InitStep::ReadMetadata) {
                c.after_metadata = tsc();
            }
        }
        let cpu_named = cpu.unwrap_or(CpuIndex(0));
        match out {
            Ok(SeamcallOutcome::Returned { rax, out }) => Ok(SeamcallResult {
                rax,
                rcx: out[0],
                rdx: out[1],
                r8: out[2],
                r9: out[3],
                r10: out[4],
                r11: out[5],
            }),
            Ok(SeamcallOutcome::VmFailInvalid) => Err(SeamError::VmFailInvalid),
            Ok(SeamcallOutcome::FaultUd) => Err(SeamError::Ud),
            Ok(SeamcallOutcome::FaultGp) => Err(SeamError::Gp),
            Ok(SeamcallOutcome::NoSuchCpu) => Err(SeamError::NoSuchCpu(cpu_named)),
            Ok(SeamcallOutcome::Timeout) => Err(SeamError::Timeout(cpu_named)),
            Ok(SeamcallOutcome::Denied) => Err(SeamError::Kernel(KernelError(1))),
            // The kernel's gate refused the call before the module saw it:
            // a bug in this task's operands, reported with the outcome code.
            Ok(o @ (SeamcallOutcome::LeafRefused | SeamcallOutcome::OperandRefused { .. })) => {
                Err(SeamError::Kernel(KernelError(o.code() as u32)))
            }
            Err(UnknownOutcome(code)) => Err(SeamError::UnknownOutcome(code)),
        }
    }

    fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
        if let Some(c) = self.clock.as_mut() {
            let slot = &mut c.first[InitStep::CacheFlush as usize];
            if slot.is_none() {
                *slot = Some(tsc());
            }
        }
        hl::flush_caches().map_err(|_| KernelError(2))
    }
}

/// The TDMR_INFO buffer: a static of this task, identity-mapped (physical = virtual).
struct StaticBuffer {
    buf: &'static mut [u8; TDMR_BUF_BYTES],
}

impl PhysWriter for StaticBuffer {
    fn buffer(&self) -> PhysRange {
        PhysRange::new(self.buf.as_ptr() as u64, TDMR_BUF_BYTES as u64)
    }

    fn write(&mut self, pa: PhysAddr, bytes: &[u8]) -> Result<(), KernelError> {
        let base = self.buf.as_ptr() as u64;
        let off = pa.0.checked_sub(base).ok_or(KernelError(3))? as usize;
        let dst = self
            .buf
            .get_mut(off..off + bytes.len())
            .ok_or(KernelError(3))?;
        dst.copy_from_slice(bytes);
        // The module reads physical memory: make sure the bytes are there before SEAMCALL.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// The kernel's scrub, timed (TSC) for the drain report.
#[derive(Default)]
struct KernelScrubber {
    tsc: u64,
}

impl Scrubber for KernelScrubber {
    fn scrub(&mut self, range: PhysRange) -> Result<(), KernelError> {
        let t0 = tsc();
        let r = hl::scrub(range.base.0, range.size.0).map_err(|_| KernelError(4));
        self.tsc += tsc() - t0;
        r
    }
}

/// Cost of the scrub steps since the quarantine was last empty (reported when it drains).
#[derive(Default)]
struct DrainCost {
    steps: u64,
    bytes: u64,
    step_tsc: u64,
    scrub_tsc: u64,
    worst_step_tsc: u64,
}

/// The kernel's online-memory table (memory-authority capability).
struct KernelMemory;

impl MemoryAuthority for KernelMemory {
    fn online_memory(&mut self, range: PhysRange) -> Result<(), KernelError> {
        hl::online_memory(range.base.0, range.size.0).map_err(|e| {
            ulog!("tdx-host: the kernel refused to online {range:?}: {e:?}");
            KernelError(5)
        })
    }

    fn offline_memory(&mut self, range: PhysRange) -> Result<(), KernelError> {
        hl::offline_memory(range.base.0, range.size.0).map_err(|e| {
            ulog!("tdx-host: the kernel refused to offline {range:?}: {e:?}");
            KernelError(6)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Platform view.

struct Platform {
    cpus: Vec<Cpu, 256>,
    ram: Vec<MemRange, MAX_MEMORY_RANGES>,
    offline: Vec<MemRange, MAX_MEMORY_RANGES>,
    image: Vec<PhysRange, 8>,
    hotplug_window: Option<PhysRange>,
    keyids: Option<KeyIdPartition>,
    nodes: u16,
    complete: bool,
}

/// `r` minus every boot-offline range of the manifest, into `out`.
fn push_minus_offline(r: MemRange, out: &mut Vec<MemRange, MAX_MEMORY_RANGES>) -> bool {
    let mut pieces: Vec<(u64, u64), 16> = Vec::new();
    let _ = pieces.push((r.range.base.0, r.range.base.0 + r.range.size.0));
    for &(b, s, _) in config::BOOT_OFFLINE {
        let (ob, oe) = (b, b + s);
        let mut next: Vec<(u64, u64), 16> = Vec::new();
        for &(pb, pe) in &pieces {
            if oe <= pb || ob >= pe {
                let _ = next.push((pb, pe));
                continue;
            }
            if pb < ob {
                let _ = next.push((pb, ob));
            }
            if oe < pe {
                let _ = next.push((oe, pe));
            }
        }
        pieces = next;
    }
    for (b, e) in pieces {
        let m = MemRange {
            range: PhysRange::new(b, e - b),
            node: r.node,
        };
        if out.push(m).is_err() {
            return false;
        }
    }
    true
}

fn read_platform() -> Platform {
    let mut p = Platform {
        cpus: Vec::new(),
        ram: Vec::new(),
        offline: Vec::new(),
        image: Vec::new(),
        hotplug_window: None,
        keyids: None,
        nodes: 1,
        complete: false,
    };
    let record = match hl::read_platform() {
        Ok(r) => r,
        Err(e) => {
            ulog!("tdx-host: cannot read the platform record: {e:?}");
            return p;
        }
    };
    let running = hl::cpu_count().unwrap_or(0);
    let mut complete = !record.flags.contains(abi::platform::RecordFlags::TRUNCATED);
    for i in 0..running {
        let apic = hl::cpu_apic_id(i).ok();
        let info = apic.and_then(|a| record.cpus().iter().find(|c| c.apic_id == a));
        let cpu = Cpu {
            package: info.map_or(0, |c| c.package),
            node: info.map_or(0, |c| c.node as u16),
            enabled: true,
        };
        if p.cpus.push(cpu).is_err() {
            complete = false;
        }
    }
    for m in record.ram() {
        let r = MemRange {
            range: PhysRange::new(m.base, m.size),
            node: m.node as u16,
        };
        complete &= push_minus_offline(r, &mut p.ram);
    }
    for &(b, s, node) in config::BOOT_OFFLINE {
        let m = MemRange {
            range: PhysRange::new(b, s),
            node,
        };
        complete &= p.offline.push(m).is_ok();
    }
    for r in record.image() {
        let _ = p.image.push(PhysRange::new(r.base, r.size));
    }
    p.hotplug_window = record.hotplug.map(|h| PhysRange::new(h.base, h.size));
    p.nodes = (record.nodes().len() as u16).max(1);
    p.keyids = hl::keyid_partition()
        .ok()
        .map(|(_, nr_mktme, nr_tdx)| KeyIdPartition { nr_mktme, nr_tdx });
    p.complete = complete;
    p
}

// ---------------------------------------------------------------------------------------------
// Init report.

const MIB: u64 = 1 << 20;

fn report(b: &Bringup, st: &InitStorage, p: &Platform, clock: &StepClock, t0: u64, t_end: u64) {
    let info = b.info();
    let counts = b.counts();
    ulog!("tdx-host: ---- TDX init report ----");
    let packages = {
        let mut seen: Vec<u32, 64> = Vec::new();
        for c in &p.cpus {
            if !seen.contains(&c.package) {
                let _ = seen.push(c.package);
            }
        }
        seen.len()
    };
    let lp_done =
        counts.seamcalls[InitStep::LpInit as usize] - counts.retries[InitStep::LpInit as usize];
    ulog!(
        "tdx-host: CPUs: {} running in {} packages, {} nodes; LP.INIT succeeded on {}",
        p.cpus.len(),
        packages,
        p.nodes,
        if matches!(b.state(), State::Ready) {
            p.cpus.len() as u32
        } else {
            lp_done
        }
    );
    ulog!(
        "tdx-host: module {}.{}.{} build {}, features0 {:#x}; KeyIDs: {} MKTME, {} TDX [{}..={}], global KeyID {}",
        info.major,
        info.minor,
        info.update,
        info.build_num,
        info.features0,
        info.keyids.nr_mktme,
        info.keyids.nr_tdx,
        info.keyids.first_tdx(),
        info.keyids.nr_mktme + info.keyids.nr_tdx,
        info.global_keyid
    );
    if let Some(l) = info.limits {
        ulog!(
            "tdx-host: limits: {} TDMRs, {} reserved areas per TDMR, PAMT entry {}/{}/{} bytes",
            l.max_tdmrs,
            l.max_reserved_per_tdmr,
            l.pamt_entry_size[0],
            l.pamt_entry_size[1],
            l.pamt_entry_size[2]
        );
    }
    for (i, c) in info.cmrs.iter().enumerate() {
        ulog!(
            "tdx-host: CMR {i}: [{:#012x}, {:#012x}) {} MiB",
            c.base.0,
            c.base.0 + c.size.0,
            c.size.0 / MIB
        );
    }
    for (i, t) in st.plan.tdmrs.iter().enumerate() {
        ulog!(
            "tdx-host: TDMR {i}: [{:#012x}, {:#012x}) node {}, {} reserved areas, PAMT {} KiB",
            t.base.0,
            t.base.0 + t.size.0,
            t.node,
            t.reserved.len(),
            t.pamt_bytes() / 1024
        );
        for (j, a) in t.reserved.iter().enumerate() {
            ulog!(
                "tdx-host:   reserved {j}: [{:#012x}, {:#012x}) {} KiB",
                t.base.0 + a.offset.0,
                t.base.0 + a.offset.0 + a.size.0,
                a.size.0 / 1024
            );
        }
        let names = ["4K", "2M", "1G"];
        for (lvl, r) in t.pamt.iter().enumerate() {
            ulog!(
                "tdx-host:   PAMT {}: [{:#012x}, {:#012x}) {} KiB",
                names[lvl],
                r.base.0,
                r.base.0 + r.size.0,
                r.size.0 / 1024
            );
        }
    }
    if !st.plan.tdmrs.is_empty() {
        ulog!(
            "tdx-host: PAMT total {} KiB for {} MiB of TDMRs ({} PAMT blocks)",
            st.plan.pamt_bytes.0 / 1024,
            st.plan.tdmr_bytes() / MIB,
            st.plan.pamt_blocks.len()
        );
    }
    ulog!("tdx-host: cost per step (SEAMCALLs incl. retries; TSC delta = guest instructions under -icount, time under plain TCG):");
    let mut total_tsc = 0;
    for step in InitStep::ALL {
        let k = step as usize;
        let start = if step == InitStep::Detect {
            Some(t0)
        } else {
            clock.first[k]
        };
        let end = InitStep::ALL[k + 1..]
            .iter()
            .find_map(|s| clock.first[*s as usize])
            .unwrap_or(t_end);
        let ticks = start.map_or(0, |s| end.saturating_sub(s));
        total_tsc += ticks;
        ulog!(
            "tdx-host:   {:<13} {:>6} SEAMCALLs {:>3} retries {:>12} tsc",
            step_name(step),
            counts.seamcalls[k],
            counts.retries[k],
            ticks
        );
    }
    ulog!(
        "tdx-host:   total         {:>6} SEAMCALLs, {} cache flushes, {} tsc",
        counts.total(),
        counts.flushes,
        total_tsc
    );
}

fn step_name(s: InitStep) -> &'static str {
    match s {
        InitStep::Detect => "detect",
        InitStep::SysInit => "SYS.INIT",
        InitStep::LpInit => "LP.INIT",
        InitStep::ReadMetadata => "SYS.RD",
        InitStep::Plan => "plan",
        InitStep::Config => "SYS.CONFIG",
        InitStep::CacheFlush => "WBINVD",
        InitStep::KeyConfig => "KEY.CONFIG",
        InitStep::TdmrInit => "TDMR.INIT",
    }
}

fn state_line(b: &Bringup) {
    match b.state() {
        State::Ready => defmt::info!("state Ready: serving TD memory"),
        State::Failed {
            step,
            status,
            plan_error,
        } => match plan_error {
            Some(e) => ulog!(
                "tdx-host: state Failed at {} with {:#018x}: {:?}",
                step_name(step),
                status.0,
                e
            ),
            None => ulog!(
                "tdx-host: state Failed at {} with {}",
                step_name(step),
                status
            ),
        },
        State::Unavailable(r) => ulog!("tdx-host: state Unavailable: TDX unavailable ({r:?})"),
        other => ulog!("tdx-host: state {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The IDL server.

/// The IDL server and its quarantine pacing.
///
/// Scheduling rule (bounded work per request): handlers never scrub. While anything waits in
/// quarantine, tdx-host keeps its timer armed for the next tick, and on the timer notification
/// does one [`Server::scrub_step`], then re-arms. So it does at most one step per tick and
/// sleeps in between: a lower-priority task waits for at most one step, and so does a request
/// (the kernel delivers a pending notification before a waiting message).
///
/// Step size: at most 2 MiB (one kernel scrub and 512 RDMD checks), and less where a step is
/// slow (under TCG the kernel's 2 MiB scrub alone takes about three 1 ms ticks): a step that saw
/// the tick change halves the next one (down to [`MIN_STEP_BYTES`]); four in a row that did not
/// double it again. A step then stays under a tick whatever the machine, and lower-priority
/// tasks get the rest of each tick.
struct Host {
    server: &'static mut Server<'static>,
    seam: KernelSeam,
    stats: ServerStats,
    /// The timer is armed for a scrub step.
    step_armed: bool,
    /// Bytes the next step may take (see the scheduling rule above).
    step_bytes: u64,
    /// Steps in a row that did not see the tick change.
    quiet_steps: u32,
    drain: DrainCost,
}

/// The smallest step the pacing shrinks to.
const MIN_STEP_BYTES: u64 = 64 * 1024;

type Res<T> = Result<T, RequestError<TdxHostError>>;

impl Host {
    fn refuse<T>(&mut self, r: Result<T, TdxHostError>) -> Res<T> {
        if r.is_err() {
            self.stats.refused = self.stats.refused.wrapping_add(1);
        }
        r.map_err(RequestError::Runtime)
    }

    /// Arms the timer for a scrub step at the next tick if anything waits in quarantine.
    fn schedule_scrub(&mut self) {
        let waiting = self.server.quarantined_bytes();
        self.stats.quarantined_bytes = waiting;
        if waiting > 0 && !self.step_armed {
            self.step_armed = true;
            let next_tick = sys_get_timer().now + 1;
            sys_set_timer(Some(next_tick), task_gen::notifications::TIMER_MASK);
        }
    }

    /// One bounded scrub step; updates the counters and schedules the next one.
    fn scrub_step(&mut self) {
        self.step_armed = false;
        if self.server.quarantined_bytes() == 0 {
            return;
        }
        let mut scrubber = KernelScrubber::default();
        let tick0 = sys_get_timer().now;
        let t0 = tsc();
        let r = self
            .server
            .scrub_step(&mut self.seam, &mut scrubber, self.step_bytes);
        let spent = tsc() - t0;
        if sys_get_timer().now != tick0 {
            self.step_bytes = (self.step_bytes / 2).max(MIN_STEP_BYTES);
            self.quiet_steps = 0;
        } else {
            self.quiet_steps += 1;
            if self.quiet_steps >= 4 {
                self.step_bytes = (self.step_bytes * 2).min(tdx_host_api::SCRUB_STEP_BYTES);
                self.quiet_steps = 0;
            }
        }
        let d = &mut self.drain;
        d.steps += 1;
        d.bytes += r.released + r.retired;
        d.step_tsc += spent;
        d.scrub_tsc += scrubber.tsc;
        d.worst_step_tsc = d.worst_step_tsc.max(spent);
        self.stats.scrubbed_bytes += r.released;
        self.stats.retired_bytes += r.retired;
        self.stats.rdmd_calls += r.rdmd_calls;
        if r.released + r.retired > 0 {
            self.stats.scrub_runs += 1;
        }
        self.schedule_scrub();
        if self.stats.quarantined_bytes == 0 {
            let d = core::mem::take(&mut self.drain);
            defmt::info!(
                "quarantine drained: {=u64} KiB in {=u64} steps (now {=u64} KiB each); per step {=u64} tsc ({=u64} scrub, {=u64} RDMD checks), worst {=u64} tsc",
                d.bytes / 1024,
                d.steps,
                self.step_bytes / 1024,
                d.step_tsc / d.steps.max(1),
                d.scrub_tsc / d.steps.max(1),
                (d.step_tsc - d.scrub_tsc) / d.steps.max(1),
                d.worst_step_tsc
            );
        }
    }
}

impl TdxHostServer for Host {
    fn notification_mask(&self) -> u64 {
        task_gen::notifications::CLIENT_RESTARTED_MASK | task_gen::notifications::TIMER_MASK
    }

    fn handle_notification(&mut self, bits: u64) {
        if bits & task_gen::notifications::TIMER_MASK != 0 {
            self.scrub_step();
        }
        if bits & task_gen::notifications::CLIENT_RESTARTED_MASK == 0 {
            return;
        }
        self.stats.restarts_seen = self.stats.restarts_seen.wrapping_add(1);
        let mut reclaimed = 0;
        for i in 0..task_gen::TASK_NAMES.len() {
            if i == usize::from(task_gen::TASK_INDEX) {
                continue;
            }
            let current = sys_refresh_task_id(TaskIndex(i as u16));
            let got = self.server.client_restarted(Owner(current.0));
            if got > 0 {
                defmt::info!(
                    "{=str} restarted: reclaimed {=u64} KiB into quarantine",
                    task_gen::TASK_NAMES[i],
                    got / 1024
                );
            }
            reclaimed += got;
        }
        self.stats.reclaimed_bytes += reclaimed;
        self.schedule_scrub();
    }

    fn status(&mut self, _msg: &RecvMessage) -> Result<ModuleStatus, RequestError<Infallible>> {
        Ok(self.server.status())
    }

    fn alloc_frames(
        &mut self,
        msg: &RecvMessage,
        node: u16,
        size: FrameSize,
        class: MemClass,
        count: u32,
        addrs: Leased<W, [u8]>,
    ) -> Res<u32> {
        let mut local = [0u8; 4096];
        let len = addrs.len().min(local.len());
        let r = self.server.alloc_frames(
            Owner(msg.sender.0),
            node,
            size,
            class,
            count,
            &mut local[..len],
        );
        let n = self.refuse(r)?;
        let bytes = n as usize * tdx_host_api::ADDR_BYTES;
        if let Err(e) = addrs.write_range(0..bytes, &local[..bytes]) {
            // The client cannot take the addresses: give the frames back at once.
            let _ = self
                .server
                .free_frames(Owner(msg.sender.0), size, &local[..bytes]);
            self.schedule_scrub();
            return Err(e.into());
        }
        Ok(n)
    }

    fn free_frames(
        &mut self,
        msg: &RecvMessage,
        size: FrameSize,
        addrs: Leased<R, [u8]>,
    ) -> Res<u32> {
        let mut local = [0u8; 4096];
        let len = addrs.len().min(local.len());
        addrs.read_range(0..len, &mut local[..len])?;
        let r = self
            .server
            .free_frames(Owner(msg.sender.0), size, &local[..len]);
        let n = self.refuse(r)?;
        self.schedule_scrub();
        Ok(n)
    }

    fn node_info(&mut self, _msg: &RecvMessage, node: u16) -> Res<NodeInfo> {
        let r = self.server.node_info(node);
        self.refuse(r)
    }

    fn region_map(
        &mut self,
        _msg: &RecvMessage,
        first: u32,
        out: Leased<W, [u8]>,
    ) -> Res<RegionMapReply> {
        let mut local = [0u8; 4096];
        let len = out.len().min(local.len());
        let r = self.server.region_map(first, &mut local[..len]);
        let reply = self.refuse(r)?;
        let bytes = reply.written as usize * core::mem::size_of::<tdx_host_api::RegionRecord>();
        out.write_range(0..bytes, &local[..bytes])?;
        Ok(reply)
    }

    fn online_region(
        &mut self,
        msg: &RecvMessage,
        base: u64,
        size: u64,
        node: u16,
    ) -> Res<OnlineReply> {
        let r = self
            .server
            .online_region(Owner(msg.sender.0), base, size, node, &mut KernelMemory);
        match &r {
            Ok(o) => ulog!(
                "tdx-host: online [{base:#x}, +{} MiB) node {node}: {} (node TDX-capable: {})",
                size / MIB,
                if o.class == MemClass::Tdx as u8 {
                    "TDX"
                } else {
                    "non-TDX"
                },
                o.node_tdx_capable != 0
            ),
            Err(e) => ulog!("tdx-host: online [{base:#x}, +{size:#x}) node {node} refused: {e:?}"),
        }
        self.refuse(r)
    }

    fn offline_region(&mut self, msg: &RecvMessage, base: u64, size: u64) -> Res<()> {
        let r = self
            .server
            .offline_region(Owner(msg.sender.0), base, size, &mut KernelMemory);
        if r == Err(TdxHostError::RegionBusy) {
            let busy = self.server.regions.as_ref().and_then(|g| {
                g.frames
                    .pools()
                    .iter()
                    .find(|p| p.range == PhysRange::new(base, size))
                    .map(|p| p.in_use)
            });
            ulog!(
                "tdx-host: offline [{base:#x}, +{size:#x}) refused: {} frames of 4 KiB in use",
                busy.unwrap_or(0)
            );
        }
        self.refuse(r)
    }

    fn stats(&mut self, msg: &RecvMessage) -> Result<ServerStats, RequestError<Infallible>> {
        let mut s = self.stats;
        let index = msg.sender.index().0;
        if let Some(r) = self.server.regions.as_ref() {
            s.caller_usage_bytes = r.frames.usage(index);
            s.quarantined_bytes = r.frames.quarantined_bytes();
        }
        s.caller_quota_bytes = config::CLIENTS
            .iter()
            .find(|c| c.task_index == index)
            .map_or(0, |c| c.quota_bytes);
        Ok(s)
    }
}

// ---------------------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub fn main() -> ! {
    // Safety: `main` runs once; these are the only references ever made to the statics.
    let (buf, bitmap, storage, server_slot) = unsafe {
        (
            &mut (*addr_of_mut!(TDMR_BUF)).0,
            &mut *addr_of_mut!(BITMAP),
            &mut *addr_of_mut!(STORAGE),
            &mut *addr_of_mut!(SERVER),
        )
    };
    let storage: &'static mut InitStorage = storage.write(InitStorage::default());
    let platform = read_platform();
    let view = PlatformView {
        cpus: &platform.cpus,
        ram: &platform.ram,
        boot_offline: &platform.offline,
        image: &platform.image,
        keyids: platform.keyids,
        nodes: platform.nodes,
        complete: platform.complete,
    };
    ulog!(
        "tdx-host: bring-up on {} CPUs, {} nodes, {} MiB of boot RAM ({} MiB kept offline), policy {:?}",
        platform.cpus.len(),
        platform.nodes,
        platform.ram.iter().map(|m| m.range.size.0).sum::<u64>() / MIB,
        platform.offline.iter().map(|m| m.range.size.0).sum::<u64>() / MIB,
        config::HOTPLUG_POLICY
    );
    let mut seam = KernelSeam {
        clock: Some(StepClock::default()),
    };
    let mut writer = StaticBuffer { buf };
    let mut bringup = Bringup::new(InitConfig::default());
    let mut last_report = 0u64;
    let mut progress = |p: &Progress| {
        // One line per initialized GiB (the module's granularity, §3.2), and the end.
        if p.bytes_done >= last_report + (1 << 30) || p.bytes_done == p.bytes_total {
            last_report = p.bytes_done;
            // defmt: progress lines can be many on large memory, and a
            // binary frame costs a fraction of a formatted line.
            defmt::info!(
                "TDMR.INIT: TDMR {=usize} at {=u64:#x} initialized to {=u64:#x} ({=u64} of {=u64} MiB)",
                p.tdmr,
                p.tdmr_base.0,
                p.initialized_end.0,
                p.bytes_done / MIB,
                p.bytes_total / MIB
            );
        }
    };
    let t0 = tsc();
    bringup.run(&mut seam, &mut writer, &view, storage, &mut progress);
    let t_end = tsc();
    let clock = seam.clock.take().unwrap_or_default();
    report(&bringup, storage, &platform, &clock, t0, t_end);

    let pamt = storage.plan.pamt_bytes.0;
    let ntdmrs = storage.plan.tdmrs.len() as u16;
    let ready = bringup.state() == State::Ready;
    let server: &'static mut Server<'static> =
        server_slot.write(Server::new(bringup, None, config::CLIENTS, pamt, ntdmrs));
    if ready {
        let frames = FrameAllocator::new(bitmap);
        let memory = PlatformMemory {
            hotplug_window: platform.hotplug_window,
            cmrs: &server.bringup.info().cmrs,
        };
        match Regions::build(
            frames,
            storage,
            memory,
            config::HOTPLUG_POLICY,
            platform.nodes,
        ) {
            Ok(r) => server.regions = Some(r),
            Err(e) => {
                // Not Ready for clients: the state says so (NotReady) and nothing is served.
                ulog!("tdx-host: cannot build the region map: {e:?}; serving no memory");
            }
        }
    }
    state_line(&server.bringup);
    if let Some(r) = server.regions.as_ref() {
        for n in 0..r.nodes() {
            let t = r.node_totals(n);
            ulog!(
                "tdx-host: node {n}: {} MiB TDX ({} MiB free), {} MiB non-TDX, TDX-capable: {}",
                t.tdx_total / MIB,
                t.tdx_free / MIB,
                t.non_tdx_total / MIB,
                t.tdx_capable()
            );
        }
        let offline: u64 = r
            .frames
            .pools()
            .iter()
            .filter(|p| !p.online)
            .map(|p| p.range.size.0)
            .sum();
        ulog!(
            "tdx-host: {} regions ({} MiB offline until onlined); serving",
            r.frames.pools().len(),
            offline / MIB
        );
    }
    let mut stats = ServerStats::default();
    for (slot, n) in stats
        .init_retries
        .iter_mut()
        .zip(server.bringup.counts().retries)
    {
        *slot = u16::try_from(n).unwrap_or(u16::MAX);
    }
    let mut host = Host {
        server,
        seam,
        stats,
        step_armed: false,
        step_bytes: tdx_host_api::SCRUB_STEP_BYTES,
        quiet_steps: 0,
        drain: DrainCost::default(),
    };
    let mut buffer = [0u8; TDX_HOST_BUFFER_SIZE];
    loop {
        dispatch_tdx_host(&mut host, &mut buffer);
    }
}
