//! The delay-risk booster: LightGBM through `lightgbm3`. The model file is LightGBM's own text
//! format, so it also opens in any LightGBM (Python notebooks included).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::lightgbm_fit::{self, FitInput, Schedule};
use crate::error::{Error, Result};
use crate::features::{FeatureMatrix, Rows};
use crate::progress::Progress;

/// Booster hyper-parameters. Defaults are tuned for a few thousand to a few hundred thousand
/// rows of shipment history: shallow-ish trees and strong leaf minimums, because lateness is
/// noisy and the validation period always drifts from the training one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoosterConfig {
    /// Upper bound on trees; early stopping on the held-out slice usually stops sooner.
    pub num_iterations: u32,
    /// `None` chooses by size: 0.02 up to 50k training rows (small histories are noisy and
    /// reward slow, averaged learning), rising in proportion to the rows to 0.1 at 250k; from
    /// a million rows it rises with their square root, to at most 0.3 (10M rows). At 0.1 the
    /// held-out rate kept improving for 495 trees at 3M rows and 790 at 10M, so the fit cost
    /// grew with rows times trees; at 3M rows, 0.17 (with the bagging below) fitted 175 trees
    /// in 38% of the time for 0.0006 less held-out AUC (0.9496 against 0.9502).
    pub learning_rate: Option<f64>,
    pub num_leaves: u32,
    pub min_data_in_leaf: u32,
    pub feature_fraction: f64,
    /// `None` chooses by size: 0.8 up to 100k rows, then fewer rows per tree (down to 0.3 at
    /// 267k), which keeps large fits fast at no measurable cost in quality; from a million
    /// rows it falls with their square root, to at least 0.1.
    pub bagging_fraction: Option<f64>,
    pub bagging_freq: u32,
    pub lambda_l2: f64,
    pub max_bin: u32,
    pub cat_smooth: f64,
    pub min_data_per_group: u32,
    /// `None` chooses by size: 150 rounds of patience up to 50k training rows (noisy held-out
    /// metrics), 50 above.
    pub early_stopping_rounds: Option<u32>,
    /// The held-out metric early stopping watches: `auc` (ranking; calibration fixes the
    /// scale afterwards) or `binary_logloss`.
    pub early_stopping_metric: String,
    /// 0 lets LightGBM use every core.
    pub num_threads: u32,
    /// After early stopping on the held-out slice, refit on all training rows with the number
    /// of trees found (scaled to the larger set), so no training row is wasted. `None` refits
    /// below 100k training rows, where the held-out rows are worth a second fit.
    pub refit_on_all: Option<bool>,
}

impl Default for BoosterConfig {
    fn default() -> Self {
        BoosterConfig {
            num_iterations: 1500,
            learning_rate: None,
            num_leaves: 24,
            min_data_in_leaf: 40,
            feature_fraction: 0.7,
            bagging_fraction: None,
            bagging_freq: 1,
            lambda_l2: 5.0,
            max_bin: 255,
            cat_smooth: 20.0,
            min_data_per_group: 50,
            early_stopping_rounds: None,
            early_stopping_metric: "auc".into(),
            num_threads: 0,
            refit_on_all: None,
        }
    }
}

impl BoosterConfig {
    /// Rejects parameters LightGBM would refuse or silently misuse, before any work starts.
    pub fn check(&self) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if v > 0.0 && v <= 1.0 {
                Ok(())
            } else {
                Err(Error::param(name, format!("{v} is not in (0, 1]")))
            }
        };
        if let Some(lr) = self.learning_rate {
            unit("learning_rate", lr)?;
        }
        unit("feature_fraction", self.feature_fraction)?;
        if let Some(b) = self.bagging_fraction {
            unit("bagging_fraction", b)?;
        }
        if self.num_iterations == 0 {
            return Err(Error::param("num_iterations", "must be at least 1"));
        }
        if self.num_leaves < 2 {
            return Err(Error::param("num_leaves", "must be at least 2"));
        }
        // The native evaluator keeps a tree's leaves in one u64.
        if self.num_leaves as usize > crate::model::forest::MAX_LEAVES {
            return Err(Error::param(
                "num_leaves",
                format!("at most {} are supported", crate::model::forest::MAX_LEAVES),
            ));
        }
        if self.max_bin < 2 {
            return Err(Error::param("max_bin", "must be at least 2"));
        }
        if !matches!(
            self.early_stopping_metric.as_str(),
            "auc" | "binary_logloss"
        ) {
            return Err(Error::param(
                "early_stopping_metric",
                format!(
                    "`{}` is not `auc` or `binary_logloss`",
                    self.early_stopping_metric
                ),
            ));
        }
        for (name, v) in [
            ("lambda_l2", self.lambda_l2),
            ("cat_smooth", self.cat_smooth),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(Error::param(name, format!("{v} is not >= 0")));
            }
        }
        Ok(())
    }

    /// The configuration with every automatic choice made for `rows` training rows.
    pub fn resolve(&self, rows: usize) -> BoosterConfig {
        let scale = (rows as f64 / 50_000.0).max(1.0);
        // Above a million rows, the square root of the rows over a million.
        let large = (rows as f64 / 1e6).max(1.0).sqrt();
        let mut c = self.clone();
        c.learning_rate = Some(
            self.learning_rate
                .unwrap_or(((0.02 * scale).min(0.1) * large).min(0.3)),
        );
        c.bagging_fraction =
            Some(self.bagging_fraction.unwrap_or(
                ((0.8 * 100_000.0 / rows.max(1) as f64).clamp(0.3, 0.8) / large).max(0.1),
            ));
        c.refit_on_all = Some(self.refit_on_all.unwrap_or(rows < 100_000));
        c.early_stopping_rounds =
            Some(
                self.early_stopping_rounds
                    .unwrap_or(if rows <= 50_000 { 150 } else { 50 }),
            );
        c
    }

    fn lightgbm_params(
        &self,
        seed: u64,
        categorical: &[usize],
        iterations: u32,
    ) -> serde_json::Value {
        let cats: Vec<String> = categorical.iter().map(|c| c.to_string()).collect();
        let mut p = json!({
            "objective": "binary",
            "metric": self.early_stopping_metric,
            "num_iterations": iterations,
            "learning_rate": self.learning_rate.unwrap_or(0.05),
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction.unwrap_or(0.8),
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "cat_smooth": self.cat_smooth,
            "min_data_per_group": self.min_data_per_group,
            "num_threads": self.num_threads,
            "seed": seed,
            "deterministic": true,
            "force_col_wise": true,
            "verbosity": -1,
        });
        if !cats.is_empty() {
            p["categorical_feature"] = json!(cats.join(","));
        }
        p
    }
}

/// Training rows for a fit: features, labels, feature names and categorical positions.
#[derive(Clone, Copy)]
pub struct FitData<'a> {
    pub x: &'a Rows<'a>,
    pub y: &'a [bool],
    pub names: &'a [String],
    pub categorical: &'a [usize],
    pub progress: &'a dyn Progress,
}

/// One fitting job: the data and how to fit it.
struct Fit<'a> {
    config: &'a BoosterConfig,
    seed: u64,
    data: FitData<'a>,
}

impl Fit<'_> {
    fn run(&self, held_out: Option<(&Rows<'_>, &[bool])>, trees: u32) -> Result<DelayBooster> {
        let FitData {
            x,
            y,
            names,
            categorical,
            progress,
        } = self.data;
        let y = labels_f32(y);
        let held_out = held_out
            .filter(|(_, hy)| !hy.is_empty())
            .map(|(hx, hy)| (hx.parts().collect::<Vec<_>>(), labels_f32(hy)));
        let input = FitInput {
            x: x.parts().collect(),
            y: &y,
            n_cols: x.n_cols(),
            names,
            held_out: held_out.as_ref().map(|(hx, hy)| (hx.clone(), &hy[..])),
            progress,
        };
        let params = self.config.lightgbm_params(self.seed, categorical, trees);
        let schedule = Schedule {
            iterations: trees,
            patience: self.config.early_stopping_rounds.or(Some(150)),
            higher_is_better: self.config.early_stopping_metric == "auc",
        };
        let text = lightgbm_fit::fit(&input, &params, &schedule)?;
        let booster = lightgbm3::Booster::from_string(&text)?;
        Ok(DelayBooster {
            booster,
            n_features: x.n_cols(),
        })
    }
}

/// A fitted LightGBM binary classifier over a [`FeatureMatrix`].
pub struct DelayBooster {
    booster: lightgbm3::Booster,
    n_features: usize,
}

// SAFETY: the booster is a heap handle owned by LightGBM with no thread affinity, so moving it
// to another thread is sound. It is deliberately not `Sync`: concurrent predictions mutate the
// booster's prediction settings, so shared use goes through a `Mutex` (see `DelayModel`).
unsafe impl Send for DelayBooster {}

impl std::fmt::Debug for DelayBooster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayBooster")
            .field("n_features", &self.n_features)
            .field("trees", &self.booster.num_iterations())
            .finish()
    }
}

fn labels_f32(y: &[bool]) -> Vec<f32> {
    y.iter().map(|&b| b as u8 as f32).collect()
}

impl DelayBooster {
    /// Fits on `data`, stopping early on the held-out slice when one is given.
    pub fn fit(
        config: &BoosterConfig,
        seed: u64,
        data: FitData<'_>,
        held_out: Option<(&Rows<'_>, &[bool])>,
    ) -> Result<Self> {
        Fit { config, seed, data }.run(held_out, config.num_iterations)
    }

    /// Fits a fixed number of trees without early stopping.
    pub fn fit_trees(
        config: &BoosterConfig,
        seed: u64,
        data: FitData<'_>,
        trees: u32,
    ) -> Result<Self> {
        Fit { config, seed, data }.run(None, trees.max(1))
    }

    /// Loads a model saved by [`DelayBooster::save_string`], checking its width.
    pub fn load(model_text: &str, n_features: usize) -> Result<Self> {
        let booster = lightgbm3::Booster::from_string(model_text)?;
        let found = booster.num_features() as usize;
        if found != n_features {
            return Err(Error::Model(format!(
                "the booster expects {found} features, the schema has {n_features}"
            )));
        }
        Ok(DelayBooster {
            booster,
            n_features,
        })
    }

    pub fn save_string(&self) -> Result<String> {
        Ok(self.booster.save_string()?)
    }

    pub fn num_trees(&self) -> usize {
        self.booster.num_iterations() as usize
    }

    /// Raw (log-odds) scores, one per row.
    pub fn raw_scores(&self, x: &Rows<'_>) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(x.n_rows());
        for part in x.parts() {
            out.extend(
                self.booster
                    .raw_scores(part, self.n_features as i32, true)?,
            );
        }
        Ok(out)
    }

    /// SHAP contributions in log-odds: `n_features + 1` values per row, the last being the bias.
    pub fn contributions(&self, x: &FeatureMatrix) -> Result<Vec<f64>> {
        if x.n_rows == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .booster
            .predict_contrib(&x.data, self.n_features as i32, true)?)
    }

    /// Total gain per feature.
    pub fn importance(&self) -> Result<Vec<f64>> {
        Ok(self
            .booster
            .feature_importance(lightgbm3::ImportanceType::Gain)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_choices_follow_the_size_and_meet_at_a_million_rows() {
        let at = |rows| {
            let c = BoosterConfig::default().resolve(rows);
            (c.learning_rate.unwrap(), c.bagging_fraction.unwrap())
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(at(50_000).0, 0.02));
        assert!(close(at(250_000).0, 0.1) && close(at(267_000).1, 0.3));
        let (lr, bag) = at(1_000_000);
        assert!(
            close(lr, 0.1) && close(bag, 0.3),
            "no step at a million rows"
        );
        let (lr, bag) = at(4_000_000);
        assert!(close(lr, 0.2) && close(bag, 0.15));
        assert_eq!(at(10_000_000), (0.3, 0.1), "both end at their bounds");
        assert_eq!(at(100_000_000), (0.3, 0.1));
        let fixed = BoosterConfig {
            learning_rate: Some(0.05),
            bagging_fraction: Some(0.9),
            ..BoosterConfig::default()
        };
        let c = fixed.resolve(10_000_000);
        assert_eq!(
            (c.learning_rate, c.bagging_fraction),
            (Some(0.05), Some(0.9))
        );
    }
}
