//! Stamping a built image with its build id (console protocol v1).
//!
//! Every task or kernel that links the `verdict` crate carries one slot:
//! `verdict::BUILD_ID_MAGIC` followed by 8 zero bytes. After the image is
//! written, the id is derived from the image bytes (slots still zero) and
//! the manifest text, so two images differ in id whenever any ELF or the
//! manifest differs, and the same inputs give the same id. It is written
//! into every slot and into `build-id` beside the image, where a harness
//! reads what it deployed (`verdict::build_id_of`).

use std::path::Path;

use anyhow::{Context, Result};
use verdict::{BuildId, BUILD_ID_MAGIC};

use crate::verdict::BUILD_ID_FILE;

/// FNV-1a, 64 bits: no cryptographic claim, only "different inputs, different id".
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Offsets of the 8 id bytes of every slot in `image`.
fn slots(image: &[u8]) -> Vec<usize> {
    image
        .windows(BUILD_ID_MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == BUILD_ID_MAGIC)
        .map(|(at, _)| at + BUILD_ID_MAGIC.len())
        .filter(|&at| at + 8 <= image.len())
        .collect()
}

/// Derives the id of `image` and writes it into every slot; returns the
/// id and how many slots there were.
pub fn stamp(image: &mut [u8], manifest: &[u8]) -> (BuildId, usize) {
    let at = slots(image);
    for &a in &at {
        image[a..a + 8].fill(0);
    }
    let h = fnv1a(0xcbf2_9ce4_8422_2325, image);
    let id = BuildId(fnv1a(h, manifest));
    for &a in &at {
        image[a..a + 8].copy_from_slice(&id.0.to_le_bytes());
    }
    (id, at.len())
}

/// Stamps the image file at `elf` and writes `build-id` beside it.
pub fn stamp_file(elf: &Path, manifest: &Path) -> Result<BuildId> {
    let mut image = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let text =
        std::fs::read(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let (id, _) = stamp(&mut image, &text);
    std::fs::write(elf, &image).with_context(|| format!("writing {}", elf.display()))?;
    let dir = elf.parent().unwrap_or(Path::new("."));
    std::fs::write(dir.join(BUILD_ID_FILE), format!("{id}\n"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::{stamp, BUILD_ID_MAGIC};

    fn image(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn every_slot_gets_the_id_and_inputs_change_it() {
        let slot = image(&[&BUILD_ID_MAGIC, &[0; 8]]);
        let mut a = image(&[b"kernel", &slot, b"task", &slot, b"end"]);
        let (id, n) = stamp(&mut a, b"name = \"x\"");
        assert_eq!(n, 2);
        let at = 6 + 16;
        assert_eq!(a[at..at + 8], id.0.to_le_bytes());
        let at2 = at + 8 + 4 + 16;
        assert_eq!(a[at2..at2 + 8], id.0.to_le_bytes());
        // Stamping again (slots already filled) gives the same id.
        let mut again = a.clone();
        assert_eq!(stamp(&mut again, b"name = \"x\"").0, id);
        // Another manifest or another byte of the image: another id.
        let mut b = a.clone();
        assert_ne!(stamp(&mut b, b"name = \"y\"").0, id);
        let mut c = a.clone();
        c[0] = b'K';
        assert_ne!(stamp(&mut c, b"name = \"x\"").0, id);
    }
}
