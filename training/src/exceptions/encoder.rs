//! The pretrained sentence encoder of the first tier: all-MiniLM-L6-v2 (a 6-layer BERT) run with
//! candle-transformers, tokenized with the tokenizers crate, mean-pooled over real tokens and
//! L2-normalized, as sentence-transformers does. The encoder is frozen: only the head on top of
//! it is trained here.
//!
//! Weights are handed in as bytes: where they live on disk is the caller's business.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::{Deserialize, Serialize};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Tokens read per note; the rest of a longer note is ignored (the n-gram features of the
    /// head still see it all). all-MiniLM-L6-v2 was trained on sequences of 128 tokens; reading
    /// up to its 256 costs long notes twice the time for no measured gain.
    pub max_tokens: usize,
    /// Notes run through the network together. Notes are sorted by length first, so a batch
    /// pads little.
    pub batch: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            max_tokens: 128,
            batch: 32,
        }
    }
}

pub struct SentenceEncoder {
    config: EncoderConfig,
    bert: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl SentenceEncoder {
    /// Builds the encoder from the `model.safetensors`, `config.json` and `tokenizer.json` of a
    /// sentence-transformers BERT.
    pub fn load(
        config: EncoderConfig,
        weights: Vec<u8>,
        bert_config: &[u8],
        tokenizer: &[u8],
    ) -> candle_core::Result<Self> {
        let bert_config: BertConfig =
            serde_json::from_slice(bert_config).map_err(|e| msg(format!("config.json: {e}")))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let bert = BertModel::load(vb, &bert_config)?;
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer).map_err(|e| msg(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(msg)?;
        Ok(SentenceEncoder {
            config,
            bert,
            tokenizer,
            dim: bert_config.hidden_size,
        })
    }

    /// Width of the sentence vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Unit-length sentence vectors `[texts, dim]`, in the order of `texts`.
    pub fn embed(&self, texts: &[&str]) -> candle_core::Result<Tensor> {
        if texts.is_empty() {
            return Tensor::zeros((0, self.dim), DType::F32, &Device::Cpu);
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut parts = Vec::new();
        for chunk in order.chunks(self.config.batch.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            parts.push(self.embed_batch(&batch)?);
        }
        let sorted = Tensor::cat(&parts, 0)?;
        // Row `order[k]` of the answer is row `k` of `sorted`.
        let mut back = vec![0u32; texts.len()];
        for (k, &i) in order.iter().enumerate() {
            back[i] = k as u32;
        }
        sorted.index_select(&Tensor::new(back.as_slice(), &Device::Cpu)?, 0)
    }

    fn embed_batch(&self, texts: &[&str]) -> candle_core::Result<Tensor> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(msg)?;
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let n = encodings.len();
        let (mut ids, mut mask) = (Vec::with_capacity(n * len), Vec::with_capacity(n * len));
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, len), &dev)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev)?;
        let types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        // Mean over real tokens only: padding must not dilute short notes.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1.0, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)
    }
}
