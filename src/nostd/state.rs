//! The state file's layout, shared by the std build ([`crate::state`]) and firmware.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "EDGECLST"
//!      8     2  format version, u16 little-endian
//!     10     2  reserved, 0
//!     12     4  payload length in bytes, u32 little-endian
//!     16     4  CRC-32 (IEEE) of the payload, u32 little-endian
//!     20     n  payload: postcard encoding of a `StateBodyOf`
//! ```
//!
//! The payload's field order lives in one place, [`StateBodyOf`], generic over its containers: the std
//! build fills it with `String`, `Vec` and its heads; firmware with `heapless` strings and a
//! [`ClassTable`](super::table::ClassTable). postcard encodes `Vec<T>` and `heapless::Vec<T, N>` (and
//! `String` / `heapless::String<N>`) identically, so both read each other's bytes.

use core::fmt;

use serde::{Deserialize, Serialize};

use super::quant::Storage;

pub const MAGIC: &[u8; 8] = b"EDGECLST";
/// 2: the payload names its head (`StateBodyOf::head`) beside the NCM class statistics.
pub const VERSION: u16 = 2;
pub const HEADER_LEN: usize = 20;

/// The backbone a state was made with. Features from any other model are meaningless to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRefOf<S> {
    pub name: S,
    pub sha256: [u8; 32],
    pub dim: u32,
    /// Where the model was when the state was made (a later `--model` may point elsewhere).
    pub path: S,
}

/// The payload, in field order. `S`: a string; `Names`: a sequence of them; `Means`: the NCM class
/// statistics; `H`: the head; `M`: the feature memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateBodyOf<S, Names, Means, H, M> {
    pub model: ModelRefOf<S>,
    pub class_names: Names,
    /// Class statistics every head keeps: NCM sums (NCM's scores, the memory's herding target, the
    /// unknown rule's spread).
    pub means: Means,
    /// The classifier head.
    pub head: H,
    pub memory: M,
    pub unknown_factor: f32,
}

/// The header for `payload`.
pub fn header(payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    // 10..12 reserved, zero
    h[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    h
}

/// Why a state's bytes were refused.
#[derive(Debug, Clone, PartialEq)]
pub enum StateError {
    Truncated {
        len: usize,
    },
    BadMagic,
    Version(u16),
    Reserved,
    Length {
        header: usize,
        actual: usize,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
    Decode(postcard::Error),
    Trailing(usize),
    /// The output buffer cannot hold the encoded state.
    BufferFull {
        needed: usize,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Truncated { len } => write!(
                f,
                "truncated: {len} bytes, the header alone is {HEADER_LEN}"
            ),
            StateError::BadMagic => f.write_str("not an edgecl state file (bad magic)"),
            StateError::Version(v) => {
                write!(f, "format version {v}; this edgecl reads version {VERSION}")
            }
            StateError::Reserved => {
                f.write_str("reserved header bytes are not zero: the file is corrupt")
            }
            StateError::Length { header, actual } => write!(
                f,
                "truncated or padded: the header says {header} payload bytes, the file has {actual}"
            ),
            StateError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt"
            ),
            StateError::Decode(e) => write!(f, "payload does not decode: {e}"),
            StateError::Trailing(n) => write!(f, "{n} bytes left over after the payload"),
            StateError::BufferFull { needed } => {
                write!(f, "the state needs more than {needed} bytes of buffer")
            }
        }
    }
}

/// Checks the header (length, magic, version, reserved, payload length, CRC) and returns the payload.
pub fn payload(bytes: &[u8]) -> Result<&[u8], StateError> {
    if bytes.len() < HEADER_LEN {
        return Err(StateError::Truncated { len: bytes.len() });
    }
    if &bytes[..8] != MAGIC {
        return Err(StateError::BadMagic);
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(StateError::Version(version));
    }
    if bytes[10] != 0 || bytes[11] != 0 {
        return Err(StateError::Reserved);
    }
    let len = u32_at(12) as usize;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(StateError::Length {
            header: len,
            actual: payload.len(),
        });
    }
    let (stored, computed) = (u32_at(16), crc32fast::hash(payload));
    if stored != computed {
        return Err(StateError::Checksum { stored, computed });
    }
    Ok(payload)
}

/// Decodes a whole state file: header checks, then a complete postcard decode with nothing left over.
/// The caller checks its own invariants after this.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StateError> {
    let (body, rest) = postcard::take_from_bytes(payload(bytes)?).map_err(StateError::Decode)?;
    if !rest.is_empty() {
        return Err(StateError::Trailing(rest.len()));
    }
    Ok(body)
}

/// Encodes `body` (header and payload) into `buf`, without an allocator; returns the bytes written.
pub fn encode_into<T: Serialize>(body: &T, buf: &mut [u8]) -> Result<usize, StateError> {
    let full = StateError::BufferFull { needed: buf.len() };
    if buf.len() < HEADER_LEN {
        return Err(full);
    }
    let (head, rest) = buf.split_at_mut(HEADER_LEN);
    let n = match postcard::to_slice(body, rest) {
        Ok(p) => p.len(),
        Err(postcard::Error::SerializeBufferFull) => return Err(full),
        Err(e) => return Err(StateError::Decode(e)),
    };
    head.copy_from_slice(&header(&rest[..n]));
    Ok(HEADER_LEN + n)
}

/// The head of a state that firmware reads and writes: nearest class mean, with no state of its own
/// (the std `Head::Ncm`, variant 0). Another head's state is refused when it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NcmHead {
    Ncm,
}

/// An empty feature memory (budget 0, nothing stored): NCM needs no stored features. Encodes as the std
/// `FeatureMemory` with no vectors; a state that keeps vectors is refused when it decodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoMemory<const C: usize> {
    pub budget: u64,
    pub storage: Storage,
    pub dim: usize,
    /// One empty list per class.
    pub classes: heapless::Vec<heapless::Vec<Nothing, 0>, C>,
}

/// A type with no values: the element type of [`NoMemory`]'s empty lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Nothing {}

impl<const C: usize> NoMemory<C> {
    pub const fn new(dim: usize) -> Self {
        NoMemory {
            budget: 0,
            storage: Storage::F32,
            dim,
            classes: heapless::Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_as_documented() {
        let h = header(b"abc");
        assert_eq!(&h[..8], b"EDGECLST");
        assert_eq!(&h[8..12], &[2, 0, 0, 0]);
        assert_eq!(&h[12..16], &3u32.to_le_bytes());
        assert_eq!(&h[16..20], &crc32fast::hash(b"abc").to_le_bytes());
    }

    #[test]
    fn encode_into_a_small_buffer_is_an_error_not_a_panic() {
        let body = (1u32, 2u64);
        let mut small = [0u8; 21];
        assert!(matches!(
            encode_into(&body, &mut small),
            Err(StateError::BufferFull { .. })
        ));
        let mut buf = [0u8; 64];
        let n = encode_into(&body, &mut buf).unwrap();
        assert_eq!(decode::<(u32, u64)>(&buf[..n]).unwrap(), body);
    }
}
