//! Median imputation and standardisation for the linfa models, which (unlike LightGBM) cannot
//! take missing values. Fitted on training rows and stored with the model that uses it.

use serde::{Deserialize, Serialize};

use crate::features::Rows;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imputer {
    /// Feature positions (in the full feature row) this imputer reads.
    pub columns: Vec<usize>,
    pub medians: Vec<f64>,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
}

impl Imputer {
    pub fn fit(x: &Rows<'_>, rows: &[usize], columns: &[usize]) -> Self {
        let mut medians = Vec::with_capacity(columns.len());
        let mut means = Vec::with_capacity(columns.len());
        let mut stds = Vec::with_capacity(columns.len());
        for &c in columns {
            let mut v: Vec<f64> = rows
                .iter()
                .map(|&r| x.row(r)[c])
                .filter(|v| v.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            let median = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
            let n = rows.len().max(1) as f64;
            let filled = || rows.iter().map(|&r| fill(x.row(r)[c], median));
            let mean = filled().sum::<f64>() / n;
            let var = filled().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            medians.push(median);
            means.push(mean);
            stds.push(if var > 1e-18 { var.sqrt() } else { 1.0 });
        }
        Imputer {
            columns: columns.to_vec(),
            medians,
            means,
            stds,
        }
    }

    /// Imputed (not standardised) values of one feature row, in `columns` order.
    pub fn imputed(&self, row: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend(
            self.columns
                .iter()
                .zip(&self.medians)
                .map(|(&c, &m)| fill(row[c], m)),
        );
    }

    /// Imputed and standardised values of one feature row.
    pub fn standardized(&self, row: &[f64], out: &mut Vec<f64>) {
        self.imputed(row, out);
        for (k, v) in out.iter_mut().enumerate() {
            *v = (*v - self.means[k]) / self.stds[k];
        }
    }
}

fn fill(v: f64, median: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        median
    }
}
