//! Streaming linear discriminant analysis (Hayes & Kanan, "Lifelong Machine Learning with Deep
//! Streaming Linear Discriminant Analysis", CVPRW 2020) over raw backbone features.
//!
//! State: each class's running mean and count, and one shared within-class scatter matrix
//! `S = sum_c sum_{i in c} (x_i - mu_c)(x_i - mu_c)'`. The shared covariance is `Sigma = S / N` over the
//! `N` samples seen. Prediction uses the shrunk precision `Lambda = ((1 - e) Sigma + e I)^-1` (the paper's
//! shrinkage `e = 1e-4`) as a linear classifier: `w_c = Lambda mu_c`, `b_c = -1/2 mu_c' Lambda mu_c`,
//! score `w_c . x + b_c`.
//!
//! Updates are exact: a batch is merged with the parallel form of Welford's update, which equals adding its
//! samples one by one with each class's own count. (The paper's per-sample rule weights the outer product
//! by the *total* count, `n / (n + 1)`, which only approximates the pooled scatter; ours is the pooled
//! scatter itself, so learning in any order or batching gives the same head.) The classifier `(w, b)` is
//! solved (Cholesky, f64) after each learn and stored, so classifying needs no factorisation.
//!
//! Forgetting a class drops its mean; its samples stay in `S` (there is no per-class scatter to subtract),
//! where they still describe within-class spread.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::linalg::{self, Symmetric};

/// Hayes & Kanan's default shrinkage.
pub const DEFAULT_SHRINKAGE: f64 = 1e-4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slda {
    dim: usize,
    shrinkage: f64,
    counts: Vec<u64>,
    means: Vec<Vec<f64>>,
    scatter: Symmetric,
    /// Samples merged into `scatter` (forgotten classes' included).
    seen: u64,
    /// Solved classifier: `classes x dim` weights and one bias per class.
    #[serde(with = "linalg::matrix_f32")]
    weights: Array2<f32>,
    bias: Vec<f32>,
}

impl Slda {
    pub fn new(dim: usize, shrinkage: f64) -> Self {
        Slda {
            dim,
            shrinkage,
            counts: Vec::new(),
            means: Vec::new(),
            scatter: Symmetric::zeros(dim),
            seen: 0,
            weights: Array2::zeros((0, dim)),
            bias: Vec::new(),
        }
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn add_class(&mut self) {
        self.counts.push(0);
        self.means.push(vec![0.0; self.dim]);
        self.solve();
    }

    pub fn remove_class(&mut self, class: usize) {
        self.counts.remove(class);
        self.means.remove(class);
        self.solve();
    }

    /// Merges raw features with their class indices, then re-solves the classifier.
    pub fn learn(&mut self, features: ArrayView2<f32>, labels: &[usize]) {
        for (class, rows) in super::group_by_class(features, labels) {
            let (mb, sb) = linalg::scatter(rows.view());
            let nb = rows.nrows() as u64;
            linalg::merge_scatter(
                self.counts[class],
                &mut self.means[class],
                &mut self.scatter.0,
                nb,
                &mb,
                &sb,
            );
            self.counts[class] = self.counts[class].saturating_add(nb);
            self.seen = self.seen.saturating_add(nb);
        }
        self.solve();
    }

    /// Joins class `from` into class `into` (the caller then removes `from`): exact, since the shared
    /// within-class scatter of the joint class is the two classes' plus the spread between their means.
    pub fn merge_class(&mut self, into: usize, from: usize) {
        let (mb, nb) = (self.means[from].clone(), self.counts[from]);
        linalg::merge_means(
            self.counts[into],
            &mut self.means[into],
            &mut self.scatter.0,
            nb,
            &mb,
        );
        self.counts[into] = self.counts[into].saturating_add(nb);
    }

    /// The shared covariance `S / N` (zero before any sample).
    pub fn covariance(&self) -> Array2<f64> {
        &self.scatter.0 / (self.seen.max(1) as f64)
    }

    fn solve(&mut self) {
        let c = self.classes();
        let e = self.shrinkage;
        let mut a = self.covariance() * (1.0 - e);
        for i in 0..self.dim {
            a[[i, i]] += e;
        }
        let (l, _) = linalg::cholesky_jittered(&a);
        let mut w = Array2::from_shape_fn((self.dim, c), |(i, k)| self.means[k][i]);
        linalg::cholesky_solve(&l, &mut w);
        self.weights = w.t().mapv(|v| v as f32);
        self.bias = (0..c)
            .map(|k| {
                let q: f64 = (0..self.dim).map(|i| self.means[k][i] * w[[i, k]]).sum();
                if self.counts[k] == 0 {
                    f32::NEG_INFINITY
                } else {
                    (-0.5 * q) as f32
                }
            })
            .collect();
    }

    /// Linear discriminant scores `[n, classes]` for raw features.
    pub fn scores(&self, features: ArrayView2<f32>) -> Array2<f32> {
        let mut s = features.dot(&self.weights.t());
        for mut row in s.rows_mut() {
            row += &ndarray::ArrayView1::from(&self.bias);
        }
        s
    }

    pub fn check(&self, dim: usize) -> Result<(), String> {
        let c = self.counts.len();
        if self.dim != dim
            || self.scatter.dim() != dim
            || self.means.len() != c
            || self.means.iter().any(|m| m.len() != dim)
            || self.weights.dim() != (c, dim)
            || self.bias.len() != c
        {
            return Err("slda head has inconsistent shapes".into());
        }
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return Err(format!("slda shrinkage {} is not in 0..=1", self.shrinkage));
        }
        if self.scatter.0.iter().any(|v| !v.is_finite())
            || self.means.iter().flatten().any(|v| !v.is_finite())
            || self
                .weights
                .iter()
                .chain(&self.bias)
                .any(|v| !v.is_finite())
        {
            return Err("slda head has non-finite statistics or weights".into());
        }
        if self.counts.iter().fold(0u64, |a, &n| a.saturating_add(n)) > self.seen {
            return Err("slda head counts more captures than it has seen".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Textbook LDA on all the data at once: class means, pooled covariance, the shrunk precision by a
    /// Gauss-Jordan inverse (independent of the Cholesky path), and discriminants `x' L mu - mu' L mu / 2`.
    #[allow(clippy::needless_range_loop)] // Written as the textbook's index loops on purpose.
    fn reference(x: &Array2<f32>, y: &[usize], classes: usize, e: f64, q: &[f64]) -> Vec<f64> {
        let d = x.ncols();
        let mut means = vec![vec![0.0; d]; classes];
        let mut counts = vec![0.0; classes];
        for (r, &c) in x.rows().into_iter().zip(y) {
            counts[c] += 1.0;
            for j in 0..d {
                means[c][j] += r[j] as f64;
            }
        }
        for c in 0..classes {
            means[c].iter_mut().for_each(|m| *m /= counts[c]);
        }
        let mut cov = vec![vec![0.0; d]; d];
        for (r, &c) in x.rows().into_iter().zip(y) {
            for i in 0..d {
                for j in 0..d {
                    cov[i][j] += (r[i] as f64 - means[c][i]) * (r[j] as f64 - means[c][j]);
                }
            }
        }
        let n = y.len() as f64;
        // Augmented [A | I], Gauss-Jordan with partial pivoting.
        let mut aug = vec![vec![0.0; 2 * d]; d];
        for i in 0..d {
            for j in 0..d {
                aug[i][j] = (1.0 - e) * cov[i][j] / n + if i == j { e } else { 0.0 };
            }
            aug[i][d + i] = 1.0;
        }
        for col in 0..d {
            let p = (col..d)
                .max_by(|&a, &b| aug[a][col].abs().total_cmp(&aug[b][col].abs()))
                .unwrap();
            aug.swap(col, p);
            let piv = aug[col][col];
            aug[col].iter_mut().for_each(|v| *v /= piv);
            for r in 0..d {
                if r != col {
                    let f = aug[r][col];
                    for k in 0..2 * d {
                        aug[r][k] -= f * aug[col][k];
                    }
                }
            }
        }
        let prec = |i: usize, j: usize| aug[i][d + j];
        (0..classes)
            .map(|c| {
                let mut s = 0.0;
                for i in 0..d {
                    for j in 0..d {
                        s += (q[i] - 0.5 * means[c][i]) * prec(i, j) * means[c][j];
                    }
                }
                s
            })
            .collect()
    }

    #[test]
    fn streaming_batches_equal_textbook_lda_on_all_data() {
        let x = array![
            [1.0f32, 2.0, 0.5],
            [1.5, 1.8, 0.7],
            [0.8, 2.4, 0.1],
            [3.0, 0.5, 1.0],
            [2.6, 0.9, 1.4],
            [3.3, 0.2, 0.6],
            [0.1, 0.1, 3.0],
            [0.4, -0.2, 2.5],
        ];
        let y = [0, 0, 0, 1, 1, 1, 2, 2];
        let mut h = Slda::new(3, 0.1);
        for _ in 0..3 {
            h.add_class();
        }
        // In three uneven batches, classes interleaved.
        h.learn(x.slice(ndarray::s![..2, ..]), &y[..2]);
        h.learn(x.slice(ndarray::s![2..5, ..]), &y[2..5]);
        h.learn(x.slice(ndarray::s![5.., ..]), &y[5..]);
        let q = [1.2f32, 1.1, 0.9];
        let got = h.scores(
            ndarray::Array2::from_shape_vec((1, 3), q.to_vec())
                .unwrap()
                .view(),
        );
        let want = reference(&x, &y, 3, 0.1, &q.map(|v| v as f64));
        for c in 0..3 {
            assert!(
                (got[[0, c]] as f64 - want[c]).abs() < 1e-4,
                "{got} vs {want:?}"
            );
        }
    }

    #[test]
    fn forgetting_keeps_the_other_classes_scores() {
        let x = array![
            [1.0f32, 0.0],
            [1.2, 0.1],
            [0.0, 1.0],
            [0.1, 1.3],
            [-1.0, -1.0],
            [-1.1, -0.8]
        ];
        let mut h = Slda::new(2, DEFAULT_SHRINKAGE);
        for _ in 0..3 {
            h.add_class();
        }
        h.learn(x.view(), &[0, 0, 1, 1, 2, 2]);
        let q = array![[0.9f32, 0.2]];
        let before = h.scores(q.view());
        h.remove_class(1);
        let after = h.scores(q.view());
        assert!((before[[0, 0]] - after[[0, 0]]).abs() < 1e-4);
        assert!((before[[0, 2]] - after[[0, 1]]).abs() < 1e-4);
    }
}
