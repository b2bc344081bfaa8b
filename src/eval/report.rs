//! The evaluation report: what was run, on what, and each head's results, as markdown and JSON.

use serde::Serialize;

use super::metrics::MeanStd;
use super::protocol::Protocol;
use super::run::HeadResult;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `cifar10`, `fashion-mnist`, or the image folder.
    pub dataset: String,
    pub data_path: String,
    pub train_images: usize,
    pub test_images: usize,
    pub model: String,
    pub model_sha256: String,
    pub feature_dim: usize,
    pub protocol: Protocol,
    /// `None`: each head's default (256 KiB for the heads that replay, none for the others).
    pub memory_budget: Option<u64>,
    pub memory_storage: String,
    /// The command line that produced the report.
    pub command: String,
    pub heads: Vec<HeadResult>,
}

/// `83.4` or `83.4 ± 1.2` (percent).
fn pct(m: &MeanStd, seeds: usize) -> String {
    if seeds > 1 {
        format!("{:.1} ± {:.1}", 100.0 * m.mean, 100.0 * m.std)
    } else {
        format!("{:.1}", 100.0 * m.mean)
    }
}

/// Bytes in a short human form (`12.3 KB`, `4.2 MB`; decimal units).
pub fn human_bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

impl Report {
    /// The results table, in markdown, with a line saying what was run.
    pub fn markdown(&self) -> String {
        let seeds = self.protocol.seeds.len();
        let steps = self.protocol.steps;
        let mut s = format!(
            "{}: {} train / {} test images; {}; backbone {} ({}-d); feature memory {} ({}).\n\n",
            self.dataset,
            self.train_images,
            self.test_images,
            self.protocol.describe(),
            self.model,
            self.feature_dim,
            self.memory_budget.map_or(
                "256 KiB for the heads that replay, none for the others".into(),
                |b| human_bytes(b as f64)
            ),
            self.memory_storage,
        );
        s += "| head |";
        for t in 1..=steps {
            s += &format!(" A{t} |");
        }
        s += " avg inc. acc | final acc | forgetting | state | learn / step | classify / image |\n|---|";
        for _ in 0..steps {
            s += "---:|";
        }
        s += "---:|---:|---:|---:|---:|---:|\n";
        for h in &self.heads {
            s += &format!("| {} |", h.head);
            for a in &h.a_t {
                s += &format!(" {} |", pct(a, 1));
            }
            s += &format!(
                " {} | {} | {} | {} | {:.1} ms | {:.1} µs |\n",
                pct(&h.average_incremental, seeds),
                pct(&h.final_accuracy, seeds),
                pct(&h.forgetting, seeds),
                human_bytes(h.state_bytes),
                h.learn_ms_per_step,
                h.classify_us
            );
        }
        s += &format!(
            "\nAccuracies in %{}. A_t: accuracy on all classes seen after step t. State: the encoded state file after the last step. Learn / step and classify / image: wall-clock on features already extracted (the backbone's time is not included).\n",
            if seeds > 1 { ", mean ± std over seeds" } else { "" }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::Accuracies;
    use crate::eval::run::SeedRun;

    #[test]
    fn the_table_has_one_row_per_head_and_a_column_per_step() {
        let m = |v: f64| MeanStd { mean: v, std: 0.01 };
        let head = HeadResult {
            head: "ncm".into(),
            runs: vec![SeedRun {
                seed: 0,
                accuracy: Accuracies {
                    all: vec![0.9, 0.8],
                    groups: vec![vec![0.9], vec![0.85, 0.75]],
                },
                learn_ms: vec![1.0, 2.0],
                classify_us: 3.0,
                state_bytes: 2048,
                head_bytes: 0,
            }],
            a_t: vec![m(0.9), m(0.8)],
            average_incremental: m(0.85),
            final_accuracy: m(0.8),
            forgetting: m(0.05),
            state_bytes: 2048.0,
            learn_ms_per_step: 1.5,
            classify_us: 3.0,
        };
        let r = Report {
            dataset: "toy".into(),
            data_path: "/x".into(),
            train_images: 10,
            test_images: 4,
            model: "m".into(),
            model_sha256: "00".into(),
            feature_dim: 3,
            protocol: Protocol {
                steps: 2,
                seeds: vec![0, 1],
                ..Default::default()
            },
            memory_budget: Some(1000),
            memory_storage: "int8".into(),
            command: "edgecl eval".into(),
            heads: vec![head],
        };
        let md = r.markdown();
        assert!(md.contains("| head | A1 | A2 | avg inc. acc |"), "{md}");
        assert!(md.contains("| ncm | 90.0 | 80.0 | 85.0 ± 1.0 | 80.0 ± 1.0 | 5.0 ± 1.0 | 2.0 KB | 1.5 ms | 3.0 µs |"), "{md}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["heads"][0]["runs"][0]["accuracy"]["all"][1], 0.8);
    }
}
