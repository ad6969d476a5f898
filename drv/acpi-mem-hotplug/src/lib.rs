//! ACPI memory hotplug without AML: QEMU's memory-hotplug register block (I/O ports
//! 0xA00–0xA17, `docs/specs/acpi_mem_hotplug.rst`), the GPE0 bit that signals it, the `_OST`
//! codes a driver reports back, and the per-slot state machine of the driver task.
//!
//! Pattern: everything here is pure logic over a [`PortIo`] trait, so the host tests drive it
//! against a fake register block that behaves like QEMU's (`tests.rs`). The task binary
//! (`main.rs`) only supplies real `in`/`out` instructions, the notifications and the calls to
//! tdx-host.
//!
//! The protocol, as QEMU implements it:
//! - write the slot number to offset 0x00 (the selector); every other register then refers to
//!   that slot. A selector beyond the slot count makes reads return 0 (older QEMU) or all ones
//!   (as some notes claim); both read as "no DIMM" here;
//! - read base (0x00/0x04), size (0x08/0x0C), proximity domain (0x10) and status (0x14: bit 0
//!   enabled, bit 1 insert event, bit 2 remove event);
//! - write the control byte (0x14): bit 1 clears the insert event, bit 2 clears the remove
//!   event, bit 3 ejects the DIMM. QEMU acts on one bit per write (an `else if` chain), so each
//!   action is its own write; bit 0 must be written 0;
//! - `_OST`: write the source event to 0x04, then the status to 0x08 (the status write is what
//!   makes QEMU emit the `ACPI_DEVICE_OST` QMP event).
//!
//! A hot-add or a `device_add`/`device_del` sets GPE0 status bit 3 and raises the SCI while the
//! matching GPE0 enable bit is set. GPE0 is a block of `len` bytes from the FADT: the first half
//! is status (write 1 to clear), the second half enable.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The register block's fixed I/O base on QEMU `pc` and `q35`.
pub const BLOCK_BASE: u16 = 0xa00;
/// Its length in ports.
pub const BLOCK_LEN: u16 = 24;
/// Most slots the driver tracks (QEMU's `-m ...,slots=N`).
pub const MAX_SLOTS: usize = 32;
/// The GPE0 bit QEMU raises for memory hotplug events (`ACPI_MEMORY_HOTPLUG_STATUS`).
pub const GPE_MEMORY_HOTPLUG_BIT: u32 = 3;

/// Register offsets from [`BLOCK_BASE`].
pub mod reg {
    /// Write: slot selector. Read: base address, low 32 bits.
    pub const SELECTOR: u16 = 0x00;
    /// Read: base address, low 32 bits.
    pub const ADDR_LO: u16 = 0x00;
    /// Read: base address, high 32 bits.
    pub const ADDR_HI: u16 = 0x04;
    /// Write: `_OST` source event.
    pub const OST_EVENT: u16 = 0x04;
    /// Read: size, low 32 bits.
    pub const SIZE_LO: u16 = 0x08;
    /// Write: `_OST` status (QEMU then emits `ACPI_DEVICE_OST`).
    pub const OST_STATUS: u16 = 0x08;
    /// Read: size, high 32 bits.
    pub const SIZE_HI: u16 = 0x0c;
    /// Read: proximity domain (`_PXM`).
    pub const PXM: u16 = 0x10;
    /// Read: status byte. Write: control byte.
    pub const STATUS: u16 = 0x14;
    /// Write: control byte (same port as [`STATUS`]).
    pub const CONTROL: u16 = 0x14;
}

/// Status bits (read at [`reg::STATUS`]).
pub mod status {
    /// A DIMM is present and usable.
    pub const ENABLED: u8 = 1 << 0;
    /// Insert event not yet acknowledged.
    pub const INSERT: u8 = 1 << 1;
    /// Remove (eject) request not yet acknowledged.
    pub const REMOVE: u8 = 1 << 2;
}

/// Control bits (written at [`reg::CONTROL`]; one per write).
pub mod control {
    /// Acknowledge the insert event.
    pub const CLEAR_INSERT: u8 = 1 << 1;
    /// Acknowledge the remove event.
    pub const CLEAR_REMOVE: u8 = 1 << 2;
    /// Eject the DIMM (`_EJ0`): QEMU unplugs it and emits `DEVICE_DELETED`.
    pub const EJECT: u8 = 1 << 3;
}

/// `_OST` source events and status codes (ACPI 6.x §6.3.5; Linux `include/linux/acpi.h`).
pub mod ost {
    /// Source event: ejection request (Notify 0x03).
    pub const EVENT_EJECT_REQUEST: u32 = 0x03;
    /// Source event: OSPM ejection processing (`_EJ0` / device_del).
    pub const EVENT_OSPM_EJECT: u32 = 0x103;
    /// Source event: OSPM insertion processing.
    pub const EVENT_OSPM_INSERTION: u32 = 0x200;
    /// Status: success.
    pub const SUCCESS: u32 = 0x0;
    /// Status: non-specific failure.
    pub const NON_SPECIFIC_FAILURE: u32 = 0x1;
    /// Ejection status: ejection not supported by OSPM.
    pub const EJECT_NOT_SUPPORTED: u32 = 0x80;
    /// Ejection status: device in use by an application (frames allocated).
    pub const DEVICE_IN_USE: u32 = 0x81;
    /// Ejection status: device busy (try again later).
    pub const DEVICE_BUSY: u32 = 0x82;
    /// Ejection status: ejection in progress (pending).
    pub const EJECT_IN_PROGRESS: u32 = 0x84;
    /// Insertion status: insertion in progress (pending).
    pub const INSERT_IN_PROGRESS: u32 = 0x80;
    /// Insertion status: device driver load failure.
    pub const DRIVER_LOAD_FAILURE: u32 = 0x81;
    /// Insertion status: insertion not supported by OSPM (refused by policy).
    pub const INSERT_NOT_SUPPORTED: u32 = 0x82;
}

/// Port I/O the driver needs. The task implements it with `in`/`out`; tests with a fake.
pub trait PortIo {
    /// `in al, dx`.
    fn inb(&mut self, port: u16) -> u8;
    /// `in eax, dx`.
    fn inl(&mut self, port: u16) -> u32;
    /// `out dx, al`.
    fn outb(&mut self, port: u16, value: u8);
    /// `out dx, eax`.
    fn outl(&mut self, port: u16, value: u32);
}

/// What one slot's registers say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotRegs {
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Proximity domain.
    pub pxm: u32,
    /// Status byte ([`status`] bits).
    pub status: u8,
}

impl SlotRegs {
    /// Decodes the raw 32-bit reads of one slot. A slot whose every register reads all ones
    /// (selector beyond the slot count on some implementations) reads as empty.
    #[must_use]
    pub fn decode(
        addr_lo: u32,
        addr_hi: u32,
        size_lo: u32,
        size_hi: u32,
        pxm: u32,
        st: u32,
    ) -> Self {
        if [addr_lo, addr_hi, size_lo, size_hi, pxm, st]
            .iter()
            .all(|&w| w == u32::MAX)
        {
            return SlotRegs::default();
        }
        SlotRegs {
            base: u64::from(addr_hi) << 32 | u64::from(addr_lo),
            size: u64::from(size_hi) << 32 | u64::from(size_lo),
            pxm,
            status: (st & 0x7) as u8,
        }
    }

    /// A DIMM is present.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.status & status::ENABLED != 0
    }

    /// An insert event is pending.
    #[must_use]
    pub fn inserting(&self) -> bool {
        self.status & status::INSERT != 0
    }

    /// A remove request is pending.
    #[must_use]
    pub fn removing(&self) -> bool {
        self.status & status::REMOVE != 0
    }

    /// The DIMM's memory, if present and sane (non-empty, 4 KiB-aligned, not wrapping).
    #[must_use]
    pub fn dimm(&self) -> Option<Dimm> {
        let sane = self.size != 0
            && self.base.is_multiple_of(4096)
            && self.size.is_multiple_of(4096)
            && self.base.checked_add(self.size).is_some();
        (self.enabled() && sane).then_some(Dimm {
            base: self.base,
            size: self.size,
            pxm: self.pxm,
        })
    }
}

/// A present DIMM's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dimm {
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Proximity domain.
    pub pxm: u32,
}

/// The memory-hotplug register block over some port I/O.
#[derive(Debug)]
pub struct Block<P> {
    io: P,
    base: u16,
}

impl<P: PortIo> Block<P> {
    /// The block at [`BLOCK_BASE`].
    pub fn new(io: P) -> Self {
        Block {
            io,
            base: BLOCK_BASE,
        }
    }

    /// The port I/O (for the GPE0 registers, which live elsewhere).
    pub fn io(&mut self) -> &mut P {
        &mut self.io
    }

    fn select(&mut self, slot: u32) {
        self.io.outl(self.base + reg::SELECTOR, slot);
    }

    /// Selects `slot` and reads its registers.
    pub fn read_slot(&mut self, slot: u32) -> SlotRegs {
        self.select(slot);
        let b = self.base;
        let lo = self.io.inl(b + reg::ADDR_LO);
        let hi = self.io.inl(b + reg::ADDR_HI);
        let slo = self.io.inl(b + reg::SIZE_LO);
        let shi = self.io.inl(b + reg::SIZE_HI);
        let pxm = self.io.inl(b + reg::PXM);
        let st = u32::from(self.io.inb(b + reg::STATUS));
        // A byte read of all ones is how an absent block answers (no device on the port).
        let st = if st == 0xff { u32::MAX } else { st };
        SlotRegs::decode(lo, hi, slo, shi, pxm, st)
    }

    fn control(&mut self, slot: u32, bit: u8) {
        self.select(slot);
        self.io.outb(self.base + reg::CONTROL, bit);
    }

    /// Acknowledges `slot`'s insert event.
    pub fn clear_insert(&mut self, slot: u32) {
        self.control(slot, control::CLEAR_INSERT);
    }

    /// Acknowledges `slot`'s remove request.
    pub fn clear_remove(&mut self, slot: u32) {
        self.control(slot, control::CLEAR_REMOVE);
    }

    /// Ejects `slot`'s DIMM.
    pub fn eject(&mut self, slot: u32) {
        self.control(slot, control::EJECT);
    }

    /// Reports `_OST(event, status)` for `slot`.
    pub fn ost(&mut self, slot: u32, event: u32, status: u32) {
        self.select(slot);
        self.io.outl(self.base + reg::OST_EVENT, event);
        self.io.outl(self.base + reg::OST_STATUS, status);
    }
}

/// The GPE0 register block (status half, then enable half).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpe0 {
    /// First port.
    pub port: u16,
    /// Length in ports (even; half status, half enable).
    pub len: u16,
}

/// Why the driver refuses to run with the FADT and the manifest it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The FADT names no GPE0 block.
    NoGpe0,
    /// The FADT's GPE0 block is too short for bit 3, or has an odd length.
    BadGpe0Length(u64),
    /// The FADT's GPE0 block is not the one the manifest grants.
    GrantMismatch {
        /// The FADT's block.
        fadt: (u64, u64),
        /// The manifest's grant.
        granted: (u16, u16),
    },
    /// The FADT's SCI interrupt is not the IRQ the manifest binds.
    SciMismatch {
        /// The FADT's `SCI_INT`.
        fadt: u16,
        /// The bound IRQ.
        bound: u16,
    },
}

impl Gpe0 {
    /// Checks the FADT's GPE0 block `(port, len)` and SCI against the manifest's grant
    /// (`granted` port and length) and IRQ binding.
    ///
    /// # Errors
    /// A [`SetupError`] saying what disagrees.
    pub fn from_fadt(
        fadt_port: u64,
        fadt_len: u64,
        fadt_sci: u16,
        granted: (u16, u16),
        bound_irq: u16,
    ) -> Result<Gpe0, SetupError> {
        if fadt_port == 0 || fadt_len == 0 {
            return Err(SetupError::NoGpe0);
        }
        let bytes_needed = u64::from(GPE_MEMORY_HOTPLUG_BIT / 8 + 1);
        if !fadt_len.is_multiple_of(2) || fadt_len / 2 < bytes_needed {
            return Err(SetupError::BadGpe0Length(fadt_len));
        }
        if (fadt_port, fadt_len) != (u64::from(granted.0), u64::from(granted.1)) {
            return Err(SetupError::GrantMismatch {
                fadt: (fadt_port, fadt_len),
                granted,
            });
        }
        if fadt_sci != bound_irq {
            return Err(SetupError::SciMismatch {
                fadt: fadt_sci,
                bound: bound_irq,
            });
        }
        Ok(Gpe0 {
            port: granted.0,
            len: granted.1,
        })
    }

    fn bit_port_mask(bit: u32) -> (u16, u8) {
        ((bit / 8) as u16, 1 << (bit % 8))
    }

    /// Sets the enable bit of `bit` (read-modify-write of its enable byte).
    pub fn enable(&self, io: &mut impl PortIo, bit: u32) {
        let (off, mask) = Self::bit_port_mask(bit);
        let port = self.port + self.len / 2 + off;
        let v = io.inb(port);
        io.outb(port, v | mask);
    }

    /// Whether `bit`'s enable bit is set.
    pub fn enabled(&self, io: &mut impl PortIo, bit: u32) -> bool {
        let (off, mask) = Self::bit_port_mask(bit);
        io.inb(self.port + self.len / 2 + off) & mask != 0
    }

    /// Reads and clears (write 1 to clear) the status bit of `bit`; returns whether it was set.
    pub fn take_status(&self, io: &mut impl PortIo, bit: u32) -> bool {
        let (off, mask) = Self::bit_port_mask(bit);
        let port = self.port + off;
        let set = io.inb(port) & mask != 0;
        if set {
            io.outb(port, mask);
        }
        set
    }
}

/// What tdx-host said to `online_region`, reduced to what the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlineOutcome {
    /// Online (TDX or non-TDX memory).
    Accepted,
    /// Not now (tdx-host not ready, restarted): ask again on the next poll.
    Retry,
    /// Refused for good (policy, overlap, no such node, denied): report it, never retry.
    Refused,
}

/// What tdx-host said to `offline_region`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfflineOutcome {
    /// Offline: the DIMM may go.
    Done,
    /// Frames of it are in use: it must stay.
    Busy,
    /// Any other refusal.
    Failed,
}

/// The driver's view of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// No DIMM.
    Empty,
    /// A DIMM tdx-host has not accepted yet (it was not ready); retried on each poll.
    Pending(Dimm),
    /// A DIMM tdx-host onlined.
    Online(Dimm),
    /// A DIMM tdx-host refused; never used.
    Refused(Dimm),
}

impl SlotState {
    /// The DIMM, if any.
    #[must_use]
    pub fn dimm(&self) -> Option<Dimm> {
        match *self {
            SlotState::Empty => None,
            SlotState::Pending(d) | SlotState::Online(d) | SlotState::Refused(d) => Some(d),
        }
    }
}

/// Something a scan found in one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A DIMM the driver did not know: cold-plugged (`hotplugged` false) or hot-added.
    Added {
        /// Slot number.
        slot: u32,
        /// Its memory.
        dimm: Dimm,
        /// It came with an insert event.
        hotplugged: bool,
    },
    /// The platform asks to remove this slot's DIMM (`device_del`).
    RemoveRequested {
        /// Slot number.
        slot: u32,
        /// What the driver knew of it.
        state: SlotState,
    },
    /// A known DIMM is gone without an eject from us (surprise removal).
    Vanished {
        /// Slot number.
        slot: u32,
        /// What the driver knew of it.
        state: SlotState,
    },
    /// A slot reports a DIMM whose registers are unusable (zero size, misaligned).
    Malformed {
        /// Slot number.
        slot: u32,
        /// The registers.
        regs: SlotRegs,
    },
}

/// What to do after a remove request was put to tdx-host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveAction {
    /// Eject the DIMM (its memory is no longer in use).
    Eject,
    /// Keep it and report `_OST(EVENT_OSPM_EJECT, status)`.
    Refuse {
        /// The `_OST` status code.
        ost_status: u32,
    },
}

/// Events of one scan (at most one per slot).
#[derive(Clone, Copy, Debug)]
pub struct Events {
    items: [Option<Event>; MAX_SLOTS],
    len: usize,
}

impl Events {
    const fn new() -> Self {
        Events {
            items: [None; MAX_SLOTS],
            len: 0,
        }
    }

    fn push(&mut self, e: Event) {
        if self.len < MAX_SLOTS {
            self.items[self.len] = Some(e);
            self.len += 1;
        }
    }

    /// The events, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.items[..self.len].iter().flatten().copied()
    }

    /// How many.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// None at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The slot table and its transitions.
#[derive(Clone, Debug)]
pub struct Slots {
    state: [SlotState; MAX_SLOTS],
    count: u32,
    /// Slots already reported as [`Event::Malformed`] (until they read empty).
    malformed: u32,
    /// Remove requests refused per slot (saturating), for [`Slots::report`].
    refusals: [u8; MAX_SLOTS],
}

impl Slots {
    /// `count` slots (clamped to [`MAX_SLOTS`]), all empty.
    #[must_use]
    pub fn new(count: u32) -> Self {
        Slots {
            state: [SlotState::Empty; MAX_SLOTS],
            count: count.min(MAX_SLOTS as u32),
            malformed: 0,
            refusals: [0; MAX_SLOTS],
        }
    }

    /// Number of slots scanned.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// State of `slot` (Empty beyond the table).
    #[must_use]
    pub fn get(&self, slot: u32) -> SlotState {
        self.state
            .get(slot as usize)
            .copied()
            .unwrap_or(SlotState::Empty)
    }

    fn set(&mut self, slot: u32, s: SlotState) {
        if let Some(x) = self.state.get_mut(slot as usize) {
            *x = s;
        }
    }

    /// Reads every slot, acknowledges insert and remove events in the hardware, and returns
    /// what changed. New DIMMs are recorded as [`SlotState::Pending`] until
    /// [`Slots::online_result`] says otherwise; a remove request leaves the state unchanged
    /// until [`Slots::remove_result`].
    pub fn scan<P: PortIo>(&mut self, block: &mut Block<P>) -> Events {
        let mut out = Events::new();
        for slot in 0..self.count {
            let regs = block.read_slot(slot);
            let event = self.observe(slot, regs);
            if regs.inserting() {
                block.clear_insert(slot);
            }
            // A remove request is acknowledged only when it is reported; one that comes with
            // an unknown DIMM stays set, so the next scan reports it after the addition.
            if let Some(e @ Event::RemoveRequested { .. }) = event {
                block.clear_remove(slot);
                out.push(e);
            } else if let Some(e) = event {
                out.push(e);
            }
        }
        out
    }

    /// The transition for one slot's registers (pure; [`Slots::scan`] does the I/O).
    pub fn observe(&mut self, slot: u32, regs: SlotRegs) -> Option<Event> {
        let known = self.get(slot);
        let bit = 1u32.checked_shl(slot).unwrap_or(0);
        if !regs.enabled() {
            self.malformed &= !bit;
            if known == SlotState::Empty {
                return None;
            }
            self.set(slot, SlotState::Empty);
            return Some(Event::Vanished { slot, state: known });
        }
        let Some(dimm) = regs.dimm() else {
            let first = self.malformed & bit == 0;
            self.malformed |= bit;
            return (known == SlotState::Empty && first).then_some(Event::Malformed { slot, regs });
        };
        self.malformed &= !bit;
        match known.dimm() {
            // A different DIMM in a known slot: we missed its removal. The known one is
            // reported gone first (an online one must be offlined, not forgotten), and the
            // next scan finds the new one in an empty slot and reports its addition.
            Some(d) if d.base != dimm.base || d.size != dimm.size => {
                self.set(slot, SlotState::Empty);
                Some(Event::Vanished { slot, state: known })
            }
            Some(_) if regs.removing() => Some(Event::RemoveRequested { slot, state: known }),
            Some(_) => None,
            None => {
                // Added (and perhaps already asked to go) before we looked: report the
                // addition; a pending remove request is reported by the next scan.
                self.set(slot, SlotState::Pending(dimm));
                Some(Event::Added {
                    slot,
                    dimm,
                    hotplugged: regs.inserting(),
                })
            }
        }
    }

    /// Slots whose DIMM waits for tdx-host (to retry `online_region`).
    pub fn pending(&self) -> impl Iterator<Item = (u32, Dimm)> + '_ {
        self.state[..self.count as usize]
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match *s {
                SlotState::Pending(d) => Some((i as u32, d)),
                _ => None,
            })
    }

    /// Records tdx-host's answer to onlining `slot`; returns the `_OST` status to report for a
    /// refusal (source event [`ost::EVENT_OSPM_INSERTION`]), if any.
    pub fn online_result(&mut self, slot: u32, outcome: OnlineOutcome) -> Option<u32> {
        let SlotState::Pending(d) = self.get(slot) else {
            return None;
        };
        match outcome {
            OnlineOutcome::Accepted => {
                self.set(slot, SlotState::Online(d));
                None
            }
            OnlineOutcome::Retry => None,
            OnlineOutcome::Refused => {
                self.set(slot, SlotState::Refused(d));
                Some(ost::INSERT_NOT_SUPPORTED)
            }
        }
    }

    /// Whether a remove request for `slot` needs tdx-host's `offline_region` first (only a
    /// DIMM tdx-host onlined does; a refused or pending one is not in use).
    #[must_use]
    pub fn needs_offline(&self, slot: u32) -> bool {
        matches!(self.get(slot), SlotState::Online(_))
    }

    /// Records the outcome of a remove request for `slot` (`offline` is tdx-host's answer, or
    /// `None` when [`Slots::needs_offline`] was false) and says what to do with the DIMM.
    pub fn remove_result(&mut self, slot: u32, offline: Option<OfflineOutcome>) -> RemoveAction {
        match offline {
            None | Some(OfflineOutcome::Done) => {
                self.set(slot, SlotState::Empty);
                RemoveAction::Eject
            }
            Some(refused) => {
                if let Some(n) = self.refusals.get_mut(slot as usize) {
                    *n = n.saturating_add(1);
                }
                RemoveAction::Refuse {
                    ost_status: if refused == OfflineOutcome::Busy {
                        ost::DEVICE_IN_USE
                    } else {
                        ost::NON_SPECIFIC_FAILURE
                    },
                }
            }
        }
    }

    /// Writes the driver's view for the report operation: per slot, a [`report`] state byte
    /// and the number of refused remove requests. Returns the bytes written.
    pub fn report(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for (slot, pair) in out
            .chunks_exact_mut(2)
            .take(self.count as usize)
            .enumerate()
        {
            pair[0] = match self.state[slot] {
                SlotState::Empty => report::EMPTY,
                SlotState::Pending(_) => report::PENDING,
                SlotState::Online(_) => report::ONLINE,
                SlotState::Refused(_) => report::REFUSED,
            };
            pair[1] = self.refusals[slot];
            n += 2;
        }
        n
    }
}

/// The driver's one IPC operation (for test rigs and diagnostics; it changes nothing): the
/// reply is two bytes per slot, the state ([`report::EMPTY`] …) and the count of refused remove
/// requests.
pub mod report {
    /// Operation number.
    pub const OP_REPORT: u16 = 1;
    /// No DIMM.
    pub const EMPTY: u8 = 0;
    /// Waiting for tdx-host.
    pub const PENDING: u8 = 1;
    /// Onlined by tdx-host.
    pub const ONLINE: u8 = 2;
    /// Refused by tdx-host.
    pub const REFUSED: u8 = 3;
}

/// The NUMA node of proximity domain `pxm`: the index of the SRAT node with that domain, else
/// the node of the hotplug window if `base` lies in it, else node 0.
#[must_use]
pub fn node_of(pxm: u32, base: u64, proximities: &[u32], window: Option<(u64, u64, u32)>) -> u16 {
    if let Some(i) = proximities.iter().position(|&p| p == pxm) {
        return i as u16;
    }
    match window {
        Some((wb, ws, node)) if base >= wb && base - wb < ws => node as u16,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
