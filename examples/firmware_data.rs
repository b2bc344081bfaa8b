//! The host side of `firmware-tests/`: exports its data set and checks what the firmware wrote.
//!
//! ```text
//! cargo run --example firmware_data -- export firmware-tests/data     # before building the firmware
//! cargo run --example firmware_data -- check firmware-tests/data LOG  # LOG: the firmware's QEMU output
//! ```
//! `export` embeds Fashion-MNIST images of classes 0-4 (`$EDGECL_DATA/fashion-mnist`, default
//! `../shared/data/fashion-mnist`) with EfficientNet-Lite0: the first 20 training images of each class to
//! learn from and the first 40 test images of each to classify. It stores each feature vector as int8
//! (one scale per vector, the core's `quantise_i8`), learns NCM from the dequantised training vectors
//! with the std build's [`Learner`] (no feature memory), classifies the test vectors, and writes
//! `features.bin`, the std state `host.edgecl`, and `manifest.txt` with the std build's correct count.
//!
//! `check` decodes the state the firmware printed with the std build's `state::decode` and requires the
//! std build's class names, counts and bit-identical class sums, and the firmware's accuracy to equal the
//! std build's.

use std::path::{Path, PathBuf};

use edgecl::backbone::{BackboneOptions, Model};
use edgecl::dataset::{fashion_mnist, Split};
use edgecl::embed::Embedder;
use edgecl::learner::{Learner, LearnerConfig};
use edgecl::nostd::quant::{dequantise_i8, quantise_i8};
use ndarray::Array2;

const CLASSES: usize = 5;
const TRAIN_PER_CLASS: usize = 20;
const TEST_PER_CLASS: usize = 40;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["export", dir] => export(Path::new(dir)),
        ["check", dir, log] => check(Path::new(dir), Path::new(log)),
        _ => Err("usage: firmware_data export DIR | firmware_data check DIR LOG".into()),
    };
    if let Err(e) = run {
        eprintln!("firmware_data: {e}");
        std::process::exit(2);
    }
}

fn data_root() -> PathBuf {
    std::env::var_os("EDGECL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// Picks, embeds and int8-quantises: `(label, scale, values)` per image.
fn vectors(
    embedder: &mut Embedder,
    split: Split,
    per_class: usize,
) -> Res<Vec<(u8, f32, Vec<i8>)>> {
    let dir = data_root().join("fashion-mnist");
    let set = fashion_mnist(&dir, split)
        .map_err(|e| format!("{e} (set EDGECL_DATA to the folder holding fashion-mnist/)"))?;
    let picks: Vec<usize> = set
        .first_per_class(Some(per_class))
        .into_iter()
        .filter(|&i| (set.labels[i] as usize) < CLASSES)
        .collect();
    let images = picks
        .iter()
        .map(|&i| set.image(i, edgecl::preprocess::Floor::Full))
        .collect::<edgecl::Result<Vec<_>>>()?;
    let features = embedder.embed_images(&images, |_| {})?;
    Ok(picks
        .iter()
        .zip(features.rows())
        .map(|(&i, row)| {
            let mut q = vec![0i8; row.len()];
            let scale = quantise_i8(row.as_slice().expect("contiguous"), &mut q);
            (set.labels[i] as u8, scale, q)
        })
        .collect())
}

/// The dequantised vectors as rows, and their labels.
fn dequantised(v: &[(u8, f32, Vec<i8>)], dim: usize) -> (Array2<f32>, Vec<usize>) {
    let mut out = Array2::zeros((v.len(), dim));
    for ((_, scale, q), mut row) in v.iter().zip(out.rows_mut()) {
        dequantise_i8(q, *scale, row.as_slice_mut().expect("contiguous"));
    }
    (out, v.iter().map(|r| r.0 as usize).collect())
}

fn export(dir: &Path) -> Res<()> {
    let model =
        Model::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet-lite0.onnx"))?;
    let mut embedder = Embedder::new(model.clone(), &BackboneOptions::default())?;
    let dim = embedder.dim();
    let train = vectors(&mut embedder, Split::Train, TRAIN_PER_CLASS)?;
    let test = vectors(&mut embedder, Split::Test, TEST_PER_CLASS)?;
    let names: Vec<String> = fashion_mnist(&data_root().join("fashion-mnist"), Split::Test)?
        .class_names[..CLASSES]
        .to_vec();

    // The std build on the same (dequantised) vectors.
    let mut learner = Learner::new(
        model.reference(),
        LearnerConfig {
            memory_budget: Some(0),
            ..LearnerConfig::default()
        },
    );
    let (train_x, train_y) = dequantised(&train, dim);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    learner.learn_many(&name_refs, train_x.view(), &train_y)?;
    let (test_x, test_y) = dequantised(&test, dim);
    let correct = learner
        .classify(test_x.view(), 1)?
        .iter()
        .zip(&test_y)
        .filter(|(p, &y)| p.top[0].class == names[y])
        .count();

    std::fs::create_dir_all(dir)?;
    let mut bin = b"EDGECLFV".to_vec();
    for n in [dim, CLASSES, train.len(), test.len()] {
        bin.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for (label, scale, q) in train.iter().chain(&test) {
        bin.push(*label);
        bin.extend_from_slice(&scale.to_le_bytes());
        bin.extend(q.iter().map(|&v| v as u8));
    }
    std::fs::write(dir.join("features.bin"), &bin)?;
    let path = dir.join("host.edgecl");
    learner.save(&edgecl::state::StateLock::acquire(
        &path,
        edgecl::state::DEFAULT_LOCK_TIMEOUT,
    )?)?;
    let manifest = format!(
        "dim={dim}\nclasses={CLASSES}\ntrain={}\ntest={}\nstd_correct={correct}\nnames={}\nruntime={}\n",
        train.len(),
        test.len(),
        names.join("\t"),
        embedder.runtime().runtime,
    );
    std::fs::write(dir.join("manifest.txt"), &manifest)?;
    println!(
        "wrote {}: {} training and {} test vectors of {dim} int8 values ({} bytes), std build correct {correct}/{}",
        dir.display(),
        train.len(),
        test.len(),
        bin.len(),
        test.len()
    );
    Ok(())
}

fn check(dir: &Path, log: &Path) -> Res<()> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let manifest = std::fs::read_to_string(dir.join("manifest.txt"))?;
    let want: usize = manifest
        .lines()
        .find_map(|l| l.strip_prefix("std_correct="))
        .ok_or("manifest.txt: no std_correct=")?
        .parse()?;
    if !text.lines().any(|l| l == "PASS") {
        return Err(format!("{}: the firmware did not report PASS", log.display()).into());
    }
    let got: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("correct: "))
        .and_then(|r| r.split('/').next())
        .ok_or("no `correct:` line")?
        .parse()?;
    if got != want {
        return Err(format!("firmware correct {got}, std build {want}").into());
    }
    let hex: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("state-hex: "))
        .collect();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()?;
    let fw = edgecl::state::decode(&bytes).map_err(|e| format!("firmware state: {e}"))?;
    let host = edgecl::state::load(&dir.join("host.edgecl"))?;
    if fw.class_names != host.class_names {
        return Err(format!("class names {:?} vs {:?}", fw.class_names, host.class_names).into());
    }
    for c in 0..host.means.classes() {
        if fw.means.count(c) != host.means.count(c)
            || fw.means.raw_mean(c) != host.means.raw_mean(c)
        {
            return Err(format!("class {c}: count or mean differs from the std build's").into());
        }
    }
    if edgecl::state::encode(&fw) != bytes {
        return Err("the std build re-encodes the firmware's state differently".into());
    }
    println!(
        "firmware state: {} bytes, decoded by the std build: {} classes, counts and means equal the std build's; \
         accuracy {got}/{} equals the std build's",
        bytes.len(),
        fw.class_names.len(),
        text.lines()
            .find_map(|l| l.strip_prefix("correct: "))
            .and_then(|r| r.split('/').nth(1))
            .and_then(|r| r.split(' ').next())
            .unwrap_or("?")
    );
    Ok(())
}
