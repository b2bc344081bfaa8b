//! Nearest-class-mean (iCaRL, SCR's classifier) on L2-normalised features.
//!
//! Each class keeps the f64 sum of its normalised features and a count, so learning one more capture is
//! O(d), the mean is exact whatever the order, and forgetting a class is deleting its row. Prediction
//! compares a normalised query with each class's renormalised mean mu_c = m_c / ||m_c|| (m_c = sum / n):
//! the distance is ||f - mu_c|| = sqrt(2 - 2 f.mu_c), so the nearest mean is the highest cosine, and
//! scoring every class is one product with a contiguous `classes x d` matrix.
//!
//! # The "unknown" rule
//!
//! Because every stored feature has norm 1, the mean squared distance of a class's own captures from
//! its raw mean is exactly `1 - ||m_c||^2`: the class's spread comes free from the sums. From it:
//!
//! - unbiased spread `s_c^2 = (1 - ||m_c||^2) * n / (n - 1)` for `n >= 2`;
//! - shrunk towards the pooled spread of all classes, with the weight of [`PRIOR_CAPTURES`] captures:
//!   `s'^2 = ((n - 1) s_c^2 + k0 * pooled) / (n - 1 + k0)` (a class learnt from one capture uses the
//!   pooled spread alone);
//! - a new capture of the class is expected at squared distance `e_c = max(s'^2, MIN_SPREAD) (n + 1) / n`
//!   from the mean (the floor keeps identical captures from rejecting everything else);
//! - a query is `unknown` when its squared distance to the raw mean of its nearest class exceeds
//!   `factor * e_c` ([`DEFAULT_UNKNOWN_FACTOR`]; `--unknown-factor`, 0 disables the rule).
//!
//! While no class has two captures there is no spread to go by, and nothing is called unknown.
//!
//! # Many classes, one query: the int8 scan
//!
//! The camera case classifies one frame against every class. [`Ncm::nearest`] scans an int8 copy of the
//! means (one scale per class, a quarter of the bytes of f32: the scan is memory-bound) and bounds each
//! class's quantisation error exactly: with `q ~= s_q q8`, `mu ~= s_c m8`,
//! `|q.mu - s_q s_c q8.m8| <= ||q - s_q q8|| ||mu|| + ||s_q q8|| ||mu - s_c m8||` (Cauchy-Schwarz on the two
//! error terms). Only classes whose upper bound reaches the k-th best lower bound can be among the k
//! nearest; those few are rescored in f32, so the answer is the f32 answer, not an approximation.
//!
//! The default factor, 1.5, was chosen from `cargo run --release --example open_set` (Fashion-MNIST,
//! EfficientNet-Lite0, classes 0-4 learnt from 10 captures each, 1,000 test images): it rejected 3.6% of
//! the known classes' images and 67% of the never-learnt classes' (factor 2.0: 0.6% and 24%; 1.0: 30%
//! and 89%).

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::scan::MeanIndex;

/// Up to this many queries, scoring uses matrix-vector products (see [`Ncm::scores`]).
const SMALL_BATCH: usize = 8;

// The arithmetic (sums, renormalised means, distances, top-k, thresholds) is the no_std core's
// (crate::nostd::ncm); `Ncm` batches it over ndarray and keeps the derived matrices.
use crate::nostd::ncm as core_ncm;
pub use crate::nostd::ncm::{MIN_SPREAD, PRIOR_CAPTURES};
/// Default multiple of a class's expected squared distance beyond which a query is unknown.
pub const DEFAULT_UNKNOWN_FACTOR: f32 = 1.5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ncm {
    dim: usize,
    sums: Vec<Vec<f64>>,
    counts: Vec<u64>,
    /// Renormalised means, one row per class (derived from `sums`).
    #[serde(skip)]
    means: Array2<f32>,
    /// Squared norm of each raw mean `||m_c||^2` (derived).
    #[serde(skip)]
    raw_norm2: Vec<f64>,
    /// Int8 index over `means` for the one-query scan (derived).
    #[serde(skip)]
    index: MeanIndex,
}

/// One class's answer for one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub class: usize,
    /// Cosine similarity to the class mean.
    pub score: f32,
    /// Euclidean distance between the normalised query and the normalised class mean (0..=2).
    pub distance: f32,
}

/// Most captures a class can have counted (a camera at 1,000 frames a second for 8,900 years).
pub const MAX_COUNT: u64 = 1 << 48;

impl Ncm {
    pub fn new(dim: usize) -> Self {
        Ncm {
            dim,
            sums: Vec::new(),
            counts: Vec::new(),
            means: Array2::zeros((0, dim)),
            raw_norm2: Vec::new(),
            index: MeanIndex::new(dim),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn count(&self, class: usize) -> u64 {
        self.counts[class]
    }

    /// The exact mean of the class's normalised features (not renormalised).
    pub fn raw_mean(&self, class: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.dim];
        core_ncm::raw_mean(&self.sums[class], self.counts[class], &mut out);
        out
    }

    /// Appends an empty class (O(d): the means matrix grows by a row, nothing is recomputed).
    pub fn add_class(&mut self) -> usize {
        self.sums.push(vec![0.0; self.dim]);
        self.counts.push(0);
        self.raw_norm2.push(0.0);
        self.means
            .push_row(ndarray::Array1::zeros(self.dim).view())
            .expect("row width is dim");
        self.index.push(&vec![0.0; self.dim]);
        self.counts.len() - 1
    }

    pub fn remove_class(&mut self, class: usize) {
        self.sums.remove(class);
        self.counts.remove(class);
        self.raw_norm2.remove(class);
        self.means.remove_index(Axis(0), class);
        self.index.remove(class);
    }

    /// Adds L2-normalised features (rows) to a class.
    pub fn update(&mut self, class: usize, features: ArrayView2<f32>) {
        let sum = &mut self.sums[class];
        for row in features.rows() {
            match row.as_slice() {
                Some(x) => core_ncm::accumulate(sum, x),
                None => core_ncm::accumulate(sum, &row.to_vec()),
            }
        }
        self.counts[class] = self.counts[class].saturating_add(features.nrows() as u64);
        self.refresh_class(class);
        self.index.update(self.means.view(), class);
    }

    /// Adds `count` captures whose normalised features sum to `count * mean` (a released aggregate, such
    /// as privacy mode's DP mean): the same as `count` rows equal to `mean`, in O(d).
    pub fn update_aggregate(&mut self, class: usize, mean: &[f32], count: u64) {
        for (s, &m) in self.sums[class].iter_mut().zip(mean) {
            *s += count as f64 * m as f64;
        }
        self.counts[class] = self.counts[class].saturating_add(count);
        self.refresh_class(class);
        self.index.update(self.means.view(), class);
    }

    /// Cosine similarity of each normalised query (rows) to each class mean: `[n, classes]`.
    ///
    /// A few queries (the camera case) go through matrix-vector products over the row-major means, one
    /// contiguous dot per class; a matrix product would repack the whole `classes x d` matrix per call
    /// (1,000 x 1280, one query: 932 us as a matrix product, 417 us as mat-vec; benches/README.md).
    pub fn scores(&self, features: ArrayView2<f32>) -> Array2<f32> {
        if features.nrows() > SMALL_BATCH {
            return features.dot(&self.means.t());
        }
        let mut out = Array2::zeros((features.nrows(), self.classes()));
        for (mut o, q) in out.rows_mut().into_iter().zip(features.rows()) {
            o.assign(&self.means.dot(&q));
        }
        out
    }

    /// The `k` nearest classes for one query's scores, nearest first.
    pub fn top_k(&self, scores: ArrayView1<f32>, k: usize) -> Vec<Match> {
        best_k(scores.iter().copied().enumerate().collect(), k)
    }

    /// The `k` nearest classes to one normalised query, nearest first: the same answer as
    /// `top_k(scores(query))`, through the int8 scan (module docs) instead of an f32 product.
    pub fn nearest(&self, query: ArrayView1<f32>, k: usize) -> Vec<Match> {
        let q = query.to_vec();
        // f32 rounding in the exact rescoring: |fl(q.mu) - q.mu| <= d eps sum|q_i mu_i| <= d eps.
        let slack = 2.0 * self.dim as f64 * f32::EPSILON as f64;
        let k = k.max(1);
        // Rescore in order of the upper bounds; once a bound is below the k-th best score so far, no
        // later class (lower bounds still) can enter the k best.
        let mut scored = Vec::new();
        let mut top: Vec<f32> = Vec::with_capacity(k + 1);
        for (class, high) in self.index.candidates(&q, k, slack) {
            if top.len() == k && high < top[k - 1] as f64 {
                break;
            }
            let score = self.means.row(class).dot(&query);
            scored.push((class, score));
            let at = top.partition_point(|&t| t >= score);
            top.insert(at, score);
            top.truncate(k);
        }
        best_k(scored, k)
    }

    /// Cosine similarity of one normalised query to one class mean.
    pub fn cosine(&self, class: usize, query: ArrayView1<f32>) -> f32 {
        self.means.row(class).dot(&query)
    }

    /// Whether a query whose nearest class is `m` lies beyond that class's threshold (module docs).
    pub fn is_unknown(&self, m: &Match, factor: f32) -> bool {
        match self.limits(factor).get(m.class) {
            None => false,
            Some(limit) => self.distance2_to_raw_mean(m) > limit,
        }
    }

    /// Squared distance of a normalised query to the class's raw mean, from its cosine to the
    /// renormalised mean: ||f - m||^2 = 1 - 2 ||m|| cos + ||m||^2.
    pub fn distance2_to_raw_mean(&self, m: &Match) -> f64 {
        core_ncm::distance2_to_raw_mean(self.raw_norm2[m.class], m.score)
    }

    /// Joins class `from` into class `into` (the caller then removes `from`): sums and counts add, exactly.
    pub fn merge_class(&mut self, into: usize, from: usize) {
        let add = self.sums[from].clone();
        for (s, a) in self.sums[into].iter_mut().zip(add) {
            *s += a;
        }
        self.counts[into] = self.counts[into].saturating_add(self.counts[from]);
        self.refresh_class(into);
        self.index.update(self.means.view(), into);
    }

    /// The unknown rule's limits, class by class on demand: [`Ncm::thresholds`] without computing every
    /// class's (the pooled spread is one pass over the classes, without allocating).
    pub fn limits(&self, factor: f32) -> Limits<'_> {
        Limits {
            ncm: self,
            factor,
            pooled: core_ncm::pooled_spread(&self.counts, &self.raw_norm2),
        }
    }

    /// Per-class squared-distance limits (module docs); `None` where no limit applies.
    pub fn thresholds(&self, factor: f32) -> Vec<Option<f64>> {
        let mut out = vec![None; self.classes()];
        core_ncm::thresholds(&self.counts, &self.raw_norm2, factor, &mut out);
        out
    }

    /// Rebuilds the derived matrix and index after a load or a structural change.
    pub fn refresh(&mut self) {
        let classes = self.classes();
        self.means = Array2::zeros((classes, self.dim));
        self.raw_norm2 = vec![0.0; classes];
        for c in 0..self.classes() {
            self.refresh_class(c);
        }
        // A decoded Ncm's index is the skipped field's default (width 0): give it the real width.
        self.index = MeanIndex::new(self.dim);
        self.index.rebuild(self.means.view());
    }

    fn refresh_class(&mut self, class: usize) {
        let mut row = self.means.index_axis_mut(Axis(0), class);
        let row = row
            .as_slice_mut()
            .expect("rows of a standard-layout matrix are contiguous");
        self.raw_norm2[class] =
            core_ncm::renormalised_mean(&self.sums[class], self.counts[class], row);
    }

    /// Checks a decoded head for consistency (every row `dim` wide, counts positive, values finite).
    pub fn check(&self) -> Result<(), String> {
        self.check_classes(0..self.classes())
    }

    /// [`Ncm::check`] of some classes only (those a learn call changed): O(d) a class.
    pub fn check_classes(&self, classes: impl IntoIterator<Item = usize>) -> Result<(), String> {
        if self.sums.len() != self.counts.len() {
            return Err(format!(
                "{} class sums but {} counts",
                self.sums.len(),
                self.counts.len()
            ));
        }
        for c in classes {
            let (s, n) = (&self.sums[c], self.counts[c]);
            if s.len() != self.dim {
                return Err(format!(
                    "class {c} sum has {} values, expected {}",
                    s.len(),
                    self.dim
                ));
            }
            if n == 0 || n > MAX_COUNT || s.iter().any(|v| !v.is_finite()) {
                return Err(format!("class {c} has count {n} or a non-finite sum"));
            }
        }
        Ok(())
    }

    /// What [`Ncm::restore`] needs to undo updates of the `touched` classes and every class added after
    /// this point: their sums and counts, O(d) a touched class (not a copy of all `classes x d`).
    pub fn undo_point(&self, touched: &[usize]) -> NcmUndo {
        NcmUndo {
            classes: self.classes(),
            saved: touched
                .iter()
                .map(|&c| (c, self.sums[c].clone(), self.counts[c]))
                .collect(),
        }
    }

    /// Returns to an [`Ncm::undo_point`]: classes added since are dropped, the touched ones get their
    /// sums and counts back, and the derived matrix and index are rebuilt (O(classes x d), on failure only).
    pub fn restore(&mut self, undo: NcmUndo) {
        self.sums.truncate(undo.classes);
        self.counts.truncate(undo.classes);
        for (c, sum, count) in undo.saved {
            self.sums[c] = sum;
            self.counts[c] = count;
        }
        self.refresh();
    }
}

/// See [`Ncm::limits`].
pub struct Limits<'a> {
    ncm: &'a Ncm,
    factor: f32,
    pooled: Option<f64>,
}

impl Limits<'_> {
    /// Class `class`'s squared-distance limit; `None` where no limit applies.
    pub fn get(&self, class: usize) -> Option<f64> {
        let n = &self.ncm;
        core_ncm::limit(
            n.counts[class],
            n.raw_norm2[class],
            self.factor,
            self.pooled?,
        )
    }
}

/// An [`Ncm`] as it was before a learn call, for the touched classes (see [`Ncm::undo_point`]).
#[derive(Debug)]
pub struct NcmUndo {
    classes: usize,
    saved: Vec<(usize, Vec<f64>, u64)>,
}

/// The `k` best of `(class, cosine)` pairs, nearest first (ties: lower class index first).
fn best_k(mut scored: Vec<(usize, f32)>, k: usize) -> Vec<Match> {
    // The core breaks ties by position: put the pairs in class order first.
    scored.sort_unstable_by_key(|&(class, _)| class);
    let scores: Vec<f32> = scored.iter().map(|&(_, s)| s).collect();
    let mut order = vec![0; scores.len()];
    core_ncm::top_k(&scores, &mut order, k)
        .iter()
        .map(|&i| Match::new(scored[i].0, scored[i].1))
        .collect()
}

impl Match {
    /// A class's answer from its cosine similarity to the (normalised) query.
    pub fn new(class: usize, score: f32) -> Match {
        Match {
            class,
            score,
            distance: core_ncm::distance(score),
        }
    }
}

/// Scales each row to unit L2 norm in place (zero rows stay zero).
pub fn normalise_rows(features: &mut Array2<f32>) {
    for mut row in features.rows_mut() {
        match row.as_slice_mut() {
            Some(x) => core_ncm::normalise(x),
            None => {
                let mut x = row.to_vec();
                core_ncm::normalise(&mut x);
                row.assign(&ndarray::ArrayView1::from(&x));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use proptest::prelude::*;

    fn normalised(rows: &[Vec<f32>]) -> Array2<f32> {
        let d = rows[0].len();
        let mut a = Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap();
        normalise_rows(&mut a);
        a
    }

    /// Brute force: average the normalised rows of each class in f64, renormalise, pick the smallest
    /// Euclidean distance.
    fn brute_force(classes: &[Array2<f32>], query: &[f32]) -> (usize, f64) {
        let qn = query
            .iter()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let q: Vec<f64> = query.iter().map(|&x| x as f64 / qn).collect();
        let mut best = (usize::MAX, f64::INFINITY);
        for (c, rows) in classes.iter().enumerate() {
            let mut mean = vec![0.0f64; q.len()];
            for r in rows.rows() {
                for (m, &x) in mean.iter_mut().zip(r) {
                    *m += x as f64 / rows.nrows() as f64;
                }
            }
            let n = mean.iter().map(|m| m * m).sum::<f64>().sqrt();
            let d = q
                .iter()
                .zip(&mean)
                .map(|(a, m)| (a - m / n).powi(2))
                .sum::<f64>()
                .sqrt();
            if d < best.1 {
                best = (c, d);
            }
        }
        best
    }

    fn rows_strategy(d: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
        prop::collection::vec(prop::collection::vec(0.05f32..1.0, d), 1..12)
    }

    proptest! {
        #[test]
        fn prediction_matches_brute_force(a in rows_strategy(6), b in rows_strategy(6), c in rows_strategy(6),
                                          q in prop::collection::vec(0.05f32..1.0, 6)) {
            let classes = [normalised(&a), normalised(&b), normalised(&c)];
            let mut ncm = Ncm::new(6);
            for rows in &classes {
                let k = ncm.add_class();
                ncm.update(k, rows.view());
            }
            let query = normalised(std::slice::from_ref(&q));
            let scores = ncm.scores(query.view());
            let top = ncm.top_k(scores.row(0), 3);
            let (want, want_d) = brute_force(&classes, &q);
            prop_assert!((top[0].distance as f64 - want_d).abs() < 1e-4);
            // Ties within float noise may pick either class; otherwise the class must agree.
            if top[0].class != want {
                prop_assert!((top[0].distance - top[1].distance).abs() < 1e-5);
            }
        }

        #[test]
        fn top_k_is_the_head_of_a_full_sort(scores in prop::collection::vec(-1.0f32..1.0, 1..50), k in 1usize..60) {
            let ncm = Ncm::new(1);
            let got: Vec<usize> = ncm.top_k(ndarray::ArrayView1::from(&scores), k).iter().map(|m| m.class).collect();
            let mut want: Vec<usize> = (0..scores.len()).collect();
            want.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
            want.truncate(k);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn incremental_means_equal_batch_means(rows in rows_strategy(5), split in 0usize..12) {
            let all = normalised(&rows);
            let split = split.min(all.nrows());
            let mut batch = Ncm::new(5);
            let k = batch.add_class();
            batch.update(k, all.view());
            let mut inc = Ncm::new(5);
            let k = inc.add_class();
            inc.update(k, all.slice(ndarray::s![split.., ..]));
            inc.update(k, all.slice(ndarray::s![..split, ..]));
            prop_assert_eq!(batch.count(0), inc.count(0));
            for (x, y) in batch.raw_mean(0).iter().zip(inc.raw_mean(0)) {
                prop_assert!((x - y).abs() < 1e-6);
            }
        }
    }

    /// Classes whose means are near-duplicates (a shared base plus a small per-class offset), so that the
    /// int8 scores cannot tell many of them apart and the exact rescoring has to.
    fn crowded(classes: usize, d: usize, spread: f32, seed: u64) -> (Ncm, Array2<f32>) {
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        let base: Vec<f32> = (0..d).map(|_| next()).collect();
        let mut h = Ncm::new(d);
        for _ in 0..classes {
            let c = h.add_class();
            let mut rows = Array2::from_shape_fn((2, d), |(_, j)| base[j] + spread * next());
            normalise_rows(&mut rows);
            h.update(c, rows.view());
        }
        let mut queries = Array2::from_shape_fn((20, d), |(_, j)| base[j] + spread * next());
        normalise_rows(&mut queries);
        (h, queries)
    }

    #[test]
    fn limits_class_by_class_equal_the_thresholds() {
        let (mut h, _) = crowded(50, 16, 0.05, 4);
        // A class of one capture (no spread of its own) among classes with many.
        let one = h.add_class();
        h.update(one, normalised(&[vec![1.0; 16]]).view());
        for factor in [0.0, 0.5, 1.5] {
            let all = h.thresholds(factor);
            let limits = h.limits(factor);
            for (c, want) in all.iter().enumerate() {
                assert_eq!(limits.get(c), *want, "class {c}, factor {factor}");
            }
            assert_eq!(all[0].is_some(), factor > 0.0);
        }
        // No class with two captures: no limits either way.
        let mut single = Ncm::new(4);
        let c = single.add_class();
        single.update(c, normalised(&[vec![1.0, 0.0, 0.0, 0.0]]).view());
        assert_eq!(
            (single.thresholds(1.5)[0], single.limits(1.5).get(0)),
            (None, None)
        );
    }

    #[test]
    fn the_int8_scan_returns_the_exact_nearest_classes() {
        for (spread, seed) in [(1.0, 1), (0.05, 2), (0.002, 3)] {
            let (h, queries) = crowded(300, 96, spread, seed);
            for q in queries.rows() {
                let exact = h.scores(q.insert_axis(Axis(0)));
                for k in [1, 3, 10, 300, 400] {
                    assert_eq!(
                        h.nearest(q, k),
                        h.top_k(exact.row(0), k),
                        "spread {spread}, k {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_int8_scan_follows_added_and_removed_classes() {
        let (mut h, queries) = crowded(40, 32, 0.1, 4);
        h.remove_class(7);
        h.remove_class(0);
        let empty = h.add_class();
        let q = queries.row(0);
        let exact = h.scores(q.insert_axis(Axis(0)));
        assert_eq!(h.nearest(q, 38), h.top_k(exact.row(0), 38));
        assert_eq!(
            h.nearest(q, 39).last().unwrap().class,
            empty,
            "an empty class scores 0"
        );
    }

    #[test]
    fn small_and_large_batches_score_alike() {
        // The mat-vec path (<= SMALL_BATCH queries) and the matrix-product path must agree.
        let mut ncm = Ncm::new(7);
        for c in 0..5 {
            let k = ncm.add_class();
            let rows: Vec<Vec<f32>> = (0..3)
                .map(|i| {
                    (0..7)
                        .map(|j| ((i * 5 + j * 3 + c) % 11) as f32 + 0.1)
                        .collect()
                })
                .collect();
            ncm.update(k, normalised(&rows).view());
        }
        let queries: Vec<Vec<f32>> = (0..SMALL_BATCH + 3)
            .map(|i| (0..7).map(|j| ((i * 7 + j) % 13) as f32 + 0.2).collect())
            .collect();
        let q = normalised(&queries);
        let big = ncm.scores(q.view());
        for i in 0..q.nrows() {
            let one = ncm.scores(q.slice(ndarray::s![i..i + 1, ..]));
            for (a, b) in one.row(0).iter().zip(big.row(i)) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn forgetting_a_class_leaves_the_others_unchanged() {
        let mut ncm = Ncm::new(2);
        for rows in [[1.0f32, 0.0], [0.0, 1.0], [-1.0, 0.0]] {
            let k = ncm.add_class();
            ncm.update(k, normalised(&[rows.to_vec()]).view());
        }
        ncm.remove_class(1);
        let q = normalised(&[vec![-0.9, 0.1]]);
        let top = ncm.top_k(ncm.scores(q.view()).row(0), 2);
        assert_eq!((top[0].class, top[1].class), (1, 0));
        assert_eq!(ncm.raw_mean(1), vec![-1.0, 0.0]);
    }

    #[test]
    fn spread_from_sums_equals_the_mean_squared_distance() {
        // Two classes with known spreads; the threshold must be factor * shrunk * (n+1)/n computed by hand.
        let a = normalised(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        let b = normalised(&[vec![1.0, 1.0], vec![1.0, 1.0], vec![1.0, 1.0]]);
        let mut ncm = Ncm::new(2);
        let ka = ncm.add_class();
        ncm.update(ka, a.view());
        let kb = ncm.add_class();
        ncm.update(kb, b.view());
        // Class a: mean (0.5, 0.5); each capture is at squared distance 0.5; spread (in-sample) 0.5,
        // unbiased 0.5 * 2 / 1 = 1.0. Class b: spread 0 (up to f32 rounding of 1/sqrt 2, hence the
        // 1e-6 tolerance). Pooled = (1 * 1.0 + 2 * 0.0) / 3.
        let pooled = 1.0 / 3.0;
        let shrunk_a = (1.0 * 1.0 + 2.0 * pooled) / (1.0 + 2.0);
        let shrunk_b = (0.0 + 2.0 * pooled) / (2.0 + 2.0);
        let t = ncm.thresholds(1.0);
        assert!((t[0].unwrap() - shrunk_a * 1.5).abs() < 1e-6, "{t:?}");
        assert!((t[1].unwrap() - shrunk_b * 4.0 / 3.0).abs() < 1e-6, "{t:?}");
        // A query on class a's mean is known; one opposite to it is not.
        let near = normalised(&[vec![1.0, 1.0]]);
        let far = normalised(&[vec![-1.0, -1.0]]);
        for (q, unknown) in [(near, false), (far, true)] {
            let top = ncm.top_k(ncm.scores(q.view()).row(0), 1)[0];
            assert_eq!(ncm.is_unknown(&top, DEFAULT_UNKNOWN_FACTOR), unknown);
        }
    }

    #[test]
    fn identical_captures_do_not_reject_every_near_query() {
        let mut ncm = Ncm::new(3);
        let k = ncm.add_class();
        ncm.update(
            k,
            normalised(&[vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0]]).view(),
        );
        let near = normalised(&[vec![1.0, 0.01, 0.0]]);
        let top = ncm.top_k(ncm.scores(near.view()).row(0), 1)[0];
        assert!(!ncm.is_unknown(&top, DEFAULT_UNKNOWN_FACTOR));
        let far = normalised(&[vec![0.0, 1.0, 0.0]]);
        let top = ncm.top_k(ncm.scores(far.view()).row(0), 1)[0];
        assert!(ncm.is_unknown(&top, DEFAULT_UNKNOWN_FACTOR));
    }

    #[test]
    fn no_threshold_before_any_class_has_two_captures() {
        let mut ncm = Ncm::new(2);
        let k = ncm.add_class();
        ncm.update(k, normalised(&[vec![1.0, 0.0]]).view());
        assert_eq!(ncm.thresholds(2.0), vec![None]);
    }
}
