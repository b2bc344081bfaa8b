//! The benches' harness (never timed): seeded random features and learners, the model and runtime
//! choice, medians and the alternating-rounds loop.

#![allow(dead_code)]

use edgecl::learner::{Learner, LearnerConfig};
use edgecl::memory::Storage;
use edgecl::state::ModelRef;
use ndarray::Array2;

/// Seeded uniform features in [0, 1) (post-ReLU6-like: non-negative), `n x d`.
pub fn features(n: usize, d: usize, seed: u32) -> Array2<f32> {
    let v = edgecl::card::reference_input(seed.max(1), n * d);
    Array2::from_shape_vec((n, d), v.into_iter().map(|x| (x + 1.0) * 0.5).collect()).unwrap()
}

/// A learner with `classes` classes of 2 captures each, `d`-wide features, no feature memory.
pub fn learner(classes: usize, d: usize, storage: Storage, budget: u64) -> Learner {
    let model = ModelRef {
        name: "bench".into(),
        sha256: [0; 32],
        dim: d as u32,
        path: "bench.onnx".into(),
    };
    let mut l = Learner::new(
        model,
        LearnerConfig {
            memory_budget: Some(budget),
            storage,
            ..Default::default()
        },
    );
    let f = features(2 * classes, d, 7);
    // 1,000 classes per call: every call copies the state for its rollback, so one call per class would
    // make building 10,000 classes quadratic.
    for first in (0..classes).step_by(1000) {
        let last = classes.min(first + 1000);
        let names: Vec<String> = (first..last).map(|c| format!("class-{c}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let labels: Vec<usize> = (0..2 * names.len()).map(|r| r / 2).collect();
        l.learn_many(
            &names,
            f.slice(ndarray::s![2 * first..2 * last, ..]),
            &labels,
        )
        .unwrap();
    }
    l
}

/// A synthetic 640x480 camera-like frame (gradients plus noise), JPEG-encoded at quality 90.
pub fn jpeg_frame() -> Vec<u8> {
    jpeg_frame_sized(640, 480)
}

/// The same kind of frame at any size (the gradients scale with it; the noise is per pixel).
pub fn jpeg_frame_sized(w: u32, h: u32) -> Vec<u8> {
    let noise = edgecl::card::reference_input(5, (w * h) as usize);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (noise[(y * w + x) as usize] * 20.0) as i32;
        let c = |v: i32| (v + n).clamp(0, 255) as u8;
        image::Rgb([
            c((x * 640 / w / 3) as i32),
            c((y * 480 / h / 2) as i32),
            c(((x * 640 / w + y * 480 / h) / 5) as i32),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// The shipped backbone.
pub fn effnet() -> edgecl::backbone::Model {
    model("efficientnet-lite0.onnx")
}

/// A model shipped under `models/`.
pub fn model(name: &str) -> edgecl::backbone::Model {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    edgecl::backbone::Model::open(&p).unwrap()
}

/// ONNX Runtime with `lib` when there is one, else tract; CPU, all cores.
pub fn runtime_options(lib: Option<std::path::PathBuf>) -> edgecl::backbone::BackboneOptions {
    use edgecl::backbone::RuntimeChoice;
    edgecl::backbone::BackboneOptions {
        runtime: if lib.is_some() {
            RuntimeChoice::Ort
        } else {
            RuntimeChoice::Tract
        },
        ort_lib: lib,
        ..Default::default()
    }
}

/// One embedding of a fixed reference input through a bare `ort` session (default options, all cores,
/// the input passed by reference): the yardstick for edgecl's own ONNX Runtime path.
#[cfg(feature = "ort")]
pub fn bare_ort(model: &edgecl::backbone::Model, lib: &std::path::Path) -> impl FnMut() {
    let ortlib = edgecl::backbone::ortlib::load(Some(lib)).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut session = ort::session::Session::builder(&ortlib.env)
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .commit_from_memory(&model.bytes)
        .unwrap();
    let shape = model.card.input_shape(1);
    let data = edgecl::card::reference_input(3, shape.iter().product());
    let name = model.card.input.name.clone();
    move || {
        let x = ort::value::TensorRef::from_array_view((shape, data.as_slice())).unwrap();
        let out = session.run(ort::inputs![name.as_str() => x]).unwrap();
        std::hint::black_box(out[0].try_extract_tensor::<f32>().unwrap().1[0]);
    }
}

/// The median (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `--name VALUE` from a bench binary's arguments; criterion's options (which `cargo bench -- ...` gives
/// every bench) are ignored.
pub fn option(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

/// Runs the two cases `a` and `b` once per round, the order swapped every round so drift in the
/// machine's speed hits both alike; returns each round's `(a, b)`.
pub fn alternate(
    rounds: usize,
    [a, b]: [&str; 2],
    mut run: impl FnMut(&str) -> f64,
) -> Vec<(f64, f64)> {
    (0..rounds)
        .map(|r| {
            if r % 2 == 0 {
                let x = run(a);
                (x, run(b))
            } else {
                let y = run(b);
                (run(a), y)
            }
        })
        .collect()
}

/// ONNX Runtime's library, if ORT_DYLIB_PATH names one; benches that need it say when it is missing.
pub fn ort_lib() -> Option<std::path::PathBuf> {
    let lib = std::env::var_os("ORT_DYLIB_PATH").map(std::path::PathBuf::from);
    if lib.is_none() {
        eprintln!(
            "ORT_DYLIB_PATH is not set: the ONNX Runtime cases are not run (see benches/README.md)"
        );
    }
    lib
}
