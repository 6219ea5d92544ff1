//! The training pipeline: split in time, compute features by replaying history, fit the booster
//! with early stopping on a held-out slice of the training period, calibrate on that slice, fit
//! the linfa baseline and fallback tree, evaluate, and write the artifact.

use std::path::Path;
use std::time::{Duration, Instant};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artifact::{files, sha256_hex, ArtifactWriter, Manifest};
use crate::carrier::replay::{replay, ReplayMetrics, ReplaySetup};
use crate::carrier::{
    CarrierArtifact, CostModel, RankingPolicy, RateTable, ScorecardConfig, Scorecards,
};
use crate::data::dates::format_timestamp;
use crate::data::{LoadReport, ShipmentTable, Timestamp};
use crate::error::{Error, Result};
use crate::exceptions::{KeywordRules, NotesTrainConfig, Taxonomy, TrainedNotes};
use crate::features::{Encoder, FeatureMatrix, FeatureSchema, HistoryState, SchemaConfig};
use crate::model::baseline::{BaselineConfig, LogisticBaseline};
use crate::model::booster::{BoosterConfig, DelayBooster, FitData};
use crate::model::calibration::Platt;
use crate::model::delay::{write_history, ModelSpec, RiskBands};
use crate::model::fallback::{FallbackConfig, FallbackRules};
use crate::model::metrics::BinaryMetrics;
use crate::report::{render as render_report, Evaluated, ReportData};

/// Everything a training run is configured by. Check it with [`TrainConfig::check`] before a
/// run: a bad value is reported before any data is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub seed: u64,
    /// Rows decided at or after this time are validation rows.
    pub valid_from: Option<Timestamp>,
    /// Share of the training rows held out for early stopping and calibration: three contiguous
    /// blocks in time, the latest among them, so the slice spans the period instead of one
    /// regime at its end.
    pub calibration_fraction: f64,
    pub schema: SchemaConfig,
    pub booster: BoosterConfig,
    pub baseline: BaselineConfig,
    pub fallback: FallbackConfig,
    pub risk_bands: RiskBands,
    pub scorecards: ScorecardConfig,
    /// The ranking the carrier replay evaluates (normally `policies/carrier_ranking.toml`).
    pub carrier_ranking: RankingPolicy,
    /// The exception classifier (`train --notes`).
    pub notes: NotesTrainConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            valid_from: None,
            calibration_fraction: 0.15,
            schema: SchemaConfig::default(),
            booster: BoosterConfig::default(),
            baseline: BaselineConfig::default(),
            fallback: FallbackConfig::default(),
            risk_bands: RiskBands::default(),
            scorecards: ScorecardConfig::default(),
            carrier_ranking: RankingPolicy::default(),
            notes: NotesTrainConfig::default(),
        }
    }
}

/// A configuration that passed [`TrainConfig::check`].
#[derive(Debug, Clone)]
pub struct CheckedTrainConfig(TrainConfig);

impl TrainConfig {
    pub fn check(self) -> Result<CheckedTrainConfig> {
        if !(self.calibration_fraction > 0.0 && self.calibration_fraction <= 0.5) {
            return Err(Error::param(
                "calibration_fraction",
                format!("{} is not in (0, 0.5]", self.calibration_fraction),
            ));
        }
        self.booster.check()?;
        self.risk_bands.check()?;
        self.scorecards.check()?;
        self.carrier_ranking.check()?;
        self.notes.check()?;
        let h = &self.schema.history;
        if h.windows_days.is_empty() || h.windows_days.contains(&0) {
            return Err(Error::param(
                "history.windows_days",
                "need at least one window of 1 day or more",
            ));
        }
        if h.prior_strength.is_nan() || h.prior_strength < 0.0 {
            return Err(Error::param("history.prior_strength", "must be >= 0"));
        }
        if !(1..=8).contains(&self.fallback.max_depth) {
            return Err(Error::param(
                "fallback.max_depth",
                "must be between 1 and 8 to stay readable",
            ));
        }
        if self.schema.min_category_count == 0 {
            return Err(Error::param(
                "schema.min_category_count",
                "must be at least 1",
            ));
        }
        Ok(CheckedTrainConfig(self))
    }
}

impl CheckedTrainConfig {
    pub fn get(&self) -> &TrainConfig {
        &self.0
    }
}

/// Hooks for progress display; the CLI draws bars, tests ignore them.
pub trait Progress {
    fn start(&mut self, _stage: &str) {}
    fn finish(&mut self, _stage: &str, _elapsed: Duration) {}
}

impl Progress for () {}

/// Where the input came from, for the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataSource {
    pub file_name: String,
    pub fingerprint: String,
    pub profile: Option<String>,
    /// A carrier rate table given with the history (`train --rates`).
    #[serde(skip)]
    pub rates: Option<RateTable>,
    /// The exception taxonomy whose keyword rules classify the history's notes for the
    /// scorecards (`train --taxonomy`); the built-in one when `None`.
    #[serde(skip)]
    pub taxonomy: Option<Taxonomy>,
}

impl DataSource {
    /// Adds a rate table to the source; its content joins the fingerprint.
    pub fn with_rates(mut self, rates: RateTable) -> Self {
        let text = serde_json::to_string(&rates).unwrap_or_default();
        self.fingerprint = format!(
            "sha256:{}",
            sha256_hex(format!("{}{text}", self.fingerprint).as_bytes())
        );
        self.rates = Some(rates);
        self
    }

    /// Adds an exception taxonomy to the source; its content joins the fingerprint.
    pub fn with_taxonomy(mut self, taxonomy: Taxonomy) -> Self {
        let text = serde_json::to_string(&taxonomy).unwrap_or_default();
        self.fingerprint = format!(
            "sha256:{}",
            sha256_hex(format!("{}{text}", self.fingerprint).as_bytes())
        );
        self.taxonomy = Some(taxonomy);
        self
    }

    /// Fingerprints the input file and the profile text together.
    pub fn describe(path: &Path, profile: Option<(&str, &str)>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut all = bytes;
        if let Some((_, text)) = profile {
            all.extend_from_slice(text.as_bytes());
        }
        Ok(DataSource {
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            fingerprint: format!("sha256:{}", sha256_hex(&all)),
            profile: profile.map(|(name, _)| name.to_string()),
            rates: None,
            taxonomy: None,
        })
    }
}

/// What a run measured, also written to the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub version: String,
    pub rows: RowCounts,
    pub trees: usize,
    pub delay_valid: Option<BinaryMetrics>,
    pub delay_holdout: BinaryMetrics,
    pub baseline_valid: Option<BinaryMetrics>,
    pub fallback_valid: Option<BinaryMetrics>,
    pub carrier_valid: Option<ReplayMetrics>,
    pub top_features: Vec<(String, f64)>,
    pub stage_seconds: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowCounts {
    pub read: usize,
    pub rejected: usize,
    pub open: usize,
    pub fit: usize,
    pub calibration: usize,
    pub validation: usize,
}

struct Stages<'a> {
    progress: &'a mut dyn Progress,
    times: Vec<(String, f64)>,
}

impl Stages<'_> {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.progress.start(name);
        let t = Instant::now();
        let out = f()?;
        let elapsed = t.elapsed();
        self.progress.finish(name, elapsed);
        self.times.push((name.to_string(), elapsed.as_secs_f64()));
        Ok(out)
    }
}

/// Where a run writes, and what it stamps on the artifact.
#[derive(Clone, Copy)]
pub struct Output<'a> {
    /// The artifact directory.
    pub dir: &'a Path,
    /// The manifest's `created_at` (callers pass a fixed value for reproducible artifacts).
    pub created_at: &'a str,
    /// Also write the fit and validation feature matrices here, for outside tools.
    pub export_features: Option<&'a Path>,
    /// The exception classifier trained in the same run, stored in the same artifact.
    pub exceptions: Option<&'a TrainedNotes>,
}

/// Runs the pipeline on a loaded table and writes the artifact.
pub fn train(
    table: &ShipmentTable,
    report: &LoadReport,
    source: &DataSource,
    config: &CheckedTrainConfig,
    output: Output<'_>,
    progress: &mut dyn Progress,
) -> Result<(Manifest, TrainSummary)> {
    let Output {
        dir: out,
        created_at,
        export_features,
        exceptions,
    } = output;
    let cfg = config.get();
    let mut stages = Stages {
        progress,
        times: Vec::new(),
    };

    let order = table.order_by_decision_time();
    let labelled: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| table.delivered_at[i].is_some())
        .collect();
    let (train_rows, valid_rows): (Vec<usize>, Vec<usize>) = match cfg.valid_from {
        Some(v) => labelled.iter().partition(|&&i| table.scheduled_date[i] < v),
        None => (labelled.clone(), Vec::new()),
    };
    // Contiguous blocks rather than single rows: shipments booked together are near-duplicates,
    // and a neighbour in the fit set would make the slice look easier than the future.
    let every = (1.0 / cfg.calibration_fraction).round().max(2.0) as usize;
    let blocks = every * 3;
    let (mut fit_rows, mut calib_rows) = (Vec::new(), Vec::new());
    for (k, &r) in train_rows.iter().enumerate() {
        if (k * blocks / train_rows.len().max(1)) % every == every - 1 {
            calib_rows.push(r);
        } else {
            fit_rows.push(r);
        }
    }
    let (fit_rows, calib_rows) = (fit_rows.as_slice(), calib_rows.as_slice());
    let labels: Vec<bool> = (0..table.len())
        .map(|i| table.is_late(i).unwrap_or(false))
        .collect();
    check_rows("training", fit_rows, &labels, 50)?;
    check_rows(
        "calibration (the latest part of the training period)",
        calib_rows,
        &labels,
        20,
    )?;
    if cfg.valid_from.is_some() && valid_rows.is_empty() {
        return Err(Error::Input(
            "no delivered rows are decided on or after --valid-from: nothing to validate on".into(),
        ));
    }

    let (encoder, x, history) = stages.run("features", || {
        let schema = FeatureSchema::fit(table, &train_rows, &cfg.schema);
        let encoder = Encoder::new(schema);
        let mut history = HistoryState::new(cfg.schema.history.clone());
        history.record_table(table);
        let x = encoder.encode(table, &(0..table.len()).collect::<Vec<_>>(), &history);
        Ok((encoder, x, history))
    })?;
    let names = encoder.schema().names();
    let take = |rows: &[usize]| {
        (
            x.select_rows(rows),
            rows.iter().map(|&r| labels[r]).collect::<Vec<bool>>(),
        )
    };
    let (x_fit, y_fit) = take(fit_rows);
    let (x_cal, y_cal) = take(calib_rows);
    let (x_val, y_val) = take(&valid_rows);

    if let Some(dir) = export_features {
        let x_train = x.select_rows(&train_rows);
        let y_train: Vec<bool> = train_rows.iter().map(|&r| labels[r]).collect();
        export_matrices(
            dir,
            &names,
            &encoder,
            &[("fit", &x_train, &y_train), ("valid", &x_val, &y_val)],
        )?;
    }

    let booster_cfg = cfg.booster.resolve(train_rows.len());
    let categorical = encoder.schema().categorical_indices();
    let booster = stages.run("booster", || {
        let data = FitData {
            x: &x_fit,
            y: &y_fit,
            names: &names,
            categorical: &categorical,
        };
        DelayBooster::fit(&booster_cfg, cfg.seed, data, Some((&x_cal, &y_cal)))
    })?;
    let (calibration, holdout, holdout_probs) = stages.run("calibration", || {
        let raw = booster.raw_scores(&x_cal)?;
        let platt = Platt::fit(&raw, &y_cal);
        let probs: Vec<f64> = raw.iter().map(|&r| platt.apply(r)).collect();
        Ok((platt, BinaryMetrics::compute(&y_cal, &probs), probs))
    })?;
    let booster = if booster_cfg.refit_on_all == Some(true) {
        stages.run("refit", || {
            let trees = (booster.num_trees() as f64 * train_rows.len() as f64
                / fit_rows.len().max(1) as f64)
                .round() as u32;
            let (x_all, y_all) = take(&train_rows);
            let data = FitData {
                x: &x_all,
                y: &y_all,
                names: &names,
                categorical: &categorical,
            };
            DelayBooster::fit_trees(&booster_cfg, cfg.seed, data, trees)
        })?
    } else {
        booster
    };
    let predict = |m: &FeatureMatrix| -> Result<Vec<f64>> {
        Ok(booster
            .raw_scores(m)?
            .into_iter()
            .map(|r| calibration.apply(r))
            .collect())
    };

    let linear_cols: Vec<usize> = encoder
        .schema()
        .standalone_indices()
        .into_iter()
        .chain(encoder.schema().history_indices())
        .collect();
    let fit_idx: Vec<usize> = (0..x_fit.n_rows).collect();
    let baseline = stages.run("baseline", || {
        LogisticBaseline::fit(&cfg.baseline, &x_fit, &y_fit, &fit_idx, &linear_cols)
    })?;
    let fallback = stages.run("fallback tree", || {
        FallbackRules::fit(
            &cfg.fallback,
            &x_fit,
            &y_fit,
            &fit_idx,
            &encoder.schema().standalone_indices(),
            &names,
        )
    })?;

    let standalone = encoder.schema().standalone_indices();
    let (valid_probs, delay_valid, baseline_valid, fallback_valid) = if valid_rows.is_empty() {
        (Vec::new(), None, None, None)
    } else {
        let p = predict(&x_val)?;
        let b = baseline.predict(&x_val);
        let f: Vec<f64> = (0..x_val.n_rows)
            .map(|i| fallback.evaluate(&standalone, x_val.row(i)).delay_risk)
            .collect();
        let m = (
            Some(BinaryMetrics::compute(&y_val, &p)),
            Some(BinaryMetrics::compute(&y_val, &b)),
            Some(BinaryMetrics::compute(&y_val, &f)),
        );
        (vec![p, b, f], m.0, m.1, m.2)
    };

    let carriers = stages.run("carriers", || {
        let cost = CostModel::fit(table, &train_rows);
        let replayed = (!valid_rows.is_empty()).then(|| {
            let mut on_time = |r: usize, carriers: &[String]| -> Vec<f64> {
                let mut swapped = table.select(&vec![r; carriers.len()]);
                swapped.carrier = carriers.iter().map(String::as_str).collect();
                let rows: Vec<usize> = (0..carriers.len()).collect();
                let x = encoder.encode(&swapped, &rows, &history);
                predict(&x)
                    .map(|p| p.into_iter().map(|p| 1.0 - p).collect())
                    .unwrap_or_else(|_| vec![0.5; carriers.len()])
            };
            replay(
                table,
                &train_rows,
                &valid_rows,
                &ReplaySetup {
                    scorecards: &cfg.scorecards,
                    policy: &cfg.carrier_ranking,
                    cost: cost.as_ref(),
                    rates: source.rates.as_ref(),
                },
                &mut on_time,
            )
        });
        let rules = KeywordRules::new(source.taxonomy.clone().unwrap_or_default());
        let scorecards = Scorecards::build(cfg.scorecards.clone(), table, &train_rows, &rules);
        let rates = source.rates.clone();
        Ok((
            CarrierArtifact {
                scorecards,
                cost,
                rates,
            },
            replayed,
        ))
    })?;
    let (carriers, carrier_valid) = carriers;

    let importance = booster.importance()?;
    let total: f64 = importance.iter().sum::<f64>().max(1e-12);
    let mut top_features: Vec<(String, f64)> = names
        .iter()
        .cloned()
        .zip(importance.iter().map(|g| (g / total * 1e4).round() / 1e4))
        .collect();
    top_features.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top_features.truncate(15);

    let spec = ModelSpec {
        schema: encoder.schema().clone(),
        calibration,
        risk_bands: cfg.risk_bands,
    };
    let model_text = booster.save_string()?;
    let version = format!(
        "dr-{}",
        &sha256_hex(
            format!(
                "{}{}{}",
                source.fingerprint,
                serde_json::to_string(cfg).unwrap_or_default(),
                exceptions.map_or("", |e| e.fingerprint.as_str())
            )
            .as_bytes()
        )[..12]
    );
    let rows = RowCounts {
        read: report.rows_read,
        rejected: report.rejected.len(),
        open: report.open_shipments,
        fit: fit_rows.len(),
        calibration: calib_rows.len(),
        validation: valid_rows.len(),
    };
    let summary = TrainSummary {
        version: version.clone(),
        rows,
        trees: booster.num_trees(),
        delay_valid,
        delay_holdout: holdout,
        baseline_valid,
        fallback_valid,
        carrier_valid,
        top_features,
        stage_seconds: Vec::new(),
    };

    let report_html = stages.run("report", || {
        let evaluated = match (&summary.delay_valid, &summary.baseline_valid) {
            (Some(m), Some(b)) => Evaluated {
                name: "validation period",
                labels: &y_val,
                model: &valid_probs[0],
                model_metrics: *m,
                baseline: Some((&valid_probs[1], *b)),
            },
            _ => Evaluated {
                name: "calibration slice (no validation period)",
                labels: &y_cal,
                model: &holdout_probs,
                model_metrics: holdout,
                baseline: None,
            },
        };
        let late = labelled.iter().filter(|&&r| labels[r]).count();
        let (first, last) = (
            table.scheduled_date.iter().min().copied().unwrap_or(0),
            table.scheduled_date.iter().max().copied().unwrap_or(0),
        );
        let views = carriers.scorecards.views();
        let data = ReportData {
            version: &version,
            created_at,
            source: &source.file_name,
            counts: vec![
                ("rows read", report.rows_read.to_string()),
                ("rows rejected", report.rejected.len().to_string()),
                (
                    "open shipments (no outcome yet)",
                    report.open_shipments.to_string(),
                ),
                (
                    "decision dates",
                    format!("{} to {}", format_timestamp(first), format_timestamp(last)),
                ),
                (
                    "late rate (delivered rows)",
                    format!(
                        "{:.1}% of {}",
                        late as f64 * 100.0 / labelled.len().max(1) as f64,
                        labelled.len()
                    ),
                ),
                ("fit rows", fit_rows.len().to_string()),
                ("calibration rows", calib_rows.len().to_string()),
                ("validation rows", valid_rows.len().to_string()),
                ("trees", booster.num_trees().to_string()),
            ],
            rejected: &report.rejected,
            evaluated,
            importance: &summary.top_features,
            scorecards: &views,
            replay: summary.carrier_valid,
            exceptions: exceptions.map(|e| &e.metrics),
        };
        Ok(render_report(&data))
    })?;

    let manifest = stages.run("artifact", || {
        let mut w = ArtifactWriter::create(out)?;
        w.write(files::DELAY_MODEL, model_text.as_bytes())?;
        w.write_json(files::FEATURES, &spec)?;
        w.write_json(files::BASELINE, &baseline)?;
        w.write_json(files::FALLBACK_RULES, &fallback)?;
        w.write_json(files::CARRIERS, &carriers)?;
        w.write(files::REPORT, report_html.as_bytes())?;
        w.write(files::HISTORY, &write_history(table)?)?;
        if !valid_rows.is_empty() {
            w.write(
                files::VALID_PREDICTIONS,
                &valid_predictions(table, &valid_rows, &labels, &valid_probs)?,
            )?;
        }
        let mut extra = manifest_sections(table, report, source, cfg, &summary, &names, &spec);
        extra.insert("booster_resolved".into(), serde_json::json!(booster_cfg));
        if let Some(e) = exceptions {
            e.write(&mut w)?;
            e.add_manifest_sections(&mut extra);
        }
        w.finish(version.clone(), created_at.to_string(), extra)
    })?;
    let mut summary = summary;
    summary.stage_seconds = stages.times;
    Ok((manifest, summary))
}

/// Writes feature matrices as Parquet (plus the categorical names) so that an outside tool,
/// such as the benchmark's Python peer, can fit on exactly the features training used.
fn export_matrices(
    dir: &Path,
    names: &[String],
    encoder: &Encoder,
    sets: &[(&str, &FeatureMatrix, &[bool])],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, m, y) in sets {
        let mut cols: Vec<Column> = (0..m.n_cols)
            .map(|c| {
                Column::new(
                    names[c].as_str().into(),
                    (0..m.n_rows).map(|r| m.row(r)[c]).collect::<Vec<f64>>(),
                )
            })
            .collect();
        cols.push(Column::new(
            "__late__".into(),
            y.iter().map(|&b| b as i32).collect::<Vec<_>>(),
        ));
        let mut df = DataFrame::new(m.n_rows, cols).map_err(|source| Error::Polars {
            context: "exporting features".into(),
            source,
        })?;
        let path = dir.join(format!("{name}.parquet"));
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        ParquetWriter::new(file)
            .finish(&mut df)
            .map_err(|source| Error::Polars {
                context: format!("writing {}", path.display()),
                source,
            })?;
    }
    let cats: Vec<&String> = encoder
        .schema()
        .categorical
        .iter()
        .map(|v| &v.name)
        .collect();
    let path = dir.join("categorical.json");
    std::fs::write(&path, serde_json::to_vec(&cats).unwrap_or_default())
        .map_err(|e| Error::io(&path, e))?;
    Ok(())
}

fn check_rows(what: &str, rows: &[usize], labels: &[bool], min: usize) -> Result<()> {
    let late = rows.iter().filter(|&&r| labels[r]).count();
    if rows.len() < min {
        return Err(Error::Input(format!(
            "the {what} rows number {}, fewer than the {min} needed; supply more delivered history or move --valid-from later",
            rows.len()
        )));
    }
    if late == 0 || late == rows.len() {
        return Err(Error::Input(format!(
            "the {what} rows are all {}: a delay model needs both late and on-time deliveries",
            if late == 0 { "on time" } else { "late" }
        )));
    }
    Ok(())
}

fn valid_predictions(
    table: &ShipmentTable,
    rows: &[usize],
    labels: &[bool],
    probs: &[Vec<f64>],
) -> Result<Vec<u8>> {
    fn s<'t>(v: &'t impl std::ops::Index<usize, Output = str>, rows: &[usize]) -> Vec<&'t str> {
        rows.iter().map(|&i| &v[i]).collect()
    }
    let mut df = DataFrame::new(
        rows.len(),
        vec![
            Column::new("shipment_id".into(), s(&table.shipment_id, rows)),
            Column::new(
                "scheduled_date".into(),
                rows.iter()
                    .map(|&i| format_timestamp(table.scheduled_date[i]))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "date_deadline".into(),
                rows.iter()
                    .map(|&i| format_timestamp(table.date_deadline[i]))
                    .collect::<Vec<_>>(),
            ),
            Column::new("carrier".into(), s(&table.carrier, rows)),
            Column::new("warehouse".into(), s(&table.warehouse, rows)),
            Column::new("destination".into(), s(&table.destination, rows)),
            Column::new(
                "late".into(),
                rows.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
            ),
            Column::new("delay_risk".into(), probs[0].clone()),
            Column::new("baseline_risk".into(), probs[1].clone()),
            Column::new("fallback_risk".into(), probs[2].clone()),
        ],
    )
    .map_err(|source| Error::Polars {
        context: "validation predictions".into(),
        source,
    })?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .finish(&mut df)
        .map_err(|source| Error::Polars {
            context: "writing validation predictions".into(),
            source,
        })?;
    Ok(out)
}

fn manifest_sections(
    table: &ShipmentTable,
    report: &LoadReport,
    source: &DataSource,
    cfg: &TrainConfig,
    summary: &TrainSummary,
    names: &[String],
    spec: &ModelSpec,
) -> serde_json::Map<String, serde_json::Value> {
    let delivered: Vec<usize> = (0..table.len())
        .filter(|&i| table.delivered_at[i].is_some())
        .collect();
    let late = delivered
        .iter()
        .filter(|&&i| table.is_late(i) == Some(true))
        .count();
    let first = table.scheduled_date.iter().min().copied().unwrap_or(0);
    let last = table.scheduled_date.iter().max().copied().unwrap_or(0);
    let mut metrics = serde_json::json!({
        "delay_risk": { "holdout": summary.delay_holdout },
    });
    if let (Some(v), Some(b), Some(f)) = (
        summary.delay_valid,
        summary.baseline_valid,
        summary.fallback_valid,
    ) {
        metrics["delay_risk"]["valid"] = serde_json::json!(v);
        metrics["baseline"] = serde_json::json!({ "valid": b });
        metrics["fallback"] = serde_json::json!({ "valid": f });
    }
    if let Some(c) = summary.carrier_valid {
        metrics["carrier"] = serde_json::json!({ "valid": c });
    }
    let value = serde_json::json!({
        "data": {
            "source": source,
            "rows_read": report.rows_read,
            "rows_accepted": report.rows_accepted,
            "rows_rejected": report.rejected.len(),
            "rejected_examples": report.rejected.iter().take(20).map(|r| r.to_string()).collect::<Vec<_>>(),
            "dropped_columns": report.dropped_columns,
            "open_shipments": report.open_shipments,
            "decision_time_range": [format_timestamp(first), format_timestamp(last)],
            "late_rate": late as f64 / delivered.len().max(1) as f64,
        },
        "rows": summary.rows,
        "feature_schema": {
            "names": names,
            "categorical": spec.schema.categorical.iter().map(|v| &v.name).collect::<Vec<_>>(),
            "standalone": spec.schema.standalone_indices().iter().map(|&i| &names[i]).collect::<Vec<_>>(),
        },
        "params": cfg,
        "booster": { "trees": summary.trees, "library": "LightGBM 4.7 (lightgbm3)" },
        "calibration": { "method": "platt", "a": spec.calibration.a, "b": spec.calibration.b },
        "top_features": summary.top_features,
        "metrics": metrics,
    });
    match value {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("built as an object"),
    }
}
