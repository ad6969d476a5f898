//! Global-metadata table served by TDH.SYS.RD / RDALL / INFO (§5.2, §5.4).
//!
//! Pattern: the field list is a pure function of the configuration, enumerated by index
//! (`field(i)`), so no table has to be stored. Iteration order — the order "next field ID"
//! follows — is: versions, build info, attributes, features, CMR count, CMR bases, CMR sizes,
//! TDMR/PAMT limits, TD control sizes, fixed bits, CPUID/vCPU info, handoff version.
//! Invariant: NUM_CMRS reports MAX_CMR (32) and all 32 CMR slots, nulls included (1.5.01, §5.4).

use crate::module::TdxModule;
use tdx_abi::metadata::{features0, field};
use tdx_abi::{FieldId, MAX_CMRS};

const FIXED_HEAD: usize = 9;

impl TdxModule {
    /// Number of readable fields.
    pub(crate) fn md_count(&self) -> usize {
        FIXED_HEAD + 2 * MAX_CMRS + self.md_tail_len()
    }

    fn md_tail_len(&self) -> usize {
        // The DPAMT bitmap field only exists on a DPAMT module (§10 item 25).
        if self.cfg.features0 & features0::DYNAMIC_PAMT != 0 {
            15
        } else {
            14
        }
    }

    /// Field `i` in iteration order and its value.
    pub(crate) fn md_field(&self, i: usize) -> Option<(FieldId, u64)> {
        let c = &self.cfg;
        let v = &c.version;
        let cmr = |k: usize| c.cmr_slice().get(k).copied().unwrap_or_default();
        let head: [(FieldId, u64); FIXED_HEAD] = [
            (field::MINOR_VERSION, u64::from(v.minor)),
            (field::MAJOR_VERSION, u64::from(v.major)),
            (field::UPDATE_VERSION, u64::from(v.update)),
            (field::BUILD_DATE, u64::from(v.build_date)),
            (field::BUILD_NUM, u64::from(v.build_num)),
            (field::SYS_ATTRIBUTES, u64::from(c.sys_attributes)),
            (field::TDX_FEATURES0, c.features0),
            (field::NUM_CMRS, MAX_CMRS as u64),
            (field::MODULE_HV, u64::from(v.module_hv)),
        ];
        if i < FIXED_HEAD {
            return Some(head[i]);
        }
        let i = i - FIXED_HEAD;
        if i < MAX_CMRS {
            return Some((field::cmr_base(i as u16), cmr(i).base));
        }
        let i = i - MAX_CMRS;
        if i < MAX_CMRS {
            return Some((field::cmr_size(i as u16), cmr(i).size));
        }
        let i = i - MAX_CMRS;
        let l = &c.limits;
        let tail: [(FieldId, u64); 15] = [
            (field::MAX_TDMRS, u64::from(l.max_tdmrs)),
            (
                field::MAX_RESERVED_PER_TDMR,
                u64::from(l.max_reserved_per_tdmr),
            ),
            (field::PAMT_4K_ENTRY_SIZE, u64::from(l.pamt_4k_entry_size)),
            (field::PAMT_2M_ENTRY_SIZE, u64::from(l.pamt_2m_entry_size)),
            (field::PAMT_1G_ENTRY_SIZE, u64::from(l.pamt_1g_entry_size)),
            // §5.4 1.5.01 values.
            (field::TDR_BASE_SIZE, 4096),
            (field::TDCS_BASE_SIZE, 6 * 4096),
            (field::TDVPS_BASE_SIZE, 6 * 4096),
            (field::ATTRIBUTES_FIXED0, c.td_fixed[0]),
            (field::ATTRIBUTES_FIXED1, c.td_fixed[1]),
            (field::XFAM_FIXED0, c.td_fixed[2]),
            (field::XFAM_FIXED1, c.td_fixed[3]),
            (field::NUM_CPUID_CONFIG, 0),
            (field::MAX_VCPUS_PER_TD, u64::from(c.max_vcpus_per_td)),
            // Value not given by the notes; 1 bit per 4K page is a placeholder.
            (field::PAMT_PAGE_BITMAP_ENTRY_BITS, 1),
        ];
        (i < self.md_tail_len()).then(|| {
            let (f, val) = tail[i];
            (f, val & f.value_mask())
        })
    }

    /// Index of `id`, if readable.
    pub(crate) fn md_find(&self, id: FieldId) -> Option<usize> {
        (0..self.md_count()).find(|&i| self.md_field(i).is_some_and(|(f, _)| f == id))
    }
}
