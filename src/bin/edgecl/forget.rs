//! `edgecl forget --state S --class NAME`

use std::path::PathBuf;

use anyhow::{Context, Result};
use edgecl::learner::Learner;

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    #[arg(long)]
    class: String,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome> {
    let mut learner = Learner::load(&a.state).context("the state file was left as it is")?;
    learner.forget(&a.class)?;
    learner.save(&a.state)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "forgot": a.class, "classes": learner.class_names() })
        );
    } else {
        println!(
            "forgot {:?}; {} classes left",
            a.class,
            learner.class_names().len()
        );
    }
    Ok(Outcome::Yes)
}
