//! The delay-risk model as loaded for inference: encoder, booster, calibration, fallback rules
//! and the history the features are cut from. Batch scoring, evaluation and the service use it.

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::booster::DelayBooster;
use super::calibration::Platt;
use super::fallback::FallbackRules;
use super::forest::Forest;
use crate::artifact::{files, ArtifactReader, Manifest};
use crate::carrier::replay::shipment_of;
use crate::carrier::{rank, Candidate, CarrierArtifact, RankingPolicy, Recommendation};
use crate::data::table::ShipmentTable;
use crate::error::{Error, Result};
use crate::features::history::Delivered;
use crate::features::{Encoder, FeatureMatrix, FeatureSchema, HistoryState};
use crate::parallel::for_row_blocks;

/// Probability thresholds of the risk bands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBands {
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
}

impl Default for RiskBands {
    fn default() -> Self {
        RiskBands {
            medium: 0.25,
            high: 0.5,
            critical: 0.75,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskBand {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
            RiskBand::Critical => "critical",
        }
    }
}

impl RiskBands {
    pub fn band(&self, p: f64) -> RiskBand {
        if p >= self.critical {
            RiskBand::Critical
        } else if p >= self.high {
            RiskBand::High
        } else if p >= self.medium {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }

    pub fn check(&self) -> Result<()> {
        if 0.0 < self.medium
            && self.medium < self.high
            && self.high < self.critical
            && self.critical < 1.0
        {
            Ok(())
        } else {
            Err(Error::param(
                "risk_bands",
                "need 0 < medium < high < critical < 1",
            ))
        }
    }
}

/// Which part of the system produced a risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskSource {
    Model,
    Rules,
}

/// How top factors are attributed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorMethod {
    /// Path contributions along each tree's decision path: as fast as a prediction.
    #[default]
    Path,
    /// Exact TreeSHAP from LightGBM: about a millisecond a row on the default model.
    Shap,
}

/// A feature's push on one prediction, in log-odds (positive raises the risk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    pub feature: String,
    pub value: serde_json::Value,
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskScore {
    pub delay_risk: f64,
    pub risk_band: RiskBand,
    pub top_factors: Vec<Factor>,
    pub source: RiskSource,
    /// The fallback rule that answered, when `source` is rules.
    pub matched_rule: Option<String>,
}

/// An outcome reported after training (the service's outcome intake), as the model takes it.
#[derive(Debug, Clone, Copy)]
pub struct Reported<'a> {
    pub outcome: Delivered<'a>,
    /// The category of the outcome's notes, counted in the carrier's exception mix.
    pub exception: Option<&'a str>,
}

/// Everything in `features.json`: what turns a shipment into a calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub schema: FeatureSchema,
    pub calibration: Platt,
    pub risk_bands: RiskBands,
}

pub struct DelayModel {
    pub manifest: Manifest,
    pub spec: ModelSpec,
    encoder: Encoder,
    /// Exact SHAP only; predictions and path factors come from `forest`, the same trees.
    /// LightGBM's handle may not be used from two threads at once, hence the lock.
    booster: Mutex<DelayBooster>,
    forest: Forest,
    fallback: FallbackRules,
    fallback_columns: Vec<usize>,
    names: Vec<String>,
    pub history: HistoryState,
    /// Scorecards and costs; `None` for artifacts trained before carrier recommendation.
    pub carriers: Option<CarrierArtifact>,
}

// The service shares one loaded model between request threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<DelayModel>();
};

impl std::fmt::Debug for DelayModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayModel")
            .field("version", &self.manifest.version)
            .field("booster", &self.booster)
            .field("history_outcomes", &self.history.len())
            .finish()
    }
}

impl DelayModel {
    /// Loads and verifies an artifact directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let reader = ArtifactReader::open(dir)?;
        let spec: ModelSpec = reader.read_json(files::FEATURES)?;
        let names = spec.schema.names();
        let text = String::from_utf8(reader.read(files::DELAY_MODEL)?)
            .map_err(|_| Error::artifact(reader.path(files::DELAY_MODEL), "not UTF-8 text"))?;
        let booster = DelayBooster::load(&text, spec.schema.n_features())
            .map_err(|e| Error::artifact(reader.path(files::DELAY_MODEL), e.to_string()))?;
        let mut forest = Forest::load(&text)
            .and_then(|f| match f.n_features() == spec.schema.n_features() {
                true => Ok(f),
                false => Err(Error::Model(format!(
                    "the trees expect {} features, the schema has {}",
                    f.n_features(),
                    spec.schema.n_features()
                ))),
            })
            .map_err(|e| Error::artifact(reader.path(files::DELAY_MODEL), e.to_string()))?;
        forest.plan_variants(&spec.schema.carrier_dependent());
        let fallback: FallbackRules = reader.read_json(files::FALLBACK_RULES)?;
        fallback
            .validate()
            .map_err(|e| Error::artifact(reader.path(files::FALLBACK_RULES), e))?;
        let fallback_columns = fallback
            .features
            .iter()
            .map(|f| {
                names.iter().position(|n| n == f).ok_or_else(|| {
                    Error::artifact(
                        reader.path(files::FALLBACK_RULES),
                        format!("unknown feature `{f}`"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut history = HistoryState::new(spec.schema.history.clone());
        if reader.has(files::HISTORY) {
            let bytes = reader.read(files::HISTORY)?;
            read_history(&bytes, &mut history)
                .map_err(|e| Error::artifact(reader.path(files::HISTORY), e.to_string()))?;
        }
        let carriers = if reader.has(files::CARRIERS) {
            let mut c: CarrierArtifact = reader.read_json(files::CARRIERS)?;
            c.scorecards.reindex();
            Some(c)
        } else {
            None
        };
        Ok(DelayModel {
            carriers,
            encoder: Encoder::new(spec.schema.clone()),
            manifest: reader.manifest,
            spec,
            booster: Mutex::new(booster),
            forest,
            fallback,
            fallback_columns,
            names,
            history,
        })
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The probabilities where the risk bands begin.
    pub fn risk_bands(&self) -> RiskBands {
        self.spec.risk_bands
    }

    /// Outcomes the history features hold (training's and those reported since).
    pub fn history_outcomes(&self) -> usize {
        self.history.len()
    }

    /// Whether the artifact has carrier scorecards (older ones do not).
    pub fn has_scorecards(&self) -> bool {
        self.carriers.is_some()
    }

    /// Whether the scorecards or the rate table know `carrier`; `None` without scorecards.
    pub fn knows_carrier(&self, carrier: &str) -> Option<bool> {
        self.carriers.as_ref().map(|c| c.knows(carrier))
    }

    pub fn feature_names(&self) -> &[String] {
        &self.names
    }

    /// Features of table rows, their history cut at each row's decision time.
    pub fn features(&self, table: &ShipmentTable, rows: &[usize]) -> FeatureMatrix {
        self.encoder.encode(table, rows, &self.history)
    }

    /// [`DelayModel::features`] of rows in decision order, continuing `sweeps` (see
    /// [`Encoder::encode_in_order`]).
    pub fn features_in_order(
        &self,
        table: &ShipmentTable,
        rows: &[usize],
        sweeps: &mut [crate::features::history::Sweep],
    ) -> FeatureMatrix {
        self.encoder
            .encode_in_order(table, rows, &self.history, sweeps)
    }

    /// Calibrated risks of encoded rows.
    pub fn predict(&self, x: &FeatureMatrix) -> Result<Vec<f64>> {
        self.check_width(x)?;
        let mut out = vec![0.0; x.n_rows];
        let n = x.n_cols;
        for_row_blocks(x.n_rows, 1, &mut out, 1024, |rows, out| {
            self.forest
                .predict_raw_rows(&x.data[rows.start * n..rows.end * n], out);
            for o in out.iter_mut() {
                *o = self.spec.calibration.apply(*o);
            }
        });
        Ok(out)
    }

    /// Calibrated risks of encoded variants of one shipment (rows that differ in a few
    /// columns, such as the carrier): the same numbers as [`DelayModel::predict`], faster,
    /// because every tree is walked once for all of them up to where they part.
    pub fn predict_variants(&self, x: &FeatureMatrix) -> Result<Vec<f64>> {
        self.check_width(x)?;
        let mut out = vec![0.0; x.n_rows];
        self.predict_variants_into(x, 0..x.n_rows, &mut out);
        Ok(out)
    }

    fn predict_variants_into(&self, x: &FeatureMatrix, rows: Range<usize>, out: &mut [f64]) {
        let n = x.n_cols;
        self.forest
            .predict_raw_variants(&x.data[rows.start * n..rows.end * n], out);
        for r in out.iter_mut() {
            *r = self.spec.calibration.apply(*r);
        }
    }

    /// Risks with the `top_k` strongest factors of each row, attributed by `method`.
    pub fn score(
        &self,
        x: &FeatureMatrix,
        top_k: usize,
        method: FactorMethod,
    ) -> Result<Vec<RiskScore>> {
        self.check_width(x)?;
        let score = |p: f64, top_factors: Vec<Factor>| RiskScore {
            delay_risk: p,
            risk_band: self.spec.risk_bands.band(p),
            top_factors,
            source: RiskSource::Model,
            matched_rule: None,
        };
        if top_k == 0 {
            return Ok(self
                .predict(x)?
                .into_iter()
                .map(|p| score(p, Vec::new()))
                .collect());
        }
        // Contributions sum to the raw score (the last one is the bias), so one pass gives both.
        let width = x.n_cols + 1;
        let from = |c: &[f64], i: usize| {
            let p = self.spec.calibration.apply(c.iter().sum());
            score(p, self.top_factors(x.row(i), &c[..x.n_cols], top_k))
        };
        match method {
            FactorMethod::Shap => Ok(self
                .booster
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contributions(x)?
                .chunks_exact(width)
                .enumerate()
                .map(|(i, c)| from(c, i))
                .collect()),
            FactorMethod::Path => {
                let n = x.n_cols;
                let mut out: Vec<Option<RiskScore>> = vec![None; x.n_rows];
                for_row_blocks(x.n_rows, 1, &mut out, 1024, |rows, out| {
                    // Sized to the rows at hand: a single score once allocated (and the
                    // allocator mapped and unmapped) room for 256 rows on every request.
                    let mut c = vec![0.0; out.len().min(256) * width];
                    for (block, out) in rows.step_by(256).zip(out.chunks_mut(256)) {
                        let c = &mut c[..out.len() * width];
                        let data = &x.data[block * n..(block + out.len()) * n];
                        self.forest.contributions_rows(data, c);
                        for (k, o) in out.iter_mut().enumerate() {
                            *o = Some(from(&c[k * width..(k + 1) * width], block + k));
                        }
                    }
                });
                Ok(out.into_iter().flatten().collect())
            }
        }
    }

    fn check_width(&self, x: &FeatureMatrix) -> Result<()> {
        if x.n_cols == self.forest.n_features() {
            Ok(())
        } else {
            Err(Error::Model(format!(
                "{} feature columns given, the model takes {}",
                x.n_cols,
                self.forest.n_features()
            )))
        }
    }

    fn top_factors(&self, row: &[f64], contrib: &[f64], k: usize) -> Vec<Factor> {
        // A running top-k (strongest first, ties to the lower index): k is small and this runs
        // once per scored row, where sorting every feature showed up in profiles.
        let mut idx: Vec<usize> = Vec::with_capacity(k + 1);
        for (j, c) in contrib.iter().enumerate() {
            if *c == 0.0 || (idx.len() == k && c.abs() <= contrib[idx[k - 1]].abs()) {
                continue;
            }
            let at = idx.partition_point(|&i| contrib[i].abs() >= c.abs());
            idx.insert(at, j);
            idx.truncate(k);
        }
        idx.into_iter()
            .map(|j| Factor {
                feature: self.names[j].clone(),
                value: self.encoder.describe_value(j, row[j]),
                // The booster works in log-odds; the slope keeps contributions on the calibrated scale.
                contribution: (contrib[j] * self.spec.calibration.a * 1e4).round() / 1e4,
            })
            .collect()
    }

    /// A carrier recommendation for each of `rows`: the candidates are the carriers seen on the
    /// row's lane (or `candidates` when given), each scored by the delay model with that carrier
    /// swapped in. `None` for a row when no carrier is known for its lane, or without scorecards.
    pub fn recommend(
        &self,
        table: &ShipmentTable,
        rows: &[usize],
        candidates: Option<&[String]>,
        policy: &RankingPolicy,
    ) -> Result<Vec<Option<Recommendation>>> {
        let Some(carriers) = &self.carriers else {
            return Ok(vec![None; rows.len()]);
        };
        let per_row: Vec<Vec<String>> = rows
            .iter()
            .map(|&r| match candidates {
                Some(c) => c.to_vec(),
                None => carriers.candidates(&table.warehouse[r], &table.destination[r]),
            })
            .collect();
        let mut risk = Vec::with_capacity(per_row.iter().map(Vec::len).sum());
        for (&r, names) in rows.iter().zip(&per_row) {
            let x = self
                .encoder
                .encode_carrier_variants(table, r, names, &self.history);
            self.check_width(&x)?;
            let at = risk.len();
            risk.resize(at + names.len(), 0.0);
            self.predict_variants_into(&x, 0..x.n_rows, &mut risk[at..]);
        }
        let weight = table.numeric("weight_kg");
        let mut at = 0;
        Ok(rows
            .iter()
            .zip(per_row)
            .map(|(&r, names)| {
                let shipment = shipment_of(table, r);
                let list = names
                    .into_iter()
                    .enumerate()
                    .map(|(k, carrier)| {
                        let (expected_cost, transit_days) = carriers.price(
                            &carrier,
                            shipment.warehouse,
                            shipment.destination,
                            weight.map(|w| w.values[r]),
                        );
                        Candidate {
                            model_on_time: Some(1.0 - risk[at + k]),
                            carrier,
                            expected_cost,
                            transit_days,
                        }
                    })
                    .collect::<Vec<_>>();
                at += list.len();
                rank(policy, &carriers.scorecards, &shipment, list)
            })
            .collect())
    }

    /// Takes outcomes reported after training into the history features and the carrier
    /// scorecards; a shipment already held is skipped. Returns, per outcome, whether it was
    /// taken. A few go in one at a time; more (a reload replaying the stored outcomes) in one
    /// sorted load, whatever their order.
    pub fn take_outcomes(&mut self, outcomes: &[Reported<'_>]) -> Vec<bool> {
        let mut taken = vec![false; outcomes.len()];
        if outcomes.len() <= 64 {
            for (t, r) in taken.iter_mut().zip(outcomes) {
                let o = r.outcome;
                *t = self.history.record(
                    o.shipment_id,
                    o.lane,
                    o.decided,
                    o.deadline,
                    o.delivered_at,
                );
            }
        } else {
            let new = self
                .history
                .record_outcomes(outcomes.len(), |i| Some(outcomes[i].outcome));
            for i in new {
                taken[i as usize] = true;
            }
        }
        if let Some(cards) = self.carriers.as_mut() {
            let cards = &mut cards.scorecards;
            for (r, _) in outcomes.iter().zip(&taken).filter(|(_, &t)| t) {
                let (o, l) = (r.outcome, r.outcome.lane);
                cards.record(
                    l.carrier,
                    l.warehouse,
                    l.destination,
                    o.deadline,
                    o.delivered_at,
                );
                if let Some(c) = r.exception {
                    cards.record_exception(l.carrier, l.warehouse, l.destination, c);
                }
            }
        }
        taken
    }

    /// The deterministic fallback's answer for an encoded row.
    pub fn fallback(&self, row: &[f64]) -> RiskScore {
        let rule = self.fallback.evaluate(&self.fallback_columns, row);
        RiskScore {
            delay_risk: rule.delay_risk,
            risk_band: self.spec.risk_bands.band(rule.delay_risk),
            top_factors: Vec::new(),
            source: RiskSource::Rules,
            matched_rule: Some(rule.id.clone()),
        }
    }

    pub fn fallback_rules(&self) -> &FallbackRules {
        &self.fallback
    }
}

/// The delivered shipments a model's history features start from, as Parquet: `rows` of
/// `table` that were delivered, in the order given (training gives decision order, so rows
/// with distinct decision times write the same file in any file order).
pub fn write_history(table: &ShipmentTable, rows: &[usize]) -> Result<Vec<u8>> {
    let rows: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&i| table.delivered_at[i].is_some())
        .collect();
    let rows = rows.as_slice();
    fn col_str(
        name: &str,
        v: &impl std::ops::Index<usize, Output = str>,
        rows: &[usize],
    ) -> Column {
        Column::new(
            name.into(),
            rows.iter().map(|&i| &v[i]).collect::<Vec<&str>>(),
        )
    }
    let mut df = DataFrame::new(
        rows.len(),
        vec![
            col_str("shipment_id", &table.shipment_id, rows),
            col_str("carrier", &table.carrier, rows),
            col_str("warehouse", &table.warehouse, rows),
            col_str("destination", &table.destination, rows),
            Column::new(
                "scheduled_date".into(),
                rows.iter()
                    .map(|&i| table.scheduled_date[i])
                    .collect::<Vec<i64>>(),
            ),
            Column::new(
                "date_deadline".into(),
                rows.iter()
                    .map(|&i| table.date_deadline[i])
                    .collect::<Vec<i64>>(),
            ),
            Column::new(
                "delivered_at".into(),
                rows.iter()
                    .map(|&i| table.delivered_at[i].unwrap_or_default())
                    .collect::<Vec<i64>>(),
            ),
        ],
    )
    .map_err(|source| Error::Polars {
        context: "building history".into(),
        source,
    })?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .finish(&mut df)
        .map_err(|source| Error::Polars {
            context: "writing history".into(),
            source,
        })?;
    Ok(out)
}

/// Loads the artifact's history into `history`, a slice of rows at a time: the ids and names
/// of ten million rows as `String`s took ~1.5 GB; a slice's text goes once its names are
/// resolved, and one sort at the end builds the series.
fn read_history(bytes: &[u8], history: &mut HistoryState) -> PolarsResult<()> {
    const SLICE: usize = 500_000;
    let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
    let rows = reader.num_rows()?;
    let metadata = reader.get_metadata()?.clone();
    let mut load = history.load();
    let mut start = 0;
    while start < rows {
        let mut reader =
            ParquetReader::new(std::io::Cursor::new(bytes)).with_slice(Some((start, SLICE)));
        reader.set_metadata(metadata.clone());
        let df = reader.finish()?;
        // Columns into plain vectors first: `ChunkedArray::get` finds the chunk on every call,
        // and ten million rows of seven columns spent seconds doing only that.
        let s = |n: &str| -> PolarsResult<Vec<&str>> {
            Ok(df
                .column(n)?
                .str()?
                .iter()
                .map(Option::unwrap_or_default)
                .collect())
        };
        let t = |n: &str| -> PolarsResult<Vec<i64>> {
            Ok(df
                .column(n)?
                .i64()?
                .iter()
                .map(Option::unwrap_or_default)
                .collect())
        };
        let (ids, carriers, warehouses, dests) = (
            s("shipment_id")?,
            s("carrier")?,
            s("warehouse")?,
            s("destination")?,
        );
        let (decided, deadlines, delivered) = (
            t("scheduled_date")?,
            t("date_deadline")?,
            t("delivered_at")?,
        );
        load.outcomes(df.height(), |i| {
            Some(Delivered {
                shipment_id: ids[i],
                lane: crate::features::history::Lane {
                    carrier: carriers[i],
                    warehouse: warehouses[i],
                    destination: dests[i],
                },
                decided: decided[i],
                deadline: deadlines[i],
                delivered_at: delivered[i],
            })
        });
        start += df.height().max(1);
    }
    load.finish();
    Ok(())
}
