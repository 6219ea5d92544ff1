//! Carrier recommendation: scorecards from delivered history, a cost model, the ranking of
//! candidates under a policy, and the replay that evaluates it on a validation period.

pub mod cost;
pub mod rank;
pub mod replay;
pub mod scorecard;

pub use cost::CostModel;
pub use rank::{rank, Candidate, RankedCarrier, RankingPolicy, Recommendation, Shipment};
pub use scorecard::{CardView, ScorecardConfig, Scorecards};

use serde::{Deserialize, Serialize};

/// `carriers.json` in a model artifact: what recommendation needs besides the delay model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierArtifact {
    pub scorecards: Scorecards,
    pub cost: Option<CostModel>,
}
