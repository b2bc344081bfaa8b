//! # edgecl — on-device class-incremental learning over a frozen ONNX backbone
//!
//! A device ships with a frozen image backbone (an ONNX file plus a [model card](card)). In the field it
//! learns new classes from a few captures, keeps the old ones, stays inside a fixed memory budget, and
//! classifies with a nearest-class-mean head whose means are exact.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`card`] | the model card (JSON beside the ONNX file): input spec, feature output, sha256, parity pairs |
//! | [`preprocess`] | capture -> model input (decode, resize/crop, normalise, NCHW) |
//! | [`backbone`] | the frozen feature extractor: ONNX Runtime (`ort`) or tract, one trait |
//! | [`embed`] | captures -> features in batches, timed per stage |
//! | [`head`] | classifier heads over features: NCM, streaming LDA, Mahalanobis (FeCAM), RanPAC, linear (replay / EWC / A-GEM / LwF) |
//! | [`memory`] | the byte-budgeted feature memory (f32 / f16 / int8, class-balanced herding) |
//! | [`learner`] | learn / classify / forget over features |
//! | [`state`] | the crash-safe state file (postcard, magic, version, CRC, atomic save) |
//! | [`dataset`] | Fashion-MNIST, CIFAR-10 and image-folder loaders for the demo and evaluation |
//! | [`eval`] | class-incremental protocols, metrics, feature cache, report and plot (`edgecl eval`) |

pub mod backbone;
pub mod card;
pub mod dataset;
pub mod embed;
pub mod error;
pub mod eval;
pub mod head;
pub mod learner;
pub mod memory;
pub mod preprocess;
pub mod state;

pub use error::{Error, Result};
