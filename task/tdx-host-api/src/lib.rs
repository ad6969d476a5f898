//! Client of the TdxHost interface (`idl/tdx-host.idol`): the generated stub [`TdxHost`] plus the
//! types the interface names.
//!
//! Pattern: every reply and argument type is a fixed-size zerocopy value (`#[repr(C)]`, explicit
//! padding fields so `IntoBytes` holds), or a small enum sent as a `u8` (`FromPrimitive`).
//! Physical addresses travel in byte leases as little-endian `u64`s, 8 bytes per frame; use
//! [`addrs_as_bytes`] to lend a `[u64]`. Unknown enum codes decode to `None`, never to a default,
//! so a newer server can add states without an older client misreading them.
//!
//! Sizes (pinned by compile-time assertions): [`ModuleStatus`] 112 bytes, [`NodeInfo`] 40,
//! [`RegionRecord`] 32, [`RegionMapReply`] 8, [`OnlineReply`] 2, [`OwnedRecord`] 24,
//! [`OwnedReply`] 8, [`TdCreateReply`] 8, [`TeardownReply`] 16, [`TdTotals`] 24.
//! [`RequestIds`] gives `alloc_request`/`free_request` their identities.

#![no_std]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `alloc_frames` node argument meaning "any node the caller may use".
pub const ANY_NODE: u16 = u16::MAX;

/// Bytes one address takes in an address lease.
pub const ADDR_BYTES: usize = 8;

/// Most frames one `alloc_frames`/`free_frames` call moves (the lease `max_len` / 8).
pub const MAX_FRAMES_PER_CALL: usize = 512;

/// Most bytes tdx-host scrubs and checks (TDH.PHYMEM.PAGE.RDMD per 4 KiB) in one step. Freed
/// and reclaimed frames wait in quarantine; steps run between requests, at most one per timer
/// tick, so no request and no lower-priority task waits for more than one step.
pub const SCRUB_STEP_BYTES: u64 = 2 << 20;

idol_runtime::clike_error! {
    /// Why a TdxHost request failed. Codes are stable (they travel as the response code).
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum TdxHostError {
        /// TDX initialization has not finished yet; ask again later.
        NotReady = 3,
        /// TDX initialization failed (see `status` for the step and TDX status); permanent.
        Failed = 4,
        /// This machine has no usable TDX module (not loaded, or BIOS did not enable it).
        Unavailable = 5,
        /// Not enough free memory of the requested node, size and class.
        NoMemory = 6,
        /// The request would exceed the caller's byte quota.
        QuotaExceeded = 7,
        /// The caller may not use this node.
        NodeNotAllowed = 8,
        /// An address or range is not aligned to its size (4 KiB, 2 MiB, 1 GiB).
        BadAlignment = 9,
        /// The frame belongs to another task.
        NotOwner = 10,
        /// The address is not a frame this server manages.
        UnknownFrame = 11,
        /// The frame is already free (or listed twice in one request).
        DoubleFree = 12,
        /// `reject` policy: the region lies (partly) outside the TDMRs, so it can never be TDX memory.
        RegionOutsideTdmrs = 13,
        /// The region has frames in use or waiting for scrub; offlining is refused, never forced.
        RegionBusy = 14,
        /// The caller lacks the right for this operation or memory class.
        AccessDenied = 15,
        /// A malformed argument: zero count, lease too short, empty or wrapping range.
        BadArgument = 16,
        /// No such NUMA node.
        NoSuchNode = 17,
        /// A fixed-capacity table (ownership records, regions) is full.
        TableFull = 18,
        /// The range partly overlaps a known region, or memory the system uses (a PAMT, the
        /// kernel or task image, the TDMR_INFO buffer).
        RegionOverlap = 19,
        /// No online region matches the range.
        UnknownRegion = 20,
        /// The frame was allocated with another size class.
        WrongSize = 21,
        /// `online_region`: the range is not memory tdx-host may online. It is neither boot RAM
        /// that tdx-host holds offline nor inside the platform's hot-plug window, and touches no
        /// CMR or TDMR: MMIO (such as the local APIC page), or no device at all.
        NotMemory = 22,
        /// `online_region`: the range lies inside a CMR or TDMR but is not RAM of the platform
        /// record nor inside the hot-plug window: a firmware or legacy hole the module's coarse
        /// CMRs cover, which must never be handed out.
        FirmwareHole = 23,
        /// `online_region`: the range is exactly a region that is online already.
        AlreadyOnline = 24,
        /// `online_region`: boot RAM that tdx-host does not hold offline (the kernel's, a task's,
        /// or RAM the policy leaves unused, e.g. outside every CMR under `reject`).
        NotHeldOffline = 25,
        /// `online_region`: the range is an offline region of another NUMA node.
        WrongNode = 26,
        /// The kernel refused to online or offline hot-plugged memory (it is not inside the
        /// kernel's hot-plug window, or overlaps memory the kernel tracks); tdx-host's tables are
        /// unchanged.
        MemoryRefused = 27,
        /// The frame (or part of it) is held by a TD (a TDR, TD control, S-EPT or private
        /// page): tear the TD down or remove the page first.
        PageInTd = 28,
        /// No TD with this id belongs to the caller (or no such vCPU).
        NoSuchTd = 29,
        /// No guest KeyID is free (all in use or retired).
        NoKeyId = 30,
        /// The caller holds as many KeyIDs (TDs) as its `keyids` limit allows.
        KeyIdLimit = 31,
        /// The TDX module refused the TD operation (tdx-host keeps and logs its status).
        ModuleRefused = 32,
        /// The TD is not in a state that allows this operation (tdx-host's books), or the page
        /// operand is not an allocated frame of the caller outside every TD.
        WrongState = 33,
        /// The module stayed busy (or interrupted) beyond tdx-host's bounded retries.
        TdBusy = 34,
    }
}

/// Frame size class; travels as a `u8` (0, 1, 2 = the TDX page-size level, §5.5).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameSize {
    /// 4 KiB.
    K4 = 0,
    /// 2 MiB, 2 MiB-aligned.
    M2 = 1,
    /// 1 GiB, 1 GiB-aligned.
    G1 = 2,
}

impl FrameSize {
    /// All sizes, smallest first.
    pub const ALL: [FrameSize; 3] = [FrameSize::K4, FrameSize::M2, FrameSize::G1];

    /// log2 of the size in bytes.
    #[must_use]
    pub const fn shift(self) -> u32 {
        match self {
            FrameSize::K4 => 12,
            FrameSize::M2 => 21,
            FrameSize::G1 => 30,
        }
    }

    /// Size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// Number of 4 KiB frames in one frame of this size.
    #[must_use]
    pub const fn frames_4k(self) -> u64 {
        1 << (self.shift() - 12)
    }
}

impl From<FrameSize> for u8 {
    fn from(s: FrameSize) -> u8 {
        s as u8
    }
}

impl TryFrom<u8> for FrameSize {
    type Error = ();
    fn try_from(raw: u8) -> Result<Self, ()> {
        match raw {
            0 => Ok(FrameSize::K4),
            1 => Ok(FrameSize::M2),
            2 => Ok(FrameSize::G1),
            _ => Err(()),
        }
    }
}

/// Memory class: TDX memory (inside the configured TDMRs, usable for TDs) or not.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemClass {
    /// Inside a TDMR: TDX-capable.
    Tdx = 0,
    /// Outside every TDMR (hot-plugged after TDH.SYS.CONFIG, `per-node` policy, §8.1).
    NonTdx = 1,
}

impl From<MemClass> for u8 {
    fn from(c: MemClass) -> u8 {
        c as u8
    }
}

impl TryFrom<u8> for MemClass {
    type Error = ();
    fn try_from(raw: u8) -> Result<Self, ()> {
        match raw {
            0 => Ok(MemClass::Tdx),
            1 => Ok(MemClass::NonTdx),
            _ => Err(()),
        }
    }
}

/// Where the TDX bring-up is (the `state` byte of [`ModuleStatus`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ModuleState {
    /// Bring-up has not started.
    NotStarted = 0,
    /// Bring-up is running; `step` says where.
    Initializing = 1,
    /// TDX memory is being served.
    Ready = 2,
    /// Bring-up failed at `step` with `status`; permanent until reboot (§3.3: no retry of CONFIG).
    Failed = 3,
    /// No TDX on this machine; `reason` says why.
    Unavailable = 4,
}

impl ModuleState {
    /// Decodes a state byte.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(ModuleState::NotStarted),
            1 => Some(ModuleState::Initializing),
            2 => Some(ModuleState::Ready),
            3 => Some(ModuleState::Failed),
            4 => Some(ModuleState::Unavailable),
            _ => None,
        }
    }
}

/// Bring-up steps, in order (§3.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InitStep {
    /// KeyID partitioning and platform checks (§1.2).
    Detect = 0,
    /// TDH.SYS.INIT.
    SysInit = 1,
    /// TDH.SYS.LP.INIT on every CPU.
    LpInit = 2,
    /// TDH.SYS.RD of version, features, limits, CMRs (§5.4).
    ReadMetadata = 3,
    /// TDMR/PAMT planning (§7).
    Plan = 4,
    /// TDH.SYS.CONFIG.
    Config = 5,
    /// WBINVD on every CPU before KEY.CONFIG (§3.3 g).
    CacheFlush = 6,
    /// TDH.SYS.KEY.CONFIG once per package.
    KeyConfig = 7,
    /// TDH.SYS.TDMR.INIT on every TDMR.
    TdmrInit = 8,
}

impl InitStep {
    /// How many steps there are: the length of every per-step table.
    pub const COUNT: usize = InitStep::TdmrInit as usize + 1;

    /// All steps in order.
    pub const ALL: [InitStep; InitStep::COUNT] = [
        InitStep::Detect,
        InitStep::SysInit,
        InitStep::LpInit,
        InitStep::ReadMetadata,
        InitStep::Plan,
        InitStep::Config,
        InitStep::CacheFlush,
        InitStep::KeyConfig,
        InitStep::TdmrInit,
    ];

    /// Decodes a step byte.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        InitStep::ALL.get(usize::from(v)).copied()
    }
}

/// Why TDX is unavailable (the `reason` byte of [`ModuleStatus`]; 0 = not unavailable).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnavailableReason {
    /// SEAMCALL returned VMfailInvalid: no module loaded (§2.1).
    ModuleNotLoaded = 1,
    /// SEAMCALL raised #GP (SEAM disabled).
    SeamcallGp = 2,
    /// SEAMCALL raised #UD (not post-VMXON).
    SeamcallUd = 3,
    /// MSR 0x87 reports no TDX KeyIDs: BIOS did not enable TDX (§1.2).
    NoTdxKeyIds = 4,
    /// Fewer than two TDX KeyIDs (one is the global KeyID, §1.2).
    TooFewKeyIds = 5,
    /// The kernel offers no SEAMCALL (the manifest grants none).
    NoSeamcall = 6,
}

impl UnavailableReason {
    /// Decodes a reason byte (0 and unknown values give `None`).
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(UnavailableReason::ModuleNotLoaded),
            2 => Some(UnavailableReason::SeamcallGp),
            3 => Some(UnavailableReason::SeamcallUd),
            4 => Some(UnavailableReason::NoTdxKeyIds),
            5 => Some(UnavailableReason::TooFewKeyIds),
            6 => Some(UnavailableReason::NoSeamcall),
            _ => None,
        }
    }
}

/// Reply of `status`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ModuleStatus {
    /// The TDX status of the failing SEAMCALL when `state` is Failed (a class-0xFF host code when
    /// the failure was not a SEAMCALL's, §4.1); 0 otherwise.
    pub status: u64,
    /// TDX memory online, in bytes.
    pub tdx_bytes_total: u64,
    /// TDX memory free for allocation, in bytes.
    pub tdx_bytes_free: u64,
    /// Non-TDX memory online, in bytes.
    pub non_tdx_bytes_total: u64,
    /// Non-TDX memory free, in bytes.
    pub non_tdx_bytes_free: u64,
    /// Memory given to the module for PAMTs.
    pub pamt_bytes: u64,
    /// SEAMCALLs issued during bring-up (the instruction-free measure of its cost).
    pub init_seamcalls: u64,
    /// TDMR bytes whose TDMR.INIT has finished.
    pub tdmr_bytes_initialized: u64,
    /// TDMR bytes in total.
    pub tdmr_bytes_total: u64,
    /// First TDX private KeyID (the global KeyID, §1.2).
    pub first_tdx_keyid: u32,
    /// Number of TDX private KeyIDs.
    pub nr_tdx_keyids: u32,
    /// Module major version.
    pub major: u16,
    /// Module minor version.
    pub minor: u16,
    /// Module update version.
    pub update: u16,
    /// Module build number.
    pub build_num: u16,
    /// The global KeyID given to TDH.SYS.CONFIG (0 before CONFIG).
    pub global_keyid: u16,
    /// Number of TDMRs configured.
    pub num_tdmrs: u16,
    /// [`ModuleState`] as a byte.
    pub state: u8,
    /// [`InitStep`] as a byte (current step, or the failed one).
    pub step: u8,
    /// [`UnavailableReason`] as a byte, 0 if not unavailable.
    pub reason: u8,
    /// Zero.
    pub _pad: u8,
    /// TDH.SYS.TDMR.INIT calls this instance made (retries included).
    pub tdmr_init_calls: u32,
    /// The most of them one CPU made.
    pub tdmr_init_most_on_one_cpu: u32,
    /// CPUs that made TDMR.INIT calls.
    pub tdmr_init_cpus: u16,
    /// The most TDMR.INIT calls in flight at once.
    pub tdmr_init_peak_in_flight: u16,
    /// Zero.
    pub _pad2: u32,
}

impl ModuleStatus {
    /// The decoded state.
    #[must_use]
    pub const fn state(&self) -> Option<ModuleState> {
        ModuleState::from_u8(self.state)
    }
}

/// Reply of `node_info`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct NodeInfo {
    /// TDX memory online on the node.
    pub tdx_bytes_total: u64,
    /// TDX memory free on the node.
    pub tdx_bytes_free: u64,
    /// Non-TDX memory online on the node.
    pub non_tdx_bytes_total: u64,
    /// Non-TDX memory free on the node.
    pub non_tdx_bytes_free: u64,
    /// The node index.
    pub node: u16,
    /// 1 if every online byte of the node is TDX memory and it has some (§8.1 option 2 flag).
    pub tdx_capable: u8,
    /// Zero.
    pub _pad: [u8; 5],
}

/// Region states in [`RegionRecord::state`].
pub mod region_state {
    /// Online: its frames may be allocated.
    pub const ONLINE: u8 = 0;
    /// Present but kept offline (boot-offline, or offlined later); not allocatable.
    pub const OFFLINE: u8 = 1;
}

/// One entry of the region map (32 bytes).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RegionRecord {
    /// First byte (4 KiB-aligned).
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// Allocated or quarantined bytes.
    pub bytes_in_use: u64,
    /// NUMA node.
    pub node: u16,
    /// [`MemClass`] as a byte.
    pub class: u8,
    /// A [`region_state`] value.
    pub state: u8,
    /// Zero.
    pub _pad: u32,
}

/// Reply of `region_map`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RegionMapReply {
    /// Records written to the lease.
    pub written: u32,
    /// Records in the map.
    pub total: u32,
}

/// Reply of `online_region`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct OnlineReply {
    /// [`MemClass`] the region became.
    pub class: u8,
    /// 1 if the node is still wholly TDX-capable afterwards.
    pub node_tdx_capable: u8,
}

/// One run of frames the caller holds (`owned`, 24 bytes).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct OwnedRecord {
    /// First frame.
    pub base: u64,
    /// Frames in the run.
    pub count: u32,
    /// The `alloc_request` identity that allocated it (0: `alloc_frames`).
    pub request: u32,
    /// [`FrameSize`] as a byte.
    pub size: u8,
    /// Zero.
    pub _pad: [u8; 7],
}

/// Reply of `owned`.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct OwnedReply {
    /// Records written to the lease.
    pub written: u32,
    /// Runs the caller holds.
    pub total: u32,
}

/// Request identities for `alloc_request`/`free_request`: each call takes the next (never 0).
/// One per client task; a restarted client starts over, which is safe because the server keys
/// identities by the client's generation too.
#[derive(Debug, Default)]
pub struct RequestIds(core::cell::Cell<u32>);

impl RequestIds {
    /// Starts at 1.
    #[must_use]
    pub const fn new() -> Self {
        RequestIds(core::cell::Cell::new(0))
    }

    /// The next identity.
    pub fn next(&self) -> u32 {
        let n = match self.0.get().wrapping_add(1) {
            0 => 1,
            n => n,
        };
        self.0.set(n);
        n
    }
}

/// The wire bytes of an owned record (what `owned` writes per record).
#[must_use]
pub fn owned_bytes(r: &OwnedRecord) -> &[u8] {
    r.as_bytes()
}

/// Reply of `stats`: the server's hygiene and bookkeeping counters since it started.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ServerStats {
    /// Bytes scrubbed by the kernel and checked PT_NDA, then back in the free pool.
    pub scrubbed_bytes: u64,
    /// Scrub steps that scrubbed something (each at most `SCRUB_STEP_BYTES`, between requests).
    pub scrub_runs: u64,
    /// TDH.PHYMEM.PAGE.RDMD calls made on freed or reclaimed TDX pages.
    pub rdmd_calls: u64,
    /// Bytes taken back from restarted clients.
    pub reclaimed_bytes: u64,
    /// Bytes retired for good (scrub refused or not PT_NDA).
    pub retired_bytes: u64,
    /// Bytes freed or reclaimed but not yet scrubbed.
    pub quarantined_bytes: u64,
    /// Bytes the caller holds now.
    pub caller_usage_bytes: u64,
    /// The caller's quota (0: no policy, it may not allocate).
    pub caller_quota_bytes: u64,
    /// `client-restarted` notifications handled.
    pub restarts_seen: u32,
    /// Requests refused with an error (any operation).
    pub refused: u32,
    /// Bring-up retries after a transient status, per `InitStep` (index = the step's value;
    /// entries from [`InitStep::COUNT`] on are 0, room for steps a later server may add).
    pub init_retries: [u16; 12],
    /// TSC ticks spent in scrub steps (the kernel's scrub, the PAGE.RDMD checks and the
    /// release of what they cleared) over the `scrubbed_bytes + retired_bytes` they handled:
    /// the background cost of taking memory back.
    pub scrub_step_tsc: u64,
    /// How the kernel clears memory (`abi::kipc::ScrubMethod` code; 0 unknown).
    pub scrub_method: u8,
    /// Zero.
    pub _pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<ServerStats>() == 112);
const _: () = assert!(
    InitStep::COUNT <= 12,
    "ServerStats::init_retries holds every step"
);

/// Reply of `td_create` (8 bytes).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TdCreateReply {
    /// The TD's id: what every other TD operation names.
    pub td: u32,
    /// Its guest KeyID (HKID).
    pub hkid: u16,
    /// Zero.
    pub _pad: u16,
}

/// Reply of `td_teardown` (16 bytes).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TeardownReply {
    /// Pages reclaimed, the TDR included.
    pub reclaimed: u32,
    /// SEAMCALLs answered busy or interrupted and made again.
    pub retries: u32,
    /// 1 if the module would not free the KeyID: it and the TD's frames are retired.
    pub keyid_retired: u8,
    /// Zero.
    pub _pad: [u8; 7],
}

/// Reply of `td_totals` (24 bytes).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TdTotals {
    /// The module's status of the last TD SEAMCALL it refused (any client; 0 if none).
    pub last_refusal: u64,
    /// 4 KiB frames held by TDs (TDRs included; a 2 MiB page counts 512).
    pub frames_in_tds: u32,
    /// Guest KeyIDs free.
    pub keyids_free: u16,
    /// Guest KeyIDs held by TDs.
    pub keyids_in_use: u16,
    /// Guest KeyIDs retired (never reused).
    pub keyids_retired: u16,
    /// TDs of the caller (this incarnation).
    pub mine: u16,
    /// Zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<ModuleStatus>() == 112);
const _: () = assert!(core::mem::size_of::<NodeInfo>() == 40);
const _: () = assert!(core::mem::size_of::<RegionRecord>() == 32);
const _: () = assert!(core::mem::size_of::<RegionMapReply>() == 8);
const _: () = assert!(core::mem::size_of::<OnlineReply>() == 2);
const _: () = assert!(core::mem::size_of::<OwnedRecord>() == 24);
const _: () = assert!(core::mem::size_of::<OwnedReply>() == 8);
const _: () = assert!(core::mem::size_of::<TdCreateReply>() == 8);
const _: () = assert!(core::mem::size_of::<TeardownReply>() == 16);
const _: () = assert!(core::mem::size_of::<TdTotals>() == 24);

/// Lends a `[u64]` of addresses as the byte lease `alloc_frames`/`free_frames` expect
/// (little-endian, which is the native order on x86_64).
#[must_use]
pub fn addrs_as_bytes(addrs: &mut [u64]) -> &mut [u8] {
    addrs.as_mut_bytes()
}

/// Read-only variant of [`addrs_as_bytes`].
#[must_use]
pub fn addrs_as_bytes_ref(addrs: &[u64]) -> &[u8] {
    addrs.as_bytes()
}

/// The wire bytes of a region record (what `region_map` writes per record).
#[must_use]
pub fn record_bytes(r: &RegionRecord) -> &[u8] {
    r.as_bytes()
}

include!(concat!(env!("OUT_DIR"), "/client_stub.rs"));

impl TdxHost {
    /// `status` once bring-up has ended (`Ready`, `Failed` or `Unavailable`): tdx-host answers
    /// `Initializing` while TDH.SYS.TDMR.INIT still runs (it serves TDX frames of initialized
    /// blocks meanwhile), so a client that needs the whole module asks again, calling `pause`
    /// (e.g. a one-tick sleep) in between, at most `tries` times. Returns the last answer.
    pub fn status_settled(&self, tries: u32, mut pause: impl FnMut()) -> ModuleStatus {
        let mut st = self.status();
        for _ in 0..tries {
            if st.state() != Some(ModuleState::Initializing) {
                break;
            }
            pause();
            st = self.status();
        }
        st
    }
}
