//! Captures -> features: preprocessing (in parallel with rayon) and the backbone, in batches, timed
//! separately so reports can show what each costs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::DynamicImage;
use ndarray::{Array2, Array4};
use rayon::prelude::*;

use crate::backbone::{self, Backbone, BackboneOptions, Model, RuntimeInfo};
use crate::error::{Error, Result};
use crate::preprocess::{decode_for, Preprocessor};

/// Image files edgecl reads when given a directory.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "ppm", "pgm", "pnm"];

/// Time spent in each stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub preprocess: Duration,
    pub backbone: Duration,
    pub images: usize,
}

pub struct Embedder {
    model: Model,
    backbone: Box<dyn Backbone>,
    batch: usize,
    pub timing: Timing,
}

impl Embedder {
    pub fn new(model: Model, opts: &BackboneOptions) -> Result<Embedder> {
        let backbone = backbone::open(&model, opts)?;
        // ONNX Runtime parallelises within a batch; tract parallelises across it (one image per thread).
        let batch = 16;
        Ok(Embedder {
            model,
            backbone,
            batch,
            timing: Timing::default(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The smallest decoded size this model needs (for decoding images elsewhere, e.g. a dataset's).
    pub fn floor(&self) -> crate::preprocess::Floor {
        crate::preprocess::Floor::for_input(&self.model.card.input)
    }

    pub fn runtime(&self) -> &RuntimeInfo {
        self.backbone.runtime()
    }

    pub fn dim(&self) -> usize {
        self.backbone.dim()
    }

    /// Features of already-preprocessed input `[n, c, h, w]`.
    pub fn embed_tensor(&mut self, input: ndarray::ArrayView4<f32>) -> Result<Array2<f32>> {
        self.backbone.embed(input)
    }

    /// Features of decoded images, in batches; `progress` is called with the number done so far.
    pub fn embed_images(
        &mut self,
        images: &[DynamicImage],
        mut progress: impl FnMut(usize),
    ) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((images.len(), self.dim()));
        for (b, chunk) in images.chunks(self.batch).enumerate() {
            let t = Instant::now();
            let input = self.tensor(chunk, |img, pre, slot| pre.write(img, slot))?;
            self.timing.preprocess += t.elapsed();
            self.run_batch(input, &mut out, b * self.batch)?;
            progress((b * self.batch + chunk.len()).min(images.len()));
        }
        Ok(out)
    }

    /// Features of image files, in batches. Each file is decoded straight into its slot of the batch's
    /// input tensor and dropped, so at most one decoded image per thread is alive: memory does not grow
    /// with the number or size of the files. A file that fails to decode is an error naming it.
    pub fn embed_files(
        &mut self,
        files: &[PathBuf],
        mut progress: impl FnMut(usize),
    ) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((files.len(), self.dim()));
        for (b, chunk) in files.chunks(self.batch).enumerate() {
            let t = Instant::now();
            let input = self.tensor(chunk, |path, pre, slot| {
                pre.write(&decode_for(path, pre.floor())?, slot)
            })?;
            self.timing.preprocess += t.elapsed();
            self.run_batch(input, &mut out, b * self.batch)?;
            progress((b * self.batch + chunk.len()).min(files.len()));
        }
        Ok(out)
    }

    /// The input tensor of a batch: `write` fills one image's slot, in parallel.
    fn tensor<T: Sync>(
        &self,
        items: &[T],
        write: impl Fn(&T, &mut Preprocessor, &mut [f32]) -> Result<()> + Sync,
    ) -> Result<Array4<f32>> {
        let shape = self.model.card.input_shape(items.len());
        let mut input = Array4::<f32>::zeros(shape);
        let per = shape[1] * shape[2] * shape[3];
        let card = &self.model.card;
        input
            .as_slice_mut()
            .expect("fresh array is contiguous")
            .par_chunks_mut(per)
            .zip(items.par_iter())
            .try_for_each_init(
                || Preprocessor::new(card),
                |pre, (slot, item)| write(item, pre, slot),
            )?;
        Ok(input)
    }

    fn run_batch(&mut self, input: Array4<f32>, out: &mut Array2<f32>, at: usize) -> Result<()> {
        let n = input.shape()[0];
        let t = Instant::now();
        let f = self.backbone.embed(input.view())?;
        self.timing.backbone += t.elapsed();
        self.timing.images += n;
        out.slice_mut(ndarray::s![at..at + n, ..]).assign(&f);
        Ok(())
    }
}

/// Expands files and directories into a sorted list of image files (directories: one level, by
/// extension). A path that does not exist is an error; a directory with no images is an error.
pub fn collect_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_image(f))
                .collect();
            if found.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: no image files ({}) in this directory",
                    p.display(),
                    IMAGE_EXTENSIONS.join(", ")
                )));
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}
