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
//! length, CRC, a complete decode with no bytes left over, then the learner's own invariants: every
//! dimension and count within bounds and consistent with the others before anything proportional to it
//! is allocated, every statistic finite, every class name as [`crate::class_name`] requires. Any failure
//! is an error and the file is not touched.
//!
//! Saving ([`save`]) needs the state's [`StateLock`] (one writer at a time), writes a temporary file in
//! the same directory, fsyncs it, renames it over the old file and fsyncs the directory, so a crash
//! leaves either the old state or the new one, never a mix.

mod lock;

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::head::{Head, Ncm};
use crate::memory::FeatureMemory;
use crate::nostd::state::{self as format, ModelRefOf, StateBodyOf};

pub use crate::nostd::state::{HEADER_LEN, MAGIC, VERSION};
pub use lock::{resolve, StateLock, DEFAULT_TIMEOUT as DEFAULT_LOCK_TIMEOUT};

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
    decode_migrating(bytes).map(|(body, _)| body)
}

/// [`decode`], also saying what was migrated: class names that earlier releases stored in another
/// Unicode form than NFC are read in NFC; where that makes two classes' names equal (earlier releases
/// kept `cafe` + combining accent and precomposed `café` apart), the later one is read as `NAME (2)`, so
/// nothing is lost and `merge` can join them. The file changes at the next save.
pub fn decode_migrating(bytes: &[u8]) -> std::result::Result<(StateBody, Vec<String>), String> {
    let mut body: StateBody = format::decode(bytes).map_err(|e| e.to_string())?;
    let mut migrated = Vec::new();
    for i in 0..body.class_names.len() {
        let name = &body.class_names[i];
        let mut stored = crate::class_name::normalise(name).map_err(|e| e.to_string())?;
        if stored == *name {
            continue;
        }
        let taken = |n: &String| body.class_names.iter().any(|c| c == n);
        if taken(&stored) {
            let base = stored.clone();
            stored = (2..)
                .map(|k| format!("{base} ({k})"))
                .find(|n| !taken(n))
                .expect("a free name");
        }
        migrated.push(format!(
            "class name {name:?} is read as {stored:?} (trimmed, Unicode NFC)"
        ));
        body.class_names[i] = stored;
    }
    body.check()?;
    body.means.refresh();
    body.head.refresh();
    Ok((body, migrated))
}

impl StateBody {
    /// The invariants a loaded state must satisfy (and a learnt one, before it is kept).
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let dim = self.model.dim as usize;
        if dim == 0 || dim > crate::head::bounds::MAX_DIM {
            return Err(format!(
                "model dimension {dim} is not in 1..={}",
                crate::head::bounds::MAX_DIM
            ));
        }
        if self.memory.dim() != dim {
            return Err(format!(
                "feature memory is {}-d, model {dim}-d",
                self.memory.dim()
            ));
        }
        if self.model.name.len() > 1024 || self.model.path.len() > 4096 {
            return Err("model name or path is implausibly long".into());
        }
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

/// Reads a state file. Readers take no lock: saves are renames, so a reader sees a whole file.
pub fn load(path: &Path) -> Result<StateBody> {
    load_migrating(path).map(|(body, _)| body)
}

/// [`load`], also saying what was migrated ([`decode_migrating`]).
pub fn load_migrating(path: &Path) -> Result<(StateBody, Vec<String>)> {
    let bytes = read_bounded(path)?;
    decode_migrating(&bytes).map_err(|message| Error::State {
        path: path.to_path_buf(),
        message,
    })
}

/// Largest state file edgecl reads (a 10,000-class NCM state at 1280-d is about 100 MB).
pub const MAX_STATE_BYTES: u64 = 1 << 30;

/// Reads a regular file of at most [`MAX_STATE_BYTES`]; anything else is refused before it is read.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let mut f = crate::preprocess::open_regular(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > MAX_STATE_BYTES {
        return Err(Error::State {
            path: path.to_path_buf(),
            message: format!(
                "{len} bytes is more than any state ({MAX_STATE_BYTES} bytes at most)"
            ),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut f)
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Writes a state file atomically under its lock, keeping what the user set up:
///
/// - the path's symlinks are followed and their target replaced (the lock resolved them);
/// - the file keeps its mode (and owner and group where the process may set them); a new file gets
///   `0666` less the umask, as any created file;
/// - the temporary file has an unpredictable name, is created with `O_EXCL` (never through a planted
///   symlink) in the state's directory, written, fsynced, renamed over the state, and the directory is
///   fsynced, so a crash leaves the old state or the new one;
/// - temporary files that dead writers left beside the state are removed (the lock is held, so no live
///   writer owns one);
/// - the bytes are decoded again before anything is written: a state this build could not read back is
///   never written.
pub fn save(lock: &StateLock, body: &StateBody) -> Result<()> {
    let path = lock.target();
    let bytes = encode(body);
    if let Err(message) = decode(&bytes) {
        return Err(Error::State {
            path: path.to_path_buf(),
            message: format!("refusing to write a state that would not load: {message}"),
        });
    }
    let (dir, name) = lock::split(path)?;
    remove_dead_temp_files(&dir, &name);
    let existing = std::fs::metadata(path).ok();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Created with this mode less the umask; an existing state's own mode is set exactly below.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let write = || -> std::io::Result<()> {
        let mut tmp = builder.tempfile_in(&dir)?;
        #[cfg(unix)]
        if let Some(meta) = &existing {
            use std::os::unix::fs::MetadataExt;
            tmp.as_file().set_permissions(meta.permissions())?;
            // Only root may give a file away; for anyone else the owner is already theirs.
            let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()));
        }
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        // The rename is durable only once the directory entry is on disk.
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| Error::io(path, e))
}

/// What a temporary state file's name ends with (`.NAME.XXXXXX.tmp`).
const TEMP_SUFFIX: &str = ".tmp";

/// Removes `.NAME.*.tmp` (this release) and `.NAME.tmp-PID` (earlier releases) beside the state.
fn remove_dead_temp_files(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = format!(".{name}.");
    let old = format!(".{name}.tmp-");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let dead = (file.starts_with(&ours)
            && file.ends_with(TEMP_SUFFIX)
            && file.len() > ours.len() + TEMP_SUFFIX.len())
            || file.starts_with(&old);
        if dead && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::normalise_rows;
    use crate::memory::Storage;
    use ndarray::Array2;
    use proptest::prelude::*;

    pub(super) fn sample() -> StateBody {
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

    /// Written by the previous release (commit eefcf58, format v2) with the tiny model: `learn --class`
    /// with `cafe` + U+0301 (3 captures), then with precomposed `café` (3 captures), which that release
    /// kept as two classes.
    const V2_NFD_AND_NFC: &[u8] = include_bytes!("../tests/states/v2-nfd-and-nfc-cafe.edgecl");

    #[test]
    fn a_v2_state_of_the_previous_release_loads_and_says_what_it_migrated() {
        assert_eq!(&V2_NFD_AND_NFC[8..10], &[2, 0], "format v2");
        let (body, notes) = decode_migrating(V2_NFD_AND_NFC).unwrap();
        assert_eq!(body.class_names, ["caf\u{e9} (2)", "caf\u{e9}"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains(r"cafe\u{301}") && notes[0].contains("(2)"),
            "{notes:?}"
        );
        assert_eq!((body.means.count(0), body.means.count(1)), (3, 3));
        assert_eq!(body.model.name, "tiny-test-cnn");
        // What is written back reads without a migration.
        let (again, notes) = decode_migrating(&encode(&body)).unwrap();
        assert!(notes.is_empty());
        assert_eq!(again.class_names, body.class_names);
    }

    /// Written by the release before privacy mode's NCM head (commit d309599, format v2)
    /// with the tiny model: `learn --privacy` of `red` and `blue`, 5 captures each; privacy mode's only
    /// head then was the dreaming one.
    const V2_PRIVACY_ABD: &[u8] = include_bytes!("../tests/states/v2-privacy-abd.edgecl");

    #[test]
    fn a_privacy_state_of_the_previous_release_keeps_its_dreaming_head() {
        let (body, notes) = decode_migrating(V2_PRIVACY_ABD).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert!(matches!(body.head, Head::Privacy(_)));
        assert_eq!(body.head.label(), "privacy(k=5)+abd");
        assert_eq!(body.class_names, ["red", "blue"]);
        assert_eq!((body.means.count(0), body.means.count(1)), (5, 5));
        // Nothing changed in its encoding: it is written back byte for byte.
        assert_eq!(encode(&body), V2_PRIVACY_ABD);
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
        let lock = StateLock::acquire(&path, DEFAULT_LOCK_TIMEOUT).unwrap();
        save(&lock, &sample()).unwrap();
        save(&lock, &sample()).unwrap();
        drop(lock);
        std::fs::remove_file(dir.path().join(".s.edgecl.lock")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("s.edgecl")]);
        assert!(load(&path).is_ok());
    }
}

#[cfg(all(test, unix))]
mod save_tests {
    use super::tests::sample;
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn save_at(path: &Path) {
        let lock = StateLock::acquire(path, DEFAULT_LOCK_TIMEOUT).unwrap();
        save(&lock, &sample()).unwrap();
    }

    #[test]
    fn a_symlinked_state_keeps_its_link_and_its_target_is_updated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let real = dir.path().join("data/real.edgecl");
        let link = dir.path().join("link.edgecl");
        symlink("data/real.edgecl", &link).unwrap();
        save_at(&link);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), encode(&sample()));
    }

    #[test]
    fn the_mode_of_an_existing_state_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.edgecl");
        save_at(&path);
        for mode in [0o600, 0o640, 0o664] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            save_at(&path);
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{got:o} != {mode:o}");
        }
    }

    #[test]
    fn a_planted_symlink_is_never_written_through_and_dead_temp_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.edgecl");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        // Every name an earlier release would have used, and a guess at this one's.
        symlink(
            &victim,
            dir.path()
                .join(format!(".s.edgecl.tmp-{}", std::process::id())),
        )
        .unwrap();
        symlink(&victim, dir.path().join(".s.edgecl.guess.tmp")).unwrap();
        std::fs::write(dir.path().join(".s.edgecl.AbC123.tmp"), "dead writer").unwrap();
        std::fs::write(dir.path().join(".s.edgecl.tmp-4242"), "dead writer").unwrap();
        save_at(&path);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert!(load(&path).is_ok());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // The regular leftovers are gone; the planted symlinks are left alone (not ours to delete).
        assert!(
            !left.contains(&".s.edgecl.AbC123.tmp".to_string()),
            "{left:?}"
        );
        assert!(
            !left.contains(&".s.edgecl.tmp-4242".to_string()),
            "{left:?}"
        );
    }

    #[test]
    fn a_state_that_would_not_load_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.edgecl");
        save_at(&path);
        let before = std::fs::read(&path).unwrap();
        let mut body = sample();
        body.unknown_factor = f32::NAN;
        let lock = StateLock::acquire(&path, DEFAULT_LOCK_TIMEOUT).unwrap();
        let e = save(&lock, &body).unwrap_err().to_string();
        assert!(e.contains("would not load"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_as_a_state_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.edgecl");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = load(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
    }
}
