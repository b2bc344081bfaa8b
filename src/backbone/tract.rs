//! tract: pure-Rust ONNX inference. No native library, so it runs on every target (32-bit ARM included)
//! and is the fallback where no ONNX Runtime library loads.
//!
//! The plan is optimised once for a fixed batch of one: tract is faster one image at a time than batched
//! (measured: 19 ms per image at batch 1 against 47 ms per image at batch 8 on EfficientNet-Lite0), so a
//! batch is spread over a rayon pool, one image per task.

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::{Array2, ArrayView4, Axis};
use rayon::prelude::*;
use tract_onnx::prelude::*;

use super::{features_from, Backbone, Device, Model, RuntimeInfo};
use crate::error::{Error, Result};

pub struct TractBackbone {
    plan: Arc<TypedSimplePlan>,
    pool: rayon::ThreadPool,
    info: RuntimeInfo,
    dim: usize,
    chw: [usize; 3],
    path: PathBuf,
}

impl TractBackbone {
    pub fn new(model: &Model, threads: usize) -> Result<Self> {
        let card = &model.card;
        let err = |message: String| Error::Model {
            model: model.path.clone(),
            message,
        };
        let [_, c, h, w] = card.input_shape(1);
        let mut graph = tract_onnx::onnx()
            .model_for_read(&mut &model.bytes[..])
            .map_err(|e| err(format!("tract cannot read the ONNX graph: {e}")))?;
        let input_names: Vec<String> = graph
            .input_outlets()
            .map_err(|e| err(e.to_string()))?
            .iter()
            .map(|o| graph.node(o.node).name.clone())
            .collect();
        if input_names.first() != Some(&card.input.name) {
            return Err(err(format!(
                "the card's input {:?} is not the graph's first input (inputs: {input_names:?})",
                card.input.name
            )));
        }
        let out = graph
            .find_outlet_label(&card.features.output)
            .ok_or_else(|| {
                err(format!(
                    "the graph has no output named {:?}",
                    card.features.output
                ))
            })?;
        graph
            .set_input_fact(0, f32::fact([1, c, h, w]).into())
            .and_then(|_| graph.select_output_outlets(&[out]))
            .map_err(|e| err(e.to_string()))?;
        let plan = graph
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| {
                err(format!(
                    "tract cannot optimise the graph for input [1, {c}, {h}, {w}]: {e}"
                ))
            })?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Runtime {
                runtime: "tract",
                message: e.to_string(),
            })?;
        Ok(TractBackbone {
            plan,
            pool,
            info: RuntimeInfo {
                runtime: "tract",
                device: Device::Cpu,
                library: None,
                version: "tract-onnx 0.23".to_string(),
                threads,
            },
            dim: card.features.dim,
            chw: [c, h, w],
            path: model.path.clone(),
        })
    }

    fn embed_one(&self, image: ndarray::ArrayView3<f32>) -> Result<Vec<f32>> {
        let [c, h, w] = self.chw;
        let data = image.as_standard_layout();
        let tensor = Tensor::from_shape(&[1, c, h, w], data.as_slice().expect("standard layout"))
            .map_err(|e| self.model_err(e))?;
        let out = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| self.model_err(e))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| self.model_err(e))?;
        let f = features_from(
            view.shape(),
            &view.iter().copied().collect::<Vec<_>>(),
            1,
            self.dim,
            &self.path,
        )?;
        Ok(f.into_raw_vec_and_offset().0)
    }

    fn model_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Model {
            model: self.path.clone(),
            message: format!("tract: {e}"),
        }
    }
}

impl Backbone for TractBackbone {
    fn embed(&mut self, input: ArrayView4<f32>) -> Result<Array2<f32>> {
        let n = input.len_of(Axis(0));
        let shape = input.shape();
        if shape[1..] != self.chw {
            return Err(Error::Dimension {
                what: "input image tensor",
                expected: self.chw.iter().product(),
                actual: shape[1..].iter().product(),
            });
        }
        let rows: Vec<Vec<f32>> = self.pool.install(|| {
            (0..n)
                .into_par_iter()
                .map(|i| self.embed_one(input.index_axis(Axis(0), i)))
                .collect::<Result<_>>()
        })?;
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Ok(Array2::from_shape_vec((n, self.dim), flat).expect("n rows of dim"))
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn runtime(&self) -> &RuntimeInfo {
        &self.info
    }
}
