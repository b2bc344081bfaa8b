//! `edgecl models`: the models found where models live, in the order they are searched.

use anyhow::Result;
use edgecl::models::{self, DEFAULT_MODEL};

use crate::output::safe;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome> {
    let found = models::list();
    let default = models::find(None, None).ok();
    let searched: Vec<String> = models::dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    if a.json {
        let out = serde_json::json!({ "models": found, "default": default, "searched": searched });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for f in &found {
            let mark = if default.as_ref() == Some(&f.path) {
                "  (default)"
            } else {
                ""
            };
            outln!(
                "{:<34} {:>6.1} MB  dim {:<5} sha256 {}  {}{mark}",
                safe(&f.name),
                f.bytes as f64 / 1e6,
                f.dim,
                &f.sha256[..f.sha256.len().min(12)],
                safe(&f.path.display().to_string())
            );
        }
        if found.is_empty() {
            outln!("no models found (the default is {DEFAULT_MODEL})");
        }
        outln!("searched: {}", safe(&searched.join(", ")));
    }
    Ok(if found.is_empty() {
        Outcome::No
    } else {
        Outcome::Yes
    })
}
