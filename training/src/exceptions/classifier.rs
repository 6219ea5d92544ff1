//! The exception classifier as the CLI and the service use it: the tiers that loaded, tried in
//! order of preference, each answer carrying category, calibrated confidence, the next two
//! categories, owner, severity, the tier that answered and whether a person should review it.
//! A tier whose inference fails hands the notes to the next one: classification never stops.

use candle_core::Tensor;

use super::bag::NoteBag;
use super::calibration::Temperature;
use super::encoder::SentenceEncoder;
use super::rules::KeywordRules;
use super::taxonomy::Taxonomy;
use super::text::NoteText;
use super::{Alternative, Answer, Tier};

/// A trained model with the temperature fitted for it on held-out notes.
pub struct Calibrated {
    pub model: NoteBag,
    pub temperature: Temperature,
}

impl Calibrated {
    /// Raw logits of texts, with their sentence vectors when the model takes them.
    pub fn logits(
        &self,
        texts: &[&str],
        dense: Option<&Tensor>,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.model.config.ngrams.ids(t))
            .collect();
        self.model.forward(&ids, dense)?.to_vec2()
    }
}

pub struct ExceptionClassifier {
    rules: KeywordRules,
    small: Option<Calibrated>,
    encoder: Option<(SentenceEncoder, Calibrated)>,
}

impl ExceptionClassifier {
    /// The rules alone: what answers when no model loads.
    pub fn new(taxonomy: Taxonomy) -> Self {
        ExceptionClassifier {
            rules: KeywordRules::new(taxonomy),
            small: None,
            encoder: None,
        }
    }

    pub fn with_small_model(mut self, model: Calibrated) -> Self {
        self.small = Some(model);
        self
    }

    pub fn with_encoder(mut self, encoder: SentenceEncoder, head: Calibrated) -> Self {
        self.encoder = Some((encoder, head));
        self
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        self.rules.taxonomy()
    }

    /// The preferred tier that loaded.
    pub fn tier(&self) -> Tier {
        if self.encoder.is_some() {
            Tier::Encoder
        } else if self.small.is_some() {
            Tier::SmallModel
        } else {
            Tier::Rules
        }
    }

    pub fn classify_one(&self, note: &NoteText) -> Answer {
        self.classify(std::slice::from_ref(note))
            .pop()
            .unwrap_or_else(|| self.by_rules(note))
    }

    /// Answers for notes, in order.
    pub fn classify(&self, notes: &[NoteText]) -> Vec<Answer> {
        let texts: Vec<&str> = notes.iter().map(NoteText::as_str).collect();
        if let Some((encoder, head)) = &self.encoder {
            let run = encoder
                .embed(&texts)
                .and_then(|dense| head.logits(&texts, Some(&dense)));
            match run {
                Ok(logits) => return self.answers(notes, head, &logits, Tier::Encoder),
                Err(e) => tracing::warn!(error = %e, "encoder tier failed; using the next tier"),
            }
        }
        if let Some(small) = &self.small {
            match small.logits(&texts, None) {
                Ok(logits) => return self.answers(notes, small, &logits, Tier::SmallModel),
                Err(e) => tracing::warn!(error = %e, "small model failed; using the rules"),
            }
        }
        notes.iter().map(|n| self.by_rules(n)).collect()
    }

    fn by_rules(&self, note: &NoteText) -> Answer {
        let mut a = self.rules.classify(note.as_str());
        a.needs_review = a.confidence < self.taxonomy().review_threshold;
        a.truncated = note.truncated();
        a
    }

    fn answers(
        &self,
        notes: &[NoteText],
        model: &Calibrated,
        logits: &[Vec<f32>],
        tier: Tier,
    ) -> Vec<Answer> {
        let classes = &model.model.config.classes;
        let taxonomy = self.taxonomy();
        notes
            .iter()
            .zip(logits)
            .map(|(note, z)| {
                let p = model.temperature.probabilities(z);
                let mut order: Vec<usize> = (0..p.len()).collect();
                order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                let round = |v: f64| (v * 1e4).round() / 1e4;
                let best = &classes[order[0]];
                // Loading checks that a model's classes are the taxonomy's categories; a model
                // built otherwise gets the rules' answer rather than a made-up owner.
                let Some(category) = taxonomy.get(best) else {
                    return self.by_rules(note);
                };
                Answer {
                    category: best.clone(),
                    confidence: round(p[order[0]]),
                    alternatives: order[1..]
                        .iter()
                        .take(2)
                        .map(|&c| Alternative {
                            category: classes[c].clone(),
                            confidence: round(p[c]),
                        })
                        .collect(),
                    owner: category.owner.clone(),
                    severity: category.severity,
                    tier,
                    needs_review: p[order[0]] < taxonomy.review_threshold,
                    truncated: note.truncated(),
                    matched: Vec::new(),
                }
            })
            .collect()
    }
}
