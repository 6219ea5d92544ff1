//! What a score answers: the contract dispatch workflows are built on. Field names do not
//! change without a new API version.

use dispatch_risk_training::carrier::RankedCarrier;
use serde::{Deserialize, Serialize};

use crate::policy::Queue;

/// One feature's push on the risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopFactor {
    pub feature: String,
    /// The shipment's value (a category name for categorical features).
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// In probability-scale units; positive raises the risk.
    pub contribution: f64,
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

impl From<RankedCarrier> for CarrierChoice {
    fn from(r: RankedCarrier) -> Self {
        CarrierChoice {
            carrier: r.carrier,
            on_time_probability: (r.on_time_probability * 1e4).round() / 1e4,
            expected_cost: r.expected_cost.map(|c| (c * 100.0).round() / 100.0),
            reasons: r.reasons,
        }
    }
}

/// Who must approve, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    /// Null when no approval is required.
    pub approver_role: Option<String>,
    pub reason_codes: Vec<String>,
}

/// Where the risk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Model,
    Rules,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Model => "model",
            Source::Rules => "rules",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    Low,
    Medium,
    High,
    Critical,
}

impl From<dispatch_risk_training::model::RiskBand> for RiskBand {
    fn from(b: dispatch_risk_training::model::RiskBand) -> Self {
        use dispatch_risk_training::model::RiskBand as B;
        match b {
            B::Low => RiskBand::Low,
            B::Medium => RiskBand::Medium,
            B::High => RiskBand::High,
            B::Critical => RiskBand::Critical,
        }
    }
}

impl RiskBand {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
            RiskBand::Critical => "critical",
        }
    }
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
