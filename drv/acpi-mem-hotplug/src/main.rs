//! acpi-mem-hotplug: the memory-hotplug driver task.
//!
//! Holds nothing but its I/O ports (the register block at 0xA00–0xA17 and the GPE0 block),
//! the `platform` capability (FADT and the SRAT nodes) and a task slot to tdx-host, whose
//! access list lets only this task online and offline regions.
//!
//! At start it checks that the FADT's GPE0 block and SCI are exactly what the manifest grants
//! and binds (otherwise it logs why and does nothing), enables GPE0 bit 3, and scans every
//! slot: cold-plugged DIMMs are onlined like hot-added ones. Afterwards the SCI (through the
//! IOAPIC, as the `sci` notification) and a poll timer (`poll-ms`, the fallback) both lead to a
//! rescan. A new DIMM is offered to tdx-host with `online_region(base, size, node)`; a remove
//! request is put to `offline_region` and the DIMM is ejected only if tdx-host agreed,
//! otherwise the refusal goes back through `_OST`. A DIMM that vanishes without an eject (or
//! whose slot starts reporting another range) is offlined in tdx-host, so nothing new is
//! allocated from memory the platform no longer reports. Every event and outcome is logged
//! with the prefix `hotplug:`.
//!
//! It answers one IPC operation, [`report::OP_REPORT`] (read-only, from any task): two bytes per
//! slot, the slot's state and how many remove requests were refused. Test rigs wait on it.
//!
//! Manifest (see `test-suite/hotplug-*.toml`):
//!
//! ```toml
//! [tasks.hotplug]
//! crate = "drv-acpi-mem-hotplug"
//! notifications = ["sci", "timer"]
//! interrupts = { "9" = "sci" }
//! ioports = [{ base = 0xa00, count = 24 }, { base = 0x620, count = 16 }]
//! capabilities = ["platform"]
//! task-slots = ["tdx-host"]
//! config = { slots = 4, gpe0-port = 0x620, gpe0-len = 16, sci-irq = 9, poll-ms = 500 }
//! ```

#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(clippy::wildcard_imports)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod task {
    use drv_acpi_mem_hotplug::{
        node_of, ost, report, Block, Dimm, Event, Gpe0, OfflineOutcome, OnlineOutcome, PortIo,
        RemoveAction, SlotState, Slots, GPE_MEMORY_HOTPLUG_BIT,
    };
    use tdx_host_api::{MemClass, TdxHost, TdxHostError};
    use userlib::{
        hl, sys_irq_control, sys_recv_closed, sys_recv_open, sys_reply, sys_set_timer_after, ulog,
        TaskId,
    };

    include!(concat!(env!("OUT_DIR"), "/task_gen.rs"));
    include!(concat!(env!("OUT_DIR"), "/driver_config.rs"));

    use task_gen::notifications::{SCI_MASK, TIMER_MASK};

    /// Real port I/O; the kernel's I/O bitmap grants only the manifest's ports.
    struct Ports;

    impl PortIo for Ports {
        fn inb(&mut self, port: u16) -> u8 {
            let v: u8;
            // Safety: port I/O has no memory effects; an ungranted port faults this task.
            unsafe {
                core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack))
            };
            v
        }
        fn inl(&mut self, port: u16) -> u32 {
            let v: u32;
            // Safety: as above.
            unsafe {
                core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack))
            };
            v
        }
        fn outb(&mut self, port: u16, value: u8) {
            // Safety: as above.
            unsafe {
                core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
            };
        }
        fn outl(&mut self, port: u16, value: u32) {
            // Safety: as above.
            unsafe {
                core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack))
            };
        }
    }

    /// Proximity domains of the SRAT nodes, by node index.
    struct Topology {
        prox: [u32; abi::platform::MAX_NODES],
        nodes: usize,
        window: Option<(u64, u64, u32)>,
    }

    impl Topology {
        fn read() -> Self {
            let mut t = Topology {
                prox: [0; abi::platform::MAX_NODES],
                nodes: 0,
                window: None,
            };
            match hl::read_platform() {
                Ok(r) => {
                    for (i, n) in r.nodes().iter().enumerate().take(t.prox.len()) {
                        t.prox[i] = n.proximity;
                        t.nodes = i + 1;
                    }
                    t.window = r.hotplug.map(|h| (h.base, h.size, h.node));
                    if let Some((b, s, n)) = t.window {
                        ulog!(
                            "hotplug: {} SRAT nodes; hotplug window {b:#x}+{s:#x} on node {n}",
                            t.nodes
                        );
                    } else {
                        ulog!(
                            "hotplug: {} SRAT nodes; no hotplug window in the SRAT",
                            t.nodes
                        );
                    }
                }
                Err(e) => ulog!(
                    "hotplug: cannot read the platform record ({e:?}); every DIMM goes to node 0"
                ),
            }
            t
        }

        fn node(&self, d: &Dimm) -> u16 {
            node_of(d.pxm, d.base, &self.prox[..self.nodes], self.window)
        }
    }

    struct Driver {
        block: Block<Ports>,
        slots: Slots,
        topo: Topology,
        host: TdxHost,
    }

    fn class_name(c: u8) -> &'static str {
        match MemClass::try_from(c) {
            Ok(MemClass::Tdx) => "TDX",
            Ok(MemClass::NonTdx) => "non-TDX",
            Err(()) => "unknown-class",
        }
    }

    impl Driver {
        fn online(&mut self, slot: u32, d: Dimm) {
            let node = self.topo.node(&d);
            let (outcome, what) = match self.host.online_region(d.base, d.size, node) {
                Ok(r) => {
                    ulog!(
                        "hotplug: slot {slot}: online {:#x}+{:#x} node {node}: accepted as {} memory (node TDX-capable: {})",
                        d.base, d.size, class_name(r.class), r.node_tdx_capable != 0
                    );
                    (OnlineOutcome::Accepted, None)
                }
                Err(e @ (TdxHostError::NotReady | TdxHostError::ServerRestarted)) => {
                    (OnlineOutcome::Retry, Some(e))
                }
                Err(e) => (OnlineOutcome::Refused, Some(e)),
            };
            match (outcome, what) {
                (OnlineOutcome::Retry, Some(e)) => ulog!("hotplug: slot {slot}: tdx-host not ready ({e:?}); retrying"),
                (OnlineOutcome::Refused, Some(e)) => ulog!(
                    "hotplug: slot {slot}: online {:#x}+{:#x} node {node}: REFUSED by tdx-host: {e:?}",
                    d.base, d.size
                ),
                _ => {}
            }
            if let Some(st) = self.slots.online_result(slot, outcome) {
                self.block.ost(slot, ost::EVENT_OSPM_INSERTION, st);
                ulog!(
                    "hotplug: slot {slot}: reported _OST({:#x}, {st:#x}); the DIMM stays unused",
                    ost::EVENT_OSPM_INSERTION
                );
            }
        }

        fn remove(&mut self, slot: u32, state: SlotState) {
            let offline = if self.slots.needs_offline(slot) {
                let d = state.dimm().expect("online slot has a DIMM");
                Some(match self.host.offline_region(d.base, d.size) {
                    Ok(()) => {
                        ulog!(
                            "hotplug: slot {slot}: offline {:#x}+{:#x}: done",
                            d.base,
                            d.size
                        );
                        OfflineOutcome::Done
                    }
                    Err(TdxHostError::RegionBusy) => {
                        ulog!(
                            "hotplug: slot {slot}: offline {:#x}+{:#x}: REFUSED, frames in use",
                            d.base,
                            d.size
                        );
                        OfflineOutcome::Busy
                    }
                    Err(e) => {
                        ulog!(
                            "hotplug: slot {slot}: offline {:#x}+{:#x}: REFUSED: {e:?}",
                            d.base,
                            d.size
                        );
                        OfflineOutcome::Failed
                    }
                })
            } else {
                ulog!("hotplug: slot {slot}: not online ({state:?}); nothing to offline");
                None
            };
            match self.slots.remove_result(slot, offline) {
                RemoveAction::Eject => {
                    self.block.eject(slot);
                    ulog!("hotplug: slot {slot}: ejected");
                }
                RemoveAction::Refuse { ost_status } => {
                    self.block.ost(slot, ost::EVENT_OSPM_EJECT, ost_status);
                    ulog!("hotplug: slot {slot}: eject refused, reported _OST({:#x}, {ost_status:#x})", ost::EVENT_OSPM_EJECT);
                }
            }
        }

        /// Memory the platform no longer reports is taken out of tdx-host's pools, so nothing
        /// new is allocated from it; frames already in use keep it online (RegionBusy), which
        /// is all that can be done for memory that left without an eject.
        fn offline_vanished(&mut self, slot: u32, d: Dimm) {
            match self.host.offline_region(d.base, d.size) {
                Ok(()) => ulog!(
                    "hotplug: slot {slot}: offline {:#x}+{:#x} (vanished): done",
                    d.base,
                    d.size
                ),
                Err(e) => ulog!(
                    "hotplug: slot {slot}: offline {:#x}+{:#x} (vanished): REFUSED: {e:?}",
                    d.base,
                    d.size
                ),
            }
        }

        /// Scans until a scan finds nothing (an addition can hide a remove request).
        fn scan(&mut self) {
            for _ in 0..4 {
                let events = self.slots.scan(&mut self.block);
                if events.is_empty() {
                    break;
                }
                for e in events.iter() {
                    match e {
                        Event::Added {
                            slot,
                            dimm,
                            hotplugged,
                        } => {
                            ulog!(
                                "hotplug: slot {slot}: {} DIMM {:#x}+{:#x} pxm {}",
                                if hotplugged { "hot-added" } else { "present" },
                                dimm.base,
                                dimm.size,
                                dimm.pxm
                            );
                            self.online(slot, dimm);
                        }
                        Event::RemoveRequested { slot, state } => {
                            ulog!("hotplug: slot {slot}: remove requested");
                            self.remove(slot, state);
                        }
                        Event::Vanished { slot, state } => {
                            ulog!(
                                "hotplug: slot {slot}: DIMM vanished without eject (was {state:?})"
                            );
                            if let SlotState::Online(d) = state {
                                self.offline_vanished(slot, d);
                            }
                        }
                        Event::Malformed { slot, regs } => {
                            ulog!("hotplug: slot {slot}: unusable registers {regs:?}; ignored");
                        }
                    }
                }
            }
        }

        fn retry_pending(&mut self) {
            let mut todo = [None; drv_acpi_mem_hotplug::MAX_SLOTS];
            for (i, p) in self.slots.pending().enumerate() {
                todo[i] = Some(p);
            }
            for (slot, d) in todo.into_iter().flatten() {
                self.online(slot, d);
            }
        }
    }

    fn park(why: core::fmt::Arguments<'_>) -> ! {
        ulog!("hotplug: refusing to run: {why}");
        loop {
            let _ = sys_recv_closed(&mut [], 0, TaskId::KERNEL);
        }
    }

    #[unsafe(no_mangle)]
    pub fn main() -> ! {
        let fadt = match hl::read_fadt() {
            Ok(f) => f,
            Err(e) => park(format_args!("cannot read the FADT: {e:?}")),
        };
        let gpe = match Gpe0::from_fadt(fadt.gpe0_port, fadt.gpe0_len, fadt.sci_irq, (GPE0_PORT, GPE0_LEN), SCI_IRQ) {
            Ok(g) => g,
            Err(e) => park(format_args!(
                "the FADT (GPE0 {:#x}+{}, SCI {}) disagrees with the manifest (ioports GPE0 {GPE0_PORT:#x}+{GPE0_LEN}, interrupt {SCI_IRQ}): {e:?}",
                fadt.gpe0_port, fadt.gpe0_len, fadt.sci_irq
            )),
        };
        let topo = Topology::read();
        let mut d = Driver {
            block: Block::new(Ports),
            slots: Slots::new(SLOTS),
            topo,
            host: TdxHost::from_index(task_gen::slots::TDX_HOST),
        };
        // Stale status first, then enable: from here a hotplug event raises the SCI.
        gpe.take_status(d.block.io(), GPE_MEMORY_HOTPLUG_BIT);
        gpe.enable(d.block.io(), GPE_MEMORY_HOTPLUG_BIT);
        sys_irq_control(SCI_MASK, true);
        ulog!(
            "hotplug: driver up: {SLOTS} slots, GPE0 {GPE0_PORT:#x}+{GPE0_LEN} bit {GPE_MEMORY_HOTPLUG_BIT} enabled (SCI IRQ {SCI_IRQ}), poll every {POLL_MS} ms"
        );
        d.scan();
        sys_set_timer_after(POLL_MS, TIMER_MASK);
        loop {
            let msg = sys_recv_open(&mut [], SCI_MASK | TIMER_MASK);
            if msg.sender != TaskId::KERNEL {
                // The report operation: read-only, open to any task.
                let mut out = [0u8; 2 * drv_acpi_mem_hotplug::MAX_SLOTS];
                if msg.operation == u64::from(report::OP_REPORT) && msg.message_len == 0 {
                    let n = d.slots.report(&mut out).min(msg.response_capacity);
                    sys_reply(msg.sender, 0, &out[..n]);
                } else {
                    sys_reply(msg.sender, 1, &[]);
                }
                continue;
            }
            if msg.operation & SCI_MASK != 0 {
                // Level-triggered: clear the GPE status before the input is unmasked again.
                let ours = gpe.take_status(d.block.io(), GPE_MEMORY_HOTPLUG_BIT);
                if ours {
                    ulog!("hotplug: SCI: memory hotplug event");
                }
                d.scan();
                sys_irq_control(SCI_MASK, true);
            }
            if msg.operation & TIMER_MASK != 0 {
                d.retry_pending();
                d.scan();
                sys_set_timer_after(POLL_MS, TIMER_MASK);
            }
        }
    }
}
