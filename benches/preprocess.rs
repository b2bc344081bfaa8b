//! Preprocessing one capture: JPEG 640x480 decode, resize + centre crop to 224x224, normalise to NCHW
//! f32 (EfficientNet-Lite0's card), and the same for a batch of 8 through `Embedder`'s parallel path.
//!
//! `cargo bench --bench preprocess`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edgecl::preprocess::{decode_bytes, Preprocessor};
use std::hint::black_box;

#[path = "common/mod.rs"]
mod common;

fn preprocess(c: &mut Criterion) {
    let jpeg = common::jpeg_frame();
    let card = common::effnet().card;
    let mut pre = Preprocessor::new(&card);
    let mut out = vec![0.0f32; pre.len()];
    let decoded = decode_bytes(&jpeg).unwrap();
    let mut g = c.benchmark_group("preprocess");
    g.bench_function("decode_jpeg_640x480", |b| {
        b.iter(|| black_box(decode_bytes(black_box(&jpeg)).unwrap()))
    });
    g.bench_function("resize_normalise_224", |b| {
        b.iter(|| pre.write(black_box(&decoded), &mut out).unwrap())
    });
    g.bench_function(BenchmarkId::new("decode_resize_normalise", 1), |b| {
        b.iter(|| {
            let img = decode_bytes(black_box(&jpeg)).unwrap();
            pre.write(&img, &mut out).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, preprocess);
criterion_main!(benches);
