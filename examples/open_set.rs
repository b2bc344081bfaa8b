//! How well the "unknown" answer separates known classes from classes never learnt, on Fashion-MNIST.
//!
//! ```text
//! cargo run --release --example open_set -- [FASHION_MNIST_DIR] [SHOTS]
//! ```
//! Learns classes 0-4 from SHOTS captures each (default 10), then classifies 1,000 test images: those of
//! classes 0-4 should be answered, those of 5-9 (never learnt) should be "unknown". Prints, for several
//! unknown factors, the share of known images wrongly rejected and of unseen images rightly rejected.

use edgecl::backbone::{BackboneOptions, Model};
use edgecl::dataset::{fashion_mnist, Split};
use edgecl::embed::Embedder;
use edgecl::learner::{Learner, LearnerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .map_or("../shared/data/fashion-mnist", String::as_str);
    let shots: usize = args.get(1).map_or(Ok(10), |s| s.parse())?;
    let model = Model::open(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/efficientnet-lite0.onnx"
        )
        .as_ref(),
    )?;
    let mut embedder = Embedder::new(model.clone(), &BackboneOptions::default())?;
    let train = fashion_mnist(dir.as_ref(), Split::Train)?;
    let test = fashion_mnist(dir.as_ref(), Split::Test)?;

    let picks = train.first_per_class(Some(shots));
    let images = picks
        .iter()
        .map(|&i| train.image(i, edgecl::preprocess::Floor::Full))
        .collect::<edgecl::Result<Vec<_>>>()?;
    let train_f = embedder.embed_images(&images, |_| {})?;
    let test_idx: Vec<usize> = (0..1000).collect();
    let images = test_idx
        .iter()
        .map(|&i| test.image(i, edgecl::preprocess::Floor::Full))
        .collect::<edgecl::Result<Vec<_>>>()?;
    let test_f = embedder.embed_images(&images, |_| {})?;
    println!(
        "runtime {}, {shots} captures per known class, 1000 test images",
        embedder.runtime().runtime
    );

    let mut learner = Learner::new(model.reference(), LearnerConfig::default());
    for c in 0..5 {
        let rows: Vec<usize> = (0..picks.len())
            .filter(|&r| train.labels[picks[r]] as usize == c)
            .collect();
        learner.learn(
            &train.class_names[c],
            train_f.select(ndarray::Axis(0), &rows).view(),
        )?;
    }
    println!(
        "{:>7} {:>22} {:>22}",
        "factor", "known rejected (bad)", "unseen rejected (good)"
    );
    for factor in [1.0, 1.5, 2.0, 3.0, 4.0] {
        learner.set_unknown_factor(factor)?;
        let p = learner.classify(test_f.view(), 1)?;
        let (mut known, mut known_rej, mut unseen, mut unseen_rej) = (0, 0, 0, 0);
        for (&i, pred) in test_idx.iter().zip(&p) {
            if (test.labels[i] as usize) < 5 {
                known += 1;
                known_rej += usize::from(pred.unknown);
            } else {
                unseen += 1;
                unseen_rej += usize::from(pred.unknown);
            }
        }
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        println!(
            "{factor:>7.1} {:>21.1}% {:>21.1}%",
            pct(known_rej, known),
            pct(unseen_rej, unseen)
        );
    }
    Ok(())
}
