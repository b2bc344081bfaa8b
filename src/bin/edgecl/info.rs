//! `edgecl info --state S [--audit [--captures PATH...]]`
//!
//! `--audit` lists every array of the state with its shape and what it aggregates, and checks the privacy
//! invariants (`edgecl::learner::Audit`); exit 1 when one fails.

use std::path::PathBuf;

use anyhow::Result;
use edgecl::learner::Learner;

use crate::args::CommonArgs;
use crate::output::runtime_line;
use crate::output::safe;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: PathBuf,
    /// Only read the state; do not open the model to report the runtime.
    #[arg(long)]
    no_model: bool,
    /// List every array of the state and check the privacy invariants: no exemplar memory, at least K
    /// captures per class, a size set by classes and not captures. Exit 1 if one fails.
    #[arg(long)]
    audit: bool,
    /// With --audit: K for heads other than privacy (the privacy head's own K is used for it).
    #[arg(long, default_value_t = edgecl::head::privacy::DEFAULT_K, requires = "audit")]
    k: u32,
    /// With --audit: images (or directories) to check the stored vectors against, e.g. the captures
    /// that were learnt: no stored vector may be within --min-distance of one.
    #[arg(long, num_args = 1.., requires = "audit")]
    captures: Vec<PathBuf>,
    /// With --captures: the smallest allowed distance between a stored vector and a capture (both
    /// L2-normalised; 0.05 is a cosine of 0.99875).
    #[arg(long, default_value_t = 0.05, requires = "audit")]
    min_distance: f32,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    let learner = crate::args::load_state(&a.state)?;
    if a.audit {
        return audit(&a, &learner);
    }
    let info = learner.info();
    // The runtime line needs the model: open it (sha256 checked) unless told not to.
    let embedder = if a.no_model {
        None
    } else {
        let e = a.common.embedder(Some(learner.model()))?;
        learner.check_model(&e.model().card.name, &e.model().sha256)?;
        Some(e)
    };
    if a.common.json {
        let out =
            serde_json::json!({ "state": info, "runtime": embedder.as_ref().map(|e| e.runtime()) });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Yes);
    }
    outln!(
        "state:   {} ({} bytes, format v{})",
        a.state.display(),
        info.state_bytes,
        edgecl::state::VERSION
    );
    outln!(
        "model:   {} ({}-d, sha256 {})",
        safe(&info.model),
        info.dim,
        info.model_sha256
    );
    outln!("         made from {}", safe(&info.model_path));
    if let Some(e) = &embedder {
        outln!("runtime: {}", runtime_line(e));
    }
    outln!(
        "head:    {} ({} bytes of its own; unknown factor {})",
        info.head,
        info.head_bytes,
        info.unknown_factor
    );
    outln!(
        "memory:  {} / {} bytes, {} of {} vectors ({:?})",
        info.memory_bytes,
        info.memory_budget,
        info.memory_vectors,
        info.memory_capacity,
        info.memory_storage
    );
    if let Some(p) = &info.privacy {
        outln!(
            "privacy: K = {}{}; {}",
            p.k,
            if p.adapter > 0 {
                format!(", adapter width {}", p.adapter)
            } else {
                String::new()
            },
            p.note
        );
        if let (Some(e), Some(d), Some(c), Some(z)) =
            (p.dp_epsilon, p.dp_delta, p.dp_clip, p.dp_noise_multiplier)
        {
            outln!(
                "         DP: (epsilon, delta) = ({e}, {d}) per capture for the class sums and counts; clip {c}, noise sd {z:.3} (count) and {:.3} (each sum coordinate)",
                z * c
            );
        }
    }
    outln!("classes: {}", info.classes.len());
    for c in &info.classes {
        let limit = c
            .unknown_threshold
            .map_or("none".to_string(), |t| format!("{t:.4}"));
        outln!(
            "  {:<24} {:>6} captures {:>5} stored   unknown beyond d^2 {limit}",
            c.name,
            c.captures,
            c.memory_vectors
        );
    }
    Ok(Outcome::Yes)
}

fn audit(a: &Args, learner: &Learner) -> Result<Outcome> {
    let captures = if a.captures.is_empty() {
        None
    } else {
        let files = edgecl::embed::collect_images(&a.captures)?;
        let mut embedder = a.common.embedder(Some(learner.model()))?;
        learner.check_model(&embedder.model().card.name, &embedder.model().sha256)?;
        let bar = a.common.progress(files.len(), "embedding");
        let f = embedder.embed_files(&files, |n| bar.set_position(n as u64))?;
        bar.finish_and_clear();
        Some(f)
    };
    let report = learner.audit(a.k, captures.as_ref().map(|f| f.view()), a.min_distance);
    if a.common.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "audit of {} ({} bytes, head {}, K = {})",
            a.state.display(),
            report.state_bytes,
            report.head,
            report.k
        );
        outln!("arrays:");
        for arr in &report.arrays {
            let shape: Vec<String> = arr.shape.iter().map(|s| s.to_string()).collect();
            outln!(
                "  {:<28} [{}] {} ({} bytes): {}",
                arr.name,
                shape.join(" x "),
                arr.dtype,
                arr.bytes,
                arr.aggregates
            );
        }
        outln!("checks:");
        for c in &report.checks {
            outln!(
                "  {} {}: {}",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
    }
    if report.passed {
        if !a.common.json {
            outln!("audit passed");
        }
        Ok(Outcome::Yes)
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        eprintln!("edgecl: audit FAILED: {}", failed.join("; "));
        Ok(Outcome::No)
    }
}
