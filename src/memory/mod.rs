//! The feature memory: a bounded set of stored feature vectors for the heads that replay.
//!
//! NCM does not need it (its means are exact); it is there for replay heads, and it is what a privacy
//! deployment switches off (`--memory-budget 0`).
//!
//! # Budget
//!
//! The budget counts the bytes of the stored vectors: `4 d` per vector in f32, `2 d` in f16, `d + 4` in
//! int8 (the values plus one f32 scale). The memory never holds more than `budget / bytes_per_vector`
//! vectors, so the budget is honoured exactly; `info` reports the bytes used.
//!
//! # Eviction policy: class-balanced herding
//!
//! With capacity `M` and `C` classes, class `i` (in learning order) may keep `M / C` vectors, plus one for
//! the first `M mod C` classes. Within a class, vectors are kept in herding order (iCaRL): each next
//! vector is the candidate that brings the running mean of the kept ones closest to the class's exact
//! mean over every capture ever seen (taken from the NCM sums). When a class learns more captures, its
//! kept vectors and the new ones compete in a fresh herding pass; when a new class shrinks the quotas,
//! each class drops its last-chosen vectors first.

mod storage;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

pub use storage::{quantise_i8, Storage, Stored};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureMemory {
    budget: u64,
    storage: Storage,
    dim: usize,
    /// Kept vectors per class, in herding order.
    classes: Vec<Vec<Stored>>,
}

impl FeatureMemory {
    pub fn new(budget: u64, storage: Storage, dim: usize) -> Self {
        FeatureMemory {
            budget,
            storage,
            dim,
            classes: Vec::new(),
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn storage(&self) -> Storage {
        self.storage
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes one stored vector costs.
    pub fn vector_bytes(&self) -> u64 {
        self.storage.bytes(self.dim)
    }

    /// How many vectors fit in the budget.
    pub fn capacity(&self) -> usize {
        (self.budget / self.vector_bytes()) as usize
    }

    pub fn len(&self) -> usize {
        self.classes.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes used by stored vectors (never more than the budget).
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * self.vector_bytes()
    }

    pub fn class_len(&self, class: usize) -> usize {
        self.classes[class].len()
    }

    /// The kept vectors of a class, dequantised, as rows.
    pub fn class_features(&self, class: usize) -> Array2<f32> {
        let rows = &self.classes[class];
        let mut out = Array2::zeros((rows.len(), self.dim));
        for (mut row, s) in out.rows_mut().into_iter().zip(rows) {
            s.write_to(row.as_slice_mut().expect("row-major"));
        }
        out
    }

    /// Checks that `classes` classes can each keep at least one vector. A budget of 0 turns the memory
    /// off and always fits.
    pub fn check_fits(&self, classes: usize) -> Result<()> {
        if self.budget > 0 && self.capacity() < classes {
            return Err(Error::Budget {
                budget: self.budget,
                message: format!(
                    "holds {} vectors of {} bytes ({:?}, d = {}), too few for one per class with {classes} classes; raise --memory-budget to at least {} or set it to 0 to keep no features",
                    self.capacity(),
                    self.vector_bytes(),
                    self.storage,
                    self.dim,
                    classes as u64 * self.vector_bytes()
                ),
            });
        }
        Ok(())
    }

    pub fn add_class(&mut self) {
        self.classes.push(Vec::new());
        self.rebalance();
    }

    pub fn remove_class(&mut self, class: usize) {
        self.classes.remove(class);
        self.rebalance();
    }

    /// Offers new captures (raw features, rows) of a class. `target` is the class's exact mean of
    /// normalised features after these captures were counted.
    pub fn offer(&mut self, class: usize, features: ArrayView2<f32>, target: &[f32]) {
        let quota = self.quota(class);
        if quota == 0 {
            return;
        }
        let mut candidates = self.class_features(class);
        if features.nrows() > 0 {
            candidates = ndarray::concatenate![ndarray::Axis(0), candidates, features];
        }
        let order = herding(candidates.view(), target, quota);
        self.classes[class] = order
            .into_iter()
            .map(|i| {
                Stored::quantise(
                    self.storage,
                    candidates.row(i).as_slice().expect("row-major"),
                )
            })
            .collect();
    }

    /// The number of vectors class `class` may keep now.
    pub fn quota(&self, class: usize) -> usize {
        let c = self.classes.len();
        if c == 0 || self.budget == 0 {
            return 0;
        }
        let m = self.capacity();
        m / c + usize::from(class < m % c)
    }

    /// Truncates every class to its quota (dropping the last-chosen vectors first).
    fn rebalance(&mut self) {
        for c in 0..self.classes.len() {
            let q = self.quota(c);
            self.classes[c].truncate(q);
        }
    }

    /// Consistency of a decoded memory: widths, budget, class count.
    pub fn check(&self, classes: usize) -> std::result::Result<(), String> {
        if self.dim == 0 {
            return Err("feature memory is 0-d".into());
        }
        if self.classes.len() != classes {
            return Err(format!(
                "memory has {} classes, the head {classes}",
                self.classes.len()
            ));
        }
        if self.bytes() > self.budget {
            return Err(format!(
                "memory holds {} bytes, over its budget of {}",
                self.bytes(),
                self.budget
            ));
        }
        let mut row = vec![0.0; self.dim];
        for (c, rows) in self.classes.iter().enumerate() {
            if let Some(bad) = rows
                .iter()
                .find(|s| s.len() != self.dim || s.storage() != self.storage)
            {
                return Err(format!(
                    "class {c} keeps a {:?} vector of {} values, expected {:?} of {}",
                    bad.storage(),
                    bad.len(),
                    self.storage,
                    self.dim
                ));
            }
            for stored in rows {
                stored.write_to(&mut row);
                if row.iter().any(|v| !v.is_finite()) {
                    return Err(format!("class {c} keeps a vector with non-finite values"));
                }
            }
        }
        Ok(())
    }
}

/// iCaRL herding: indices of up to `m` rows, in the order that keeps the running mean of the chosen
/// (normalised) rows closest to `target`.
pub fn herding(rows: ArrayView2<f32>, target: &[f32], m: usize) -> Vec<usize> {
    let mut normed = rows.to_owned();
    crate::head::normalise_rows(&mut normed);
    let d = target.len();
    let mut chosen = Vec::with_capacity(m.min(rows.nrows()));
    let mut taken = vec![false; rows.nrows()];
    let mut sum = vec![0.0f64; d];
    while chosen.len() < m.min(rows.nrows()) {
        let k = (chosen.len() + 1) as f64;
        let mut best = (f64::INFINITY, usize::MAX);
        for (i, row) in normed.rows().into_iter().enumerate() {
            if taken[i] {
                continue;
            }
            let dist: f64 = row
                .iter()
                .zip(&sum)
                .zip(target)
                .map(|((&x, &s), &t)| (t as f64 - (s + x as f64) / k).powi(2))
                .sum();
            if dist < best.0 {
                best = (dist, i);
            }
        }
        taken[best.1] = true;
        for (s, &x) in sum.iter_mut().zip(normed.row(best.1)) {
            *s += x as f64;
        }
        chosen.push(best.1);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn herding_picks_the_row_closest_to_the_mean_first() {
        let rows = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
        // Target: the mean of the normalised rows. The diagonal row is the closest single point to it.
        let s = 1.0 / 2f32.sqrt();
        let target = [(1.0 + s) / 3.0, (1.0 + s) / 3.0];
        let order = herding(rows.view(), &target, 3);
        assert_eq!(order[0], 2);
        assert_eq!(order.len(), 3);
    }

    #[test]
    fn a_budget_too_small_for_one_vector_per_class_is_refused() {
        let mem = FeatureMemory::new(100, Storage::F32, 16); // 64 bytes a vector: 1 fits
        assert!(mem.check_fits(1).is_ok());
        let e = mem.check_fits(2).unwrap_err().to_string();
        assert!(e.contains("100 bytes") && e.contains("128"), "{e}");
        assert!(FeatureMemory::new(0, Storage::F32, 16)
            .check_fits(50)
            .is_ok());
    }

    proptest! {
        #[test]
        fn the_budget_is_never_exceeded_and_quotas_are_balanced(
            budget in 0u64..4000,
            storage in prop::sample::select(vec![Storage::F32, Storage::F16, Storage::Int8]),
            steps in prop::collection::vec((0usize..6, 1usize..20), 1..25),
        ) {
            let d = 8;
            let mut mem = FeatureMemory::new(budget, storage, d);
            let mut classes = 0usize;
            for (class, n) in steps {
                if class >= classes {
                    if mem.check_fits(classes + 1).is_err() {
                        continue;
                    }
                    mem.add_class();
                    classes += 1;
                }
                let class = class.min(classes - 1);
                let feats = Array2::from_shape_fn((n, d), |(i, j)| ((i * 7 + j * 3 + class) % 11) as f32 + 0.5);
                mem.offer(class, feats.view(), &vec![0.3; d]);
                prop_assert!(mem.bytes() <= budget);
                // Every class within its quota, and the quotas share out exactly the capacity.
                for c in 0..classes {
                    prop_assert!(mem.class_len(c) <= mem.quota(c));
                }
                let quotas: usize = (0..classes).map(|c| mem.quota(c)).sum();
                prop_assert_eq!(quotas, if budget == 0 { 0 } else { mem.capacity() });
            }
            prop_assert!(mem.check(classes).is_ok());
        }
    }
}
