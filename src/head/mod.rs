//! Classifier heads over frozen features. Only heads learn on the device.

pub mod ncm;

pub use ncm::{normalise_rows, Match, Ncm};
