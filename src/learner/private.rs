//! The learner's side of privacy mode: the K rule's pending captures, the statistics' DP noise, and what
//! `info` says about both.

use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;

use super::Learner;
use crate::error::{Error, Result};
use crate::head::dp::{Noise, OsNoise};
use crate::head::{Head, Ncm, Privacy};

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
    /// Adapter width (0: none).
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
        if matches!(&self.body.head, Head::Privacy(p) if p.options().dp.is_some()) {
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
        let Head::Privacy(p) = &self.body.head else {
            return None;
        };
        let o = p.options();
        Some(PrivacyInfo {
            k: o.k,
            adapter: o.adapter,
            dp_epsilon: o.dp.map(|d| d.epsilon),
            dp_delta: o.dp.map(|d| d.delta),
            dp_clip: o.dp.map(|d| d.clip),
            dp_noise_multiplier: o.dp.map(|d| d.noise_multiplier()),
            pending: self.pending(),
            note: format!(
                "no feature memory; every stored statistic aggregates at least {} captures of one class from one learn call; captures of a class with fewer wait in the learning process's RAM and are never written to the state file{}",
                o.k,
                if o.dp.is_some() {
                    "; the class sums and counts are (epsilon, delta)-DP per capture (Gaussian mechanism); the head weights are not"
                } else {
                    ""
                }
            ),
        })
    }
}

/// Records each ready class's normalised captures into the privacy head's statistics; DP noise comes from
/// the operating system.
pub(super) fn record(
    head: &mut Privacy,
    groups: &[(usize, Array2<f32>)],
    means: &mut Ncm,
) -> Result<()> {
    let mut os: Option<OsNoise> = None;
    let mut unused = crate::head::linear::Rng(1);
    for (class, rows) in groups {
        let noise: &mut dyn Noise = if head.options().dp.is_some() {
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
        head.record(*class, rows.view(), means, noise);
    }
    Ok(())
}
