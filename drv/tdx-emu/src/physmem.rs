//! The emulated module's view of physical memory.
//!
//! Pattern: the real module reads TDMR_INFO structures and the PA array from host physical memory
//! (§5.3) and writes TDH.SYS.INFO/RDALL output buffers. The emulator does the same through
//! [`PhysMem`], so the host code under test lays out memory exactly as it would on hardware.
//! Invariant: addresses passed to `PhysMem` have their HKID bits already stripped (the module
//! accesses shared memory; KeyID selection is a cache/encryption property the emulator does not
//! model). An access that fails is a host bug (unbacked memory), reported as an error status and
//! logged in the module's host-bug log.

/// A physical access hit memory the backing store does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysMemError {
    /// First address of the failed access.
    pub pa: u64,
}

/// Physical memory as seen by the emulated module.
pub trait PhysMem {
    /// Read `buf.len()` bytes at `pa`.
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysMemError>;
    /// Write `buf` at `pa`.
    fn write(&mut self, pa: u64, buf: &[u8]) -> Result<(), PhysMemError>;
}

/// One contiguous byte slice mapped at `base`.
#[derive(Debug)]
pub struct SliceMem<'a> {
    /// PA of `bytes[0]`.
    pub base: u64,
    /// Backing bytes.
    pub bytes: &'a mut [u8],
}

impl SliceMem<'_> {
    fn range(&self, pa: u64, len: usize) -> Result<core::ops::Range<usize>, PhysMemError> {
        let off = pa.checked_sub(self.base).ok_or(PhysMemError { pa })?;
        let off = usize::try_from(off).map_err(|_| PhysMemError { pa })?;
        let end = off.checked_add(len).ok_or(PhysMemError { pa })?;
        if end > self.bytes.len() {
            return Err(PhysMemError { pa });
        }
        Ok(off..end)
    }
}

impl PhysMem for SliceMem<'_> {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysMemError> {
        let r = self.range(pa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, pa: u64, buf: &[u8]) -> Result<(), PhysMemError> {
        let r = self.range(pa, buf.len())?;
        self.bytes[r].copy_from_slice(buf);
        Ok(())
    }
}

/// No memory at all: every access fails. Useful for leaves that never touch memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMem;

impl PhysMem for NoMem {
    fn read(&self, pa: u64, _buf: &mut [u8]) -> Result<(), PhysMemError> {
        Err(PhysMemError { pa })
    }

    fn write(&mut self, pa: u64, _buf: &[u8]) -> Result<(), PhysMemError> {
        Err(PhysMemError { pa })
    }
}

/// Read a little-endian u64.
pub(crate) fn read_u64(mem: &dyn PhysMem, pa: u64) -> Result<u64, PhysMemError> {
    let mut b = [0u8; 8];
    mem.read(pa, &mut b)?;
    Ok(u64::from_le_bytes(b))
}
