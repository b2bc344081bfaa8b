//! # edgecl — on-device class-incremental learning over a frozen ONNX backbone
//!
//! A device ships with a frozen image backbone (an ONNX file plus a [model card](card)). In the field it
//! learns new classes from a few captures, keeps the old ones, stays inside a fixed memory budget, and
//! classifies with a nearest-class-mean head whose means are exact.
//!
//! | module | what it is |
//! | --- | --- |
//! | [`class_name`] | what a class name may be, and its one stored spelling (trimmed, NFC) |
//! | [`card`] | the model card (JSON beside the ONNX file): input spec, feature output, sha256, parity pairs |
//! | [`preprocess`] | capture -> model input (decode, resize/crop, normalise, NCHW) |
//! | [`models`] | where models live: the lookup order without build paths, and the listing of `edgecl models` |
//! | [`backbone`] | the frozen feature extractor: ONNX Runtime (`ort`) or tract, one trait |
//! | [`frames`] | frame sources: MJPEG or raw RGB on stdin, a folder; only the newest frame is kept |
//! | [`embed`] | captures -> features in batches, timed per stage |
//! | [`head`] | classifier heads over features: NCM, streaming LDA, Mahalanobis (FeCAM), RanPAC, linear (replay / EWC / A-GEM / LwF) |
//! | [`memory`] | the byte-budgeted feature memory (f32 / f16 / int8, class-balanced herding) |
//! | [`learner`] | learn / classify / forget over features |
//! | [`session`] | a state and its backbone opened together: learn and classify in-memory frames, reload on change |
//! | [`state`] | the crash-safe state file (postcard, magic, version, CRC, atomic save) |
//! | [`dataset`] | Fashion-MNIST, CIFAR-10 and image-folder loaders for the demo and evaluation |
//! | [`eval`] | class-incremental protocols, metrics, feature cache, report and plot (`edgecl eval`) |
//! | [`nostd`] | the no_std core the modules above call: NCM over slices, int8/f16 encodings, the state layout |
//!
//! Everything but [`nostd`] needs the `std` feature (on by default); with `default-features = false` the
//! crate is `#![no_std]` and is that core alone, for microcontrollers.

#![cfg_attr(not(feature = "std"), no_std)]

pub mod nostd;

#[cfg(feature = "std")]
pub mod backbone;
#[cfg(feature = "std")]
pub mod card;
#[cfg(feature = "std")]
pub mod class_name;
#[cfg(feature = "std")]
pub mod dataset;
#[cfg(feature = "std")]
pub mod embed;
#[cfg(feature = "std")]
pub mod error;
#[cfg(feature = "std")]
pub mod eval;
#[cfg(feature = "std")]
pub mod frames;
#[cfg(feature = "std")]
pub mod head;
#[cfg(feature = "std")]
pub mod learner;
#[cfg(feature = "std")]
pub mod memory;
#[cfg(feature = "std")]
pub mod models;
#[cfg(feature = "std")]
pub mod preprocess;
#[cfg(feature = "std")]
pub mod session;
#[cfg(feature = "std")]
pub mod state;

#[cfg(feature = "std")]
pub use error::{Error, Result};
