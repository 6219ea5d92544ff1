//! Shipment history in: the data contract, import profiles, parsing and validation.

pub mod contract;
pub mod dates;
pub mod load;
pub mod profile;
pub mod table;

pub use load::{load_history, BadRowLimit, LoadReport, RejectedRow};
pub use profile::ImportProfile;
pub use table::{ShipmentTable, Timestamp};
