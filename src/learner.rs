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

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::head::{ncm::DEFAULT_UNKNOWN_FACTOR, normalise_rows, Ncm};
use crate::memory::{FeatureMemory, Storage};
use crate::state::{self, ModelRef, StateBody};

/// Settings fixed when a state is created.
#[derive(Debug, Clone, Copy)]
pub struct LearnerConfig {
    /// Byte budget of the feature memory; 0 keeps no features.
    pub memory_budget: u64,
    pub storage: Storage,
    /// See [`crate::head::ncm`]: 0 disables the unknown answer.
    pub unknown_factor: f32,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            memory_budget: 256 * 1024,
            storage: Storage::Int8,
            unknown_factor: DEFAULT_UNKNOWN_FACTOR,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Learner {
    body: StateBody,
}

/// One class's answer for one query.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub class: String,
    /// Cosine similarity to the class mean (1 = same direction).
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
    pub head: &'static str,
    pub classes: Vec<ClassInfo>,
    pub memory_budget: u64,
    pub memory_bytes: u64,
    pub memory_storage: Storage,
    pub memory_vectors: usize,
    pub memory_capacity: usize,
    pub unknown_factor: f32,
    /// Size of the encoded state file.
    pub state_bytes: usize,
}

impl Learner {
    pub fn new(model: ModelRef, config: LearnerConfig) -> Learner {
        let dim = model.dim as usize;
        Learner {
            body: StateBody {
                model,
                class_names: Vec::new(),
                head: Ncm::new(dim),
                memory: FeatureMemory::new(config.memory_budget, config.storage, dim),
                unknown_factor: config.unknown_factor,
            },
        }
    }

    pub fn load(path: &std::path::Path) -> Result<Learner> {
        Ok(Learner {
            body: state::load(path)?,
        })
    }

    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        state::save(path, &self.body)
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
        self.check_features(features)?;
        let name = class.trim();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(format!(
                "class name {class:?} must be 1 to 256 printable characters"
            )));
        }
        if features.nrows() == 0 {
            return Err(Error::Invalid(format!(
                "no captures to learn {name:?} from"
            )));
        }
        let b = &mut self.body;
        let idx = match b.class_names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                b.memory.check_fits(b.class_names.len() + 1)?;
                b.class_names.push(name.to_string());
                b.memory.add_class();
                b.head.add_class()
            }
        };
        let mut normed = features.to_owned();
        normalise_rows(&mut normed);
        b.head.update(idx, normed.view());
        let target = b.head.raw_mean(idx);
        b.memory.offer(idx, features, &target);
        Ok(())
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
        let scores: Array2<f32> = b.head.scores(normed.view());
        let limits = b.head.thresholds(b.unknown_factor);
        Ok(scores
            .rows()
            .into_iter()
            .map(|row| {
                let top = b.head.top_k(row, k.max(1));
                let best = top[0];
                let unknown =
                    limits[best.class].is_some_and(|l| b.head.distance2_to_raw_mean(&best) > l);
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

    /// Forgets a class: its mean, its statistics and its stored features.
    pub fn forget(&mut self, class: &str) -> Result<()> {
        let b = &mut self.body;
        let idx = b
            .class_names
            .iter()
            .position(|n| n == class)
            .ok_or_else(|| Error::UnknownClass(class.to_string()))?;
        b.class_names.remove(idx);
        b.head.remove_class(idx);
        b.memory.remove_class(idx);
        Ok(())
    }

    pub fn info(&self) -> Info {
        let b = &self.body;
        let limits = b.head.thresholds(b.unknown_factor);
        Info {
            model: b.model.name.clone(),
            model_sha256: crate::card::hex(&b.model.sha256),
            model_path: b.model.path.clone(),
            dim: b.model.dim,
            head: "ncm",
            classes: b
                .class_names
                .iter()
                .enumerate()
                .map(|(i, name)| ClassInfo {
                    name: name.clone(),
                    captures: b.head.count(i),
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
                memory_budget: 64,
                storage: Storage::F32,
                unknown_factor: 2.0,
            },
        )
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
