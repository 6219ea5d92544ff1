//! Exception notes: the taxonomy they are sorted into (categories, owners, severities, read from
//! `policies/exception_taxonomy.toml`) and the deterministic keyword rules that classify a note
//! when no text model is loaded. The rules also give carrier scorecards their exception mix.
//! The labelled corpus in `data/notes/` and the metrics every classifier is judged by live here.

mod bag;
mod bag_fit;
mod corpus;
mod ngrams;
mod rules;
mod taxonomy;

use serde::{Deserialize, Serialize};

pub use bag::{BagConfig, NoteBag};
pub use bag_fit::{fit_bag, BagTrainConfig};
pub use corpus::{load_notes, ClassMetrics, ClassScores, LabelledNote};
pub use ngrams::NgramConfig;
pub use rules::KeywordRules;
pub use taxonomy::{Category, Severity, Taxonomy, CATEGORIES};

/// Which part of the system classified a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierSource {
    /// The keyword rules: deterministic, used when no model loads; their confidence is a share
    /// of keyword evidence, not a calibrated probability.
    Rules,
}

/// A note's category, who owns it, how urgent it is, and how sure the classifier is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub category: String,
    pub owner: String,
    pub severity: Severity,
    pub confidence: f64,
    pub source: ClassifierSource,
    /// The keywords that decided it (rules only).
    pub matched: Vec<String>,
}
