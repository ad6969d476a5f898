//! The binary's start: the big tables (`static`s, one reference each, taken once by
//! [`tables`]), the durable words, the platform record, the bring-up through
//! `tdx_host::server::start`, and where TD operations run (package leaders and KeyID bits).
//!
//! Invariant: [`server`] is called once, from `main`; nothing else names the statics.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use tdx_host::frames::{bitmap_words, MAX_POOLS};
use tdx_host::init::{record::RecordWords, report::Trace, InitStorage, Progress, TdmrRun};
use tdx_host::ledger::Layout;
use tdx_host::platform::Platform;
use tdx_host::seam::{IdentityBuffer, KeyIdPartition};
use tdx_host::server::service::TdStaging;
use tdx_host::server::start::{start, Setup};
use tdx_host::server::td::TdCpus;
use tdx_host::server::Server;
use userlib::{hl, ulog};

use super::config;

/// Pool memory the allocator can track (2 bits per 4 KiB frame): 4 GiB in 256 KiB of bitmap.
const BITMAP_WORDS: usize = bitmap_words(4 << 30, MAX_POOLS);
/// TDMR_INFO buffer: the PA array, then 512 bytes per TDMR (§5.3).
const TDMR_BUF_BYTES: usize = 512 * (1 + tdx_planner::MAX_TDMRS);
const LEDGER_WORDS: usize = Layout::new(BITMAP_WORDS).total_words();

#[repr(C, align(4096))]
struct TdmrBuf([u8; TDMR_BUF_BYTES]);
static mut TDMR_BUF: TdmrBuf = TdmrBuf([0; TDMR_BUF_BYTES]);
static mut BITMAP: [u64; BITMAP_WORDS] = [0; BITMAP_WORDS];
static mut STORAGE: MaybeUninit<InitStorage> = MaybeUninit::uninit();
static mut SERVER: MaybeUninit<Server<'static>> = MaybeUninit::uninit();
static mut TD_STAGING: TdStaging = TdStaging::new();

/// The ledger and the bring-up record, kept by the kernel across this task's restarts
/// (`memory.durable`). `repr(C)`, ledger first: a test that damages it names a byte by offset.
#[repr(C)]
pub(super) struct Durable {
    pub ledger: [u64; LEDGER_WORDS],
    pub record: RecordWords,
}

#[unsafe(link_section = ".durable")]
static mut DURABLE: Durable = Durable {
    ledger: [0; LEDGER_WORDS],
    record: RecordWords::new(),
};

/// The statics, each borrowed once.
struct Tables {
    pub tdmr_buf: &'static mut [u8],
    pub bitmap: &'static mut [u64],
    pub storage: &'static mut MaybeUninit<InitStorage>,
    pub server: &'static mut MaybeUninit<Server<'static>>,
    pub durable: &'static mut Durable,
    pub staging: &'static mut TdStaging,
}

/// The statics. Call once.
fn tables() -> Tables {
    // Safety: called once from `main`; these are the only references ever made to the statics.
    unsafe {
        Tables {
            tdmr_buf: &mut (*addr_of_mut!(TDMR_BUF)).0,
            bitmap: &mut *addr_of_mut!(BITMAP),
            storage: &mut *addr_of_mut!(STORAGE),
            server: &mut *addr_of_mut!(SERVER),
            durable: &mut *addr_of_mut!(DURABLE),
            staging: &mut *addr_of_mut!(TD_STAGING),
        }
    }
}

/// The platform record, the running CPUs and the KeyID partition, from the kernel; and the
/// KeyID bits of a physical address (0 if the kernel does not tell).
fn read_platform() -> (Platform, u8) {
    let running = (0..hl::cpu_count().unwrap_or(0)).map(|i| hl::cpu_apic_id(i).ok());
    let msr = hl::keyid_partition().ok();
    let keyids = msr.map(|(_, nr_mktme, nr_tdx)| KeyIdPartition { nr_mktme, nr_tdx });
    let bits = msr.map_or(0, |(bits, _, _)| bits);
    let platform = match hl::read_platform() {
        Ok(r) => Platform::from_record(&r, running, config::BOOT_OFFLINE, keyids),
        Err(e) => {
            ulog!("tdx-host: cannot read the platform record: {e:?}");
            Platform::unreadable()
        }
    };
    (platform, bits)
}

/// The TSC.
pub(super) fn tsc() -> u64 {
    // Safety: RDTSC has no memory effects; the kernel does not set CR4.TSD.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The log sink.
pub(super) fn log(line: core::fmt::Arguments<'_>) {
    ulog!("tdx-host: {line}");
}

/// Brings the module up (or re-attaches), restores the ledger, and sets where TD operations
/// run: the server, the TD staging buffers, and TDMR.INIT if it still runs. Call once.
pub(super) fn server() -> (
    &'static mut Server<'static>,
    &'static mut TdStaging,
    Option<TdmrRun>,
) {
    let t = tables();
    let (ledger, record) = (&mut t.durable.ledger, &t.durable.record);
    let storage = t.storage.write(InitStorage::default());
    let (platform, keyid_bits) = read_platform();
    // defmt: many progress lines on large memory; a binary frame is a fraction of a line.
    let mut trace = Trace::new(tsc, |p: &Progress| {
        defmt::info!(
            "TDMR.INIT: TDMR {=usize} at {=u64:#x} initialized to {=u64:#x} ({=u64} of {=u64} MiB)",
            p.tdmr,
            p.tdmr_base.0,
            p.initialized_end.0,
            p.bytes_done >> 20,
            p.bytes_total >> 20
        )
    });
    let setup = Setup::new(config::CLIENTS, config::HOTPLUG_POLICY).record(record);
    let tables = (storage, t.bitmap, ledger as &mut [u64], t.server);
    let mut seam = super::kernel::SeamKernel::new();
    let kernel = (&mut seam, &mut IdentityBuffer(t.tdmr_buf));
    let mut run = None;
    let how = (setup, &mut trace, &mut run);
    let server = start(kernel, &platform, tables, how, &mut log);
    server.set_td_cpus(TdCpus::from_platform(&platform.view(), keyid_bits));
    (server, t.staging, run)
}
