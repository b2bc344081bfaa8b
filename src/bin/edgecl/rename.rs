//! `edgecl rename --state S --class OLD --to NEW`

use std::path::PathBuf;

use anyhow::Result;

use crate::args::LockArgs;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    /// The class to rename.
    #[arg(long)]
    class: String,
    /// Its new name (not taken: to join two classes, use merge).
    #[arg(long)]
    to: String,
    #[command(flatten)]
    lock: LockArgs,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome> {
    let learner = a.lock.edit(&a.state, |l| l.rename(&a.class, &a.to))?;
    let to = edgecl::class_name::normalise(&a.to)?;
    if a.json {
        outln!(
            "{}",
            serde_json::json!({ "renamed": a.class, "to": to, "classes": learner.class_names() })
        );
    } else {
        outln!("renamed {:?} to {to:?}", a.class);
    }
    Ok(Outcome::Yes)
}
