//! The committed small exception classifier: an embedding bag over hashed n-grams (fastText's
//! architecture) and a linear head, in candle. A note's vector is the mean of its n-grams'
//! embeddings; the head turns it into one logit per category.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ngrams::NgramConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BagConfig {
    pub ngrams: NgramConfig,
    /// Embedding width.
    pub dim: usize,
    /// The categories, in the order of the head's outputs.
    pub classes: Vec<String>,
}

pub struct NoteBag {
    pub config: BagConfig,
    /// `[buckets, dim]`.
    embedding: Tensor,
    /// `[dim, classes]`.
    weight: Tensor,
    /// `[classes]`.
    bias: Tensor,
}

impl NoteBag {
    /// Builds the model from named tensors (`embedding`, `weight`, `bias`), checking shapes.
    pub fn load(config: BagConfig, tensors: &HashMap<String, Tensor>) -> candle_core::Result<Self> {
        let get = |name: &str, shape: &[usize]| -> candle_core::Result<Tensor> {
            let t = tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{name}`")))?;
            if t.dims() != shape {
                return Err(candle_core::Error::Msg(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            t.to_dtype(DType::F32)
        };
        let k = config.classes.len();
        Ok(NoteBag {
            embedding: get("embedding", &[config.ngrams.buckets as usize, config.dim])?,
            weight: get("weight", &[config.dim, k])?,
            bias: get("bias", &[k])?,
            config,
        })
    }

    pub fn tensors(&self) -> HashMap<String, Tensor> {
        HashMap::from([
            ("embedding".to_string(), self.embedding.clone()),
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ])
    }

    /// Logits `[notes, classes]` of notes given as n-gram ids.
    pub fn forward(&self, notes: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        forward(&self.embedding, &self.weight, &self.bias, notes)
    }

    /// The most likely category of each text.
    pub fn categories(&self, texts: &[&str]) -> candle_core::Result<Vec<String>> {
        Ok(self
            .predict(texts)?
            .iter()
            .map(|p| {
                let best = (0..p.len())
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                    .unwrap_or(0);
                self.config.classes[best].clone()
            })
            .collect())
    }

    /// Class probabilities of texts.
    pub fn predict(&self, texts: &[&str]) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.config.ngrams.ids(t)).collect();
        let logits = self.forward(&ids)?;
        candle_nn::ops::softmax_last_dim(&logits)?.to_vec2()
    }
}

/// The computation shared by inference and training (where the tensors are variables).
pub(crate) fn forward(
    embedding: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    notes: &[Vec<u32>],
) -> candle_core::Result<Tensor> {
    // The averaging matrix grows with notes x n-grams: small groups keep it small.
    const GROUP: usize = 32;
    if notes.len() > GROUP {
        let parts = notes
            .chunks(GROUP)
            .map(|group| forward(embedding, weight, bias, group))
            .collect::<candle_core::Result<Vec<_>>>()?;
        return Tensor::cat(&parts, 0);
    }
    let total: usize = notes.iter().map(Vec::len).sum();
    let dim = embedding.dim(1)?;
    let pooled = if total == 0 {
        Tensor::zeros((notes.len(), dim), DType::F32, &Device::Cpu)?
    } else {
        let flat: Vec<u32> = notes.iter().flatten().copied().collect();
        let gathered = embedding.index_select(&Tensor::new(flat.as_slice(), &Device::Cpu)?, 0)?;
        // Each note's mean, as one product with a [notes, total] averaging matrix.
        let mut mean = vec![0f32; notes.len() * total];
        let mut at = 0;
        for (i, ids) in notes.iter().enumerate() {
            for j in at..at + ids.len() {
                mean[i * total + j] = 1.0 / ids.len() as f32;
            }
            at += ids.len();
        }
        Tensor::from_vec(mean, (notes.len(), total), &Device::Cpu)?.matmul(&gathered)?
    };
    pooled.matmul(weight)?.broadcast_add(bias)
}
