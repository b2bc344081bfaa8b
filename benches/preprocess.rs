//! Preprocessing one capture: JPEG 640x480 decode, resize + centre crop to 224x224, normalise to NCHW
//! f32 (EfficientNet-Lite0's card); and whole captures of 640x480, 1920x1080 and 4000x3000 (a phone
//! photo), each decoded whole (`full`) and at the scale the model needs (`scaled`, 1/4 and 1/8 for the
//! two large ones; 640x480 is too small to scale for a 256-pixel shorter side).
//!
//! `cargo bench --bench preprocess`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edgecl::preprocess::{decode_bytes, decode_scaled, Floor, Preprocessor};
use std::hint::black_box;

#[path = "harness/mod.rs"]
mod harness;

fn preprocess(c: &mut Criterion) {
    let jpeg = harness::jpeg_frame();
    let card = harness::effnet().card;
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
    let floor = pre.floor();
    g.bench_function(BenchmarkId::new("decode_resize_normalise", 1), |b| {
        b.iter(|| {
            let img = decode_scaled(black_box(&jpeg), floor).unwrap();
            pre.write(&img, &mut out).unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("capture");
    g.sample_size(10);
    for (w, h) in [(640, 480), (1920, 1080), (4000, 3000)] {
        let jpeg = harness::jpeg_frame_sized(w, h);
        for (how, floor) in [("full", Floor::Full), ("scaled", floor)] {
            g.bench_function(BenchmarkId::new(format!("{w}x{h}"), how), |b| {
                b.iter(|| {
                    let img = decode_scaled(black_box(&jpeg), floor).unwrap();
                    pre.write(&img, &mut out).unwrap();
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, preprocess);
criterion_main!(benches);
