//! Scoring shipments for dispatch: the request contract, the checked shipment, the scorer that
//! joins the delay model, carrier ranking and the policy tables, and the answer's contract.
//! Nothing here knows HTTP; the handlers and the benchmarks call it.

pub mod request;
pub mod response;
pub mod scorer;

pub use request::{FieldError, Shipment, ShipmentRequest};
pub use response::{CarrierChoice, RiskBand, ScoreResponse, Source};
pub use scorer::{new_score_id, score};
