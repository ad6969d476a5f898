//! The server's side of the ledger (`crate::ledger`): attaching it at start (fresh or
//! restored), committing after every operation, the hot-plug intent around the kernel's table,
//! and the operations that make a tdx-host restart a retry for clients: requests with an
//! identity (`alloc_request`, `free_request`: the same identity again returns the committed
//! answer instead of doing it twice) and `owned` (what the caller holds, to reconcile).
//!
//! Rules: the binary answers a request only after [`Server::commit`] returned, so an answer a
//! client saw is always in the ledger; a ledger that cannot commit (its journal too small for
//! one change) stops the server (`Failed`), since a later commit would skip the lost change.

use tdx_host_api::{FrameSize, MemClass, ServerStats, TdxHostError, ADDR_BYTES};
use tdx_host_api::{OwnedRecord, OwnedReply, MAX_FRAMES_PER_CALL};
use tdx_planner::addr::{PhysAddr, PhysRange};

use super::{batch_fits, Server};
use crate::frames::{FrameAllocator, Owner};
use crate::ledger::{self, kind, ClientSlot, Intent, Layout, Ledger, LedgerError, LedgerState};
use crate::ledger::{Opened, COUNTERS, DIGEST_BITS};
use crate::regions::{MemoryAuthority, Regions};
use crate::seam::KernelError;

/// Bytes of one `owned` entry.
pub const OWNED_RECORD_BYTES: usize = core::mem::size_of::<OwnedRecord>();

/// The counters the ledger keeps, from the server's statistics.
#[must_use]
pub fn counters_from(s: &ServerStats) -> [u64; COUNTERS] {
    [
        s.scrubbed_bytes,
        s.scrub_runs,
        s.rdmd_calls,
        s.reclaimed_bytes,
        s.retired_bytes,
        u64::from(s.restarts_seen),
        u64::from(s.refused),
        0,
    ]
}

fn counters_into(c: &[u64; COUNTERS], s: &mut ServerStats) {
    s.scrubbed_bytes = c[0];
    s.scrub_runs = c[1];
    s.rdmd_calls = c[2];
    s.reclaimed_bytes = c[3];
    s.retired_bytes = c[4];
    s.restarts_seen = c[5] as u32;
    s.refused = c[6] as u32;
}

/// The kernel's online-memory table, with the step recorded in the ledger before the kernel
/// is asked: a restart between the kernel's answer and the commit of the table change finds
/// the intent and undoes the kernel's half ([`Server::resolve_intent`]).
pub(super) struct Intending<'k, 'l, 'd, M> {
    kernel: &'k mut M,
    ledger: Option<&'l mut Ledger<'d>>,
    state: &'l mut LedgerState,
}

impl<'k, 'l, 'd, M: MemoryAuthority> Intending<'k, 'l, 'd, M> {
    pub(super) fn new(
        kernel: &'k mut M,
        ledger: Option<&'l mut Ledger<'d>>,
        state: &'l mut LedgerState,
    ) -> Self {
        Intending {
            kernel,
            ledger,
            state,
        }
    }

    fn intend(&mut self, intent: Intent) {
        self.state.intent = intent;
        if let Some(l) = self.ledger.as_deref_mut() {
            ledger::sync_intent(l, self.state);
        }
    }
}

impl<M: MemoryAuthority> MemoryAuthority for Intending<'_, '_, '_, M> {
    fn online_memory(&mut self, range: PhysRange) -> Result<(), KernelError> {
        self.intend(Intent::Online(range));
        let r = self.kernel.online_memory(range);
        // Cleared in memory; committed with the table change (or with nothing) by the
        // operation's own commit.
        self.state.intent = Intent::None;
        r
    }

    fn offline_memory(&mut self, range: PhysRange) -> Result<(), KernelError> {
        self.intend(Intent::Offline(range));
        let r = self.kernel.offline_memory(range);
        self.state.intent = Intent::None;
        r
    }
}

/// What [`Server::attach_ledger`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A first start: regions built from the plan, the ledger's first image written.
    Fresh,
    /// A restart: regions restored from the ledger at commit `seq`.
    Restored {
        /// The ledger's commit sequence number.
        seq: u64,
        /// A committed journal was re-applied first.
        replayed: bool,
        /// The hot-plug step that was undone at the kernel.
        undone: Intent,
    },
    /// A first start whose region map could not be built: no memory is served.
    NoRegions(TdxHostError),
    /// The ledger was refused: `Failed` with the reason.
    Refused(LedgerError),
}

impl<'a> Server<'a> {
    /// After `Ready`: opens the ledger in `words` and serves regions, built by `build` from an
    /// empty allocator over `bits` at a first start, or from the allocator the ledger restores
    /// (checked against the plan by `build`) after a restart, whose unfinished hot-plug step
    /// is then undone at `kernel`. A refused ledger leaves the server `Failed`.
    pub fn attach_ledger<M: MemoryAuthority>(
        &mut self,
        (words, bits): (&'a mut [u64], &'a mut [u64]),
        build: impl FnOnce(FrameAllocator<'a>) -> Result<Regions<'a>, TdxHostError>,
        kernel: &mut M,
    ) -> Attached {
        let layout = Layout::new(bits.len());
        let attached = match Ledger::open(words, layout) {
            Err(e) => Attached::Refused(e),
            Ok((l, Opened::Fresh)) => match build(FrameAllocator::new(bits)) {
                Ok(r) => {
                    self.serve_fresh(r, l);
                    Attached::Fresh
                }
                Err(e) => Attached::NoRegions(e),
            },
            Ok((l, Opened::Existing { replayed })) => match ledger::load(&l, bits) {
                Err(e) => Attached::Refused(e),
                Ok((frames, st)) => match build(frames) {
                    Err(_) => Attached::Refused(LedgerError::PlanMismatch),
                    Ok(r) => {
                        let seq = l.seq();
                        self.serve_restored(r, l, st);
                        let undone = self.resolve_intent(kernel);
                        Attached::Restored {
                            seq,
                            replayed,
                            undone,
                        }
                    }
                },
            },
        };
        if let Attached::Refused(e) = attached {
            self.fail_ledger(e);
        }
        attached
    }

    /// Serves `regions` built at a first start, and writes the ledger's first image into
    /// `ledger` (opened `Fresh`).
    pub fn serve_fresh(&mut self, mut regions: Regions<'a>, mut ledger: Ledger<'a>) {
        ledger::format(&mut ledger, &mut regions.frames, &mut self.lstate);
        self.ledger = Some(ledger);
        self.regions = Some(regions);
    }

    /// Serves `regions` rebuilt from `ledger` after a restart, with the rest of its state.
    pub fn serve_restored(&mut self, regions: Regions<'a>, ledger: Ledger<'a>, s: LedgerState) {
        self.lstate = s;
        self.ledger = Some(ledger);
        self.regions = Some(regions);
    }

    /// The ledger was refused: nothing is served, `status` reports Failed with the reason.
    pub fn fail_ledger(&mut self, e: LedgerError) {
        self.ledger_error = Some(e);
    }

    /// Why the ledger was refused, if it was.
    #[must_use]
    pub fn ledger_error(&self) -> Option<LedgerError> {
        self.ledger_error
    }

    /// The attached ledger.
    #[must_use]
    pub fn ledger(&self) -> Option<&Ledger<'a>> {
        self.ledger.as_ref()
    }

    /// After a restart: a hot-plug step the last instance started with the kernel but did not
    /// commit is undone at the kernel (an online is offlined, an offline onlined again; the
    /// kernel's refusal means it never happened), so the kernel's table matches the ledger.
    /// Returns the intent that was resolved.
    pub fn resolve_intent<M: MemoryAuthority>(&mut self, kernel: &mut M) -> Intent {
        let intent = self.lstate.intent;
        match intent {
            Intent::None => return intent,
            Intent::Online(r) => {
                let _ = kernel.offline_memory(r);
            }
            Intent::Offline(r) => {
                let _ = kernel.online_memory(r);
            }
        }
        self.lstate.intent = Intent::None;
        self.commit(None);
        intent
    }

    /// Commits everything the last operation changed, with the server's counters `stats`
    /// when they changed since the last commit (`None`: kept as committed, not compared).
    /// Without a ledger it only forgets what was dirty.
    pub fn commit(&mut self, stats: Option<&ServerStats>) {
        if let Some(s) = stats {
            self.lstate.set_counters(counters_from(s));
        }
        let Some(r) = self.regions.as_mut() else {
            return;
        };
        if let Some(l) = self.ledger.as_mut() {
            if !ledger::sync(l, &r.frames, &self.lstate) {
                self.ledger_error = Some(LedgerError::JournalFull);
            }
        }
        r.frames.clean();
        self.lstate.clean();
    }

    /// Between requests: folds the ledger's change log into its checksum table (one journal
    /// commit; see `crate::ledger`), so the next one-frame operations find the log empty.
    pub fn settle(&mut self) {
        if let Some(l) = self.ledger.as_mut() {
            if !l.settle() {
                self.ledger_error = Some(LedgerError::JournalFull);
            }
        }
    }

    /// The counters the ledger restored (zero at a first start), into `s`.
    pub fn restore_counters(&self, s: &mut ServerStats) {
        counters_into(&self.lstate.counters(), s);
    }

    /// The counters as last given to [`Self::commit`] (committed, unless the ledger failed).
    #[must_use]
    pub fn committed_counters(&self) -> [u64; COUNTERS] {
        self.lstate.counters()
    }

    /// `alloc_request`: `alloc_frames` with the caller's request identity `request` (not 0).
    /// The same identity and arguments as the caller's last committed allocation answer with
    /// the frames it got that the caller still holds (ascending) without allocating again.
    ///
    /// # Errors
    /// BadArgument for request 0, for the last allocation's identity with other arguments (a
    /// digest of node, size, class and count is kept with it), and for a new request whose
    /// identity still tags frames the caller holds (a retry of it would answer those too);
    /// otherwise as [`Server::alloc_frames`].
    pub fn alloc_request(
        &mut self,
        (caller, request): (Owner, u32),
        what: (u16, FrameSize, MemClass),
        count: u32,
        out: &mut [u8],
    ) -> Result<u32, TdxHostError> {
        let regions = self.ready()?;
        if request == 0 || !batch_fits(count, out.len()) {
            return Err(TdxHostError::BadArgument);
        }
        let (node, size, class) = what;
        let digest = request_digest([u64::from(node), size as u64, class as u64, u64::from(count)]);
        let last = self.lstate.client(caller.index());
        if let Some(c) =
            last.filter(|c| c.owner == caller.0 && c.request == request && c.kind == kind::ALLOC)
        {
            if c.digest != digest {
                return Err(TdxHostError::BadArgument);
            }
            let mut addrs = [PhysAddr(0); MAX_FRAMES_PER_CALL];
            let room = (out.len() / ADDR_BYTES).min(MAX_FRAMES_PER_CALL);
            let n = regions.frames.tagged(caller, request, &mut addrs[..room]);
            for (chunk, a) in out.chunks_exact_mut(ADDR_BYTES).zip(&addrs[..n]) {
                chunk.copy_from_slice(&a.0.to_le_bytes());
            }
            return Ok(n as u32);
        }
        if regions.frames.owned(caller).any(|r| r.tag == request) {
            return Err(TdxHostError::BadArgument);
        }
        let n = self.alloc_tagged(caller, what, count, request, out)?;
        let slot = ClientSlot {
            owner: caller.0,
            request,
            kind: kind::ALLOC,
            count: n,
            digest,
        };
        self.lstate.set_client(caller.index(), slot);
        Ok(n)
    }

    /// `free_request`: `free_frames` with the caller's request identity `request` (not 0).
    /// The same identity and arguments as the caller's last committed free answer its count
    /// again without freeing anything.
    ///
    /// # Errors
    /// BadArgument for request 0, and for the last free's identity with another size or
    /// address list (a digest of them is kept with it); otherwise as [`Server::free_frames`].
    pub fn free_request(
        &mut self,
        (caller, request): (Owner, u32),
        size: FrameSize,
        addrs: &[u8],
    ) -> Result<u32, TdxHostError> {
        self.ready()?;
        if request == 0 {
            return Err(TdxHostError::BadArgument);
        }
        // The list as the free reads it: whole addresses (a partial tail is refused there).
        let listed = addrs
            .chunks_exact(ADDR_BYTES)
            .map(|c| c.try_into().map_or(0, u64::from_le_bytes));
        let digest = request_digest([size as u64, addrs.len() as u64].into_iter().chain(listed));
        let last = self.lstate.client(caller.index());
        if let Some(c) =
            last.filter(|c| c.owner == caller.0 && c.request == request && c.kind == kind::FREE)
        {
            return if c.digest == digest {
                Ok(c.count)
            } else {
                Err(TdxHostError::BadArgument)
            };
        }
        let n = self.free_frames(caller, size, addrs)?;
        let slot = ClientSlot {
            owner: caller.0,
            request,
            kind: kind::FREE,
            count: n,
            digest,
        };
        self.lstate.set_client(caller.index(), slot);
        Ok(n)
    }

    /// `owned`: the caller's runs of frames (exactly its generation) from run `first` on, as
    /// whole [`OwnedRecord`]s into `out`.
    ///
    /// # Errors
    /// NotReady/Failed/Unavailable, BadArgument (`first` past the end).
    pub fn owned(
        &self,
        caller: Owner,
        first: u32,
        out: &mut [u8],
    ) -> Result<OwnedReply, TdxHostError> {
        let r = self.ready()?;
        let total = r.frames.owned(caller).count();
        let first = first as usize;
        if first > total {
            return Err(TdxHostError::BadArgument);
        }
        let mut written = 0;
        let runs = r.frames.owned(caller).skip(first);
        for (chunk, rec) in out.chunks_exact_mut(OWNED_RECORD_BYTES).zip(runs) {
            let o = OwnedRecord {
                base: rec.base,
                count: rec.count,
                request: rec.tag,
                size: rec.size as u8,
                _pad: [0; 7],
            };
            chunk.copy_from_slice(tdx_host_api::owned_bytes(&o));
            written += 1;
        }
        Ok(OwnedReply {
            written,
            total: total as u32,
        })
    }
}

/// A [`DIGEST_BITS`]-bit digest of a request's argument words, kept in the client's slot so
/// that a retry is told from another request under the same identity: the ledger's record
/// checksum chain (each step a bijection of the word), so arguments that differ in one word
/// always differ before the truncation; two requests that differ still share a digest once in
/// 2^24, which only makes a client that reused an identity get its own earlier answer.
fn request_digest(words: impl IntoIterator<Item = u64>) -> u32 {
    let h = words.into_iter().fold(0x9E37_79B9_7F4A_7C15, ledger::chain);
    (h >> (64 - DIGEST_BITS)) as u32
}
