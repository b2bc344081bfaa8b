//! The field's class-incremental metrics, from the accuracies measured after each step.
//!
//! - `A_t`: accuracy on the test images of every class seen after step `t` (all images count equally).
//! - average incremental accuracy: the mean of `A_1 ... A_T`.
//! - final accuracy: `A_T`.
//! - forgetting (Chaudhry et al. 2018): for each class group `g` learnt before the last step, the drop
//!   from its best accuracy over the steps before the last, `max_{g <= t < T} a_{t,g}`, to its accuracy
//!   after the last, `a_{T,g}`; averaged over those groups (0 with a single step).

use serde::Serialize;

/// Mean and sample standard deviation (0 for fewer than two values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len();
        if n == 0 {
            return MeanStd {
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n < 2 {
            0.0
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        MeanStd { mean, std }
    }
}

/// Accuracy after each step: `all[t]` = A_t, `groups[t][g]` = accuracy on the classes of step `g`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracies {
    pub all: Vec<f64>,
    pub groups: Vec<Vec<f64>>,
}

impl Accuracies {
    pub fn average_incremental(&self) -> f64 {
        MeanStd::of(&self.all).mean
    }

    pub fn final_accuracy(&self) -> f64 {
        self.all.last().copied().unwrap_or(f64::NAN)
    }

    pub fn forgetting(&self) -> f64 {
        let t = self.groups.len();
        if t < 2 {
            return 0.0;
        }
        let last = &self.groups[t - 1];
        let drops: Vec<f64> = (0..t - 1)
            .map(|g| {
                let best = (g..t - 1)
                    .map(|s| self.groups[s][g])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - last[g]
            })
            .collect();
        MeanStd::of(&drops).mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_a_hand_worked_run() {
        // Three steps. Group 0: 0.9, 0.8, 0.6 -> best before last 0.9, drop 0.3.
        // Group 1: -, 0.7, 0.75 -> best before last 0.7, drop -0.05.
        let a = Accuracies {
            all: vec![0.9, 0.75, 0.7],
            groups: vec![vec![0.9], vec![0.8, 0.7], vec![0.6, 0.75, 0.8]],
        };
        assert!((a.average_incremental() - (0.9 + 0.75 + 0.7) / 3.0).abs() < 1e-12);
        assert_eq!(a.final_accuracy(), 0.7);
        assert!((a.forgetting() - (0.3 - 0.05) / 2.0).abs() < 1e-12);
        let m = MeanStd::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.mean, 2.5);
        assert!((m.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
