//! tdx-host, the server task: brings the TDX module up, logs the init report, then serves
//! `idl/tdx-host.idol` (RECV/REPLY only; it never SENDs). Pattern: a thin adapter. All logic lives in the library (bring-up, report, regions, handlers,
//! scrub pacing: `tdx_host::server::{start, service, pacing}`); this binary implements its traits
//! over kernel syscalls, keeps the big tables in `static`s and turns leases and reply codes of
//! the generated dispatch into library calls. Policy comes from the manifest through `build.rs`;
//! per-operation rights are enforced by the dispatch (`[tasks.tdx-host.config.access]`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod task {
    use core::convert::Infallible;
    use core::mem::MaybeUninit;
    use core::ptr::addr_of_mut;

    use idol_runtime::{Leased, RequestError, R, W};
    use tdx_host::frames::{bitmap_words, Owner, MAX_POOLS};
    use tdx_host::init::{record::RecordWords, report::Trace, InitStorage, Progress};
    use tdx_host::ledger::Layout;
    use tdx_host::platform::Platform;
    use tdx_host::seam::{IdentityBuffer, KeyIdPartition};
    use tdx_host::server::service::{Answer, Service};
    use tdx_host::server::start::{start, Setup};
    use tdx_host::server::Server;
    use tdx_host_api::{FrameSize, MemClass, ModuleStatus, NodeInfo, OnlineReply, RegionMapReply};
    use tdx_host_api::{OwnedReply, ServerStats, TdxHostError};
    use userlib::{hl, sys_get_timer, sys_refresh_task_id, ulog, RecvMessage, TaskIndex};

    mod kernel;
    use kernel::Kernel;

    include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
    include!(concat!(env!("OUT_DIR"), "/server_stub.rs"));
    mod config {
        include!(concat!(env!("OUT_DIR"), "/tdx_host_config.rs"));
    }
    use task_gen::{notifications::CLIENT_RESTARTED_MASK, notifications::TIMER_MASK, TASK_NAMES};

    /// Pool memory the allocator can track (2 bits per 4 KiB frame): 4 GiB in 256 KiB of bitmap.
    const BITMAP_WORDS: usize = bitmap_words(4 << 30, MAX_POOLS);
    /// TDMR_INFO buffer: the PA array, then 512 bytes per TDMR (§5.3).
    const TDMR_BUF_BYTES: usize = 512 * (1 + tdx_planner::MAX_TDMRS);

    #[repr(C, align(4096))]
    struct TdmrBuf([u8; TDMR_BUF_BYTES]);
    static mut TDMR_BUF: TdmrBuf = TdmrBuf([0; TDMR_BUF_BYTES]);
    static mut BITMAP: [u64; BITMAP_WORDS] = [0; BITMAP_WORDS];
    static mut STORAGE: MaybeUninit<InitStorage> = MaybeUninit::uninit();
    static mut SERVER: MaybeUninit<Server<'static>> = MaybeUninit::uninit();
    const LEDGER_WORDS: usize = Layout::new(BITMAP_WORDS).total_words();

    /// The ledger and the bring-up record, kept by the kernel across this task's restarts
    /// (`memory.durable`). `repr(C)`, ledger first: a test that damages it names a byte by offset.
    #[repr(C)]
    struct Durable {
        ledger: [u64; LEDGER_WORDS],
        record: RecordWords,
    }

    #[unsafe(link_section = ".durable")]
    static mut DURABLE: Durable = Durable {
        ledger: [0; LEDGER_WORDS],
        record: RecordWords::new(),
    };

    fn tsc() -> u64 {
        // Safety: RDTSC has no memory effects; the kernel does not set CR4.TSD.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    type Res<T> = Result<T, RequestError<TdxHostError>>;
    type Msg = RecvMessage;

    fn answer<T, E: Into<RequestError<TdxHostError>>>(r: Result<T, Answer<E>>) -> Res<T> {
        r.map_err(|e| e.either(RequestError::Runtime, E::into))
    }

    /// The IDL server: leases and reply codes around the library's [`Service`].
    impl TdxHostServer for Service<'static, 'static> {
        fn notification_mask(&self) -> u64 {
            CLIENT_RESTARTED_MASK | TIMER_MASK
        }

        fn handle_notification(&mut self, bits: u64) {
            if bits & TIMER_MASK != 0 {
                self.timer_fired((&mut Kernel, &mut Kernel), &mut Kernel, tsc);
            }
            if bits & CLIENT_RESTARTED_MASK != 0 {
                let others = (0..TASK_NAMES.len() as u16).filter(|&i| i != task_gen::TASK_INDEX);
                let owner = |i: u16| Owner(sys_refresh_task_id(TaskIndex(i)).0);
                let current = others.map(|i| (owner(i), TASK_NAMES[usize::from(i)]));
                self.clients_restarted((&mut Kernel, &mut Kernel), current);
            }
        }

        fn status(&mut self, _: &Msg) -> Result<ModuleStatus, RequestError<Infallible>> {
            Ok(Service::status(self))
        }

        fn alloc_frames(
            &mut self,
            m: &Msg,
            node: u16,
            size: FrameSize,
            class: MemClass,
            n: u32,
            out: Leased<W, [u8]>,
        ) -> Res<u32> {
            let write = |b: &[u8]| out.write_range(0..b.len(), b);
            let what = (Owner(m.sender.0), node, size, class);
            let r = Service::alloc_frames(self, &mut Kernel, what, n, out.len(), write);
            answer(r)
        }

        fn free_frames(&mut self, m: &Msg, size: FrameSize, addrs: Leased<R, [u8]>) -> Res<u32> {
            let read = |b: &mut [u8]| addrs.read_range(0..b.len(), b);
            let what = (Owner(m.sender.0), size);
            let r = Service::free_frames(self, &mut Kernel, what, addrs.len(), read);
            answer(r)
        }

        fn node_info(&mut self, _: &Msg, node: u16) -> Res<NodeInfo> {
            Service::node_info(self, node).map_err(RequestError::Runtime)
        }

        fn region_map(&mut self, _: &Msg, first: u32, out: Leased<W, [u8]>) -> Res<RegionMapReply> {
            let write = |b: &[u8]| out.write_range(0..b.len(), b);
            answer(Service::region_map(self, first, out.len(), write))
        }

        fn online_region(&mut self, m: &Msg, base: u64, size: u64, node: u16) -> Res<OnlineReply> {
            let who = Owner(m.sender.0);
            let r = Service::online_region(self, who, (base, size, node), &mut Kernel);
            r.map_err(RequestError::Runtime)
        }

        fn offline_region(&mut self, m: &Msg, base: u64, size: u64) -> Res<()> {
            let who = Owner(m.sender.0);
            let r = Service::offline_region(self, who, (base, size), &mut Kernel);
            r.map_err(RequestError::Runtime)
        }

        fn alloc_request(
            &mut self,
            m: &Msg,
            id: u32,
            node: u16,
            size: FrameSize,
            class: MemClass,
            n: u32,
            out: Leased<W, [u8]>,
        ) -> Res<u32> {
            let write = |b: &[u8]| out.write_range(0..b.len(), b);
            let what = (Owner(m.sender.0), id, node, size, class);
            answer(Service::alloc_request(
                self,
                &mut Kernel,
                what,
                n,
                out.len(),
                write,
            ))
        }

        fn free_request(
            &mut self,
            m: &Msg,
            id: u32,
            size: FrameSize,
            a: Leased<R, [u8]>,
        ) -> Res<u32> {
            let read = |b: &mut [u8]| a.read_range(0..b.len(), b);
            let what = (Owner(m.sender.0), id, size);
            answer(Service::free_request(
                self,
                &mut Kernel,
                what,
                a.len(),
                read,
            ))
        }

        fn owned(&mut self, m: &Msg, first: u32, out: Leased<W, [u8]>) -> Res<OwnedReply> {
            let write = |b: &[u8]| out.write_range(0..b.len(), b);
            let who = Owner(m.sender.0);
            answer(Service::owned(self, who, first, out.len(), write))
        }

        fn stats(&mut self, m: &Msg) -> Result<ServerStats, RequestError<Infallible>> {
            Ok(Service::stats(self, m.sender.index().0))
        }
    }

    fn read_platform() -> Platform {
        let running = (0..hl::cpu_count().unwrap_or(0)).map(|i| hl::cpu_apic_id(i).ok());
        let msr = hl::keyid_partition().ok();
        let keyids = msr.map(|(_, nr_mktme, nr_tdx)| KeyIdPartition { nr_mktme, nr_tdx });
        match hl::read_platform() {
            Ok(r) => Platform::from_record(&r, running, config::BOOT_OFFLINE, keyids),
            Err(e) => {
                ulog!("tdx-host: cannot read the platform record: {e:?}");
                Platform::unreadable()
            }
        }
    }

    fn log(line: core::fmt::Arguments<'_>) {
        ulog!("tdx-host: {line}");
    }

    #[unsafe(no_mangle)]
    pub fn main() -> ! {
        // This instance's start, for the recovery time it logs once it serves.
        let started = (sys_get_timer().now, tsc());
        // Safety: `main` runs once; these are the only references ever made to the statics.
        let (buf, bitmap, storage, slot, durable) = unsafe {
            (
                &mut (*addr_of_mut!(TDMR_BUF)).0,
                &mut *addr_of_mut!(BITMAP),
                &mut *addr_of_mut!(STORAGE),
                &mut *addr_of_mut!(SERVER),
                &mut *addr_of_mut!(DURABLE),
            )
        };
        let (ledger, record) = (&mut durable.ledger, &durable.record);
        let storage = storage.write(InitStorage::default());
        let platform = read_platform();
        // defmt: many progress lines on large memory; a binary frame is a fraction of a line.
        let mut trace = Trace::new(tsc, |p: &Progress| {
            defmt::info!("TDMR.INIT: TDMR {=usize} at {=u64:#x} initialized to {=u64:#x} ({=u64} of {=u64} MiB)",
                p.tdmr, p.tdmr_base.0, p.initialized_end.0, p.bytes_done >> 20, p.bytes_total >> 20)
        });
        let setup = Setup::new(config::CLIENTS, config::HOTPLUG_POLICY).record(record);
        let tables = (storage, bitmap as &mut [u64], ledger as &mut [u64], slot);
        let kernel = (&mut Kernel, &mut IdentityBuffer(buf));
        let server = start(kernel, &platform, tables, (setup, &mut trace), &mut log);
        let mut service = Service::new(server, log);
        // Clients that restarted while tdx-host was down lose what their old incarnation held.
        service.handle_notification(CLIENT_RESTARTED_MASK);
        service.log_serving(started, (sys_get_timer().now, tsc()));
        let mut buffer = [0u8; TDX_HOST_BUFFER_SIZE];
        loop {
            dispatch_tdx_host(&mut service, &mut buffer);
        }
    }
}
