//! The deterministic fallback: a shallow linfa-trees decision tree over features a request
//! carries by itself (lead time, calendar, weights and values), exported as a readable rule
//! table. The service answers from it when no model loads; analysts can read and edit it.

use linfa::prelude::*;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::baseline::evenly_spaced;
use super::impute::Imputer;
use crate::error::{Error, Result};
use crate::features::Rows;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    pub max_depth: usize,
    /// Each leaf holds at least this share of the training rows.
    pub min_leaf_fraction: f64,
    pub max_rows: usize,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            max_depth: 4,
            min_leaf_fraction: 0.01,
            max_rows: 100_000,
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub feature: String,
    /// `<=` or `>`.
    pub op: String,
    pub threshold: f64,
}

/// One leaf of the tree as a row of the rule table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    /// All must hold. A missing value counts as the training median.
    pub conditions: Vec<Condition>,
    /// Late rate of the training rows in this leaf (smoothed toward the overall rate).
    pub delay_risk: f64,
    pub support: usize,
}

/// The exported table: rules are mutually exclusive and cover every input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackRules {
    pub features: Vec<String>,
    pub medians: Vec<f64>,
    pub rules: Vec<Rule>,
}

impl FallbackRules {
    /// Fits the tree on the given rows and columns of `x` and exports it.
    pub fn fit(
        config: &FallbackConfig,
        x: &Rows<'_>,
        y: &[bool],
        rows: &[usize],
        columns: &[usize],
        names: &[String],
    ) -> Result<Self> {
        let rows = evenly_spaced(rows, config.max_rows);
        let imputer = Imputer::fit(x, &rows, columns);
        let mut data = Vec::with_capacity(rows.len() * columns.len());
        let mut buf = Vec::new();
        for &r in &rows {
            imputer.imputed(x.row(r), &mut buf);
            data.extend_from_slice(&buf);
        }
        let records = Array2::from_shape_vec((rows.len(), columns.len()), data)
            .map_err(|e| Error::Model(e.to_string()))?;
        let targets: Array1<usize> = rows.iter().map(|&r| y[r] as usize).collect();
        // linfa-trees prunes every subtree whose leaves predict the same class; with late
        // deliveries a minority everywhere, that would leave a single leaf. Balanced class
        // weights make splits that separate risk also change the predicted class.
        let late = rows.iter().filter(|&&r| y[r]).count().max(1) as f32;
        let on_time = (rows.len() as f32 - late).max(1.0);
        let weights: Array1<f32> = rows
            .iter()
            .map(|&r| {
                if y[r] {
                    rows.len() as f32 / (2.0 * late)
                } else {
                    rows.len() as f32 / (2.0 * on_time)
                }
            })
            .collect();
        let dataset = Dataset::new(records, targets).with_weights(weights);
        let min_leaf = (config.min_leaf_fraction * rows.len() as f64).max(5.0) as f32;
        let tree = DecisionTree::params()
            .max_depth(Some(config.max_depth))
            .min_weight_leaf(min_leaf)
            .min_weight_split(2.0 * min_leaf)
            .fit(&dataset)
            .map_err(|e| Error::Model(format!("fallback tree: {e}")))?;
        let features: Vec<String> = columns.iter().map(|&c| names[c].clone()).collect();
        let mut rules = Vec::new();
        collect_rules(tree.root_node(), &features, &mut Vec::new(), &mut rules);
        let mut table = FallbackRules {
            features,
            medians: imputer.medians.clone(),
            rules,
        };
        // Leaf risks come from the training rows, not the tree's majority class.
        let overall = rows.iter().filter(|&&r| y[r]).count() as f64 / rows.len().max(1) as f64;
        let mut counts = vec![(0usize, 0usize); table.rules.len()];
        for (k, &r) in rows.iter().enumerate() {
            let row = &dataset.records().row(k);
            let leaf = table.leaf_of(|f| row[f]);
            counts[leaf].0 += 1;
            counts[leaf].1 += y[r] as usize;
        }
        for (rule, (n, late)) in table.rules.iter_mut().zip(counts) {
            rule.support = n;
            rule.delay_risk = (late as f64 + 10.0 * overall) / (n as f64 + 10.0);
        }
        Ok(table)
    }

    /// Checks a table read from disk (analysts may edit it): every condition names a listed
    /// feature and a known operator, and there is at least one rule.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.rules.is_empty() {
            return Err("no rules".into());
        }
        if self.medians.len() != self.features.len() {
            return Err("`medians` and `features` differ in length".into());
        }
        for rule in &self.rules {
            for c in &rule.conditions {
                if !self.features.contains(&c.feature) {
                    return Err(format!(
                        "rule {} uses `{}`, which `features` does not list",
                        rule.id, c.feature
                    ));
                }
                if c.op != "<=" && c.op != ">" {
                    return Err(format!(
                        "rule {} has operator `{}`; expected `<=` or `>`",
                        rule.id, c.op
                    ));
                }
            }
            if !(0.0..=1.0).contains(&rule.delay_risk) {
                return Err(format!(
                    "rule {} has delay_risk {} outside [0, 1]",
                    rule.id, rule.delay_risk
                ));
            }
        }
        Ok(())
    }

    fn leaf_of(&self, value: impl Fn(usize) -> f64) -> usize {
        self.rules
            .iter()
            .position(|rule| {
                rule.conditions.iter().all(|c| {
                    // `validate` guarantees the feature is listed; a missing one never matches.
                    let Some(f) = self.features.iter().position(|n| *n == c.feature) else {
                        return false;
                    };
                    let v = value(f);
                    if c.op == "<=" {
                        v <= c.threshold
                    } else {
                        v > c.threshold
                    }
                })
            })
            .unwrap_or(0)
    }

    /// The rule that matches a feature row (positions as in the full schema row, through
    /// `columns`), and its risk.
    pub fn evaluate(&self, columns: &[usize], row: &[f64]) -> &Rule {
        let leaf = self.leaf_of(|f| {
            let v = row[columns[f]];
            if v.is_finite() {
                v
            } else {
                self.medians[f]
            }
        });
        &self.rules[leaf]
    }
}

fn collect_rules(
    node: &TreeNode<f64, usize>,
    features: &[String],
    path: &mut Vec<Condition>,
    out: &mut Vec<Rule>,
) {
    let children = node.children();
    match (node.is_leaf(), children[0], children[1]) {
        (false, Some(left), Some(right)) => {
            let (f, threshold, _) = node.split();
            for (child, op) in [(left, "<="), (right, ">")] {
                path.push(Condition {
                    feature: features[f].clone(),
                    op: op.to_string(),
                    threshold,
                });
                collect_rules(child, features, path, out);
                path.pop();
            }
        }
        _ => out.push(Rule {
            id: format!("fallback-{}", out.len() + 1),
            conditions: path.clone(),
            delay_risk: 0.0,
            support: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(feature: &str, op: &str) -> FallbackRules {
        FallbackRules {
            features: vec!["lead_time_days".into()],
            medians: vec![2.0],
            rules: vec![
                Rule {
                    id: "r1".into(),
                    conditions: vec![Condition {
                        feature: feature.into(),
                        op: op.into(),
                        threshold: 1.0,
                    }],
                    delay_risk: 0.6,
                    support: 10,
                },
                Rule {
                    id: "r2".into(),
                    conditions: vec![Condition {
                        feature: "lead_time_days".into(),
                        op: ">".into(),
                        threshold: 1.0,
                    }],
                    delay_risk: 0.1,
                    support: 30,
                },
            ],
        }
    }

    #[test]
    fn evaluates_and_imputes_missing_values_with_the_median() {
        let t = table("lead_time_days", "<=");
        assert!(t.validate().is_ok());
        assert_eq!(t.evaluate(&[0], &[0.5]).id, "r1");
        assert_eq!(t.evaluate(&[0], &[3.0]).id, "r2");
        assert_eq!(
            t.evaluate(&[0], &[f64::NAN]).id,
            "r2",
            "the median 2.0 is above the threshold"
        );
    }

    #[test]
    fn edited_tables_with_unknown_features_or_operators_are_refused() {
        let err = table("weight", "<=").validate().unwrap_err();
        assert!(err.contains("`weight`"), "{err}");
        let err = table("lead_time_days", "<").validate().unwrap_err();
        assert!(err.contains("operator `<`"), "{err}");
    }
}
