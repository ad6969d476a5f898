//! Numeric limits and alignments of the 1.5.01 module (§5.1, §5.3, §3.2, §2.1).
//!
//! Invariant: these are the *module's* limits; a host must still read the live values through
//! TDH.SYS.RD (§5.4) and treat these as upper bounds for fixed-capacity storage.

/// 1 KiB.
pub const KIB: u64 = 1 << 10;
/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 1 GiB.
pub const GIB: u64 = 1 << 30;
/// 4 KiB page size.
pub const PAGE_SIZE_4K: u64 = 4 * KIB;

/// Maximum number of TDMRs (§5.3, metadata MAX_TDMRS).
pub const MAX_TDMRS: usize = 64;
/// Reserved-area slots per TDMR_INFO; the module always reads all of them (§5.3).
pub const MAX_RESERVED_PER_TDMR: usize = 16;
/// Maximum number of CMRs (§5.1).
pub const MAX_CMRS: usize = 32;
/// Bytes per PAMT entry at every level in 1.5.01 (§5.5).
pub const PAMT_ENTRY_SIZE: u64 = 16;
/// HKIDs supported by the module; `private_max >= MAX_HKIDS` fails SYS.INIT (§1.2).
pub const MAX_HKIDS: u32 = 2048;

/// Alignment of each TDMR_INFO PA (§5.3, checked by SYS.CONFIG §6 rule 6).
pub const TDMR_INFO_ALIGNMENT: u64 = 512;
/// Alignment of the TDMR_INFO PA array (§5.3, §6 rule 3).
pub const TDMR_INFO_PA_ARRAY_ALIGNMENT: u64 = 512;
/// Bytes Linux allocates per TDMR_INFO: ALIGN(64 + 16 * 16, 512) (§5.3).
pub const TDMR_INFO_SIZE: usize = 512;
/// Bytes the module actually reads per TDMR_INFO: 64-byte header + 16 reserved slots (§5.3).
pub const TDMR_INFO_READ_BYTES: usize = 64 + 16 * MAX_RESERVED_PER_TDMR;
/// Minimum PA-array allocation Linux uses (so it is 512-aligned) (§3.3 f).
pub const TDMR_INFO_PA_ARRAY_MIN_BYTES: usize = 512;

/// TDMR base and size granularity (§6).
pub const TDMR_ALIGNMENT: u64 = GIB;
/// Reserved-area offset/size and PAMT base/size granularity (§6).
pub const RESERVED_ALIGNMENT: u64 = PAGE_SIZE_4K;
/// CMR base/size granularity (§5.1).
pub const CMR_ALIGNMENT: u64 = PAGE_SIZE_4K;
/// Memory below this address is never in a CMR (§5.1).
pub const CMR_LOW_EXCLUDED: u64 = MIB;

/// 4K PAMT entries initialized by one TDH.SYS.TDMR.INIT call (§3.2).
pub const TDMR_4K_PAMT_INIT_COUNT: u64 = 1024;
/// TDMR bytes covered by one TDH.SYS.TDMR.INIT call: 1024 × 4 KiB = 4 MiB (§3.2).
pub const TDMR_INIT_CHUNK: u64 = TDMR_4K_PAMT_INIT_COUNT * PAGE_SIZE_4K;
/// Granule in which TDMR memory becomes usable after TDMR.INIT (§3.2).
pub const TDMR_INIT_READY_GRANULE: u64 = GIB;

/// TDSYSINFO_STRUCT size and alignment for the legacy TDH.SYS.INFO (§5.2).
pub const TDSYSINFO_STRUCT_SIZE: u64 = 1024;
/// CMR_INFO array alignment for TDH.SYS.INFO (§5.1).
pub const CMR_INFO_ARRAY_ALIGNMENT: u64 = 512;
/// TDH.SYS.RDALL list buffer alignment (§2.3).
pub const RDALL_BUFFER_ALIGNMENT: u64 = 4 * KIB;

/// Linux retries every SEAMCALL at most this many times while it returns TDX_RND_NO_ENTROPY (§2.1).
pub const RDRAND_RETRY_LOOPS: u32 = 10;
/// Linux refuses TDX with fewer private KeyIDs than this (§1.2).
pub const MIN_PRIVATE_KEYIDS: u32 = 2;

const _: () = assert!(TDMR_INFO_READ_BYTES == 320);
const _: () = assert!(TDMR_INIT_CHUNK == 4 * MIB);
