//! Import profiles: how a real export maps onto the data contract without being edited.
//!
//! A profile is TOML. It renames source columns to contract names, lists date formats and the
//! tokens that mean "no value", says which numeric columns may hold text (read as missing rather
//! than rejecting the row), fills defaults, derives columns the export lacks (the decision time,
//! typically) and drops columns that must not become features.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// A parsed import profile. `ImportProfile::default()` reads files that already follow the contract.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportProfile {
    /// A human name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Contract (or extra) column name = source column name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub dates: DateRules,
    #[serde(default)]
    pub numbers: NumberRules,
    /// Column = value used when the cell is empty.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// Derived columns, by name.
    #[serde(default)]
    pub derive: BTreeMap<String, Derivation>,
    /// Source columns that are dropped (identifiers, outcomes recorded after dispatch, free text).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Extra date columns turned into "days before the decision time" features.
    #[serde(default)]
    pub extra_dates: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRules {
    /// chrono formats tried in order before the built-in ISO 8601 ones.
    #[serde(default)]
    pub formats: Vec<String>,
    /// Cell values that mean "no date" (e.g. `Date Not Captured`).
    #[serde(default)]
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRules {
    /// Numeric columns whose non-numeric cells are read as missing instead of rejecting the row.
    #[serde(default)]
    pub lenient: Vec<String>,
    /// Cell values that mean "no value" in any column.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// How a derived column is computed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derivation {
    /// Take the first non-empty of these columns (after renaming).
    #[serde(default)]
    pub first_of: Vec<String>,
    /// When all of `first_of` are empty: a date column shifted by a number of days.
    #[serde(default)]
    pub fallback: Option<DateOffset>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateOffset {
    pub from: String,
    pub offset_days: f64,
}

impl ImportProfile {
    /// Reads and checks a profile file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text)
            .map_err(|e| Error::Input(format!("import profile {}: {e}", path.display())))
    }

    /// Parses a profile from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let profile: ImportProfile =
            toml::from_str(text).map_err(|e| Error::Input(format!("invalid TOML: {e}")))?;
        for (name, d) in &profile.derive {
            if d.first_of.is_empty() && d.fallback.is_none() {
                return Err(Error::Input(format!(
                    "derived column `{name}` needs `first_of` or `fallback`"
                )));
            }
        }
        Ok(profile)
    }

    /// Whether a missing-value token is declared for dates or numbers.
    pub fn is_missing_token(&self, value: &str) -> bool {
        self.dates.missing.iter().any(|m| m == value)
            || self.numbers.missing.iter().any(|m| m == value)
    }
}
