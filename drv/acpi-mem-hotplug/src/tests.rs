//! Host tests against a fake register block that behaves like QEMU 7.2's
//! `hw/acpi/memory_hotplug.c` (selector semantics, one control action per write, OST) and the
//! ICH9 GPE0 block (status write-1-to-clear, enable read/write).

extern crate std;

use std::vec;
use std::vec::Vec;

use super::{
    control, node_of, ost, reg, status, Block, Dimm, Event, Gpe0, OfflineOutcome, OnlineOutcome,
    PortIo, RemoveAction, SetupError, SlotRegs, SlotState, Slots, BLOCK_BASE,
    GPE_MEMORY_HOTPLUG_BIT,
};

const GPE0: u16 = 0x620;
const GPE0_LEN: u16 = 16;

#[derive(Clone, Copy, Debug, Default)]
struct FakeDimm {
    base: u64,
    size: u64,
    pxm: u32,
    inserting: bool,
    removing: bool,
}

#[derive(Default)]
struct FakeQemu {
    slots: Vec<Option<FakeDimm>>,
    selector: u32,
    /// (slot, event, status) per OST status write.
    ost: Vec<(u32, u32, u32)>,
    ost_event: Vec<u32>,
    ejected: Vec<u32>,
    gpe: [u8; GPE0_LEN as usize],
    /// Control writes that set more than one action bit, or bit 0.
    bad_control_writes: u32,
}

impl FakeQemu {
    fn new(slots: usize) -> Self {
        FakeQemu {
            slots: vec![None; slots],
            ost_event: vec![0; slots],
            ..FakeQemu::default()
        }
    }

    fn raise_gpe(&mut self) {
        self.gpe[0] |= 1 << GPE_MEMORY_HOTPLUG_BIT;
    }

    fn sci_level(&self) -> bool {
        self.gpe[0] & self.gpe[GPE0_LEN as usize / 2] != 0
    }

    fn cold_plug(&mut self, slot: usize, base: u64, size: u64, pxm: u32) {
        self.slots[slot] = Some(FakeDimm {
            base,
            size,
            pxm,
            ..FakeDimm::default()
        });
    }

    fn hot_add(&mut self, slot: usize, base: u64, size: u64, pxm: u32) {
        self.slots[slot] = Some(FakeDimm {
            base,
            size,
            pxm,
            inserting: true,
            removing: false,
        });
        self.raise_gpe();
    }

    fn device_del(&mut self, slot: usize) {
        if let Some(d) = self.slots[slot].as_mut() {
            d.removing = true;
        }
        self.raise_gpe();
    }

    fn valid(&self) -> bool {
        (self.selector as usize) < self.slots.len()
    }

    fn read(&self, off: u16) -> u32 {
        if !self.valid() {
            return 0;
        }
        let d = self.slots[self.selector as usize];
        match (off, d) {
            (reg::ADDR_LO, Some(d)) => d.base as u32,
            (reg::ADDR_HI, Some(d)) => (d.base >> 32) as u32,
            (reg::SIZE_LO, Some(d)) => d.size as u32,
            (reg::SIZE_HI, Some(d)) => (d.size >> 32) as u32,
            (reg::PXM, Some(d)) => d.pxm,
            (reg::STATUS, Some(d)) => {
                1 | if d.inserting { 2 } else { 0 } | if d.removing { 4 } else { 0 }
            }
            (0x00..=0x14, None) => 0,
            _ => u32::MAX,
        }
    }

    fn write(&mut self, off: u16, v: u32) {
        if off != reg::SELECTOR && !self.valid() {
            return;
        }
        let s = self.selector as usize;
        match off {
            reg::SELECTOR => self.selector = v,
            reg::OST_EVENT => self.ost_event[s] = v,
            reg::OST_STATUS => self.ost.push((s as u32, self.ost_event[s], v)),
            reg::CONTROL => {
                let v = v as u8;
                if v & 1 != 0 || (v & 0xe).count_ones() > 1 {
                    self.bad_control_writes += 1;
                }
                if v & control::CLEAR_INSERT != 0 {
                    if let Some(d) = self.slots[s].as_mut() {
                        d.inserting = false;
                    }
                } else if v & control::CLEAR_REMOVE != 0 {
                    if let Some(d) = self.slots[s].as_mut() {
                        d.removing = false;
                    }
                } else if v & control::EJECT != 0 && self.slots[s].is_some() {
                    self.slots[s] = None;
                    self.ejected.push(s as u32);
                }
            }
            _ => {}
        }
    }
}

impl PortIo for FakeQemu {
    fn inb(&mut self, port: u16) -> u8 {
        if (GPE0..GPE0 + GPE0_LEN).contains(&port) {
            return self.gpe[usize::from(port - GPE0)];
        }
        let off = port - BLOCK_BASE;
        (self.read(off & !3) >> (8 * (off & 3))) as u8
    }

    fn inl(&mut self, port: u16) -> u32 {
        self.read(port - BLOCK_BASE)
    }

    fn outb(&mut self, port: u16, value: u8) {
        if (GPE0..GPE0 + GPE0_LEN / 2).contains(&port) {
            self.gpe[usize::from(port - GPE0)] &= !value;
        } else if (GPE0 + GPE0_LEN / 2..GPE0 + GPE0_LEN).contains(&port) {
            self.gpe[usize::from(port - GPE0)] = value;
        } else {
            self.write(port - BLOCK_BASE, u32::from(value));
        }
    }

    fn outl(&mut self, port: u16, value: u32) {
        self.write(port - BLOCK_BASE, value);
    }
}

const G: u64 = 1 << 30;
const M128: u64 = 128 << 20;

fn events(e: &super::Events) -> Vec<Event> {
    e.iter().collect()
}

#[test]
fn decodes_registers() {
    let r = SlotRegs::decode(0, 1, 0x2000_0000, 0, 0, 1);
    assert_eq!(r.base, 0x1_0000_0000);
    assert_eq!(r.size, 0x2000_0000);
    assert!(r.enabled() && !r.inserting() && !r.removing());
    assert_eq!(
        r.dimm(),
        Some(Dimm {
            base: 0x1_0000_0000,
            size: 0x2000_0000,
            pxm: 0
        })
    );
    // All ones (selector beyond the slots on some implementations) is empty.
    let r = SlotRegs::decode(u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX);
    assert!(!r.enabled());
    // Status bits 3-7 are reserved and ignored.
    assert_eq!(SlotRegs::decode(0, 0, 0, 0, 0, 0xf8).status, 0);
    // Enabled but zero size, misaligned, or wrapping: no usable DIMM.
    assert_eq!(SlotRegs::decode(0, 1, 0, 0, 0, 1).dimm(), None);
    assert_eq!(SlotRegs::decode(0x800, 1, 0x1000, 0, 0, 1).dimm(), None);
    assert_eq!(
        SlotRegs::decode(0xffff_f000, u32::MAX, 0x2000, 0, 0, 1).dimm(),
        None
    );
}

#[test]
fn cold_plugged_dimm_is_found_without_event() {
    let mut q = FakeQemu::new(4);
    q.cold_plug(0, 4 * G, 512 << 20, 0);
    let mut b = Block::new(q);
    let mut s = Slots::new(4);
    let e = s.scan(&mut b);
    assert_eq!(
        events(&e),
        vec![Event::Added {
            slot: 0,
            dimm: Dimm {
                base: 4 * G,
                size: 512 << 20,
                pxm: 0
            },
            hotplugged: false
        }]
    );
    assert!(matches!(s.get(0), SlotState::Pending(_)));
    // A second scan reports nothing new.
    assert!(s.scan(&mut b).is_empty());
}

#[test]
fn hot_add_is_reported_once_and_acknowledged() {
    let mut b = Block::new(FakeQemu::new(4));
    let mut s = Slots::new(4);
    assert!(s.scan(&mut b).is_empty());
    b.io().hot_add(2, 4 * G + M128, M128, 1);
    let e = events(&s.scan(&mut b));
    assert_eq!(e.len(), 1);
    assert!(matches!(
        e[0],
        Event::Added {
            slot: 2,
            hotplugged: true,
            dimm: Dimm { pxm: 1, .. }
        }
    ));
    assert!(!b.io().slots[2].unwrap().inserting, "insert event cleared");
    assert!(s.scan(&mut b).is_empty());
    assert_eq!(b.io().bad_control_writes, 0);
}

#[test]
fn online_outcomes_drive_the_slot_state() {
    let mut b = Block::new(FakeQemu::new(4));
    let mut s = Slots::new(4);
    b.io().hot_add(0, 4 * G, M128, 0);
    b.io().hot_add(1, 4 * G + M128, M128, 0);
    b.io().hot_add(3, 4 * G + 2 * M128, M128, 0);
    assert_eq!(s.scan(&mut b).len(), 3);
    assert_eq!(s.pending().count(), 3);
    assert_eq!(s.online_result(0, OnlineOutcome::Accepted), None);
    assert_eq!(
        s.online_result(1, OnlineOutcome::Refused),
        Some(ost::INSERT_NOT_SUPPORTED)
    );
    assert_eq!(s.online_result(3, OnlineOutcome::Retry), None);
    assert!(matches!(s.get(0), SlotState::Online(_)));
    assert!(matches!(s.get(1), SlotState::Refused(_)));
    assert_eq!(
        s.pending().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![3],
        "only the not-ready one is retried"
    );
    // An answer for a slot that is not pending changes nothing.
    assert_eq!(s.online_result(0, OnlineOutcome::Refused), None);
    assert!(matches!(s.get(0), SlotState::Online(_)));
}

#[test]
fn remove_of_idle_online_dimm_ejects() {
    let mut b = Block::new(FakeQemu::new(4));
    let mut s = Slots::new(4);
    b.io().hot_add(1, 4 * G, M128, 0);
    s.scan(&mut b);
    s.online_result(1, OnlineOutcome::Accepted);
    b.io().device_del(1);
    let e = events(&s.scan(&mut b));
    assert!(matches!(
        e[..],
        [Event::RemoveRequested {
            slot: 1,
            state: SlotState::Online(_)
        }]
    ));
    assert!(!b.io().slots[1].unwrap().removing, "remove event cleared");
    assert!(s.needs_offline(1));
    assert_eq!(
        s.remove_result(1, Some(OfflineOutcome::Done)),
        RemoveAction::Eject
    );
    b.eject(1);
    assert_eq!(b.io().ejected, vec![1]);
    assert_eq!(s.get(1), SlotState::Empty);
    assert!(s.scan(&mut b).is_empty(), "our own eject is no surprise");
}

#[test]
fn remove_of_busy_dimm_is_refused_through_ost() {
    let mut b = Block::new(FakeQemu::new(4));
    let mut s = Slots::new(4);
    b.io().hot_add(0, 4 * G, M128, 0);
    s.scan(&mut b);
    s.online_result(0, OnlineOutcome::Accepted);
    b.io().device_del(0);
    s.scan(&mut b);
    let a = s.remove_result(0, Some(OfflineOutcome::Busy));
    assert_eq!(
        a,
        RemoveAction::Refuse {
            ost_status: ost::DEVICE_IN_USE
        }
    );
    b.ost(0, ost::EVENT_OSPM_EJECT, ost::DEVICE_IN_USE);
    assert_eq!(b.io().ost, vec![(0, 0x103, 0x81)]);
    assert!(b.io().slots[0].is_some(), "still plugged");
    assert!(matches!(s.get(0), SlotState::Online(_)), "still online");
    let mut r = [0xffu8; 8];
    assert_eq!(s.report(&mut r), 8);
    assert_eq!(r, [super::report::ONLINE, 1, 0, 0, 0, 0, 0, 0]);
    // A second device_del is a new request.
    b.io().device_del(0);
    assert_eq!(s.scan(&mut b).len(), 1);
    assert_eq!(
        s.remove_result(0, Some(OfflineOutcome::Failed)),
        RemoveAction::Refuse {
            ost_status: ost::NON_SPECIFIC_FAILURE
        }
    );
}

#[test]
fn remove_of_refused_or_pending_dimm_needs_no_offline() {
    let mut b = Block::new(FakeQemu::new(2));
    let mut s = Slots::new(2);
    b.io().hot_add(0, 4 * G, M128, 0);
    b.io().hot_add(1, 4 * G + M128, M128, 0);
    s.scan(&mut b);
    s.online_result(0, OnlineOutcome::Refused);
    b.io().device_del(0);
    b.io().device_del(1);
    assert_eq!(s.scan(&mut b).len(), 2);
    assert!(!s.needs_offline(0) && !s.needs_offline(1));
    assert_eq!(s.remove_result(0, None), RemoveAction::Eject);
    assert_eq!(s.remove_result(1, None), RemoveAction::Eject);
    assert_eq!(
        s.pending().count(),
        0,
        "an ejected DIMM is no longer retried"
    );
}

#[test]
fn add_then_delete_before_the_scan_reports_both_in_order() {
    let mut b = Block::new(FakeQemu::new(2));
    let mut s = Slots::new(2);
    b.io().hot_add(1, 4 * G, M128, 0);
    b.io().device_del(1);
    let e = events(&s.scan(&mut b));
    assert!(matches!(e[..], [Event::Added { slot: 1, .. }]));
    assert!(b.io().slots[1].unwrap().removing, "kept for the next scan");
    let e = events(&s.scan(&mut b));
    assert!(matches!(e[..], [Event::RemoveRequested { slot: 1, .. }]));
}

#[test]
fn surprise_removal_and_replacement_are_reported() {
    let mut b = Block::new(FakeQemu::new(2));
    let mut s = Slots::new(2);
    b.io().hot_add(0, 4 * G, M128, 0);
    s.scan(&mut b);
    s.online_result(0, OnlineOutcome::Accepted);
    b.io().slots[0] = None;
    let e = events(&s.scan(&mut b));
    assert!(matches!(
        e[..],
        [Event::Vanished {
            slot: 0,
            state: SlotState::Online(_)
        }]
    ));
    assert_eq!(s.get(0), SlotState::Empty);
    // Another DIMM in the same slot without us seeing the gap.
    b.io().hot_add(0, 4 * G, M128, 0);
    s.scan(&mut b);
    s.online_result(0, OnlineOutcome::Accepted);
    b.io().hot_add(0, 8 * G, 2 * M128, 0);
    // The online DIMM the slot no longer reports goes first (it must be offlined, not
    // forgotten); the next scan adds the new one.
    let e = events(&s.scan(&mut b));
    assert!(matches!(
        e[..],
        [Event::Vanished {
            slot: 0,
            state: SlotState::Online(Dimm { base, .. })
        }] if base == 4 * G
    ));
    assert_eq!(s.get(0), SlotState::Empty);
    let e = events(&s.scan(&mut b));
    assert!(matches!(
        e[..],
        [Event::Added {
            dimm: Dimm { base, .. },
            ..
        }] if base == 8 * G
    ));
}

#[test]
fn malformed_slot_is_reported_once() {
    let mut b = Block::new(FakeQemu::new(1));
    let mut s = Slots::new(1);
    b.io().hot_add(0, 4 * G, 0, 0);
    assert!(matches!(
        events(&s.scan(&mut b))[..],
        [Event::Malformed { slot: 0, .. }]
    ));
    assert!(s.scan(&mut b).is_empty());
}

#[test]
fn slots_beyond_the_block_read_empty() {
    let mut q = FakeQemu::new(2);
    q.cold_plug(1, 4 * G, M128, 0);
    let mut b = Block::new(q);
    // The manifest says 8 slots, QEMU has 2: slots 2..8 read as empty.
    let mut s = Slots::new(8);
    assert_eq!(s.scan(&mut b).len(), 1);
    assert_eq!(Slots::new(1000).count(), super::MAX_SLOTS as u32);
}

#[test]
fn gpe0_enable_and_status() {
    let g = Gpe0::from_fadt(0x620, 16, 9, (0x620, 16), 9).unwrap();
    let mut q = FakeQemu::new(1);
    q.gpe[8] = 0x01; // another enable bit already set
    g.enable(&mut q, GPE_MEMORY_HOTPLUG_BIT);
    assert_eq!(q.gpe[8], 0x09, "read-modify-write keeps other enables");
    assert!(g.enabled(&mut q, GPE_MEMORY_HOTPLUG_BIT));
    assert!(!q.sci_level());
    q.hot_add(0, 4 * G, M128, 0);
    q.gpe[0] |= 0x01; // another status bit, not ours to clear
    assert!(q.sci_level());
    assert!(g.take_status(&mut q, GPE_MEMORY_HOTPLUG_BIT));
    assert_eq!(q.gpe[0], 0x01, "only bit 3 cleared");
    assert!(!g.take_status(&mut q, GPE_MEMORY_HOTPLUG_BIT));
}

#[test]
fn fadt_must_match_the_grant() {
    assert_eq!(
        Gpe0::from_fadt(0x620, 16, 9, (0x620, 16), 9),
        Ok(Gpe0 {
            port: 0x620,
            len: 16
        })
    );
    assert_eq!(
        Gpe0::from_fadt(0xafe0, 4, 9, (0x620, 16), 9),
        Err(SetupError::GrantMismatch {
            fadt: (0xafe0, 4),
            granted: (0x620, 16)
        })
    );
    assert_eq!(
        Gpe0::from_fadt(0, 0, 9, (0x620, 16), 9),
        Err(SetupError::NoGpe0)
    );
    assert_eq!(
        Gpe0::from_fadt(0x620, 1, 9, (0x620, 16), 9),
        Err(SetupError::BadGpe0Length(1))
    );
    assert_eq!(
        Gpe0::from_fadt(0x620, 16, 11, (0x620, 16), 9),
        Err(SetupError::SciMismatch { fadt: 11, bound: 9 })
    );
}

#[test]
fn ost_writes_event_then_status() {
    let mut b = Block::new(FakeQemu::new(2));
    b.ost(1, ost::EVENT_OSPM_INSERTION, ost::INSERT_NOT_SUPPORTED);
    assert_eq!(b.io().ost, vec![(1, 0x200, 0x82)]);
    // Codes match ACPI 6.x / Linux.
    assert_eq!(ost::EVENT_OSPM_EJECT, 0x103);
    assert_eq!(ost::DEVICE_IN_USE, 0x81);
    assert_eq!(status::REMOVE, 4);
}

#[test]
fn proximity_maps_to_node() {
    let prox = [0, 1, 7];
    assert_eq!(node_of(7, 0, &prox, None), 2);
    assert_eq!(node_of(1, 0, &prox, None), 1);
    // Unknown domain: the hotplug window's node if the base is inside it.
    assert_eq!(node_of(9, 5 * G, &prox, Some((4 * G, 4 * G, 1))), 1);
    assert_eq!(node_of(9, 9 * G, &prox, Some((4 * G, 4 * G, 1))), 0);
    assert_eq!(node_of(0, 0, &[], None), 0);
}

/// A random sequence of platform actions and driver answers never breaks the invariants:
/// every DIMM the fake holds is known to the driver after a scan, the driver never keeps a
/// slot the fake emptied, and an eject only ever follows a remove request whose offline
/// succeeded (or was not needed).
#[test]
fn random_sequences_keep_driver_and_platform_in_step() {
    let mut seed = 0x1234_5678_9abc_def0_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut b = Block::new(FakeQemu::new(4));
        let mut s = Slots::new(4);
        for _ in 0..60 {
            let slot = (next() % 4) as usize;
            match next() % 4 {
                0 if b.io().slots[slot].is_none() => {
                    b.io().hot_add(slot, (4 + slot as u64) * G, M128, 0);
                }
                1 if b.io().slots[slot].is_some() => b.io().device_del(slot),
                _ => {}
            }
            for e in events(&s.scan(&mut b)) {
                match e {
                    Event::Added { slot, .. } => {
                        let o = [
                            OnlineOutcome::Accepted,
                            OnlineOutcome::Refused,
                            OnlineOutcome::Retry,
                        ][(next() % 3) as usize];
                        s.online_result(slot, o);
                    }
                    Event::RemoveRequested { slot, .. } => {
                        let off = s.needs_offline(slot).then(|| {
                            if next() % 2 == 0 {
                                OfflineOutcome::Done
                            } else {
                                OfflineOutcome::Busy
                            }
                        });
                        match s.remove_result(slot, off) {
                            RemoveAction::Eject => {
                                assert!(off.is_none() || off == Some(OfflineOutcome::Done));
                                b.eject(slot);
                            }
                            RemoveAction::Refuse { ost_status } => {
                                assert_eq!(off, Some(OfflineOutcome::Busy));
                                b.ost(slot, ost::EVENT_OSPM_EJECT, ost_status);
                            }
                        }
                    }
                    Event::Vanished { .. } | Event::Malformed { .. } => {
                        panic!("unexpected {e:?}")
                    }
                }
            }
            for i in 0..4u32 {
                let plugged = b.io().slots[i as usize].is_some();
                let known = s.get(i) != SlotState::Empty;
                assert_eq!(plugged, known, "slot {i}");
            }
            assert_eq!(b.io().bad_control_writes, 0);
        }
    }
}
