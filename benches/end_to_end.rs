//! End to end: a capture file on disk -> label, with EfficientNet-Lite0 on ONNX Runtime (tract without
//! ORT_DYLIB_PATH) and an NCM state of 10 classes; and each stage alone, so the share of each is the
//! ratio of medians (read, decode, preprocess, backbone, head).
//!
//! `ORT_DYLIB_PATH=... cargo bench --bench end_to_end`.

use criterion::{criterion_group, criterion_main, Criterion};
use edgecl::embed::Embedder;
use edgecl::memory::Storage;
use edgecl::preprocess::{decode, Preprocessor};
use ndarray::Array4;
use std::hint::black_box;

#[path = "harness/mod.rs"]
mod harness;

fn end_to_end(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let frame = dir.path().join("frame.jpg");
    std::fs::write(&frame, harness::jpeg_frame()).unwrap();
    let model = harness::effnet();
    let opts = harness::runtime_options(harness::ort_lib());
    let mut embedder = Embedder::new(model.clone(), &opts).unwrap();
    let learner = harness::learner(10, 1280, Storage::Int8, 0);
    let files = vec![frame.clone()];

    let mut g = c.benchmark_group(format!("end_to_end_{}", embedder.runtime().runtime));
    g.sample_size(20);
    g.bench_function("file_to_label", |b| {
        b.iter(|| {
            let f = embedder.embed_files(&files, |_| {}).unwrap();
            black_box(learner.classify(f.view(), 1).unwrap())
        })
    });
    let mut pre = Preprocessor::new(&model.card);
    let img = decode(&frame).unwrap();
    let mut input = Array4::<f32>::zeros(model.card.input_shape(1));
    g.bench_function("stage_read_decode", |b| {
        b.iter(|| black_box(decode(&frame).unwrap()))
    });
    g.bench_function("stage_preprocess", |b| {
        b.iter(|| pre.write(&img, input.as_slice_mut().unwrap()).unwrap())
    });
    g.bench_function("stage_backbone", |b| {
        b.iter(|| black_box(embedder.embed_tensor(input.view()).unwrap()))
    });
    let f = embedder.embed_tensor(input.view()).unwrap();
    g.bench_function("stage_head", |b| {
        b.iter(|| black_box(learner.classify(f.view(), 1).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
