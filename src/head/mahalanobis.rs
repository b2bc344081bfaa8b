//! FeCAM-style Mahalanobis head (Goswami et al., "FeCAM: Exploiting the Heterogeneity of Class
//! Distributions in Exemplar-Free Continual Learning", NeurIPS 2023).
//!
//! Features go through Tukey's power transform `x -> max(x, 0)^0.5` (backbone features after ReLU are
//! non-negative and skewed; the root makes them closer to Gaussian). Each class keeps the count, mean and
//! centred scatter of its transformed features, merged exactly batch by batch. Its covariance is then
//! prepared as FeCAM does:
//!
//! 1. `Sigma_c = S_c / (n_c - 1)` (the unbiased estimate);
//! 2. shrinkage, applied twice: `Sigma + a1 * mean(diag) * I + a2 * mean(off-diagonal) * (1 - I)`,
//!    `a1 = a2 = 1` (the mean of the off-diagonal is over its non-zero entries);
//! 3. normalisation to a correlation matrix: `Sigma_ij / sqrt(Sigma_ii Sigma_jj)`.
//!
//! The score of class `c` is minus the squared Mahalanobis distance between the L2-normalised
//! transformed query and the L2-normalised class mean, under that matrix:
//! `-(x^ - mu^_c)' Sigma_c^-1 (x^ - mu^_c)`.
//!
//! # Few samples: the shared-covariance rule
//!
//! A class with fewer than `min_samples` captures (default [`DEFAULT_MIN_SAMPLES`]) has too little data
//! for its own `d x d` covariance. It uses the pooled within-class covariance of every class instead,
//! `sum_c S_c / sum_c (n_c - 1)`, prepared the same way; if no class has two captures yet, the identity.
//! Once the class reaches `min_samples`, it switches to its own.
//!
//! Cost: one packed `d x d` scatter per class in the state (f32: `2 d (d + 1)` bytes a class, 3.3 MB at
//! d = 1280), and a `d x d` inverse factor per class in memory, rebuilt after each learn (or load) for
//! the classes whose statistics changed.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::linalg;

/// Captures below which a class uses the pooled covariance (see module docs).
pub const DEFAULT_MIN_SAMPLES: u64 = 16;
/// Tukey exponent (FeCAM's 0.5).
pub const TUKEY_BETA: f32 = 0.5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mahalanobis {
    dim: usize,
    min_samples: u64,
    counts: Vec<u64>,
    /// Means of the transformed features (f64, exact).
    means: Vec<Vec<f64>>,
    /// Packed upper triangles of each class's centred scatter, f32 to halve the state.
    scatters: Vec<Vec<f32>>,
    /// Per class: the inverse Cholesky factor of its prepared covariance (`None`: uses the shared one).
    #[serde(skip)]
    own: Vec<Option<Array2<f32>>>,
    #[serde(skip)]
    shared: Option<Array2<f32>>,
    /// Normalised means, `classes x dim`.
    #[serde(skip)]
    unit_means: Array2<f32>,
}

/// Tukey's power transform of raw features.
pub fn tukey(features: ArrayView2<f32>) -> Array2<f32> {
    features.mapv(|x| x.max(0.0).powf(TUKEY_BETA))
}

/// FeCAM's covariance preparation (module docs, steps 2 and 3): two shrinkage passes, then normalisation
/// to a correlation matrix.
pub fn prepare(cov: &Array2<f64>) -> Array2<f64> {
    let d = cov.nrows();
    let mut c = cov.clone();
    for _ in 0..2 {
        let diag_mean = (0..d).map(|i| c[[i, i]]).sum::<f64>() / d as f64;
        let (mut off_sum, mut off_n) = (0.0, 0usize);
        for i in 0..d {
            for j in 0..d {
                if i != j && c[[i, j]] != 0.0 {
                    off_sum += c[[i, j]];
                    off_n += 1;
                }
            }
        }
        let off_mean = if off_n > 0 {
            off_sum / off_n as f64
        } else {
            0.0
        };
        for i in 0..d {
            for j in 0..d {
                c[[i, j]] += if i == j { diag_mean } else { off_mean };
            }
        }
    }
    let sd: Vec<f64> = (0..d).map(|i| c[[i, i]].max(1e-300).sqrt()).collect();
    for i in 0..d {
        for j in 0..d {
            c[[i, j]] /= sd[i] * sd[j];
        }
    }
    c
}

impl Mahalanobis {
    pub fn new(dim: usize, min_samples: u64) -> Self {
        Mahalanobis {
            dim,
            min_samples: min_samples.max(2),
            counts: Vec::new(),
            means: Vec::new(),
            scatters: Vec::new(),
            own: Vec::new(),
            shared: None,
            unit_means: Array2::zeros((0, dim)),
        }
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn add_class(&mut self) {
        self.counts.push(0);
        self.means.push(vec![0.0; self.dim]);
        self.scatters.push(vec![0.0; self.dim * (self.dim + 1) / 2]);
        self.own.push(None);
        self.refresh_means();
    }

    pub fn remove_class(&mut self, class: usize) {
        self.counts.remove(class);
        self.means.remove(class);
        self.scatters.remove(class);
        self.own.remove(class);
        self.refresh_shared();
        self.refresh_means();
    }

    fn scatter(&self, class: usize) -> Array2<f64> {
        let packed: Vec<f64> = self.scatters[class].iter().map(|&v| v as f64).collect();
        linalg::unpack(self.dim, &packed).expect("length checked")
    }

    /// Merges raw features with their class indices; rebuilds what changed.
    pub fn learn(&mut self, features: ArrayView2<f32>, labels: &[usize]) {
        let t = tukey(features);
        let mut changed = Vec::new();
        for (class, rows) in super::group_by_class(t.view(), labels) {
            let (mb, sb) = linalg::scatter(rows.view());
            let mut s = self.scatter(class);
            linalg::merge_scatter(
                self.counts[class],
                &mut self.means[class],
                &mut s,
                rows.nrows() as u64,
                &mb,
                &sb,
            );
            self.counts[class] = self.counts[class].saturating_add(rows.nrows() as u64);
            self.scatters[class] = linalg::pack(s.view())
                .into_iter()
                .map(|v| v as f32)
                .collect();
            changed.push(class);
        }
        for c in changed {
            self.refresh_class(c);
        }
        self.refresh_shared();
        self.refresh_means();
    }

    /// Joins class `from` into class `into` (the caller then removes `from`): exact (Chan's merge of the
    /// two classes' means and scatters, in the Tukey-transformed space they are kept in).
    pub fn merge_class(&mut self, into: usize, from: usize) {
        let mut s = self.scatter(into);
        let (mb, sb, nb) = (
            self.means[from].clone(),
            self.scatter(from),
            self.counts[from],
        );
        linalg::merge_scatter(
            self.counts[into],
            &mut self.means[into],
            &mut s,
            nb,
            &mb,
            &sb,
        );
        self.counts[into] = self.counts[into].saturating_add(nb);
        self.scatters[into] = linalg::pack(s.view())
            .into_iter()
            .map(|v| v as f32)
            .collect();
        self.refresh_class(into);
    }

    /// Rebuilds every derived matrix (after a load).
    pub fn refresh(&mut self) {
        self.own = vec![None; self.classes()];
        for c in 0..self.classes() {
            self.refresh_class(c);
        }
        self.refresh_shared();
        self.refresh_means();
    }

    fn inverse_factor(cov: &Array2<f64>) -> Array2<f32> {
        let (l, _) = linalg::cholesky_jittered(&prepare(cov));
        linalg::lower_inverse(&l).mapv(|v| v as f32)
    }

    fn refresh_class(&mut self, c: usize) {
        let n = self.counts[c];
        self.own[c] = (n >= self.min_samples)
            .then(|| Self::inverse_factor(&(self.scatter(c) / (n - 1) as f64)));
    }

    fn refresh_shared(&mut self) {
        if self.own.iter().all(Option::is_some) {
            self.shared = None;
            return;
        }
        let mut pooled = Array2::<f64>::zeros((self.dim, self.dim));
        let mut dof = 0u64;
        for c in 0..self.classes() {
            if self.counts[c] >= 2 {
                pooled += &self.scatter(c);
                dof += self.counts[c] - 1;
            }
        }
        self.shared = Some(if dof == 0 {
            Array2::eye(self.dim)
        } else {
            Self::inverse_factor(&(pooled / dof as f64))
        });
    }

    fn refresh_means(&mut self) {
        let mut m =
            Array2::from_shape_fn((self.classes(), self.dim), |(c, j)| self.means[c][j] as f32);
        super::normalise_rows(&mut m);
        self.unit_means = m;
    }

    /// Whether a class uses its own covariance (else the shared one).
    pub fn uses_own(&self, class: usize) -> bool {
        self.counts[class] >= self.min_samples
    }

    /// Minus squared Mahalanobis distances `[n, classes]` for raw features.
    pub fn scores(&self, features: ArrayView2<f32>) -> Array2<f32> {
        let mut x = tukey(features);
        super::normalise_rows(&mut x);
        let mut out = Array2::zeros((x.nrows(), self.classes()));
        for c in 0..self.classes() {
            if self.counts[c] == 0 {
                out.column_mut(c).fill(f32::NEG_INFINITY);
                continue;
            }
            let linv = self.own[c]
                .as_ref()
                .or(self.shared.as_ref())
                .expect("refreshed after every change");
            let centred = &x - &self.unit_means.index_axis(Axis(0), c);
            // ||L^-1 (x - mu)||^2 for every row at once: rows of (x - mu) times L^-T.
            let z = centred.dot(&linv.t());
            for (o, r) in out.column_mut(c).iter_mut().zip(z.rows()) {
                *o = -r.dot(&r);
            }
        }
        out
    }

    pub fn check(&self, dim: usize) -> Result<(), String> {
        let c = self.counts.len();
        let p = dim * (dim + 1) / 2;
        if self.dim != dim
            || self.means.len() != c
            || self.scatters.len() != c
            || self.means.iter().any(|m| m.len() != dim)
            || self.scatters.iter().any(|s| s.len() != p)
        {
            return Err("mahalanobis head has inconsistent shapes".into());
        }
        if self.scatters.iter().flatten().any(|v| !v.is_finite())
            || self.means.iter().flatten().any(|v| !v.is_finite())
        {
            return Err("mahalanobis head has non-finite statistics".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The FeCAM recipe written out directly on all the data, with a Gauss-Jordan inverse.
    fn reference_distance(
        rows: &[[f32; 2]],
        q: [f32; 2],
        pooled_from: Option<&[Vec<[f32; 2]>]>,
    ) -> f64 {
        let t = |v: [f32; 2]| [(v[0].max(0.0) as f64).sqrt(), (v[1].max(0.0) as f64).sqrt()];
        let mean = |rs: &[[f32; 2]]| {
            let mut m = [0.0; 2];
            for r in rs {
                let r = t(*r);
                m[0] += r[0] / rs.len() as f64;
                m[1] += r[1] / rs.len() as f64;
            }
            m
        };
        let scat = |rs: &[[f32; 2]]| {
            let m = mean(rs);
            let mut s = [[0.0; 2]; 2];
            for r in rs {
                let r = t(*r);
                for i in 0..2 {
                    for j in 0..2 {
                        s[i][j] += (r[i] - m[i]) * (r[j] - m[j]);
                    }
                }
            }
            s
        };
        let cov = match pooled_from {
            None => {
                let s = scat(rows);
                let k = (rows.len() - 1) as f64;
                [[s[0][0] / k, s[0][1] / k], [s[1][0] / k, s[1][1] / k]]
            }
            Some(all) => {
                let mut s = [[0.0; 2]; 2];
                let mut k = 0.0;
                for rs in all {
                    let si = scat(rs);
                    for i in 0..2 {
                        for j in 0..2 {
                            s[i][j] += si[i][j];
                        }
                    }
                    k += (rs.len() - 1) as f64;
                }
                [[s[0][0] / k, s[0][1] / k], [s[1][0] / k, s[1][1] / k]]
            }
        };
        // Shrink twice (2 x 2: mean diagonal, the one off-diagonal value), then correlation.
        let mut c = cov;
        for _ in 0..2 {
            let dm = (c[0][0] + c[1][1]) / 2.0;
            let om = c[0][1];
            c = [[c[0][0] + dm, c[0][1] + om], [c[1][0] + om, c[1][1] + dm]];
        }
        let r = c[0][1] / (c[0][0] * c[1][1]).sqrt();
        let inv_det = 1.0 / (1.0 - r * r);
        let unit = |v: [f64; 2]| {
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            [v[0] / n, v[1] / n]
        };
        let (x, m) = (unit(t(q)), unit(mean(rows)));
        let d = [x[0] - m[0], x[1] - m[1]];
        inv_det * (d[0] * d[0] - 2.0 * r * d[0] * d[1] + d[1] * d[1])
    }

    #[test]
    fn distances_match_the_fecam_recipe_written_out() {
        let a = vec![[1.0f32, 4.0], [2.0, 3.0], [1.5, 5.0], [0.5, 4.5]];
        let b = vec![[4.0f32, 1.0], [5.0, 0.5], [3.5, 2.0]];
        let mut h = Mahalanobis::new(2, 4);
        h.add_class();
        h.add_class();
        let x = Array2::from_shape_vec((7, 2), a.iter().chain(&b).flatten().copied().collect())
            .unwrap();
        h.learn(x.slice(ndarray::s![..2, ..]), &[0, 0]);
        h.learn(x.slice(ndarray::s![2.., ..]), &[0, 0, 1, 1, 1]);
        assert!(h.uses_own(0) && !h.uses_own(1));
        let q = [2.0f32, 2.0];
        let got = h.scores(array![[q[0], q[1]]].view());
        let want_a = reference_distance(&a, q, None);
        let want_b = reference_distance(&b, q, Some(&[a.clone(), b.clone()]));
        assert!(
            (-got[[0, 0]] as f64 - want_a).abs() < 1e-4,
            "{got} vs {want_a}"
        );
        assert!(
            (-got[[0, 1]] as f64 - want_b).abs() < 1e-4,
            "{got} vs {want_b}"
        );
    }

    #[test]
    fn a_refresh_after_load_gives_the_same_scores() {
        let x = array![
            [1.0f32, 2.0, 0.0],
            [2.0, 1.0, 0.5],
            [0.0, 3.0, 1.0],
            [3.0, 0.0, 2.0]
        ];
        let mut h = Mahalanobis::new(3, 2);
        h.add_class();
        h.add_class();
        h.learn(x.view(), &[0, 0, 1, 1]);
        let bytes = postcard::to_allocvec(&h).unwrap();
        let mut back: Mahalanobis = postcard::from_bytes(&bytes).unwrap();
        back.refresh();
        let q = array![[1.0f32, 1.0, 1.0]];
        assert_eq!(h.scores(q.view()), back.scores(q.view()));
    }
}
