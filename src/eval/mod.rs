//! Class-incremental evaluation: protocols on real data, metrics, and a report (markdown, JSON, PNG).
//!
//! `edgecl eval` extracts a dataset's backbone features once ([`cache`]), then for each seed and head
//! replays a [`protocol`] through the real [`crate::learner::Learner`] ([`run`]): learn a step's classes,
//! classify the test images of every class seen so far, record A_t and per-group accuracies
//! ([`metrics`]), learn time, classify latency and state size. [`report`] prints the table and
//! [`plot`] draws A_t against the step.
//!
//! ```
//! use edgecl::eval::{cache::FeatureSet, protocol::Protocol, run::run};
//! use edgecl::head::{HeadConfig, HeadKind};
//! use ndarray::Array2;
//! let labels: Vec<u16> = (0..40).map(|i| (i % 4) as u16).collect();
//! let features = Array2::from_shape_fn((40, 4), |(i, j)| if j == i % 4 { 1.0 } else { 0.1 });
//! let set = FeatureSet { labels, features };
//! let names: Vec<String> = (0..4).map(|c| c.to_string()).collect();
//! let protocol = Protocol { steps: 2, increment: 2, ..Default::default() };
//! let results = run(&set, &set, &names, &protocol, &[HeadConfig::of(HeadKind::Ncm)], Default::default(), |_| {})?;
//! assert_eq!(results[0].final_accuracy.mean, 1.0);
//! # Ok::<(), edgecl::Error>(())
//! ```

pub mod cache;
pub mod metrics;
pub mod plot;
pub mod protocol;
pub mod report;
pub mod run;
