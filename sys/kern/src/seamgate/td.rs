//! The gate's rules for the TD life-cycle leaves (TDH.MNG.*, TDH.VP.*, TDH.MEM.*, TDH.MR.FINALIZE,
//! TDH.PHYMEM.CACHE.WB, PAGE.RECLAIM and PAGE.WBINVD).
//!
//! Pattern: each leaf names its physical-address operands and what each must be; GPA operands,
//! KeyIDs and flags are the module's to check and pass untouched. Three kinds of operand:
//! - **TD page** (TDR, TDCS/TDCX, TDVPR, S-EPT, private page, a page to reclaim): the whole page
//!   (2 MiB for TDH.MEM.PAGE.AUG at level 1) must be TD memory (`crate::tdmem`): never the first
//!   MiB, the kernel, any task's memory, MMIO, absent or not-onlined memory. An operand
//!   reaching the KeyID bits is refused (`BAD_KEYID`) even where memory is onlined there (an
//!   emulated machine can have more physical-address bits than KeyID-free ones), so the module
//!   only ever sees KeyID-free page addresses except where the leaf takes a KeyID;
//! - **KeyID-tagged page** (TDH.PHYMEM.PAGE.WBINVD's RCX): the KeyID bits must name a TDX
//!   private KeyID, nothing may be set above MAXPHYADDR, and the page under the KeyID must be TD
//!   memory;
//! - **source buffer** the module reads (TD_PARAMS of TDH.MNG.INIT, the 4 KiB source of
//!   TDH.MEM.PAGE.ADD): the caller's own readable memory, aligned as the module requires. It is
//!   copied into the gate's staging once, and the register is rewritten to the staging copy, so
//!   the module reads exactly the bytes the gate saw ("check once, read once").
//!
//! | leaf (version 0)                   | operands checked                                 |
//! |------------------------------------|--------------------------------------------------|
//! | MNG.CREATE                         | RCX TD page (RDX is the KeyID: the module's)     |
//! | MNG.KEY.CONFIG, MNG.VPFLUSHDONE,   | RCX TD page (the TDR)                            |
//! | MNG.KEY.FREEID, MEM.TRACK,         |                                                  |
//! | MR.FINALIZE                        |                                                  |
//! | MNG.ADDCX, VP.CREATE               | RCX TD page, RDX TD page (TDR)                   |
//! | VP.ADDCX                           | RCX TD page, RDX TD page (TDVPR)                 |
//! | VP.INIT, VP.FLUSH                  | RCX TD page (TDVPR); VP.INIT's RDX is a value    |
//! | MNG.INIT                           | RCX TD page; RDX 1024 bytes of the caller,       |
//! |                                    | 1024-aligned → staged                            |
//! | MEM.SEPT.ADD                       | RDX TD page (TDR), R8 TD page                    |
//! | MEM.PAGE.ADD                       | RDX TD page, R8 TD page, R9 4 KiB of the caller, |
//! |                                    | 4 KiB-aligned → staged                           |
//! | MEM.PAGE.AUG                       | RDX TD page; R8 TD memory of 4 KiB (RCX level 0) |
//! |                                    | or 2 MiB (level 1); any other level refused      |
//! | MEM.RANGE.BLOCK, MEM.PAGE.REMOVE   | RDX TD page (RCX is a GPA)                       |
//! | PHYMEM.CACHE.WB                    | none (RCX is start/resume)                       |
//! | PHYMEM.PAGE.RECLAIM                | RCX TD page                                      |
//! | PHYMEM.PAGE.WBINVD                 | RCX KeyID-tagged TD page                         |
//!
//! Invariant: a refusal happens before anything is staged for the module, and the staging the
//! module reads is the kernel's copy, never the caller's memory.

use kerncore::tdmem::PhysRange;
use tdx_abi::td::{TD_PARAMS_ALIGNMENT, TD_PARAMS_SIZE};
use tdx_abi::{Leaf, SeamcallArgs};

use super::{
    aligned, caller_buffer, operand, register, td_memory, why, KeyIdLayout, Refusal, Windows, PAGE,
};
use crate::arch::paging::kernel_static_phys;
use crate::task::Task;
use crate::umem;

/// 2 MiB, the size of a level-1 private page.
const PAGE_2M: u64 = 2 << 20;

/// Kernel copies of what the TD leaves read from the caller: TD_PARAMS and a PAGE.ADD source,
/// each in the module's alignment.
#[repr(C, align(4096))]
pub(super) struct TdStaging {
    source: [u8; PAGE as usize],
    params: [u8; TD_PARAMS_SIZE],
}

impl TdStaging {
    pub(super) const fn new() -> Self {
        TdStaging {
            source: [0; PAGE as usize],
            params: [0; TD_PARAMS_SIZE],
        }
    }
}

/// Whether the gate has rules for `leaf` here.
pub(super) fn is_td_leaf(leaf: Leaf) -> bool {
    matches!(
        leaf,
        Leaf::MngCreate
            | Leaf::MngKeyConfig
            | Leaf::MngAddcx
            | Leaf::MngInit
            | Leaf::MngVpflushdone
            | Leaf::MngKeyFreeid
            | Leaf::VpCreate
            | Leaf::VpAddcx
            | Leaf::VpInit
            | Leaf::VpFlush
            | Leaf::MemSeptAdd
            | Leaf::MemPageAdd
            | Leaf::MemPageAug
            | Leaf::MemRangeBlock
            | Leaf::MemTrack
            | Leaf::MemPageRemove
            | Leaf::MrFinalize
            | Leaf::PhymemCacheWb
            | Leaf::PhymemPageReclaim
            | Leaf::PhymemPageWbinvd
    )
}

fn td_page(pa: u64, register: u64) -> Result<(), Refusal> {
    td_memory(pa, PAGE, register)
}

/// Copies `dst.len()` bytes of the caller at `pa` (aligned to `alignment`) into `dst` after
/// checking them.
fn stage(
    task: &Task,
    pa: u64,
    alignment: u64,
    dst: &mut [u8],
    register: u64,
) -> Result<(), Refusal> {
    aligned(pa, alignment, register)?;
    let src = caller_buffer(task, pa, dst.len() as u64, false, register)?;
    // Safety: `src` was checked readable memory of the caller just above, and `dst` is the
    // gate's own staging (held under the gate's lock by the caller of `admit`).
    unsafe { umem::read_into(src.base().0, dst) };
    Ok(())
}

/// TDH.PHYMEM.PAGE.WBINVD's operand: a page address tagged with a private KeyID.
fn keyid_page(pa: u64, keyids: Option<KeyIdLayout>) -> Result<(), Refusal> {
    let Some(KeyIdLayout { shift, first, last }) = keyids else {
        return Err(operand(register::RCX, why::BAD_KEYID));
    };
    let keyid = pa >> shift;
    let Ok(keyid) = u32::try_from(keyid) else {
        return Err(operand(register::RCX, why::BAD_KEYID));
    };
    if !(first..=last).contains(&keyid) {
        return Err(operand(register::RCX, why::BAD_KEYID));
    }
    // `keyid` holds every bit from `shift` up, so nothing above MAXPHYADDR is set either.
    td_page(pa & ((1u64 << shift) - 1), register::RCX)
}

/// Checks a TD leaf's operands and stages what the module reads; `args` may be rewritten to
/// point at the staging. `w` receives the read window of the staged copy.
pub(super) fn admit(
    task: &Task,
    leaf: Leaf,
    args: &mut SeamcallArgs,
    staging: &mut TdStaging,
    w: &mut Windows,
    keyids: fn() -> Option<KeyIdLayout>,
) -> Result<(), Refusal> {
    use register::{R8, R9, RCX, RDX};
    match leaf {
        Leaf::MngCreate
        | Leaf::MngKeyConfig
        | Leaf::MngVpflushdone
        | Leaf::MngKeyFreeid
        | Leaf::MemTrack
        | Leaf::MrFinalize
        | Leaf::VpInit
        | Leaf::VpFlush
        | Leaf::PhymemPageReclaim => td_page(args.rcx, RCX)?,
        Leaf::MngAddcx | Leaf::VpCreate | Leaf::VpAddcx => {
            td_page(args.rcx, RCX)?;
            td_page(args.rdx, RDX)?;
        }
        Leaf::MngInit => {
            td_page(args.rcx, RCX)?;
            stage(
                task,
                args.rdx,
                TD_PARAMS_ALIGNMENT,
                &mut staging.params,
                RDX,
            )?;
            let at = kernel_static_phys(&raw const staging.params);
            w.read[0] = PhysRange::saturating(at, TD_PARAMS_SIZE as u64);
            w.nread = 1;
            args.rdx = at;
        }
        Leaf::MemSeptAdd => {
            td_page(args.rdx, RDX)?;
            td_page(args.r8, R8)?;
        }
        Leaf::MemPageAdd => {
            td_page(args.rdx, RDX)?;
            td_page(args.r8, R8)?;
            stage(task, args.r9, PAGE, &mut staging.source, R9)?;
            let at = kernel_static_phys(&raw const staging.source);
            w.read[0] = PhysRange::saturating(at, PAGE);
            w.nread = 1;
            args.r9 = at;
        }
        Leaf::MemPageAug => {
            td_page(args.rdx, RDX)?;
            let len = match args.rcx & 7 {
                0 => PAGE,
                1 => PAGE_2M,
                _ => return Err(operand(RCX, why::BAD_RANGE)),
            };
            td_memory(args.r8, len, R8)?;
        }
        Leaf::MemRangeBlock | Leaf::MemPageRemove => td_page(args.rdx, RDX)?,
        Leaf::PhymemCacheWb => {}
        Leaf::PhymemPageWbinvd => keyid_page(args.rcx, keyids())?,
        _ => return Err(Refusal::Leaf),
    }
    Ok(())
}
