//! The model card: the JSON file beside every ONNX backbone (`foo.onnx` -> `foo.json`).
//!
//! It says how to feed the model (input size, layout, channel order, normalisation, resize rule), which
//! output is the feature vector, the sha256 of the ONNX file, and reference input/feature pairs for parity
//! checks. The schema is specified in `models/CARD.md`; the host trainer writes it, this module reads it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

mod task_set;
pub use task_set::{TaskConditioned, TaskFile, TaskScheme};

pub const CARD_FORMAT: &str = "edgecl-model-card/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub name: String,
    pub onnx: String,
    pub sha256: String,
    pub input: InputSpec,
    pub features: OutputSpec,
    #[serde(default)]
    pub logits: Option<LogitsSpec>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub provenance: String,
    #[serde(default)]
    pub recipe: serde_json::Value,
    #[serde(default)]
    pub accuracy: serde_json::Value,
    #[serde(default)]
    pub reference: Option<Reference>,
    /// Present when the model needs the task id at test time (one file per task): see [`TaskConditioned`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_conditioned: Option<TaskConditioned>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub channel_order: ChannelOrder,
    pub height: u32,
    pub width: u32,
    pub pixel_scale: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub resize: Resize,
    #[serde(default)]
    pub resize_shorter: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
    Gray,
}

impl ChannelOrder {
    pub fn channels(self) -> usize {
        match self {
            ChannelOrder::Rgb | ChannelOrder::Bgr => 3,
            ChannelOrder::Gray => 1,
        }
    }
}

/// How a capture of any size becomes the model's height x width (bilinear in both cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// The whole image, aspect ratio ignored (small square datasets such as CIFAR).
    Stretch,
    /// Shorter side to `resize_shorter`, then a centre crop of height x width (camera frames).
    ShorterSideCrop,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputSpec {
    pub output: String,
    pub dim: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogitsSpec {
    pub output: String,
    pub classes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    pub generator: String,
    pub seeds: Vec<u32>,
    pub atol: f32,
    pub features: Vec<Vec<f32>>,
}

impl ModelCard {
    /// The card's path for an ONNX file: same stem, `.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    /// Reads and validates the card beside `model`. Does not hash the model: see [`ModelCard::verify_hash`].
    pub fn load_for(model: &Path) -> Result<ModelCard> {
        let path = Self::path_for(model);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|e| Error::Card {
            path: path.clone(),
            message: e.to_string(),
        })?;
        card.validate()
            .map_err(|message| Error::Card { path, message })?;
        Ok(card)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.format != CARD_FORMAT {
            return Err(format!(
                "format is {:?}, expected {CARD_FORMAT:?}",
                self.format
            ));
        }
        let input = &self.input;
        let channels = input.channel_order.channels();
        if input.mean.len() != channels || input.std.len() != channels {
            return Err(format!(
                "input.mean and input.std need {channels} values for {:?}, got {} and {}",
                input.channel_order,
                input.mean.len(),
                input.std.len()
            ));
        }
        if input.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err("input.std values must be finite and non-zero".into());
        }
        if input.height == 0 || input.width == 0 || input.height > 4096 || input.width > 4096 {
            return Err(format!(
                "input size {}x{} is out of range",
                input.height, input.width
            ));
        }
        if input.resize == Resize::ShorterSideCrop {
            match input.resize_shorter {
                Some(s) if s >= input.height.min(input.width) => {}
                _ => {
                    return Err(
                        "resize shorter_side_crop needs resize_shorter >= min(height, width)"
                            .into(),
                    )
                }
            }
        }
        if self.features.dim == 0 {
            return Err("features.dim is 0".into());
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("sha256 {:?} is not 64 hex digits", self.sha256));
        }
        if let Some(r) = &self.reference {
            if r.generator != "xorshift32" {
                return Err(format!(
                    "reference.generator {:?} is not xorshift32",
                    r.generator
                ));
            }
            if r.seeds.len() != r.features.len() || r.seeds.contains(&0) {
                return Err("reference needs one feature vector per non-zero seed".into());
            }
            if r.features.iter().any(|f| f.len() != self.features.dim) {
                return Err(format!(
                    "reference features must have {} values",
                    self.features.dim
                ));
            }
        }
        if let Some(tc) = &self.task_conditioned {
            tc.validate(self)?;
        }
        Ok(())
    }

    /// Input tensor shape for a batch of `n`.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        [
            n,
            self.input.channel_order.channels(),
            self.input.height as usize,
            self.input.width as usize,
        ]
    }

    /// Hashes the model file and compares with the card. Returns the sha256 bytes.
    pub fn verify_hash(&self, model: &Path, model_bytes: &[u8]) -> Result<[u8; 32]> {
        let digest: [u8; 32] = Sha256::digest(model_bytes).into();
        let actual = hex(&digest);
        if !actual.eq_ignore_ascii_case(&self.sha256) {
            return Err(Error::ModelHash {
                model: model.to_path_buf(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(digest)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `xorshift32` reference input of models/CARD.md: `n` values uniform in [-1, 1), exact in f32.
pub fn reference_input(seed: u32, n: usize) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 * (1.0 / 8_388_608.0) - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_input_matches_the_values_pinned_in_card_md() {
        // models/CARD.md pins these, computed from the spec with Python integers (f64 decimals; each is
        // exactly an f32, so they compare equal after the cast).
        let v: Vec<f64> = reference_input(1, 4).into_iter().map(f64::from).collect();
        assert_eq!(
            v,
            [
                -0.9998741149902344,
                -0.9685051441192627,
                0.23280811309814453,
                -0.8567627668380737
            ]
        );
    }

    #[test]
    fn reference_input_is_in_range() {
        let v = reference_input(7, 100_000);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
    }
}
