//! "Dreaming" in feature space: synthetic features of the old classes, made by inverting the frozen old
//! head, the on-device analogue of ABD's model inversion (Smith et al., ICCV 2021).
//!
//! ABD trains a generator so that the frozen old network's outputs on its images satisfy four objectives.
//! The device has no images and no generator, only the frozen backbone's feature space, the old head (and
//! adapter) and each class's stored moments; so the synthetic samples are the features themselves,
//! started from the stored moments and optimised directly (Adam, [`DreamOptions::steps`] steps). Each ABD
//! objective, translated:
//!
//! | ABD (image space) | here (feature space) | why |
//! | --- | --- | --- |
//! | content: CE of the old model's output to its own argmax | [`content_loss`]: CE of the old head's logits (old classes only) to the class the sample was started from | a feature is drawn from a class's moments, so its intended class is known; the argmax would only ever agree or drift to a neighbour |
//! | label diversity: `1 + sum p log p / log K` of the batch-mean softmax | [`diversity_loss`], the same formula over the old classes | unchanged: it keeps the batch from collapsing onto the easiest classes |
//! | statistics alignment: at every BatchNorm layer, `KL(N(running mean, var) \|\| N(batch mean, var))` per channel | [`stats_loss`]: the same Gaussian KL per feature dimension, between each class's stored (mean, variance) and its synthetic batch's | the stored class moments are the device's only statistics of the real data; they are per class, so the match is class-conditional (stronger than BatchNorm's pooled one) |
//! | image prior: L2 to a Gaussian-blurred copy (smoothness) | [`project`]: after every step, clamp to `>= 0` and rescale to unit norm | real features are post-ReLU6 averages (non-negative) and the heads see them L2-normalised, so the valid set is the non-negative part of the unit sphere; a projection keeps samples exactly in it, where a penalty would only discourage leaving |
//!
//! The total is `content + diversity + stats` (each weight in [`DreamOptions`]); every gradient is
//! hand-derived and tested against finite differences below.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::linear::{ce_logit_grad, softmax, Rng};

/// Variance floor in the statistics loss (normalised features have per-dimension variances around 1e-4).
pub const VAR_EPS: f32 = 1e-6;

/// The frozen old model: optional adapter `relu(A x + a)`, then the old classes' rows of the head.
#[derive(Debug, Clone)]
pub struct OldModel {
    pub adapter: Option<(Array2<f32>, Array1<f32>)>,
    pub weights: Array2<f32>,
    pub bias: Array1<f32>,
}

/// Adapter forward: pre-activations and features `relu(pre)`.
pub fn adapter_forward(
    a: &Array2<f32>,
    b: &Array1<f32>,
    x: ArrayView2<f32>,
) -> (Array2<f32>, Array2<f32>) {
    let mut pre = x.dot(&a.t());
    for mut row in pre.rows_mut() {
        row += b;
    }
    let f = pre.mapv(|v| v.max(0.0));
    (pre, f)
}

/// Adapter backward: from gradients `g_f` on its features, the gradient on its pre-activations.
pub fn relu_back(pre: &Array2<f32>, g_f: &Array2<f32>) -> Array2<f32> {
    let mut g = g_f.clone();
    ndarray::Zip::from(&mut g).and(pre).for_each(|g, &p| {
        if p <= 0.0 {
            *g = 0.0
        }
    });
    g
}

impl OldModel {
    /// Logits `[n, old classes]` of normalised inputs, with the adapter's pre-activations (if any).
    pub fn logits(&self, x: ArrayView2<f32>) -> (Option<Array2<f32>>, Array2<f32>) {
        let (pre, f) = match &self.adapter {
            Some((a, b)) => {
                let (pre, f) = adapter_forward(a, b, x);
                (Some(pre), f)
            }
            None => (None, x.to_owned()),
        };
        let mut z = f.dot(&self.weights.t());
        for mut row in z.rows_mut() {
            row += &self.bias;
        }
        (pre, z)
    }

    /// The adapter's features (the inputs themselves without one).
    pub fn features(&self, x: ArrayView2<f32>) -> Array2<f32> {
        match &self.adapter {
            Some((a, b)) => adapter_forward(a, b, x).1,
            None => x.to_owned(),
        }
    }

    /// Gradient on the inputs from gradients `g_z` on the logits.
    pub fn input_grad(&self, pre: Option<&Array2<f32>>, g_z: &Array2<f32>) -> Array2<f32> {
        let g_f = g_z.dot(&self.weights);
        match (&self.adapter, pre) {
            (Some((a, _)), Some(pre)) => relu_back(pre, &g_f).dot(a),
            _ => g_f,
        }
    }
}

/// A class's stored moments over its normalised features (per dimension).
#[derive(Debug, Clone)]
pub struct Moments {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// Content: mean cross-entropy of `z` to `targets` (column indices), and its gradient on `z`.
pub fn content_loss(z: &Array2<f32>, targets: &[usize]) -> (f32, Array2<f32>) {
    let p = softmax(z, 1.0);
    let loss = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| -p[[i, t]].max(1e-30).ln())
        .sum::<f32>()
        / targets.len().max(1) as f32;
    (loss, ce_logit_grad(z, targets))
}

/// Label diversity: `1 + sum_k pbar_k ln pbar_k / ln K`, `pbar` the batch-mean softmax over the `K`
/// columns (0 when the batch predicts every class equally often, 1 when it predicts one), and its
/// gradient on `z`: `p_ik (ln pbar_k - sum_j p_ij ln pbar_j) / (n ln K)`.
pub fn diversity_loss(z: &Array2<f32>) -> (f32, Array2<f32>) {
    let (n, k) = z.dim();
    if k < 2 || n == 0 {
        return (0.0, Array2::zeros(z.raw_dim()));
    }
    let p = softmax(z, 1.0);
    let pbar = p.mean_axis(Axis(0)).expect("rows");
    let lnk = (k as f32).ln();
    let logp = pbar.mapv(|v| v.max(1e-30).ln());
    let loss = 1.0 + (&pbar * &logp).sum() / lnk;
    let mut g = p.clone();
    for mut row in g.rows_mut() {
        let dot = row.dot(&logp);
        let scaled = &row * &(&logp - dot);
        row.assign(&scaled);
    }
    (loss, g / (n as f32 * lnk))
}

/// Statistics alignment for one class: the mean over dimensions of `KL(N(m_s, v_s) || N(m, v))`, `(m_s,
/// v_s)` the stored moments and `(m, v)` the batch's (biased variance, both floored by [`VAR_EPS`]), and
/// its gradient on the rows of `x`.
pub fn stats_loss(x: ArrayView2<f32>, target: &Moments) -> (f32, Array2<f32>) {
    let (n, d) = x.dim();
    let nf = n.max(1) as f32;
    let m = x.mean_axis(Axis(0)).expect("rows");
    let mut v = Array1::<f32>::zeros(d);
    for row in x.rows() {
        v.zip_mut_with(&(&row - &m), |acc, &c| *acc += c * c);
    }
    v.mapv_inplace(|s| s / nf + VAR_EPS);
    let mut loss = 0.0;
    let mut dm = Array1::<f32>::zeros(d);
    let mut dv = Array1::<f32>::zeros(d);
    for j in 0..d {
        let (ms, vs) = (target.mean[j], target.var[j] + VAR_EPS);
        let diff = ms - m[j];
        loss += 0.5 * (v[j] / vs).ln() - 0.5 + (vs + diff * diff) / (2.0 * v[j]);
        dm[j] = -diff / v[j];
        dv[j] = 0.5 / v[j] - (vs + diff * diff) / (2.0 * v[j] * v[j]);
    }
    let df = d.max(1) as f32;
    let mut g = Array2::zeros((n, d));
    for (mut gi, xi) in g.rows_mut().into_iter().zip(x.rows()) {
        for j in 0..d {
            gi[j] = (dm[j] + dv[j] * 2.0 * (xi[j] - m[j])) / (nf * df);
        }
    }
    (loss / df, g)
}

/// The prior: every row non-negative with unit norm (a row that clamps to zero becomes uniform).
pub fn project(x: &mut Array2<f32>) {
    for mut row in x.rows_mut() {
        row.mapv_inplace(|v| v.max(0.0));
        let n = row.dot(&row).sqrt();
        if n > 0.0 {
            row /= n;
        } else {
            let u = 1.0 / (row.len() as f32).sqrt();
            row.fill(u);
        }
    }
}

/// Dreaming settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DreamOptions {
    /// Optimisation steps; 0 keeps the samples drawn from the moments (Gaussian replay, no inversion).
    pub steps: u32,
    /// Adam step size on the (unit-norm) features.
    pub lr: f32,
    pub content: f32,
    pub diversity: f32,
    pub stats: f32,
}

impl Default for DreamOptions {
    fn default() -> Self {
        DreamOptions {
            steps: 50,
            lr: 2e-3,
            content: 1.0,
            diversity: 1.0,
            stats: 1.0,
        }
    }
}

/// The three losses' values at the end of a dream (for reports and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DreamLosses {
    pub content: f32,
    pub diversity: f32,
    pub stats: f32,
}

/// The total dreaming objective and its gradient on `x`; `labels[i]` indexes `moments` and the model's
/// old classes.
pub fn objective(
    model: &OldModel,
    moments: &[Moments],
    x: ArrayView2<f32>,
    labels: &[usize],
    o: &DreamOptions,
) -> (DreamLosses, Array2<f32>) {
    let (pre, z) = model.logits(x);
    let (lc, gc) = content_loss(&z, labels);
    let (ld, gd) = diversity_loss(&z);
    let g_z = gc * o.content + gd * o.diversity;
    let mut g = model.input_grad(pre.as_ref(), &g_z);
    let mut ls = 0.0;
    let classes = moments.len().max(1) as f32;
    for (c, m) in moments.iter().enumerate() {
        let idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if idx.is_empty() {
            continue;
        }
        let (l, gs) = stats_loss(x.select(Axis(0), &idx).view(), m);
        ls += l / classes;
        for (r, &i) in idx.iter().enumerate() {
            g.row_mut(i).scaled_add(o.stats / classes, &gs.row(r));
        }
    }
    (
        DreamLosses {
            content: lc,
            diversity: ld,
            stats: ls,
        },
        g,
    )
}

/// Dreams `per_class` features for each entry of `moments` (the model's old classes, in its order):
/// draws them from `N(mean, diag(var))`, projects them, then runs `steps` Adam steps on [`objective`],
/// projecting after each. Returns the features, their indices into `moments`, and the final losses.
pub(crate) fn dream(
    model: &OldModel,
    moments: &[Moments],
    per_class: usize,
    o: &DreamOptions,
    rng: &mut Rng,
) -> (Array2<f32>, Vec<usize>, DreamLosses) {
    let d = moments.first().map_or(0, |m| m.mean.len());
    let labels: Vec<usize> = (0..moments.len())
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect();
    let mut x = Array2::from_shape_fn((labels.len(), d), |(i, j)| {
        let m = &moments[labels[i]];
        m.mean[j] + m.var[j].max(0.0).sqrt() * rng.gaussian() as f32
    });
    project(&mut x);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut m1 = Array2::<f32>::zeros(x.raw_dim());
    let mut m2 = Array2::<f32>::zeros(x.raw_dim());
    for t in 1..=o.steps {
        let (_, g) = objective(model, moments, x.view(), &labels, o);
        m1 = m1 * b1 + &(&g * (1.0 - b1));
        m2 = m2 * b2 + &(g.mapv(|v| v * v) * (1.0 - b2));
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        ndarray::Zip::from(&mut x)
            .and(&m1)
            .and(&m2)
            .for_each(|x, &a, &b| *x -= o.lr * (a / c1) / ((b / c2).sqrt() + eps));
        project(&mut x);
    }
    let (losses, _) = objective(model, moments, x.view(), &labels, o);
    (x, labels, losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Central differences of `f` at `x`, each coordinate.
    fn numeric(x: &Array2<f32>, f: impl Fn(&Array2<f32>) -> f64) -> Array2<f64> {
        let h = 1e-3f32;
        Array2::from_shape_fn(x.raw_dim(), |(i, j)| {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[[i, j]] += h;
            down[[i, j]] -= h;
            (f(&up) - f(&down)) / (2.0 * h as f64)
        })
    }

    fn close(analytic: &Array2<f32>, numeric: &Array2<f64>, tol: f64) {
        for (a, n) in analytic.iter().zip(numeric) {
            assert!(
                (*a as f64 - n).abs() < tol * (1.0 + n.abs()),
                "analytic {analytic}\nnumeric {numeric}"
            );
        }
    }

    #[test]
    fn content_gradient_matches_finite_differences() {
        let z = array![[0.3f32, -0.2, 0.9], [1.0, 0.1, -0.5], [0.0, 0.4, 0.2]];
        let t = [2, 0, 1];
        let (_, g) = content_loss(&z, &t);
        close(&g, &numeric(&z, |z| content_loss(z, &t).0 as f64), 2e-3);
    }

    #[test]
    fn diversity_gradient_matches_finite_differences_and_its_range_is_0_to_1() {
        let z = array![
            [0.3f32, -0.2, 0.9],
            [1.0, 0.1, -0.5],
            [0.0, 0.4, 0.2],
            [2.0, -1.0, 0.0]
        ];
        let (_, g) = diversity_loss(&z);
        close(&g, &numeric(&z, |z| diversity_loss(z).0 as f64), 2e-3);
        // One class predicted by every row: 1; each class equally by one-hot rows: 0.
        let (one, _) = diversity_loss(&array![[20.0f32, 0.0], [20.0, 0.0]]);
        let (even, _) = diversity_loss(&array![[20.0f32, 0.0], [0.0, 20.0]]);
        assert!(
            (one - 1.0).abs() < 1e-4 && even.abs() < 1e-4,
            "{one} {even}"
        );
    }

    #[test]
    fn stats_gradient_matches_finite_differences_and_is_zero_at_the_target() {
        let x = array![
            [0.2f32, 0.5, 0.1],
            [0.4, 0.3, 0.0],
            [0.1, 0.6, 0.3],
            [0.3, 0.2, 0.2]
        ];
        let target = Moments {
            mean: vec![0.3, 0.4, 0.1],
            var: vec![0.01, 0.02, 0.005],
        };
        let (_, g) = stats_loss(x.view(), &target);
        close(
            &g,
            &numeric(&x, |x| stats_loss(x.view(), &target).0 as f64),
            2e-2,
        );
        // At the batch's own moments the KL is 0 and stationary.
        let m = x.mean_axis(Axis(0)).unwrap();
        let v = x.var_axis(Axis(0), 0.0);
        let own = Moments {
            mean: m.to_vec(),
            var: v.to_vec(),
        };
        let (l, g) = stats_loss(x.view(), &own);
        assert!(
            l.abs() < 1e-5 && g.iter().all(|v| v.abs() < 1e-3),
            "{l} {g}"
        );
    }

    fn toy_model(adapter: bool) -> OldModel {
        OldModel {
            adapter: adapter.then(|| {
                (
                    array![
                        [1.0f32, 0.5, -0.2],
                        [-0.3, 1.0, 0.4],
                        [0.2, -0.1, 1.0],
                        [0.5, 0.5, 0.5]
                    ],
                    array![0.05f32, -0.02, 0.0, -0.3],
                )
            }),
            weights: if adapter {
                array![[1.0f32, -0.5, 0.3, 0.2], [-0.4, 1.2, 0.1, -0.3]]
            } else {
                array![[1.0f32, -0.5, 0.3], [-0.4, 1.2, 0.1]]
            },
            bias: array![0.1f32, -0.1],
        }
    }

    #[test]
    fn the_whole_objective_gradient_matches_finite_differences_with_and_without_adapter() {
        let x = array![
            [0.6f32, 0.3, 0.2],
            [0.1, 0.8, 0.3],
            [0.5, 0.5, 0.1],
            [0.2, 0.7, 0.6]
        ];
        let labels = [0, 1, 0, 1];
        let moments = vec![
            Moments {
                mean: vec![0.6, 0.3, 0.2],
                var: vec![0.01, 0.01, 0.02],
            },
            Moments {
                mean: vec![0.2, 0.8, 0.4],
                var: vec![0.02, 0.01, 0.01],
            },
        ];
        let o = DreamOptions::default();
        for adapter in [false, true] {
            let model = toy_model(adapter);
            let (_, g) = objective(&model, &moments, x.view(), &labels, &o);
            let total = |x: &Array2<f32>| {
                let (l, _) = objective(&model, &moments, x.view(), &labels, &o);
                (l.content + l.diversity + l.stats) as f64
            };
            close(&g, &numeric(&x, total), 2e-2);
        }
    }

    #[test]
    fn dreams_are_valid_features_the_old_head_recognises() {
        // Two classes near two axes of a 6-d space; the head is their means (a nearest-mean classifier).
        let d = 6;
        let mean = |c: usize| {
            let mut v = vec![0.1f32; d];
            v[c] = 0.9;
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<_>>()
        };
        let moments: Vec<Moments> = (0..2)
            .map(|c| Moments {
                mean: mean(c),
                var: vec![0.02; d],
            })
            .collect();
        let w = Array2::from_shape_fn((2, d), |(c, j)| 5.0 * moments[c].mean[j]);
        let model = OldModel {
            adapter: None,
            weights: w,
            bias: array![0.0f32, 0.0],
        };
        let mut rng = Rng(7);
        let before = {
            let mut r = Rng(7);
            dream(
                &model,
                &moments,
                32,
                &DreamOptions {
                    steps: 0,
                    ..Default::default()
                },
                &mut r,
            )
            .2
        };
        let (x, labels, after) = dream(&model, &moments, 32, &DreamOptions::default(), &mut rng);
        assert_eq!(x.nrows(), 64);
        for row in x.rows() {
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!((row.dot(&row) - 1.0).abs() < 1e-4);
        }
        // The optimisation lowers the objective it optimises.
        let total = |l: &DreamLosses| l.content + l.diversity + l.stats;
        assert!(
            total(&after) < 0.5 * total(&before),
            "{before:?} -> {after:?}"
        );
        let (_, z) = model.logits(x.view());
        let right = z
            .rows()
            .into_iter()
            .zip(&labels)
            .filter(|(r, &y)| r[y] >= r[1 - y])
            .count();
        assert!(right as f64 / 64.0 > 0.95, "{right} of 64");
    }
}
