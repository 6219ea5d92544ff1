//! dispatch-risk: delay-risk scoring, carrier recommendation and exception triage for dispatch
//! teams that run Odoo. This crate holds the command line (and, in later stages, the HTTP
//! service, storage and policies); the models live in the `dispatch-risk-training` crate.

pub mod cli;
