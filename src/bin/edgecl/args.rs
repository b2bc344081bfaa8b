//! The options every subcommand shares (model and runtime, the state's lock) and their parsers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ValueEnum;
use edgecl::backbone::{BackboneOptions, Device, Model, RuntimeChoice};
use edgecl::embed::Embedder;
use edgecl::state::ModelRef;
use indicatif::ProgressBar;

#[derive(Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    Auto,
    Ort,
    Tract,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Tensorrt,
}

/// Backbone and output options.
#[derive(clap::Args, Clone)]
pub struct CommonArgs {
    /// ONNX backbone (its card is the .json beside it). Default: the model the state was made with
    /// (found by its sha256 if it moved), else efficientnet-lite0.onnx from where models live
    /// (`edgecl models` lists them).
    #[arg(long, env = "EDGECL_MODEL")]
    pub model: Option<PathBuf>,
    /// Inference runtime: ONNX Runtime when its library loads (auto), or force one.
    #[arg(long, value_enum, default_value = "auto")]
    pub runtime: RuntimeArg,
    /// Execution provider for ONNX Runtime (cuda / tensorrt need the matching cargo feature and library).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// ONNX Runtime library (libonnxruntime.so*). Default: ORT_DYLIB_PATH, the pip package, the system.
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// Inference threads (default: all cores; at most the number of cores).
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// TensorRT engine cache directory.
    #[arg(long)]
    pub trt_cache: Option<PathBuf>,
    /// TensorRT fp16 kernels.
    #[arg(long)]
    pub fp16: bool,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CommonArgs {
    pub fn backbone_options(&self) -> BackboneOptions {
        BackboneOptions {
            runtime: match self.runtime {
                RuntimeArg::Auto => RuntimeChoice::Auto,
                RuntimeArg::Ort => RuntimeChoice::Ort,
                RuntimeArg::Tract => RuntimeChoice::Tract,
            },
            device: match self.device {
                DeviceArg::Cpu => Device::Cpu,
                DeviceArg::Cuda => Device::Cuda,
                DeviceArg::Tensorrt => Device::Tensorrt,
            },
            ort_lib: self.ort_lib.clone(),
            threads: self.threads,
            trt_cache: self.trt_cache.clone(),
            fp16: self.fp16,
        }
    }

    /// The model to use: `--model` (or `EDGECL_MODEL`), else the state's own, else the default
    /// ([`edgecl::models::find`]).
    pub fn model_path(&self, made: Option<&ModelRef>) -> Result<PathBuf> {
        Ok(edgecl::models::find(self.model.as_deref(), made)?)
    }

    /// Opens the model (card and sha256 checked) on the chosen runtime.
    pub fn embedder(&self, made: Option<&ModelRef>) -> Result<Embedder> {
        let path = self.model_path(made)?;
        let model = Model::open(&path)?;
        Ok(Embedder::new(model, &self.backbone_options())?)
    }

    pub fn progress(&self, len: usize, what: &str) -> ProgressBar {
        crate::output::progress(len, what, self.quiet)
    }
}

/// Reads a state file (no lock: readers see whole files) and notes on stderr what was migrated from an
/// earlier release's state.
pub fn load_state(path: &Path) -> Result<edgecl::learner::Learner> {
    let learner =
        edgecl::learner::Learner::load(path).context("the state file was left as it is")?;
    for note in learner.migrated() {
        eprintln!("edgecl: note: {}", crate::output::safe(note));
    }
    Ok(learner)
}

/// Parses `--threads`: 1 up to the cores this process may use.
pub fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match s.parse::<usize>() {
        Ok(n) if (1..=cores).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?}: this machine has {cores} core(s): use 1 to {cores}"
        )),
    }
}

/// How long a writer waits for the state's lock (`--lock-timeout`).
#[derive(clap::Args, Clone, Copy)]
pub struct LockArgs {
    /// Seconds to wait while another process writes the same state, then fail naming it.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub lock_timeout: std::time::Duration,
}

impl LockArgs {
    /// Takes the state's write lock.
    pub fn acquire(&self, state: &Path) -> Result<edgecl::state::StateLock> {
        Ok(edgecl::state::StateLock::acquire(state, self.lock_timeout)?)
    }

    /// Under the state's lock: loads it, applies `edit`, saves it. Returns the edited learner.
    pub fn edit(
        &self,
        state: &Path,
        edit: impl FnOnce(&mut edgecl::learner::Learner) -> edgecl::Result<()>,
    ) -> Result<edgecl::learner::Learner> {
        let lock = self.acquire(state)?;
        let mut learner = load_state(state)?;
        edit(&mut learner)?;
        learner.save(&lock)?;
        Ok(learner)
    }
}

fn parse_seconds(s: &str) -> std::result::Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && (0.0..=86_400.0).contains(x))
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds from 0 to 86400"))
}

/// Parses a byte size: `262144`, `256KiB`, `64kB`, `1.5MiB`, `2MB` (KiB = 1024, kB = 1000).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 262144, 256KiB or 1MB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "unknown size unit {u:?}: use B, kB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("256KiB"), Ok(262_144));
        assert_eq!(parse_bytes("64kB"), Ok(64_000));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("0.5B").is_err());
    }
}
