//! Exception notes: the taxonomy they are sorted into (categories, owners, severities, read from
//! `policies/exception_taxonomy.toml`) and the deterministic keyword rules that classify a note
//! when no text model is loaded. The rules also give carrier scorecards their exception mix.
//! The labelled corpus in `data/notes/` and the metrics every classifier is judged by live here.
//!
//! Three tiers answer, in order of preference: a pretrained sentence encoder with a trained head
//! (when its weights were fetched), the small n-gram model committed with the default models,
//! and the keyword rules. Every answer names its tier.

mod bag;
mod bag_fit;
mod calibration;
mod classifier;
mod corpus;
mod encoder;
mod loading;
mod ngrams;
mod rules;
mod taxonomy;
mod text;
mod training;

use serde::{Deserialize, Serialize};

pub use bag::{BagConfig, NoteBag};
pub use bag_fit::{fit_bag, BagTrainConfig};
pub use calibration::{expected_calibration_error, Temperature};
pub use classifier::{Calibrated, ExceptionClassifier};
pub use corpus::{load_notes, ClassMetrics, ClassScores, LabelledNote};
pub use encoder::{EncoderConfig, SentenceEncoder};
pub use loading::{encoders_dir, load_classifier, read_encoder, LoadedClassifier, DEFAULT_ENCODER};
pub use ngrams::NgramConfig;
pub use rules::KeywordRules;
pub use taxonomy::{Category, Severity, Taxonomy, CATEGORIES};
pub use text::{NoteError, NoteText, MAX_CHARS};
pub use training::{
    files, read_model, train_notes, EncoderRef, NotesData, NotesMetrics, NotesTrainConfig,
    StoredModel, TierMetrics, TrainedNotes,
};

/// Which tier answered, in the order of preference at run time (the best tier compares least).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The pretrained sentence encoder with its trained head.
    Encoder,
    /// The small n-gram model committed with the default models.
    SmallModel,
    /// The keyword rules: deterministic, used when no model loads; their confidence is a share
    /// of keyword evidence, not a calibrated probability.
    Rules,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Encoder => "encoder",
            Tier::SmallModel => "small_model",
            Tier::Rules => "rules",
        }
    }
}

/// A runner-up category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub category: String,
    pub confidence: f64,
}

/// A note's category, who owns it, how urgent it is, how sure the classifier is, and which
/// tier answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub category: String,
    /// Calibrated probability for the model tiers; for rules, the share of keyword evidence.
    pub confidence: f64,
    /// The next two categories, most likely first.
    pub alternatives: Vec<Alternative>,
    pub owner: String,
    pub severity: Severity,
    pub tier: Tier,
    /// Confidence is under the taxonomy's `review_threshold`: a person should check.
    pub needs_review: bool,
    /// The note was longer than [`MAX_CHARS`] characters and only its start was read.
    pub truncated: bool,
    /// The keywords that decided it (rules only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched: Vec<String>,
}
