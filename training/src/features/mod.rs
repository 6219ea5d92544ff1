//! Features shared by training and serving: calendar and lead time, numbers, category codes and
//! time-aware history. One code path computes them everywhere, so the two cannot drift apart.

pub mod history;
pub mod schema;

pub use history::{HistoryConfig, HistoryKey, HistoryState};
pub use schema::{Encoder, FeatureMatrix, FeatureSchema, Rows, SchemaConfig, Vocabulary};
