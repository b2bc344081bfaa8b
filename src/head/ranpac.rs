//! RanPAC-style head (McDonnell et al., "RanPAC: Random Projections and Pre-trained Models for Continual
//! Learning", NeurIPS 2023) without its first-session backbone adaptation (the backbone stays frozen).
//!
//! A fixed random projection `W` (`d x M`, entries N(0, 1), drawn from a seed: the state stores the seed,
//! not `W`) and a ReLU map each raw feature `x` to `h = max(0, x W)`. The head keeps the Gram matrix
//! `G = sum h h'` and the target matrix `C = sum h y'` (`y` one-hot over the classes), and classifies with
//! the ridge solution `Wo = (G + lambda I)^-1 C`: score `h . Wo_c`. Both sums are exact under any order or
//! batching, and a new class only adds a column to `C` (old samples have target 0 there, as they should).
//!
//! # Choosing lambda from the data seen
//!
//! As in the paper's code, lambda is picked from `10^-8 ... 10^8` by the mean squared error of a ridge fit
//! on 80% of the samples against the other 20%. Here the split is by arrival (every fifth sample
//! seen is held out), and the held-out samples are kept only as their own sums `G_v`, `C_v`, `n_v`:
//! the validation error of a fit `W` is `n_v - 2 tr(W' C_v) + tr(W' G_v W)`, so lambda is chosen over
//! *everything* seen so far without storing a sample. The final `Wo` uses all samples.
//!
//! Cost: two packed `M x M` f64 matrices in the state (`8 M (M + 1)` bytes: 8.4 MB at M = 1024), and
//! 17 Cholesky factorisations of `M x M` per learn. Forgetting a class drops its column of `C`;
//! its samples stay in `G` (with target 0 for every remaining class).

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::linalg::{self, Symmetric};

/// Default projection width for the device (the paper uses 10,000 on a GPU).
pub const DEFAULT_DIM: usize = 1024;
/// Every `HOLDOUT`-th sample seen is held out for choosing lambda (20%, as in the paper).
pub const HOLDOUT: u64 = 5;

/// The candidate ridge parameters: `10^-8 ..= 10^8`.
pub fn lambdas() -> impl Iterator<Item = f64> {
    (-8..=8).map(|e| 10f64.powi(e))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ranpac {
    dim: usize,
    m: usize,
    seed: u64,
    /// Gram matrix of every sample, and of the held-out ones.
    gram: Symmetric,
    gram_val: Symmetric,
    /// `M x classes` targets, all and held out.
    #[serde(with = "linalg::matrix_f64")]
    targets: Array2<f64>,
    #[serde(with = "linalg::matrix_f64")]
    targets_val: Array2<f64>,
    seen: u64,
    held_out: u64,
    lambda: f64,
    /// Solved `classes x M` weights.
    #[serde(with = "linalg::matrix_f32")]
    weights: Array2<f32>,
    #[serde(skip)]
    projection: Array2<f32>,
}

/// SplitMix64: a small, well-mixed generator, so the projection is the same on every platform.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// The `d x m` projection for a seed: standard normals by Box-Muller.
pub fn projection(d: usize, m: usize, seed: u64) -> Array2<f32> {
    let mut rng = SplitMix(seed);
    let mut v = Vec::with_capacity(d * m + 1);
    while v.len() < d * m {
        let (u1, u2) = (rng.uniform(), rng.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        v.push((r * t.cos()) as f32);
        v.push((r * t.sin()) as f32);
    }
    v.truncate(d * m);
    Array2::from_shape_vec((d, m), v).expect("d * m values")
}

impl Ranpac {
    pub fn new(dim: usize, m: usize, seed: u64) -> Self {
        Ranpac {
            dim,
            m,
            seed,
            gram: Symmetric::zeros(m),
            gram_val: Symmetric::zeros(m),
            targets: Array2::zeros((m, 0)),
            targets_val: Array2::zeros((m, 0)),
            seen: 0,
            held_out: 0,
            lambda: 1.0,
            weights: Array2::zeros((0, m)),
            projection: projection(dim, m, seed),
        }
    }

    pub fn classes(&self) -> usize {
        self.targets.ncols()
    }

    /// The projection width `M`.
    pub fn hidden_dim(&self) -> usize {
        self.m
    }

    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    pub fn add_class(&mut self) {
        let z = Array2::zeros((self.m, 1));
        self.targets = ndarray::concatenate![ndarray::Axis(1), self.targets, z];
        self.targets_val = ndarray::concatenate![ndarray::Axis(1), self.targets_val, z];
        self.weights =
            ndarray::concatenate![ndarray::Axis(0), self.weights, Array2::zeros((1, self.m))];
    }

    pub fn remove_class(&mut self, class: usize) {
        self.targets.remove_index(ndarray::Axis(1), class);
        self.targets_val.remove_index(ndarray::Axis(1), class);
        self.solve();
    }

    /// Joins class `from` into class `into` (the caller then removes `from`, which re-solves): exact, the
    /// targets are per-class sums of hidden features and the Gram matrix does not depend on labels.
    pub fn merge_class(&mut self, into: usize, from: usize) {
        for t in [&mut self.targets, &mut self.targets_val] {
            let col = t.column(from).to_owned();
            let mut target = t.column_mut(into);
            target += &col;
        }
        self.choose_lambda();
    }

    /// `h = max(0, x W)` for raw features.
    pub fn hidden(&self, features: ArrayView2<f32>) -> Array2<f32> {
        features.dot(&self.projection).mapv(|v| v.max(0.0))
    }

    /// Adds raw features with their class indices to the sums, then picks lambda and solves.
    pub fn learn(&mut self, features: ArrayView2<f32>, labels: &[usize]) {
        let h = self.hidden(features).mapv(f64::from);
        let val: Vec<usize> = (0..labels.len())
            .filter(|&i| (self.seen + i as u64) % HOLDOUT == HOLDOUT - 1)
            .collect();
        self.gram.0 += &h.t().dot(&h);
        for (i, &c) in labels.iter().enumerate() {
            let mut col = self.targets.column_mut(c);
            col += &h.row(i);
        }
        if !val.is_empty() {
            let hv = h.select(ndarray::Axis(0), &val);
            self.gram_val.0 += &hv.t().dot(&hv);
            for (r, &i) in val.iter().enumerate() {
                let mut col = self.targets_val.column_mut(labels[i]);
                col += &hv.row(r);
            }
        }
        self.seen = self.seen.saturating_add(labels.len() as u64);
        self.held_out = self.held_out.saturating_add(val.len() as u64);
        self.choose_lambda();
        self.solve();
    }

    /// Ridge solution `(G + lambda I)^-1 C` for given sums.
    fn ridge(gram: &Array2<f64>, targets: &Array2<f64>, lambda: f64) -> Array2<f64> {
        let mut a = gram.clone();
        for i in 0..a.nrows() {
            a[[i, i]] += lambda;
        }
        let (l, _) = linalg::cholesky_jittered(&a);
        let mut w = targets.clone();
        linalg::cholesky_solve(&l, &mut w);
        w
    }

    /// The held-out squared error of the ridge fit on the other samples, for each candidate lambda.
    pub fn validation_errors(&self) -> Vec<(f64, f64)> {
        let g_fit = &self.gram.0 - &self.gram_val.0;
        let c_fit = &self.targets - &self.targets_val;
        lambdas()
            .map(|lambda| {
                let w = Self::ridge(&g_fit, &c_fit, lambda);
                let cross: f64 = (&w * &self.targets_val).sum();
                let quad: f64 = (&w * &self.gram_val.0.dot(&w)).sum();
                (lambda, self.held_out as f64 - 2.0 * cross + quad)
            })
            .collect()
    }

    fn choose_lambda(&mut self) {
        if self.held_out == 0 || self.held_out == self.seen {
            return;
        }
        let errors = self.validation_errors();
        self.lambda = errors
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|e| e.0)
            .unwrap_or(1.0);
    }

    fn solve(&mut self) {
        if self.classes() == 0 {
            self.weights = Array2::zeros((0, self.m));
            return;
        }
        self.weights = Self::ridge(&self.gram.0, &self.targets, self.lambda)
            .t()
            .mapv(|v| v as f32);
    }

    /// Ridge outputs `[n, classes]` for raw features.
    pub fn scores(&self, features: ArrayView2<f32>) -> Array2<f32> {
        self.hidden(features).dot(&self.weights.t())
    }

    /// Rebuilds the projection from the seed (after a load).
    pub fn refresh(&mut self) {
        self.projection = projection(self.dim, self.m, self.seed);
    }

    pub fn check(&self, dim: usize) -> Result<(), String> {
        super::bounds::within("ranpac m", self.m as u64, super::bounds::MAX_HIDDEN as u64)?;
        let c = self.targets.ncols();
        if self.dim != dim
            || self.m == 0
            || self.gram.dim() != self.m
            || self.gram_val.dim() != self.m
            || self.targets.dim() != (self.m, c)
            || self.targets_val.dim() != (self.m, c)
            || self.weights.dim() != (c, self.m)
        {
            return Err("ranpac head has inconsistent shapes".into());
        }
        if self.held_out > self.seen || !self.lambda.is_finite() || self.lambda <= 0.0 {
            return Err("ranpac head has inconsistent counts or lambda".into());
        }
        let values = self.gram.0.iter().chain(&self.gram_val.0);
        let values = values.chain(&self.targets).chain(&self.targets_val);
        if values.copied().any(|v: f64| !v.is_finite())
            || self.weights.iter().any(|v| !v.is_finite())
        {
            return Err("ranpac head has non-finite statistics or weights".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = SplitMix(seed);
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            (rng.uniform() as f32) + if j % 3 == y[i] { 1.0 } else { 0.0 }
        });
        (x, y)
    }

    /// Plain ridge regression on all the rows at once, with the hidden matrix built row by row and the
    /// normal equations solved by Gauss-Jordan elimination (no Cholesky).
    fn reference_weights(h: &Array2<f64>, y: &[usize], classes: usize, lambda: f64) -> Array2<f64> {
        let m = h.ncols();
        let mut aug = Array2::<f64>::zeros((m, m + classes));
        for (r, &c) in h.rows().into_iter().zip(y) {
            for i in 0..m {
                for j in 0..m {
                    aug[[i, j]] += r[i] * r[j];
                }
                aug[[i, m + c]] += r[i];
            }
        }
        for i in 0..m {
            aug[[i, i]] += lambda;
        }
        for col in 0..m {
            let piv = aug[[col, col]];
            for k in 0..m + classes {
                aug[[col, k]] /= piv;
            }
            for r in 0..m {
                if r != col {
                    let f = aug[[r, col]];
                    for k in 0..m + classes {
                        aug[[r, k]] -= f * aug[[col, k]];
                    }
                }
            }
        }
        aug.slice(ndarray::s![.., m..]).to_owned()
    }

    #[test]
    fn incremental_sums_give_the_batch_ridge_solution() {
        let (x, y) = data(40, 6, 3);
        let mut h = Ranpac::new(6, 12, 42);
        h.add_class();
        h.add_class();
        // Classes 0 and 1 first, class 2 later: old samples get target 0 for the new class.
        let first: Vec<usize> = (0..40).filter(|&i| y[i] < 2).collect();
        let later: Vec<usize> = (0..40).filter(|&i| y[i] == 2).collect();
        let xf = x.select(ndarray::Axis(0), &first);
        h.learn(xf.view(), &first.iter().map(|&i| y[i]).collect::<Vec<_>>());
        h.add_class();
        let xl = x.select(ndarray::Axis(0), &later);
        h.learn(xl.view(), &later.iter().map(|&i| y[i]).collect::<Vec<_>>());

        let hid = Array2::from_shape_fn((40, 12), |(i, k)| {
            let p = projection(6, 12, 42);
            (0..6)
                .map(|j| x[[i, j]] as f64 * p[[j, k]] as f64)
                .sum::<f64>()
                .max(0.0)
        });
        let want = reference_weights(&hid, &y, 3, h.lambda());
        let q = x.slice(ndarray::s![..5, ..]);
        let got = h.scores(q);
        let want_scores = hid.slice(ndarray::s![..5, ..]).dot(&want);
        for (g, w) in got.iter().zip(want_scores.iter()) {
            assert!(
                (*g as f64 - w).abs() < 1e-3 * (1.0 + w.abs()),
                "{got} vs {want_scores}"
            );
        }
    }

    #[test]
    fn lambda_minimises_the_held_out_error_computed_from_samples() {
        let (x, y) = data(60, 5, 9);
        let mut h = Ranpac::new(5, 8, 1);
        for _ in 0..3 {
            h.add_class();
        }
        h.learn(x.view(), &y);
        let p = projection(5, 8, 1);
        let hid = x.dot(&p).mapv(|v| v.max(0.0) as f64);
        let (fit, val): (Vec<usize>, Vec<usize>) = (0..60).partition(|i| i % 5 != 4);
        let hf = hid.select(ndarray::Axis(0), &fit);
        let yf: Vec<usize> = fit.iter().map(|&i| y[i]).collect();
        let errors: Vec<(f64, f64)> = lambdas()
            .map(|lambda| {
                let w = reference_weights(&hf, &yf, 3, lambda);
                let mut e = 0.0;
                for &i in &val {
                    for c in 0..3 {
                        let pred: f64 = (0..8).map(|k| hid[[i, k]] * w[[k, c]]).sum();
                        e += (pred - f64::from(u8::from(y[i] == c))).powi(2);
                    }
                }
                (lambda, e)
            })
            .collect();
        let best = errors.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
        assert_eq!(h.lambda(), best);
        for ((_, got), (_, want)) in h.validation_errors().iter().zip(&errors) {
            assert!(
                (got - want).abs() < 1e-6 * (1.0 + want.abs()),
                "{got} vs {want}"
            );
        }
    }

    #[test]
    fn the_projection_is_standard_normal_and_seeded() {
        let p = projection(50, 100, 7);
        assert_eq!(p, projection(50, 100, 7));
        assert_ne!(p, projection(50, 100, 8));
        let n = p.len() as f64;
        let mean = p.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
