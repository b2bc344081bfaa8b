//! `edgecl classify --state S PATH... [--top K]`

use std::path::PathBuf;

use anyhow::Result;
use edgecl::embed::collect_images;

use crate::args::CommonArgs;
use crate::output::runtime_line;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    /// Image files, or directories of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// How many nearest classes to list.
    #[arg(long, default_value_t = 3)]
    top: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    let learner = crate::args::load_state(&a.state)?;
    let files = collect_images(&a.paths)?;
    let mut embedder = a.common.embedder(Some(learner.model()))?;
    let model = embedder.model();
    learner.check_model(&model.card.name, &model.sha256)?;
    let bar = a.common.progress(files.len(), "classifying");
    let features = embedder.embed_files(&files, |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    let predictions = learner.classify(features.view(), a.top)?;
    let any_unknown = predictions.iter().any(|p| p.unknown);
    if a.common.json {
        let rows: Vec<_> = files
            .iter()
            .zip(&predictions)
            .map(|(f, p)| serde_json::json!({ "path": f, "label": p.label, "unknown": p.unknown, "top": p.top }))
            .collect();
        let out = serde_json::json!({ "predictions": rows, "head": learner.info().head, "runtime": embedder.runtime() });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (f, p) in files.iter().zip(&predictions) {
            let best = &p.top[0];
            let label = p.label.as_deref().unwrap_or("unknown");
            let others: Vec<String> = p.top[1..]
                .iter()
                .map(|r| format!("{} {:.3}", r.class, r.score))
                .collect();
            let nearest = if p.unknown {
                format!(", nearest {}", best.class)
            } else {
                String::new()
            };
            outln!(
                "{}: {label} (score {:.3}, distance {:.3}{nearest}){}",
                f.display(),
                best.score,
                best.distance,
                if others.is_empty() {
                    String::new()
                } else {
                    format!("; then {}", others.join(", "))
                }
            );
        }
        outln!("runtime: {}", runtime_line(&embedder));
    }
    Ok(if any_unknown {
        Outcome::No
    } else {
        Outcome::Yes
    })
}
