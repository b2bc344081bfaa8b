//! Saving and loading the state file (encode + decode check + CRC + atomic write + fsync; read + CRC + decode + checks)
//! at 10, 1,000 and 10,000 classes of 1280-d features (EfficientNet-Lite0's width), no feature memory.
//!
//! `cargo bench --bench state`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edgecl::learner::Learner;
use edgecl::memory::Storage;
use edgecl::state::{StateLock, DEFAULT_LOCK_TIMEOUT};
use std::hint::black_box;

#[path = "harness/mod.rs"]
mod harness;

fn state(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("state");
    g.sample_size(20);
    for classes in [10, 1_000, 10_000] {
        let learner = harness::learner(classes, 1280, Storage::Int8, 0);
        let path = dir.path().join(format!("{classes}.edgecl"));
        // The lock is taken once, as a process that saves many times would hold it.
        let lock = StateLock::acquire(&path, DEFAULT_LOCK_TIMEOUT).unwrap();
        g.bench_with_input(BenchmarkId::new("save", classes), &learner, |b, l| {
            b.iter(|| l.save(&lock).unwrap())
        });
        drop(lock);
        g.bench_with_input(BenchmarkId::new("load", classes), &path, |b, p| {
            b.iter(|| black_box(Learner::load(p).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, state);
criterion_main!(benches);
