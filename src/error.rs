//! The library's one error type. Messages are lower-case and carry the values that matter.

use std::path::PathBuf;

/// Everything that can go wrong in edgecl. The CLI maps these to exit code 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The I/O error is part of the message, not a `source`: printing the chain would repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: cannot decode image: {message}")]
    Image { path: PathBuf, message: String },
    #[error("model card {path}: {message}")]
    Card { path: PathBuf, message: String },
    #[error("model {model}: sha256 is {actual}, its card says {expected}")]
    ModelHash {
        model: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model {model}: {message}")]
    Model { model: PathBuf, message: String },
    #[error("runtime {runtime}: {message}")]
    Runtime {
        runtime: &'static str,
        message: String,
    },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("state was made with model {expected} (sha256 {expected_sha}), not {actual} (sha256 {actual_sha})")]
    WrongModel {
        expected: String,
        expected_sha: String,
        actual: String,
        actual_sha: String,
    },
    #[error("dimension mismatch: {what} has {actual}, expected {expected}")]
    Dimension {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("unknown class {0:?}")]
    UnknownClass(String),
    #[error("memory budget of {budget} bytes {message}")]
    Budget { budget: u64, message: String },
    #[error("dataset {path}: {message}")]
    Dataset { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("state file {path} is being written by {}; gave up after {:.1} s (raise --lock-timeout to wait longer)", holder_text(.holder), .waited.as_secs_f64())]
    Locked {
        path: PathBuf,
        /// The pid the holder wrote into the lock file, when it could be read.
        holder: Option<u32>,
        waited: std::time::Duration,
    },
}

fn holder_text(holder: &Option<u32>) -> String {
    holder.map_or_else(|| "another process".into(), |pid| format!("pid {pid}"))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
