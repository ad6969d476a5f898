//! tdx-host, the server task: brings the TDX module up, prints the init report, then serves
//! `idl/tdx-host.idol` (RECV/REPLY only; it never SENDs).
//!
//! Pattern: a thin adapter. All logic lives in the library (bring-up, report, regions, handlers,
//! scrub pacing); this binary implements its traits over kernel syscalls, keeps the big tables
//! in `static`s, and glues the generated dispatch (leases, reply codes) to
//! [`tdx_host::server::Server`]. Policy (quotas, nodes, classes, hotplug policy, boot-offline
//! ranges) comes from the manifest through `build.rs`; per-operation rights are enforced by the
//! generated dispatch (`[tasks.tdx-host.config.access]`). Hygiene: frees and reclaims only
//! quarantine; one bounded scrub step runs per timer tick (see `tdx_host::server::pacing`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod task {
    use core::convert::Infallible;
    use core::mem::MaybeUninit;
    use core::ptr::addr_of_mut;

    use abi::kipc::KipcError;
    use idol_runtime::{Leased, RequestError, R, W};
    use tdx_abi::{SeamcallArgs, SeamcallResult};
    use tdx_host::frames::{bitmap_words, FrameAllocator, Owner, MAX_POOLS};
    use tdx_host::init::report::{InitReport, StateLine, Trace};
    use tdx_host::init::{Bringup, InitConfig, InitStorage, Progress, State};
    use tdx_host::platform::Platform;
    use tdx_host::regions::{MemoryAuthority, PlatformMemory, Regions};
    use tdx_host::seam::{self, CpuIndex, IdentityBuffer, KernelError, KeyIdPartition, SeamError};
    use tdx_host::server::pacing::{ScrubPacer, Timer};
    use tdx_host::server::{OnlineLine, Scrubber, Server};
    use tdx_host_api as api;
    use tdx_planner::addr::PhysRange;
    use userlib::hl::{self, KipcFailure};
    use userlib::{sys_get_timer, sys_refresh_task_id, sys_seamcall, sys_set_timer, ulog};
    use userlib::{RecvMessage, SeamcallOutcome as Out, TaskIndex};

    include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
    include!(concat!(env!("OUT_DIR"), "/server_stub.rs"));
    mod config {
        include!(concat!(env!("OUT_DIR"), "/tdx_host_config.rs"));
    }
    use task_gen::notifications::{CLIENT_RESTARTED_MASK, TIMER_MASK};

    /// Pool memory the allocator can track (2 bits per 4 KiB frame): 4 GiB in 256 KiB of bitmap.
    const BITMAP_WORDS: usize = bitmap_words(4 << 30, MAX_POOLS);
    /// TDMR_INFO buffer: the PA array, then 512 bytes per TDMR (§5.3).
    const TDMR_BUF_BYTES: usize = 512 * (1 + tdx_planner::MAX_TDMRS);
    const MIB: u64 = 1 << 20;

    #[repr(C, align(4096))]
    struct TdmrBuf([u8; TDMR_BUF_BYTES]);

    static mut TDMR_BUF: TdmrBuf = TdmrBuf([0; TDMR_BUF_BYTES]);
    static mut BITMAP: [u64; BITMAP_WORDS] = [0; BITMAP_WORDS];
    static mut STORAGE: MaybeUninit<InitStorage> = MaybeUninit::uninit();
    static mut SERVER: MaybeUninit<Server<'static>> = MaybeUninit::uninit();

    fn tsc() -> u64 {
        // Safety: RDTSC has no memory effects; the kernel does not set CR4.TSD.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn kernel_error(e: KipcFailure) -> KernelError {
        match e {
            KipcFailure::Kernel(k) => KernelError::Kipc(k),
            KipcFailure::Unknown(raw) => KernelError::from_raw(raw),
        }
    }

    /// The kernel's services: SEAMCALL, cache flush, scrub, the online-memory table, the timer.
    struct Kernel;

    impl seam::Seam for Kernel {
        fn seamcall(
            &mut self,
            cpu: Option<CpuIndex>,
            a: SeamcallArgs,
        ) -> Result<SeamcallResult, SeamError> {
            let kernel = |e| Err(SeamError::Kernel(e));
            match sys_seamcall(
                cpu.map(|c| c.0),
                a.rax,
                [a.rcx, a.rdx, a.r8, a.r9, a.r10, a.r11],
            ) {
                Out::Returned { rax, out } => Ok(seam::returned(rax, out)),
                Out::VmFailInvalid => Err(SeamError::VmFailInvalid),
                Out::FaultUd => Err(SeamError::Ud),
                Out::FaultGp => Err(SeamError::Gp),
                Out::NoSuchCpu | Out::Timeout => {
                    Err(SeamError::NoSuchCpu(cpu.unwrap_or(CpuIndex(0))))
                }
                Out::Denied => kernel(KernelError::Kipc(KipcError::Denied)),
                // The kernel's gate refused the call before the module saw it: a bug in this
                // task's operands.
                Out::LeafRefused => kernel(KernelError::LeafRefused),
                Out::OperandRefused { .. } => kernel(KernelError::OperandRefused),
                Out::Unknown(code) => kernel(KernelError::Unknown(code)),
            }
        }

        fn flush_caches_all_cpus(&mut self) -> Result<(), KernelError> {
            hl::flush_caches().map_err(kernel_error)
        }
    }

    impl Scrubber for Kernel {
        fn scrub(&mut self, r: PhysRange) -> Result<(), KernelError> {
            hl::scrub(r.base.0, r.size.0).map_err(kernel_error)
        }
    }

    impl MemoryAuthority for Kernel {
        fn online_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
            hl::online_memory(r.base.0, r.size.0).map_err(kernel_error)
        }

        fn offline_memory(&mut self, r: PhysRange) -> Result<(), KernelError> {
            hl::offline_memory(r.base.0, r.size.0).map_err(kernel_error)
        }
    }

    impl Timer for Kernel {
        fn now(&self) -> u64 {
            sys_get_timer().now
        }

        fn arm(&mut self, tick: u64) {
            sys_set_timer(Some(tick), TIMER_MASK);
        }
    }

    /// The IDL server, its counters and its scrub pacing.
    struct Host {
        server: &'static mut Server<'static>,
        stats: api::ServerStats,
        pacer: ScrubPacer,
    }

    type Res<T> = Result<T, RequestError<api::TdxHostError>>;

    impl Host {
        fn refuse<T>(&mut self, r: Result<T, api::TdxHostError>) -> Res<T> {
            self.stats.refused = self.stats.refused.wrapping_add(u32::from(r.is_err()));
            r.map_err(RequestError::Runtime)
        }

        fn schedule_scrub(&mut self) {
            self.pacer
                .schedule(self.server, &mut Kernel, &mut self.stats);
        }
    }

    impl TdxHostServer for Host {
        fn notification_mask(&self) -> u64 {
            CLIENT_RESTARTED_MASK | TIMER_MASK
        }

        fn handle_notification(&mut self, bits: u64) {
            if bits & TIMER_MASK != 0 {
                let kernel = (&mut Kernel, &mut Kernel);
                if let Some(d) =
                    self.pacer
                        .tick(self.server, kernel, &mut Kernel, tsc, &mut self.stats)
                {
                    let (step, scrub, rdmd) = d.per_step();
                    defmt::info!("quarantine drained: {=u64} KiB in {=u64} steps (now {=u64} KiB each); per step {=u64} tsc ({=u64} scrub, {=u64} RDMD checks), worst {=u64} tsc",
                        d.bytes / 1024, d.steps, self.pacer.step_bytes() / 1024, step, scrub, rdmd, d.worst_step_ticks);
                }
            }
            if bits & CLIENT_RESTARTED_MASK != 0 {
                self.stats.restarts_seen = self.stats.restarts_seen.wrapping_add(1);
                let others =
                    (0..task_gen::TASK_NAMES.len() as u16).filter(|&i| i != task_gen::TASK_INDEX);
                let current = others.map(|i| Owner(sys_refresh_task_id(TaskIndex(i)).0));
                self.stats.reclaimed_bytes += self.server.reclaim_restarted(current, |i, got| {
                    let name = task_gen::TASK_NAMES[usize::from(i)];
                    defmt::info!(
                        "{=str} restarted: reclaimed {=u64} KiB into quarantine",
                        name,
                        got / 1024
                    );
                });
                self.schedule_scrub();
            }
        }

        fn status(
            &mut self,
            _msg: &RecvMessage,
        ) -> Result<api::ModuleStatus, RequestError<Infallible>> {
            Ok(self.server.status())
        }

        fn alloc_frames(
            &mut self,
            msg: &RecvMessage,
            node: u16,
            size: api::FrameSize,
            class: api::MemClass,
            count: u32,
            addrs: Leased<W, [u8]>,
        ) -> Res<u32> {
            let (mut local, owner) = ([0u8; 4096], Owner(msg.sender.0));
            let len = addrs.len().min(local.len());
            let r = self
                .server
                .alloc_frames(owner, node, size, class, count, &mut local[..len]);
            let n = self.refuse(r)?;
            let bytes = n as usize * api::ADDR_BYTES;
            if let Err(e) = addrs.write_range(0..bytes, &local[..bytes]) {
                // The client cannot take the addresses: give the frames back at once.
                let _ = self.server.free_frames(owner, size, &local[..bytes]);
                self.schedule_scrub();
                return Err(e.into());
            }
            Ok(n)
        }

        fn free_frames(
            &mut self,
            msg: &RecvMessage,
            size: api::FrameSize,
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

        fn node_info(&mut self, _msg: &RecvMessage, node: u16) -> Res<api::NodeInfo> {
            let r = self.server.node_info(node);
            self.refuse(r)
        }

        fn region_map(
            &mut self,
            _msg: &RecvMessage,
            first: u32,
            out: Leased<W, [u8]>,
        ) -> Res<api::RegionMapReply> {
            let mut local = [0u8; 4096];
            let len = out.len().min(local.len());
            let r = self.server.region_map(first, &mut local[..len]);
            let reply = self.refuse(r)?;
            let bytes = reply.written as usize * core::mem::size_of::<api::RegionRecord>();
            out.write_range(0..bytes, &local[..bytes])?;
            Ok(reply)
        }

        fn online_region(
            &mut self,
            msg: &RecvMessage,
            base: u64,
            size: u64,
            node: u16,
        ) -> Res<api::OnlineReply> {
            let result =
                self.server
                    .online_region(Owner(msg.sender.0), base, size, node, &mut Kernel);
            let range = PhysRange::new(base, size);
            ulog!(
                "tdx-host: {}",
                OnlineLine {
                    range,
                    node,
                    result: &result
                }
            );
            self.refuse(result)
        }

        fn offline_region(&mut self, msg: &RecvMessage, base: u64, size: u64) -> Res<()> {
            let r = self
                .server
                .offline_region(Owner(msg.sender.0), base, size, &mut Kernel);
            if r == Err(api::TdxHostError::RegionBusy) {
                let busy = self
                    .server
                    .frames_in_use(PhysRange::new(base, size))
                    .unwrap_or(0);
                ulog!("tdx-host: offline [{base:#x}, +{size:#x}) refused: {busy} frames of 4 KiB in use");
            }
            self.refuse(r)
        }

        fn stats(
            &mut self,
            msg: &RecvMessage,
        ) -> Result<api::ServerStats, RequestError<Infallible>> {
            Ok(self.server.stats(msg.sender.index().0, self.stats))
        }
    }

    fn read_platform() -> Platform {
        let record = match hl::read_platform() {
            Ok(r) => r,
            Err(e) => {
                ulog!("tdx-host: cannot read the platform record: {e:?}");
                return Platform::unreadable();
            }
        };
        let running = (0..hl::cpu_count().unwrap_or(0)).map(|i| hl::cpu_apic_id(i).ok());
        let keyids = hl::keyid_partition()
            .ok()
            .map(|(_, nr_mktme, nr_tdx)| KeyIdPartition { nr_mktme, nr_tdx });
        Platform::from_record(&record, running, config::BOOT_OFFLINE, keyids)
    }

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
        let view = platform.view();
        let (ram, offline) = view.ram_bytes();
        ulog!("tdx-host: bring-up on {} CPUs, {} nodes, {} MiB of boot RAM ({} MiB kept offline), policy {:?}",
            view.cpus.len(), view.nodes, ram / MIB, offline / MIB, config::HOTPLUG_POLICY);
        // defmt: progress lines can be many on large memory, and a binary frame costs a
        // fraction of a formatted line.
        let mut trace = Trace::new(tsc, |p: &Progress| {
            defmt::info!("TDMR.INIT: TDMR {=usize} at {=u64:#x} initialized to {=u64:#x} ({=u64} of {=u64} MiB)",
            p.tdmr, p.tdmr_base.0, p.initialized_end.0, p.bytes_done / MIB, p.bytes_total / MIB)
        });
        let mut bringup = Bringup::new(InitConfig::default());
        let state = bringup.run(
            &mut Kernel,
            &mut IdentityBuffer(buf),
            &view,
            storage,
            &mut trace,
        );
        let report = InitReport {
            bringup: &bringup,
            storage,
            platform: &view,
            ticks: trace.times.all(),
        };
        report.write(&mut |line| ulog!("tdx-host: {line}"));
        let (pamt, tdmrs) = (storage.pamt_bytes(), storage.tdmr_count());
        let server = server_slot.write(Server::new(bringup, None, config::CLIENTS, pamt, tdmrs));
        if state == State::Ready {
            let memory = PlatformMemory {
                hotplug_window: platform.hotplug_window(),
                cmrs: server.bringup.cmrs(),
            };
            match Regions::build(
                FrameAllocator::new(bitmap),
                storage,
                memory,
                config::HOTPLUG_POLICY,
                view.nodes,
            ) {
                Ok(r) => server.serve(r),
                // Not Ready for clients: the state says so (NotReady) and nothing is served.
                Err(e) => ulog!("tdx-host: cannot build the region map: {e:?}; serving no memory"),
            }
        }
        ulog!("tdx-host: {}", StateLine(state));
        server.write_regions(&mut |line| ulog!("tdx-host: {line}"));
        let stats = server.initial_stats();
        let mut host = Host {
            server,
            stats,
            pacer: ScrubPacer::new(),
        };
        let mut buffer = [0u8; TDX_HOST_BUFFER_SIZE];
        loop {
            dispatch_tdx_host(&mut host, &mut buffer);
        }
    }
}
