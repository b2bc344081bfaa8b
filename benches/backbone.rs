//! Backbone embedding of EfficientNet-Lite0 (224x224 -> 1280-d) on tract and on ONNX Runtime (CPU), at
//! batch 1 and 8, all cores. This is the floor everything else is compared with.
//!
//! `ORT_DYLIB_PATH=... cargo bench --bench backbone` (without it only tract runs, and it says so).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgecl::backbone::{self, BackboneOptions, RuntimeChoice};
use ndarray::Array4;
use std::hint::black_box;

#[path = "harness/mod.rs"]
mod harness;

fn embed(c: &mut Criterion) {
    let model = harness::effnet();
    let mut g = c.benchmark_group("backbone");
    g.sample_size(10);
    let mut runtimes = vec![(RuntimeChoice::Tract, None)];
    if let Some(lib) = harness::ort_lib() {
        runtimes.push((RuntimeChoice::Ort, Some(lib)));
    }
    for (runtime, ort_lib) in runtimes {
        let opts = BackboneOptions {
            runtime,
            ort_lib,
            ..Default::default()
        };
        let mut net = backbone::open(&model, &opts).unwrap();
        for batch in [1usize, 8] {
            let shape = model.card.input_shape(batch);
            let input = Array4::from_shape_vec(
                shape,
                edgecl::card::reference_input(3, shape.iter().product()),
            )
            .unwrap();
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(BenchmarkId::new(net.runtime().runtime, batch), |b| {
                b.iter(|| black_box(net.embed(input.view()).unwrap()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
