//! Evaluation metrics for probabilistic binary predictions: ROC AUC, log loss and Brier score.

use serde::{Deserialize, Serialize};

/// Metrics of one model on one set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub auc: f64,
    pub logloss: f64,
    pub brier: f64,
    pub n: usize,
    /// Share of positive (late) rows.
    pub positive_rate: f64,
}

impl BinaryMetrics {
    pub fn compute(labels: &[bool], probs: &[f64]) -> Self {
        assert_eq!(labels.len(), probs.len());
        let n = labels.len();
        let eps = 1e-15;
        let mut logloss = 0.0;
        let mut brier = 0.0;
        for (&y, &p) in labels.iter().zip(probs) {
            let p = p.clamp(eps, 1.0 - eps);
            let t = y as u8 as f64;
            logloss -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
            brier += (p - t) * (p - t);
        }
        let positives = labels.iter().filter(|&&y| y).count();
        BinaryMetrics {
            auc: auc(labels, probs),
            logloss: logloss / n.max(1) as f64,
            brier: brier / n.max(1) as f64,
            n,
            positive_rate: positives as f64 / n.max(1) as f64,
        }
    }
}

/// ROC AUC by the rank-sum formula, with ties given their average rank. NaN when only one class
/// is present.
pub fn auc(labels: &[bool], scores: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0.0, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computed_values() {
        assert_eq!(auc(&[false, true], &[0.1, 0.9]), 1.0);
        assert_eq!(auc(&[true, false], &[0.1, 0.9]), 0.0);
        assert_eq!(auc(&[true, false], &[0.5, 0.5]), 0.5);
        // 3 positives, 2 negatives: pairs ordered correctly = 5 of 6.
        let a = auc(
            &[false, true, false, true, true],
            &[0.1, 0.4, 0.35, 0.8, 0.2],
        );
        assert!((a - 5.0 / 6.0).abs() < 1e-12, "{a}");
    }

    #[test]
    fn logloss_and_brier() {
        let m = BinaryMetrics::compute(&[true, false], &[0.8, 0.2]);
        assert!((m.logloss + 0.8f64.ln()).abs() < 1e-12);
        assert!((m.brier - 0.04).abs() < 1e-12);
        assert_eq!(m.positive_rate, 0.5);
    }
}
