//! The TD operations of the service: each runs its handler (`server::td`), counts a refusal
//! once in `ServerStats::refused` and commits the ledger with the counters before the answer.
//!
//! Pattern: the binary passes the kernel (as [`Seam`]); for the two operations that lend bytes
//! to the module (`td_init`'s TD_PARAMS, `page_add`'s source) the service copies the lease into
//! its [`TdStaging`] (tdx-host's own aligned buffer, named to the module by its address). The lease is copied into it whole and
//! of exactly the size the module reads (else `BadArgument`, before any SEAMCALL); the kernel's
//! SEAMCALL gate then stages its own copy of that buffer for the module.
//!
//! Invariant: no operation here reads a lease after its SEAMCALL, and the staging buffer is
//! written only by the copy of the current request.

use tdx_host_api::{TdCreateReply, TdTotals, TdxHostError, TeardownReply};

use super::{Answer, Service};
use crate::frames::Owner;
use crate::seam::Seam;
use crate::server::Server;

/// Bytes of TD_PARAMS (TDH.MNG.INIT reads them 1024-aligned).
pub const TD_PARAMS_BYTES: usize = 1024;
/// Bytes of a PAGE.ADD source (4 KiB-aligned).
pub const SOURCE_BYTES: usize = 4096;

/// tdx-host's copies of what a client lends the module: a PAGE.ADD source (4 KiB-aligned)
/// and TD_PARAMS (after it, so 4 KiB- and therefore 1024-aligned).
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct TdStaging {
    /// The PAGE.ADD source.
    pub source: [u8; SOURCE_BYTES],
    /// TD_PARAMS.
    pub params: [u8; TD_PARAMS_BYTES],
}

impl TdStaging {
    /// Zeroed.
    #[must_use]
    pub const fn new() -> Self {
        TdStaging {
            source: [0; SOURCE_BYTES],
            params: [0; TD_PARAMS_BYTES],
        }
    }
}

impl Default for TdStaging {
    fn default() -> Self {
        Self::new()
    }
}

/// One staging buffer and the address the module is told for it (in this task, where the
/// kernel's gate looks for the caller's bytes).
#[derive(Debug)]
struct Staging<'b> {
    /// The bytes.
    bytes: &'b mut [u8],
    /// Their address as the SEAMCALL operand.
    addr: u64,
}

impl<'b> Staging<'b> {
    /// A buffer of this task, named by its own address.
    fn own(bytes: &'b mut [u8]) -> Self {
        let addr = bytes.as_ptr() as u64;
        Staging { bytes, addr }
    }
}

/// Copies a lease of `len` bytes into `stage`, which must take exactly `want` of them.
fn copy_in<E>(
    (len, read): (usize, impl FnOnce(&mut [u8]) -> Result<(), E>),
    want: usize,
    stage: &mut Staging<'_>,
) -> Result<u64, Answer<E>> {
    let buf = match stage.bytes.get_mut(..want) {
        Some(b) if len == want => b,
        _ => return Err(Answer::Refused(TdxHostError::BadArgument)),
    };
    read(buf).map_err(Answer::Lease)?;
    // The kernel copies from memory: the bytes must be there before the SEAMCALL.
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    Ok(stage.addr)
}

impl<'a> Service<'_, 'a> {
    /// Runs one TD operation `op` on the server: a refusal counts once; the ledger is committed
    /// with the counters before the answer.
    ///
    /// # Errors
    /// The handler's.
    pub fn td<T>(
        &mut self,
        op: impl FnOnce(&mut Server<'a>) -> Result<T, TdxHostError>,
    ) -> Result<T, TdxHostError> {
        let r = op(self.server);
        let r = self.count(r);
        self.commit();
        r
    }

    /// A refusal before the handler: counted and committed like the handler's.
    fn refuse<E>(&mut self, e: TdxHostError) -> Answer<E> {
        let _ = self.td::<()>(|_| Err(e));
        Answer::Refused(e)
    }

    /// `td_create`.
    ///
    /// # Errors
    /// See [`Server::td_create`].
    pub fn td_create<S: Seam>(
        &mut self,
        seam: &mut S,
        who: Owner,
        tdr: u64,
    ) -> Result<TdCreateReply, TdxHostError> {
        self.td(|s| s.td_create(seam, who, tdr))
            .map(|c| TdCreateReply {
                td: c.td,
                hkid: c.hkid,
                _pad: 0,
            })
    }

    /// `td_init`: TD_PARAMS from the lease (`len` bytes, read by `read`) through the staging.
    ///
    /// # Errors
    /// BadArgument (not [`TD_PARAMS_BYTES`]), NotReady (no staging), the lease's failure,
    /// [`Server::td_init`]'s.
    pub fn td_init<S: Seam, E>(
        &mut self,
        (seam, who, td): (&mut S, Owner, u32),
        lease: (usize, impl FnOnce(&mut [u8]) -> Result<(), E>),
    ) -> Result<(), Answer<E>> {
        let params = match self.staging.as_deref_mut() {
            Some(st) => copy_in(lease, TD_PARAMS_BYTES, &mut Staging::own(&mut st.params)),
            None => Err(Answer::Refused(TdxHostError::NotReady)),
        };
        let params = match params {
            Err(Answer::Refused(e)) => return Err(self.refuse(e)),
            r => r?,
        };
        self.td(|s| s.td_init(seam, who, td, params))
            .map_err(Answer::Refused)
    }

    /// `page_add`: the source from the lease (`len` bytes, read by `read`) through the staging.
    ///
    /// # Errors
    /// BadArgument (not [`SOURCE_BYTES`]), NotReady (no staging), the lease's failure,
    /// [`Server::page_add`]'s.
    pub fn page_add<S: Seam, E>(
        &mut self,
        (seam, who): (&mut S, Owner),
        (td, gpa, page): (u32, u64, u64),
        lease: (usize, impl FnOnce(&mut [u8]) -> Result<(), E>),
    ) -> Result<(), Answer<E>> {
        let source = match self.staging.as_deref_mut() {
            Some(st) => copy_in(lease, SOURCE_BYTES, &mut Staging::own(&mut st.source)),
            None => Err(Answer::Refused(TdxHostError::NotReady)),
        };
        let source = match source {
            Err(Answer::Refused(e)) => return Err(self.refuse(e)),
            r => r?,
        };
        self.td(|s| s.page_add(seam, who, (td, gpa), page, source))
            .map_err(Answer::Refused)
    }

    /// `td_teardown`.
    ///
    /// # Errors
    /// See [`Server::td_teardown`].
    pub fn td_teardown<S: Seam>(
        &mut self,
        seam: &mut S,
        who: Owner,
        td: u32,
    ) -> Result<TeardownReply, TdxHostError> {
        self.td(|s| s.td_teardown(seam, who, td))
            .map(|r| TeardownReply {
                reclaimed: r.reclaimed,
                retries: r.retries,
                keyid_retired: u8::from(r.keyid_retired),
                _pad: [0; 7],
            })
    }

    /// `td_totals` for `who`.
    #[must_use]
    pub fn td_totals(&self, who: Owner) -> TdTotals {
        let tds = self.server.tds();
        let k = tds.keyid_counts();
        let mine = tds
            .slots()
            .filter(|&s| tds.td(s).is_some_and(|t| t.owner == who))
            .count();
        TdTotals {
            last_refusal: self.server.last_td_status().raw(),
            frames_in_tds: u32::try_from(tds.frames_in_tds()).unwrap_or(u32::MAX),
            keyids_free: k.free,
            keyids_in_use: k.in_use,
            keyids_retired: k.retired,
            mine: u16::try_from(mine).unwrap_or(u16::MAX),
            _pad: 0,
        }
    }
}
