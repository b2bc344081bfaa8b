//! `edgecl verify-model MODEL.onnx`: the card's sha256, then its reference inputs through every runtime
//! available, compared with the exporting framework's features.

use std::path::PathBuf;

use anyhow::{bail, Result};
use edgecl::backbone::{self, BackboneOptions, Model, RuntimeChoice};
use edgecl::card::reference_input;
use ndarray::Array4;

use crate::Outcome;

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
    let card = &model.card;
    let Some(reference) = &card.reference else {
        bail!(
            "{}: the card has no reference features to verify against",
            a.model.display()
        );
    };
    let mut results = Vec::new();
    let mut ok = true;
    for runtime in [RuntimeChoice::Tract, RuntimeChoice::Ort] {
        let opts = BackboneOptions {
            runtime,
            ort_lib: a.ort_lib.clone(),
            ..Default::default()
        };
        let mut net = match backbone::open(&model, &opts) {
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
        let pass = worst <= reference.atol;
        ok &= pass;
        results.push(serde_json::json!({
            "runtime": net.runtime().runtime, "version": net.runtime().version, "library": net.runtime().library,
            "max_abs_diff": worst, "atol": reference.atol, "pass": pass,
        }));
    }
    if a.json {
        let out = serde_json::json!({ "model": a.model, "sha256": model.sha256_hex(), "sha256_ok": true, "results": results, "pass": ok });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!(
            "{}: sha256 {} matches its card",
            a.model.display(),
            model.sha256_hex()
        );
        for r in &results {
            match r.get("skipped") {
                Some(why) => outln!("  ort:   skipped ({})", why.as_str().unwrap_or_default()),
                None => outln!(
                    "  {:<5}  max |diff| {:.2e} over {} reference inputs (atol {:.0e}): {}",
                    r["runtime"].as_str().unwrap_or_default(),
                    r["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
                    reference.seeds.len(),
                    reference.atol,
                    if r["pass"].as_bool() == Some(true) {
                        "ok"
                    } else {
                        "MISMATCH"
                    }
                ),
            }
        }
    }
    Ok(if ok { Outcome::Yes } else { Outcome::No })
}
