//! Runs a protocol over cached features for a list of heads, through the real [`Learner`].

use std::time::Instant;

use ndarray::Axis;
use serde::Serialize;

use super::cache::FeatureSet;
use super::metrics::{Accuracies, MeanStd};
use super::protocol::Protocol;
use crate::error::{Error, Result};
use crate::head::HeadConfig;
use crate::learner::{Learner, LearnerConfig};
use crate::state::ModelRef;

/// One head on one seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    pub seed: u64,
    pub accuracy: Accuracies,
    /// Wall-clock milliseconds of each step's learn call.
    pub learn_ms: Vec<f64>,
    /// Microseconds per test image of the final classify call (head only: features given).
    pub classify_us: f64,
    /// Size of the encoded state file after the last step.
    pub state_bytes: usize,
    /// Of which the head's own state.
    pub head_bytes: usize,
}

/// One head over every seed, with the summary the report prints.
#[derive(Debug, Clone, Serialize)]
pub struct HeadResult {
    pub head: String,
    pub runs: Vec<SeedRun>,
    /// Mean and std over seeds of A_t, per step.
    pub a_t: Vec<MeanStd>,
    pub average_incremental: MeanStd,
    pub final_accuracy: MeanStd,
    pub forgetting: MeanStd,
    pub state_bytes: f64,
    pub learn_ms_per_step: f64,
    pub classify_us: f64,
}

/// What the runner reports while it works.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Step {
        head: &'a str,
        seed: u64,
        step: usize,
        accuracy: f64,
    },
}

/// Runs `protocol` for each head. `class_names` names the dataset's labels; `memory` sets the feature
/// memory every learner gets (the linear head's replay and A-GEM draw from it).
pub fn run(
    train: &FeatureSet,
    test: &FeatureSet,
    class_names: &[String],
    protocol: &Protocol,
    heads: &[HeadConfig],
    memory: LearnerConfig,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Vec<HeadResult>> {
    let dim = train.features.ncols();
    if test.features.ncols() != dim {
        return Err(Error::Dimension {
            what: "test features",
            expected: dim,
            actual: test.features.ncols(),
        });
    }
    let classes = class_names.len();
    let mut out = Vec::new();
    for config in heads {
        let label = config.label();
        let mut runs = Vec::new();
        for &seed in &protocol.seeds {
            let steps = protocol.plan(seed, &train.labels, classes)?;
            let model = ModelRef {
                name: "eval".into(),
                sha256: [0; 32],
                dim: dim as u32,
                path: String::new(),
            };
            let mut learner = Learner::new(
                model,
                LearnerConfig {
                    head: HeadConfig {
                        seed: config.seed ^ seed,
                        ..*config
                    },
                    ..memory
                },
            );
            let mut acc = Accuracies {
                all: Vec::new(),
                groups: Vec::new(),
            };
            let mut learn_ms = Vec::new();
            let mut classify_us = 0.0;
            let mut seen: Vec<usize> = Vec::new();
            let mut group_of = vec![usize::MAX; classes];
            for (t, step) in steps.iter().enumerate() {
                let names: Vec<&str> = step
                    .classes
                    .iter()
                    .map(|&c| class_names[c].as_str())
                    .collect();
                let local: Vec<usize> = step
                    .train
                    .iter()
                    .map(|&i| {
                        let c = train.labels[i] as usize;
                        step.classes.iter().position(|&k| k == c).expect("planned")
                    })
                    .collect();
                let x = train.features.select(Axis(0), &step.train);
                let t0 = Instant::now();
                learner.learn_many(&names, x.view(), &local)?;
                learn_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                for &c in &step.classes {
                    group_of[c] = t;
                }
                seen.extend(&step.classes);
                // Test on every image of the classes seen so far.
                let idx: Vec<usize> = (0..test.labels.len())
                    .filter(|&i| group_of[test.labels[i] as usize] != usize::MAX)
                    .collect();
                let xt = test.features.select(Axis(0), &idx);
                let t0 = Instant::now();
                let predictions = learner.classify(xt.view(), 1)?;
                classify_us = t0.elapsed().as_secs_f64() * 1e6 / idx.len().max(1) as f64;
                let mut right = vec![0usize; t + 1];
                let mut total = vec![0usize; t + 1];
                for (p, &i) in predictions.iter().zip(&idx) {
                    let truth = test.labels[i] as usize;
                    let g = group_of[truth];
                    total[g] += 1;
                    if p.top[0].class == class_names[truth] {
                        right[g] += 1;
                    }
                }
                let all =
                    right.iter().sum::<usize>() as f64 / total.iter().sum::<usize>().max(1) as f64;
                acc.all.push(all);
                acc.groups.push(
                    right
                        .iter()
                        .zip(&total)
                        .map(|(&r, &n)| r as f64 / n.max(1) as f64)
                        .collect(),
                );
                progress(Progress::Step {
                    head: &label,
                    seed,
                    step: t,
                    accuracy: all,
                });
            }
            let info = learner.info();
            runs.push(SeedRun {
                seed,
                accuracy: acc,
                learn_ms,
                classify_us,
                state_bytes: info.state_bytes,
                head_bytes: info.head_bytes,
            });
        }
        out.push(summarise(label, runs));
    }
    Ok(out)
}

fn summarise(head: String, runs: Vec<SeedRun>) -> HeadResult {
    let steps = runs[0].accuracy.all.len();
    let of = |f: &dyn Fn(&SeedRun) -> f64| MeanStd::of(&runs.iter().map(f).collect::<Vec<_>>());
    HeadResult {
        a_t: (0..steps).map(|t| of(&|r| r.accuracy.all[t])).collect(),
        average_incremental: of(&|r| r.accuracy.average_incremental()),
        final_accuracy: of(&|r| r.accuracy.final_accuracy()),
        forgetting: of(&|r| r.accuracy.forgetting()),
        state_bytes: of(&|r| r.state_bytes as f64).mean,
        learn_ms_per_step: of(&|r| MeanStd::of(&r.learn_ms).mean).mean,
        classify_us: of(&|r| r.classify_us).mean,
        head,
        runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::HeadKind;
    use ndarray::Array2;

    /// Four well-separated classes: class c lives near axis c. Every head should get them all right, and
    /// the runner's A_t must equal a direct count.
    #[test]
    fn separable_classes_are_learnt_by_every_head() {
        let d = 6;
        let make = |n: usize, off: f32| {
            let labels: Vec<u16> = (0..n).map(|i| (i % 4) as u16).collect();
            let features = Array2::from_shape_fn((n, d), |(i, j)| {
                let noise = ((i * 7 + j * 13) % 11) as f32 / 40.0 + off;
                if j == i % 4 {
                    3.0 + noise
                } else {
                    noise
                }
            });
            FeatureSet { labels, features }
        };
        let (train, test) = (make(80, 0.0), make(40, 0.01));
        let names: Vec<String> = (0..4).map(|c| format!("c{c}")).collect();
        let protocol = Protocol {
            steps: 2,
            increment: 2,
            seeds: vec![0, 1],
            ..Default::default()
        };
        let mut heads: Vec<HeadConfig> = HeadKind::ALL.into_iter().map(HeadConfig::of).collect();
        heads[3].ranpac_dim = 32;
        heads.push("linear+replay+ewc=10+agem+lwf=2".parse().unwrap());
        let mut events = 0;
        let results = run(
            &train,
            &test,
            &names,
            &protocol,
            &heads,
            LearnerConfig {
                memory_budget: Some(4096),
                ..Default::default()
            },
            |_| events += 1,
        )
        .unwrap();
        assert_eq!(events, heads.len() * 2 * 2);
        for r in &results {
            assert_eq!(r.a_t.len(), 2);
            assert!(r.state_bytes > 0.0);
            assert!(r.a_t[0].mean > 0.99, "{}: {:?}", r.head, r.a_t);
            if r.head == "linear" {
                // Plain SGD on the new classes only: it forgets the first pair entirely.
                assert!((r.final_accuracy.mean - 0.5).abs() < 0.05, "{:?}", r.a_t);
                continue;
            }
            assert!(r.final_accuracy.mean > 0.99, "{}: {:?}", r.head, r.a_t);
            assert!(r.forgetting.mean.abs() < 0.01, "{}", r.head);
        }
        // The per-step accuracies are a direct count: A_2 averages the two groups by their image counts.
        let ncm = &results[0].runs[0].accuracy;
        assert_eq!(ncm.groups[1].len(), 2);
    }
}
