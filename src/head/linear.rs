//! A softmax linear head trained by SGD on the new data, with the classic ways of not forgetting:
//!
//! - `replay` (ER, Chaudhry et al. 2019): every mini-batch of new data is joined by an equal-sized batch
//!   drawn from the feature memory (which is class-balanced by construction, see [`crate::memory`]).
//! - `ewc` (Kirkpatrick et al. 2017), weight `lambda`: a penalty `lambda / 2 sum_i F_i (theta_i -
//!   theta*_i)^2`, `theta*` the weights before this learn call and `F` the diagonal empirical Fisher
//!   (mean squared per-sample gradient of the log-likelihood) summed over every earlier call. It is
//!   applied as the exact proximal step of the penalty after each SGD step (a plain gradient term
//!   diverges once `lr lambda F > 2`).
//! - `agem` (Chaudhry et al. 2019): the gradient `g` of each step is projected when it would raise the loss
//!   on a memory batch: if `g . g_ref < 0` then `g <- g - (g . g_ref / g_ref . g_ref) g_ref`.
//! - `lwf` (Li & Hoiem 2016), temperature `T`: on the new data, the outputs of the classes learnt before
//!   are distilled from the head as it was before this call: `T^2 KL(softmax(z_old / T) || softmax(z / T))`
//!   over those classes, and the classification loss is the cross-entropy over this task's classes only
//!   (as PyCIL's class-incremental LwF does), so the new classes are learnt without pushing the old
//!   logits down. A call that brings a single class uses the full cross-entropy (over one class the local
//!   loss is constant).
//!
//! One learn call is one task: its features and labels are the new data. Inputs are the L2-normalised
//! backbone features. Without replay (or LwF), a call that holds a single class has nothing to contrast it
//! with and mostly teaches the head to answer that class: learn several classes per call, or use replay.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::linalg;
use crate::memory::FeatureMemory;

/// Training settings, fixed when the head is created.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearOptions {
    pub epochs: u32,
    pub lr: f32,
    pub batch: u32,
    pub replay: bool,
    /// EWC penalty weight; 0 turns EWC off.
    pub ewc: f32,
    pub agem: bool,
    /// LwF temperature; 0 turns LwF off.
    pub lwf: f32,
    pub seed: u64,
}

impl LinearOptions {
    /// Settings within [`super::bounds`].
    pub fn validate(&self) -> Result<(), String> {
        use super::bounds::{rate, within, MAX_BATCH, MAX_EPOCHS};
        if self.epochs > MAX_EPOCHS {
            return Err(format!(
                "linear epochs {} is over {MAX_EPOCHS}",
                self.epochs
            ));
        }
        within("linear batch", self.batch as u64, MAX_BATCH as u64)?;
        rate("linear lr", self.lr)?;
        rate("linear ewc", self.ewc)?;
        rate("linear lwf", self.lwf)
    }
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            epochs: 30,
            lr: 0.5,
            batch: 32,
            replay: false,
            ewc: 0.0,
            agem: false,
            lwf: 0.0,
            seed: 0,
        }
    }
}

/// Momentum of the SGD updates.
const MOMENTUM: f32 = 0.9;
/// Memory rows in an A-GEM reference batch.
const AGEM_BATCH: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Linear {
    dim: usize,
    options: LinearOptions,
    #[serde(with = "linalg::matrix_f32")]
    weights: Array2<f32>,
    bias: Vec<f32>,
    /// Whether each class has been trained (LwF distils only those).
    trained: Vec<bool>,
    /// Diagonal Fisher (EWC only; empty rows otherwise), same shape as `weights` / `bias`.
    #[serde(with = "linalg::matrix_f32")]
    fisher: Array2<f32>,
    fisher_bias: Vec<f32>,
    /// Learn calls so far (varies the shuffling seed).
    calls: u64,
}

/// A small xorshift generator for shuffling and sampling (seeded, platform-independent). Not for secrets:
/// the differential-privacy noise comes from the OS (see [`super::dp`]).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }

    /// Uniform in (0, 1].
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Row-wise softmax of `z / t`.
pub(crate) fn softmax(z: &Array2<f32>, t: f32) -> Array2<f32> {
    let mut p = z / t;
    for mut row in p.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
    }
    p
}

/// Gradient, with respect to the student's logits `z`, of the LwF loss averaged over the rows:
/// `T^2 KL(softmax(z_old / T) || softmax(z / T))`, which is `T (softmax(z / T) - softmax(z_old / T)) / n`.
fn distill_grad(z: &Array2<f32>, z_old: &Array2<f32>, t: f32) -> Array2<f32> {
    (softmax(z, t) - softmax(z_old, t)) * (t / z.nrows().max(1) as f32)
}

/// Gradient of a linear layer (`dW = g' x`, `db = sum g`) from the logit gradients `g`.
pub(crate) fn layer_grad(g: &Array2<f32>, x: ArrayView2<f32>) -> (Array2<f32>, Array1<f32>) {
    (g.t().dot(&x), g.sum_axis(Axis(0)))
}

/// Mean cross-entropy gradients with respect to the logits `z`: `(softmax(z) - onehot(y)) / n`.
pub(crate) fn ce_logit_grad(z: &Array2<f32>, y: &[usize]) -> Array2<f32> {
    let mut g = softmax(z, 1.0);
    for (mut row, &c) in g.rows_mut().into_iter().zip(y) {
        row[c] -= 1.0;
    }
    g / (y.len().max(1) as f32)
}

/// Mean cross-entropy over the columns `task` only (a task-local loss); the other logits get no gradient.
pub(crate) fn local_ce_logit_grad(z: &Array2<f32>, y: &[usize], task: &[usize]) -> Array2<f32> {
    let mut p = softmax(&z.select(Axis(1), task), 1.0);
    for (mut row, &c) in p.rows_mut().into_iter().zip(y) {
        let at = task
            .iter()
            .position(|&k| k == c)
            .expect("label is in the task");
        row[at] -= 1.0;
    }
    let mut g = Array2::zeros((y.len(), z.ncols()));
    for (j, &k) in task.iter().enumerate() {
        g.column_mut(k)
            .assign(&(&p.column(j) / y.len().max(1) as f32));
    }
    g
}

impl Linear {
    pub fn new(dim: usize, options: LinearOptions) -> Self {
        Linear {
            dim,
            options,
            weights: Array2::zeros((0, dim)),
            bias: Vec::new(),
            trained: Vec::new(),
            fisher: Array2::zeros((0, dim)),
            fisher_bias: Vec::new(),
            calls: 0,
        }
    }

    pub fn options(&self) -> &LinearOptions {
        &self.options
    }

    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    pub fn add_class(&mut self) {
        let z = Array2::zeros((1, self.dim));
        self.weights = ndarray::concatenate![Axis(0), self.weights, z];
        self.fisher = ndarray::concatenate![Axis(0), self.fisher, z];
        self.bias.push(0.0);
        self.fisher_bias.push(0.0);
        self.trained.push(false);
    }

    pub fn remove_class(&mut self, class: usize) {
        self.weights.remove_index(Axis(0), class);
        self.fisher.remove_index(Axis(0), class);
        self.bias.remove(class);
        self.fisher_bias.remove(class);
        self.trained.remove(class);
    }

    /// Logits `[n, classes]` of already-normalised inputs.
    pub(crate) fn logits(w: &Array2<f32>, b: &[f32], x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = x.dot(&w.t());
        let b = ndarray::ArrayView1::from(b);
        for mut row in z.rows_mut() {
            row += &b;
        }
        z
    }

    /// Cross-entropy logit gradients `(softmax(z) - onehot(y)) / n`.
    fn ce_grad(&self, x: ArrayView2<f32>, y: &[usize]) -> Array2<f32> {
        ce_logit_grad(&Self::logits(&self.weights, &self.bias, x), y)
    }

    /// Cross-entropy over the task's own classes only (LwF's local classification loss): the other
    /// logits get no gradient, so learning the new classes does not push the old ones down; the
    /// distillation term looks after those.
    fn local_ce_grad(&self, x: ArrayView2<f32>, y: &[usize], task: &[usize]) -> Array2<f32> {
        local_ce_logit_grad(&Self::logits(&self.weights, &self.bias, x), y, task)
    }

    /// Trains on raw features with their class indices (one task), using `memory` for replay / A-GEM.
    pub fn learn(&mut self, features: ArrayView2<f32>, labels: &[usize], memory: &FeatureMemory) {
        let o = self.options;
        let c = self.classes();
        let mut x = features.to_owned();
        super::normalise_rows(&mut x);
        // The memory as training rows, normalised like the inputs.
        let (mem_x, mem_y) = {
            let mut rows = Vec::new();
            let mut ys = Vec::new();
            // The learner keeps the memory's classes in step with the head's.
            for k in 0..if memory.is_empty() { 0 } else { c } {
                let f = memory.class_features(k);
                ys.extend(std::iter::repeat_n(k, f.nrows()));
                rows.push(f);
            }
            let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
            let mut m = if views.is_empty() {
                Array2::zeros((0, self.dim))
            } else {
                ndarray::concatenate(Axis(0), &views).expect("same width")
            };
            super::normalise_rows(&mut m);
            (m, ys)
        };
        let anchor_w = self.weights.clone();
        let anchor_b = Array1::from(self.bias.clone());
        let new_classes: Vec<bool> = (0..c).map(|k| labels.contains(&k)).collect();
        let old: Vec<usize> = (0..c)
            .filter(|&k| self.trained[k] && !new_classes[k])
            .collect();
        let task: Vec<usize> = (0..c).filter(|&k| new_classes[k]).collect();
        let mut rng = Rng(o.seed
            ^ 0x9E37_79B9_7F4A_7C15
            ^ self
                .calls
                .wrapping_add(1)
                .wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut vel_w = Array2::<f32>::zeros(self.weights.raw_dim());
        let mut vel_b = Array1::<f32>::zeros(c);
        let mut order: Vec<usize> = (0..labels.len()).collect();
        let bs = o.batch.max(1) as usize;
        for _ in 0..o.epochs {
            rng.shuffle(&mut order);
            for chunk in order.chunks(bs) {
                let xb = x.select(Axis(0), chunk);
                let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
                // Task-local loss only when the task has two classes or more: over one class it is
                // constant and would teach nothing.
                let mut g = if o.lwf > 0.0 && !old.is_empty() && task.len() >= 2 {
                    self.local_ce_grad(xb.view(), &yb, &task)
                } else {
                    self.ce_grad(xb.view(), &yb)
                };
                let (mut gw, mut gb) = layer_grad(&g, xb.view());
                if o.replay && !mem_y.is_empty() {
                    let pick: Vec<usize> = (0..bs).map(|_| rng.below(mem_y.len())).collect();
                    let xr = mem_x.select(Axis(0), &pick);
                    let yr: Vec<usize> = pick.iter().map(|&i| mem_y[i]).collect();
                    let gr = self.ce_grad(xr.view(), &yr);
                    let (w, b) = layer_grad(&gr, xr.view());
                    gw += &w;
                    gb += &b;
                }
                if o.lwf > 0.0 && !old.is_empty() {
                    // d/dz of T^2 KL(q || p_T) over the old classes is T (p_T - q), per sample.
                    let t = o.lwf;
                    let z_old =
                        Self::logits(&anchor_w, anchor_b.as_slice().expect("vec"), xb.view())
                            .select(Axis(1), &old);
                    let z_new =
                        Self::logits(&self.weights, &self.bias, xb.view()).select(Axis(1), &old);
                    let gd = distill_grad(&z_new, &z_old, t);
                    g = Array2::zeros((chunk.len(), c));
                    for (j, &k) in old.iter().enumerate() {
                        g.column_mut(k).assign(&gd.column(j));
                    }
                    let (w, b) = layer_grad(&g, xb.view());
                    gw += &w;
                    gb += &b;
                }
                if o.agem && !mem_y.is_empty() {
                    let pick: Vec<usize> = (0..AGEM_BATCH.min(mem_y.len()))
                        .map(|_| rng.below(mem_y.len()))
                        .collect();
                    let xr = mem_x.select(Axis(0), &pick);
                    let yr: Vec<usize> = pick.iter().map(|&i| mem_y[i]).collect();
                    let (rw, rb) = layer_grad(&self.ce_grad(xr.view(), &yr), xr.view());
                    project(&mut gw, &mut gb, &rw, &rb);
                }
                vel_w = vel_w * MOMENTUM + &gw;
                vel_b = vel_b * MOMENTUM + &gb;
                self.weights.scaled_add(-o.lr, &vel_w);
                for (b, v) in self.bias.iter_mut().zip(&vel_b) {
                    *b -= o.lr * v;
                }
                if o.ewc > 0.0 {
                    // The EWC penalty as an exact proximal step: theta <- argmin of
                    // |theta - theta'|^2 / (2 lr) + lambda/2 F (theta - theta*)^2, i.e.
                    // (theta' + lr lambda F theta*) / (1 + lr lambda F): stable for any lambda.
                    let k = o.lr * o.ewc;
                    ndarray::Zip::from(&mut self.weights)
                        .and(&self.fisher)
                        .and(&anchor_w)
                        .for_each(|w, &f, &a| *w = (*w + k * f * a) / (1.0 + k * f));
                    for ((b, &f), &a) in self.bias.iter_mut().zip(&self.fisher_bias).zip(&anchor_b)
                    {
                        *b = (*b + k * f * a) / (1.0 + k * f);
                    }
                }
            }
        }
        if o.ewc > 0.0 {
            self.accumulate_fisher(x.view(), labels);
        }
        for &l in labels {
            self.trained[l] = true;
        }
        self.calls = self.calls.wrapping_add(1);
    }

    /// Adds this task's diagonal empirical Fisher to the running one.
    fn accumulate_fisher(&mut self, x: ArrayView2<f32>, labels: &[usize]) {
        let n = labels.len().max(1) as f32;
        let p = softmax(&Self::logits(&self.weights, &self.bias, x), 1.0);
        for (i, &y) in labels.iter().enumerate() {
            for k in 0..self.classes() {
                let gk = p[[i, k]] - f32::from(u8::from(k == y));
                let mut row = self.fisher.row_mut(k);
                row.scaled_add(gk * gk / n, &x.row(i).mapv(|v| v * v));
                self.fisher_bias[k] += gk * gk / n;
            }
        }
    }

    /// Softmax probabilities `[n, classes]` for raw features.
    pub fn scores(&self, features: ArrayView2<f32>) -> Array2<f32> {
        let mut x = features.to_owned();
        super::normalise_rows(&mut x);
        softmax(&Self::logits(&self.weights, &self.bias, x.view()), 1.0)
    }

    pub fn check(&self, dim: usize) -> Result<(), String> {
        self.options.validate()?;
        let c = self.bias.len();
        if self.dim != dim
            || self.weights.dim() != (c, dim)
            || self.fisher.dim() != (c, dim)
            || self.fisher_bias.len() != c
            || self.trained.len() != c
        {
            return Err("linear head has inconsistent shapes".into());
        }
        if self
            .weights
            .iter()
            .chain(&self.bias)
            .chain(&self.fisher)
            .chain(&self.fisher_bias)
            .any(|v| !v.is_finite())
        {
            return Err("linear head has non-finite weights or Fisher information".into());
        }
        Ok(())
    }

    pub fn weights(&self) -> (&Array2<f32>, &[f32]) {
        (&self.weights, &self.bias)
    }
}

/// A-GEM's projection of `(gw, gb)` against the reference gradient `(rw, rb)`, in place.
pub fn project(gw: &mut Array2<f32>, gb: &mut Array1<f32>, rw: &Array2<f32>, rb: &Array1<f32>) {
    let dot = (&*gw * rw).sum() + gb.dot(rb);
    let norm2 = (rw * rw).sum() + rb.dot(rb);
    if dot < 0.0 && norm2 > 0.0 {
        let f = dot / norm2;
        gw.scaled_add(-f, rw);
        gb.scaled_add(-f, rb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Storage;
    use ndarray::array;

    /// Mean cross-entropy written out directly, in f64.
    fn ce_loss(w: &Array2<f64>, b: &[f64], x: &Array2<f32>, y: &[usize]) -> f64 {
        let mut total = 0.0;
        for (r, &c) in x.rows().into_iter().zip(y) {
            let z: Vec<f64> = (0..b.len())
                .map(|k| b[k] + (0..x.ncols()).map(|j| w[[k, j]] * r[j] as f64).sum::<f64>())
                .collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            total += lse - z[c];
        }
        total / y.len() as f64
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let mut h = Linear::new(3, LinearOptions::default());
        for _ in 0..3 {
            h.add_class();
        }
        h.weights = array![[0.2, -0.1, 0.4], [0.0, 0.3, -0.2], [-0.3, 0.1, 0.1]];
        h.bias = vec![0.1, -0.2, 0.05];
        let x = array![
            [0.5f32, 0.1, -0.3],
            [0.2, 0.7, 0.1],
            [-0.4, 0.2, 0.6],
            [0.3, 0.3, 0.3]
        ];
        let y = [0, 1, 2, 1];
        let (gw, gb) = layer_grad(&h.ce_grad(x.view(), &y), x.view());
        let w64 = h.weights.mapv(f64::from);
        let b64: Vec<f64> = h.bias.iter().map(|&v| v as f64).collect();
        let eps = 1e-5;
        for k in 0..3 {
            for j in 0..3 {
                let (mut up, mut down) = (w64.clone(), w64.clone());
                up[[k, j]] += eps;
                down[[k, j]] -= eps;
                let num = (ce_loss(&up, &b64, &x, &y) - ce_loss(&down, &b64, &x, &y)) / (2.0 * eps);
                assert!(
                    (num - gw[[k, j]] as f64).abs() < 1e-5,
                    "dW[{k},{j}] {num} vs {}",
                    gw[[k, j]]
                );
            }
            let (mut up, mut down) = (b64.clone(), b64.clone());
            up[k] += eps;
            down[k] -= eps;
            let num = (ce_loss(&w64, &up, &x, &y) - ce_loss(&w64, &down, &x, &y)) / (2.0 * eps);
            assert!((num - gb[k] as f64).abs() < 1e-5);
        }
    }

    #[test]
    fn local_cross_entropy_touches_only_the_task_classes() {
        let mut h = Linear::new(2, LinearOptions::default());
        for _ in 0..3 {
            h.add_class();
        }
        h.weights = array![[0.5, -0.2], [0.1, 0.3], [-0.4, 0.2]];
        let x = array![[1.0f32, 0.5], [0.2, 0.9]];
        let g = h.local_ce_grad(x.view(), &[1, 2], &[1, 2]);
        // Reference by hand: logits over classes 1 and 2 only, softmax, minus one-hot, divided by n.
        for (i, &y) in [1usize, 2].iter().enumerate() {
            let z1 = 0.1 * x[[i, 0]] + 0.3 * x[[i, 1]];
            let z2 = -0.4 * x[[i, 0]] + 0.2 * x[[i, 1]];
            let p1 = z1.exp() / (z1.exp() + z2.exp());
            let want = [
                0.0,
                (p1 - f32::from(u8::from(y == 1))) / 2.0,
                (1.0 - p1 - f32::from(u8::from(y == 2))) / 2.0,
            ];
            for k in 0..3 {
                assert!((g[[i, k]] - want[k]).abs() < 1e-6, "{g}");
            }
        }
    }

    #[test]
    fn distillation_gradient_matches_finite_differences_of_t2_kl() {
        let z = array![[0.3f32, -0.2, 0.9], [1.0, 0.1, -0.5]];
        let z_old = array![[0.5f32, 0.4, -0.1], [-0.2, 0.8, 0.3]];
        let t = 2.0f32;
        let loss = |z: &Array2<f64>| -> f64 {
            let mut total = 0.0;
            for i in 0..2 {
                let sm = |row: Vec<f64>| {
                    let s: f64 = row.iter().map(|v| (v / t as f64).exp()).sum();
                    row.iter()
                        .map(|v| (v / t as f64).exp() / s)
                        .collect::<Vec<_>>()
                };
                let q = sm(z_old.row(i).iter().map(|&v| v as f64).collect());
                let p = sm(z.row(i).to_vec());
                total +=
                    (t * t) as f64 * q.iter().zip(&p).map(|(q, p)| q * (q / p).ln()).sum::<f64>();
            }
            total / 2.0
        };
        let g = distill_grad(&z, &z_old, t);
        let z64 = z.mapv(f64::from);
        for i in 0..2 {
            for k in 0..3 {
                let (mut up, mut down) = (z64.clone(), z64.clone());
                up[[i, k]] += 1e-5;
                down[[i, k]] -= 1e-5;
                let num = (loss(&up) - loss(&down)) / 2e-5;
                assert!(
                    (num - g[[i, k]] as f64).abs() < 1e-5,
                    "{num} vs {}",
                    g[[i, k]]
                );
            }
        }
    }

    #[test]
    fn agem_projection_is_the_closed_form() {
        // g = (1, 0 | 0), g_ref = (-1, 1 | 0): g.g_ref = -1, |g_ref|^2 = 2, so g - (-1/2) g_ref = (0.5, 0.5).
        let mut gw = array![[1.0f32, 0.0]];
        let mut gb = array![0.0f32];
        project(&mut gw, &mut gb, &array![[-1.0, 1.0]], &array![0.0]);
        assert_eq!(gw, array![[0.5, 0.5]]);
        // No conflict: unchanged.
        let mut gw2 = array![[1.0f32, 0.0]];
        project(&mut gw2, &mut gb, &array![[1.0, 1.0]], &array![0.0]);
        assert_eq!(gw2, array![[1.0, 0.0]]);
    }

    /// Four classes on four axes; learn {0, 1}, then {2, 3}. Returns the accuracy on the old pair
    /// afterwards and how far the old classes' weights moved in the second task.
    fn old_accuracy(options: LinearOptions) -> (f64, f32) {
        let d = 8;
        let data = |n: usize, classes: [usize; 2], seed: usize| {
            let y: Vec<usize> = (0..n).map(|i| classes[i % 2]).collect();
            let x = Array2::from_shape_fn((n, d), |(i, j)| {
                let noise = (((i + seed) * 31 + j * 17) % 13) as f32 / 26.0;
                if j == y[i] {
                    2.0 + noise
                } else {
                    noise
                }
            });
            (x, y)
        };
        let mut memory = FeatureMemory::new(8 * 4 * d as u64 * 4, Storage::F32, d);
        let mut h = Linear::new(d, options);
        for _ in 0..4 {
            h.add_class();
            memory.add_class();
        }
        let (x1, y1) = data(40, [0, 1], 0);
        h.learn(x1.view(), &y1, &memory);
        for c in 0..2 {
            let idx: Vec<usize> = (0..40).filter(|&i| y1[i] == c).collect();
            let rows = x1.select(Axis(0), &idx);
            let mut target = vec![0.0; d];
            target[c] = 1.0;
            memory.offer(c, rows.view(), &target);
        }
        let before = h.weights.slice(ndarray::s![..2, ..]).to_owned();
        let (x2, y2) = data(40, [2, 3], 5);
        h.learn(x2.view(), &y2, &memory);
        let moved = (&h.weights.slice(ndarray::s![..2, ..]) - &before)
            .mapv(|v| v * v)
            .sum()
            .sqrt();
        let (xt, yt) = data(40, [0, 1], 11);
        let s = h.scores(xt.view());
        let right = s
            .rows()
            .into_iter()
            .zip(&yt)
            .filter(|(r, &y)| (0..4).all(|k| r[y] >= r[k]))
            .count();
        (right as f64 / yt.len() as f64, moved)
    }

    #[test]
    fn replay_keeps_old_classes_that_plain_sgd_forgets() {
        // Class-incremental: the second task has only classes 2 and 3. Plain SGD then answers 2 or 3 for
        // everything; replaying the stored features of 0 and 1 keeps them. (EWC, LwF and A-GEM alone are
        // known to do little here, since nothing stops the new classes out-scoring the old ones on old
        // inputs; their mechanisms are tested against references above and below.)
        let base = LinearOptions {
            epochs: 20,
            ..Default::default()
        };
        let (plain, _) = old_accuracy(base);
        assert!(
            plain < 0.5,
            "plain SGD should forget the absent classes, kept {plain}"
        );
        let (kept, _) = old_accuracy(LinearOptions {
            replay: true,
            ..base
        });
        assert!(kept > 0.9, "replay kept {kept}");
    }

    #[test]
    fn the_ewc_fisher_is_the_mean_squared_per_sample_gradient() {
        let d = 3;
        let mut h = Linear::new(
            d,
            LinearOptions {
                ewc: 1.0,
                epochs: 3,
                ..Default::default()
            },
        );
        h.add_class();
        h.add_class();
        let x = array![
            [1.0f32, 0.2, 0.0],
            [0.1, 1.0, 0.3],
            [0.9, 0.0, 0.4],
            [0.0, 0.8, 0.8]
        ];
        let y = [0, 1, 0, 1];
        let memory = FeatureMemory::new(0, Storage::F32, d);
        h.learn(x.view(), &y, &memory);
        // Reference: per-sample gradient of -log p(y|x) w.r.t. W[k][j] is (p_k - [k = y]) x_j, on the
        // normalised input, with p from the trained weights; F is the mean of its square.
        for k in 0..2 {
            for j in 0..d {
                let mut f = 0.0f64;
                for (r, &c) in x.rows().into_iter().zip(&y) {
                    let n = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                    let xn: Vec<f64> = r.iter().map(|&v| v as f64 / n).collect();
                    let z: Vec<f64> = (0..2)
                        .map(|q| {
                            h.bias[q] as f64
                                + (0..d)
                                    .map(|i| h.weights[[q, i]] as f64 * xn[i])
                                    .sum::<f64>()
                        })
                        .collect();
                    let e: Vec<f64> = z.iter().map(|v| v.exp()).collect();
                    let p = e[k] / (e[0] + e[1]);
                    let g = (p - f64::from(u8::from(k == c))) * xn[j];
                    f += g * g / 4.0;
                }
                assert!(
                    (h.fisher[[k, j]] as f64 - f).abs() < 1e-6,
                    "F[{k},{j}] {} vs {f}",
                    h.fisher[[k, j]]
                );
            }
        }
        // The penalty pulls towards the old weights in proportion to F: a second task on the same classes
        // with a huge lambda moves the Fisher-weighted distance far less than without EWC.
        let moved = |ewc: f32| {
            let mut g = h.clone();
            g.options.ewc = ewc;
            g.options.epochs = 10;
            let w0 = g.weights.clone();
            let x2 = array![[0.2f32, 1.0, 0.1], [1.0, 0.1, 0.9]];
            g.learn(x2.view(), &[0, 1], &memory);
            (&(&g.weights - &w0).mapv(|v| v * v) * &h.fisher).sum()
        };
        let (free, held) = (moved(0.0), moved(1e3));
        assert!(
            held < 0.5 * free,
            "Fisher-weighted move {held} with EWC, {free} without"
        );
    }
}
