//! The labelled exception-note corpus (`data/notes/{train,valid}.csv`: `text`, `category`,
//! `voice`) and the classification metrics every tier is judged by.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::taxonomy::CATEGORIES;
use crate::data::load::read_frame;
use crate::error::{Error, Result};

/// One labelled note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledNote {
    pub text: String,
    pub category: String,
    /// Who wrote it: `dispatcher`, `carrier` or `customer` (free text; used to hold a voice
    /// out when measuring generalization).
    pub voice: String,
}

/// Reads a corpus file, refusing rows with no text or an unknown category by row number.
pub fn load_notes(path: &Path) -> Result<Vec<LabelledNote>> {
    let df = read_frame(path)?;
    let column = |name: &str| -> Result<Vec<Option<String>>> {
        let col = df
            .column(name)
            .map_err(|_| Error::Input(format!("{}: no column `{name}`", path.display())))?;
        Ok(col
            .str()
            .map_err(|source| Error::Polars {
                context: format!("reading {}", path.display()),
                source,
            })?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let (texts, categories) = (column("text")?, column("category")?);
    let voices = column("voice").unwrap_or_else(|_| vec![None; texts.len()]);
    let mut notes = Vec::with_capacity(texts.len());
    for (i, ((text, category), voice)) in texts.into_iter().zip(categories).zip(voices).enumerate()
    {
        let row = i + 1;
        let text = text
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| Error::Input(format!("{} row {row}: empty `text`", path.display())))?;
        let category = category.unwrap_or_default();
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(Error::Input(format!(
                "{} row {row}: unknown category `{category}`",
                path.display()
            )));
        }
        notes.push(LabelledNote {
            text,
            category,
            voice: voice.unwrap_or_default(),
        });
    }
    Ok(notes)
}

/// Precision and recall of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub category: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// How a classifier did on labelled notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub n: usize,
    pub accuracy: f64,
    /// The mean F1 over the categories present in the labels or the predictions.
    pub macro_f1: f64,
    pub per_class: Vec<ClassScores>,
    /// `confusion[true][predicted]`, in [`CATEGORIES`] order.
    pub confusion: Vec<Vec<usize>>,
}

impl ClassMetrics {
    /// Scores `predicted` categories against the notes' labels.
    pub fn of(notes: &[LabelledNote], predicted: &[String]) -> Self {
        let index = |c: &str| CATEGORIES.iter().position(|k| *k == c);
        let k = CATEGORIES.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (note, p) in notes.iter().zip(predicted) {
            if let (Some(t), Some(p)) = (index(&note.category), index(p)) {
                confusion[t][p] += 1;
            }
        }
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let mut per_class = Vec::new();
        for (i, name) in CATEGORIES.iter().enumerate() {
            let support: usize = confusion[i].iter().sum();
            let predicted_as: usize = (0..k).map(|t| confusion[t][i]).sum();
            if support == 0 && predicted_as == 0 {
                continue;
            }
            let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let (precision, recall) = (
                ratio(confusion[i][i], predicted_as),
                ratio(confusion[i][i], support),
            );
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            per_class.push(ClassScores {
                category: name.to_string(),
                precision,
                recall,
                f1,
                support,
            });
        }
        let n = notes.len().min(predicted.len());
        ClassMetrics {
            n,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / per_class.len().max(1) as f64,
            per_class,
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(category: &str) -> LabelledNote {
        LabelledNote {
            text: "x".into(),
            category: category.into(),
            voice: String::new(),
        }
    }

    #[test]
    fn metrics_follow_their_definitions() {
        let notes = [note("lost"), note("lost"), note("damaged"), note("weather")];
        let predicted = ["lost", "damaged", "damaged", "weather"].map(String::from);
        let m = ClassMetrics::of(&notes, &predicted);
        assert_eq!(m.accuracy, 0.75);
        let lost = m.per_class.iter().find(|c| c.category == "lost").unwrap();
        assert_eq!((lost.precision, lost.recall, lost.support), (1.0, 0.5, 2));
        let damaged = m
            .per_class
            .iter()
            .find(|c| c.category == "damaged")
            .unwrap();
        assert_eq!((damaged.precision, damaged.recall), (0.5, 1.0));
        // F1: lost 2/3, damaged 2/3, weather 1.
        assert!((m.macro_f1 - (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        let (l, d) = (4, 3);
        assert_eq!(m.confusion[l][d], 1);
    }
}
