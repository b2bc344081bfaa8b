//! What a class costs in the state file: bytes per class for each feature width and storage type, with
//! no feature memory and with 20 stored vectors per class.
//!
//! ```text
//! cargo run --release --example memory_report
//! ```
//! Prints a markdown table. The NCM statistics are one f64 sum per feature and a count per class; stored
//! vectors cost `4d` (f32), `2d` (f16) or `d + 4` (int8) bytes each, plus postcard's small framing.

use edgecl::learner::{Learner, LearnerConfig};
use edgecl::memory::Storage;
use edgecl::state::ModelRef;
use ndarray::Array2;

fn state_bytes(classes: usize, d: usize, storage: Storage, per_class: u64) -> usize {
    let model = ModelRef {
        name: "m".into(),
        sha256: [0; 32],
        dim: d as u32,
        path: "m.onnx".into(),
    };
    let budget = storage.bytes(d) * per_class * classes as u64;
    let mut l = Learner::new(
        model,
        LearnerConfig {
            memory_budget: Some(budget),
            storage,
            ..Default::default()
        },
    );
    for c in 0..classes {
        let f = Array2::from_shape_fn((per_class.max(1) as usize, d), |(i, j)| {
            ((i * 31 + j * 7 + c) % 97) as f32 + 1.0
        });
        l.learn(&format!("class-{c:04}"), f.view()).unwrap();
    }
    l.to_bytes().len()
}

fn main() {
    println!("| d | storage | state bytes per class, no memory | per class, 20 stored vectors |");
    println!("| --- | --- | --- | --- |");
    for d in [160, 512, 1280] {
        for storage in [Storage::F32, Storage::F16, Storage::Int8] {
            // Per-class cost: the difference between 110 and 10 classes, over 100 classes.
            let per = |v: u64| {
                (state_bytes(110, d, storage, v) - state_bytes(10, d, storage, v)) as f64 / 100.0
            };
            println!("| {d} | {storage:?} | {:.0} | {:.0} |", per(0), per(20));
        }
    }
}
