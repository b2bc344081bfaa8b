//! `edgecl verify-model MODEL.onnx`: the card's sha256, then its reference inputs through every runtime
//! available, compared with the exporting framework's features.

use std::path::PathBuf;

use anyhow::{bail, Result};
use edgecl::backbone::{self, BackboneOptions, Model, RuntimeChoice};
use edgecl::card::reference_input;
use ndarray::Array4;

use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The ONNX file (its card is the .json beside it).
    model: PathBuf,
    /// ONNX Runtime library (default: searched as for the other commands).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Also fail when ONNX Runtime cannot be loaded (by default it is reported and skipped).
    #[arg(long)]
    require_ort: bool,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome> {
    // A sha256 mismatch is an error from Model::open: exit 2 with the two hashes.
    let model = Model::open(&a.model)?;
    // A task-conditioned model is one file of a set (models/CARD.md): the set must be consistent, and
    // every file's references are checked, not only this one's.
    let (members, set_problems) = match &model.card.task_conditioned {
        None => (vec![a.model.clone()], Vec::new()),
        Some(tc) => match tc.members(&a.model) {
            Ok(paths) => (paths, Vec::new()),
            Err(problems) => (vec![a.model.clone()], problems),
        },
    };
    let mut ok = set_problems.is_empty();
    let mut reports = Vec::new();
    for path in &members {
        let member = if *path == a.model {
            None
        } else {
            Some(Model::open(path)?)
        };
        let report = check_references(member.as_ref().unwrap_or(&model), &a)?;
        ok &= report.pass;
        reports.push((path, member.as_ref().unwrap_or(&model).sha256_hex(), report));
    }
    if a.json {
        let mut out = serde_json::json!({
            "model": a.model, "sha256": model.sha256_hex(), "sha256_ok": true,
            "results": reports.iter().find(|(p, ..)| **p == a.model).map(|(.., r)| r.results.clone()),
            "pass": ok,
        });
        if let Some(tc) = &model.card.task_conditioned {
            out["task_set"] = serde_json::json!({
                "task": tc.task, "n_tasks": tc.n_tasks, "problems": set_problems,
                "files": reports.iter().map(|(p, sha, r)| serde_json::json!({
                    "model": p, "sha256": sha, "results": r.results, "pass": r.pass,
                })).collect::<Vec<_>>(),
            });
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if let Some(tc) = &model.card.task_conditioned {
            outln!(
                "{}: task {} of a set of {} files (one per task)",
                a.model.display(),
                tc.task,
                tc.n_tasks
            );
            for p in &set_problems {
                outln!("  set: {}", output::safe(p));
            }
        }
        for (path, sha, report) in &reports {
            outln!("{}: sha256 {sha} matches its card", path.display());
            for r in &report.results {
                match r.get("skipped") {
                    Some(why) => outln!("  ort:   skipped ({})", why.as_str().unwrap_or_default()),
                    None => outln!(
                        "  {:<5}  max |diff| {:.2e} over {} reference inputs (atol {:.0e}): {}",
                        r["runtime"].as_str().unwrap_or_default(),
                        r["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
                        report.inputs,
                        r["atol"].as_f64().unwrap_or(f64::NAN),
                        if r["pass"].as_bool() == Some(true) {
                            "ok"
                        } else {
                            "MISMATCH"
                        }
                    ),
                }
            }
        }
    }
    Ok(if ok { Outcome::Yes } else { Outcome::No })
}

/// One model's reference inputs through tract and ONNX Runtime.
struct ReferenceReport {
    results: Vec<serde_json::Value>,
    inputs: usize,
    pass: bool,
}

fn check_references(model: &Model, a: &Args) -> Result<ReferenceReport> {
    let card = &model.card;
    let Some(reference) = &card.reference else {
        bail!(
            "{}: the card has no reference features to verify against",
            model.path.display()
        );
    };
    let mut results = Vec::new();
    let mut pass = true;
    for runtime in [RuntimeChoice::Tract, RuntimeChoice::Ort] {
        let opts = BackboneOptions {
            runtime,
            ort_lib: a.ort_lib.clone(),
            ..Default::default()
        };
        let mut net = match backbone::open(model, &opts) {
            Ok(n) => n,
            Err(e) if runtime == RuntimeChoice::Ort && !a.require_ort => {
                results.push(serde_json::json!({ "runtime": "ort", "skipped": e.to_string() }));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let shape = card.input_shape(1);
        let mut worst = 0.0f32;
        for (seed, want) in reference.seeds.iter().zip(&reference.features) {
            let input =
                Array4::from_shape_vec(shape, reference_input(*seed, shape.iter().product()))?;
            let got = net.embed(input.view())?;
            let diff = got
                .iter()
                .zip(want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0f32, f32::max);
            worst = worst.max(diff);
        }
        let ok = worst <= reference.atol;
        pass &= ok;
        results.push(serde_json::json!({
            "runtime": net.runtime().runtime, "version": net.runtime().version, "library": net.runtime().library,
            "max_abs_diff": worst, "atol": reference.atol, "pass": ok,
        }));
    }
    Ok(ReferenceReport {
        results,
        inputs: reference.seeds.len(),
        pass,
    })
}
