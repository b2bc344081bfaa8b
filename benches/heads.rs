//! Head cost against the number of classes and the feature width: learning one capture and classifying
//! one image with the NCM head, and a feature-memory update per storage type.
//!
//! `cargo bench --bench heads`. Sizes are in the benchmark ids (`classes/d`); set-up is never timed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edgecl::memory::Storage;
use std::hint::black_box;

#[path = "harness/mod.rs"]
mod harness;

fn ncm(c: &mut Criterion) {
    let mut g = c.benchmark_group("ncm");
    for d in [160, 512, 1280] {
        for classes in [10, 100, 1_000, 10_000] {
            let id = format!("{classes}/{d}");
            let mut learner = harness::learner(classes, d, Storage::Int8, 0);
            let query = harness::features(1, d, 99);
            g.bench_with_input(BenchmarkId::new("classify_one", &id), &query, |b, q| {
                b.iter(|| black_box(learner.classify(q.view(), 5).unwrap()))
            });
            let capture = harness::features(1, d, 98);
            g.bench_with_input(BenchmarkId::new("learn_one", &id), &capture, |b, f| {
                b.iter(|| learner.learn("class-3", black_box(f.view())).unwrap())
            });
        }
    }
    g.finish();
}

/// One query against the class means: the f32 matrix-vector product + top-k against the int8 scan with
/// exact rescoring (`Ncm::nearest`), same head, same query.
fn ncm_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("ncm_scan");
    let (classes, d) = (1_000, 1280);
    let f = harness::features(2 * classes, d, 7);
    let mut ncm = edgecl::head::Ncm::new(d);
    for class in 0..classes {
        let i = ncm.add_class();
        let mut rows = f
            .slice(ndarray::s![2 * class..2 * class + 2, ..])
            .to_owned();
        edgecl::head::normalise_rows(&mut rows);
        ncm.update(i, rows.view());
    }
    let mut q = harness::features(1, d, 99);
    edgecl::head::normalise_rows(&mut q);
    let id = format!("{classes}/{d}");
    g.bench_function(BenchmarkId::new("f32_product", &id), |b| {
        b.iter(|| black_box(ncm.top_k(ncm.scores(q.view()).row(0), 5)))
    });
    g.bench_function(BenchmarkId::new("int8_scan", &id), |b| {
        b.iter(|| black_box(ncm.nearest(q.row(0), 5)))
    });
    g.finish();
}

/// Learning one capture with a feature memory of 64 vectors per class (herding over kept + new).
fn memory(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_learn_one");
    let (d, classes) = (1280, 10);
    for storage in [Storage::F32, Storage::F16, Storage::Int8] {
        let budget = storage.bytes(d) * 64 * classes as u64;
        let mut learner = harness::learner(classes, d, storage, budget);
        let capture = harness::features(1, d, 97);
        g.bench_function(
            BenchmarkId::new(format!("{storage:?}"), format!("{classes}/{d}")),
            |b| b.iter(|| learner.learn("class-1", black_box(capture.view())).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, ncm, ncm_scan, memory);
criterion_main!(benches);
