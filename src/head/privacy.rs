//! Privacy mode (`--privacy`): class-incremental learning with nothing derived from a single capture ever
//! written, and no feature memory (the learner's budget is forced to 0).
//!
//! # Its two heads
//!
//! - **NCM** (the default, [`PrivacyRule`] as [`super::Head::PrivacyNcm`]): the learner's class sums and
//!   counts under the K rule (below), exact or DP, and nothing else; scores are the NCM cosines. On the
//!   eval protocols it is the more accurate of the two (README, "Privacy mode").
//! - **ABD's dreaming head** (`privacy+abd`, [`Privacy`]): data-free class-incremental learning after
//!   "Always Be Dreaming" (ABD, Smith et al., ICCV 2021), below.
//!
//! # What the dreaming head's state keeps
//!
//! - the head: a softmax layer `W f + b` over the features `f`, which are the L2-normalised backbone
//!   features, or an optional small adapter's `f = relu(A x + a)` (`adapter=M`);
//! - per class, aggregates over at least K captures: the count and sum (the learner's NCM statistics) and,
//!   without DP, the per-dimension sum of squares (for a diagonal variance).
//!
//! **The K rule.** A stored statistic only ever changes by an aggregate of at least K captures of one class
//! from one learn call. Captures of a class that has fewer than K waiting are held by the [`Learner`]
//! in RAM (never encoded) until K have arrived; a class is not learnt, and cannot be classified, until
//! then. Why per update and not per class total: the difference of two saved states is one update, so
//! an update of one capture would reveal it even in a class of a thousand.
//! With DP ([`super::dp`], `dp=EPS`) the sums and counts are released with calibrated noise instead, and
//! the sums of squares are not kept.
//!
//! [`Learner`]: crate::learner::Learner
//!
//! # Learning (ABD's learner objectives)
//!
//! The first learn call trains the head (and adapter) with cross-entropy. Each later call, with old
//! classes `O` (trained before, absent from this call) and the call's classes `T`:
//!
//! 1. dream [`PrivacyOptions::synthetic`] features per old class from the frozen old model
//!    ([`super::dream`]);
//! 2. train for `epochs` over the real captures in mini-batches, each joined by as many synthetic features,
//!    with SGD (momentum 0.9) on the sum of
//!    - the **local cross-entropy** over `T` only, on the real batch (to the head and the adapter): new
//!      classes are learnt without pushing the old logits down (skipped when `T` has one class, where it
//!      is constant);
//!    - the **class-balanced fine-tuning cross-entropy** over all classes on real + synthetic features,
//!      to the head only (the adapter's features are treated as constants), each sample weighted by
//!      `n / (classes in the batch x its class's count in the batch)` so every class weighs the same;
//!    - with an adapter, the **importance-weighted feature distillation** on real + synthetic inputs:
//!      `mean_i ||W_O (f(x_i) - f_old(x_i))||^2 / |O|`, `W_O` the old head's rows of the old classes, to
//!      the adapter only. The old head's weights are the importance: a change of the adapter's features
//!      costs what it changes in the old logits (ABD's "hard - linear" KD term). Without an adapter the
//!      features are the frozen backbone's and this term is identically 0.
//!
//! Unlike ABD, the synthetic set is dreamt once per learn call (ABD trains a generator once per task and
//! samples fresh batches); batches draw from it at random.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::dp::{self, DpOptions, Noise};
use super::dream::{self, DreamOptions, Moments, OldModel};
use super::linalg;
use super::linear::{ce_logit_grad, layer_grad, local_ce_logit_grad, softmax, Linear, Rng};
use super::Ncm;

/// Default K: captures per stored aggregate.
pub const DEFAULT_K: u32 = 5;

/// Settings, fixed when the head is created.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyOptions {
    /// Captures per stored aggregate (the K rule).
    pub k: u32,
    /// Adapter width; 0: no adapter.
    pub adapter: u32,
    /// Dreaming steps; 0 keeps the features drawn from the moments.
    pub dream_steps: u32,
    /// Synthetic features per old class per learn call.
    pub synthetic: u32,
    pub epochs: u32,
    pub lr: f32,
    pub batch: u32,
    /// Differential privacy for the statistics; `None`: exact statistics.
    pub dp: Option<DpOptions>,
    pub seed: u64,
}

impl Default for PrivacyOptions {
    fn default() -> Self {
        PrivacyOptions {
            k: DEFAULT_K,
            adapter: 0,
            dream_steps: DreamOptions::default().steps,
            synthetic: 128,
            epochs: 30,
            lr: 0.5,
            batch: 32,
            dp: None,
            seed: 0,
        }
    }
}

impl PrivacyOptions {
    pub fn validate(&self) -> Result<(), String> {
        use super::bounds::{
            rate, within, MAX_BATCH, MAX_EPOCHS, MAX_HIDDEN, MAX_STEPS, MAX_SYNTHETIC,
        };
        self.rule().check()?;
        if self.adapter as usize > MAX_HIDDEN {
            return Err(format!(
                "privacy adapter {} is over {MAX_HIDDEN}",
                self.adapter
            ));
        }
        if self.dream_steps > MAX_STEPS || self.epochs > MAX_EPOCHS {
            return Err(format!(
                "privacy dream steps {} / epochs {} are over {MAX_STEPS} / {MAX_EPOCHS}",
                self.dream_steps, self.epochs
            ));
        }
        within(
            "privacy synthetic features",
            self.synthetic as u64,
            MAX_SYNTHETIC as u64,
        )?;
        within("privacy batch", self.batch as u64, MAX_BATCH as u64)?;
        rate("privacy lr", self.lr)
    }

    /// The K rule and DP settings.
    pub fn rule(&self) -> PrivacyRule {
        PrivacyRule {
            k: self.k,
            dp: self.dp,
        }
    }
}

/// What every privacy-mode head keeps to: the K rule, and DP if asked for. As a head of its own it is
/// privacy mode's default, NCM over these statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyRule {
    pub k: u32,
    pub dp: Option<DpOptions>,
}

impl PrivacyRule {
    /// Records a batch of at least K normalised captures of one class into the learner's class sums and
    /// counts: exactly, or as one noisy DP release.
    pub fn record(
        &self,
        class: usize,
        rows: ArrayView2<f32>,
        means: &mut Ncm,
        noise: &mut dyn Noise,
    ) {
        match &self.dp {
            None => means.update(class, rows),
            Some(dp) => {
                let r = dp::release(rows, dp, noise);
                // Post-processing: a whole count, at least K (the batch had at least K captures).
                let n = (r.count.round().max(0.0) as u64).max(self.k as u64);
                let mean: Vec<f32> = r.sum.iter().map(|&s| (s / n as f64) as f32).collect();
                means.update_aggregate(class, &mean, n);
            }
        }
    }

    pub fn check(&self) -> Result<(), String> {
        super::bounds::within("privacy k", self.k as u64, 1 << 20)?;
        match &self.dp {
            Some(dp) => dp.validate(),
            None => Ok(()),
        }
    }
}

const MOMENTUM: f32 = 0.9;
/// Weight of the feature distillation (ABD's `mu`).
const KD_WEIGHT: f32 = 1.0;
/// With an adapter, every step (head and adapter) is this fraction of `lr`: at 0.5 the adapter's features
/// drifted so far that the tests' old classes were lost, at 0.1 (and 0.05) they were kept; with the head
/// alone at 0.5 and the adapter at 0.1 they were still lost.
const ADAPTER_LR: f32 = 0.2;
/// Floor on the isotropic spread `1 - ||mean||^2` used under DP (a noisy mean may exceed norm 1).
const MIN_SPREAD: f32 = 0.01;

/// The adapter `relu(A x + a)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adapter {
    #[serde(with = "linalg::matrix_f32")]
    pub weights: Array2<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Privacy {
    dim: usize,
    options: PrivacyOptions,
    adapter: Option<Adapter>,
    /// `[classes, features]`.
    #[serde(with = "linalg::matrix_f32")]
    weights: Array2<f32>,
    bias: Vec<f32>,
    /// Per class, the per-dimension sum of squared normalised features over the same captures as the
    /// learner's NCM sums (empty under DP).
    sumsq: Vec<Vec<f64>>,
    trained: Vec<bool>,
    calls: u64,
}

impl Privacy {
    pub fn new(dim: usize, options: PrivacyOptions) -> Privacy {
        let m = options.adapter as usize;
        let adapter = (m > 0).then(|| {
            // He initialisation, seeded.
            let mut rng = Rng(options.seed ^ 0xA5A5_5A5A_DEAD_BEEF | 1);
            let s = (2.0 / dim as f64).sqrt();
            Adapter {
                weights: Array2::from_shape_fn((m, dim), |_| (s * rng.gaussian()) as f32),
                bias: vec![0.0; m],
            }
        });
        Privacy {
            dim,
            options,
            adapter,
            weights: Array2::zeros((0, if m > 0 { m } else { dim })),
            bias: Vec::new(),
            sumsq: Vec::new(),
            trained: Vec::new(),
            calls: 0,
        }
    }

    pub fn options(&self) -> &PrivacyOptions {
        &self.options
    }

    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    pub fn weights(&self) -> (&Array2<f32>, &[f32]) {
        (&self.weights, &self.bias)
    }

    /// The per-class sums of squares (empty rows under DP).
    pub fn sums_of_squares(&self) -> &[Vec<f64>] {
        &self.sumsq
    }

    fn feature_dim(&self) -> usize {
        self.weights.ncols()
    }

    pub fn add_class(&mut self) {
        let z = Array2::zeros((1, self.feature_dim()));
        self.weights = ndarray::concatenate![Axis(0), self.weights, z];
        self.bias.push(0.0);
        self.sumsq.push(if self.options.dp.is_some() {
            Vec::new()
        } else {
            vec![0.0; self.dim]
        });
        self.trained.push(false);
    }

    pub fn remove_class(&mut self, class: usize) {
        self.weights.remove_index(Axis(0), class);
        self.bias.remove(class);
        self.sumsq.remove(class);
        self.trained.remove(class);
    }

    /// Records a batch of at least K normalised captures of one class into the statistics: the class sums
    /// and counts ([`PrivacyRule::record`]) and, without DP, the sums of squares.
    pub fn record(
        &mut self,
        class: usize,
        rows: ArrayView2<f32>,
        means: &mut Ncm,
        noise: &mut dyn Noise,
    ) {
        self.options.rule().record(class, rows, means, noise);
        if self.options.dp.is_none() {
            let s = &mut self.sumsq[class];
            for row in rows.rows() {
                for (s, &v) in s.iter_mut().zip(row) {
                    *s += (v as f64) * (v as f64);
                }
            }
        }
    }

    /// A class's moments for dreaming: the stored mean, and the diagonal variance from the sums of squares,
    /// or under DP the isotropic spread `(1 - ||mean||^2) / d` that unit-norm features imply.
    fn moments(&self, class: usize, means: &Ncm) -> Moments {
        let mean = means.raw_mean(class);
        let n = means.count(class).max(1) as f64;
        let var = if self.sumsq[class].is_empty() {
            let norm2: f32 = mean.iter().map(|v| v * v).sum();
            vec![(1.0 - norm2).max(MIN_SPREAD) / self.dim as f32; self.dim]
        } else {
            self.sumsq[class]
                .iter()
                .zip(&mean)
                .map(|(&s, &m)| ((s / n) as f32 - m * m).max(0.0))
                .collect()
        };
        Moments { mean, var }
    }

    fn embed(&self, x: ArrayView2<f32>) -> (Option<Array2<f32>>, Array2<f32>) {
        match &self.adapter {
            Some(a) => {
                let (pre, f) = dream::adapter_forward(&a.weights, &Array1::from(a.bias.clone()), x);
                (Some(pre), f)
            }
            None => (None, x.to_owned()),
        }
    }

    /// The frozen model over the classes `old`.
    fn old_model(&self, old: &[usize]) -> OldModel {
        OldModel {
            adapter: self
                .adapter
                .as_ref()
                .map(|a| (a.weights.clone(), Array1::from(a.bias.clone()))),
            weights: self.weights.select(Axis(0), old),
            bias: old.iter().map(|&k| self.bias[k]).collect(),
        }
    }

    /// Trains on raw features with their class indices (one task); `means` holds every class's
    /// statistics (already including these captures).
    pub fn learn(&mut self, features: ArrayView2<f32>, labels: &[usize], means: &Ncm) {
        let o = self.options;
        let c = self.classes();
        let mut x = features.to_owned();
        super::normalise_rows(&mut x);
        let in_task: Vec<bool> = (0..c).map(|k| labels.contains(&k)).collect();
        let old: Vec<usize> = (0..c).filter(|&k| self.trained[k] && !in_task[k]).collect();
        let task: Vec<usize> = (0..c).filter(|&k| in_task[k]).collect();
        let mut rng = Rng(o.seed
            ^ 0x243F_6A88_85A3_08D3
            ^ self
                .calls
                .wrapping_add(1)
                .wrapping_mul(0x2545_F491_4F6C_DD1D));
        // 1. Dream the old classes from the frozen old model.
        let frozen = (!old.is_empty()).then(|| self.old_model(&old));
        let (syn_x, syn_y) = match &frozen {
            Some(model) => {
                let moments: Vec<Moments> = old.iter().map(|&k| self.moments(k, means)).collect();
                let opts = DreamOptions {
                    steps: o.dream_steps,
                    ..Default::default()
                };
                let (xs, idx, _) = dream::dream(
                    model,
                    &moments,
                    o.synthetic.max(1) as usize,
                    &opts,
                    &mut rng,
                );
                (xs, idx.into_iter().map(|i| old[i]).collect::<Vec<_>>())
            }
            None => (Array2::zeros((0, self.dim)), Vec::new()),
        };
        // 2. Train.
        let mut vel_w = Array2::<f32>::zeros(self.weights.raw_dim());
        let mut vel_b = Array1::<f32>::zeros(c);
        let mut vel_a = self
            .adapter
            .as_ref()
            .map(|a| Array2::<f32>::zeros(a.weights.raw_dim()));
        let mut vel_ab = self
            .adapter
            .as_ref()
            .map(|a| Array1::<f32>::zeros(a.bias.len()));
        let mut order: Vec<usize> = (0..labels.len()).collect();
        let bs = o.batch.max(1) as usize;
        for _ in 0..o.epochs {
            rng.shuffle(&mut order);
            for chunk in order.chunks(bs) {
                let xb = x.select(Axis(0), chunk);
                let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
                let (pre_r, f_r) = self.embed(xb.view());
                let mut gw = Array2::<f32>::zeros(self.weights.raw_dim());
                let mut gb = Array1::<f32>::zeros(c);
                // Gradient on the adapter's features of the real batch (adapter only).
                let mut g_fr: Option<Array2<f32>> = None;
                let z_r = Linear::logits(&self.weights, &self.bias, f_r.view());
                let local = if old.is_empty() {
                    Some(if task.len() >= 2 {
                        local_ce_logit_grad(&z_r, &yb, &task)
                    } else {
                        ce_logit_grad(&z_r, &yb)
                    })
                } else {
                    (task.len() >= 2).then(|| local_ce_logit_grad(&z_r, &yb, &task))
                };
                if let Some(g) = local {
                    let (w, b) = layer_grad(&g, f_r.view());
                    gw += &w;
                    gb += &b;
                    g_fr = Some(g.dot(&self.weights));
                }
                let mut adapter_grads: Vec<(Array2<f32>, Array2<f32>, Array2<f32>)> = Vec::new();
                if let (Some(g), Some(pre)) = (&g_fr, &pre_r) {
                    adapter_grads.push((pre.clone(), g.clone(), xb.clone()));
                }
                if let Some(model) = &frozen {
                    let pick: Vec<usize> =
                        (0..chunk.len()).map(|_| rng.below(syn_y.len())).collect();
                    let xs = syn_x.select(Axis(0), &pick);
                    let ys: Vec<usize> = pick.iter().map(|&i| syn_y[i]).collect();
                    let x_all = ndarray::concatenate![Axis(0), xb, xs];
                    let y_all: Vec<usize> = yb.iter().chain(&ys).copied().collect();
                    let (pre_all, f_all) = self.embed(x_all.view());
                    // Fine-tuning cross-entropy, class-balanced, head only.
                    let z = Linear::logits(&self.weights, &self.bias, f_all.view());
                    let mut g = ce_logit_grad(&z, &y_all);
                    let w = balance_weights(&y_all);
                    for (mut row, wi) in g.rows_mut().into_iter().zip(&w) {
                        row *= *wi;
                    }
                    let (w, b) = layer_grad(&g, f_all.view());
                    gw += &w;
                    gb += &b;
                    // Importance-weighted feature distillation, adapter only.
                    if let Some(pre_all) = pre_all {
                        let f_old = model.features(x_all.view());
                        let g_f = feature_distillation(&f_all, &f_old, &model.weights).1;
                        adapter_grads.push((pre_all, g_f * KD_WEIGHT, x_all));
                    }
                }
                let lr = if self.adapter.is_some() {
                    o.lr * ADAPTER_LR
                } else {
                    o.lr
                };
                vel_w = vel_w * MOMENTUM + &gw;
                vel_b = vel_b * MOMENTUM + &gb;
                self.weights.scaled_add(-lr, &vel_w);
                for (b, v) in self.bias.iter_mut().zip(&vel_b) {
                    *b -= lr * v;
                }
                if let (Some(a), Some(va), Some(vab)) =
                    (self.adapter.as_mut(), vel_a.as_mut(), vel_ab.as_mut())
                {
                    let mut ga = Array2::<f32>::zeros(a.weights.raw_dim());
                    let mut gab = Array1::<f32>::zeros(a.bias.len());
                    for (pre, g_f, xin) in &adapter_grads {
                        let (w, b) = layer_grad(&dream::relu_back(pre, g_f), xin.view());
                        ga += &w;
                        gab += &b;
                    }
                    *va = &*va * MOMENTUM + &ga;
                    *vab = &*vab * MOMENTUM + &gab;
                    a.weights.scaled_add(-lr, va);
                    for (b, v) in a.bias.iter_mut().zip(vab.iter()) {
                        *b -= lr * v;
                    }
                }
            }
        }
        for &l in labels {
            self.trained[l] = true;
        }
        self.calls = self.calls.wrapping_add(1);
    }

    /// Softmax probabilities `[n, classes]` for raw features.
    pub fn scores(&self, features: ArrayView2<f32>) -> Array2<f32> {
        let mut x = features.to_owned();
        super::normalise_rows(&mut x);
        let (_, f) = self.embed(x.view());
        softmax(&Linear::logits(&self.weights, &self.bias, f.view()), 1.0)
    }

    pub fn check(&self, dim: usize) -> Result<(), String> {
        // Options first: the adapter's shape is checked against them.
        self.options.validate()?;
        let c = self.bias.len();
        let fd = match &self.adapter {
            Some(a) => {
                if a.weights.dim() != (a.bias.len(), dim)
                    || a.bias.len() != self.options.adapter as usize
                {
                    return Err("privacy head's adapter has inconsistent shapes".into());
                }
                a.bias.len()
            }
            None => dim,
        };
        if self.dim != dim
            || self.weights.dim() != (c, fd)
            || self.trained.len() != c
            || self.sumsq.len() != c
        {
            return Err("privacy head has inconsistent shapes".into());
        }
        let want = if self.options.dp.is_some() { 0 } else { dim };
        if self.sumsq.iter().any(|s| s.len() != want) {
            return Err("privacy head's second moments do not match its DP setting".into());
        }
        if self
            .sumsq
            .iter()
            .flatten()
            .any(|v| !v.is_finite() || *v < 0.0)
        {
            return Err("privacy head's second moments are not finite and non-negative".into());
        }
        let adapter_values = self
            .adapter
            .iter()
            .flat_map(|a| a.weights.iter().chain(&a.bias));
        if self
            .weights
            .iter()
            .chain(&self.bias)
            .chain(adapter_values)
            .any(|v| !v.is_finite())
        {
            return Err("privacy head has non-finite weights".into());
        }
        Ok(())
    }
}

/// Per-sample weights that give every class in `y` the same total weight, averaging 1.
pub fn balance_weights(y: &[usize]) -> Vec<f32> {
    let mut counts = std::collections::BTreeMap::new();
    for &c in y {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let k = counts.len() as f32;
    y.iter()
        .map(|c| y.len() as f32 / (k * counts[c] as f32))
        .collect()
}

/// ABD's importance-weighted feature distillation: `mean_i ||W_O (f_i - f_old_i)||^2 / |O|` and its
/// gradient on `f` (`2 (f - f_old) W_O' W_O / (n |O|)`), `W_O` the old head's rows `[|O|, features]`.
pub fn feature_distillation(
    f: &Array2<f32>,
    f_old: &Array2<f32>,
    w_old: &Array2<f32>,
) -> (f32, Array2<f32>) {
    let (n, o) = (f.nrows().max(1) as f32, w_old.nrows().max(1) as f32);
    let u = (f - f_old).dot(&w_old.t());
    let loss = u.mapv(|v| v * v).sum() / (n * o);
    (loss, u.dot(w_old) * (2.0 / (n * o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn feature_distillation_gradient_matches_finite_differences() {
        let f = array![[0.5f32, 0.1, 0.0], [0.2, 0.7, 0.3]];
        let f_old = array![[0.4f32, 0.3, 0.1], [0.2, 0.5, 0.6]];
        let w = array![[1.0f32, -0.5, 0.2], [0.3, 0.8, -1.0]];
        let (_, g) = feature_distillation(&f, &f_old, &w);
        let h = 1e-3f32;
        for i in 0..2 {
            for j in 0..3 {
                let (mut up, mut down) = (f.clone(), f.clone());
                up[[i, j]] += h;
                down[[i, j]] -= h;
                let num = (feature_distillation(&up, &f_old, &w).0
                    - feature_distillation(&down, &f_old, &w).0)
                    / (2.0 * h);
                assert!((num - g[[i, j]]).abs() < 1e-3, "{num} vs {}", g[[i, j]]);
            }
        }
        // Importance: a change orthogonal to every old row costs nothing.
        let w1 = array![[1.0f32, 0.0, 0.0]];
        let moved = array![[0.5f32, 0.9, 0.4], [0.2, 0.1, 0.9]];
        assert_eq!(feature_distillation(&moved, &f, &w1).0, 0.0);
    }

    #[test]
    fn balance_weights_give_each_class_the_same_total() {
        let y = [0, 0, 0, 1, 2, 2];
        let w = balance_weights(&y);
        let total = |c| {
            y.iter()
                .zip(&w)
                .filter(|(&k, _)| k == c)
                .map(|(_, w)| w)
                .sum::<f32>()
        };
        assert!((total(0) - 2.0).abs() < 1e-6 && (total(1) - 2.0).abs() < 1e-6);
        assert!((w.iter().sum::<f32>() - 6.0).abs() < 1e-5);
    }

    /// Classes on the axes of an 8-d space, with noise; learns {0, 1}, then {2, 3}. Returns the accuracy
    /// on the old pair afterwards.
    fn old_accuracy(options: PrivacyOptions) -> f64 {
        let d = 8;
        let data = |n: usize, classes: [usize; 2], seed: u64| {
            let mut rng = Rng(seed * 2 + 1);
            let y: Vec<usize> = (0..n).map(|i| classes[i % 2]).collect();
            let x = Array2::from_shape_fn((n, d), |(i, j)| {
                let noise = (rng.uniform() as f32) * 0.6;
                if j == y[i] {
                    1.5 + noise
                } else {
                    noise
                }
            });
            (x, y)
        };
        let mut means = Ncm::new(d);
        let mut h = Privacy::new(d, options);
        for _ in 0..4 {
            h.add_class();
            means.add_class();
        }
        let mut noise = Rng(1);
        for (classes, seed) in [([0, 1], 0), ([2, 3], 5)] {
            let (x, y) = data(40, classes, seed);
            let mut xn = x.clone();
            super::super::normalise_rows(&mut xn);
            for (c, rows) in super::super::group_by_class(xn.view(), &y) {
                h.record(c, rows.view(), &mut means, &mut noise);
            }
            h.learn(x.view(), &y, &means);
        }
        let (xt, yt) = data(40, [0, 1], 11);
        let s = h.scores(xt.view());
        let right = s
            .rows()
            .into_iter()
            .zip(&yt)
            .filter(|(r, &y)| (0..4).all(|k| r[y] >= r[k]))
            .count();
        right as f64 / yt.len() as f64
    }

    #[test]
    fn dreaming_keeps_old_classes_that_training_on_the_new_ones_alone_forgets() {
        let base = PrivacyOptions {
            epochs: 20,
            ..Default::default()
        };
        let kept = old_accuracy(base);
        assert!(kept > 0.9, "privacy head kept {kept}");
        let adapter = old_accuracy(PrivacyOptions {
            adapter: 16,
            ..base
        });
        assert!(adapter > 0.9, "privacy head with an adapter kept {adapter}");
        // (A linear head trained on the new pair alone forgets the old one: linear.rs tests that.)
    }
}
