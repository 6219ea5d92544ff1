//! Probability calibration: Platt scaling of the booster's raw score, fitted on a held-out slice
//! of the training period (never on validation rows). Platt keeps the ranking (AUC) and only
//! reshapes probabilities, which a few thousand rows are enough to fit without overfitting.

use serde::{Deserialize, Serialize};

/// p = sigmoid(a * raw + b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Default for Platt {
    fn default() -> Self {
        Platt { a: 1.0, b: 0.0 }
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Platt {
    /// Fits by Newton's method on the log loss, with Platt's target smoothing so that a
    /// perfectly separated slice does not drive the slope to infinity, and step halving so that
    /// every step lowers the loss (plain Newton diverges on overconfident raw scores).
    pub fn fit(raw: &[f64], labels: &[bool]) -> Platt {
        let pos = labels.iter().filter(|&&y| y).count() as f64;
        let neg = labels.len() as f64 - pos;
        if pos == 0.0 || neg == 0.0 {
            return Platt::default();
        }
        let hi = (pos + 1.0) / (pos + 2.0);
        let lo = 1.0 / (neg + 2.0);
        let targets: Vec<f64> = labels.iter().map(|&y| if y { hi } else { lo }).collect();
        let loss = |a: f64, b: f64| -> f64 {
            raw.iter()
                .zip(&targets)
                .map(|(&x, &t)| {
                    let z = a * x + b;
                    // log(1 + e^z) - t z, computed without overflow
                    z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (&x, &t) in raw.iter().zip(&targets) {
                let p = sigmoid(a * x + b);
                let d = p - t;
                let w = (p * (1.0 - p)).max(1e-12);
                ga += d * x;
                gb += d;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            let mut step = 1.0;
            let mut improved = false;
            while step > 1e-6 {
                let (na, nb) = (a - step * da, b - step * db);
                let l = loss(na, nb);
                if l.is_finite() && l <= current {
                    a = na;
                    b = nb;
                    improved = current - l > 1e-12 * current.abs().max(1.0);
                    current = l;
                    break;
                }
                step *= 0.5;
            }
            if !improved {
                break;
            }
        }
        // A slope at or below zero means the slice contradicts the model's ranking; inverting
        // the ranking on the strength of one slice would be worse than not calibrating.
        if a.is_finite() && b.is_finite() && a > 0.0 {
            Platt { a, b }
        } else {
            Platt::default()
        }
    }

    pub fn apply(&self, raw: f64) -> f64 {
        sigmoid(self.a * raw + self.b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrects_an_overconfident_score() {
        // Raw scores twice as confident as the truth: the fitted slope must come out near 0.5.
        let mut raw = Vec::new();
        let mut labels = Vec::new();
        let mut state = 12345u64;
        for i in 0..20_000 {
            let true_logit = (i % 200) as f64 / 25.0 - 4.0;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            labels.push(u < sigmoid(true_logit));
            raw.push(2.0 * true_logit);
        }
        let p = Platt::fit(&raw, &labels);
        assert!((p.a - 0.5).abs() < 0.05, "slope {}", p.a);
        assert!(p.b.abs() < 0.1, "intercept {}", p.b);
    }

    #[test]
    fn stays_finite_on_a_separable_overconfident_slice() {
        // Raw scores far apart and perfectly separated: plain Newton overflows here.
        let raw: Vec<f64> = (0..500)
            .map(|i| {
                if i % 5 == 0 {
                    30.0 + i as f64
                } else {
                    -40.0 - i as f64
                }
            })
            .collect();
        let labels: Vec<bool> = (0..500).map(|i| i % 5 == 0).collect();
        let p = Platt::fit(&raw, &labels);
        assert!(p.a.is_finite() && p.b.is_finite());
        let (low, high) = (p.apply(-40.0), p.apply(30.0));
        assert!(
            high > 0.9 && low < 0.1 && high < 1.0 && low > 0.0,
            "{low} {high}"
        );
    }
}
