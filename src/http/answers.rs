//! The score answer's wire contract, the one dispatch workflows are built on: field names do
//! not change without a new API version. Built from the scorer's [`Decision`].

use serde::{Deserialize, Serialize};

use crate::policy::Queue;
use crate::scoring::{CarrierOption, Decision, Factor, RiskBand, Source};

/// One feature's push on the risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopFactor {
    pub feature: String,
    /// The shipment's value (a category name for categorical features).
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// In probability-scale units; positive raises the risk.
    pub contribution: f64,
    /// The factor in plain words ("the promise needs 640 km a day: raises the risk").
    pub text: String,
}

impl From<Factor> for TopFactor {
    fn from(f: Factor) -> Self {
        TopFactor {
            text: crate::scoring::glossary::describe(&f.feature, &f.value, f.contribution),
            feature: f.feature,
            value: f.value,
            contribution: f.contribution,
        }
    }
}

/// A carrier as ranked for the shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CarrierChoice {
    pub carrier: String,
    pub on_time_probability: f64,
    /// In the history's currency; null when no cost is known for the lane.
    pub expected_cost: Option<f64>,
    pub reasons: Vec<String>,
}

impl From<CarrierOption> for CarrierChoice {
    fn from(c: CarrierOption) -> Self {
        CarrierChoice {
            carrier: c.carrier,
            on_time_probability: c.on_time_probability,
            expected_cost: c.expected_cost,
            reasons: c.reasons,
        }
    }
}

/// Who must approve, and why; and the approval that waits for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    /// The approval this score opened or updated (`GET /v1/approvals/{id}`); null when no
    /// approval is required.
    pub id: Option<String>,
    /// `pending` or `escalated` when the score was recorded; null when none is required.
    pub state: Option<String>,
    /// Null when no approval is required.
    pub approver_role: Option<String>,
    pub reason_codes: Vec<String>,
}

/// The answer to one shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreResponse {
    pub shipment_id: String,
    /// Probability of missing the promised date, 0 to 1.
    pub delay_risk: f64,
    pub risk_band: RiskBand,
    pub top_factors: Vec<TopFactor>,
    /// The carrier the risk was scored for: the booked one, else the recommended one.
    pub scored_carrier: Option<String>,
    pub recommended_carrier: Option<CarrierChoice>,
    pub alternatives: Vec<CarrierChoice>,
    /// 0-100: where the delivery sits in the dispatch queue (risk plus the table's points).
    pub priority_score: f64,
    pub queue: Queue,
    pub requires_approval: bool,
    pub approval: Approval,
    pub source: Source,
    pub model_version: Option<String>,
    pub policy_version: String,
    /// True when any part fell back to rules (no model, or a model that failed).
    pub degraded: bool,
    pub matched_rules: Vec<String>,
    pub score_id: String,
}

impl From<Decision> for ScoreResponse {
    fn from(d: Decision) -> Self {
        ScoreResponse {
            shipment_id: d.shipment.id,
            delay_risk: d.delay_risk,
            risk_band: d.risk_band,
            top_factors: d.top_factors.into_iter().map(TopFactor::from).collect(),
            scored_carrier: d.scored_carrier,
            recommended_carrier: d.recommended_carrier.map(CarrierChoice::from),
            alternatives: d
                .alternatives
                .into_iter()
                .map(CarrierChoice::from)
                .collect(),
            priority_score: d.priority_score,
            queue: d.queue,
            requires_approval: d.approval.required,
            approval: Approval {
                id: d.ticket.as_ref().map(|t| t.id.clone()),
                state: d.ticket.map(|t| t.state),
                approver_role: d.approval.approver_role,
                reason_codes: d.approval.reason_codes,
            },
            source: d.source,
            model_version: d.model_version,
            policy_version: d.policy_version,
            degraded: d.degraded,
            matched_rules: d.matched_rules,
            score_id: d.score_id,
        }
    }
}
