//! The learner: learn / classify / forget / save / load over features from one backbone.
//!
//! It works on feature vectors, not images: [`crate::embed::Embedder`] turns captures into features, so the
//! learner is the same on every runtime and in tests that feed it precomputed features.
//!
//! ```
//! use edgecl::learner::{Learner, LearnerConfig};
//! use edgecl::state::ModelRef;
//! use ndarray::array;
//!
//! let model = ModelRef { name: "toy".into(), sha256: [0; 32], dim: 2, path: "toy.onnx".into() };
//! let mut learner = Learner::new(model, LearnerConfig::default());
//! learner.learn("left", array![[-1.0, 0.1], [-0.9, -0.1]].view())?;
//! learner.learn("right", array![[1.0, 0.0], [0.8, 0.2]].view())?;
//! let p = &learner.classify(array![[0.9, 0.05]].view(), 1)?[0];
//! assert_eq!(p.label.as_deref(), Some("right"));
//! # Ok::<(), edgecl::Error>(())
//! ```
//!
//! Every mutating call validates first and changes nothing on error.
//!
//! With the privacy head ([`crate::head::privacy`]) a class's captures wait in this `Learner`'s RAM until
//! K of them have arrived ([`Learner::pending`]); pending captures are never part of the state file.

mod audit;
mod private;

pub use audit::{Audit, AuditArray, AuditCheck};
pub use private::{PendingClass, PrivacyInfo};

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::head::{ncm::DEFAULT_UNKNOWN_FACTOR, normalise_rows, Head, HeadConfig, Match, Ncm};
use crate::memory::{FeatureMemory, Storage};
use crate::state::{self, ModelRef, StateBody};

/// Settings fixed when a state is created.
#[derive(Debug, Clone, Copy)]
pub struct LearnerConfig {
    /// Byte budget of the feature memory. `None`: [`DEFAULT_MEMORY_BUDGET`] for the heads that replay from
    /// it (`linear` with replay or A-GEM) and none for the others, whose statistics are exact (NCM, LDA,
    /// Mahalanobis, RanPAC) or which keep no captures (privacy). `Some(0)` keeps none; `Some(b)` keeps
    /// up to `b` bytes for any head (privacy mode excepted).
    pub memory_budget: Option<u64>,
    pub storage: Storage,
    /// See [`crate::head::ncm`]: 0 disables the unknown answer.
    pub unknown_factor: f32,
    /// Which classifier head, with its settings.
    pub head: HeadConfig,
}

/// The feature memory of the heads that replay, unless a budget is given.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 * 1024;

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            memory_budget: None,
            storage: Storage::Int8,
            unknown_factor: DEFAULT_UNKNOWN_FACTOR,
            head: HeadConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Learner {
    body: StateBody,
    /// Privacy mode: captures of classes with fewer than K waiting, by class name (RAM only).
    pending: Vec<(String, Array2<f32>)>,
    /// What loading migrated from an earlier release's state (written back at the next save).
    migrated: Vec<String>,
}

/// What [`Learner::learn_many`] puts back if learning fails.
struct Undo {
    classes: usize,
    means: crate::head::NcmUndo,
    head: Head,
    memory: FeatureMemory,
    pending: Vec<(String, Array2<f32>)>,
}

/// One class's answer for one query.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub class: String,
    /// The head's score (higher is better): NCM's cosine similarity to the class mean (1 = same
    /// direction); SLDA's discriminant; minus the squared Mahalanobis distance; RanPAC's ridge output; the
    /// linear head's softmax probability.
    pub score: f32,
    /// Distance between the normalised query and the normalised class mean (0..=2).
    pub distance: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The nearest class, or `None` when it is too far away to count (`unknown`).
    pub label: Option<String>,
    pub unknown: bool,
    /// Nearest classes first.
    pub top: Vec<Ranked>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassInfo {
    pub name: String,
    pub captures: u64,
    pub memory_vectors: usize,
    /// Squared distance beyond which a query near this class is unknown (`None`: no limit yet).
    pub unknown_threshold: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub model: String,
    pub model_sha256: String,
    pub model_path: String,
    pub dim: u32,
    /// The head and its settings (`ncm`, `slda`, `linear+replay`, ...).
    pub head: String,
    /// Bytes of the head's own state (0 for NCM: its sums are the class statistics every head keeps).
    pub head_bytes: usize,
    pub classes: Vec<ClassInfo>,
    pub memory_budget: u64,
    pub memory_bytes: u64,
    pub memory_storage: Storage,
    pub memory_vectors: usize,
    pub memory_capacity: usize,
    pub unknown_factor: f32,
    /// Size of the encoded state file.
    pub state_bytes: usize,
    /// Privacy mode's K rule, DP and pending classes (`None` for the other heads).
    pub privacy: Option<PrivacyInfo>,
}

impl Learner {
    pub fn new(model: ModelRef, config: LearnerConfig) -> Learner {
        let dim = model.dim as usize;
        let head = Head::new(dim, &config.head);
        // Privacy mode keeps no feature memory, whatever the budget asked for.
        let budget = match (head.privacy_k(), config.memory_budget) {
            (Some(_), _) => 0,
            (None, Some(b)) => b,
            (None, None) if head.replays() => DEFAULT_MEMORY_BUDGET,
            (None, None) => 0,
        };
        Learner {
            body: StateBody {
                model,
                class_names: Vec::new(),
                means: Ncm::new(dim),
                head,
                memory: FeatureMemory::new(budget, config.storage, dim),
                unknown_factor: config.unknown_factor,
            },
            pending: Vec::new(),
            migrated: Vec::new(),
        }
    }

    /// Reads a state file (no lock needed: see [`state`]).
    pub fn load(path: &std::path::Path) -> Result<Learner> {
        let (body, migrated) = state::load_migrating(path)?;
        Ok(Learner {
            body,
            pending: Vec::new(),
            migrated,
        })
    }

    /// Decodes a state file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Learner, String> {
        let (body, migrated) = state::decode_migrating(bytes)?;
        Ok(Learner {
            body,
            pending: Vec::new(),
            migrated,
        })
    }

    /// What loading migrated from an earlier release's state (empty for a current one).
    pub fn migrated(&self) -> &[String] {
        &self.migrated
    }

    /// Writes the state atomically to the locked path (see [`state::save`]).
    pub fn save(&self, lock: &state::StateLock) -> Result<()> {
        state::save(lock, &self.body)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        state::encode(&self.body)
    }

    pub fn model(&self) -> &ModelRef {
        &self.body.model
    }

    pub fn dim(&self) -> usize {
        self.body.model.dim as usize
    }

    pub fn class_names(&self) -> &[String] {
        &self.body.class_names
    }

    pub fn memory(&self) -> &FeatureMemory {
        &self.body.memory
    }

    pub fn set_unknown_factor(&mut self, factor: f32) -> Result<()> {
        if !factor.is_finite() || factor < 0.0 {
            return Err(Error::Invalid(format!(
                "unknown factor {factor} must be a non-negative number"
            )));
        }
        self.body.unknown_factor = factor;
        Ok(())
    }

    /// Refuses features from a model other than the state's.
    pub fn check_model(&self, name: &str, sha256: &[u8; 32]) -> Result<()> {
        if &self.body.model.sha256 != sha256 {
            return Err(Error::WrongModel {
                expected: self.body.model.name.clone(),
                expected_sha: crate::card::hex(&self.body.model.sha256),
                actual: name.to_string(),
                actual_sha: crate::card::hex(sha256),
            });
        }
        Ok(())
    }

    fn check_features(&self, features: ArrayView2<f32>) -> Result<()> {
        if features.ncols() != self.dim() {
            return Err(Error::Dimension {
                what: "features",
                expected: self.dim(),
                actual: features.ncols(),
            });
        }
        if features.iter().any(|x| !x.is_finite()) {
            return Err(Error::Invalid("features contain NaN or infinity".into()));
        }
        Ok(())
    }

    /// Learns captures (raw backbone features, one row each) of a class, new or known.
    pub fn learn(&mut self, class: &str, features: ArrayView2<f32>) -> Result<()> {
        self.learn_many(&[class], features, &vec![0; features.nrows()])
    }

    /// Learns a batch of captures of several classes at once (one task for the linear head): row `i` of
    /// `features` shows `classes[labels[i]]`. Classes may be new or known.
    pub fn learn_many(
        &mut self,
        classes: &[&str],
        features: ArrayView2<f32>,
        labels: &[usize],
    ) -> Result<()> {
        self.check_features(features)?;
        let owned = classes
            .iter()
            .map(|c| crate::class_name::normalise(c))
            .collect::<Result<Vec<String>>>()?;
        let names: Vec<&str> = owned.iter().map(String::as_str).collect();
        if features.nrows() == 0 {
            return Err(Error::Invalid(format!(
                "no captures to learn {:?} from",
                names.join(", ")
            )));
        }
        if labels.len() != features.nrows() || labels.iter().any(|&l| l >= names.len()) {
            return Err(Error::Invalid(format!(
                "{} labels for {} captures of {} classes",
                labels.len(),
                features.nrows(),
                names.len()
            )));
        }
        // Learning works on the state in place; if it fails or leaves the state inconsistent (SGD
        // diverging, or statistics from a tampered file that overflow), the state before it comes back.
        // Only what a learn call can change is kept for that: the NCM statistics of the named classes
        // (learning adds classes and updates named ones, nothing else), the head and the memory (bounded
        // by the budget), so a call costs O(d) a named class, not a copy of every class's statistics.
        let touched: Vec<usize> = names
            .iter()
            .filter_map(|n| self.body.class_names.iter().position(|c| c == n))
            .collect();
        let undo = Undo {
            classes: self.body.class_names.len(),
            means: self.body.means.undo_point(&touched),
            head: self.body.head.clone(),
            memory: self.body.memory.clone(),
            pending: self.pending.clone(),
        };
        let result = match self.body.head.privacy_k() {
            Some(k) => self.learn_private(&names, features, labels, k as usize),
            None => self.learn_checked(&names, features, labels),
        }
        .and_then(|()| {
            self.check_learnt(&touched, undo.classes).map_err(|m| {
                Error::Invalid(format!(
                    "learning would leave the state inconsistent ({m}); nothing was changed"
                ))
            })
        });
        if result.is_err() {
            let b = &mut self.body;
            b.class_names.truncate(undo.classes);
            b.means.restore(undo.means);
            (b.head, b.memory, self.pending) = (undo.head, undo.memory, undo.pending);
        }
        result
    }

    /// [`StateBody::check`] of what a learn call changed: the `touched` classes, every class from
    /// `first_new` on, the head and the memory (names stay unique: learning adds only unknown ones).
    fn check_learnt(&self, touched: &[usize], first_new: usize) -> std::result::Result<(), String> {
        let b = &self.body;
        let classes = b.means.classes();
        if b.class_names.len() != classes {
            return Err(format!(
                "{} class names for {classes} classes",
                b.class_names.len()
            ));
        }
        b.means
            .check_classes(touched.iter().copied().chain(first_new..classes))?;
        b.head.check(self.dim(), classes)?;
        b.memory.check(classes)
    }

    /// [`Learner::learn_many`] after validation.
    fn learn_checked(
        &mut self,
        names: &[&str],
        features: ArrayView2<f32>,
        labels: &[usize],
    ) -> Result<()> {
        let b = &mut self.body;
        let mut fresh: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !b.class_names.iter().any(|c| c == n))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        b.memory.check_fits(b.class_names.len() + fresh.len())?;
        let idx: Vec<usize> = names
            .iter()
            .map(|name| match b.class_names.iter().position(|n| n == name) {
                Some(i) => i,
                None => {
                    b.class_names.push(name.to_string());
                    b.memory.add_class();
                    b.head.add_class();
                    b.means.add_class()
                }
            })
            .collect();
        let global: Vec<usize> = labels.iter().map(|&l| idx[l]).collect();
        let mut normed = features.to_owned();
        normalise_rows(&mut normed);
        let groups = crate::head::group_by_class(normed.view(), &global);
        if b.head.privacy_rule().is_some() {
            private::record(&mut b.head, &groups, &mut b.means)?;
        } else {
            for (class, rows) in &groups {
                b.means.update(*class, rows.view());
            }
        }
        b.head.learn(features, &global, &b.memory, &b.means);
        for (class, raw) in crate::head::group_by_class(features, &global) {
            let target = b.means.raw_mean(class);
            b.memory.offer(class, raw.view(), &target);
        }
        Ok(())
    }

    /// The head's scores `[n, classes]` (higher is better; classes in [`Learner::class_names`] order) for
    /// raw features.
    pub fn scores(&self, features: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.check_features(features)?;
        Ok(match self.body.head.scores(features) {
            Some(s) => s,
            None => {
                let mut normed = features.to_owned();
                normalise_rows(&mut normed);
                self.body.means.scores(normed.view())
            }
        })
    }

    /// Classifies queries (raw backbone features, one row each): the `k` nearest classes and whether the
    /// nearest is close enough to count.
    pub fn classify(&self, features: ArrayView2<f32>, k: usize) -> Result<Vec<Prediction>> {
        self.check_features(features)?;
        let b = &self.body;
        if b.class_names.is_empty() {
            return Err(Error::Invalid(
                "the state has no classes yet: learn one first".into(),
            ));
        }
        let mut normed = features.to_owned();
        normalise_rows(&mut normed);
        let head_scores = b.head.scores(features);
        let limits = b.means.limits(b.unknown_factor);
        Ok(normed
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, query)| {
                // NCM ranks by cosine; another head ranks by its own score, and each class's distance
                // (and the unknown rule) still comes from the NCM statistics.
                let top: Vec<Match> = match &head_scores {
                    None => b.means.nearest(query, k.max(1)),
                    Some(s) => {
                        let r = s.row(i);
                        let mut order: Vec<usize> = (0..r.len()).collect();
                        order.sort_by(|&x, &y| r[y].total_cmp(&r[x]).then(x.cmp(&y)));
                        order
                            .into_iter()
                            .take(k.max(1))
                            .map(|c| Match {
                                score: r[c],
                                ..Match::new(c, b.means.cosine(c, query))
                            })
                            .collect()
                    }
                };
                let best = top[0];
                let cos = match head_scores {
                    None => best.score,
                    Some(_) => b.means.cosine(best.class, query),
                };
                let unknown = limits.get(best.class).is_some_and(|l| {
                    b.means.distance2_to_raw_mean(&Match::new(best.class, cos)) > l
                });
                Prediction {
                    label: (!unknown).then(|| b.class_names[best.class].clone()),
                    unknown,
                    top: top
                        .iter()
                        .map(|m| Ranked {
                            class: b.class_names[m.class].clone(),
                            score: m.score,
                            distance: m.distance,
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// Forgets a class: its mean, its statistics and its stored features (and captures still pending).
    pub fn forget(&mut self, class: &str) -> Result<()> {
        let class = crate::class_name::normalise(class)?;
        let class = class.as_str();
        let was_pending = self.pending.iter().any(|(n, _)| n == class);
        self.pending.retain(|(n, _)| n != class);
        let b = &mut self.body;
        if was_pending && !b.class_names.iter().any(|n| n == class) {
            return Ok(());
        }
        let idx = b
            .class_names
            .iter()
            .position(|n| n == class)
            .ok_or_else(|| Error::UnknownClass(class.to_string()))?;
        b.class_names.remove(idx);
        b.means.remove_class(idx);
        b.head.remove_class(idx);
        b.memory.remove_class(idx);
        Ok(())
    }

    /// Renames a class (any head: only its name changes). The new name must not be taken: joining two
    /// classes is [`Learner::merge`].
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (
            crate::class_name::normalise(from)?,
            crate::class_name::normalise(to)?,
        );
        let b = &mut self.body;
        let idx = b
            .class_names
            .iter()
            .position(|n| *n == from)
            .ok_or_else(|| Error::UnknownClass(from.clone()))?;
        if from != to && b.class_names.contains(&to) {
            return Err(Error::Invalid(format!(
                "class {to:?} already exists: merge {from:?} into it instead"
            )));
        }
        b.class_names[idx] = to;
        Ok(())
    }

    /// Joins the classes `from` into one class `into` (an existing class, one of `from`, or a new name),
    /// exactly as if their captures had been learnt under `into`: NCM sums and counts add, and the
    /// streaming LDA, Mahalanobis and RanPAC statistics merge exactly; stored feature vectors are
    /// relabelled and herded again within the class's quota. The linear and privacy heads, trained by
    /// SGD, cannot merge and refuse with the reason; nothing changes on error.
    pub fn merge(&mut self, from: &[&str], into: &str) -> Result<()> {
        if let Some(reason) = self.body.head.merge_refusal() {
            return Err(Error::Invalid(reason));
        }
        let into = crate::class_name::normalise(into)?;
        let mut sources = Vec::new();
        for f in from {
            let name = crate::class_name::normalise(f)?;
            let i = self
                .body
                .class_names
                .iter()
                .position(|n| *n == name)
                .ok_or(Error::UnknownClass(name))?;
            if !sources.contains(&i) {
                sources.push(i);
            }
        }
        if sources.is_empty() {
            return Err(Error::Invalid(
                "merge needs at least one class to merge".into(),
            ));
        }
        let before = self.body.clone();
        let result = self.merge_checked(sources, into);
        if result.is_err() {
            self.body = before;
        }
        result
    }

    fn merge_checked(&mut self, mut sources: Vec<usize>, into: String) -> Result<()> {
        let b = &mut self.body;
        let mut target = match b.class_names.iter().position(|n| *n == into) {
            Some(i) => i,
            None => {
                let first = sources.remove(0);
                b.class_names[first] = into;
                first
            }
        };
        sources.retain(|&s| s != target);
        // Highest index first, so each removal leaves the others' indices as they were.
        sources.sort_unstable_by(|x, y| y.cmp(x));
        for s in sources {
            b.means.merge_class(target, s);
            b.head.merge_class(target, s).map_err(Error::Invalid)?;
            let moved = b.memory.class_features(s);
            b.class_names.remove(s);
            b.means.remove_class(s);
            b.head.remove_class(s);
            b.memory.remove_class(s);
            if s < target {
                target -= 1;
            }
            let mean = b.means.raw_mean(target);
            b.memory.offer(target, moved.view(), &mean);
        }
        b.check().map_err(|m| {
            Error::Invalid(format!("merging would leave the state inconsistent ({m})"))
        })
    }

    pub fn info(&self) -> Info {
        let b = &self.body;
        let limits = b.means.thresholds(b.unknown_factor);
        Info {
            model: b.model.name.clone(),
            model_sha256: crate::card::hex(&b.model.sha256),
            model_path: b.model.path.clone(),
            dim: b.model.dim,
            head: b.head.label(),
            head_bytes: match b.head {
                Head::Ncm => 0,
                ref h => h.bytes(),
            },
            classes: b
                .class_names
                .iter()
                .enumerate()
                .map(|(i, name)| ClassInfo {
                    name: name.clone(),
                    captures: b.means.count(i),
                    memory_vectors: b.memory.class_len(i),
                    unknown_threshold: limits[i],
                })
                .collect(),
            memory_budget: b.memory.budget(),
            memory_bytes: b.memory.bytes(),
            memory_storage: b.memory.storage(),
            memory_vectors: b.memory.len(),
            memory_capacity: b.memory.capacity(),
            unknown_factor: b.unknown_factor,
            state_bytes: self.to_bytes().len(),
            privacy: self.privacy_info(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn toy() -> Learner {
        let model = ModelRef {
            name: "toy".into(),
            sha256: [1; 32],
            dim: 3,
            path: "toy.onnx".into(),
        };
        Learner::new(
            model,
            LearnerConfig {
                memory_budget: Some(64),
                storage: Storage::F32,
                unknown_factor: 2.0,
                head: HeadConfig::default(),
            },
        )
    }

    /// Seeded features around a class centre.
    fn cloud(n: usize, d: usize, centre: usize, seed: u64) -> Array2<f32> {
        let mut x = seed | 1;
        Array2::from_shape_fn((n, d), |(_, j)| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            noise + if j % 4 == centre % 4 { 1.5 } else { 0.2 }
        })
    }

    fn learner_with(head: &str, d: usize) -> Learner {
        let model = ModelRef {
            name: "toy".into(),
            sha256: [1; 32],
            dim: d as u32,
            path: "toy.onnx".into(),
        };
        Learner::new(
            model,
            LearnerConfig {
                memory_budget: Some(4096),
                head: head.parse().unwrap(),
                ..LearnerConfig::default()
            },
        )
    }

    #[test]
    fn merging_two_classes_equals_learning_their_captures_under_one_name() {
        let d = 8;
        let (x, a1, a2, q) = (
            cloud(12, d, 0, 1),
            cloud(9, d, 1, 2),
            cloud(11, d, 2, 3),
            cloud(7, d, 3, 4),
        );
        for head in ["ncm", "slda", "mahalanobis+min=4", "ranpac+m=32"] {
            let mut merged = learner_with(head, d);
            merged.learn("x", x.view()).unwrap();
            merged.learn("a", a1.view()).unwrap();
            merged.learn("b", a2.view()).unwrap();
            merged.merge(&["a", "b"], "c").unwrap();
            let mut direct = learner_with(head, d);
            direct.learn("x", x.view()).unwrap();
            direct.learn("c", a1.view()).unwrap();
            direct.learn("c", a2.view()).unwrap();
            assert_eq!(merged.class_names(), direct.class_names(), "{head}");
            let (m, r) = (merged.info(), direct.info());
            let counts = |i: &Info| i.classes.iter().map(|c| c.captures).collect::<Vec<_>>();
            assert_eq!(counts(&m), counts(&r), "{head}");
            assert_eq!(counts(&m), [12, 20], "{head}");
            let (sm, sr) = (
                merged.scores(q.view()).unwrap(),
                direct.scores(q.view()).unwrap(),
            );
            for (u, v) in sm.iter().zip(&sr) {
                assert!(
                    (u - v).abs() <= 1e-3 * (1.0 + v.abs()),
                    "{head}: {u} vs {v}"
                );
            }
            let (pm, pr) = (
                merged.classify(q.view(), 2).unwrap(),
                direct.classify(q.view(), 2).unwrap(),
            );
            for (u, v) in pm.iter().zip(&pr) {
                assert_eq!(
                    (u.label.as_ref(), u.unknown),
                    (v.label.as_ref(), v.unknown),
                    "{head}"
                );
            }
            // The merged class's memory holds its vectors, within the class's quota.
            assert!(merged.memory().class_len(1) > 0);
        }
    }

    #[test]
    fn merge_into_an_existing_class_rename_and_refusals() {
        let d = 8;
        let mut l = learner_with("ncm", d);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            l.learn(name, cloud(5, d, i, i as u64 + 9).view()).unwrap();
        }
        l.merge(&["a", "c"], "b").unwrap();
        assert_eq!(l.class_names(), ["b"]);
        assert_eq!(l.info().classes[0].captures, 15);
        assert!(l.rename("b", "cafe\u{301}").is_ok());
        assert_eq!(l.class_names(), ["caf\u{e9}"]);
        l.learn("d", cloud(5, d, 3, 7).view()).unwrap();
        assert!(l
            .rename("d", "café")
            .unwrap_err()
            .to_string()
            .contains("merge"));
        assert!(matches!(l.merge(&["zz"], "d"), Err(Error::UnknownClass(_))));
        for head in ["linear+replay", "privacy+abd+k=2+dream=0+epochs=2"] {
            let mut l = learner_with(head, d);
            l.learn_many(&["a", "b"], cloud(6, d, 0, 5).view(), &[0, 1, 0, 1, 0, 1])
                .unwrap();
            let before = l.to_bytes();
            let e = l.merge(&["a", "b"], "c").unwrap_err().to_string();
            assert!(e.contains("SGD"), "{head}: {e}");
            assert_eq!(l.to_bytes(), before);
            l.rename("a", "z").unwrap();
            assert_eq!(l.class_names(), ["z", "b"]);
        }
    }

    #[test]
    fn only_the_heads_that_replay_get_a_feature_memory_unless_one_is_asked_for() {
        for (head, budget) in [
            ("ncm", 0),
            ("slda", 0),
            ("linear", 0),
            ("linear+replay", DEFAULT_MEMORY_BUDGET),
            ("linear+agem", DEFAULT_MEMORY_BUDGET),
        ] {
            let config = LearnerConfig {
                head: head.parse().unwrap(),
                ..LearnerConfig::default()
            };
            let l = Learner::new(toy().model().clone(), config);
            assert_eq!(l.memory().budget(), budget, "{head}");
        }
        let asked = LearnerConfig {
            memory_budget: Some(1000),
            ..LearnerConfig::default()
        };
        assert_eq!(
            Learner::new(toy().model().clone(), asked).memory().budget(),
            1000
        );
    }

    #[test]
    fn a_failed_learn_changes_nothing() {
        let mut l = toy();
        l.learn("a", array![[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]].view())
            .unwrap();
        l.learn("b", array![[0.0, 1.0, 0.0]].view()).unwrap();
        let before = l.to_bytes();
        // 64 bytes hold 5 vectors of 12 bytes; a 6th class cannot keep one.
        for c in ["c", "d", "e"] {
            l.learn(c, array![[0.0, 0.0, 1.0]].view()).unwrap();
        }
        let full = l.to_bytes();
        assert!(matches!(
            l.learn("f", array![[1.0, 1.0, 1.0]].view()),
            Err(Error::Budget { .. })
        ));
        assert!(l.learn("g", array![[1.0, f32::NAN, 1.0]].view()).is_err());
        assert!(l.learn("h", array![[1.0, 1.0]].view()).is_err());
        assert!(l.learn(" ", array![[1.0, 1.0, 1.0]].view()).is_err());
        assert_eq!(l.to_bytes(), full);
        assert_ne!(before, full);
    }

    #[test]
    fn a_learn_that_fails_after_changing_the_state_is_undone() {
        for head in ["ncm", "linear", "slda"] {
            let mut l = learner_with(head, 8);
            let x = cloud(12, 8, 0, 1);
            l.learn_many(
                &["a", "b", "c"],
                x.view(),
                &[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
            )
            .unwrap();
            // Class "c" one capture short of the most a class may count: one more overflows the check,
            // which runs after the statistics, the head and the memory were all updated.
            let c = l.body.class_names.iter().position(|n| n == "c").unwrap();
            let missing = crate::head::ncm::MAX_COUNT - l.body.means.count(c);
            let mean = l.body.means.raw_mean(c);
            l.body.means.update_aggregate(c, &mean, missing);
            let before = l.to_bytes();
            let query = cloud(3, 8, 1, 9);
            let scores = l.scores(query.view()).unwrap();
            let ranked = l.classify(query.view(), 3).unwrap();
            let y = cloud(6, 8, 2, 5);
            let err = l
                .learn_many(&["a", "new", "c"], y.view(), &[0, 0, 1, 1, 2, 2])
                .unwrap_err();
            assert!(
                err.to_string().contains("nothing was changed"),
                "{head}: {err}"
            );
            assert_eq!(l.to_bytes(), before, "{head}: the state changed");
            assert_eq!(l.class_names(), ["a", "b", "c"], "{head}");
            // The derived means and index are back too, not only the encoded statistics.
            assert_eq!(l.scores(query.view()).unwrap(), scores, "{head}");
            let again = l.classify(query.view(), 3).unwrap();
            for (p, q) in again.iter().zip(&ranked) {
                let names = |r: &[Ranked]| r.iter().map(|m| m.class.clone()).collect::<Vec<_>>();
                assert_eq!(names(&p.top), names(&q.top), "{head}");
            }
            // And the learner still learns.
            l.learn_many(&["a", "new"], y.view(), &[0, 0, 1, 1, 1, 1])
                .unwrap();
            assert_eq!(l.class_names(), ["a", "b", "c", "new"], "{head}");
        }
    }

    #[test]
    fn forget_removes_the_class_and_its_memory() {
        let mut l = toy();
        l.learn("a", array![[1.0, 0.0, 0.0]].view()).unwrap();
        l.learn("b", array![[0.0, 1.0, 0.0]].view()).unwrap();
        l.forget("a").unwrap();
        assert_eq!(l.class_names(), ["b"]);
        assert_eq!(l.memory().len(), 1);
        assert!(matches!(l.forget("a"), Err(Error::UnknownClass(_))));
        let p = &l.classify(array![[1.0, 0.0, 0.0]].view(), 3).unwrap()[0];
        assert_eq!(p.top.len(), 1);
    }

    #[test]
    fn far_queries_are_unknown_once_classes_have_spread() {
        let mut l = toy();
        l.learn(
            "a",
            array![[1.0, 0.1, 0.0], [1.0, -0.1, 0.0], [1.0, 0.0, 0.1]].view(),
        )
        .unwrap();
        l.learn(
            "b",
            array![[0.0, 1.0, 0.1], [0.1, 1.0, 0.0], [0.0, 1.0, -0.1]].view(),
        )
        .unwrap();
        let p = l
            .classify(array![[1.0, 0.02, 0.0], [0.0, 0.0, 1.0]].view(), 2)
            .unwrap();
        assert_eq!(p[0].label.as_deref(), Some("a"));
        assert!(p[1].unknown && p[1].label.is_none());
        l.set_unknown_factor(0.0).unwrap();
        let p = l.classify(array![[0.0, 0.0, 1.0]].view(), 1).unwrap();
        assert!(!p[0].unknown);
    }

    #[test]
    fn a_state_refuses_another_model() {
        let l = toy();
        assert!(l.check_model("toy", &[1; 32]).is_ok());
        let e = l.check_model("other", &[2; 32]).unwrap_err().to_string();
        assert!(e.contains("toy") && e.contains("other"), "{e}");
    }
}
