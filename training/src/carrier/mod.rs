//! Carrier recommendation: scorecards from delivered history, a cost model, the ranking of
//! candidates under a policy, and the replay that evaluates it on a validation period.

pub mod cost;
pub mod rank;
pub mod rates;
pub mod replay;
pub mod scorecard;

pub use cost::CostModel;
pub use rank::{rank, Candidate, RankedCarrier, RankingPolicy, Recommendation, Shipment};
pub use rates::{RateProfile, RateTable};
pub use scorecard::{CardView, ScorecardConfig, Scorecards};

use serde::{Deserialize, Serialize};

/// `carriers.json` in a model artifact: what recommendation needs besides the delay model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierArtifact {
    pub scorecards: Scorecards,
    pub cost: Option<CostModel>,
    /// The rate table given to `train --rates`: candidates, prices and transit days.
    #[serde(default)]
    pub rates: Option<RateTable>,
}

impl CarrierArtifact {
    /// Whether the scorecards or the rate table know `carrier`.
    pub fn knows(&self, carrier: &str) -> bool {
        self.scorecards.knows(carrier) || self.rates.as_ref().is_some_and(|r| r.knows(carrier))
    }

    /// The carriers to rank for a lane: those with a rate on it, then those seen delivering it.
    pub fn candidates(&self, warehouse: &str, destination: &str) -> Vec<String> {
        candidates(
            self.rates.as_ref(),
            &self.scorecards,
            warehouse,
            destination,
        )
    }

    /// Price and transit days of a carrier for a shipment.
    pub fn price(
        &self,
        carrier: &str,
        warehouse: &str,
        destination: &str,
        weight_kg: Option<f64>,
    ) -> (Option<f64>, Option<f64>) {
        price(
            self.rates.as_ref(),
            self.cost.as_ref(),
            carrier,
            warehouse,
            destination,
            weight_kg,
        )
    }
}

/// Carriers with a rate on the lane, then those the scorecards saw delivering it.
pub fn candidates(
    rates: Option<&RateTable>,
    cards: &Scorecards,
    warehouse: &str,
    destination: &str,
) -> Vec<String> {
    let mut out: Vec<String> = rates
        .map(|r| r.carriers(warehouse, destination))
        .unwrap_or_default()
        .into_iter()
        .map(str::to_string)
        .collect();
    for c in cards.carriers_on_lane(warehouse, destination) {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    out
}

/// The rate table's quote (cost, transit days), else the cost learned from history.
pub fn price(
    rates: Option<&RateTable>,
    cost: Option<&CostModel>,
    carrier: &str,
    warehouse: &str,
    destination: &str,
    weight_kg: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    if let Some(q) = rates.and_then(|r| r.quote(carrier, warehouse, destination, weight_kg)) {
        return (Some(q.cost), q.transit_days);
    }
    let cost = cost.and_then(|c| c.expected(carrier, warehouse, destination, weight_kg));
    (cost, None)
}
