//! What scoring decided for one shipment, before any wire format: the risk and its reasons, the
//! carriers, the queue, whether a person must approve, and the facts of the shipment an outcome
//! or an approval is later joined to. HTTP answers and store records are both built from it.

use dispatch_risk_training::carrier::RankedCarrier;
use dispatch_risk_training::data::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::Queue;

/// One decision of the scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Unique and time-ordered ([`super::new_score_id`]).
    pub score_id: String,
    pub shipment: ScoredShipment,
    /// Probability of missing the promised date, 0 to 1 (to six decimals).
    pub delay_risk: f64,
    pub risk_band: RiskBand,
    pub top_factors: Vec<Factor>,
    /// The carrier the risk was scored for: the booked one, else the recommended one.
    pub scored_carrier: Option<String>,
    pub recommended_carrier: Option<CarrierOption>,
    pub alternatives: Vec<CarrierOption>,
    /// 0-100: where the delivery sits in the dispatch queue (to one decimal).
    pub priority_score: f64,
    pub queue: Queue,
    pub approval: ApprovalNeed,
    pub source: Source,
    pub model_version: Option<String>,
    pub policy_version: String,
    /// True when any part fell back to rules (no model, or a model that failed).
    pub degraded: bool,
    pub matched_rules: Vec<String>,
    /// The approval this decision opened or updated, once planned ([`crate::approvals`]).
    pub ticket: Option<crate::approvals::Ticket>,
}

/// The shipment's facts that later steps join to its decision: an outcome's lateness and lane,
/// an approval's subject.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredShipment {
    pub id: String,
    pub warehouse: String,
    pub destination: String,
    pub scheduled: Timestamp,
    pub deadline: Timestamp,
    pub customer_tier: Option<String>,
    pub order_value: Option<f64>,
}

/// One feature's push on the risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub feature: String,
    /// The shipment's value (a category name for categorical features).
    pub value: serde_json::Value,
    /// In probability-scale units; positive raises the risk.
    pub contribution: f64,
}

/// A carrier as ranked for the shipment, rounded as it is reported.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierOption {
    pub carrier: String,
    pub on_time_probability: f64,
    /// In the history's currency; `None` when no cost is known for the lane.
    pub expected_cost: Option<f64>,
    pub reasons: Vec<String>,
}

impl From<RankedCarrier> for CarrierOption {
    fn from(r: RankedCarrier) -> Self {
        CarrierOption {
            carrier: r.carrier,
            on_time_probability: (r.on_time_probability * 1e4).round() / 1e4,
            expected_cost: r.expected_cost.map(|c| (c * 100.0).round() / 100.0),
            reasons: r.reasons,
        }
    }
}

/// Whether a person must approve the dispatch, which role, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalNeed {
    pub required: bool,
    /// `None` when no approval is required.
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
