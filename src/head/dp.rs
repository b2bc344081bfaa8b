//! Differential privacy for the class statistics a privacy-mode state keeps (`--dp-epsilon`).
//!
//! # Mechanism
//!
//! Each release is one class's batch of at least K captures from one learn call (see
//! [`super::privacy`]). The captures are L2-normalised, each is clipped to norm `C`
//! (`x <- x min(1, C / ||x||)`), and the release is the pair `(sum, count)` with independent Gaussian noise:
//! `sum + N(0, (z C)^2 I)`, `count + N(0, z^2)`. Nothing else derived from the captures' values is stored
//! (no per-dimension second moments: the class's spread is taken from the noisy sum, see
//! [`super::privacy`]).
//!
//! # Accounting
//!
//! Neighbouring data sets differ by one capture. Scale the release to `(sum / C, count)`: one capture moves
//! it by `(x / C, 1)`, of L2 norm at most `sqrt(2)`, and the noise is `N(0, z^2)` on every coordinate. That is
//! the Gaussian mechanism with sensitivity `sqrt(2)` and standard deviation `z`; by the classic bound
//! (Dwork & Roth 2014, Theorem A.1) it is `(epsilon, delta)`-DP for `epsilon < 1` when
//! `z >= sqrt(2) sqrt(2 ln(1.25 / delta)) / epsilon`, and edgecl takes that `z` ([`DpOptions::noise_multiplier`]).
//! Every capture enters exactly one release, so by parallel composition the stored statistics as a whole
//! are `(epsilon, delta)`-DP with respect to any one capture; sums of releases, the division into means,
//! rounding the count and flooring it at K are post-processing.
//!
//! # What it does not cover
//!
//! - The head (and adapter) weights are trained on the captures without DP-SGD: the state as a whole is
//!   not DP, only its statistics. `info` says so.
//! - Which classes exist and how many learn calls each had are not hidden.
//! - The noise is drawn as f64 Box-Muller samples from the OS random source (`/dev/urandom`), not with a
//!   floating-point-safe sampler (Mironov 2012); a seeded generator is used only by tests.
//! - Because captures are L2-normalised before clipping, every capture has norm 1: a clip `C >= 1` is a
//!   no-op and a clip `C < 1` scales every capture alike, which the division by `C` in [`release`] undoes
//!   (it changes only the units of the noise). The clip still bounds the sensitivity if the features were
//!   ever aggregated unnormalised.

use std::io::Read;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// The privacy budget of each capture, and the clip norm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpOptions {
    pub epsilon: f64,
    pub delta: f64,
    pub clip: f64,
}

impl DpOptions {
    /// Checks the ranges the accounting holds for.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.epsilon >= 1e-3 && self.epsilon < 1.0) {
            return Err(format!(
                "dp epsilon {} must be in [0.001, 1): the classic Gaussian-mechanism bound edgecl uses holds only below 1",
                self.epsilon
            ));
        }
        if !(self.delta >= 1e-12 && self.delta < 1.0) {
            return Err(format!("dp delta {} must be in [1e-12, 1)", self.delta));
        }
        if !(self.clip > 0.0 && self.clip.is_finite()) {
            return Err(format!("dp clip {} must be a positive number", self.clip));
        }
        Ok(())
    }

    /// `z`: the noise standard deviation is `z C` on each coordinate of a sum and `z` on a count.
    pub fn noise_multiplier(&self) -> f64 {
        std::f64::consts::SQRT_2 * (2.0 * (1.25 / self.delta).ln()).sqrt() / self.epsilon
    }
}

/// A source of standard normal samples.
pub trait Noise {
    fn gaussian(&mut self) -> f64;
}

impl Noise for super::linear::Rng {
    fn gaussian(&mut self) -> f64 {
        super::linear::Rng::gaussian(self)
    }
}

/// Standard normal samples from the operating system's random source.
pub struct OsNoise {
    file: std::fs::File,
    spare: Option<f64>,
}

impl OsNoise {
    pub fn open() -> std::io::Result<OsNoise> {
        Ok(OsNoise {
            file: std::fs::File::open("/dev/urandom")?,
            spare: None,
        })
    }

    fn uniform(&mut self) -> f64 {
        let mut b = [0u8; 8];
        // /dev/urandom never returns short reads of 8 bytes once open; a failure here is unrecoverable.
        self.file
            .read_exact(&mut b)
            .expect("/dev/urandom is readable once opened");
        ((u64::from_le_bytes(b) >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

impl Noise for OsNoise {
    fn gaussian(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

/// Clips each row to L2 norm at most `clip`, in place.
pub fn clip_rows(x: &mut Array2<f32>, clip: f64) {
    for mut row in x.rows_mut() {
        let n = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        if n > clip {
            row.mapv_inplace(|v| (v as f64 * clip / n) as f32);
        }
    }
}

/// One noisy release of a batch: the sum of the clipped rows, in units of the rows (divided by the clip,
/// times the clip: see the module docs) and the count.
#[derive(Debug, Clone)]
pub struct Release {
    pub sum: Vec<f64>,
    pub count: f64,
}

/// Clips the rows, sums them and adds the calibrated noise.
pub fn release(rows: ArrayView2<f32>, dp: &DpOptions, noise: &mut dyn Noise) -> Release {
    let mut x = rows.to_owned();
    clip_rows(&mut x, dp.clip);
    let z = dp.noise_multiplier();
    let sum = (0..x.ncols())
        .map(|j| {
            x.column(j).iter().map(|&v| v as f64).sum::<f64>() + z * dp.clip * noise.gaussian()
        })
        .collect();
    Release {
        sum,
        count: x.nrows() as f64 + z * noise.gaussian(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::linear::Rng;
    use ndarray::array;

    #[test]
    fn clipping_caps_the_norm_and_keeps_the_direction() {
        let mut x = array![[3.0f32, 4.0], [0.3, 0.4], [0.0, 0.0]];
        clip_rows(&mut x, 1.0);
        assert!((x[[0, 0]] - 0.6).abs() < 1e-6 && (x[[0, 1]] - 0.8).abs() < 1e-6);
        assert_eq!(
            x.row(1).to_vec(),
            vec![0.3, 0.4],
            "under the clip: untouched"
        );
        assert_eq!(x.row(2).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn the_noise_multiplier_is_the_classic_bound_for_sensitivity_sqrt2() {
        // By hand: delta 1e-5 -> sqrt(2 ln(125000)) = 4.8448; times sqrt(2) = 6.8517; over epsilon 0.5.
        let dp = DpOptions {
            epsilon: 0.5,
            delta: 1e-5,
            clip: 1.0,
        };
        assert!(
            (dp.noise_multiplier() - 13.7034).abs() < 1e-3,
            "{}",
            dp.noise_multiplier()
        );
        assert!(DpOptions { epsilon: 1.5, ..dp }.validate().is_err());
        assert!(DpOptions { delta: 0.0, ..dp }.validate().is_err());
        assert!(DpOptions { clip: -1.0, ..dp }.validate().is_err());
        assert!(dp.validate().is_ok());
    }

    /// The added noise has the calibrated standard deviation: `z C` on the sums and `z` on the count.
    /// With 4,000 releases the sample variance is within 10% of the truth with overwhelming probability
    /// (its relative standard error is sqrt(2 / 4000) = 2.2%), so a wrong scale (e.g. forgetting the clip,
    /// or sigma^2 for sigma) fails.
    #[test]
    fn the_noise_has_the_calibrated_scale_and_mean_zero() {
        let dp = DpOptions {
            epsilon: 0.8,
            delta: 1e-5,
            clip: 0.5,
        };
        let z = dp.noise_multiplier();
        // Rows of norm 2 (clipped to 0.5): the exact clipped sum is 3 * 0.5 * (0.6, 0.8).
        let rows = array![[1.2f32, 1.6], [1.2, 1.6], [1.2, 1.6]];
        let truth = [0.9, 1.2];
        let mut rng = Rng(0x5eed);
        let n = 4000;
        let (mut s1, mut s2, mut c1, mut c2) = ([0.0; 2], [0.0; 2], 0.0, 0.0);
        for _ in 0..n {
            let r = release(rows.view(), &dp, &mut rng);
            for j in 0..2 {
                let e = r.sum[j] - truth[j];
                s1[j] += e;
                s2[j] += e * e;
            }
            let e = r.count - 3.0;
            c1 += e;
            c2 += e * e;
        }
        let nf = n as f64;
        for j in 0..2 {
            let sd = (s2[j] / nf).sqrt();
            assert!(
                (sd / (z * dp.clip) - 1.0).abs() < 0.1,
                "sum sd {sd} vs {}",
                z * dp.clip
            );
            // Mean within 4 standard errors of 0.
            assert!((s1[j] / nf).abs() < 4.0 * z * dp.clip / nf.sqrt());
        }
        let sd = (c2 / nf).sqrt();
        assert!((sd / z - 1.0).abs() < 0.1, "count sd {sd} vs {z}");
        assert!((c1 / nf).abs() < 4.0 * z / nf.sqrt());
    }

    #[test]
    fn os_noise_is_standard_normal() {
        let mut os = OsNoise::open().unwrap();
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| os.gaussian()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.04, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        // Two draws are not the same stream twice.
        assert_ne!(xs[0], xs[1]);
    }
}
