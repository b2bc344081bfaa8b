//! A live frame loop on this machine's cores, and the capture-to-label moonshot (issue 21 items 5, 6).
//!
//! Loop: a stream of camera JPEGs (640x480 or 1920x1080, quality 90) classified with EfficientNet-Lite0
//! and an NCM state of 100 classes, in frames per second:
//! - `sequential`: decode, preprocess, embed, classify, one after another on one thread;
//! - `pipelined`: a second thread decodes and preprocesses frame n+1 into the model's tensor while frame
//!   n is embedded and classified (a queue of one tensor between them).
//! The backbone runs on all cores in both (ONNX Runtime; tract without ORT_DYLIB_PATH).
//!
//! Moonshot: one 640x480 JPEG from bytes to label (decode, resize, **int8** embedding, head), against a
//! bare **f32** embedding of an already-made tensor (an `ort` session with default options, as
//! `ort_overhead` builds it).
//!
//! Each case runs in a process of its own (two ONNX Runtime sessions in one process slow each other),
//! the cases alternate, and every ratio is taken within a round: `cargo bench --bench pipeline [--
//! --rounds 3 --frames 150]`. Under `cargo test` it runs one short round.

use std::hint::black_box;
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use edgecl::backbone::{BackboneOptions, RuntimeChoice};
use edgecl::embed::Embedder;
use edgecl::memory::Storage;
use edgecl::preprocess::{decode_scaled, Preprocessor};
use harness::{median, model, option};
use ndarray::{Array4, ArrayView4};

#[path = "harness/mod.rs"]
mod harness;

/// ONNX Runtime when ORT_DYLIB_PATH names its library, else tract (read in every case's process).
fn options() -> BackboneOptions {
    harness::runtime_options(std::env::var_os("ORT_DYLIB_PATH").map(std::path::PathBuf::from))
}

/// Frames per second of one loop over `frames` JPEGs (after 5 warm-up frames).
fn frame_loop(how: &str, size: &str, frames: usize) -> f64 {
    let (w, h) = match size {
        "1920x1080" => (1920, 1080),
        _ => (640, 480),
    };
    // Four different frames, cycled, so no cache holds one decoded image.
    let jpegs: Vec<Vec<u8>> = (0..4)
        .map(|i| harness::jpeg_frame_sized(w + 8 * i, h))
        .collect();
    let model = model("efficientnet-lite0.onnx");
    let mut embedder = Embedder::new(model.clone(), &options()).unwrap();
    let learner = harness::learner(100, embedder.dim(), Storage::Int8, 0);
    let shape = model.card.input_shape(1);
    let mut pre = Preprocessor::new(&model.card);
    let floor = pre.floor();
    let mut prepare = move |i: usize, out: &mut Vec<f32>| {
        out.resize(pre.len(), 0.0);
        let img = decode_scaled(&jpegs[i % jpegs.len()], floor).unwrap();
        pre.write(&img, out).unwrap();
    };
    let mut classify = |input: &[f32]| {
        let view = ArrayView4::from_shape(shape, input).unwrap();
        let f = embedder.embed_tensor(view).unwrap();
        black_box(learner.classify(f.view(), 1).unwrap());
    };
    let warm = 5;
    let mut start = Instant::now();
    match how {
        "sequential" => {
            let mut buf = Vec::new();
            for i in 0..warm + frames {
                if i == warm {
                    start = Instant::now();
                }
                prepare(i, &mut buf);
                classify(&buf);
            }
        }
        _ => std::thread::scope(|s| {
            let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(1);
            s.spawn(move || {
                for i in 0..warm + frames {
                    let mut buf = Vec::new();
                    prepare(i, &mut buf);
                    if tx.send(buf).is_err() {
                        return;
                    }
                }
            });
            for (i, buf) in rx.iter().enumerate() {
                if i == warm {
                    start = Instant::now();
                }
                classify(&buf);
            }
        }),
    }
    frames as f64 / start.elapsed().as_secs_f64()
}

/// Median milliseconds of `runs`: `int8-capture` is bytes -> label with the int8 backbone; `f32-embed`
/// is a bare `ort` session's embedding of a ready tensor (ONNX Runtime only).
fn moonshot(how: &str, runs: usize) -> f64 {
    let jpeg = harness::jpeg_frame();
    let mut times = Vec::new();
    if how == "int8-capture" {
        let model = model("efficientnet-lite0-int8.onnx");
        let mut embedder = Embedder::new(model.clone(), &options()).unwrap();
        let learner = harness::learner(100, embedder.dim(), Storage::Int8, 0);
        let mut pre = Preprocessor::new(&model.card);
        let mut input = Array4::<f32>::zeros(model.card.input_shape(1));
        for i in 0..runs + 5 {
            let t = Instant::now();
            let img = decode_scaled(black_box(&jpeg), pre.floor()).unwrap();
            pre.write(&img, input.as_slice_mut().unwrap()).unwrap();
            let f = embedder.embed_tensor(input.view()).unwrap();
            black_box(learner.classify(f.view(), 1).unwrap());
            if i >= 5 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    } else {
        let model = model("efficientnet-lite0.onnx");
        let lib = options().ort_lib.expect("ONNX Runtime");
        let mut embed = harness::bare_ort(&model, &lib);
        for i in 0..runs + 5 {
            let t = Instant::now();
            embed();
            if i >= 5 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    median(times)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let number = |name, default| {
        option(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let frames: usize = number("--frames", if benching { 150 } else { 3 });
    let runs: usize = number("--runs", if benching { 50 } else { 3 });
    if let Some(case) = option(&args, "--case") {
        let value = match case.split_once(':') {
            Some(("loop", rest)) => {
                let (how, size) = rest.split_once(':').unwrap();
                frame_loop(how, size, frames)
            }
            Some(("moonshot", how)) => moonshot(how, runs),
            _ => panic!("unknown case {case}"),
        };
        return println!("value {value}");
    }
    let rounds: usize = number("--rounds", if benching { 3 } else { 1 });
    let exe = std::env::current_exe().unwrap();
    let run = |case: &str| -> f64 {
        let out = Command::new(&exe)
            .args([
                "--case",
                case,
                "--frames",
                &frames.to_string(),
                "--runs",
                &runs.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("value "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no value from {case}: {text}"))
    };
    let ort = options().runtime == RuntimeChoice::Ort;
    println!(
        "pipeline: {} rounds, {frames} frames a loop, backbone on {}",
        rounds,
        if ort {
            "ONNX Runtime"
        } else {
            "tract (ORT_DYLIB_PATH not set)"
        }
    );
    for size in ["640x480", "1920x1080"] {
        let fps = harness::alternate(rounds, ["sequential", "pipelined"], |how| {
            run(&format!("loop:{how}:{size}"))
        });
        for (r, (seq, pip)) in fps.iter().enumerate() {
            println!(
                "  {size} round {}: sequential {seq:.1} fps, pipelined {pip:.1} fps",
                r + 1
            );
        }
        println!(
            "{size}: sequential {:.1} fps, pipelined {:.1} fps (medians), pipelined/sequential {:.2}x (median of rounds)",
            median(fps.iter().map(|f| f.0).collect()),
            median(fps.iter().map(|f| f.1).collect()),
            median(fps.iter().map(|f| f.1 / f.0).collect())
        );
    }
    if !ort {
        return println!("moonshot: needs ONNX Runtime (ORT_DYLIB_PATH), not run");
    }
    let ms = harness::alternate(rounds, ["int8-capture", "f32-embed"], |how| {
        run(&format!("moonshot:{how}"))
    });
    for (r, (cap, emb)) in ms.iter().enumerate() {
        println!(
            "  moonshot round {}: int8 capture-to-label {cap:.2} ms, bare f32 embedding {emb:.2} ms",
            r + 1
        );
    }
    println!(
        "moonshot: int8 capture-to-label (640x480 JPEG) {:.2} ms, bare f32 embedding {:.2} ms (medians), ratio {:.2} (median of rounds; < 1 means the moonshot holds)",
        median(ms.iter().map(|m| m.0).collect()),
        median(ms.iter().map(|m| m.1).collect()),
        median(ms.iter().map(|m| m.0 / m.1).collect())
    );
}
