//! Learn one class from a folder of captures and save the state.
//!
//! ```text
//! cargo run --release --example learn_folder -- models/efficientnet-lite0.onnx captures/mug mug shop.edgecl
//! ```
//! Prints the runtime it used, how many captures it learnt from, and what the state holds.

use std::path::PathBuf;

use edgecl::backbone::{BackboneOptions, Model};
use edgecl::embed::{collect_images, Embedder};
use edgecl::learner::{Learner, LearnerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, folder, class, state] = args.as_slice() else {
        return Err("usage: learn_folder MODEL.onnx FOLDER CLASS STATE".into());
    };
    let model = Model::open(model.as_ref())?;
    let mut embedder = Embedder::new(model.clone(), &BackboneOptions::default())?;
    println!(
        "runtime: {} {}",
        embedder.runtime().runtime,
        embedder.runtime().version
    );

    let files = collect_images(&[PathBuf::from(folder)])?;
    let features = embedder.embed_files(&files, |_| {})?;
    println!(
        "embedded {} captures into {}-d features",
        files.len(),
        features.ncols()
    );

    let state = PathBuf::from(state);
    let mut learner = if state.exists() {
        Learner::load(&state)?
    } else {
        Learner::new(model.reference(), LearnerConfig::default())
    };
    learner.check_model(&model.card.name, &model.sha256)?;
    learner.learn(class, features.view())?;
    let lock = edgecl::state::StateLock::acquire(&state, edgecl::state::DEFAULT_LOCK_TIMEOUT)?;
    learner.save(&lock)?;
    let info = learner.info();
    println!(
        "{} now knows {} classes; state {} bytes, memory {} of {} bytes",
        state.display(),
        info.classes.len(),
        info.state_bytes,
        info.memory_bytes,
        info.memory_budget
    );
    Ok(())
}
