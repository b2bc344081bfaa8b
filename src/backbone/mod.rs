//! The frozen feature extractor: an ONNX file plus its model card, run by ONNX Runtime (`ort`) or by
//! tract (pure Rust). Both sit behind [`Backbone`]; [`open`] picks one at run time.
//!
//! ```no_run
//! use edgecl::backbone::{self, BackboneOptions, Model};
//! let model = Model::open("models/efficientnet-lite0.onnx".as_ref())?;
//! let mut net = backbone::open(&model, &BackboneOptions::default())?;
//! println!("{} features from {}", net.dim(), net.runtime().runtime);
//! # Ok::<(), edgecl::Error>(())
//! ```

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView4};
use serde::Serialize;

use crate::card::ModelCard;
use crate::error::{Error, Result};

#[cfg(feature = "ort")]
mod ort;
#[cfg(feature = "ort")]
pub mod ortlib;
#[cfg(feature = "tract")]
mod tract;

/// A frozen feature extractor. `embed` takes `&mut self` because ONNX Runtime's `run` does.
pub trait Backbone: Send {
    /// Features for a batch of preprocessed images `[n, c, h, w]` -> `[n, dim]`.
    fn embed(&mut self, input: ArrayView4<f32>) -> Result<Array2<f32>>;
    /// Width of the feature vector.
    fn dim(&self) -> usize;
    /// Which runtime, library and device this backbone runs on.
    fn runtime(&self) -> &RuntimeInfo;
}

/// Which inference engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// ONNX Runtime when its library loads, otherwise tract.
    #[default]
    Auto,
    Ort,
    Tract,
}

/// Where ONNX Runtime runs the graph. CUDA and TensorRT need the `cuda` / `tensorrt` cargo features and an
/// ONNX Runtime library built with them (JetPack's on a Jetson).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
    Tensorrt,
}

#[derive(Debug, Clone, Default)]
pub struct BackboneOptions {
    pub runtime: RuntimeChoice,
    pub device: Device,
    /// Explicit ONNX Runtime library; otherwise searched (see [`ortlib`]).
    pub ort_lib: Option<PathBuf>,
    /// Inference threads; `None` = all cores.
    pub threads: Option<usize>,
    /// TensorRT engine cache directory (engines take minutes to build; cache them).
    pub trt_cache: Option<PathBuf>,
    /// TensorRT fp16 kernels.
    pub fp16: bool,
}

/// What actually runs the model, for `info`, `demo` and `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeInfo {
    pub runtime: &'static str,
    pub device: Device,
    /// The ONNX Runtime library file, for `ort`.
    pub library: Option<PathBuf>,
    pub version: String,
    pub threads: usize,
}

/// An ONNX file whose sha256 matched its card.
#[derive(Debug, Clone)]
pub struct Model {
    pub path: PathBuf,
    pub card: ModelCard,
    pub sha256: [u8; 32],
    pub bytes: std::sync::Arc<[u8]>,
}

impl Model {
    /// Reads the model and its card and checks the sha256. A mismatch is an error.
    pub fn open(path: &Path) -> Result<Model> {
        let card = ModelCard::load_for(path)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let sha256 = card.verify_hash(path, &bytes)?;
        Ok(Model {
            path: path.to_path_buf(),
            card,
            sha256,
            bytes: bytes.into(),
        })
    }

    pub fn sha256_hex(&self) -> String {
        crate::card::hex(&self.sha256)
    }

    /// What a state records about this model: name, sha256, feature width and its absolute path.
    pub fn reference(&self) -> crate::state::ModelRef {
        let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        crate::state::ModelRef {
            name: self.card.name.clone(),
            sha256: self.sha256,
            dim: self.card.features.dim as u32,
            path: path.display().to_string(),
        }
    }
}

/// Opens `model` on the requested runtime. An explicitly requested runtime that cannot load is an error
/// naming what was tried; `auto` falls back to tract only when no ONNX Runtime library loads.
pub fn open(model: &Model, opts: &BackboneOptions) -> Result<Box<dyn Backbone>> {
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match opts.runtime {
        RuntimeChoice::Ort => open_ort(model, opts, threads),
        RuntimeChoice::Tract => open_tract(model, opts, threads),
        RuntimeChoice::Auto => {
            #[cfg(feature = "ort")]
            {
                match ortlib::load(opts.ort_lib.as_deref()) {
                    Ok(lib) => {
                        return Ok(Box::new(ort::OrtBackbone::new(model, opts, threads, lib)?))
                    }
                    Err(e) if opts.device != Device::Cpu => return Err(e),
                    Err(_) => {}
                }
            }
            open_tract(model, opts, threads)
        }
    }
}

fn open_ort(model: &Model, opts: &BackboneOptions, threads: usize) -> Result<Box<dyn Backbone>> {
    #[cfg(feature = "ort")]
    {
        let lib = ortlib::load(opts.ort_lib.as_deref())?;
        Ok(Box::new(ort::OrtBackbone::new(model, opts, threads, lib)?))
    }
    #[cfg(not(feature = "ort"))]
    {
        let _ = (model, opts, threads);
        Err(Error::Runtime {
            runtime: "ort",
            message: "edgecl was built without the `ort` feature".into(),
        })
    }
}

fn open_tract(model: &Model, opts: &BackboneOptions, threads: usize) -> Result<Box<dyn Backbone>> {
    if opts.device != Device::Cpu {
        return Err(Error::Runtime {
            runtime: "tract",
            message: format!(
                "tract runs on the CPU only; device {:?} needs --runtime ort",
                opts.device
            ),
        });
    }
    #[cfg(feature = "tract")]
    {
        Ok(Box::new(tract::TractBackbone::new(model, threads)?))
    }
    #[cfg(not(feature = "tract"))]
    {
        let _ = (model, threads);
        Err(Error::Runtime {
            runtime: "tract",
            message: "edgecl was built without the `tract` feature".into(),
        })
    }
}

/// Checks that a runtime returned `[n, dim]` and copies it out.
#[cfg(any(feature = "ort", feature = "tract"))]
fn features_from(
    shape: &[usize],
    data: &[f32],
    n: usize,
    dim: usize,
    model: &Path,
) -> Result<Array2<f32>> {
    if shape != [n, dim] {
        return Err(Error::Model {
            model: model.to_path_buf(),
            message: format!("features output has shape {shape:?}, the card says [{n}, {dim}]"),
        });
    }
    Ok(Array2::from_shape_vec((n, dim), data.to_vec()).expect("shape checked"))
}
