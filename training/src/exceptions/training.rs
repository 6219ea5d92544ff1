//! Training the exception classifier's model tiers from a labelled corpus: the small n-gram
//! model always, the encoder tier's head when an encoder is given. Each is calibrated with a
//! temperature on the validation notes and measured there against the keyword rules; the
//! artifact files and the manifest's `exceptions` section are written from the result.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::bag::{BagConfig, NoteBag};
use super::bag_fit::{fit_bag, BagTrainConfig};
use super::calibration::{expected_calibration_error, Temperature};
use super::classifier::Calibrated;
use super::corpus::{ClassMetrics, LabelledNote};
use super::encoder::{EncoderConfig, SentenceEncoder};
use super::rules::KeywordRules;
use super::taxonomy::CATEGORIES;
use crate::artifact::{sha256_hex, ArtifactReader, ArtifactWriter};
use crate::error::{Error, Result};

/// Artifact file names of the exception classifier.
pub mod files {
    pub const SMALL_MODEL: &str = "exception_model.safetensors";
    pub const SMALL_MODEL_CONFIG: &str = "exception_model.json";
    pub const ENCODER_HEAD: &str = "exception_encoder_head.safetensors";
    pub const ENCODER_HEAD_CONFIG: &str = "exception_encoder_head.json";
}

/// How the classifier is trained (the `[notes]` table of `train --config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotesTrainConfig {
    pub small_model: BagTrainConfig,
    pub encoder_head: BagTrainConfig,
    pub encoder: EncoderConfig,
    /// Without a separate validation file, every `valid_every`-th note of each category is held
    /// out for validation and calibration.
    pub valid_every: usize,
}

impl Default for NotesTrainConfig {
    fn default() -> Self {
        NotesTrainConfig {
            small_model: BagTrainConfig::default(),
            encoder_head: BagTrainConfig {
                dim: 16,
                ..BagTrainConfig::default()
            },
            encoder: EncoderConfig::default(),
            valid_every: 4,
        }
    }
}

impl NotesTrainConfig {
    pub fn check(&self) -> Result<()> {
        self.small_model.check()?;
        self.encoder_head.check()?;
        if self.valid_every < 2 {
            return Err(Error::param("notes.valid_every", "must be at least 2"));
        }
        if self.encoder.max_tokens < 8 || self.encoder.batch == 0 {
            return Err(Error::param(
                "notes.encoder",
                "max_tokens must be at least 8 and batch at least 1",
            ));
        }
        Ok(())
    }
}

/// Training and validation notes.
#[derive(Debug, Clone)]
pub struct NotesData {
    pub train: Vec<LabelledNote>,
    pub valid: Vec<LabelledNote>,
}

impl NotesData {
    /// Holds out every `every`-th note of each category (deterministic, so reruns agree).
    pub fn split(notes: Vec<LabelledNote>, every: usize) -> Self {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for n in notes {
            let k = seen.entry(n.category.clone()).or_default();
            *k += 1;
            if (*k).is_multiple_of(every) {
                valid.push(n);
            } else {
                train.push(n);
            }
        }
        NotesData { train, valid }
    }
}

/// The sentence encoder a head was trained on, and the checksum of its weights: a head must
/// not run on another encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRef {
    /// Folder name under the encoders directory (`all-minilm-l6-v2`).
    pub name: String,
    pub weights_sha256: String,
    pub config: EncoderConfig,
}

/// What `exception_*.json` holds next to the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredModel {
    pub model: BagConfig,
    pub temperature: Temperature,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderRef>,
}

/// One tier's figures on the validation notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierMetrics {
    pub valid: ClassMetrics,
    pub temperature: f64,
    /// Expected calibration error of the confidence before and after the temperature (which
    /// is fitted on these same notes: one parameter, so the optimism is small).
    pub ece_raw: f64,
    pub ece_calibrated: f64,
    pub fit_seconds: f64,
}

/// The manifest's `exceptions` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotesMetrics {
    pub train_notes: usize,
    pub valid_notes: usize,
    /// The preferred tier: the encoder's when it was trained, else the small model's.
    pub preferred: String,
    pub small_model: TierMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<TierMetrics>,
    pub rules: ClassMetrics,
}

impl NotesMetrics {
    /// The preferred tier's validation figures.
    pub fn preferred_valid(&self) -> &ClassMetrics {
        match &self.encoder {
            Some(e) => &e.valid,
            None => &self.small_model.valid,
        }
    }

    /// `metrics.exceptions` of the manifest.
    pub fn manifest_metrics(&self) -> serde_json::Value {
        let v = self.preferred_valid();
        serde_json::json!({
            "tier": self.preferred,
            "valid": { "macro_f1": v.macro_f1, "accuracy": v.accuracy, "n": v.n },
        })
    }
}

/// The trained tiers.
pub struct TrainedNotes {
    pub small_model: Calibrated,
    pub encoder_head: Option<(Calibrated, EncoderRef)>,
    pub metrics: NotesMetrics,
    /// Checksum of the notes, the configuration and the encoder: part of the artifact's version.
    pub fingerprint: String,
}

fn candle(e: candle_core::Error) -> Error {
    Error::Model(format!("exception classifier: {e}"))
}

fn labels(notes: &[LabelledNote]) -> Vec<usize> {
    notes
        .iter()
        .map(|n| {
            CATEGORIES
                .iter()
                .position(|c| *c == n.category)
                .unwrap_or(0)
        })
        .collect()
}

/// Fits, calibrates and measures one model on validation logits.
fn calibrate(
    model: NoteBag,
    valid: &[LabelledNote],
    valid_dense: Option<&Tensor>,
    fit_seconds: f64,
) -> Result<(Calibrated, TierMetrics)> {
    let uncalibrated = Calibrated {
        model,
        temperature: Temperature::default(),
    };
    let texts: Vec<&str> = valid.iter().map(|n| n.text.as_str()).collect();
    let logits = uncalibrated.logits(&texts, valid_dense).map_err(candle)?;
    let y = labels(valid);
    let temperature = Temperature::fit(&logits, &y);
    let classes = &uncalibrated.model.config.classes;
    let (mut predicted, mut correct, mut raw, mut cal) = (vec![], vec![], vec![], vec![]);
    for (z, &t) in logits.iter().zip(&y) {
        let p = temperature.probabilities(z);
        let best = (0..p.len())
            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
            .unwrap_or(0);
        predicted.push(classes[best].clone());
        correct.push(best == t);
        cal.push(p[best]);
        raw.push(Temperature::default().probabilities(z)[best]);
    }
    let metrics = TierMetrics {
        valid: ClassMetrics::of(valid, &predicted),
        temperature: temperature.t,
        ece_raw: expected_calibration_error(&raw, &correct),
        ece_calibrated: expected_calibration_error(&cal, &correct),
        fit_seconds,
    };
    Ok((
        Calibrated {
            model: uncalibrated.model,
            temperature,
        },
        metrics,
    ))
}

/// Trains the small model, and the encoder head when an encoder is given; `rules` (the
/// taxonomy's keyword rules) are measured on the same notes for comparison.
pub fn train_notes(
    data: &NotesData,
    config: &NotesTrainConfig,
    encoder: Option<(&SentenceEncoder, EncoderRef)>,
    rules: &KeywordRules,
) -> Result<TrainedNotes> {
    config.check()?;
    if data.train.is_empty() || data.valid.is_empty() {
        return Err(Error::Input(format!(
            "the exception classifier needs training and validation notes ({} and {} given)",
            data.train.len(),
            data.valid.len()
        )));
    }
    let start = Instant::now();
    let small = fit_bag(&data.train, None, &config.small_model)?;
    let (small_model, small_metrics) =
        calibrate(small, &data.valid, None, start.elapsed().as_secs_f64())?;

    let (encoder_head, encoder_metrics) = match encoder {
        Some((encoder, reference)) => {
            let start = Instant::now();
            let embed = |notes: &[LabelledNote]| {
                let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
                encoder.embed(&texts).map_err(candle)
            };
            let (train_dense, valid_dense) = (embed(&data.train)?, embed(&data.valid)?);
            let head = fit_bag(&data.train, Some(&train_dense), &config.encoder_head)?;
            let (head, m) = calibrate(
                head,
                &data.valid,
                Some(&valid_dense),
                start.elapsed().as_secs_f64(),
            )?;
            (Some((head, reference)), Some(m))
        }
        None => (None, None),
    };
    let by_rules: Vec<String> = data
        .valid
        .iter()
        .map(|n| rules.classify(&n.text).category)
        .collect();
    let metrics = NotesMetrics {
        train_notes: data.train.len(),
        valid_notes: data.valid.len(),
        preferred: if encoder_metrics.is_some() {
            "encoder"
        } else {
            "small_model"
        }
        .to_string(),
        small_model: small_metrics,
        encoder: encoder_metrics,
        rules: ClassMetrics::of(&data.valid, &by_rules),
    };
    let mut all = serde_json::to_vec(config).unwrap_or_default();
    for n in data
        .train
        .iter()
        .chain(std::iter::once(&LabelledNote {
            text: "--valid--".into(),
            category: String::new(),
            voice: String::new(),
        }))
        .chain(&data.valid)
    {
        for part in [&n.text, &n.category, &n.voice] {
            all.extend_from_slice(part.as_bytes());
            all.push(0);
        }
    }
    if let Some((_, r)) = &encoder_head {
        all.extend_from_slice(r.weights_sha256.as_bytes());
    }
    Ok(TrainedNotes {
        small_model,
        encoder_head,
        metrics,
        fingerprint: format!("sha256:{}", sha256_hex(&all)),
    })
}

/// Stores tensors as half precision: the model is shipped in the repository, and `fit_bag`
/// already rounds its weights to half precision, so nothing is lost.
fn safetensors_bytes(model: &NoteBag) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Tensor)> = model
        .tensors()
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(candle_core::DType::F16).map_err(candle)?)))
        .collect::<Result<_>>()?;
    let mut sorted = tensors;
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(&str, &Tensor)> = sorted.iter().map(|(k, t)| (k.as_str(), t)).collect();
    safetensors::tensor::serialize(views, None).map_err(|e| Error::Model(e.to_string()))
}

impl TrainedNotes {
    /// Adds `metrics.exceptions` and the `exceptions` section to a manifest's sections.
    pub fn add_manifest_sections(&self, extra: &mut serde_json::Map<String, serde_json::Value>) {
        let metrics = extra
            .entry("metrics")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(m) = metrics.as_object_mut() {
            m.insert("exceptions".into(), self.metrics.manifest_metrics());
        }
        extra.insert(
            "exceptions".into(),
            serde_json::json!({
                "fingerprint": self.fingerprint,
                "tiers": self.metrics,
                "encoder": self.encoder_head.as_ref().map(|(_, r)| r),
            }),
        );
    }

    /// Writes an artifact that holds only the exception classifier (`train --notes` without
    /// `--history`), with its report page.
    pub fn write_alone(
        &self,
        dir: &std::path::Path,
        created_at: &str,
        source: &str,
    ) -> Result<crate::artifact::Manifest> {
        let version = format!("dr-{}", &sha256_hex(self.fingerprint.as_bytes())[..12]);
        let mut w = ArtifactWriter::create(dir)?;
        self.write(&mut w)?;
        w.write(
            crate::artifact::files::REPORT,
            crate::report::render_exceptions_page(&version, created_at, source, &self.metrics)
                .as_bytes(),
        )?;
        let mut extra = serde_json::Map::new();
        self.add_manifest_sections(&mut extra);
        w.finish(version, created_at.to_string(), extra)
    }

    /// Writes the model files into an artifact being written.
    pub fn write(&self, w: &mut ArtifactWriter) -> Result<()> {
        w.write(
            files::SMALL_MODEL,
            &safetensors_bytes(&self.small_model.model)?,
        )?;
        w.write_json(
            files::SMALL_MODEL_CONFIG,
            &StoredModel {
                model: self.small_model.model.config.clone(),
                temperature: self.small_model.temperature,
                encoder: None,
            },
        )?;
        if let Some((head, reference)) = &self.encoder_head {
            w.write(files::ENCODER_HEAD, &safetensors_bytes(&head.model)?)?;
            w.write_json(
                files::ENCODER_HEAD_CONFIG,
                &StoredModel {
                    model: head.model.config.clone(),
                    temperature: head.temperature,
                    encoder: Some(reference.clone()),
                },
            )?;
        }
        Ok(())
    }
}

/// Reads a stored model (`exception_model` or `exception_encoder_head`), checking that its
/// classes are the taxonomy's categories.
pub fn read_model(
    artifact: &ArtifactReader,
    tensors_file: &str,
    config_file: &str,
) -> Result<(Calibrated, Option<EncoderRef>)> {
    let stored: StoredModel = artifact.read_json(config_file)?;
    if stored.model.classes != CATEGORIES {
        return Err(Error::artifact(
            artifact.path(config_file),
            "the model's categories are not this build's taxonomy categories",
        ));
    }
    let bytes = artifact.read(tensors_file)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::artifact(artifact.path(tensors_file), e.to_string()))?;
    let model = NoteBag::load(stored.model, &tensors)
        .map_err(|e| Error::artifact(artifact.path(tensors_file), e.to_string()))?;
    Ok((
        Calibrated {
            model,
            temperature: stored.temperature,
        },
        stored.encoder,
    ))
}
