//! Finding and loading the ONNX Runtime shared library (ort's `load-dynamic`: nothing is linked at build
//! time). Search order, first that loads wins:
//!
//! 1. `--ort-lib PATH` (then nothing else is tried);
//! 2. `ORT_DYLIB_PATH`;
//! 3. the `onnxruntime` Python package as `python3` finds it (`onnxruntime/capi/libonnxruntime.so.*`:
//!    the PyPI wheel on a workstation, the onnxruntime-gpu wheel on a Jetson);
//! 4. the usual site-packages places: `$VIRTUAL_ENV`, the project's venv `~/.cache/edgecl/venv`,
//!    `~/.local`, `/usr/local`, `/usr`;
//! 5. the system's library paths (`libonnxruntime.so` through the dynamic loader).
//!
//! ONNX Runtime can only be loaded once per process; later calls return the library already loaded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The library that was loaded, its version, and the process-wide ONNX Runtime environment.
#[derive(Clone)]
pub struct OrtLib {
    pub path: PathBuf,
    pub version: String,
    pub env: ort::environment::Environment,
}

impl std::fmt::Debug for OrtLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtLib")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish()
    }
}

static LOADED: OnceLock<OrtLib> = OnceLock::new();

/// Loads ONNX Runtime (once per process). The error lists every place tried and why each failed.
pub fn load(explicit: Option<&Path>) -> Result<OrtLib> {
    if let Some(lib) = LOADED.get() {
        return Ok(lib.clone());
    }
    let candidates = match explicit {
        Some(p) => vec![(p.to_path_buf(), "--ort-lib")],
        None => candidates(),
    };
    let mut tried = Vec::new();
    for (path, source) in candidates {
        // A bare file name is for the dynamic loader's own search; anything else must exist.
        if path.components().count() > 1 && !path.exists() {
            tried.push(format!("{} ({source}): no such file", path.display()));
            continue;
        }
        match ort::init_from(&path) {
            Ok(builder) => {
                let version = version_of(&path);
                let env = builder
                    .with_name("edgecl")
                    .build()
                    .map_err(|e| Error::Runtime {
                        runtime: "ort",
                        message: format!(
                            "{}: cannot create the ONNX Runtime environment: {e}",
                            path.display()
                        ),
                    })?;
                let lib = OrtLib { path, version, env };
                return Ok(LOADED.get_or_init(|| lib).clone());
            }
            Err(e) => tried.push(format!("{} ({source}): {e}", path.display())),
        }
    }
    Err(Error::Runtime {
        runtime: "ort",
        message: if tried.is_empty() {
            "no ONNX Runtime library found: install the PyPI `onnxruntime` package, set ORT_DYLIB_PATH or pass --ort-lib".into()
        } else {
            format!(
                "no ONNX Runtime library could be loaded; tried: {}",
                tried.join("; ")
            )
        },
    })
}

/// Every place to look, in order, each with where it came from.
pub fn candidates() -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push((PathBuf::from(p), "ORT_DYLIB_PATH"));
    }
    if let Some(dir) = python_package_dir() {
        out.extend(
            libs_in(&dir.join("capi"))
                .into_iter()
                .map(|p| (p, "python3 onnxruntime")),
        );
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(v.into());
    }
    if let Some(h) = &home {
        prefixes.push(h.join(".cache/edgecl/venv"));
        prefixes.push(h.join(".local"));
    }
    prefixes.push("/usr/local".into());
    prefixes.push("/usr".into());
    for prefix in prefixes {
        for lib in ["lib", "lib64"] {
            for dir in python_dirs(&prefix.join(lib)) {
                for sub in ["site-packages", "dist-packages"] {
                    let capi = dir.join(sub).join("onnxruntime/capi");
                    out.extend(libs_in(&capi).into_iter().map(|p| (p, "site-packages")));
                }
            }
        }
    }
    out.push((PathBuf::from("libonnxruntime.so"), "system library path"));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// `onnxruntime`'s package directory as `python3` resolves it, without importing it (fast).
fn python_package_dir() -> Option<PathBuf> {
    let script = "import importlib.util as u\ns = u.find_spec('onnxruntime')\nprint(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let out = Command::new("python3").args(["-c", script]).output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `lib/python3*` directories under a prefix, newest name first.
fn python_dirs(lib: &Path) -> Vec<PathBuf> {
    entries_named(lib, |n| n.starts_with("python3"))
}

/// `libonnxruntime.so*` files in a directory (the provider plug-ins excluded), newest name first.
fn libs_in(dir: &Path) -> Vec<PathBuf> {
    entries_named(dir, |n| {
        n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib"
    })
}

/// Entries of `dir` whose file name passes `keep`, in reverse lexical order (newest first where version
/// numbers have the same width). A missing directory has none.
fn entries_named(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    found.sort();
    found.reverse();
    found
}

/// The version from the file name (`libonnxruntime.so.1.32.0` -> `1.32.0`), else ORT's build string.
fn version_of(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name.strip_prefix("libonnxruntime.so.") {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => ort::info().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_versioned_libraries_and_skips_provider_plugins() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libonnxruntime.so.1.32.0",
            "libonnxruntime_providers_shared.so",
            "README",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = libs_in(dir.path());
        assert_eq!(found, vec![dir.path().join("libonnxruntime.so.1.32.0")]);
        assert_eq!(version_of(&found[0]), "1.32.0");
    }

    #[test]
    fn a_missing_explicit_library_is_an_error_that_names_it() {
        let e = load(Some(Path::new("/nonexistent/libonnxruntime.so.1.0.0"))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/libonnxruntime.so.1.0.0") && msg.contains("--ort-lib"),
            "{msg}"
        );
    }
}
