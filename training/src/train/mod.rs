//! The training pipeline: split in time, compute features by replaying history, fit the booster
//! with early stopping on a held-out slice of the training period, calibrate on that slice, fit
//! the linfa baseline and fallback tree, evaluate, and write the artifact.
//!
//! Each stage is a function from typed inputs to a typed output, run through [`Stages`], which
//! times it and reports its progress. The feature matrix is built once, over the delivered rows
//! in decision order, in the layout LightGBM reads; the fit, calibration and validation sets
//! are runs of it ([`Rows`]), never copies.

mod split;

use std::path::Path;
use std::time::Instant;

pub use crate::progress::{Progress, Unit};
use split::Split;

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
use crate::features::{Encoder, FeatureMatrix, FeatureSchema, HistoryState, Rows, SchemaConfig};
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

    /// Fingerprints the input file and the profile text together, reading the file in
    /// blocks (it may be larger than memory allows twice).
    pub fn describe(path: &Path, profile: Option<(&str, &str)>) -> Result<Self> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf).map_err(|e| Error::io(path, e))? {
                0 => break,
                n => hasher.update(&buf[..n]),
            }
        }
        if let Some((_, text)) = profile {
            hasher.update(text.as_bytes());
        }
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(DataSource {
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            fingerprint: format!("sha256:{digest}"),
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

/// Times each stage and reports its progress.
struct Stages<'a> {
    progress: &'a dyn Progress,
    times: Vec<(String, f64)>,
}

impl Stages<'_> {
    /// Runs a stage of `total` units (0: unknown), which reports them to the progress it is
    /// given.
    fn run<T>(
        &mut self,
        name: &str,
        total: u64,
        unit: Unit,
        f: impl FnOnce(&dyn Progress) -> Result<T>,
    ) -> Result<T> {
        self.progress.start(name, total, unit);
        let t = Instant::now();
        let out = f(self.progress)?;
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

/// The features stage's output: the encoder, the matrix over [`Split::labelled`], and the
/// history it was cut from when the carrier replay still needs it.
struct Features {
    encoder: Encoder,
    x: FeatureMatrix,
    history: Option<HistoryState>,
}

/// The delay model once fitted: booster, calibration and what the calibration slice said.
struct Fitted {
    booster: DelayBooster,
    calibration: Platt,
    holdout: BinaryMetrics,
    holdout_probs: Vec<f64>,
    config: BoosterConfig,
}

/// Validation-period predictions of the booster, baseline and fallback, with their metrics.
#[derive(Default)]
struct Validation {
    labels: Vec<bool>,
    /// Booster, baseline, fallback; empty without a validation period.
    probs: Vec<Vec<f64>>,
    delay: Option<BinaryMetrics>,
    baseline: Option<BinaryMetrics>,
    fallback: Option<BinaryMetrics>,
}

/// Runs the pipeline on a loaded table and writes the artifact.
pub fn train(
    table: &ShipmentTable,
    report: &LoadReport,
    source: &DataSource,
    config: &CheckedTrainConfig,
    output: Output<'_>,
    progress: &dyn Progress,
) -> Result<(Manifest, TrainSummary)> {
    let cfg = config.get();
    let mut stages = Stages {
        progress,
        times: vec![("reading".to_string(), report.seconds)],
    };
    let split = Split::new(table, cfg)?;
    let n = split.labelled.len() as u64;
    let features = stages.run("features", n, Unit::Rows, |p| {
        features(table, &split, cfg, p)
    })?;
    let x = &features.x;
    let names = features.encoder.schema().names();
    let fit_rows = Rows::new(x, split.fit.clone());
    let calibration_rows = Rows::new(x, split.calibration.clone());
    let train_rows = Rows::span(x, 0..split.train);
    let valid_rows = Rows::span(x, split.valid());
    if let Some(dir) = output.export_features {
        let y_train = split.labels_in(0..split.train);
        let y_valid = split.labels_in(split.valid());
        export_matrices(
            dir,
            &names,
            &features.encoder,
            &[
                ("fit", &train_rows, &y_train),
                ("valid", &valid_rows, &y_valid),
            ],
        )?;
    }

    let Fitted {
        booster,
        calibration,
        holdout,
        holdout_probs,
        config: booster_cfg,
    } = fit_delay_model(
        &mut stages,
        cfg,
        &split,
        (&features.encoder, &names),
        (&fit_rows, &calibration_rows, &train_rows),
    )?;
    let predict = |m: &Rows<'_>| -> Result<Vec<f64>> {
        Ok(booster
            .raw_scores(m)?
            .into_iter()
            .map(|r| calibration.apply(r))
            .collect())
    };

    let schema = features.encoder.schema();
    let (baseline, fallback) = fit_rules(&mut stages, cfg, &split, (schema, &names), &fit_rows)?;
    let validation = validate(&split, &valid_rows, &predict, &baseline, &fallback, schema)?;

    let valid_len = split.valid().len() as u64;
    let (carriers, carrier_valid) = stages.run("carriers", valid_len, Unit::Rows, |p| {
        carrier_stage(table, &split, cfg, source, &features, &predict, p)
    })?;
    drop(features.history);

    let top_features = top_features(&booster, &names)?;
    let spec = ModelSpec {
        schema: schema.clone(),
        calibration,
        risk_bands: cfg.risk_bands,
    };
    let model_text = booster.save_string()?;
    let version = version_of(source, cfg, output);
    let rows = RowCounts {
        read: report.rows_read,
        rejected: report.rejected.len(),
        open: report.open_shipments,
        fit: split.fit_len(),
        calibration: split.calibration_len(),
        validation: split.valid().len(),
    };
    let summary = TrainSummary {
        version: version.clone(),
        rows,
        trees: booster.num_trees(),
        delay_valid: validation.delay,
        delay_holdout: holdout,
        baseline_valid: validation.baseline,
        fallback_valid: validation.fallback,
        carrier_valid,
        top_features,
        stage_seconds: Vec::new(),
    };

    let report_html = stages.run("report", 0, Unit::Rows, |_| {
        Ok(render_training_report(
            table,
            report,
            source,
            &split,
            &summary,
            &validation,
            &holdout_probs,
            &carriers,
            output,
        ))
    })?;

    let run = Run {
        table,
        report,
        source,
        cfg,
        split: &split,
        output,
    };
    let manifest = stages.run("artifact", 0, Unit::Rows, |_| {
        write_artifact(
            &run,
            &Artifact {
                model_text: &model_text,
                spec: &spec,
                booster: &booster_cfg,
                baseline: &baseline,
                fallback: &fallback,
                carriers: &carriers,
                report_html: &report_html,
            },
            &validation,
            &summary,
            &names,
        )
    })?;
    let mut summary = summary;
    summary.stage_seconds = stages.times;
    Ok((manifest, summary))
}

/// The inputs every later stage of one run reads.
struct Run<'a> {
    table: &'a ShipmentTable,
    report: &'a LoadReport,
    source: &'a DataSource,
    cfg: &'a TrainConfig,
    split: &'a Split,
    output: Output<'a>,
}

/// The fitted parts the artifact stores.
struct Artifact<'a> {
    model_text: &'a str,
    spec: &'a ModelSpec,
    booster: &'a BoosterConfig,
    baseline: &'a LogisticBaseline,
    fallback: &'a FallbackRules,
    carriers: &'a CarrierArtifact,
    report_html: &'a str,
}

/// The booster (fitted, calibrated, and refitted on the whole training period when the
/// configuration asks), as the "booster" and "refit" stages.
fn fit_delay_model(
    stages: &mut Stages<'_>,
    cfg: &TrainConfig,
    split: &Split,
    (encoder, names): (&Encoder, &[String]),
    (fit_rows, calibration_rows, train_rows): (&Rows<'_>, &Rows<'_>, &Rows<'_>),
) -> Result<Fitted> {
    let booster_cfg = cfg.booster.resolve(split.train);
    let iterations = booster_cfg.num_iterations as u64;
    let categorical = encoder.schema().categorical_indices();
    let mut fitted = stages.run("booster", iterations, Unit::Trees, |p| {
        fit_booster(
            booster_cfg,
            cfg.seed,
            split,
            (fit_rows, calibration_rows),
            (names, &categorical),
            p,
        )
    })?;
    if fitted.config.refit_on_all == Some(true) {
        let trees = (fitted.booster.num_trees() as f64 * split.train as f64
            / split.fit_len().max(1) as f64)
            .round() as u32;
        fitted.booster = stages.run("refit", trees as u64, Unit::Trees, |p| {
            let y = split.labels_in(0..split.train);
            let data = FitData {
                x: train_rows,
                y: &y,
                names,
                categorical: &categorical,
                progress: p,
            };
            DelayBooster::fit_trees(&fitted.config, cfg.seed, data, trees)
        })?;
    }
    Ok(fitted)
}

/// The linfa baseline on the standalone and history features, and the fallback tree on the
/// standalone ones, both fitted on the fit rows.
fn fit_rules(
    stages: &mut Stages<'_>,
    cfg: &TrainConfig,
    split: &Split,
    (schema, names): (&FeatureSchema, &[String]),
    fit_rows: &Rows<'_>,
) -> Result<(LogisticBaseline, FallbackRules)> {
    let linear_cols: Vec<usize> = schema
        .standalone_indices()
        .into_iter()
        .chain(schema.history_indices())
        .collect();
    let y_fit = split.labels_of(&split.fit);
    let fit_idx: Vec<usize> = (0..fit_rows.n_rows()).collect();
    let baseline = stages.run("baseline", 0, Unit::Rows, |_| {
        LogisticBaseline::fit(&cfg.baseline, fit_rows, &y_fit, &fit_idx, &linear_cols)
    })?;
    let fallback = stages.run("fallback tree", 0, Unit::Rows, |_| {
        FallbackRules::fit(
            &cfg.fallback,
            fit_rows,
            &y_fit,
            &fit_idx,
            &schema.standalone_indices(),
            names,
        )
    })?;
    Ok((baseline, fallback))
}

/// The booster's 15 most important features by gain, as shares of the total.
fn top_features(booster: &DelayBooster, names: &[String]) -> Result<Vec<(String, f64)>> {
    let importance = booster.importance()?;
    let total: f64 = importance.iter().sum::<f64>().max(1e-12);
    let mut top: Vec<(String, f64)> = names
        .iter()
        .cloned()
        .zip(importance.iter().map(|g| (g / total * 1e4).round() / 1e4))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(15);
    Ok(top)
}

/// The artifact's version: a digest of the data, the configuration and the notes model, so
/// the same inputs give the same version.
fn version_of(source: &DataSource, cfg: &TrainConfig, output: Output<'_>) -> String {
    format!(
        "dr-{}",
        &sha256_hex(
            format!(
                "{}{}{}",
                source.fingerprint,
                serde_json::to_string(cfg).unwrap_or_default(),
                output.exceptions.map_or("", |e| e.fingerprint.as_str())
            )
            .as_bytes()
        )[..12]
    )
}

/// Writes the artifact directory and its manifest.
fn write_artifact(
    run: &Run<'_>,
    a: &Artifact<'_>,
    validation: &Validation,
    summary: &TrainSummary,
    names: &[String],
) -> Result<Manifest> {
    let (table, split) = (run.table, run.split);
    let mut w = ArtifactWriter::create(run.output.dir)?;
    w.write(files::DELAY_MODEL, a.model_text.as_bytes())?;
    w.write_json(files::FEATURES, a.spec)?;
    w.write_json(files::BASELINE, a.baseline)?;
    w.write_json(files::FALLBACK_RULES, a.fallback)?;
    w.write_json(files::CARRIERS, a.carriers)?;
    w.write(files::REPORT, a.report_html.as_bytes())?;
    w.write(files::HISTORY, &write_history(table, &split.labelled)?)?;
    if !split.valid().is_empty() {
        w.write(
            files::VALID_PREDICTIONS,
            &valid_predictions(table, split.valid_rows(), &split.late, &validation.probs)?,
        )?;
    }
    let mut extra = manifest_sections(
        table, run.report, run.source, run.cfg, summary, names, a.spec,
    );
    extra.insert("booster_resolved".into(), serde_json::json!(a.booster));
    if let Some(e) = run.output.exceptions {
        e.write(&mut w)?;
        e.add_manifest_sections(&mut extra);
    }
    w.finish(
        summary.version.clone(),
        run.output.created_at.to_string(),
        extra,
    )
}

/// The schema fitted on the training period, the history of every row of the table, and the
/// feature matrix over the delivered rows in decision order (queries in time order keep the
/// history's searches in cache: shuffled queries cost four times as much at 1M rows).
fn features(
    table: &ShipmentTable,
    split: &Split,
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> Result<Features> {
    let schema = FeatureSchema::fit(table, split.train_rows(), &cfg.schema);
    let encoder = Encoder::new(schema);
    let mut history = HistoryState::new(cfg.schema.history.clone());
    history.record_table(table);
    let x = encoder.encode_with_progress(table, &split.labelled, &history, progress);
    // The replay of the validation period is the only later use of the history; without one
    // its memory (~1.5 GB at ten million rows) goes back before the booster is fitted.
    let history = (!split.valid().is_empty()).then_some(history);
    Ok(Features {
        encoder,
        x,
        history,
    })
}

/// The booster with early stopping on the calibration slice, and its Platt calibration.
fn fit_booster(
    config: BoosterConfig,
    seed: u64,
    split: &Split,
    (fit, calibration): (&Rows<'_>, &Rows<'_>),
    (names, categorical): (&[String], &[usize]),
    progress: &dyn Progress,
) -> Result<Fitted> {
    let y_fit = split.labels_of(&split.fit);
    let y_cal = split.labels_of(&split.calibration);
    let data = FitData {
        x: fit,
        y: &y_fit,
        names,
        categorical,
        progress,
    };
    let booster = DelayBooster::fit(&config, seed, data, Some((calibration, &y_cal)))?;
    let raw = booster.raw_scores(calibration)?;
    let platt = Platt::fit(&raw, &y_cal);
    let probs: Vec<f64> = raw.iter().map(|&r| platt.apply(r)).collect();
    Ok(Fitted {
        booster,
        holdout: BinaryMetrics::compute(&y_cal, &probs),
        calibration: platt,
        holdout_probs: probs,
        config,
    })
}

/// The booster's, baseline's and fallback's predictions and metrics on the validation period.
fn validate(
    split: &Split,
    valid: &Rows<'_>,
    predict: &dyn Fn(&Rows<'_>) -> Result<Vec<f64>>,
    baseline: &LogisticBaseline,
    fallback: &FallbackRules,
    schema: &FeatureSchema,
) -> Result<Validation> {
    if valid.n_rows() == 0 {
        return Ok(Validation::default());
    }
    let labels = split.labels_in(split.valid());
    let standalone = schema.standalone_indices();
    let p = predict(valid)?;
    let b = baseline.predict(valid);
    let f: Vec<f64> = (0..valid.n_rows())
        .map(|i| fallback.evaluate(&standalone, valid.row(i)).delay_risk)
        .collect();
    Ok(Validation {
        delay: Some(BinaryMetrics::compute(&labels, &p)),
        baseline: Some(BinaryMetrics::compute(&labels, &b)),
        fallback: Some(BinaryMetrics::compute(&labels, &f)),
        probs: vec![p, b, f],
        labels,
    })
}

/// Scorecards, the cost model and, with a validation period, the recommender's replay.
fn carrier_stage(
    table: &ShipmentTable,
    split: &Split,
    cfg: &TrainConfig,
    source: &DataSource,
    features: &Features,
    predict: &dyn Fn(&Rows<'_>) -> Result<Vec<f64>>,
    progress: &dyn Progress,
) -> Result<(CarrierArtifact, Option<ReplayMetrics>)> {
    let train_rows = split.train_rows();
    let cost = CostModel::fit(table, train_rows);
    let replayed = features.history.as_ref().map(|history| {
        let mut on_time = |r: usize, carriers: &[String]| -> Vec<f64> {
            progress.advance(1);
            let mut swapped = table.select(&vec![r; carriers.len()]);
            swapped.carrier = carriers.iter().map(String::as_str).collect();
            let rows: Vec<usize> = (0..carriers.len()).collect();
            let x = features.encoder.encode(&swapped, &rows, history);
            predict(&x.all())
                .map(|p| p.into_iter().map(|p| 1.0 - p).collect())
                .unwrap_or_else(|_| vec![0.5; carriers.len()])
        };
        replay(
            table,
            train_rows,
            split.valid_rows(),
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
    let scorecards = Scorecards::build(cfg.scorecards.clone(), table, train_rows, &rules);
    Ok((
        CarrierArtifact {
            scorecards,
            cost,
            rates: source.rates.clone(),
        },
        replayed,
    ))
}

/// The run's `report.html`.
#[allow(clippy::too_many_arguments)]
fn render_training_report(
    table: &ShipmentTable,
    report: &LoadReport,
    source: &DataSource,
    split: &Split,
    summary: &TrainSummary,
    validation: &Validation,
    holdout_probs: &[f64],
    carriers: &CarrierArtifact,
    output: Output<'_>,
) -> String {
    let holdout_labels = split.labels_of(&split.calibration);
    let views = carriers.scorecards.views();
    let evaluated = match (&summary.delay_valid, &summary.baseline_valid) {
        (Some(m), Some(b)) => Evaluated {
            name: "validation period",
            labels: &validation.labels,
            model: &validation.probs[0],
            model_metrics: *m,
            baseline: Some((&validation.probs[1], *b)),
        },
        _ => Evaluated {
            name: "calibration slice (no validation period)",
            labels: &holdout_labels,
            model: holdout_probs,
            model_metrics: summary.delay_holdout,
            baseline: None,
        },
    };
    let labelled = &split.labelled;
    let late = labelled.iter().filter(|&&r| split.late[r]).count();
    let (first, last) = (
        table.scheduled_date.iter().min().copied().unwrap_or(0),
        table.scheduled_date.iter().max().copied().unwrap_or(0),
    );
    render_report(&ReportData {
        version: &summary.version,
        created_at: output.created_at,
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
            ("fit rows", summary.rows.fit.to_string()),
            ("calibration rows", summary.rows.calibration.to_string()),
            ("validation rows", summary.rows.validation.to_string()),
            ("trees", summary.trees.to_string()),
        ],
        rejected: &report.rejected,
        evaluated,
        importance: &summary.top_features,
        scorecards: &views,
        replay: summary.carrier_valid,
        exceptions: output.exceptions.map(|e| &e.metrics),
    })
}

/// Writes feature matrices as Parquet (plus the categorical names) so that an outside tool,
/// such as the benchmark's Python peer, can fit on exactly the features training used.
fn export_matrices(
    dir: &Path,
    names: &[String],
    encoder: &Encoder,
    sets: &[(&str, &Rows<'_>, &[bool])],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, m, y) in sets {
        let mut cols: Vec<Column> = (0..m.n_cols())
            .map(|c| {
                Column::new(
                    names[c].as_str().into(),
                    (0..m.n_rows()).map(|r| m.row(r)[c]).collect::<Vec<f64>>(),
                )
            })
            .collect();
        cols.push(Column::new(
            "__late__".into(),
            y.iter().map(|&b| b as i32).collect::<Vec<_>>(),
        ));
        let mut df = DataFrame::new(m.n_rows(), cols).map_err(|source| Error::Polars {
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
