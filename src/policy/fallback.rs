//! The fallback-risk table (`policies/fallback_risk.json`): what answers when no delay model
//! does. Odoo's own lateness rule comes first (the deadline is before the planned dispatch, or
//! the planned dispatch is already past), then the shallow tree that training exports, one row
//! per leaf. [`table_from_tree`] writes the table from a model's `fallback_rules.json`.

use super::jdm::DecisionTable;
use super::PolicyError;
use dispatch_risk_training::features::schema::CALENDAR_FEATURES;
use dispatch_risk_training::model::fallback::FallbackRules;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Risk given when the promised date is before the planned dispatch: late unless it leaves early.
pub const DEADLINE_BEFORE_SCHEDULE_RISK: f64 = 0.95;
/// Risk given when the planned dispatch time has passed and the delivery has not left (Odoo
/// shows such transfers in red as late).
pub const SCHEDULE_PASSED_RISK: f64 = 0.8;

/// What the fallback table reads: the features a request carries by itself, by name (missing
/// ones are null), and Odoo's two lateness conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackFacts {
    pub features: Vec<(&'static str, Option<f64>)>,
    pub deadline_before_scheduled: bool,
    pub scheduled_in_past: bool,
}

impl FallbackFacts {
    pub fn to_json(&self) -> Value {
        let mut m = Map::with_capacity(self.features.len() + 2);
        for (name, v) in &self.features {
            m.insert(
                (*name).to_string(),
                v.filter(|v| v.is_finite())
                    .map_or(Value::Null, |v| json!(v)),
            );
        }
        m.insert(
            "deadline_before_scheduled".into(),
            self.deadline_before_scheduled.into(),
        );
        m.insert("scheduled_in_past".into(), self.scheduled_in_past.into());
        Value::Object(m)
    }

    /// An ordinary shipment, for checking a table at load.
    pub fn probe() -> Self {
        FallbackFacts {
            features: vec![
                ("lead_time_days", Some(3.0)),
                ("required_km_per_day", Some(150.0)),
            ],
            deadline_before_scheduled: false,
            scheduled_in_past: false,
        }
    }

    /// One Odoo would already show as late, with nothing else known.
    pub fn probe_late() -> Self {
        FallbackFacts {
            features: CALENDAR_FEATURES.iter().map(|n| (*n, None)).collect(),
            deadline_before_scheduled: true,
            scheduled_in_past: true,
        }
    }
}

/// The table's answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackRisk {
    pub rule: String,
    pub delay_risk: f64,
}

/// Evaluates the fallback table; every shipment must match a row.
pub fn evaluate(table: &DecisionTable, facts: &FallbackFacts) -> Result<FallbackRisk, PolicyError> {
    let value = table
        .evaluate(&facts.to_json())
        .map_err(|e| PolicyError::Evaluation(format!("fallback table: {e}")))?;
    let risk: FallbackRisk = match value {
        Value::Array(mut a) if !a.is_empty() => serde_json::from_value(a.swap_remove(0)),
        Value::Object(o) if !o.is_empty() => serde_json::from_value(Value::Object(o)),
        _ => {
            return Err(PolicyError::Evaluation(
                "fallback table: no row matched; the last row must match every shipment".into(),
            ))
        }
    }
    .map_err(|e| PolicyError::Evaluation(format!("fallback table row: {e}")))?;
    if !(0.0..=1.0).contains(&risk.delay_risk) {
        return Err(PolicyError::Evaluation(format!(
            "fallback table: rule `{}` gives delay_risk {}, outside [0, 1]",
            risk.rule, risk.delay_risk
        )));
    }
    Ok(risk)
}

/// The fallback table as a JDM graph: Odoo's lateness rule, then one row per leaf of `tree`. A
/// feature the request lacks counts as its training median, as in training.
pub fn table_from_tree(tree: &FallbackRules, model_version: &str) -> Value {
    // Only the features the leaves test become columns.
    let mut used: Vec<usize> = Vec::new();
    for rule in &tree.rules {
        for c in &rule.conditions {
            if let Some(i) = tree.features.iter().position(|f| *f == c.feature) {
                if !used.contains(&i) {
                    used.push(i);
                }
            }
        }
    }
    used.sort_unstable();
    let mut inputs = vec![
        json!({"id": "deadline_before_scheduled", "name": "Deadline before planned dispatch", "field": "deadline_before_scheduled"}),
        json!({"id": "scheduled_in_past", "name": "Planned dispatch already past", "field": "scheduled_in_past"}),
    ];
    for &i in &used {
        let name = &tree.features[i];
        inputs.push(json!({
            "id": name,
            "name": name,
            "field": format!("{name} ?? {}", round6(tree.medians[i])),
        }));
    }
    let outputs = json!([
        {"id": "rule", "name": "Rule", "field": "rule"},
        {"id": "delay_risk", "name": "Delay risk", "field": "delay_risk"},
    ]);
    let mut rules = vec![
        row(
            "odoo-deadline-before-schedule",
            "Odoo: the promised date is before the planned dispatch",
            &[("deadline_before_scheduled", "true".into())],
            DEADLINE_BEFORE_SCHEDULE_RISK,
        ),
        row(
            "odoo-schedule-passed",
            "Odoo: the planned dispatch time has passed",
            &[("scheduled_in_past", "true".into())],
            SCHEDULE_PASSED_RISK,
        ),
    ];
    for leaf in &tree.rules {
        let mut cells: Vec<(&str, String)> = Vec::new();
        for &i in &used {
            let name = tree.features[i].as_str();
            let lower = leaf
                .conditions
                .iter()
                .filter(|c| c.feature == name && c.op == ">")
                .map(|c| c.threshold)
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
            let upper = leaf
                .conditions
                .iter()
                .filter(|c| c.feature == name && c.op == "<=")
                .map(|c| c.threshold)
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))));
            let cell = match (lower, upper) {
                (Some(l), Some(u)) => format!("> {} and <= {}", round6(l), round6(u)),
                (Some(l), None) => format!("> {}", round6(l)),
                (None, Some(u)) => format!("<= {}", round6(u)),
                (None, None) => String::new(),
            };
            cells.push((name, cell));
        }
        let description = format!(
            "tree leaf: {} training deliveries, {:.0} % late",
            leaf.support,
            leaf.delay_risk * 100.0
        );
        rules.push(row(&leaf.id, &description, &cells, leaf.delay_risk));
    }
    json!({
        "contentType": "application/vnd.gorules.decision",
        "nodes": [
            {"id": "request", "name": "request", "type": "inputNode", "position": {"x": 80, "y": 200}, "content": {}},
            {
                "id": "fallback_risk",
                "name": format!("Fallback delay risk (tree from model {model_version})"),
                "type": "decisionTableNode",
                "position": {"x": 380, "y": 200},
                "content": {
                    "hitPolicy": "first",
                    "inputs": inputs,
                    "outputs": outputs,
                    "rules": rules,
                    "passThrough": false,
                    "inputField": null,
                    "outputPath": null,
                    "executionMode": "single"
                }
            },
            {"id": "response", "name": "response", "type": "outputNode", "position": {"x": 780, "y": 200}, "content": {}}
        ],
        "edges": [
            {"id": "e1", "sourceId": "request", "targetId": "fallback_risk", "type": "edge"},
            {"id": "e2", "sourceId": "fallback_risk", "targetId": "response", "type": "edge"}
        ]
    })
}

fn row(id: &str, description: &str, cells: &[(&str, String)], risk: f64) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), id.into());
    m.insert("_description".into(), description.into());
    for (k, v) in cells {
        m.insert((*k).to_string(), v.clone().into());
    }
    m.insert("rule".into(), format!("\"{id}\"").into());
    m.insert("delay_risk".into(), round6(risk).to_string().into());
    Value::Object(m)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
