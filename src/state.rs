//! The state file: everything a device has learnt, in one postcard-encoded file.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "EDGECLST"
//!      8     2  format version, u16 little-endian (this build writes and reads 2)
//!     10     2  reserved, 0
//!     12     4  payload length in bytes, u32 little-endian
//!     16     4  CRC-32 (IEEE) of the payload, u32 little-endian
//!     20     n  payload: postcard encoding of `StateBody`
//! ```
//!
//! postcard is not self-describing, so the header carries what a reader must check before it trusts the
//! payload. Loading checks, in order: length, magic, version, payload length, CRC, a complete decode with no
//! bytes left over, then the learner's own invariants. Any failure is an error and the file is not touched.
//! Saving writes a temporary file in the same directory, fsyncs it, renames it over the old file and
//! fsyncs the directory, so a crash leaves either the old state or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::head::{Head, Ncm};
use crate::memory::FeatureMemory;

pub const MAGIC: &[u8; 8] = b"EDGECLST";
/// 2: the payload names its head (`StateBody::head`) beside the NCM class statistics.
pub const VERSION: u16 = 2;
pub const HEADER_LEN: usize = 20;

/// The backbone a state was made with. Features from any other model are meaningless to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub sha256: [u8; 32],
    pub dim: u32,
    /// Where the model was when the state was made (a later `--model` may point elsewhere).
    pub path: String,
}

/// The payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateBody {
    pub model: ModelRef,
    pub class_names: Vec<String>,
    /// Class statistics every head keeps: NCM sums (NCM's scores, the memory's herding target, the
    /// unknown rule's spread).
    pub means: Ncm,
    /// The classifier head.
    pub head: Head,
    pub memory: FeatureMemory,
    pub unknown_factor: f32,
}

/// Encodes a state into the file format.
pub fn encode(body: &StateBody) -> Vec<u8> {
    let payload = postcard::to_allocvec(body).expect("postcard encodes every StateBody");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes and validates a state file's bytes. Never panics; every failure says what is wrong.
pub fn decode(bytes: &[u8]) -> std::result::Result<StateBody, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, the header alone is {HEADER_LEN}",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("not an edgecl state file (bad magic)".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let version = u16_at(8);
    if version != VERSION {
        return Err(format!(
            "format version {version}; this edgecl reads version {VERSION}"
        ));
    }
    if u16_at(10) != 0 {
        return Err("reserved header bytes are not zero: the file is corrupt".into());
    }
    let len = u32_at(12) as usize;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(format!(
            "truncated or padded: the header says {len} payload bytes, the file has {}",
            payload.len()
        ));
    }
    let (want, got) = (u32_at(16), crc32fast::hash(payload));
    if want != got {
        return Err(format!(
            "checksum mismatch (stored {want:08x}, computed {got:08x}): the file is corrupt"
        ));
    }
    let (mut body, rest): (StateBody, _) =
        postcard::take_from_bytes(payload).map_err(|e| format!("payload does not decode: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left over after the payload", rest.len()));
    }
    body.check()?;
    body.means.refresh();
    body.head.refresh();
    Ok(body)
}

impl StateBody {
    /// The invariants a loaded state must satisfy.
    fn check(&self) -> std::result::Result<(), String> {
        let dim = self.model.dim as usize;
        if self.means.dim() != dim {
            return Err(format!("head is {}-d, model {dim}-d", self.means.dim()));
        }
        self.means.check()?;
        if self.class_names.len() != self.means.classes() {
            return Err(format!(
                "{} class names for {} classes",
                self.class_names.len(),
                self.means.classes()
            ));
        }
        self.head.check(dim, self.means.classes())?;
        let mut names: Vec<&String> = self.class_names.iter().collect();
        names.sort();
        names.dedup();
        if names.len() != self.class_names.len() || self.class_names.iter().any(|n| n.is_empty()) {
            return Err("class names must be unique and non-empty".into());
        }
        self.memory.check(self.means.classes())?;
        if !self.unknown_factor.is_finite() || self.unknown_factor < 0.0 {
            return Err(format!(
                "unknown factor {} is not a non-negative number",
                self.unknown_factor
            ));
        }
        Ok(())
    }
}

/// Reads a state file.
pub fn load(path: &Path) -> Result<StateBody> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes).map_err(|message| Error::State {
        path: path.to_path_buf(),
        message,
    })
}

/// Writes a state file atomically: temp file in the same directory, fsync, rename, fsync the directory.
pub fn save(path: &Path, body: &StateBody) -> Result<()> {
    let bytes = encode(body);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::State {
        path: path.to_path_buf(),
        message: "not a file path".into(),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is on disk.
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::normalise_rows;
    use crate::memory::Storage;
    use ndarray::Array2;
    use proptest::prelude::*;

    pub(crate) fn sample() -> StateBody {
        let d = 6;
        let mut head = Ncm::new(d);
        let mut memory = FeatureMemory::new(200, Storage::Int8, d);
        for c in 0..3 {
            let k = head.add_class();
            memory.add_class();
            let mut f = Array2::from_shape_fn((4, d), |(i, j)| (i + j * c + 1) as f32);
            normalise_rows(&mut f);
            head.update(k, f.view());
            memory.offer(k, f.view(), &head.raw_mean(k));
        }
        StateBody {
            model: ModelRef {
                name: "m".into(),
                sha256: [7; 32],
                dim: d as u32,
                path: "m.onnx".into(),
            },
            class_names: vec!["a".into(), "b".into(), "c".into()],
            means: head,
            head: Head::Ncm,
            memory,
            unknown_factor: 2.0,
        }
    }

    #[test]
    fn round_trip_is_identical() {
        let bytes = encode(&sample());
        let back = decode(&bytes).unwrap();
        assert_eq!(encode(&back), bytes);
        assert_eq!(back.means.raw_mean(2), sample().means.raw_mean(2));
    }

    #[test]
    fn the_header_layout_is_as_documented() {
        let bytes = encode(&sample());
        assert_eq!(&bytes[..8], b"EDGECLST");
        assert_eq!(&bytes[8..12], &[2, 0, 0, 0]);
        let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 20);
        let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&bytes[20..]));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(
                decode(&bytes[..n]).is_err(),
                "truncated to {n} bytes decoded"
            );
        }
    }

    #[test]
    fn a_newer_version_is_refused_by_name() {
        let mut bytes = encode(&sample());
        bytes[8] = 3;
        assert!(decode(&bytes).unwrap_err().contains("version 3"));
    }

    #[test]
    fn a_valid_crc_over_inconsistent_content_is_still_refused() {
        // Forge a payload whose class count disagrees with the names, with a correct checksum.
        let mut body = sample();
        body.class_names.pop();
        let bytes = encode(&body);
        assert!(decode(&bytes).unwrap_err().contains("class names"));
    }

    proptest! {
        #[test]
        fn random_bit_flips_are_errors_not_panics(flips in prop::collection::vec((any::<usize>(), 0u8..8), 1..4)) {
            let mut bytes = encode(&sample());
            let n = bytes.len();
            for (at, bit) in flips {
                bytes[at % n] ^= 1 << bit;
            }
            prop_assert!(decode(&bytes).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
            // Also with a valid header around random payload bytes: CRC passes, postcard must cope.
            let payload = bytes.split_off(bytes.len().min(20));
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&VERSION.to_le_bytes());
            framed.extend_from_slice(&[0, 0]);
            framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            framed.extend_from_slice(&payload);
            let _ = decode(&framed);
        }
    }

    #[test]
    fn save_replaces_atomically_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.edgecl");
        save(&path, &sample()).unwrap();
        save(&path, &sample()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("s.edgecl")]);
        assert!(load(&path).is_ok());
    }
}
