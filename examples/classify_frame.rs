//! Classify one camera frame against a state file.
//!
//! ```text
//! cargo run --release --example classify_frame -- shop.edgecl frame.jpg
//! ```
//! Prints the three nearest classes with scores, the answer (or "unknown"), and how long each stage took.

use std::time::Instant;

use edgecl::backbone::{BackboneOptions, Model};
use edgecl::embed::Embedder;
use edgecl::learner::Learner;
use edgecl::preprocess::decode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state, frame] = args.as_slice() else {
        return Err("usage: classify_frame STATE FRAME.jpg".into());
    };
    let learner = Learner::load(state.as_ref())?;
    let model = Model::open(learner.model().path.as_ref())?;
    learner.check_model(&model.card.name, &model.sha256)?;
    let mut embedder = Embedder::new(model, &BackboneOptions::default())?;

    let image = decode(frame.as_ref())?;
    let features = embedder.embed_images(&[image], |_| {})?;
    let t = Instant::now();
    let prediction = learner.classify(features.view(), 3)?.remove(0);
    let head = t.elapsed();

    for r in &prediction.top {
        println!(
            "{:<20} score {:.3}  distance {:.3}",
            r.class, r.score, r.distance
        );
    }
    println!(
        "answer: {}",
        prediction.label.as_deref().unwrap_or("unknown")
    );
    let timing = embedder.timing;
    println!(
        "preprocess {:.2} ms, backbone {:.2} ms ({}), head {:.3} ms",
        timing.preprocess.as_secs_f64() * 1e3,
        timing.backbone.as_secs_f64() * 1e3,
        embedder.runtime().runtime,
        head.as_secs_f64() * 1e3
    );
    Ok(())
}
