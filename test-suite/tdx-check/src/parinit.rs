//! Parallel bring-up: TDMR.INIT really ran on several CPUs at once.
//!
//! Pattern: tdx-host's `status` reports, for its own bring-up, how many TDMR.INIT calls it
//! made, on how many CPUs, the most on one CPU and the most in flight at once; the image's
//! config says how many CPUs must have worked concurrently (`parallel-tdmr-init`). The bound
//! checked is the goal's: the most calls on one CPU at most total / CPUs + one TDMR's calls,
//! taking one TDMR's calls as total / TDMRs (the image's TDMRs are of equal size).

use tdx_host_api::TdxHost;
use test_api::check;
use test_api::score::Score;

use crate::expect;

/// The cases; needs tdx-host Ready after a first (not re-attached) bring-up.
pub fn parallel_tdmr_init_checks(s: &mut Score, t: &TdxHost) {
    let st = t.status();
    let want = u32::from(expect::PARALLEL_TDMR_INIT);
    check!(
        s,
        "tdmr_init_ran_on_several_cpus",
        u32::from(st.tdmr_init_cpus) >= want && u32::from(st.tdmr_init_peak_in_flight) >= want,
        "TDMR.INIT on {} CPUs, at most {} in flight, want {want}",
        st.tdmr_init_cpus,
        st.tdmr_init_peak_in_flight
    );
    let (total, most) = (st.tdmr_init_calls, st.tdmr_init_most_on_one_cpu);
    let cpus = u32::from(st.tdmr_init_cpus).max(1);
    let tdmrs = u32::from(st.num_tdmrs).max(1);
    // One TDMR's calls: its 4 MiB chunks plus the call that answers "already initialized";
    // with equal TDMRs that is the total's share per TDMR.
    let one_tdmr = total.div_ceil(tdmrs);
    check!(
        s,
        "tdmr_init_most_on_one_cpu_within_bound",
        total > 0 && most <= total / cpus + one_tdmr,
        "most {most} of {total} on one of {cpus} CPUs, bound {} + {one_tdmr}",
        total / cpus
    );
}
