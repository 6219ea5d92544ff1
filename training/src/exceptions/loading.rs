//! Assembling the exception classifier from disk: the model tiers an artifact holds, and the
//! pretrained encoder from its own folder (fetched by `scripts/fetch-encoder`, never committed).
//! A tier that cannot load is skipped with the reason, and the next one answers.

use std::path::{Path, PathBuf};

use super::classifier::ExceptionClassifier;
use super::encoder::{EncoderConfig, SentenceEncoder};
use super::taxonomy::Taxonomy;
use super::training::{files, read_model, EncoderRef};
use crate::artifact::{sha256_hex, ArtifactReader};
use crate::error::{Error, Result};

/// The folder name of the supported encoder under an encoders directory.
pub const DEFAULT_ENCODER: &str = "all-minilm-l6-v2";

/// Reads a sentence encoder's folder (`model.safetensors`, `config.json`, `tokenizer.json`).
pub fn read_encoder(dir: &Path, config: EncoderConfig) -> Result<(SentenceEncoder, EncoderRef)> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    };
    let weights = read("model.safetensors")?;
    let weights_sha256 = sha256_hex(&weights);
    let encoder = SentenceEncoder::load(
        config.clone(),
        weights,
        &read("config.json")?,
        &read("tokenizer.json")?,
    )
    .map_err(|e| Error::artifact(dir, format!("sentence encoder: {e}")))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_ENCODER.to_string());
    Ok((
        encoder,
        EncoderRef {
            name,
            weights_sha256,
            config,
        },
    ))
}

/// Where to look for an artifact's encoder: the given encoders directory, else the
/// `encoders/` folder beside the artifact (`models/encoders/` for `models/default/`).
pub fn encoders_dir(artifact_dir: &Path, given: Option<&Path>) -> PathBuf {
    match given {
        Some(d) => d.to_path_buf(),
        None => artifact_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("encoders"),
    }
}

/// The classifier an artifact supports, and why any tier did not load.
pub struct LoadedClassifier {
    pub classifier: ExceptionClassifier,
    /// Every reason a tier is missing, for the operator.
    pub problems: Vec<String>,
    /// The subset where the artifact itself is at fault (unreadable manifest, corrupt or
    /// mismatched files), as opposed to a tier it never had or encoder weights not fetched on
    /// this machine. A reload refuses a version with failures.
    pub failed: Vec<String>,
}

/// Loads the tiers an artifact holds; never fails (the rules always answer).
pub fn load_classifier(
    artifact_dir: &Path,
    encoders: Option<&Path>,
    taxonomy: Taxonomy,
) -> LoadedClassifier {
    let mut out = LoadedClassifier {
        classifier: ExceptionClassifier::new(taxonomy),
        problems: Vec::new(),
        failed: Vec::new(),
    };
    let fail = |out: &mut LoadedClassifier, message: String| {
        out.failed.push(message.clone());
        out.problems.push(message);
    };
    let artifact = match ArtifactReader::open(artifact_dir) {
        Ok(a) => a,
        Err(e) => {
            let message = format!("no exception model: {e}");
            if artifact_dir.join(crate::artifact::MANIFEST).exists() {
                fail(&mut out, message);
            } else {
                out.problems.push(message);
            }
            return out;
        }
    };
    if artifact.has(files::SMALL_MODEL) {
        match read_model(&artifact, files::SMALL_MODEL, files::SMALL_MODEL_CONFIG) {
            Ok((m, _)) => out.classifier = out.classifier.with_small_model(m),
            Err(e) => fail(&mut out, format!("small model not loaded: {e}")),
        }
    } else {
        out.problems.push(format!(
            "{} holds no exception model",
            artifact_dir.display()
        ));
    }
    if artifact.has(files::ENCODER_HEAD) {
        match read_model(&artifact, files::ENCODER_HEAD, files::ENCODER_HEAD_CONFIG) {
            Err(e) => fail(&mut out, format!("encoder tier not loaded: {e}")),
            Ok((head, reference)) => {
                match load_encoder(&artifact, reference, &encoders_dir(artifact_dir, encoders)) {
                    Ok(encoder) => out.classifier = out.classifier.with_encoder(encoder, head),
                    Err(e) => out.problems.push(format!("encoder tier not loaded: {e}")),
                }
            }
        }
    }
    out
}

fn load_encoder(
    artifact: &ArtifactReader,
    reference: Option<EncoderRef>,
    encoders: &Path,
) -> Result<SentenceEncoder> {
    let reference = reference.ok_or_else(|| {
        Error::artifact(
            artifact.path(files::ENCODER_HEAD_CONFIG),
            "the head names no encoder",
        )
    })?;
    let dir = encoders.join(&reference.name);
    if !dir.join("model.safetensors").exists() {
        return Err(Error::artifact(
            &dir,
            "encoder weights not found (fetch them with scripts/fetch-encoder)",
        ));
    }
    let (encoder, found) = read_encoder(&dir, reference.config.clone())?;
    if found.weights_sha256 != reference.weights_sha256 {
        return Err(Error::artifact(
            &dir,
            "these encoder weights are not the ones the head was trained on",
        ));
    }
    Ok(encoder)
}
