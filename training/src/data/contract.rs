//! The shipment-history data contract: the column names (Odoo `stock.picking` where Odoo has
//! one), which of them are required, and which are outcomes that must never become features.

/// Required columns, after the import profile has renamed the source's columns.
pub const REQUIRED: [&str; 6] = [
    "shipment_id",
    "date_deadline",
    "delivered_at",
    "carrier",
    "warehouse",
    "destination",
];

/// Optional contract columns read as categories.
pub const CATEGORICAL: [&str; 5] = [
    "customer_id",
    "customer_tier",
    "priority",
    "transport_mode",
    "service_level",
];

/// Optional contract columns read as numbers.
pub const NUMERIC: [&str; 6] = [
    "order_value",
    "weight_kg",
    "volume_m3",
    "package_count",
    "distance_km",
    "shipping_cost",
];

/// Optional contract columns read as yes/no flags.
pub const FLAGS: [&str; 2] = ["hazardous", "temperature_controlled"];

/// Columns observed after dispatch: outcomes, never features.
pub const OUTCOMES: [&str; 2] = ["delivered_at", "shipped_at"];

/// Free-text exception notes about a delivery (dispatcher notes, carrier messages, customer
/// emails). Written while or after it travels, so never a feature: carrier scorecards count
/// them by category as their exception mix.
pub const NOTES: &str = "notes";

/// The decision time column; derived by the profile when the export lacks it.
pub const DECISION_TIME: &str = "scheduled_date";

/// Whether a column name belongs to the contract (as opposed to an extra feature).
pub fn is_contract_column(name: &str) -> bool {
    REQUIRED.contains(&name)
        || CATEGORICAL.contains(&name)
        || NUMERIC.contains(&name)
        || FLAGS.contains(&name)
        || OUTCOMES.contains(&name)
        || name == DECISION_TIME
        || name == NOTES
}
