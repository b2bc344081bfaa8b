//! Where models live, and finding one with no build-machine path compiled in.
//!
//! A model is chosen in this order:
//!
//! 1. the path given (`--model`, or `EDGECL_MODEL`, which the CLI reads into the same option);
//! 2. for an existing state, the model it was made with: its recorded path if the card there has the
//!    recorded sha256, else the first model with that sha256 in the places below (the state still
//!    works after its model moved, say from a build tree to `/usr/share`);
//! 3. the default model, [`DEFAULT_MODEL`], in the first of these places that has it:
//!    `$XDG_DATA_HOME/edgecl/models` (default `~/.local/share/edgecl/models`),
//!    `/usr/share/edgecl/models` (the Debian package), `../share/edgecl/models` beside the executable
//!    (an unpacked tarball), and `models/` in the current directory (a source checkout).
//!
//! When nothing fits, the error names every place it looked.

use std::path::{Path, PathBuf};

use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::state::ModelRef;

/// The model used when neither the command nor the state names one.
pub const DEFAULT_MODEL: &str = "efficientnet-lite0.onnx";

/// The places models are looked for, in order (module docs). Only existing directories count when
/// searching, but all are named in errors.
pub fn dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(d) = data_home {
        out.push(d.join("edgecl/models"));
    }
    out.push(PathBuf::from("/usr/share/edgecl/models"));
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(bin_dir.join("../share/edgecl/models"));
    }
    out.push(PathBuf::from("models"));
    out
}

/// One model found by [`list`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub path: PathBuf,
    pub name: String,
    /// Size of the ONNX file in bytes.
    pub bytes: u64,
    /// The sha256 its card records (checked against the file when the model is opened).
    pub sha256: String,
    /// Width of its feature vector.
    pub dim: usize,
}

/// Every model (an `.onnx` with a readable card beside it) in [`dirs`], in search order; a model
/// reachable through two places is listed once.
pub fn list() -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let mut seen = Vec::new();
    for dir in dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
            .collect();
        paths.sort();
        for path in paths {
            let real = path.canonicalize().unwrap_or_else(|_| path.clone());
            if seen.contains(&real) {
                continue;
            }
            let (Ok(card), Ok(meta)) = (ModelCard::load_for(&path), std::fs::metadata(&path))
            else {
                continue;
            };
            seen.push(real);
            out.push(Found {
                name: card.name,
                bytes: meta.len(),
                sha256: card.sha256,
                dim: card.features.dim,
                path,
            });
        }
    }
    out
}

fn looked_in(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The model to use (module docs): `given` (the command's `--model`), else the state's model (`made`),
/// else the default.
pub fn find(given: Option<&Path>, made: Option<&ModelRef>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let dirs = dirs();
    if let Some(made) = made {
        let sha = crate::card::hex(&made.sha256);
        let recorded = Path::new(&made.path);
        // The ONNX file itself must be there too, not only its card (a model moved without its card).
        if recorded.is_file()
            && ModelCard::load_for(recorded).is_ok_and(|c| c.sha256.eq_ignore_ascii_case(&sha))
        {
            return Ok(recorded.to_path_buf());
        }
        if let Some(f) = list()
            .into_iter()
            .find(|f| f.sha256.eq_ignore_ascii_case(&sha))
        {
            return Ok(f.path);
        }
        return Err(Error::Invalid(format!(
            "the state's model {} (sha256 {sha}) is neither at {} nor in {}; give it with --model or EDGECL_MODEL",
            made.name,
            recorded.display(),
            looked_in(&dirs)
        )));
    }
    dirs.iter()
        .map(|d| d.join(DEFAULT_MODEL))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no model given and the default {DEFAULT_MODEL} is in none of {}; give one with --model or EDGECL_MODEL",
                looked_in(&dirs)
            ))
        })
}
