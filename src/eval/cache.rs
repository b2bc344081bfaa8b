//! Backbone features of a dataset, computed once and cached on disk.
//!
//! Extracting features is the slow part of an evaluation (milliseconds an image on a CPU), and the heads
//! are compared on the very same features, so each feature set is stored under a key: the sha256 of
//! the model's sha256, the model card's input specification (size, resize rule, normalisation), this
//! crate's preprocessing revision, the dataset files' sha256 and the indices of the images taken. A
//! different model, preprocessing, dataset or subset is a different key, so an entry is never stale by
//! construction.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "EDGECLFT"
//!      8     2  format version, u16 LE (1)
//!     10     2  reserved, 0
//!     12    32  key (sha256)
//!     44     4  rows n, u32 LE
//!     48     4  feature width d, u32 LE
//!     52     4  CRC-32 of the payload, u32 LE
//!     56     .  payload: n labels (u16 LE), then n x d features (f32 LE, row-major)
//! ```
//!
//! A file whose length, magic, version, key or CRC is wrong is reported and rebuilt, never used.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"EDGECLFT";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 56;
/// Bumped whenever `crate::preprocess` changes what it feeds the model.
pub const PREPROCESS_REVISION: &str = "edgecl-preprocess/1";

/// Labelled features of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub labels: Vec<u16>,
    pub features: Array2<f32>,
}

/// Builds a cache key from its parts (module docs). Each part is length-prefixed so no two lists of
/// parts give the same bytes.
pub fn key(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"edgecl-features/1");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// sha256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<[u8; 32]> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(Sha256::digest(&bytes).into())
}

/// The default cache directory: `$EDGECL_CACHE/features`, else `~/.cache/edgecl/features`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EDGECL_CACHE") {
        return PathBuf::from(d).join("features");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/edgecl/features")
}

pub fn encode(key: &[u8; 32], set: &FeatureSet) -> Vec<u8> {
    let (n, d) = set.features.dim();
    let mut payload = Vec::with_capacity(2 * n + 4 * n * d);
    for l in &set.labels {
        payload.extend_from_slice(&l.to_le_bytes());
    }
    for v in set.features.iter() {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(key);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&(d as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a cache file, checking it belongs to `key`. Every problem is an `Err` saying what it is.
pub fn decode(bytes: &[u8], key: &[u8; 32]) -> std::result::Result<FeatureSet, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("truncated: {} bytes", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("not an edgecl feature cache (bad magic)".into());
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(format!("format version {version}, expected {VERSION}"));
    }
    if &bytes[12..44] != key {
        return Err("made for another model, preprocessing or dataset (key differs)".into());
    }
    let u32_at =
        |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes")) as usize;
    let (n, d) = (u32_at(44), u32_at(48));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != 2 * n as u64 + 4 * n as u64 * d as u64 {
        return Err(format!(
            "payload is {} bytes, {n} rows of {d} features need {}",
            payload.len(),
            2 * n + 4 * n * d
        ));
    }
    let crc = u32_at(52) as u32;
    if crc != crc32fast::hash(payload) {
        return Err("checksum mismatch: the file is corrupt".into());
    }
    let labels = payload[..2 * n]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let values: Vec<f32> = payload[2 * n..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err("features contain NaN or infinity".into());
    }
    Ok(FeatureSet {
        labels,
        features: Array2::from_shape_vec((n, d), values).expect("length checked"),
    })
}

/// What [`load_or_build`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheOutcome {
    Hit,
    /// No entry: built and stored.
    Built,
    /// An entry was there but unusable (the reason); rebuilt and replaced.
    Rebuilt(String),
}

/// The path of a key's entry in `dir`.
pub fn entry_path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.feat", crate::card::hex(key)))
}

/// Reads the entry for `key` from `dir`, or builds it with `build` and stores it (atomically: temp file
/// and rename). A corrupt or foreign entry is rebuilt.
pub fn load_or_build(
    dir: &Path,
    key: &[u8; 32],
    build: impl FnOnce() -> Result<FeatureSet>,
) -> Result<(FeatureSet, CacheOutcome)> {
    let path = entry_path(dir, key);
    let outcome = match std::fs::read(&path) {
        Ok(bytes) => match decode(&bytes, key) {
            Ok(set) => return Ok((set, CacheOutcome::Hit)),
            Err(why) => CacheOutcome::Rebuilt(why),
        },
        Err(_) => CacheOutcome::Built,
    };
    let set = build()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        crate::card::hex(key),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&encode(key, &set))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(&path, e)
    })?;
    Ok((set, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn set() -> FeatureSet {
        FeatureSet {
            labels: vec![3, 1],
            features: array![[1.0, -2.5, 0.0], [4.0, 5.0, 6.5]],
        }
    }

    #[test]
    fn the_layout_is_as_documented() {
        let k = key(&[b"m", b"d"]);
        let b = encode(&k, &set());
        assert_eq!(&b[..8], b"EDGECLFT");
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[12..44], &k);
        assert_eq!(&b[44..52], &[2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&b[56..60], &[3, 0, 1, 0]);
        assert_eq!(&b[60..64], &1.0f32.to_le_bytes());
        assert_eq!(b.len(), 56 + 4 + 24);
        assert_eq!(decode(&b, &k).unwrap(), set());
    }

    #[test]
    fn keys_differ_when_any_part_differs() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_ne!(key(&[b"a"]), key(&[b"a", b""]));
    }

    #[test]
    fn corrupt_truncated_and_foreign_entries_are_rebuilt_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(&[b"x"]);
        let built = || Ok(set());
        assert_eq!(
            load_or_build(dir.path(), &k, built).unwrap().1,
            CacheOutcome::Built
        );
        assert_eq!(
            load_or_build(dir.path(), &k, built).unwrap().1,
            CacheOutcome::Hit
        );
        let path = entry_path(dir.path(), &k);
        // A flipped feature byte: the CRC catches it.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[70] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (got, outcome) = load_or_build(dir.path(), &k, built).unwrap();
        assert!(
            matches!(outcome, CacheOutcome::Rebuilt(ref w) if w.contains("checksum")),
            "{outcome:?}"
        );
        assert_eq!(got, set());
        // Truncated.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            load_or_build(dir.path(), &k, built).unwrap().1,
            CacheOutcome::Rebuilt(_)
        ));
        // Another key's file under this key's name.
        let other = encode(&key(&[b"y"]), &set());
        std::fs::write(&path, other).unwrap();
        let (_, outcome) = load_or_build(dir.path(), &k, built).unwrap();
        assert!(
            matches!(outcome, CacheOutcome::Rebuilt(ref w) if w.contains("key")),
            "{outcome:?}"
        );
        assert_eq!(
            load_or_build(dir.path(), &k, built).unwrap().1,
            CacheOutcome::Hit
        );
    }
}
