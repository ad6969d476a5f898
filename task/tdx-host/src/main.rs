//! tdx-host, the server task: brings the TDX module up, logs the init report, then serves
//! `idl/tdx-host.idol` (RECV/REPLY only; it never SENDs) — already while TDMR.INIT runs, which
//! each `seam-done` notification moves on by one bounded step. Pattern: a thin adapter. All logic
//! lives in the library (bring-up, report, regions, handlers, TD operations, scrub pacing:
//! `tdx_host::server::{start, service, td, pacing}`); this binary implements its traits over
//! kernel syscalls (`kernel.rs`), keeps the big tables and the TD staging in `static`s and
//! starts the server (`setup.rs`), and turns leases and reply codes of the generated dispatch
//! into library calls. Policy comes from the manifest through `build.rs`;
//! per-operation rights are enforced by the dispatch (`[tasks.tdx-host.config.access]`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod task {
    use core::convert::Infallible;

    use idol_runtime::{Leased, RequestError, R, W};
    use tdx_host::frames::Owner;
    use tdx_host::server::service::{Answer, Service};
    use tdx_host_api::TeardownReply;
    use tdx_host_api::{FrameSize, MemClass, ModuleStatus, NodeInfo, OnlineReply, RegionMapReply};
    use tdx_host_api::{OwnedReply, ServerStats, TdCreateReply, TdTotals, TdxHostError};
    use userlib::{sys_get_timer, sys_refresh_task_id, RecvMessage, TaskIndex};

    mod kernel;
    mod setup;
    use kernel::Kernel;
    use setup::{log, tsc};

    include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
    include!(concat!(env!("OUT_DIR"), "/server_stub.rs"));
    mod config {
        include!(concat!(env!("OUT_DIR"), "/tdx_host_config.rs"));
    }
    use kernel::SeamKernel;
    use task_gen::notifications::{CLIENT_RESTARTED_MASK, SEAM_DONE_MASK, TIMER_MASK};
    use task_gen::TASK_NAMES;

    type Res<T> = Result<T, RequestError<TdxHostError>>;
    type Lease = Leased<R, [u8]>;
    type Msg = RecvMessage;

    fn rt<T>(r: Result<T, TdxHostError>) -> Res<T> {
        r.map_err(RequestError::Runtime)
    }

    fn who(m: &Msg) -> Owner {
        Owner(m.sender.0)
    }

    fn answer<T, E: Into<RequestError<TdxHostError>>>(r: Result<T, Answer<E>>) -> Res<T> {
        r.map_err(|e| e.either(RequestError::Runtime, E::into))
    }

    /// The IDL server: leases and reply codes around the library's [`Service`].
    impl TdxHostServer for Service<'static, 'static> {
        fn notification_mask(&self) -> u64 {
            CLIENT_RESTARTED_MASK | TIMER_MASK | SEAM_DONE_MASK
        }

        fn handle_notification(&mut self, bits: u64) {
            if bits & SEAM_DONE_MASK != 0 {
                // TDMR.INIT goes on while serving: the CPUs that finished get their next chunk.
                self.advance_init(&mut SeamKernel::new(), &mut Kernel);
            }
            if bits & TIMER_MASK != 0 {
                self.release_init(&mut SeamKernel::new());
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

        fn alloc_frame(
            &mut self,
            m: &Msg,
            node: u16,
            size: FrameSize,
            class: MemClass,
        ) -> Res<u64> {
            rt(Service::alloc_frame(self, (who(m), node, size, class)))
        }

        fn free_frame(&mut self, m: &Msg, size: FrameSize, addr: u64) -> Res<()> {
            rt(Service::free_frame(self, &mut Kernel, (who(m), size), addr))
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

        fn td_create(&mut self, m: &Msg, tdr: u64) -> Res<TdCreateReply> {
            rt(Service::td_create(self, &mut Kernel, who(m), tdr))
        }

        fn td_add_tdcs(&mut self, m: &Msg, td: u32, page: u64) -> Res<()> {
            rt(self.td(|s| s.td_add_tdcs(&mut Kernel, Owner(m.sender.0), td, page)))
        }

        fn td_init(&mut self, m: &Msg, td: u32, params: Lease) -> Res<()> {
            let read = |b: &mut [u8]| params.read_range(0..b.len(), b);
            let who = (&mut Kernel, Owner(m.sender.0), td);
            answer(Service::td_init(self, who, (params.len(), read)))
        }

        fn vcpu_create(&mut self, m: &Msg, td: u32, tdvpr: u64) -> Res<u8> {
            rt(self.td(|s| s.vcpu_create(&mut Kernel, Owner(m.sender.0), td, tdvpr)))
        }

        fn vcpu_add_tdcx(&mut self, m: &Msg, td: u32, vcpu: u8, page: u64) -> Res<()> {
            let who = Owner(m.sender.0);
            rt(self.td(|s| s.vcpu_add_tdcx(&mut Kernel, who, (td, vcpu), page)))
        }

        fn vcpu_init(&mut self, m: &Msg, td: u32, vcpu: u8, cpu: u32, rcx: u64) -> Res<()> {
            let who = Owner(m.sender.0);
            rt(self.td(|s| s.vcpu_init(&mut Kernel, who, (td, vcpu, cpu), rcx)))
        }

        fn sept_add(&mut self, m: &Msg, td: u32, gpa: u64, level: u8, page: u64) -> Res<()> {
            let who = Owner(m.sender.0);
            rt(self.td(|s| s.sept_add(&mut Kernel, who, (td, gpa, level), page)))
        }

        fn page_add(&mut self, m: &Msg, td: u32, gpa: u64, page: u64, source: Lease) -> Res<()> {
            let read = |b: &mut [u8]| source.read_range(0..b.len(), b);
            let (who, what) = ((&mut Kernel, Owner(m.sender.0)), (td, gpa, page));
            answer(Service::page_add(self, who, what, (source.len(), read)))
        }

        fn mr_finalize(&mut self, m: &Msg, td: u32) -> Res<()> {
            rt(self.td(|s| s.mr_finalize(&mut Kernel, Owner(m.sender.0), td)))
        }

        fn page_aug(&mut self, m: &Msg, td: u32, gpa: u64, level: u8, page: u64) -> Res<()> {
            let who = Owner(m.sender.0);
            rt(self.td(|s| s.page_aug(&mut Kernel, who, (td, gpa, level), page)))
        }

        fn page_remove(&mut self, m: &Msg, td: u32, gpa: u64, level: u8) -> Res<u64> {
            let who = Owner(m.sender.0);
            rt(self.td(|s| s.page_remove(&mut Kernel, who, (td, gpa, level))))
        }

        fn td_teardown(&mut self, m: &Msg, td: u32) -> Res<TeardownReply> {
            rt(Service::td_teardown(self, &mut Kernel, who(m), td))
        }

        fn td_totals(&mut self, m: &Msg) -> Result<TdTotals, RequestError<Infallible>> {
            Ok(Service::td_totals(self, Owner(m.sender.0)))
        }

        fn stats(&mut self, m: &Msg) -> Result<ServerStats, RequestError<Infallible>> {
            Ok(Service::stats(self, m.sender.index().0))
        }
    }

    #[unsafe(no_mangle)]
    pub fn main() -> ! {
        // This instance's start, for the recovery time it logs once it serves.
        let started = (sys_get_timer().now, tsc());
        let (server, staging, tdmr_run) = setup::server();
        let service = Service::new(server, log).with_td_staging(staging);
        let mut service = service.with_tdmr_run(tdmr_run);
        match userlib::hl::scrub_method() {
            Ok(Some(m)) => {
                log(format_args!("scrub method: {}", m.describe()));
                service.set_scrub_method(m as u8);
            }
            r => log(format_args!("scrub method: unknown ({r:?})")),
        }
        // Clients that restarted while tdx-host was down lose what their old incarnation held.
        service.handle_notification(CLIENT_RESTARTED_MASK);
        service.log_serving(started, (sys_get_timer().now, tsc()));
        // Answers that landed before the loop: their `seam-done` may have been taken already.
        service.advance_init(&mut SeamKernel::new(), &mut Kernel);
        let mut buffers = TdxHostBuffers::new();
        let mut seam = SeamKernel::new();
        loop {
            dispatch_tdx_host(&mut service, &mut buffers);
            // A reply leaves with the next receive (REPLY_RECV), except while TDMR.INIT runs:
            // then `after_dispatch` may start chunks, which must not delay it.
            if service.server().initializing() {
                buffers.send_reply_now();
            }
            // TDMR.INIT chunks held back for requests start once one was served.
            service.after_dispatch(seam.emptied());
        }
    }
}
