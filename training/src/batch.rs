//! Batch scoring of a file of any size (`dispatch-risk score`), in two passes a block at a
//! time. The first feeds every valid row's decision and outcome into the model's history, as
//! scoring the whole file at once did (each row still sees only what happened before its
//! decision time); the second scores each block against that history and hands it on. Memory
//! follows the model's history and one block, not the file.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::carrier::{RankingPolicy, Recommendation};
use crate::data::stream::{ExtraKinds, ShipmentStream};
use crate::data::{BadRowLimit, ImportProfile, LoadReport, ShipmentTable};
use crate::error::Result;
use crate::model::{DelayModel, FactorMethod, RiskScore};
use crate::progress::{Progress, Unit};

/// How a file is scored.
#[derive(Clone, Copy)]
pub struct BatchOptions<'a> {
    pub profile: &'a ImportProfile,
    pub limit: BadRowLimit,
    /// Factors per row (0: none, which is faster).
    pub top_factors: usize,
    pub factors: FactorMethod,
    /// Recommend a carrier per row under this policy (every lane carrier is scored).
    pub carriers: Option<&'a RankingPolicy>,
    /// CSV bytes (Parquet rows) per block; `None`: the reader's default (48 MB).
    pub block: Option<usize>,
}

/// One scored block: its valid rows, in file order, with their scores.
pub struct ScoredBlock<'a> {
    pub table: &'a ShipmentTable,
    pub scores: Vec<RiskScore>,
    /// Empty without a carrier policy.
    pub recommendations: Vec<Option<Recommendation>>,
}

/// Where the time went.
#[derive(Debug, Clone, Default)]
pub struct BatchTimes {
    /// The first pass: reading the file into the history.
    pub history: Duration,
    /// The second pass, of which the parts below.
    pub scoring: Duration,
    pub features: Duration,
    pub model: Duration,
    pub carriers: Duration,
    /// What the sink took (writing the output).
    pub sink: Duration,
}

/// Scores every valid row of `input`, block by block, handing each to `sink`. Rejections
/// follow `options.limit` as a whole-file load's do; the report says what was read.
pub fn score_file(
    model: &mut DelayModel,
    input: &Path,
    options: &BatchOptions<'_>,
    progress: &dyn Progress,
    sink: &mut dyn FnMut(ScoredBlock<'_>) -> Result<()>,
) -> Result<(LoadReport, BatchTimes)> {
    let schema = &model.spec.schema;
    let kinds = ExtraKinds {
        numeric: schema.numeric.clone(),
        categorical: schema.categorical.iter().map(|v| v.name.clone()).collect(),
    };
    let mut times = BatchTimes::default();

    let started = Instant::now();
    let mut stream =
        ShipmentStream::with_block(input, options.profile, false, kinds, options.block)?;
    let unit = if stream.counts_bytes() {
        Unit::Bytes
    } else {
        Unit::Rows
    };
    progress.start("history pass", stream.position().1, unit);
    let mut load = model.history.load();
    let mut done = 0;
    while let Some(block) = stream.next_block()? {
        load.table(&block);
        let (now, _) = stream.position();
        progress.advance(now - done);
        done = now;
    }
    load.finish();
    stream.check(options.limit)?;
    // Nothing is recorded from here on: the ids kept to count shipments once can go.
    model.history.seal();
    times.history = started.elapsed();
    progress.finish("history pass", times.history);

    let started = Instant::now();
    let mut stream = stream.replay()?;
    let rows_total = stream_rows(&stream);
    progress.start("scoring", rows_total, Unit::Rows);
    while let Some(block) = stream.next_block()? {
        let rows: Vec<usize> = (0..block.len()).collect();
        let t = Instant::now();
        let x = model.features(&block, &rows);
        times.features += t.elapsed();
        let t = Instant::now();
        let scores = model.score(&x, options.top_factors, options.factors)?;
        drop(x);
        times.model += t.elapsed();
        let t = Instant::now();
        let recommendations = match options.carriers {
            Some(policy) => model.recommend(&block, &rows, None, policy)?,
            None => Vec::new(),
        };
        times.carriers += t.elapsed();
        let t = Instant::now();
        sink(ScoredBlock {
            table: &block,
            scores,
            recommendations,
        })?;
        times.sink += t.elapsed();
        progress.advance(block.len() as u64);
    }
    times.scoring = started.elapsed();
    progress.finish("scoring", times.scoring);
    Ok((stream.report().clone(), times))
}

/// The rows the second pass will score: the first pass's accepted rows.
fn stream_rows(stream: &ShipmentStream) -> u64 {
    stream.accepted_before() as u64
}
