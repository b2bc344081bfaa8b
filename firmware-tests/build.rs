//! Puts `memory.x` on the linker's search path and turns the exported data set (feature vectors, the
//! std build's state and accuracy; `cargo run --example firmware_data -- export`) into constants.
//!
//! The data directory is `$EDGECL_FIRMWARE_DATA`, else `data/` beside this file.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=EDGECL_FIRMWARE_DATA");

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let data = env::var_os("EDGECL_FIRMWARE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("data"));
    let manifest = data.join("manifest.txt");
    let text = fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nthe firmware's data set is exported by the host build: from the repository root run\n  \
             cargo run --example firmware_data -- export firmware-tests/data\n(make firmware does this)",
            manifest.display()
        )
    });
    for f in ["manifest.txt", "features.bin", "host.edgecl"] {
        println!("cargo:rerun-if-changed={}", data.join(f).display());
    }
    let get = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("{}: no `{key}=` line", manifest.display()))
            .to_string()
    };
    let num = |key: &str| -> usize {
        get(key)
            .parse()
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", manifest.display()))
    };
    let names: Vec<String> = get("names").split('\t').map(str::to_string).collect();
    assert_eq!(names.len(), num("classes"), "names= and classes= disagree");
    let code = format!(
        "/// Feature width (the backbone's).\npub const DIM: usize = {};\n\
         /// Classes in the data set.\npub const CLASSES: usize = {};\n\
         pub const TRAIN: usize = {};\npub const TEST: usize = {};\n\
         /// Test vectors the std build classified correctly (exported with the data).\n\
         pub const STD_CORRECT: usize = {};\n\
         pub const NAMES: [&str; CLASSES] = {:?};\n\
         /// `EDGECLFV`, dim, classes, train, test (u32 LE), then per vector: label u8, scale f32 LE, DIM i8.\n\
         pub static FEATURES: &[u8] = include_bytes!({:?});\n\
         /// The state the std build wrote after learning the same training vectors.\n\
         pub static HOST_STATE: &[u8] = include_bytes!({:?});\n",
        num("dim"),
        num("classes"),
        num("train"),
        num("test"),
        num("std_correct"),
        names,
        data.join("features.bin"),
        data.join("host.edgecl"),
    );
    fs::write(out.join("dataset.rs"), code).unwrap();
}
