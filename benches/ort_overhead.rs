//! What edgecl's ONNX Runtime path adds to a bare session: EfficientNet-Lite0, batch 1, all cores, the
//! same library, model and input. The bare session is built and run with the `ort` crate alone (default
//! session options, the input passed by reference). The two take turns in short blocks (the order
//! swapped every block), so drift in the machine's speed hits both alike; criterion's
//! one-bench-after-another runs cannot promise that on a shared host.
//!
//! `ORT_DYLIB_PATH=... cargo bench --bench ort_overhead [-- RUNS]` (default 300 timed runs per side).
//! Prints each side's median and the median of the blocks' ratios. Under `cargo test` it runs 3.

use std::hint::black_box;
use std::time::Instant;

use edgecl::backbone::{self, BackboneOptions, RuntimeChoice};
use ndarray::Array4;

#[path = "common/mod.rs"]
mod common;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let runs = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(if benching { 300 } else { 3 });
    let Some(lib) = common::ort_lib() else {
        return;
    };
    let model = common::effnet();
    let opts = BackboneOptions {
        runtime: RuntimeChoice::Ort,
        ort_lib: Some(lib.clone()),
        ..Default::default()
    };
    let mut edgecl = backbone::open(&model, &opts).unwrap();
    let threads = edgecl.runtime().threads;
    let ortlib = backbone::ortlib::load(Some(&lib)).unwrap();
    let mut bare = ort::session::Session::builder(&ortlib.env)
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .commit_from_memory(&model.bytes)
        .unwrap();
    let shape = model.card.input_shape(1);
    let data = edgecl::card::reference_input(3, shape.iter().product());
    let input = Array4::from_shape_vec(shape, data.clone()).unwrap();
    let input_name = model.card.input.name.as_str();

    let mut run_edgecl = || {
        let t = Instant::now();
        black_box(edgecl.embed(input.view()).unwrap());
        t.elapsed().as_secs_f64()
    };
    let mut run_bare = || {
        let t = Instant::now();
        let x = ort::value::TensorRef::from_array_view((shape, data.as_slice())).unwrap();
        let out = bare.run(ort::inputs![input_name => x]).unwrap();
        black_box(out[0].try_extract_tensor::<f32>().unwrap().1[0]);
        t.elapsed().as_secs_f64()
    };
    // Blocks of BLOCK runs each, alternating which side goes first; the first run of each block is
    // dropped, since the other session's worker threads may still be spinning then.
    const BLOCK: usize = 6;
    let blocks = runs.div_ceil(BLOCK - 1).max(1);
    let (mut e, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=blocks {
        let one = |f: &mut dyn FnMut() -> f64| -> Vec<f64> {
            (0..BLOCK).map(|_| f()).skip(1).collect()
        };
        let (te, tb) = if i % 2 == 0 {
            let te = one(&mut run_edgecl);
            (te, one(&mut run_bare))
        } else {
            let tb = one(&mut run_bare);
            (one(&mut run_edgecl), tb)
        };
        if i == 0 {
            continue; // warm-up
        }
        ratio.push(median(te.clone()) / median(tb.clone()));
        e.extend(te);
        b.extend(tb);
    }
    println!(
        "ort_overhead ({} runs each, in alternating blocks of {}, {threads} threads): edgecl {:.3} ms, \
         bare {:.3} ms, edgecl/bare (median of the blocks' ratios) {:+.1}%",
        e.len(),
        BLOCK - 1,
        median(e) * 1e3,
        median(b) * 1e3,
        (median(ratio) - 1.0) * 100.0
    );
}
