//! `edgecl merge --state S A B ... --into C`

use std::path::PathBuf;

use anyhow::Result;

use crate::args::LockArgs;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    /// The classes to join.
    #[arg(required = true)]
    classes: Vec<String>,
    /// The joined class: one of them, another existing class, or a new name.
    #[arg(long)]
    into: String,
    #[command(flatten)]
    lock: LockArgs,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome> {
    let from: Vec<&str> = a.classes.iter().map(String::as_str).collect();
    let learner = a.lock.edit(&a.state, |l| l.merge(&from, &a.into))?;
    let into = edgecl::class_name::normalise(&a.into)?;
    let info = learner.info();
    let captures = info
        .classes
        .iter()
        .find(|c| c.name == into)
        .map_or(0, |c| c.captures);
    if a.json {
        outln!(
            "{}",
            serde_json::json!({ "merged": a.classes, "into": into, "captures": captures, "classes": learner.class_names() })
        );
    } else {
        outln!(
            "merged {} into {into:?} ({captures} captures); {} classes",
            a.classes.join(", "),
            info.classes.len()
        );
    }
    Ok(Outcome::Yes)
}
