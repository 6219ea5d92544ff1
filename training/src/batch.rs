//! Batch scoring of a file of any size (`dispatch-risk score`), in two passes a block at a
//! time. The first parses and validates each block, feeds its rows' decisions and outcomes
//! into the model's history, as scoring the whole file at once did (each row still sees only
//! what happened before its decision time), and keeps the block in a temporary file
//! ([`crate::data::spill`]); the second reads the blocks back, scores each against the whole
//! history and hands it on. The file is parsed once, and memory follows the model's history
//! and one block, not the file.

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::carrier::{RankingPolicy, Recommendation};
use crate::data::is_parquet;
use crate::data::spill::{Spill, SpillReader};
use crate::data::stream::{ExtraKinds, ShipmentStream};
use crate::data::{BadRowLimit, ImportProfile, LoadReport, ShipmentTable};
use crate::error::Result;
use crate::features::history::Sweep;
use crate::model::{DelayModel, FactorMethod, RiskScore};
use crate::progress::{Progress, Unit};

/// CSV bytes parsed per block in the first pass: the parsed strings of a block are the
/// largest thing it holds besides the history (48 MB blocks peaked ~190 MB higher at ten
/// million rows than 16 MB ones).
const PARSE_BLOCK: usize = 16 << 20;
/// Rows scored together in the second pass: the more rows sorted together, the shorter each
/// entity's step from one row's cut to the next (a 10M-row file's features took 26.7 s in
/// 70k-row batches, 17.8 s in 210k-row ones).
const BATCH_ROWS: usize = 1 << 20;
/// Rows per feature matrix within a batch (80 features: ~40 MB).
const MATRIX_ROWS: usize = 1 << 16;
/// Rows handed to the sink at once.
const SINK_ROWS: usize = 1 << 17;

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
    /// CSV bytes (Parquet rows) per block; `None`: 16 MB of CSV (the reader's default
    /// Parquet slice). Tests set it small so a file spans many blocks.
    pub block: Option<usize>,
    /// Rows scored together in the second pass (whole blocks, so at least one); `None`: a
    /// million, less with factors.
    pub batch: Option<usize>,
}

impl BatchOptions<'_> {
    /// A row's factors weigh more than its risk (~110 bytes each, with their names), and a
    /// batch's scores are held until the batch is done: with three factors a million-row
    /// batch took 2.4 GB at ten million rows, so batches shrink with the factors asked for.
    fn batch_rows(&self) -> usize {
        self.batch
            .unwrap_or(BATCH_ROWS / (1 + self.top_factors.min(7)).next_power_of_two())
    }
}

/// Scored rows, in file order: rows `rows` of `table`, with their scores.
pub struct ScoredBlock<'a> {
    pub table: &'a ShipmentTable,
    pub rows: Range<usize>,
    pub scores: Vec<RiskScore>,
    /// Empty without a carrier policy.
    pub recommendations: Vec<Option<Recommendation>>,
}

/// Where the time went.
#[derive(Debug, Clone, Default)]
pub struct BatchTimes {
    /// The first pass: reading the file into the history (and the temporary file).
    pub history: Duration,
    /// The second pass, of which the parts below.
    pub scoring: Duration,
    /// Reading the blocks back.
    pub reading: Duration,
    pub features: Duration,
    pub model: Duration,
    pub carriers: Duration,
    /// What the sink took (writing the output).
    pub sink: Duration,
}

/// Scores every valid row of `input`, handing them to `sink` in file order, a slice at a
/// time. Rejections follow `options.limit` as a whole-file load's do; the report says what
/// was read.
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
    let mut stream = ShipmentStream::with_block(
        input,
        options.profile,
        false,
        kinds,
        options
            .block
            .or((!is_parquet(input)).then_some(PARSE_BLOCK)),
    )?;
    let unit = if stream.counts_bytes() {
        Unit::Bytes
    } else {
        Unit::Rows
    };
    progress.start("history pass", stream.position().1, unit);
    let mut load = model.history.load();
    let mut spill = Spill::new()?;
    let mut done = 0;
    while let Some(block) = stream.next_block()? {
        // The stream rejected repeated ids and a model's history holds no decisions, so each
        // row is a first decision.
        load.table_once(&block);
        spill.push(&block)?;
        let (now, _) = stream.position();
        progress.advance(now - done);
        done = now;
    }
    stream.check(options.limit)?;
    // The stream's ids (20 bytes a row) go before the history's one sort, its peak.
    let report = stream.report().clone();
    drop(stream);
    load.finish();
    // Nothing is recorded from here on: the ids kept to count shipments once can go.
    model.history.seal();
    times.history = started.elapsed();
    progress.finish("history pass", times.history);

    let started = Instant::now();
    let mut blocks = spill.into_reader()?;
    progress.start("scoring", report.rows_accepted as u64, Unit::Rows);
    loop {
        let t = Instant::now();
        let Some(block) = next_batch(&mut blocks, options.batch_rows())? else {
            break;
        };
        times.reading += t.elapsed();
        let mut scores = score_batch(model, &block, options, &mut times)?;
        let t = Instant::now();
        let mut recommendations = match options.carriers {
            Some(policy) => {
                let rows: Vec<usize> = (0..block.len()).collect();
                model.recommend(&block, &rows, None, policy)?
            }
            None => Vec::new(),
        };
        times.carriers += t.elapsed();
        let t = Instant::now();
        // Handed on in slices: what the sink builds from a row (a frame, factors as text)
        // can weigh more than the row.
        let mut start = 0;
        while start < block.len() {
            let n = SINK_ROWS.min(block.len() - start);
            sink(ScoredBlock {
                table: &block,
                rows: start..start + n,
                scores: scores.drain(..n).collect(),
                recommendations: recommendations
                    .drain(..n.min(recommendations.len()))
                    .collect(),
            })?;
            start += n;
        }
        times.sink += t.elapsed();
        progress.advance(block.len() as u64);
    }
    times.scoring = started.elapsed();
    progress.finish("scoring", times.scoring);
    Ok((report, times))
}

/// The next batch of at least `rows` rows (fewer at the end), from whole blocks in file order.
fn next_batch(blocks: &mut SpillReader, rows: usize) -> Result<Option<ShipmentTable>> {
    let Some(mut batch) = blocks.next_block()? else {
        return Ok(None);
    };
    while batch.len() < rows {
        match blocks.next_block()? {
            Some(b) => batch.append(&b),
            None => break,
        }
    }
    Ok(Some(batch))
}

/// Scores of a batch's rows, in file order. The rows are encoded in decision order, a matrix
/// of [`MATRIX_ROWS`] at a time, with one sweep per core across the whole batch: each
/// entity's cuts only move forward, over a span of the history as dense as the batch is
/// large, while the matrix stays small.
fn score_batch(
    model: &DelayModel,
    batch: &ShipmentTable,
    options: &BatchOptions<'_>,
    times: &mut BatchTimes,
) -> Result<Vec<RiskScore>> {
    let order = batch.order_by_decision_time();
    let mut sweeps: Vec<Sweep> = (0..crate::parallel::threads())
        .map(|_| Sweep::default())
        .collect();
    let mut scores: Vec<Option<RiskScore>> = vec![None; batch.len()];
    for part in order.chunks(MATRIX_ROWS) {
        let t = Instant::now();
        let x = model.features_in_order(batch, part, &mut sweeps);
        times.features += t.elapsed();
        let t = Instant::now();
        let scored = model.score(&x, options.top_factors, options.factors)?;
        for (score, &row) in scored.into_iter().zip(part) {
            scores[row] = Some(score);
        }
        times.model += t.elapsed();
    }
    Ok(scores.into_iter().flatten().collect())
}
