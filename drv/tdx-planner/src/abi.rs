//! Conversion of a [`Plan`] into the module's TDMR_INFO layout (§5.3).
//!
//! Invariant: reserved slots past the plan's areas are null (size 0), which the module reads as the
//! end of the list (§6: a null slot may only be followed by null slots).

use heapless::Vec;
use tdx_abi::{ReservedArea as AbiReserved, TdmrInfo};

use crate::types::{PamtLevel, Plan, Tdmr, MAX_TDMRS};

/// One TDMR as the module's `TDMR_INFO`.
#[must_use]
pub fn to_tdmr_info(t: &Tdmr) -> TdmrInfo {
    let mut info = TdmrInfo::new(t.base.0, t.size.0);
    for level in PamtLevel::ALL {
        let p = t.pamt[level as usize];
        info.set_pamt(level.abi(), p.base().0, p.size().0);
    }
    for (slot, a) in info.reserved.iter_mut().zip(t.reserved.iter()) {
        *slot = AbiReserved {
            offset: a.offset.0,
            size: a.size.0,
        };
    }
    info
}

/// All TDMRs of `plan`, in order.
#[must_use]
pub fn to_tdmr_infos(plan: &Plan) -> Vec<TdmrInfo, MAX_TDMRS> {
    plan.tdmrs.iter().map(to_tdmr_info).collect()
}
