//! Stored-vector encodings: f32, f16, or int8 with one f32 scale per vector (symmetric:
//! `x ~= q * scale`, `scale = max|x| / 127`).

use half::f16;
use serde::{Deserialize, Serialize};

/// How a stored feature vector is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Storage {
    #[default]
    F32,
    F16,
    Int8,
}

impl Storage {
    /// Bytes one `d`-wide vector takes.
    pub fn bytes(self, d: usize) -> u64 {
        match self {
            Storage::F32 => 4 * d as u64,
            Storage::F16 => 2 * d as u64,
            Storage::Int8 => d as u64 + 4,
        }
    }
}

/// The int8 scale of `x`: `max|x| / 127`, or 1 for a zero vector.
pub fn i8_scale(x: &[f32]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(libm::fabsf(*v)));
    if max > 0.0 {
        max / 127.0
    } else {
        1.0
    }
}

/// Quantises `x` into `out` (same length) and returns the scale.
pub fn quantise_i8(x: &[f32], out: &mut [i8]) -> f32 {
    debug_assert_eq!(x.len(), out.len());
    let scale = i8_scale(x);
    for (q, &v) in out.iter_mut().zip(x) {
        *q = libm::roundf(v / scale).clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// `out[i] = q[i] * scale`.
pub fn dequantise_i8(q: &[i8], scale: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(q) {
        *o = v as f32 * scale;
    }
}

/// Rounds `x` to f16 into `out`.
pub fn quantise_f16(x: &[f32], out: &mut [f16]) {
    for (h, &v) in out.iter_mut().zip(x) {
        *h = f16::from_f32(v);
    }
}

/// Widens f16 values into `out`.
pub fn dequantise_f16(h: &[f16], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(h) {
        *o = v.to_f32();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_round_trip_is_within_half_a_step() {
        let x = [0.5f32, -1.27, 0.003, 1.0, 0.0];
        let mut q = [0i8; 5];
        let scale = quantise_i8(&x, &mut q);
        assert_eq!(scale, 1.27 / 127.0);
        assert_eq!(q[1], -127);
        let mut back = [0.0f32; 5];
        dequantise_i8(&q, scale, &mut back);
        for (a, b) in x.iter().zip(back) {
            assert!((a - b).abs() <= scale / 2.0 + 1e-7, "{a} vs {b}");
        }
        assert_eq!(quantise_i8(&[0.0, 0.0], &mut q[..2]), 1.0);
    }
}
