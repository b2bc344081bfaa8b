//! What edgecl's ONNX Runtime path adds to a bare session: EfficientNet-Lite0, batch 1, all cores, the
//! same library, model and input. The bare session is built and run with the `ort` crate alone (default
//! session options, the input passed by reference).
//!
//! Each side runs in a process of its own, as an application would, and the processes alternate (the
//! order swapped every round), so drift in the machine's speed hits both alike. Two sessions in one
//! process do not compare fairly: the worker threads of the one that ran last keep spinning and slow the
//! other by up to 1.7x on 2 cores.
//!
//! `ORT_DYLIB_PATH=... cargo bench --bench ort_overhead [-- --rounds N --runs N]` (default 6 rounds of 50
//! timed runs a side). Prints each side's median of the per-process medians and the median of the rounds'
//! ratios. Under `cargo test` it runs 1 round of 3 runs.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use edgecl::backbone::{self, BackboneOptions, RuntimeChoice};
use harness::{median, option};
use ndarray::Array4;

#[path = "harness/mod.rs"]
mod harness;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let number = |name, default| {
        option(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs: usize = number("--runs", if benching { 50 } else { 3 });
    let Some(lib) = harness::ort_lib() else {
        return;
    };
    if let Some(side) = option(&args, "--side") {
        let t = one_side(&side, &lib, runs);
        return println!("median {t}");
    }
    let rounds: usize = number("--rounds", if benching { 6 } else { 1 });
    let exe = std::env::current_exe().unwrap();
    let spawn = |side: &str| -> f64 {
        let out = Command::new(&exe)
            .args(["--side", side, "--runs", &runs.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim()
            .strip_prefix("median ")
            .unwrap()
            .parse()
            .unwrap()
    };
    let times = harness::alternate(rounds, ["edgecl", "bare"], spawn);
    let e = times.iter().map(|t| t.0).collect();
    let b = times.iter().map(|t| t.1).collect();
    let ratio = times.iter().map(|t| t.0 / t.1).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ort_overhead ({rounds} rounds of {runs} runs a side, one process each, {threads} threads): \
         edgecl {:.3} ms, bare {:.3} ms, edgecl/bare (median of the rounds' ratios) {:+.1}%",
        median(e) * 1e3,
        median(b) * 1e3,
        (median(ratio) - 1.0) * 100.0
    );
}

/// Median seconds per image of one side, after 10 warm-up runs.
fn one_side(side: &str, lib: &std::path::Path, runs: usize) -> f64 {
    let model = harness::effnet();
    let shape = model.card.input_shape(1);
    let data = edgecl::card::reference_input(3, shape.iter().product());
    let mut run: Box<dyn FnMut()> = match side {
        "edgecl" => {
            let opts = BackboneOptions {
                runtime: RuntimeChoice::Ort,
                ort_lib: Some(lib.to_path_buf()),
                ..Default::default()
            };
            let mut net = backbone::open(&model, &opts).unwrap();
            let input = Array4::from_shape_vec(shape, data).unwrap();
            Box::new(move || {
                black_box(net.embed(input.view()).unwrap());
            })
        }
        "bare" => Box::new(harness::bare_ort(&model, lib)),
        other => panic!("--side edgecl|bare, not {other:?}"),
    };
    for _ in 0..10 {
        run();
    }
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                run();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}
