//! How a stored feature vector is encoded: f32, f16, or int8 with one f32 scale per vector
//! (symmetric: `x ~= q * scale`, `scale = max|x| / 127`).

use half::f16;
use serde::{Deserialize, Serialize};

// The encodings themselves (and `Storage`) are the no_std core's: crate::nostd::quant.
use crate::nostd::quant::{dequantise_f16, dequantise_i8, quantise_f16};
pub use crate::nostd::quant::{quantise_i8, Storage};

impl std::str::FromStr for Storage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Storage::F32),
            "f16" => Ok(Storage::F16),
            "int8" => Ok(Storage::Int8),
            _ => Err(format!("unknown storage {s:?}: use f32, f16 or int8")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stored {
    F32(Vec<f32>),
    /// Encoded as raw little-endian bytes: postcard would varint-encode the u16 bits (up to 3 bytes each).
    F16(#[serde(with = "f16_bytes")] Vec<f16>),
    Int8 {
        scale: f32,
        values: Vec<i8>,
    },
}

impl Stored {
    pub fn quantise(storage: Storage, x: &[f32]) -> Stored {
        match storage {
            Storage::F32 => Stored::F32(x.to_vec()),
            Storage::F16 => {
                let mut values = vec![f16::ZERO; x.len()];
                quantise_f16(x, &mut values);
                Stored::F16(values)
            }
            Storage::Int8 => {
                let mut values = vec![0; x.len()];
                let scale = quantise_i8(x, &mut values);
                Stored::Int8 { scale, values }
            }
        }
    }

    /// Dequantises into `out` (`out.len() == self.len()`).
    pub fn write_to(&self, out: &mut [f32]) {
        match self {
            Stored::F32(v) => out.copy_from_slice(v),
            Stored::F16(v) => dequantise_f16(v, out),
            Stored::Int8 { scale, values } => dequantise_i8(values, *scale, out),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Stored::F32(v) => v.len(),
            Stored::F16(v) => v.len(),
            Stored::Int8 { values, .. } => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn storage(&self) -> Storage {
        match self {
            Stored::F32(_) => Storage::F32,
            Stored::F16(_) => Storage::F16,
            Stored::Int8 { .. } => Storage::Int8,
        }
    }
}

/// f16 vectors as one byte string, 2 bytes per value, little-endian.
mod f16_bytes {
    use half::f16;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f16], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|h| h.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f16>, D::Error> {
        let bytes: &[u8] = Deserialize::deserialize(d)?;
        if !bytes.len().is_multiple_of(2) {
            return Err(D::Error::custom("odd number of bytes in an f16 vector"));
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip_error_is_within_the_format_bound(x in prop::collection::vec(-6.0f32..6.0, 1..64)) {
            let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (storage, bound) in [(Storage::F32, 0.0), (Storage::F16, max / 1024.0), (Storage::Int8, max / 254.0 + 1e-6)] {
                let s = Stored::quantise(storage, &x);
                let mut back = vec![0.0; x.len()];
                s.write_to(&mut back);
                for (a, b) in x.iter().zip(&back) {
                    prop_assert!((a - b).abs() <= bound, "{storage:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn f16_vectors_encode_in_two_bytes_per_value() {
        let s = Stored::quantise(Storage::F16, &[1.5, -2.25, 1000.0, 0.0]);
        let bytes = postcard::to_allocvec(&s).unwrap();
        // enum tag (1) + length varint (1) + 4 values x 2 bytes
        assert_eq!(bytes.len(), 1 + 1 + 8);
        assert_eq!(postcard::from_bytes::<Stored>(&bytes).unwrap(), s);
        assert!(postcard::from_bytes::<Stored>(&[1, 3, 0, 60, 0]).is_err());
    }

    #[test]
    fn sizes_follow_the_documented_formula() {
        assert_eq!(Storage::F32.bytes(1280), 5120);
        assert_eq!(Storage::F16.bytes(1280), 2560);
        assert_eq!(Storage::Int8.bytes(1280), 1284);
    }
}
