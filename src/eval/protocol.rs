//! Class-incremental protocols: which classes arrive at each step and which training images they bring.
//!
//! A protocol is `steps` steps; the first brings `base` classes (0: the same as the others) and every
//! later one `increment` classes. The class order is the dataset's (natural) or a seeded shuffle. Each
//! class brings all its training images, or `K` of them drawn by the seed (the camera case: K captures).
//! One head over all classes seen so far; no task id at test time.

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassOrder {
    Natural,
    Shuffled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocol {
    pub steps: usize,
    /// Classes in the first step (0: `increment`).
    pub base: usize,
    pub increment: usize,
    pub order: ClassOrder,
    /// Training images per class (`None`: all).
    pub shots: Option<usize>,
    pub seeds: Vec<u64>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            steps: 5,
            base: 0,
            increment: 2,
            order: ClassOrder::Natural,
            shots: None,
            seeds: vec![0],
        }
    }
}

/// One step: the classes it brings and the indices of their training images.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub classes: Vec<usize>,
    pub train: Vec<usize>,
}

/// A seeded SplitMix64 generator (platform-independent shuffles).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

impl Protocol {
    /// Classes the protocol uses in all.
    pub fn total_classes(&self) -> usize {
        let first = if self.base == 0 {
            self.increment
        } else {
            self.base
        };
        first + self.steps.saturating_sub(1) * self.increment
    }

    /// A one-line description: `5 steps x 2 classes, natural order, all shots, 3 seeds`.
    pub fn describe(&self) -> String {
        let steps = if self.base == 0 {
            format!("{} steps x {} classes", self.steps, self.increment)
        } else {
            format!(
                "base {} + {} steps x {} classes",
                self.base,
                self.steps - 1,
                self.increment
            )
        };
        let order = match self.order {
            ClassOrder::Natural => "natural order",
            ClassOrder::Shuffled => "shuffled order",
        };
        let shots = self.shots.map_or("all training images".to_string(), |k| {
            format!("{k} shots per class")
        });
        format!("{steps}, {order}, {shots}, {} seed(s)", self.seeds.len())
    }

    /// Checks the protocol against a dataset of `classes` classes.
    pub fn check(&self, classes: usize) -> Result<()> {
        if self.steps == 0 || self.increment == 0 && self.steps > 1 || self.total_classes() == 0 {
            return Err(Error::Invalid(
                "a protocol needs at least one step of at least one class".into(),
            ));
        }
        if self.total_classes() > classes {
            return Err(Error::Invalid(format!(
                "the protocol needs {} classes, the dataset has {classes}",
                self.total_classes()
            )));
        }
        if self.shots == Some(0) {
            return Err(Error::Invalid("shots per class must be at least 1".into()));
        }
        if self.seeds.is_empty() {
            return Err(Error::Invalid("at least one seed is needed".into()));
        }
        Ok(())
    }

    /// The steps for one seed, given the training labels and the number of classes in the dataset.
    pub fn plan(&self, seed: u64, labels: &[u16], classes: usize) -> Result<Vec<Step>> {
        self.check(classes)?;
        let mut rng = Rng::new(seed);
        let mut order: Vec<usize> = (0..classes).collect();
        if self.order == ClassOrder::Shuffled {
            rng.shuffle(&mut order);
        }
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &l) in labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut steps = Vec::with_capacity(self.steps);
        let mut at = 0;
        for s in 0..self.steps {
            let n = if s == 0 && self.base > 0 {
                self.base
            } else {
                self.increment
            };
            let step_classes = order[at..at + n].to_vec();
            at += n;
            let mut train = Vec::new();
            for &c in &step_classes {
                let mut idx = by_class[c].clone();
                if idx.is_empty() {
                    return Err(Error::Invalid(format!("class {c} has no training images")));
                }
                if let Some(k) = self.shots {
                    rng.shuffle(&mut idx);
                    idx.truncate(k);
                    idx.sort_unstable();
                }
                train.extend(idx);
            }
            steps.push(Step {
                classes: step_classes,
                train,
            });
        }
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_all_shots_takes_every_image_of_each_step() {
        let labels: Vec<u16> = (0..40).map(|i| (i % 10) as u16).collect();
        let steps = Protocol::default().plan(3, &labels, 10).unwrap();
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[1].classes, vec![2, 3]);
        let want: Vec<usize> = (0..40).filter(|i| [2, 3].contains(&(i % 10))).collect();
        let mut got = steps[1].train.clone();
        got.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn shuffled_k_shot_plans_are_seeded_partitions() {
        let labels: Vec<u16> = (0..200).map(|i| (i % 10) as u16).collect();
        let p = Protocol {
            order: ClassOrder::Shuffled,
            shots: Some(5),
            base: 4,
            steps: 4,
            ..Default::default()
        };
        let a = p.plan(1, &labels, 10).unwrap();
        assert_eq!(a, p.plan(1, &labels, 10).unwrap());
        assert_ne!(a, p.plan(2, &labels, 10).unwrap());
        assert_eq!(a[0].classes.len(), 4);
        let mut seen: Vec<usize> = a.iter().flat_map(|s| s.classes.clone()).collect();
        assert_eq!(seen.len(), 10);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10, "every class exactly once");
        for s in &a {
            assert_eq!(s.train.len(), 5 * s.classes.len());
            assert!(s
                .train
                .iter()
                .all(|&i| s.classes.contains(&(labels[i] as usize))));
        }
        assert!(Protocol {
            steps: 6,
            ..Default::default()
        }
        .plan(0, &labels, 10)
        .is_err());
    }
}
