//! Training of [`NoteBag`]: cross-entropy with AdamW over shuffled mini-batches, every random
//! choice from one seeded generator, so the same corpus and seed give the same model.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::bag::{forward, BagConfig, NoteBag};
use super::corpus::LabelledNote;
use super::ngrams::NgramConfig;
use super::taxonomy::CATEGORIES;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BagTrainConfig {
    pub ngrams: NgramConfig,
    pub dim: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for BagTrainConfig {
    fn default() -> Self {
        BagTrainConfig {
            ngrams: NgramConfig::default(),
            dim: 24,
            epochs: 40,
            batch: 16,
            learning_rate: 0.02,
            weight_decay: 0.0,
            seed: 42,
        }
    }
}

impl BagTrainConfig {
    pub fn check(&self) -> Result<()> {
        let n = &self.ngrams;
        if n.buckets == 0 || n.min_n == 0 || n.min_n > n.max_n {
            return Err(Error::param(
                "notes.ngrams",
                "need buckets > 0 and 1 <= min_n <= max_n",
            ));
        }
        if self.dim == 0 || self.epochs == 0 || self.batch == 0 {
            return Err(Error::param(
                "notes.dim",
                "dim, epochs and batch must be at least 1",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::param("notes.learning_rate", "must be > 0"));
        }
        Ok(())
    }
}

fn candle(e: candle_core::Error) -> Error {
    Error::Model(format!("exception classifier: {e}"))
}

/// Fits the classifier on labelled notes.
pub fn fit_bag(notes: &[LabelledNote], config: &BagTrainConfig) -> Result<NoteBag> {
    config.check()?;
    if notes.is_empty() {
        return Err(Error::Input(
            "no notes to train the exception classifier on".into(),
        ));
    }
    let classes: Vec<String> = CATEGORIES.iter().map(|c| c.to_string()).collect();
    let ids: Vec<Vec<u32>> = notes.iter().map(|n| config.ngrams.ids(&n.text)).collect();
    let labels: Vec<u32> = notes
        .iter()
        .map(|n| {
            CATEGORIES
                .iter()
                .position(|c| *c == n.category)
                .unwrap_or(0) as u32
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let buckets = config.ngrams.buckets as usize;
    // fastText's start: small uniform input vectors, a zero head.
    let bound = 1.0 / config.dim as f32;
    let init: Vec<f32> = (0..buckets * config.dim)
        .map(|_| rng.gen_range(-bound..bound))
        .collect();
    let dev = Device::Cpu;
    let embedding =
        Var::from_tensor(&Tensor::from_vec(init, (buckets, config.dim), &dev).map_err(candle)?)
            .map_err(candle)?;
    let weight = Var::zeros((config.dim, classes.len()), DType::F32, &dev).map_err(candle)?;
    let bias = Var::zeros(classes.len(), DType::F32, &dev).map_err(candle)?;
    let mut opt = AdamW::new(
        vec![embedding.clone(), weight.clone(), bias.clone()],
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )
    .map_err(candle)?;
    let mut order: Vec<usize> = (0..notes.len()).collect();
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch) {
            let x: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            let y: Vec<u32> = batch.iter().map(|&i| labels[i]).collect();
            let logits = forward(&embedding, &weight, &bias, &x).map_err(candle)?;
            let y = Tensor::new(y.as_slice(), &dev).map_err(candle)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(candle)?;
            opt.backward_step(&loss).map_err(candle)?;
        }
    }
    let config = BagConfig {
        ngrams: config.ngrams.clone(),
        dim: config.dim,
        classes,
    };
    let tensors = std::collections::HashMap::from([
        ("embedding".to_string(), embedding.as_tensor().clone()),
        ("weight".to_string(), weight.as_tensor().clone()),
        ("bias".to_string(), bias.as_tensor().clone()),
    ]);
    NoteBag::load(config, &tensors).map_err(candle)
}
