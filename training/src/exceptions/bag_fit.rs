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
            batch: 32,
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

/// Adam over the rows of an embedding table that a batch touched (PyTorch's SparseAdam): the
/// table has 32k rows and a batch uses a few hundred, so a dense update would spend nearly all
/// its time on rows whose gradient is zero.
struct SparseAdam {
    values: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    dim: usize,
    lr: f64,
    t: i32,
}

impl SparseAdam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(values: Vec<f32>, dim: usize, lr: f64) -> Self {
        let n = values.len();
        SparseAdam {
            values,
            m: vec![0.0; n],
            v: vec![0.0; n],
            dim,
            lr,
            t: 0,
        }
    }

    fn gather(&self, rows: &[u32]) -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| {
                let at = r as usize * self.dim;
                self.values[at..at + self.dim].iter().copied()
            })
            .collect()
    }

    /// One step with the gradient `[rows, dim]` of the gathered rows.
    fn step(&mut self, rows: &[u32], grad: &[f32]) {
        self.t += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        for (k, &r) in rows.iter().enumerate() {
            for j in 0..self.dim {
                let at = r as usize * self.dim + j;
                let g = grad[k * self.dim + j] as f64;
                let m = Self::BETA1 * self.m[at] as f64 + (1.0 - Self::BETA1) * g;
                let v = Self::BETA2 * self.v[at] as f64 + (1.0 - Self::BETA2) * g * g;
                self.m[at] = m as f32;
                self.v[at] = v as f32;
                let update = self.lr * (m / c1) / ((v / c2).sqrt() + Self::EPS);
                self.values[at] = (self.values[at] as f64 - update) as f32;
            }
        }
    }
}

fn candle(e: candle_core::Error) -> Error {
    Error::Model(format!("exception classifier: {e}"))
}

/// Fits the classifier on labelled notes, with each note's dense vector (row `i` of `dense`,
/// the sentence encoder's) when given.
pub fn fit_bag(
    notes: &[LabelledNote],
    dense: Option<&Tensor>,
    config: &BagTrainConfig,
) -> Result<NoteBag> {
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
    let dense_dim = match dense {
        Some(d) if d.dims().first() != Some(&notes.len()) => {
            return Err(Error::Model(format!(
                "exception classifier: {} dense rows for {} notes",
                d.dims().first().copied().unwrap_or(0),
                notes.len()
            )))
        }
        Some(d) => d.dim(1).map_err(candle)?,
        None => 0,
    };
    let mut embedding = SparseAdam::new(init, config.dim, config.learning_rate);
    let weight =
        Var::zeros((config.dim + dense_dim, classes.len()), DType::F32, &dev).map_err(candle)?;
    let bias = Var::zeros(classes.len(), DType::F32, &dev).map_err(candle)?;
    let mut opt = AdamW::new(
        vec![weight.clone(), bias.clone()],
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
            // Only the rows of the n-grams in this batch take part: they become a small
            // variable of their own, and the optimizer updates those rows alone.
            let mut rows: Vec<u32> = batch.iter().flat_map(|&i| ids[i].iter().copied()).collect();
            rows.sort_unstable();
            rows.dedup();
            let local = |g: &u32| rows.binary_search(g).unwrap_or(0) as u32;
            let x: Vec<Vec<u32>> = batch
                .iter()
                .map(|&i| ids[i].iter().map(local).collect())
                .collect();
            let y: Vec<u32> = batch.iter().map(|&i| labels[i]).collect();
            let d = match dense {
                Some(d) => {
                    let at: Vec<u32> = batch.iter().map(|&i| i as u32).collect();
                    Some(
                        d.index_select(&Tensor::new(at.as_slice(), &dev).map_err(candle)?, 0)
                            .map_err(candle)?,
                    )
                }
                None => None,
            };
            let part = Var::from_tensor(
                &Tensor::from_vec(embedding.gather(&rows), (rows.len(), config.dim), &dev)
                    .map_err(candle)?,
            )
            .map_err(candle)?;
            let logits =
                forward(part.as_tensor(), &weight, &bias, &x, d.as_ref()).map_err(candle)?;
            let y = Tensor::new(y.as_slice(), &dev).map_err(candle)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(candle)?;
            let grads = loss.backward().map_err(candle)?;
            opt.step(&grads).map_err(candle)?;
            if let Some(g) = grads.get(part.as_tensor()) {
                let g = g
                    .flatten_all()
                    .and_then(|g| g.to_vec1::<f32>())
                    .map_err(candle)?;
                embedding.step(&rows, &g);
            }
        }
    }
    let embedding = Var::from_tensor(
        &Tensor::from_vec(embedding.values, (buckets, config.dim), &dev).map_err(candle)?,
    )
    .map_err(candle)?;
    let config = BagConfig {
        ngrams: config.ngrams.clone(),
        dim: config.dim,
        dense_dim,
        classes,
    };
    // Rounded to half precision, as the artifact stores them: what is measured after
    // training is what ships.
    let half = |v: &Var| -> Result<Tensor> {
        v.as_tensor()
            .to_dtype(DType::F16)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(candle)
    };
    let tensors = std::collections::HashMap::from([
        ("embedding".to_string(), half(&embedding)?),
        ("weight".to_string(), half(&weight)?),
        ("bias".to_string(), half(&bias)?),
    ]);
    NoteBag::load(config, &tensors).map_err(candle)
}
