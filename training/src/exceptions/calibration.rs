//! Temperature scaling (Guo et al. 2017): one divisor for a classifier's logits, fitted on
//! held-out notes to minimise log loss, so that a confidence of 0.8 is right about 80% of the
//! time. It never changes which category wins.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    pub t: f64,
}

impl Default for Temperature {
    fn default() -> Self {
        Temperature { t: 1.0 }
    }
}

impl Temperature {
    /// Fits the temperature on logits (one row per note) and the indices of the true classes.
    pub fn fit(logits: &[Vec<f32>], labels: &[usize]) -> Self {
        if logits.is_empty() {
            return Temperature::default();
        }
        // Log loss is unimodal in log t; golden-section search over t in [0.05, 20].
        let loss = |log_t: f64| nll(logits, labels, log_t.exp());
        let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
        let g = (5f64.sqrt() - 1.0) / 2.0;
        let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
        let (mut fc, mut fd) = (loss(c), loss(d));
        for _ in 0..60 {
            if fc < fd {
                b = d;
                d = c;
                fd = fc;
                c = b - g * (b - a);
                fc = loss(c);
            } else {
                a = c;
                c = d;
                fc = fd;
                d = a + g * (b - a);
                fd = loss(d);
            }
        }
        Temperature {
            t: ((a + b) / 2.0).exp(),
        }
    }

    /// Probabilities of one row of logits.
    pub fn probabilities(&self, logits: &[f32]) -> Vec<f64> {
        softmax(logits, self.t)
    }
}

fn softmax(logits: &[f32], t: f64) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits
        .iter()
        .map(|&z| ((z as f64 - max) / t).exp())
        .collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Mean negative log-likelihood of the true classes at temperature `t`.
pub fn nll(logits: &[Vec<f32>], labels: &[usize], t: f64) -> f64 {
    let total: f64 = logits
        .iter()
        .zip(labels)
        .map(|(z, &y)| -softmax(z, t)[y].max(1e-12).ln())
        .sum();
    total / logits.len().max(1) as f64
}

/// Expected calibration error over 10 equal-width confidence bins.
pub fn expected_calibration_error(confidence: &[f64], correct: &[bool]) -> f64 {
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let b = ((c * 10.0) as usize).min(9);
        bins[b].0 += c;
        bins[b].1 += ok as u8 as f64;
        bins[b].2 += 1;
    }
    let n = confidence.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|(c, ok, _)| (c - ok).abs() / n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overconfident_logits_get_a_temperature_above_one() {
        // Logits that always put ~all mass on class 0, which is right only 60% of the time.
        let logits: Vec<Vec<f32>> = (0..100).map(|_| vec![8.0, 0.0, 0.0]).collect();
        let labels: Vec<usize> = (0..100).map(|i| if i % 5 < 3 { 0 } else { 1 }).collect();
        let t = Temperature::fit(&logits, &labels);
        assert!(t.t > 2.0, "{t:?}");
        let p = t.probabilities(&logits[0]);
        assert!((p[0] - 0.6).abs() < 0.02, "{p:?}");
        assert!(nll(&logits, &labels, t.t) < nll(&logits, &labels, 1.0));
        // Scaling never changes the winner.
        assert!(p[0] > p[1] && p[1] == p[2]);
    }

    #[test]
    fn calibration_error_is_zero_when_confidence_matches_accuracy() {
        let conf = vec![0.75; 8];
        let correct = [true, true, true, false, true, true, true, false];
        assert!(expected_calibration_error(&conf, &correct) < 1e-12);
        assert!((expected_calibration_error(&[1.0, 1.0], &[false, false]) - 1.0).abs() < 1e-12);
    }
}
