//! The routing and approval table (`policies/routing.json`): every row that matches a shipment's
//! facts contributes its rule id, and may send it to a queue, require an approval by a role,
//! give a reason code and add priority points. The service combines the matches: the most
//! severe queue, the first approver named, every reason in table order.

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use zen_types::variable::{Variable, VariableMap};

use super::jdm::DecisionTable;
use super::PolicyError;

/// Where a delivery goes next in the dispatch workflow.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// Dispatch as planned.
    #[default]
    Standard,
    /// A manager approves before it is booked.
    PriorityApproval,
    /// Held: something is wrong with the order itself.
    Exception,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Standard => "standard",
            Queue::PriorityApproval => "priority_approval",
            Queue::Exception => "exception",
        }
    }
}

/// The role that approves; the table names it (`dispatch_manager`, `compliance_manager`...).
pub type ApproverRole = String;

/// What the routing table reads about a shipment and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingFacts {
    pub risk_band: &'static str,
    pub delay_risk: f64,
    /// `model` or `rules`: where the risk came from.
    pub source: &'static str,
    pub customer_tier: Option<String>,
    pub priority: Option<String>,
    pub order_value: Option<f64>,
    pub hazardous: bool,
    pub temperature_controlled: bool,
    /// Days from the planned dispatch to the promised date (negative: promised before planned).
    pub slack_days: f64,
    pub same_day: bool,
    pub credit_hold: bool,
}

impl RoutingFacts {
    /// An ordinary shipment, for checking a table at load.
    pub fn probe() -> Self {
        RoutingFacts {
            risk_band: "low",
            delay_risk: 0.1,
            source: "model",
            customer_tier: Some("standard".into()),
            priority: Some("0".into()),
            order_value: Some(500.0),
            hazardous: false,
            temperature_controlled: false,
            slack_days: 3.0,
            same_day: false,
            credit_hold: false,
        }
    }

    /// One that sets off many rows at once.
    pub fn probe_extreme() -> Self {
        RoutingFacts {
            risk_band: "critical",
            delay_risk: 0.9,
            source: "rules",
            customer_tier: Some("premium".into()),
            priority: Some("1".into()),
            order_value: Some(50_000.0),
            hazardous: true,
            temperature_controlled: true,
            slack_days: -1.0,
            same_day: true,
            credit_hold: true,
        }
    }
}

/// One matching row, as the table writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    rule: String,
    #[serde(default)]
    queue: Option<Queue>,
    #[serde(default)]
    requires_approval: Option<bool>,
    #[serde(default)]
    approver_role: Option<String>,
    #[serde(default)]
    reason_code: Option<String>,
    #[serde(default)]
    priority_points: Option<f64>,
}

/// The combined answer of every matching row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    pub queue: Queue,
    pub requires_approval: bool,
    pub approver_role: Option<ApproverRole>,
    /// Reasons of the rows that require approval, in table order.
    pub reason_codes: Vec<String>,
    /// Every matching row's rule id, in table order.
    pub matched_rules: Vec<String>,
    pub priority_points: f64,
}

impl Routing {
    fn combine(rows: Vec<Row>) -> Routing {
        let mut out = Routing::default();
        for row in rows {
            let approval = row.requires_approval.unwrap_or(false);
            if let Some(q) = row.queue {
                out.queue = out.queue.max(q);
            }
            if approval {
                out.requires_approval = true;
                if out.approver_role.is_none() {
                    out.approver_role = row.approver_role.filter(|r| !r.is_empty());
                }
                if let Some(code) = row.reason_code.filter(|c| !c.is_empty()) {
                    if !out.reason_codes.contains(&code) {
                        out.reason_codes.push(code);
                    }
                }
            }
            out.priority_points += row.priority_points.unwrap_or(0.0);
            out.matched_rules.push(row.rule);
        }
        // A queue that needs a manager's eye implies approval even if no row said so.
        if out.queue != Queue::Standard && !out.requires_approval {
            out.requires_approval = true;
        }
        if out.requires_approval && out.approver_role.is_none() {
            out.approver_role = Some("dispatch_manager".into());
        }
        out
    }
}

impl RoutingFacts {
    /// The facts as the table reads them: the variables zen makes of their JSON
    /// (`Variable::from(&serde_json::to_value(facts))`), built without the JSON in between,
    /// which cost as much as evaluating the table. A number JSON cannot hold (NaN, infinite) is
    /// null there, and one outside the decimals' range is null in zen.
    pub fn to_variable(&self) -> Variable {
        let number = |x: f64| {
            if x.is_finite() {
                Decimal::from_f64(x).map_or(Variable::Null, Variable::Number)
            } else {
                Variable::Null
            }
        };
        let text = |s: Option<&str>| s.map_or(Variable::Null, |s| Variable::String(s.into()));
        let mut map = VariableMap::with_capacity(11);
        for (key, value) in [
            ("risk_band", Variable::String(self.risk_band.into())),
            ("delay_risk", number(self.delay_risk)),
            ("source", Variable::String(self.source.into())),
            ("customer_tier", text(self.customer_tier.as_deref())),
            ("priority", text(self.priority.as_deref())),
            (
                "order_value",
                self.order_value.map_or(Variable::Null, number),
            ),
            ("hazardous", Variable::Bool(self.hazardous)),
            (
                "temperature_controlled",
                Variable::Bool(self.temperature_controlled),
            ),
            ("slack_days", number(self.slack_days)),
            ("same_day", Variable::Bool(self.same_day)),
            ("credit_hold", Variable::Bool(self.credit_hold)),
        ] {
            map.insert(Variable::key(key), value);
        }
        Variable::from_object(map)
    }
}

/// Evaluates the routing table on one shipment's facts.
pub fn evaluate(table: &DecisionTable, facts: &RoutingFacts) -> Result<Routing, PolicyError> {
    let value = table
        .evaluate_variable(facts.to_variable())
        .map_err(|e| PolicyError::Evaluation(format!("routing table: {e}")))?;
    // A collect table answers a list of rows; a first-hit table one row or nothing.
    let rows: Vec<Row> = match value {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(a) => a
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|e| PolicyError::Evaluation(format!("routing table row: {e}")))?,
        serde_json::Value::Object(o) if o.is_empty() => Vec::new(),
        other => vec![serde_json::from_value(other)
            .map_err(|e| PolicyError::Evaluation(format!("routing table row: {e}")))?],
    };
    Ok(Routing::combine(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routing table answers the same with its literal cells taken past zen's VM as with
    /// every cell run in it, on facts that reach every row (and its edges: missing tiers,
    /// unknown bands, values at the thresholds).
    #[test]
    fn shortcuts_answer_as_zen_does_on_the_committed_table() {
        use rand::{Rng, SeedableRng};
        let text = include_str!("../../policies/routing.json");
        let fast = DecisionTable::parse(text).unwrap();
        let plain = DecisionTable::parse_without_shortcuts(text).unwrap();
        assert!(fast.shortcuts_taken() > 50, "{}", fast.shortcuts_taken());
        assert_eq!(plain.shortcuts_taken(), 0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pick = |rng: &mut rand::rngs::StdRng, options: &[&'static str]| {
            options[rng.gen_range(0..options.len())]
        };
        let text_of = |rng: &mut rand::rngs::StdRng, options: &[&str]| {
            let s = options[rng.gen_range(0..options.len())];
            (!s.is_empty()).then(|| s.to_string())
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            let facts = RoutingFacts {
                risk_band: pick(&mut rng, &["low", "medium", "high", "critical", "High"]),
                delay_risk: rng.gen(),
                source: pick(&mut rng, &["model", "rules"]),
                customer_tier: text_of(&mut rng, &["", "standard", "premium", "gold", "Gold"]),
                priority: text_of(&mut rng, &["", "0", "1", "2"]),
                order_value: [None, Some(9_999.99), Some(10_000.0), Some(50_000.0)]
                    [rng.gen_range(0..4)]
                .or_else(|| rng.gen_bool(0.5).then(|| rng.gen_range(0.0..80_000.0))),
                hazardous: rng.gen_bool(0.2),
                temperature_controlled: rng.gen_bool(0.2),
                slack_days: [-0.5, 0.0, 1.0, rng.gen_range(-2.0..5.0)][rng.gen_range(0..4)],
                same_day: rng.gen_bool(0.2),
                credit_hold: rng.gen_bool(0.1),
            };
            let a = evaluate(&fast, &facts).unwrap();
            let b = evaluate(&plain, &facts).unwrap();
            assert_eq!(a, b, "{facts:?}");
            seen.extend(a.matched_rules);
        }
        assert_eq!(
            seen.len(),
            fast.rule_ids().count(),
            "rows never matched: {seen:?}"
        );
    }

    /// The variables built directly are the ones zen makes of the facts' JSON, whatever the
    /// values: missing, NaN, infinite, out of the decimals' range, negative, fractional.
    #[test]
    fn facts_become_the_variables_zen_makes_of_their_json() {
        let mut cases = vec![RoutingFacts::probe(), RoutingFacts::probe_extreme()];
        for (order_value, slack_days, delay_risk) in [
            (None, f64::NAN, 0.0),
            (Some(f64::INFINITY), -0.25, 1.0),
            (Some(1e40), f64::NEG_INFINITY, 0.123_456_789_012_345_67),
            (Some(-3.5), 1e-30, f64::NAN),
            (Some(2_671.47), 3.2541666666666664, 0.156262),
        ] {
            cases.push(RoutingFacts {
                order_value,
                slack_days,
                delay_risk,
                customer_tier: None,
                priority: Some("urgent \"quoted\"".into()),
                same_day: true,
                ..RoutingFacts::probe()
            });
        }
        for facts in cases {
            let json = serde_json::to_value(&facts).unwrap();
            assert_eq!(facts.to_variable(), Variable::from(&json), "{json}");
        }
    }
}
