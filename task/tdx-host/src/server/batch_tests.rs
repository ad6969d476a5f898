//! Batches through the service, as a lying client sends them: 512 frames allocated in one
//! request and freed in one, and every malformed batch refused whole — a repeated address, a
//! frame of another task in the middle, the wrong size, a lease that does not match the count
//! — with nothing allocated or freed by the refused request.

extern crate std;

use std::vec::Vec;

use tdx_host_api::{FrameSize, MemClass, TdxHostError, ANY_NODE, MAX_FRAMES_PER_CALL};

use super::pacing::Timer;
use super::service::{Answer, Service, LEASE_BYTES};
use super::tests::{ready_server, OTHER, VMM};
use crate::frames::Owner;
use crate::regions::HotplugPolicy;

const BATCH: usize = MAX_FRAMES_PER_CALL;

struct NoTimer;

impl Timer for NoTimer {
    fn now(&self) -> u64 {
        0
    }
    fn arm(&mut self, _: u64) {}
}

fn quiet(_: core::fmt::Arguments<'_>) {}

/// What a client lends for a free: `addrs` as little-endian words.
fn lease(addrs: &[u64]) -> Vec<u8> {
    addrs.iter().flat_map(|a| a.to_le_bytes()).collect()
}

/// `free_frames` of the lease `bytes` by `who`.
fn free(
    s: &mut Service<'_, '_>,
    who: Owner,
    size: FrameSize,
    bytes: &[u8],
) -> Result<u32, Answer<()>> {
    s.free_frames(&mut NoTimer, (who, size), bytes.len(), |b: &mut [u8]| {
        b.copy_from_slice(&bytes[..b.len()]);
        Ok(())
    })
}

/// Allocates `n` 4 KiB TDX frames for `who` into a lease of `room` bytes.
fn alloc(s: &mut Service<'_, '_>, who: Owner, n: u32, room: usize) -> Result<Vec<u64>, Answer<()>> {
    let mut got = Vec::new();
    let what = (who, ANY_NODE, FrameSize::K4, MemClass::Tdx);
    s.alloc_frames(&mut NoTimer, what, n, room, |b: &[u8]| {
        got = b
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(())
    })?;
    Ok(got)
}

fn usage(s: &Service<'_, '_>, index: u16) -> u64 {
    s.stats(index).caller_usage_bytes
}

#[test]
fn a_whole_lease_of_frames_in_one_request_and_bad_batches_refused_whole() {
    let (mut server, _) = ready_server(HotplugPolicy::Reject);
    let mut s = Service::new(&mut server, quiet);
    let vmm = VMM.index();
    // Allocation: a count the lease cannot hold, or more than a lease holds, gets nothing.
    let short = alloc(&mut s, VMM, BATCH as u32, LEASE_BYTES - 8);
    assert_eq!(short, Err(Answer::Refused(TdxHostError::BadArgument)));
    let over = alloc(&mut s, VMM, BATCH as u32 + 1, LEASE_BYTES);
    assert_eq!(over, Err(Answer::Refused(TdxHostError::BadArgument)));
    assert_eq!(usage(&s, vmm), 0);
    // A lease that fails while taking the addresses: the frames go straight back.
    let what = (VMM, ANY_NODE, FrameSize::K4, MemClass::Tdx);
    let lost = s.alloc_frames(&mut NoTimer, what, 4, LEASE_BYTES, |_: &[u8]| Err(()));
    assert_eq!(lost, Err(Answer::Lease(())));
    assert_eq!(usage(&s, vmm), 0);

    let mine = alloc(&mut s, VMM, BATCH as u32, LEASE_BYTES).expect("512 frames at once");
    assert_eq!(mine.len(), BATCH);
    let mut sorted = mine.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), BATCH, "distinct frames");
    assert!(mine.iter().all(|a| a % 4096 == 0 && *a != 0));
    assert_eq!(usage(&s, vmm), (BATCH * 4096) as u64);
    let theirs = alloc(&mut s, OTHER, 1, 8).expect("another task's frame")[0];

    let refused = |s: &mut Service<'_, '_>, bytes: &[u8], size, want| {
        assert_eq!(free(s, VMM, size, bytes), Err(Answer::Refused(want)));
        // Nothing of the batch was freed: every frame is still the caller's.
        assert_eq!(usage(s, vmm), (BATCH * 4096) as u64);
    };
    // The last address repeats the first: a double free inside one batch.
    let mut dup = mine.clone();
    dup[BATCH - 1] = dup[0];
    refused(
        &mut s,
        &lease(&dup),
        FrameSize::K4,
        TdxHostError::DoubleFree,
    );
    // Another task's frame in the middle.
    let mut stolen = mine.clone();
    stolen[BATCH / 2] = theirs;
    refused(
        &mut s,
        &lease(&stolen),
        FrameSize::K4,
        TdxHostError::NotOwner,
    );
    // The right frames named with the wrong size.
    let m2 = free(&mut s, VMM, FrameSize::M2, &lease(&mine));
    assert!(
        matches!(
            m2,
            Err(Answer::Refused(
                TdxHostError::WrongSize | TdxHostError::BadAlignment
            ))
        ),
        "{m2:?}"
    );
    assert_eq!(usage(&s, vmm), (BATCH * 4096) as u64);
    // A lease that is not whole addresses (the count does not match the bytes).
    let bytes = lease(&mine);
    refused(
        &mut s,
        &bytes[..bytes.len() - 1],
        FrameSize::K4,
        TdxHostError::BadArgument,
    );
    refused(&mut s, &[], FrameSize::K4, TdxHostError::BadArgument);
    // A misaligned address at the end.
    let mut crooked = mine.clone();
    crooked[BATCH - 1] += 8;
    refused(
        &mut s,
        &lease(&crooked),
        FrameSize::K4,
        TdxHostError::BadAlignment,
    );
    assert_eq!(usage(&s, OTHER.index()), 4096);

    // The honest batch: all 512 in one request, into quarantine at once.
    // (Quarantine holds the 4 frames of the failed delivery too.)
    let quarantined = ((BATCH + 4) * 4096) as u64;
    assert_eq!(free(&mut s, VMM, FrameSize::K4, &bytes), Ok(BATCH as u32));
    assert_eq!(usage(&s, vmm), 0);
    assert_eq!(s.stats(vmm).quarantined_bytes, quarantined);
    // And again: every one of them is a double free now, nothing changes.
    assert_eq!(
        free(&mut s, VMM, FrameSize::K4, &bytes),
        Err(Answer::Refused(TdxHostError::DoubleFree))
    );
    assert_eq!(s.stats(vmm).quarantined_bytes, quarantined);
}
