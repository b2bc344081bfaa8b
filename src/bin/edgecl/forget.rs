//! `edgecl forget --state S --class NAME`

use std::path::PathBuf;

use anyhow::Result;

use crate::args::LockArgs;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    #[arg(long)]
    class: String,
    #[command(flatten)]
    lock: LockArgs,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome> {
    let learner = a.lock.edit(&a.state, |l| l.forget(&a.class))?;
    if a.json {
        outln!(
            "{}",
            serde_json::json!({ "forgot": a.class, "classes": learner.class_names() })
        );
    } else {
        outln!(
            "forgot {:?}; {} classes left",
            a.class,
            learner.class_names().len()
        );
    }
    Ok(Outcome::Yes)
}
