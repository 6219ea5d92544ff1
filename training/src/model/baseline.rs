//! The linfa-logistic baseline, reported next to the booster so that analysts see what the
//! booster adds over a linear model on the same numeric and history features.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::calibration::sigmoid;
use super::impute::Imputer;
use crate::error::{Error, Result};
use crate::features::Rows;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// L2 penalty.
    pub alpha: f64,
    pub max_iterations: u64,
    /// Rows sampled for the fit (evenly spaced, deterministic); a linear model needs few.
    pub max_rows: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            alpha: 1.0,
            max_iterations: 100,
            max_rows: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticBaseline {
    pub imputer: Imputer,
    pub weights: Vec<f64>,
    pub intercept: f64,
}

impl LogisticBaseline {
    pub fn fit(
        config: &BaselineConfig,
        x: &Rows<'_>,
        y: &[bool],
        rows: &[usize],
        columns: &[usize],
    ) -> Result<Self> {
        let rows = evenly_spaced(rows, config.max_rows);
        let imputer = Imputer::fit(x, &rows, columns);
        let mut data = Vec::with_capacity(rows.len() * columns.len());
        let mut buf = Vec::new();
        for &r in &rows {
            imputer.standardized(x.row(r), &mut buf);
            data.extend_from_slice(&buf);
        }
        let records = Array2::from_shape_vec((rows.len(), columns.len()), data)
            .map_err(|e| Error::Model(e.to_string()))?;
        let targets: Array1<usize> = rows.iter().map(|&r| y[r] as usize).collect();
        let dataset = Dataset::new(records, targets);
        let fitted = LogisticRegression::default()
            .alpha(config.alpha)
            .max_iterations(config.max_iterations)
            .fit(&dataset)
            .map_err(|e| Error::Model(format!("logistic baseline: {e}")))?;
        // linfa calls the more frequent class "positive"; the baseline predicts lateness.
        let sign = if fitted.labels().pos.class == 1 {
            1.0
        } else {
            -1.0
        };
        Ok(LogisticBaseline {
            imputer,
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        })
    }

    pub fn predict(&self, x: &Rows<'_>) -> Vec<f64> {
        let mut buf = Vec::new();
        (0..x.n_rows())
            .map(|i| {
                self.imputer.standardized(x.row(i), &mut buf);
                let z: f64 = buf.iter().zip(&self.weights).map(|(a, w)| a * w).sum();
                sigmoid(z + self.intercept)
            })
            .collect()
    }
}

/// At most `max` of `rows`, evenly spaced so the sample spans the whole period.
pub fn evenly_spaced(rows: &[usize], max: usize) -> Vec<usize> {
    if rows.len() <= max || max == 0 {
        return rows.to_vec();
    }
    (0..max).map(|k| rows[k * rows.len() / max]).collect()
}
