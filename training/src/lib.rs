//! dispatch-risk's machine learning: shipment-history loading (polars), features shared by
//! training and serving, the LightGBM delay-risk model with calibration and SHAP factors, the
//! linfa baseline and fallback tree, evaluation and artifact I/O.
//!
//! It knows nothing about HTTP, databases or command lines: the service and the CLI call it.

pub mod artifact;
pub mod batch;
pub mod carrier;
pub mod data;
pub mod error;
pub mod exceptions;
pub mod features;
pub mod generate;
pub mod model;
pub mod parallel;
pub mod progress;
pub mod report;
pub mod train;

pub use error::{Error, Result};
