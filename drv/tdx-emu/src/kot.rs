//! The KeyID ownership table (KOT) and the per-KeyID cache write-back debt (§9.2, §9.4).
//!
//! Pattern: one state per HKID (HKID_FREE, ASSIGNED, FLUSHED, RESERVED) plus, per HKID, a bitmap
//! of the packages that still owe a TDH.PHYMEM.CACHE.WB. The transitions are named methods so
//! the leaves cannot move an entry along an edge the module does not have.
//!
//! Invariants:
//! - FREE → ASSIGNED only through [`Kot::assign`] (TDH.MNG.CREATE); ASSIGNED → FLUSHED only
//!   through [`Kot::flush`] (TDH.MNG.VPFLUSHDONE), which sets the debt to every configured
//!   package; FLUSHED → FREE only through [`Kot::free`] (TDH.MNG.KEY.FREEID), which requires
//!   the debt to be empty. The global KeyID becomes RESERVED at SYS.CONFIG and stays so.
//! - A FREE or RESERVED entry owes nothing.
//! - Capacity: [`MAX_HKIDS`] entries, indexed by HKID; out-of-range HKIDs read as `None`.

use tdx_abi::{KotState, MAX_HKIDS};

/// Number of KOT entries.
const N: usize = MAX_HKIDS as usize;

/// The KOT.
#[derive(Clone, Debug)]
pub(crate) struct Kot {
    state: [KotState; N],
    needs_wb: [u8; N],
}

impl Kot {
    pub(crate) const fn new() -> Self {
        Kot {
            state: [KotState::HkidFree; N],
            needs_wb: [0; N],
        }
    }

    /// State of `hkid`.
    pub(crate) fn state(&self, hkid: u16) -> Option<KotState> {
        self.state.get(hkid as usize).copied()
    }

    /// Packages that still owe a CACHE.WB for `hkid`.
    pub(crate) fn needs_wb(&self, hkid: u16) -> u8 {
        self.needs_wb.get(hkid as usize).copied().unwrap_or(0)
    }

    /// Mark the global KeyID RESERVED (SYS.CONFIG).
    pub(crate) fn reserve(&mut self, hkid: u16) {
        if let Some(s) = self.state.get_mut(hkid as usize) {
            *s = KotState::Reserved;
            self.needs_wb[hkid as usize] = 0;
        }
    }

    /// FREE → ASSIGNED; `false` (nothing changed) if the entry is not FREE.
    pub(crate) fn assign(&mut self, hkid: u16) -> bool {
        match self.state.get_mut(hkid as usize) {
            Some(s) if *s == KotState::HkidFree => {
                *s = KotState::Assigned;
                true
            }
            _ => false,
        }
    }

    /// → FLUSHED, owing a write-back on every package in `packages`.
    pub(crate) fn flush(&mut self, hkid: u16, packages: u8) {
        if let Some(s) = self.state.get_mut(hkid as usize) {
            *s = KotState::Flushed;
            self.needs_wb[hkid as usize] = packages;
        }
    }

    /// FLUSHED → FREE; `false` (nothing changed) while a package still owes a write-back.
    pub(crate) fn free(&mut self, hkid: u16) -> bool {
        if self.needs_wb(hkid) != 0 {
            return false;
        }
        if let Some(s) = self.state.get_mut(hkid as usize) {
            *s = KotState::HkidFree;
        }
        true
    }

    /// Bitmap (one bit per HKID) of the FLUSHED entries: what one CACHE.WB pass covers.
    pub(crate) fn flushed_set(&self) -> [u64; N / 64] {
        let mut s = [0u64; N / 64];
        for (h, k) in self.state.iter().enumerate() {
            if *k == KotState::Flushed {
                s[h / 64] |= 1 << (h % 64);
            }
        }
        s
    }

    /// A completed CACHE.WB on `pkg` settles that package's debt for every HKID in `set`.
    pub(crate) fn written_back(&mut self, pkg: usize, set: &[u64; N / 64]) {
        for (h, debt) in self.needs_wb.iter_mut().enumerate() {
            if set[h / 64] & (1 << (h % 64)) != 0 {
                *debt &= !(1u8 << pkg);
            }
        }
    }

    /// Debug: force a state (FLUSHED owes `packages`, anything else owes nothing).
    pub(crate) fn force(&mut self, hkid: u16, state: KotState, packages: u8) -> bool {
        let Some(s) = self.state.get_mut(hkid as usize) else {
            return false;
        };
        *s = state;
        self.needs_wb[hkid as usize] = if state == KotState::Flushed {
            packages
        } else {
            0
        };
        true
    }
}
