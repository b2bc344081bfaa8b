//! The learner's side of privacy mode: the K rule's pending captures, the statistics' DP noise, and what
//! `info` says about both.

use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;

use super::Learner;
use crate::error::{Error, Result};
use crate::head::dp::{Noise, OsNoise};
use crate::head::{Head, Ncm};

/// A class whose captures wait in RAM for the K rule.
#[derive(Debug, Clone, Serialize)]
pub struct PendingClass {
    pub name: String,
    /// Captures waiting (fewer than K).
    pub captures: usize,
    /// Whether the class is already stored (these captures would be a further update of it).
    pub stored: bool,
}

/// Privacy mode's settings and status, for `info`.
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyInfo {
    /// Captures per stored aggregate.
    pub k: u32,
    /// Whether ABD's dreaming head classifies (`privacy+abd`); NCM over the statistics otherwise.
    pub abd: bool,
    /// The dreaming head's adapter width (0: none).
    pub adapter: u32,
    /// `(epsilon, delta)` of the stored statistics, when DP is on.
    pub dp_epsilon: Option<f64>,
    pub dp_delta: Option<f64>,
    pub dp_clip: Option<f64>,
    /// Noise standard deviation on each count (times the clip on each sum coordinate).
    pub dp_noise_multiplier: Option<f64>,
    /// Classes waiting for K captures in this process; never written to the state file.
    pub pending: Vec<PendingClass>,
    pub note: String,
}

impl Learner {
    /// Privacy mode: classes whose captures are held in RAM until K have arrived, with how many wait.
    pub fn pending(&self) -> Vec<PendingClass> {
        self.pending
            .iter()
            .map(|(name, rows)| PendingClass {
                name: name.clone(),
                captures: rows.nrows(),
                stored: self.body.class_names.iter().any(|n| n == name),
            })
            .collect()
    }

    /// The K rule: buffers the captures per class; classes with K or more waiting are learnt now, as one
    /// task, and leave the buffer. Validation happened in `learn_many`.
    pub(super) fn learn_private(
        &mut self,
        names: &[&str],
        features: ArrayView2<f32>,
        labels: &[usize],
        k: usize,
    ) -> Result<()> {
        if self
            .body
            .head
            .privacy_rule()
            .is_some_and(|r| r.dp.is_some())
        {
            // Fail before changing anything if the noise source cannot be opened.
            OsNoise::open().map_err(|e| Error::io("/dev/urandom", e))?;
        }
        let mut pending = self.pending.clone();
        for (l, name) in names.iter().enumerate() {
            let idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == l).collect();
            if idx.is_empty() {
                continue;
            }
            let rows = features.select(Axis(0), &idx);
            match pending.iter_mut().find(|(n, _)| n == name) {
                Some((_, held)) => {
                    *held = ndarray::concatenate![Axis(0), *held, rows];
                }
                None => pending.push((name.to_string(), rows)),
            }
        }
        let (ready, waiting): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(_, rows)| rows.nrows() >= k);
        if !ready.is_empty() {
            let ready_names: Vec<&str> = ready.iter().map(|(n, _)| n.as_str()).collect();
            let views: Vec<_> = ready.iter().map(|(_, r)| r.view()).collect();
            let x: Array2<f32> = ndarray::concatenate(Axis(0), &views).expect("same width");
            let y: Vec<usize> = ready
                .iter()
                .enumerate()
                .flat_map(|(i, (_, r))| std::iter::repeat_n(i, r.nrows()))
                .collect();
            self.learn_checked(&ready_names, x.view(), &y)?;
        }
        self.pending = waiting;
        Ok(())
    }

    pub(super) fn privacy_info(&self) -> Option<PrivacyInfo> {
        let rule = self.body.head.privacy_rule()?;
        let dreaming = match &self.body.head {
            Head::Privacy(p) => Some(p.options()),
            _ => None,
        };
        let dp = rule.dp;
        Some(PrivacyInfo {
            k: rule.k,
            abd: dreaming.is_some(),
            adapter: dreaming.map_or(0, |o| o.adapter),
            dp_epsilon: dp.map(|d| d.epsilon),
            dp_delta: dp.map(|d| d.delta),
            dp_clip: dp.map(|d| d.clip),
            dp_noise_multiplier: dp.map(|d| d.noise_multiplier()),
            pending: self.pending(),
            note: format!(
                "no feature memory; every stored statistic aggregates at least {} captures of one class from one learn call; captures of a class with fewer wait in the learning process's RAM and are never written to the state file{}",
                rule.k,
                match (dp.is_some(), dreaming.is_some()) {
                    (true, true) => "; the class sums and counts are (epsilon, delta)-DP per capture (Gaussian mechanism); the dreaming head's weights are not",
                    (true, false) => "; the class sums and counts are (epsilon, delta)-DP per capture (Gaussian mechanism), and they are all the state keeps of its captures",
                    (false, _) => "",
                }
            ),
        })
    }
}

/// Records each ready class's normalised captures into the privacy head's statistics; DP noise comes from
/// the operating system.
pub(super) fn record(
    head: &mut Head,
    groups: &[(usize, Array2<f32>)],
    means: &mut Ncm,
) -> Result<()> {
    let dp = head.privacy_rule().is_some_and(|r| r.dp.is_some());
    let mut os: Option<OsNoise> = None;
    let mut unused = crate::head::linear::Rng(1);
    for (class, rows) in groups {
        let noise: &mut dyn Noise = if dp {
            if os.is_none() {
                os = Some(
                    OsNoise::open()
                        .map_err(|e| Error::io(std::path::Path::new("/dev/urandom"), e))?,
                );
            }
            os.as_mut().expect("opened")
        } else {
            // Not drawn from without DP.
            &mut unused
        };
        match head {
            Head::Privacy(p) => p.record(*class, rows.view(), means, noise),
            Head::PrivacyNcm(r) => r.record(*class, rows.view(), means, noise),
            _ => unreachable!("record is for privacy mode's heads"),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use crate::head::dp::DpOptions;
    use crate::head::{HeadConfig, HeadKind, PrivacyOptions};
    use crate::learner::{Learner, LearnerConfig};
    use crate::memory::Storage;
    use crate::state::ModelRef;
    use ndarray::Array2;

    /// A privacy-mode learner over 6-d features: NCM, or with `abd` the dreaming head.
    pub(crate) fn private_learner(options: PrivacyOptions, abd: bool) -> Learner {
        let model = ModelRef {
            name: "toy".into(),
            sha256: [3; 32],
            dim: 6,
            path: "toy.onnx".into(),
        };
        Learner::new(
            model,
            LearnerConfig {
                // Asked for, and ignored: privacy mode keeps no memory.
                memory_budget: Some(4096),
                storage: Storage::F32,
                unknown_factor: 1.5,
                head: HeadConfig {
                    privacy: options,
                    abd,
                    ..HeadConfig::of(HeadKind::Privacy)
                },
            },
        )
    }

    /// `n` captures of class `c`: near axis `c`, varied.
    pub(crate) fn captures(c: usize, n: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((n, 6), |(i, j)| {
            let wobble = (((i + seed) * 37 + j * 11) % 17) as f32 / 40.0;
            if j == c {
                2.0 + wobble
            } else {
                wobble
            }
        })
    }

    #[test]
    fn a_class_below_k_stays_in_ram_and_out_of_the_state() {
        for abd in [false, true] {
            below_k(private_learner(PrivacyOptions::default(), abd));
        }
    }

    fn below_k(mut l: Learner) {
        assert_eq!(l.memory().budget(), 0, "privacy mode forces the memory off");
        let empty = l.to_bytes();
        l.learn("a", captures(0, 3, 0).view()).unwrap();
        assert_eq!(l.to_bytes(), empty, "3 < K captures changed the state");
        assert!(l.class_names().is_empty());
        let p = l.pending();
        assert_eq!(
            (p[0].name.as_str(), p[0].captures, p[0].stored),
            ("a", 3, false)
        );
        assert!(l.info().privacy.unwrap().pending.len() == 1);
        // Two more make five: the class is learnt from all five, and leaves the buffer.
        l.learn("a", captures(0, 2, 3).view()).unwrap();
        assert_eq!(l.class_names(), ["a"]);
        assert_eq!(l.info().classes[0].captures, 5);
        assert!(l.pending().is_empty());
        // A stored class's further captures wait too: a one-capture update would be visible as the
        // difference of two states.
        l.learn("b", captures(1, 6, 0).view()).unwrap();
        let stored = l.to_bytes();
        l.learn("a", captures(0, 1, 9).view()).unwrap();
        assert_eq!(l.to_bytes(), stored);
        assert!(l.pending()[0].stored);
        // Forgetting drops pending captures; a class that was only pending is gone entirely.
        l.learn("c", captures(2, 2, 0).view()).unwrap();
        l.forget("c").unwrap();
        assert!(l.pending().iter().all(|p| p.name != "c"));
        assert!(l.forget("c").is_err());
    }

    #[test]
    fn learn_many_learns_the_classes_that_reach_k_and_holds_the_rest() {
        let mut l = private_learner(PrivacyOptions::default(), false);
        let x = ndarray::concatenate![
            ndarray::Axis(0),
            captures(0, 6, 0),
            captures(1, 2, 0),
            captures(2, 5, 0)
        ];
        let labels: Vec<usize> = [0; 6].into_iter().chain([1; 2]).chain([2; 5]).collect();
        l.learn_many(&["a", "b", "c"], x.view(), &labels).unwrap();
        assert_eq!(l.class_names(), ["a", "c"]);
        assert_eq!(l.pending()[0].name, "b");
        // The learnt classes are recognised.
        let p = l.classify(captures(2, 3, 50).view(), 1).unwrap();
        assert!(p.iter().all(|p| p.top[0].class == "c"));
    }

    #[test]
    fn with_dp_the_stored_statistics_are_noisy_and_have_no_second_moments() {
        let dp = DpOptions {
            epsilon: 0.5,
            delta: 1e-5,
            clip: 1.0,
        };
        for abd in [false, true] {
            let noisy = PrivacyOptions {
                dp: Some(dp),
                ..Default::default()
            };
            let mut l = private_learner(noisy, abd);
            let mut exact = private_learner(PrivacyOptions::default(), abd);
            for c in 0..3 {
                l.learn(&format!("{c}"), captures(c, 50, 0).view()).unwrap();
                exact
                    .learn(&format!("{c}"), captures(c, 50, 0).view())
                    .unwrap();
            }
            let b = &l.body;
            let e = &exact.body;
            match &b.head {
                crate::head::Head::Privacy(p) => {
                    assert!(abd);
                    assert!(p.sums_of_squares().iter().all(|s| s.is_empty()));
                }
                crate::head::Head::PrivacyNcm(r) => assert_eq!((abd, r.dp), (false, Some(dp))),
                h => panic!("{}", h.label()),
            }
            for c in 0..3 {
                assert!(b.means.count(c) >= 5);
                // Noise of sd ~13.7 on every coordinate of the sum: the means differ.
                let (m, m0) = (b.means.raw_mean(c), e.means.raw_mean(c));
                let diff: f32 = m.iter().zip(&m0).map(|(a, b)| (a - b).abs()).sum();
                assert!(diff > 1e-3, "class {c}: DP mean equals the exact mean");
            }
            let info = l.info().privacy.unwrap();
            assert_eq!((info.dp_epsilon, info.abd), (Some(0.5), abd));
            assert!((info.dp_noise_multiplier.unwrap() - dp.noise_multiplier()).abs() < 1e-12);
            // Two runs draw different noise (the OS source, not a seed).
            let mut again = private_learner(noisy, abd);
            again.learn("0", captures(0, 50, 0).view()).unwrap();
            assert_ne!(again.body.means.raw_mean(0), l.body.means.raw_mean(0));
        }
    }

    #[test]
    fn privacy_ncm_scores_are_the_plain_ncm_scores_and_merge_is_exact() {
        // Under the K rule with every class learnt from at least K captures, privacy mode's NCM keeps
        // the same sums as NCM: the same scores.
        let mut private = private_learner(PrivacyOptions::default(), false);
        let mut plain = Learner::new(
            private.model().clone(),
            LearnerConfig {
                memory_budget: Some(0),
                storage: Storage::F32,
                unknown_factor: 1.5,
                head: HeadConfig::default(),
            },
        );
        for c in 0..3 {
            for l in [&mut private, &mut plain] {
                l.learn(&format!("{c}"), captures(c, 5 + c, c).view())
                    .unwrap();
            }
        }
        let q = captures(1, 4, 77);
        assert_eq!(
            private.scores(q.view()).unwrap(),
            plain.scores(q.view()).unwrap()
        );
        assert_eq!(private.info().head, "privacy(k=5)");
        // Two aggregates of at least K captures make one: the NCM head merges, as plain NCM does.
        private.merge(&["0", "1"], "01").unwrap();
        plain.merge(&["0", "1"], "01").unwrap();
        assert_eq!(
            private.scores(q.view()).unwrap(),
            plain.scores(q.view()).unwrap()
        );
    }
}
