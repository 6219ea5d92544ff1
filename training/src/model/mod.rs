//! Models: the LightGBM booster and its calibration, the linfa baseline and fallback tree,
//! metrics, and the loaded delay-risk model used for inference.

pub mod baseline;
pub mod booster;
pub mod calibration;
pub mod delay;
pub mod fallback;
pub mod forest;
pub mod impute;
pub mod lightgbm_fit;
pub mod metrics;

pub use delay::{
    DelayModel, Factor, FactorMethod, Reported, RiskBand, RiskBands, RiskScore, RiskSource,
};
pub use metrics::BinaryMetrics;
