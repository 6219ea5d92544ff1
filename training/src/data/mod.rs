//! Shipment history in: the data contract, import profiles, parsing and validation.

mod chunks;
mod columns;
pub mod contract;
mod convert;
pub mod dates;
pub mod load;
pub mod profile;
pub mod sink;
pub mod spill;
pub mod stream;
pub mod table;

pub use chunks::is_parquet;
pub use load::{load_history, BadRowLimit, LoadOptions, LoadReport, RejectedRow};
pub use profile::ImportProfile;
pub use table::{ShipmentTable, Timestamp};
