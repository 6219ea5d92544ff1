//! The exception taxonomy: a fixed set of category names (the classifier's labels) whose
//! meanings, owners, severities and keywords each company sets in a TOML file.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The category names, in the order the built-in taxonomy lists them.
pub const CATEGORIES: [&str; 14] = [
    "address_issue",
    "recipient_unavailable",
    "refused",
    "damaged",
    "lost",
    "weather",
    "carrier_delay",
    "vehicle_issue",
    "customs_documents",
    "stock_shortage",
    "warehouse_delay",
    "payment_hold",
    "reschedule_request",
    "other",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub name: String,
    pub meaning: String,
    pub owner: String,
    pub severity: Severity,
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// Every category of [`CATEGORIES`] exactly once, in the file's order (which breaks ties
/// between the keyword rules' scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    /// Answers less confident than this are flagged `needs_review`.
    #[serde(default = "default_review_threshold")]
    pub review_threshold: f64,
    #[serde(rename = "category")]
    pub categories: Vec<Category>,
}

fn default_review_threshold() -> f64 {
    0.5
}

impl Default for Taxonomy {
    fn default() -> Self {
        let text = include_str!("../../../policies/exception_taxonomy.toml");
        Taxonomy::from_toml(text).expect("the built-in taxonomy is valid")
    }
}

impl Taxonomy {
    /// Parses and checks a taxonomy file.
    pub fn from_toml(text: &str) -> Result<Self> {
        let taxonomy: Taxonomy =
            toml::from_str(text).map_err(|e| Error::param("exception taxonomy", e.to_string()))?;
        taxonomy.check()?;
        Ok(taxonomy)
    }

    fn check(&self) -> Result<()> {
        if !(self.review_threshold >= 0.0 && self.review_threshold <= 1.0) {
            return Err(Error::param(
                "exception taxonomy",
                format!(
                    "review_threshold {} is not between 0 and 1",
                    self.review_threshold
                ),
            ));
        }
        for (i, c) in self.categories.iter().enumerate() {
            if !CATEGORIES.contains(&c.name.as_str()) {
                return Err(Error::param(
                    "exception taxonomy",
                    format!(
                        "unknown category `{}`; the categories are {}",
                        c.name,
                        CATEGORIES.join(", ")
                    ),
                ));
            }
            if self.categories[..i].iter().any(|d| d.name == c.name) {
                return Err(Error::param(
                    "exception taxonomy",
                    format!("category `{}` is listed twice", c.name),
                ));
            }
            if c.owner.trim().is_empty() {
                return Err(Error::param(
                    "exception taxonomy",
                    format!("category `{}` has no owner", c.name),
                ));
            }
            if let Some(k) = c
                .keywords
                .iter()
                .find(|k| k.trim().trim_end_matches('*').is_empty())
            {
                return Err(Error::param(
                    "exception taxonomy",
                    format!("category `{}` has an empty keyword `{k}`", c.name),
                ));
            }
        }
        if let Some(missing) = CATEGORIES
            .iter()
            .find(|n| !self.categories.iter().any(|c| c.name == **n))
        {
            return Err(Error::param(
                "exception taxonomy",
                format!("category `{missing}` is missing"),
            ));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_taxonomy_lists_every_category_with_its_default_owner() {
        let t = Taxonomy::default();
        assert_eq!(t.categories.len(), CATEGORIES.len());
        assert_eq!(t.get("lost").unwrap().owner, "carrier_claims");
        assert_eq!(t.get("payment_hold").unwrap().owner, "finance");
        assert_eq!(t.get("customs_documents").unwrap().owner, "compliance");
    }

    #[test]
    fn edits_are_checked() {
        let text = include_str!("../../../policies/exception_taxonomy.toml");
        let err = |t: &str| Taxonomy::from_toml(t).unwrap_err().to_string();
        // Owners and severities may change.
        let edited = text.replacen("owner = \"sales\"", "owner = \"key_accounts\"", 1);
        assert_eq!(
            Taxonomy::from_toml(&edited)
                .unwrap()
                .get("refused")
                .unwrap()
                .owner,
            "key_accounts"
        );
        assert!(
            err(&text.replacen("name = \"lost\"", "name = \"misplaced\"", 1))
                .contains("unknown category `misplaced`")
        );
        assert!(
            err(&text.replacen("name = \"lost\"", "name = \"damaged\"", 1))
                .contains("`damaged` is listed twice")
        );
        assert!(
            err(&text.replacen("severity = \"high\"", "severity = \"urgent\"", 1))
                .contains("urgent")
        );
        assert!(
            err(&text.replace("review_threshold = 0.5", "review_threshold = 1.5"))
                .contains("review_threshold 1.5")
        );
        let without_other = &text[..text.rfind("[[category]]").unwrap()];
        assert!(err(without_other).contains("`other` is missing"));
    }
}
