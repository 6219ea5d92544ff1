//! The committed small exception classifier: an embedding bag over hashed n-grams (fastText's
//! architecture) and a linear head, in candle. A note's vector is the mean of its n-grams'
//! embeddings; the head turns it into one logit per category.
//!
//! The encoder tier uses the same model with `dense_dim` > 0: the sentence encoder's vector is
//! appended to the n-gram vector before the head, so the head sees both (n-gram features carry
//! what generalizes to unseen carriers' wording; the encoder carries meaning).

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
    /// Width of the dense input appended to the n-gram vector (the sentence encoder's); 0 for
    /// the small model.
    #[serde(default)]
    pub dense_dim: usize,
    /// The categories, in the order of the head's outputs.
    pub classes: Vec<String>,
}

pub struct NoteBag {
    pub config: BagConfig,
    /// `[buckets, dim]`.
    embedding: Tensor,
    /// `[dim + dense_dim, classes]`.
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
            weight: get("weight", &[config.dim + config.dense_dim, k])?,
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

    /// Logits `[notes, classes]` of notes given as n-gram ids, with their dense vectors
    /// `[notes, dense_dim]` when the model takes them.
    pub fn forward(
        &self,
        notes: &[Vec<u32>],
        dense: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        if dense.map_or(0, |d| d.dim(1).unwrap_or(0)) != self.config.dense_dim {
            return Err(candle_core::Error::Msg(format!(
                "the model takes dense inputs of width {}",
                self.config.dense_dim
            )));
        }
        forward(&self.embedding, &self.weight, &self.bias, notes, dense)
    }
}

/// The computation shared by inference and training (where the tensors are variables).
pub(crate) fn forward(
    embedding: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    notes: &[Vec<u32>],
    dense: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    // The averaging matrix grows with notes x n-grams: small groups keep it small.
    const GROUP: usize = 32;
    if notes.len() > GROUP {
        let parts = notes
            .chunks(GROUP)
            .enumerate()
            .map(|(g, group)| {
                let d = dense
                    .map(|d| d.narrow(0, g * GROUP, group.len()))
                    .transpose()?;
                forward(embedding, weight, bias, group, d.as_ref())
            })
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
    let features = match dense {
        Some(d) => Tensor::cat(&[&pooled, d], 1)?,
        None => pooled,
    };
    features.matmul(weight)?.broadcast_add(bias)
}
