//! The local APIC (timer, EOI, IPIs) and the IOAPIC (device interrupts).
//!
//! Two modes, chosen once on the boot CPU by [`init_boot_cpu`] and then
//! used by every CPU:
//! - **x2APIC** whenever CPUID.1:ECX[21] says the CPU has it, and always
//!   when firmware handed over with IA32_APIC_BASE.EXTD set (leaving x2APIC
//!   mode needs a trip through "disabled", which firmware that chose it
//!   does not expect). Registers are MSRs `0x800 + offset / 16`, APIC ids
//!   are 32 bits (MSR 0x802) and an IPI is one 64-bit write of the ICR
//!   (MSR 0x830, destination in the high half) with nothing to poll: the
//!   write itself is the send (Intel SDM Vol. 3A §11.12 "Extended XAPIC
//!   (x2APIC)").
//! - **xAPIC** otherwise: the same registers as MMIO in the page
//!   IA32_APIC_BASE names (mapped uncached in the direct map), 8-bit ids,
//!   the ICR as two 32-bit halves, delivery status polled.
//!
//! Invariant: the mode never changes after [`init_boot_cpu`]; an AP
//! switches itself to it in [`init_local`] before it touches any other
//! APIC register, so the service IPIs the boot CPU sends reach it.
//!
//! The timer runs periodic at the manifest's tick, calibrated once against
//! the PIT so that a tick means the same on QEMU and on hardware. The
//! legacy 8259 PICs are masked for good. IOAPIC inputs start masked; an
//! input is unmasked only when the task it is bound to asks (IRQ_CONTROL),
//! and the kernel masks it again each time it fires, so a task always
//! acknowledges before the next one. MSRs (IA32_APIC_BASE and the x2APIC
//! registers) and the PIC and PIT ports go through the `x86_64` crate; the
//! xAPIC registers are plain MMIO.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::instructions::port::{Port, PortWriteOnly};
use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags, Msr};

use super::cpu;
use super::idt::{IRQ_BASE_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::paging::phys_to_virt;

/// How the kernel drives the local APICs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// MMIO registers, 8-bit APIC ids.
    XApic,
    /// MSR registers, 32-bit APIC ids.
    X2Apic,
}

impl Mode {
    /// The name the boot log and the docs use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Mode::XApic => "xapic",
            Mode::X2Apic => "x2apic",
        }
    }
}

/// Set once by [`init_boot_cpu`]; read on every EOI, so a plain flag.
static X2APIC: AtomicBool = AtomicBool::new(false);
/// Virtual address of the xAPIC register page (xAPIC mode only), kept so
/// an EOI is one store rather than an MSR read and a store.
static XAPIC_PAGE: AtomicU64 = AtomicU64::new(0);

/// A local APIC register, named by its xAPIC MMIO offset; its x2APIC MSR
/// is `0x800 + offset / 16` for every register the kernel uses.
#[derive(Copy, Clone)]
struct Reg(u32);

impl Reg {
    const ID: Reg = Reg(0x20);
    const TPR: Reg = Reg(0x80);
    const EOI: Reg = Reg(0xB0);
    const SPURIOUS: Reg = Reg(0xF0);
    const ICR_LOW: Reg = Reg(0x300);
    const ICR_HIGH: Reg = Reg(0x310);
    const LVT_TIMER: Reg = Reg(0x320);
    const TIMER_INITIAL: Reg = Reg(0x380);
    const TIMER_CURRENT: Reg = Reg(0x390);
    const TIMER_DIVIDE: Reg = Reg(0x3E0);

    const fn msr(self) -> u32 {
        0x800 + (self.0 >> 4)
    }
}

const TIMER_PERIODIC: u32 = 1 << 17;
const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;
const ICR_PENDING: u32 = 1 << 12;
/// CPUID.1:ECX bit 21: the CPU has x2APIC mode.
const CPUID_X2APIC: u32 = 1 << 21;
/// The highest APIC id an xAPIC ICR (8-bit destination) can address.
const XAPIC_MAX_ID: u32 = 0xFF;

const IOAPIC_BASE: u64 = 0xFEC0_0000;

fn x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

fn read(reg: Reg) -> u32 {
    if x2apic() {
        // Safety: in x2APIC mode every register of `Reg` exists as an MSR;
        // reading one has no side effect. The registers are 32 bits wide
        // (the ICR is never read in this mode).
        unsafe { Msr::new(reg.msr()).read() as u32 }
    } else {
        // Safety: the xAPIC page is mapped uncached in the direct map and
        // `reg` is a valid register offset.
        unsafe {
            core::ptr::read_volatile(
                (XAPIC_PAGE.load(Ordering::Relaxed) + u64::from(reg.0)) as *const u32,
            )
        }
    }
}

fn write(reg: Reg, value: u32) {
    if x2apic() {
        // Safety: as for `read`; each write is what the caller means the
        // local APIC to do.
        unsafe { Msr::new(reg.msr()).write(u64::from(value)) }
    } else {
        // Safety: as for `read`.
        unsafe {
            core::ptr::write_volatile(
                (XAPIC_PAGE.load(Ordering::Relaxed) + u64::from(reg.0)) as *mut u32,
                value,
            );
        }
    }
}

/// This CPU's APIC id: the 32-bit x2APIC id, or the 8-bit xAPIC id.
#[must_use]
pub fn apic_id() -> u32 {
    if x2apic() {
        read(Reg::ID)
    } else {
        read(Reg::ID) >> 24
    }
}

/// Whether an IPI can reach the CPU with `apic_id` in this mode.
#[must_use]
pub fn can_address(apic_id: u32) -> bool {
    x2apic() || apic_id <= XAPIC_MAX_ID
}

/// Signals end of interrupt to the local APIC.
pub fn eoi() {
    write(Reg::EOI, 0);
}

/// Chooses the mode (see the module doc), switches the boot CPU to it,
/// masks the legacy PICs and enables the local APIC. Returns the mode and
/// whether firmware had already handed over in x2APIC mode.
pub fn init_boot_cpu() -> (Mode, bool) {
    let (frame, flags) = ApicBase::read();
    let handed_over = flags.contains(ApicBaseFlags::X2APIC_ENABLE | ApicBaseFlags::LAPIC_ENABLE);
    let (_, _, ecx, _) = cpu::cpuid(1, 0);
    let mode = if handed_over || ecx & CPUID_X2APIC != 0 {
        Mode::X2Apic
    } else {
        Mode::XApic
    };
    XAPIC_PAGE.store(
        phys_to_virt(frame.start_address().as_u64()) as u64,
        Ordering::Relaxed,
    );
    X2APIC.store(mode == Mode::X2Apic, Ordering::Release);
    // Safety: the 8259 data ports; writing 0xFF masks every input, which is
    // what we want whether or not the PICs exist.
    unsafe {
        PortWriteOnly::<u8>::new(PIC1_DATA).write(0xFF);
        PortWriteOnly::<u8>::new(PIC2_DATA).write(0xFF);
    }
    init_local();
    (mode, handed_over)
}

/// Switches this CPU's local APIC to the kernel's mode and enables it
/// (task priority 0, spurious vector set). Each AP calls it first thing.
pub fn init_local() {
    let (frame, flags) = ApicBase::read();
    let enabled = flags | ApicBaseFlags::LAPIC_ENABLE;
    if enabled != flags {
        // Safety: disabled → xAPIC keeps the base where it is and only sets
        // EN; nothing has touched the APIC registers yet.
        unsafe { ApicBase::write(frame, enabled) };
    }
    if x2apic() && !enabled.contains(ApicBaseFlags::X2APIC_ENABLE) {
        // xAPIC → x2APIC is the one permitted way in (SDM §11.12.5: EXTD
        // without EN is invalid, so EN went first). Every register access
        // after this uses MSRs, as `x2apic()` says.
        // Safety: as above; only EXTD changes.
        unsafe { ApicBase::write(frame, enabled | ApicBaseFlags::X2APIC_ENABLE) };
    }
    write(Reg::TPR, 0);
    write(Reg::SPURIOUS, 0x100 | u32::from(SPURIOUS_VECTOR));
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
        write(Reg::TIMER_DIVIDE, DIVIDE_BY_16);
        write(Reg::LVT_TIMER, LVT_MASKED);
        write(Reg::TIMER_INITIAL, u32::MAX);
    });
    let elapsed = u32::MAX - read(Reg::TIMER_CURRENT);
    write(Reg::TIMER_INITIAL, 0);
    elapsed
}

/// Sends one interrupt command: `low` is the ICR's low word (vector,
/// delivery mode, level), `apic_id` the physical destination.
fn send_icr(apic_id: u32, low: u32) {
    if x2apic() {
        // Safety: MSR 0x830 is the x2APIC ICR; one 64-bit write with the
        // destination in bits 63:32 sends the IPI. x2APIC has no delivery
        // status to wait for.
        unsafe { Msr::new(Reg::ICR_LOW.msr()).write((u64::from(apic_id) << 32) | u64::from(low)) };
        return;
    }
    write(Reg::ICR_HIGH, apic_id << 24);
    write(Reg::ICR_LOW, low);
    let mut spins = 0;
    while read(Reg::ICR_LOW) & ICR_PENDING != 0 && spins < 1_000_000 {
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
    write(Reg::TIMER_DIVIDE, DIVIDE_BY_16);
    write(Reg::LVT_TIMER, TIMER_PERIODIC | u32::from(TIMER_VECTOR));
    write(Reg::TIMER_INITIAL, count);
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
///
/// The redirection entry's physical destination is 8 bits in either APIC
/// mode (ids above 255 need interrupt remapping, which the kernel does not
/// drive): a boot CPU with a larger id gets no device interrupts, and
/// `main` says so at boot.
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
