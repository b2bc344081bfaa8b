//! ONNX Runtime through `ort` with `load-dynamic`: the fast CPU path on workstations, Pis and Jetsons, and
//! the GPU path (CUDA / TensorRT execution providers) on a Jetson. A requested provider that cannot be
//! created is an error naming the provider and the library; there is no silent fallback to the CPU.

use std::path::PathBuf;

use ndarray::{Array2, ArrayView4, Axis};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::ortlib::OrtLib;
use super::{features_from, Backbone, BackboneOptions, Device, Model, RuntimeInfo};
use crate::error::{Error, Result};

pub struct OrtBackbone {
    session: Session,
    input: String,
    output: String,
    info: RuntimeInfo,
    dim: usize,
    chw: [usize; 3],
    path: PathBuf,
}

impl OrtBackbone {
    pub fn new(model: &Model, opts: &BackboneOptions, threads: usize, lib: OrtLib) -> Result<Self> {
        let card = &model.card;
        let lib_path = lib.path.clone();
        let fail = |what: &str, e: &dyn std::fmt::Display| Error::Runtime {
            runtime: "ort",
            message: format!("{what} (library {}): {e}", lib_path.display()),
        };
        let mut builder = Session::builder(&lib.env)
            .map_err(|e| fail("cannot create a session", &e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail("cannot set the optimisation level", &e))?
            .with_intra_threads(threads)
            .map_err(|e| fail("cannot set the thread count", &e))?;
        if opts.device != Device::Cpu {
            builder = providers::register(builder, opts).map_err(|e| fail(&e.0, &e.1))?;
        }
        let session = builder
            .commit_from_memory(&model.bytes)
            .map_err(|e| Error::Model {
                model: model.path.clone(),
                message: format!("ONNX Runtime cannot load it: {e}"),
            })?;
        let has = |names: Vec<&str>, want: &str| names.contains(&want);
        let inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if !has(inputs.clone(), &card.input.name) {
            return Err(Error::Model {
                model: model.path.clone(),
                message: format!(
                    "the graph has no input {:?} (inputs: {inputs:?})",
                    card.input.name
                ),
            });
        }
        if !has(outputs.clone(), &card.features.output) {
            return Err(Error::Model {
                model: model.path.clone(),
                message: format!(
                    "the graph has no output {:?} (outputs: {outputs:?})",
                    card.features.output
                ),
            });
        }
        let [_, c, h, w] = card.input_shape(1);
        Ok(OrtBackbone {
            input: card.input.name.clone(),
            output: card.features.output.clone(),
            session,
            info: RuntimeInfo {
                runtime: "ort",
                device: opts.device,
                library: Some(lib.path),
                version: format!("ONNX Runtime {}", lib.version),
                threads,
            },
            dim: card.features.dim,
            chw: [c, h, w],
            path: model.path.clone(),
        })
    }
}

impl Backbone for OrtBackbone {
    fn embed(&mut self, input: ArrayView4<f32>) -> Result<Array2<f32>> {
        let n = input.len_of(Axis(0));
        if input.shape()[1..] != self.chw {
            return Err(Error::Dimension {
                what: "input image tensor",
                expected: self.chw.iter().product(),
                actual: input.shape()[1..].iter().product(),
            });
        }
        let [c, h, w] = self.chw;
        // The session reads the caller's buffer directly; only a non-contiguous view is copied.
        let contiguous = input.as_standard_layout();
        let data = contiguous
            .as_slice()
            .expect("standard layout is contiguous");
        let err = |e: ort::Error| Error::Model {
            model: self.path.clone(),
            message: format!("ONNX Runtime: {e}"),
        };
        let tensor = TensorRef::from_array_view(([n, c, h, w], data)).map_err(err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(err)?;
        let (shape, values) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(err)?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        features_from(&shape, values, n, self.dim, &self.path)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn runtime(&self) -> &RuntimeInfo {
        &self.info
    }
}

/// GPU execution providers, one cargo feature each. Without the feature the request is an error that says
/// how to rebuild; with it, a provider that cannot be created is an error from ONNX Runtime.
mod providers {
    use ort::session::builder::SessionBuilder;

    use super::{BackboneOptions, Device};

    pub struct Failure(pub String, pub String);

    pub fn register(
        builder: SessionBuilder,
        opts: &BackboneOptions,
    ) -> Result<SessionBuilder, Failure> {
        match opts.device {
            Device::Cpu => Ok(builder),
            Device::Cuda => cuda(builder),
            Device::Tensorrt => tensorrt(builder, opts),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda(builder: SessionBuilder) -> Result<SessionBuilder, Failure> {
        let ep = ort::ep::CUDA::default().build().error_on_failure();
        builder.with_execution_providers([ep]).map_err(|e| {
            Failure(
                "cannot create the CUDA execution provider".into(),
                e.to_string(),
            )
        })
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda(_: SessionBuilder) -> Result<SessionBuilder, Failure> {
        Err(Failure(
            "the CUDA execution provider is not in this build".into(),
            "rebuild with `cargo build --release --features cuda`".into(),
        ))
    }

    #[cfg(feature = "tensorrt")]
    fn tensorrt(
        builder: SessionBuilder,
        opts: &BackboneOptions,
    ) -> Result<SessionBuilder, Failure> {
        let cache = opts
            .trt_cache
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("edgecl-trt-cache"));
        let trt = ort::ep::TensorRT::default()
            .with_engine_cache(true)
            .with_engine_cache_path(cache.display())
            .with_fp16(opts.fp16)
            .build()
            .error_on_failure();
        builder.with_execution_providers([trt]).map_err(|e| {
            Failure(
                "cannot create the TensorRT execution provider".into(),
                e.to_string(),
            )
        })
    }

    #[cfg(not(feature = "tensorrt"))]
    fn tensorrt(_: SessionBuilder, _: &BackboneOptions) -> Result<SessionBuilder, Failure> {
        Err(Failure(
            "the TensorRT execution provider is not in this build".into(),
            "rebuild with `cargo build --release --features tensorrt`".into(),
        ))
    }
}
