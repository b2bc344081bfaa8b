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
//! payload. The header and the payload's field order are the no_std core's ([`crate::nostd::state`]), so
//! firmware reads and writes these files too. Loading checks, in order: length, magic, version, payload
//! length, CRC, a complete decode with no bytes left over, then the learner's own invariants. Any failure is an error and the file is not touched.
//! Saving writes a temporary file in the same directory, fsyncs it, renames it over the old file and
//! fsyncs the directory, so a crash leaves either the old state or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::head::{Head, Ncm};
use crate::memory::FeatureMemory;
use crate::nostd::state::{self as format, ModelRefOf, StateBodyOf};

pub use crate::nostd::state::{HEADER_LEN, MAGIC, VERSION};

/// The backbone a state was made with. Features from any other model are meaningless to it.
pub type ModelRef = ModelRefOf<String>;

/// The payload ([`StateBodyOf`] with the std build's containers and heads).
pub type StateBody = StateBodyOf<String, Vec<String>, Ncm, Head, FeatureMemory>;

/// Encodes a state into the file format.
pub fn encode(body: &StateBody) -> Vec<u8> {
    let payload = postcard::to_allocvec(body).expect("postcard encodes every StateBody");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&format::header(&payload));
    out.extend_from_slice(&payload);
    out
}

/// Decodes and validates a state file's bytes. Never panics; every failure says what is wrong.
pub fn decode(bytes: &[u8]) -> std::result::Result<StateBody, String> {
    let mut body: StateBody = format::decode(bytes).map_err(|e| e.to_string())?;
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

    /// An NCM state without stored features: what firmware reads and writes.
    fn ncm_only() -> StateBody {
        let mut body = sample();
        body.memory = FeatureMemory::new(0, Storage::F16, 6);
        for _ in 0..3 {
            body.memory.add_class();
        }
        body
    }

    /// Firmware's state type, small enough for a test.
    type Table = crate::nostd::table::TableState<6, 4, 32>;

    fn table_raw_mean(t: &crate::nostd::table::ClassTable<6, 4>, c: usize) -> Vec<f32> {
        let mut out = vec![0.0; 6];
        crate::nostd::ncm::raw_mean(t.sum(c), t.count(c), &mut out);
        out
    }

    #[test]
    fn firmware_tables_read_and_rewrite_std_states_byte_for_byte() {
        // Pins the mirrors in nostd (ClassTable for Ncm, NcmHead for Head::Ncm, NoMemory for an empty
        // FeatureMemory): a change to the std payload fails here.
        let body = ncm_only();
        let bytes = encode(&body);
        let mut t: Table = format::decode(&bytes).unwrap();
        t.means.refresh();
        t.means.check().unwrap();
        assert_eq!(
            t.class_names.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            body.class_names
        );
        for c in 0..3 {
            assert_eq!(t.means.count(c), body.means.count(c));
            assert_eq!(table_raw_mean(&t.means, c), body.means.raw_mean(c));
        }
        let mut buf = [0u8; 2048];
        let n = format::encode_into(&t, &mut buf).unwrap();
        assert_eq!(&buf[..n], &bytes[..]);
    }

    #[test]
    fn std_reads_what_firmware_tables_write_and_classifies_alike() {
        use crate::nostd::state::{NcmHead, NoMemory};
        let mut table = crate::nostd::table::ClassTable::<6, 4>::new(6);
        let mut names = heapless::Vec::<heapless::String<32>, 4>::new();
        let mut memory = NoMemory::<4>::new(6);
        for c in 0..3 {
            assert_eq!(table.add_class(), Ok(c));
            for i in 0..5 {
                let x: Vec<f32> = (0..6)
                    .map(|j| ((i * 7 + j * (c + 2)) % 9) as f32 + 0.5)
                    .collect();
                table.learn(c, &x);
            }
            let mut name = heapless::String::new();
            name.push_str(["a", "b", "c"][c]).unwrap();
            names.push(name).unwrap();
            memory.classes.push(heapless::Vec::new()).unwrap();
        }
        let mut model_name = heapless::String::new();
        model_name.push_str("m").unwrap();
        let mut path = heapless::String::new();
        path.push_str("m.onnx").unwrap();
        let t: Table = StateBodyOf {
            model: ModelRefOf {
                name: model_name,
                sha256: [7; 32],
                dim: 6,
                path,
            },
            class_names: names,
            means: table.clone(),
            head: NcmHead::Ncm,
            memory,
            unknown_factor: 1.5,
        };
        let mut buf = [0u8; 2048];
        let n = format::encode_into(&t, &mut buf).unwrap();
        let body = decode(&buf[..n]).unwrap();
        assert_eq!(body.class_names, ["a", "b", "c"]);
        assert!(matches!(body.head, Head::Ncm));
        for c in 0..3 {
            assert_eq!(body.means.count(c), 5);
            assert_eq!(body.means.raw_mean(c), table_raw_mean(&table, c));
        }
        assert_eq!(encode(&body), &buf[..n]);
        // Same nearest class and unknown answer from the heapless table and the ndarray head.
        let mut scores = [0.0; 4];
        for i in 0..20 {
            let q: Vec<f32> = (0..6)
                .map(|j| ((i * 5 + j * 3) % 11) as f32 - 2.0)
                .collect();
            let fw = table.classify(&q, &mut scores).unwrap();
            let mut qn = ndarray::Array2::from_shape_vec((1, 6), q).unwrap();
            crate::head::normalise_rows(&mut qn);
            let std = body.means.nearest(qn.row(0), 1)[0];
            assert_eq!(fw.class, std.class, "query {i}");
            assert!((fw.score - std.score).abs() < 1e-6);
            assert_eq!(
                table.is_unknown(&fw, 1.5),
                body.means.is_unknown(&std, 1.5),
                "query {i}"
            );
        }
    }

    #[test]
    fn firmware_tables_refuse_states_they_cannot_hold() {
        // Stored feature vectors (NoMemory holds none).
        assert!(format::decode::<Table>(&encode(&sample())).is_err());
        // More classes than the table's capacity.
        let mut body = ncm_only();
        for name in ["d", "e"] {
            let k = body.means.add_class();
            body.means
                .update(k, ndarray::Array2::from_elem((1, 6), 0.4).view());
            body.memory.add_class();
            body.class_names.push(name.into());
        }
        assert!(format::decode::<Table>(&encode(&body)).is_err());
        // Another head.
        let mut body = ncm_only();
        body.head = Head::new(6, &crate::head::HeadConfig::of(crate::head::HeadKind::Slda));
        for _ in 0..3 {
            body.head.add_class();
        }
        assert!(format::decode::<Table>(&encode(&body)).is_err());
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
            // Two flips of one bit cancel out: flip each (byte, bit) once.
            let mut flips: Vec<(usize, u8)> = flips.into_iter().map(|(at, bit)| (at % n, bit)).collect();
            flips.sort_unstable();
            flips.dedup();
            for (at, bit) in flips {
                bytes[at] ^= 1 << bit;
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
