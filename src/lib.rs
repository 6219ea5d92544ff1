//! dispatch-risk: delay-risk scoring, carrier recommendation and exception triage for dispatch
//! teams that run Odoo. This crate holds the command line and the HTTP service; the models live
//! in the `dispatch-risk-training` crate.

pub mod approvals;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod scoring;
pub mod server;
pub mod serving;
pub mod startup;
pub mod state;
pub mod store;
pub mod workers;

pub use config::{Secret, ServeConfig};
pub use http::router;
pub use startup::Application;
