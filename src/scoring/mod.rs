//! Scoring shipments for dispatch: the request contract, the checked shipment, the scorer that
//! joins the delay model, carrier ranking and the policy tables, and the [`Decision`] it makes.
//! Nothing here knows HTTP; the handlers and the benchmarks call it.

pub mod decision;
pub mod glossary;
pub mod request;
pub mod scorer;

pub use decision::{
    ApprovalNeed, CarrierOption, Decision, Factor, RiskBand, ScoredShipment, Source,
};
pub use request::{FieldError, Shipment, ShipmentRequest};
pub use scorer::{new_score_id, score};
