//! Host-side failure codes of bring-up: what tdx-host reports as a
//! step's status when the failure was not the module's (a kernel refusal,
//! a bad plan, a CPU that did not answer). They sit in the software class
//! 0xFF that Linux also uses (docs/tdx-module.md §4.1, §4.2), so they can
//! never be mistaken for a module status.
//!
//! A leaf module: `init` reports them and `seam` maps kernel errors to
//! them, without either depending on the other.

use tdx_abi::TdxStatus;

const fn sw(n: u64) -> TdxStatus {
    TdxStatus(TdxStatus::SW_ERROR.0 | 0x1000 | n)
}
/// The platform record was truncated: some CPU or RAM may be missing (§3.2 needs every LP).
pub const PLATFORM_INCOMPLETE: TdxStatus = sw(1);
/// No enabled CPU in the platform view.
pub const NO_CPUS: TdxStatus = sw(2);
/// TDX_FEATURES0 lacks NO_RBP_MOD; Linux refuses such a module (§3.3 b).
pub const MISSING_NO_RBP_MOD: TdxStatus = sw(3);
/// A metadata value is unusable (zero limits, too many CMRs).
pub const BAD_METADATA: TdxStatus = sw(4);
/// The planner found no valid TDMR layout (the `PlanError` is in the state).
pub const PLAN_FAILED: TdxStatus = sw(5);
/// The TDMR_INFO buffer is unaligned or too small for the plan (§5.3).
pub const BUFFER_UNUSABLE: TdxStatus = sw(6);
/// The kernel refused to write the TDMR_INFO buffer.
pub const WRITE_FAILED: TdxStatus = sw(7);
/// The kernel refused a request (SEAMCALL or cache flush).
pub const KERNEL_REFUSED: TdxStatus = sw(8);
/// The kernel has no such CPU.
pub const NO_SUCH_CPU: TdxStatus = sw(9);
/// TDMR.INIT stopped advancing, or reported an address outside its TDMR.
pub const NO_PROGRESS: TdxStatus = sw(10);
/// The first TDX KeyID does not fit the 16-bit global-KeyID field (§2.3 SYS.CONFIG R8).
pub const KEYID_OUT_OF_RANGE: TdxStatus = sw(11);
/// A CPU did not answer the kernel's SEAMCALL request in time.
pub const CPU_TIMEOUT: TdxStatus = sw(13);
/// The bring-up record is unusable or contradicts the module (the reason is in the report).
pub const RECORD_REFUSED: TdxStatus = sw(14);
