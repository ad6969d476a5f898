//! The local APIC (timer, EOI) and the IOAPIC (device interrupts).
//!
//! xAPIC MMIO mode only: QEMU's TCG has no x2APIC. The timer runs periodic
//! at the manifest's tick, calibrated once against the PIT so that a tick
//! means the same on QEMU and on hardware. The legacy 8259 PICs are masked
//! for good. IOAPIC inputs start masked; an input is unmasked only when the
//! task it is bound to asks (IRQ_CONTROL), and the kernel masks it again
//! each time it fires, so a task always acknowledges before the next one.
//! The APIC base MSR and the PIC and PIT ports go through the `x86_64`
//! crate; the APIC registers are plain MMIO.

use x86_64::instructions::port::{Port, PortWriteOnly};
use x86_64::registers::model_specific::ApicBase;

use super::idt::{IRQ_BASE_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::paging::phys_to_virt;

const REG_ID: u64 = 0x20;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xB0;
const REG_SPURIOUS: u64 = 0xF0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3E0;
const TIMER_PERIODIC: u32 = 1 << 17;
const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;

const IOAPIC_BASE: u64 = 0xFEC0_0000;

fn lapic_base() -> u64 {
    ApicBase::read_raw().0.start_address().as_u64()
}

fn lapic_read(reg: u64) -> u32 {
    // Safety: the LAPIC page is mapped uncached in the direct map and `reg`
    // is a valid register offset.
    unsafe { core::ptr::read_volatile(phys_to_virt(lapic_base() + reg) as *const u32) }
}

fn lapic_write(reg: u64, value: u32) {
    // Safety: as for `lapic_read`.
    unsafe { core::ptr::write_volatile(phys_to_virt(lapic_base() + reg) as *mut u32, value) }
}

/// This CPU's APIC id.
#[must_use]
pub fn apic_id() -> u32 {
    lapic_read(REG_ID) >> 24
}

/// Signals end of interrupt to the local APIC.
pub fn eoi() {
    lapic_write(REG_EOI, 0);
}

/// Masks the legacy PICs and enables the local APIC.
pub fn init_local() {
    // Safety: the 8259 data ports; writing 0xFF masks every input, which is
    // what we want whether or not the PICs exist.
    unsafe {
        PortWriteOnly::<u8>::new(PIC1_DATA).write(0xFF);
        PortWriteOnly::<u8>::new(PIC2_DATA).write(0xFF);
    }
    lapic_write(REG_TPR, 0);
    lapic_write(REG_SPURIOUS, 0x100 | u32::from(SPURIOUS_VECTOR));
}

const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xA1;

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// Port B of the keyboard controller: bit 0 gates PIT channel 2, bit 1
/// drives the speaker from it, bit 5 reads channel 2's output.
const KBC_PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 0x01;
const PORT_B_SPEAKER: u8 = 0x02;
const PORT_B_OUT2: u8 = 0x20;

/// Busy-waits `pit_count` ticks of PIT channel 2 (one-shot, mode 0), then
/// calls nothing: the caller reads whatever it measured around it.
fn pit_wait(pit_count: u16, before_start: impl FnOnce()) {
    let mut port_b = Port::<u8>::new(KBC_PORT_B);
    let mut command = PortWriteOnly::<u8>::new(PIT_COMMAND);
    let mut channel2 = PortWriteOnly::<u8>::new(PIT_CHANNEL2);
    let [count_low, count_high] = pit_count.to_le_bytes();
    // Safety: these are the PIT channel 2 and its gate on every PC; the
    // speaker output stays off (its bit in port B is kept clear).
    unsafe {
        let gate = port_b.read() & !(PORT_B_GATE2 | PORT_B_SPEAKER);
        port_b.write(gate);
        command.write(0b1011_0000); // channel 2, lo/hi, mode 0, binary
        channel2.write(count_low);
        channel2.write(count_high);
        before_start();
        // Start counting by raising the gate.
        let gate = port_b.read() & !(PORT_B_GATE2 | PORT_B_SPEAKER);
        port_b.write(gate | PORT_B_GATE2);
        while port_b.read() & PORT_B_OUT2 == 0 {
            core::hint::spin_loop();
        }
    }
}

/// Busy-waits about `us` microseconds (PIT-timed; used only during boot).
pub fn delay_us(us: u64) {
    let mut left = us * PIT_HZ / 1_000_000;
    while left > 0 {
        let chunk = left.min(0xFFFF);
        pit_wait(chunk.max(1) as u16, || {});
        left -= chunk;
    }
}

/// LAPIC timer counts (at divide-by-16) in 10 ms.
fn calibrate_10ms() -> u32 {
    pit_wait((PIT_HZ / 100) as u16, || {
        lapic_write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
        lapic_write(REG_LVT_TIMER, LVT_MASKED);
        lapic_write(REG_TIMER_INITIAL, u32::MAX);
    });
    let elapsed = u32::MAX - lapic_read(REG_TIMER_CURRENT);
    lapic_write(REG_TIMER_INITIAL, 0);
    elapsed
}

const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
const ICR_PENDING: u32 = 1 << 12;

fn send_icr(apic_id: u32, low: u32) {
    lapic_write(REG_ICR_HIGH, apic_id << 24);
    lapic_write(REG_ICR_LOW, low);
    let mut spins = 0;
    while lapic_read(REG_ICR_LOW) & ICR_PENDING != 0 && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
}

/// Sends a fixed interrupt `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    send_icr(apic_id, u32::from(vector));
}

/// INIT (level, assert) to `apic_id`: the first step of AP start-up.
pub fn send_init(apic_id: u32) {
    send_icr(apic_id, 0x4500);
}

/// Start-up IPI: the AP starts in real mode at `page << 12`.
pub fn send_sipi(apic_id: u32, page: u8) {
    send_icr(apic_id, 0x4600 | u32::from(page));
}

/// Starts the periodic tick. Returns the LAPIC counts per tick.
pub fn start_timer(tick_us: u32) -> u32 {
    let per_10ms = calibrate_10ms().max(1);
    let count = ((u64::from(per_10ms) * u64::from(tick_us)) / 10_000).max(1) as u32;
    lapic_write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    lapic_write(REG_LVT_TIMER, TIMER_PERIODIC | u32::from(TIMER_VECTOR));
    lapic_write(REG_TIMER_INITIAL, count);
    count
}

fn ioapic_write(reg: u32, value: u32) {
    // Safety: the IOAPIC index/data window at its standard address, mapped
    // uncached in the direct map.
    unsafe {
        core::ptr::write_volatile(phys_to_virt(IOAPIC_BASE) as *mut u32, reg);
        core::ptr::write_volatile(phys_to_virt(IOAPIC_BASE + 0x10) as *mut u32, value);
    }
}

/// Routes ISA IRQ `irq` (arriving at IOAPIC input `gsi` with the given
/// trigger and polarity) to its vector on the boot CPU, masked or not.
pub fn set_irq(
    irq: u8,
    gsi: u32,
    level: bool,
    active_low: bool,
    unmasked: bool,
    boot_apic_id: u32,
) {
    const ACTIVE_LOW: u32 = 1 << 13;
    const LEVEL: u32 = 1 << 15;
    let mut low = u32::from(IRQ_BASE_VECTOR + irq);
    if !unmasked {
        low |= LVT_MASKED;
    }
    if level {
        low |= LEVEL;
    }
    if active_low {
        low |= ACTIVE_LOW;
    }
    ioapic_write(0x10 + 2 * gsi + 1, boot_apic_id << 24);
    ioapic_write(0x10 + 2 * gsi, low);
}
