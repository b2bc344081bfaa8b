//! `edgecl info --state S`

use std::path::PathBuf;

use anyhow::{Context, Result};
use edgecl::learner::Learner;

use crate::common::{runtime_line, CommonArgs};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    /// Only read the state; do not open the model to report the runtime.
    #[arg(long)]
    no_model: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    let learner = Learner::load(&a.state).context("the state file was left as it is")?;
    let info = learner.info();
    // The runtime line needs the model: open it (sha256 checked) unless told not to.
    let embedder = if a.no_model {
        None
    } else {
        let e = a.common.embedder(Some(&learner.model().path))?;
        learner.check_model(&e.model().card.name, &e.model().sha256)?;
        Some(e)
    };
    if a.common.json {
        let out =
            serde_json::json!({ "state": info, "runtime": embedder.as_ref().map(|e| e.runtime()) });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Yes);
    }
    println!(
        "state:   {} ({} bytes, format v{})",
        a.state.display(),
        info.state_bytes,
        edgecl::state::VERSION
    );
    println!(
        "model:   {} ({}-d, sha256 {})",
        info.model, info.dim, info.model_sha256
    );
    println!("         made from {}", info.model_path);
    if let Some(e) = &embedder {
        println!("runtime: {}", runtime_line(e));
    }
    println!(
        "head:    {} ({} bytes of its own; unknown factor {})",
        info.head, info.head_bytes, info.unknown_factor
    );
    println!(
        "memory:  {} / {} bytes, {} of {} vectors ({:?})",
        info.memory_bytes,
        info.memory_budget,
        info.memory_vectors,
        info.memory_capacity,
        info.memory_storage
    );
    println!("classes: {}", info.classes.len());
    for c in &info.classes {
        let limit = c
            .unknown_threshold
            .map_or("none".to_string(), |t| format!("{t:.4}"));
        println!(
            "  {:<24} {:>6} captures {:>5} stored   unknown beyond d^2 {limit}",
            c.name, c.captures, c.memory_vectors
        );
    }
    Ok(Outcome::Yes)
}
