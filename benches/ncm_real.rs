//! NCM classification at 1,000 and 10,000 classes with realistic class means, against the embedding
//! (issue 21 item 4).
//!
//! Realistic means: real CIFAR-10 images (the partial copy under ../shared/data, or
//! `EDGECL_CIFAR10_DIR`) embedded with EfficientNet-Lite0; each class is learnt the way a device learns
//! one, from 5 captures: 5 images drawn (seeded) from one real category, so 1,000 or 10,000 classes fall
//! into 10 tight clusters of look-alike classes, the hard case for the int8 scan's bound (many classes
//! close to the query must be rescored in f32). Queries are real test images. For comparison, the same
//! sizes with seeded uniform-random means (the `heads` bench's), and the embedding of one ready tensor
//! (ONNX Runtime, all cores; tract without ORT_DYLIB_PATH), all in one process and one run.
//!
//! `ORT_DYLIB_PATH=... cargo bench --bench ncm_real`. Under `cargo test` it runs a small case (100
//! classes, a few queries) so it cannot rot.

use std::hint::black_box;
use std::time::Instant;

use edgecl::dataset::{self, Split};
use edgecl::embed::Embedder;
use edgecl::learner::{Learner, LearnerConfig};
use edgecl::memory::Storage;
use edgecl::preprocess::Floor;
use harness::median;
use ndarray::{Array2, Axis};

#[path = "harness/mod.rs"]
mod harness;

/// xorshift32, for the seeded draws.
fn next(s: &mut u32) -> u32 {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    *s
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let dir = std::env::var_os("EDGECL_CIFAR10_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10-partial")
        });
    let (train, test) = match (
        dataset::cifar10(&dir, Split::Train),
        dataset::cifar10(&dir, Split::Test),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            panic!(
                "ncm_real needs CIFAR-10 at {} (EDGECL_CIFAR10_DIR): {e}",
                dir.display()
            )
        }
    };
    let opts = harness::runtime_options(harness::ort_lib());
    let model = harness::effnet();
    let mut embedder = Embedder::new(model.clone(), &opts).unwrap();
    let (per_class, queries, sizes): (usize, usize, &[usize]) = if benching {
        (100, 100, &[1_000, 10_000])
    } else {
        (4, 4, &[100])
    };

    // Real features: `per_class` training images of each category, `queries` test images.
    let embed = |ds: &dataset::Dataset, idx: &[usize], e: &mut Embedder| -> Array2<f32> {
        let images = idx
            .iter()
            .map(|&i| ds.image(i, Floor::Full))
            .collect::<edgecl::Result<Vec<_>>>()
            .unwrap();
        e.embed_images(&images, |_| {}).unwrap()
    };
    let picks = train.first_per_class(Some(per_class));
    let train_f = embed(&train, &picks, &mut embedder);
    let by_class: Vec<Vec<usize>> = (0..10)
        .map(|c| {
            (0..picks.len())
                .filter(|&r| train.labels[picks[r]] == c)
                .collect()
        })
        .collect();
    let query_idx: Vec<usize> = (0..queries.min(test.len())).collect();
    let query_f = embed(&test, &query_idx, &mut embedder);

    // The embedding of one ready tensor, the yardstick.
    let input = ndarray::Array4::<f32>::zeros(model.card.input_shape(1));
    let runs = if benching { 50 } else { 3 };
    let embed_ms = median(
        (0..runs + 5)
            .map(|_| {
                let t = Instant::now();
                black_box(embedder.embed_tensor(input.view()).unwrap());
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(5)
            .collect(),
    );
    println!(
        "ncm_real: embedding {embed_ms:.3} ms ({}, {} threads)",
        embedder.runtime().runtime,
        embedder.runtime().threads
    );

    let d = embedder.dim();
    let time_classify = |learner: &Learner, q: &Array2<f32>| -> f64 {
        let reps = if benching { 5 } else { 1 };
        let mut t = Vec::new();
        for _ in 0..reps {
            for row in q.axis_iter(Axis(0)) {
                let one = row.insert_axis(Axis(0));
                let s = Instant::now();
                black_box(learner.classify(one, 5).unwrap());
                t.push(s.elapsed().as_secs_f64() * 1e3);
            }
        }
        median(t)
    };
    for &classes in sizes {
        let mut learner = Learner::new(
            model.reference(),
            LearnerConfig {
                storage: Storage::Int8,
                ..Default::default()
            },
        );
        // Learnt 1,000 classes per call (each call copies the state for its rollback, so one call per
        // class would make building 10,000 classes quadratic).
        let mut seed = 0x9e37_79b9u32;
        for first in (0..classes).step_by(1000) {
            let chunk: Vec<String> = (first..classes.min(first + 1000))
                .map(|c| format!("class-{c}"))
                .collect();
            let (mut rows, mut labels) = (Vec::new(), Vec::new());
            for (i, c) in (first..first + chunk.len()).enumerate() {
                let pool = &by_class[c % 10];
                for _ in 0..5 {
                    rows.push(pool[next(&mut seed) as usize % pool.len()]);
                    labels.push(i);
                }
            }
            let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
            learner
                .learn_many(&names, train_f.select(Axis(0), &rows).view(), &labels)
                .unwrap();
        }
        let real = time_classify(&learner, &query_f);
        let uniform_learner = harness::learner(classes, d, Storage::Int8, 0);
        let uniform_q = harness::features(query_f.nrows(), d, 99);
        let uniform = time_classify(&uniform_learner, &uniform_q);
        println!(
            "{classes} classes x {d}: real-feature means {:.1} us = {:.2}% of the embedding; uniform-random means {:.1} us = {:.2}%",
            real * 1e3,
            100.0 * real / embed_ms,
            uniform * 1e3,
            100.0 * uniform / embed_ms
        );
    }
}
