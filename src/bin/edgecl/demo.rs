//! `edgecl demo`: learn the 10 Fashion-MNIST classes from a few captures each, classify the test set, and
//! report accuracy, per-image latency (preprocessing, backbone, head) and state size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use edgecl::dataset::{self, Split};
use edgecl::learner::{Learner, LearnerConfig};
use ndarray::Array2;

use crate::args::CommonArgs;
use crate::output::{peak_rss_bytes, runtime_line};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Fashion-MNIST directory (the four IDX files, gzipped or not). Default: $EDGECL_DATA/fashion-mnist,
    /// /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist), ../shared/data/fashion-mnist.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Captures learnt per class (the first N training images of each class).
    #[arg(long, default_value_t = 10)]
    shots: usize,
    /// Test images to classify (default: all 10,000).
    #[arg(long)]
    limit: Option<usize>,
    /// Also save the learnt state here.
    #[arg(long)]
    state: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn find_data(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d);
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(root) = std::env::var_os("EDGECL_DATA") {
        candidates.push(Path::new(&root).join("fashion-mnist"));
    }
    candidates.push("/usr/share/datasets/fashion-mnist".into());
    candidates.push("../shared/data/fashion-mnist".into());
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fashion-mnist"));
    match candidates.iter().find(|d| d.join("t10k-labels-idx1-ubyte.gz").is_file() || d.join("t10k-labels-idx1-ubyte").is_file()) {
        Some(d) => Ok(d.clone()),
        None => bail!(
            "Fashion-MNIST not found (looked in {}); install it with `apt-get install dataset-fashion-mnist` or pass --data DIR",
            candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub fn run(a: Args) -> Result<Outcome> {
    if a.shots == 0 {
        bail!("--shots must be at least 1");
    }
    let dir = find_data(a.data)?;
    let train = dataset::fashion_mnist(&dir, Split::Train)?;
    let test = dataset::fashion_mnist(&dir, Split::Test)?;
    let mut embedder = a.common.embedder(None)?;
    let model = embedder.model().clone();
    if !a.common.json {
        outln!(
            "data:    {} ({} train / {} test images)",
            dir.display(),
            train.len(),
            test.len()
        );
        outln!(
            "model:   {} ({}-d features)",
            model.card.name,
            model.card.features.dim
        );
        outln!("runtime: {}", runtime_line(&embedder));
    }

    // Learn: the first `shots` training images of each class.
    let picks = train.first_per_class(Some(a.shots));
    let images = picks
        .iter()
        .map(|&i| train.image(i, embedder.floor()))
        .collect::<edgecl::Result<Vec<_>>>()?;
    let features = embedder.embed_images(&images, |_| {})?;
    let mut learner = Learner::new(model.reference(), LearnerConfig::default());
    let t = Instant::now();
    for (c, name) in train.class_names.iter().enumerate() {
        let rows: Vec<usize> = picks
            .iter()
            .enumerate()
            .filter(|(_, &i)| train.labels[i] as usize == c)
            .map(|(r, _)| r)
            .collect();
        let f = features.select(ndarray::Axis(0), &rows);
        learner.learn(name, f.view())?;
    }
    let learn_time = t.elapsed();

    // Classify the test set, in chunks so memory stays flat.
    let n = a.limit.unwrap_or(test.len()).min(test.len());
    embedder.timing = Default::default();
    let bar = a.common.progress(n, "classifying");
    let (mut correct, mut correct_known, mut unknown) = (0usize, 0usize, 0usize);
    let mut head_time = std::time::Duration::ZERO;
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let images = (start..end)
            .map(|i| test.image(i, embedder.floor()))
            .collect::<edgecl::Result<Vec<_>>>()?;
        let f: Array2<f32> = embedder.embed_images(&images, |_| {})?;
        let t = Instant::now();
        let preds = learner.classify(f.view(), 1)?;
        head_time += t.elapsed();
        for (i, p) in (start..end).zip(&preds) {
            let truth = &test.class_names[test.labels[i] as usize];
            correct += usize::from(&p.top[0].class == truth);
            correct_known += usize::from(p.label.as_ref() == Some(truth));
            unknown += usize::from(p.unknown);
        }
        bar.set_position(end as u64);
    }
    bar.finish_and_clear();

    let timing = embedder.timing;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n.max(1) as f64;
    let info = learner.info();
    let report = serde_json::json!({
        "data": dir, "shots": a.shots, "classes": info.classes.len(), "test_images": n,
        "accuracy": correct as f64 / n.max(1) as f64,
        "accuracy_with_unknown": correct_known as f64 / n.max(1) as f64,
        "unknown_rate": unknown as f64 / n.max(1) as f64,
        "latency_ms_per_image": { "preprocess": per(timing.preprocess), "backbone": per(timing.backbone), "head": per(head_time) },
        "learn_ms_total": learn_time.as_secs_f64() * 1e3,
        "state_bytes": info.state_bytes, "memory_bytes": info.memory_bytes, "peak_rss_bytes": peak_rss_bytes(),
        "model": model.card.name, "runtime": embedder.runtime(),
    });
    if let Some(path) = &a.state {
        let lock = edgecl::state::StateLock::acquire(path, edgecl::state::DEFAULT_LOCK_TIMEOUT)?;
        learner.save(&lock)?;
    }
    if a.common.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "learnt:  {} classes x {} captures in {:.2} ms (head only)",
            info.classes.len(),
            a.shots,
            learn_time.as_secs_f64() * 1e3
        );
        outln!(
            "test:    {n} images: accuracy {:.2}% (nearest class); {:.2}% counting \"unknown\" as wrong; {:.2}% called unknown",
            100.0 * correct as f64 / n.max(1) as f64,
            100.0 * correct_known as f64 / n.max(1) as f64,
            100.0 * unknown as f64 / n.max(1) as f64
        );
        outln!(
            "latency: {:.3} ms/image preprocess, {:.3} ms/image backbone, {:.4} ms/image head",
            per(timing.preprocess),
            per(timing.backbone),
            per(head_time)
        );
        outln!(
            "state:   {} bytes ({} bytes of stored features)",
            info.state_bytes,
            info.memory_bytes
        );
        if let Some(rss) = peak_rss_bytes() {
            let mib = rss as f64 / 1048576.0;
            outln!(
                "memory:  peak resident {mib:.1} MiB (the whole process: runtime, model, data set)"
            );
        }
        if let Some(path) = &a.state {
            outln!("saved:   {}", path.display());
        }
    }
    Ok(Outcome::Yes)
}
