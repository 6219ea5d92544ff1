//! `dispatch-risk train`: fits the delay-risk model and, with `--notes`, the exception
//! classifier (or the classifier alone), writes the artifact and prints a summary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dispatch_risk_training::train::{self, DataSource, TrainConfig, TrainSummary};

use super::inputs::{load_taxonomy, parse_date, ProfileArgs};
use super::progress::Bars;
use super::table::{fmt_metric, TextTable};
use super::{CliError, CliResult};
use dispatch_risk_training::carrier::{RateProfile, RateTable};
use dispatch_risk_training::exceptions::{
    load_notes, read_encoder, KeywordRules, NotesData, NotesMetrics, TrainedNotes,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shipment history (CSV or Parquet).
    #[arg(long, value_name = "FILE", required_unless_present = "notes")]
    history: Option<PathBuf>,
    #[command(flatten)]
    input: ProfileArgs,
    /// Fit on rows decided before this date, evaluate on the rest (replayed in time order).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    valid_from: Option<i64>,
    /// Directory the model artifact is written to.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed for LightGBM's sampling; the same data and seed give the same model.
    #[arg(long)]
    seed: Option<u64>,
    /// Training parameters (TOML, the fields of the manifest's `params`), overriding defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also write the fit and validation feature matrices as Parquet here (for outside tools).
    #[arg(long, value_name = "DIR")]
    export_features: Option<PathBuf>,
    /// Carrier rate table (CSV or Parquet): candidates, prices and transit days per lane.
    #[arg(long, value_name = "FILE")]
    rates: Option<PathBuf>,
    /// Column mapping of the rate table (TOML); the default reads the freight-rates layout
    /// (data/profiles/rates/freight_rates.toml).
    #[arg(long, value_name = "FILE", requires = "rates")]
    rates_profile: Option<PathBuf>,
    /// Exception taxonomy (TOML) whose keyword rules sort the history's `notes` into the
    /// scorecards' exception mix and are measured beside the classifier trained with
    /// `--notes`; the built-in one is policies/exception_taxonomy.toml.
    #[arg(long, value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Labelled exception notes (CSV: `text`, `category`, optional `voice`) to train the
    /// exception classifier on, with the delay-risk model or alone.
    #[arg(long, value_name = "FILE")]
    notes: Option<PathBuf>,
    /// Validation notes; without them every fourth note of each category of `--notes` is held
    /// out (`notes.valid_every` in `--config`).
    #[arg(long, value_name = "FILE", requires = "notes")]
    notes_valid: Option<PathBuf>,
    /// Folder of the pretrained sentence encoder (scripts/fetch-encoder writes
    /// models/encoders/all-minilm-l6-v2): also trains the encoder tier's head.
    #[arg(long, value_name = "DIR", requires = "notes")]
    encoder: Option<PathBuf>,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
    /// Print the summary as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let mut config = match &args.config {
        None => TrainConfig::default(),
        Some(p) => toml::from_str(&read_text(p)?)
            .map_err(|e| CliError::input(anyhow::anyhow!("{}: {e}", p.display())))?,
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if args.valid_from.is_some() {
        config.valid_from = args.valid_from;
    }
    // Checked before any data is read: a bad parameter costs nothing.
    let config = config.check()?;
    let taxonomy = match &args.taxonomy {
        Some(p) => Some(load_taxonomy(Some(p))?),
        None => None,
    };

    let created_at = created_at();
    let progress = Bars::new(args.quiet || args.json);
    let notes = match &args.notes {
        Some(path) => Some(train_notes(
            &args,
            path,
            &config,
            &KeywordRules::new(taxonomy.clone().unwrap_or_default()),
            &progress,
        )?),
        None => None,
    };
    let Some(history) = &args.history else {
        // Checked by clap: without --history there are notes.
        let notes = notes.ok_or_else(|| CliError::input(anyhow::anyhow!("nothing to train")))?;
        let source = args
            .notes
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let manifest = notes.write_alone(&args.out, &created_at, &source)?;
        if args.json {
            let value =
                serde_json::json!({ "version": manifest.version, "exceptions": notes.metrics });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).context("serialising the summary")?
            );
        } else {
            print_notes(&notes.metrics);
            println!(
                "exception classifier {} written to {}",
                manifest.version,
                args.out.display()
            );
        }
        return Ok(());
    };

    let (profile, profile_text) = args.input.load_profile()?;
    let (table, report) = args.input.load_with(&profile, history, true, &progress)?;
    let mut source = DataSource::describe(
        history,
        profile_text.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
    )?;
    if let Some(path) = &args.rates {
        let profile = match &args.rates_profile {
            Some(p) => RateProfile::from_toml(&read_text(p)?)?,
            None => RateProfile::default(),
        };
        source = source.with_rates(RateTable::load(path, &profile)?);
    }
    if let Some(taxonomy) = taxonomy {
        source = source.with_taxonomy(taxonomy);
    }
    let (manifest, summary) = train::train(
        &table,
        &report,
        &source,
        &config,
        train::Output {
            dir: &args.out,
            created_at: &created_at,
            export_features: args.export_features.as_deref(),
            exceptions: notes.as_ref(),
        },
        &progress,
    )?;
    if args.json {
        let mut value = serde_json::to_value(&summary).context("serialising the summary")?;
        if let (Some(n), Some(map)) = (&notes, value.as_object_mut()) {
            map.insert("exceptions".into(), serde_json::json!(n.metrics));
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).context("serialising the summary")?
        );
    } else {
        print_summary(&summary, &args.out.display().to_string(), &manifest.version);
        if let Some(n) = &notes {
            print_notes(&n.metrics);
        }
    }
    Ok(())
}

/// Loads the notes (and the encoder) and trains the classifier's model tiers.
fn train_notes(
    args: &Args,
    path: &Path,
    config: &train::CheckedTrainConfig,
    rules: &KeywordRules,
    progress: &Bars,
) -> CliResult<TrainedNotes> {
    use dispatch_risk_training::progress::Progress;
    let notes_config = &config.get().notes;
    let notes = load_notes(path)?;
    let data = match &args.notes_valid {
        Some(v) => NotesData {
            train: notes,
            valid: load_notes(v)?,
        },
        None => NotesData::split(notes, notes_config.valid_every),
    };
    let encoder = match &args.encoder {
        Some(dir) => Some(
            read_encoder(dir, notes_config.encoder.clone()).map_err(|e| {
                CliError::input(anyhow::anyhow!(
                    "{e} (fetch the encoder with scripts/fetch-encoder)"
                ))
            })?,
        ),
        None => None,
    };
    let start = std::time::Instant::now();
    progress.start(
        "exception classifier",
        0,
        dispatch_risk_training::progress::Unit::Rows,
    );
    let trained = dispatch_risk_training::exceptions::train_notes(
        &data,
        notes_config,
        encoder.as_ref().map(|(e, r)| (e, r.clone())),
        rules,
    )?;
    progress.finish("exception classifier", start.elapsed());
    Ok(trained)
}

fn print_notes(m: &NotesMetrics) {
    let mut t = TextTable::new(&["exception tier", "macro-F1", "accuracy", "temperature"]);
    let mut add =
        |name: &str, v: &dispatch_risk_training::exceptions::ClassMetrics, temp: Option<f64>| {
            t.row(vec![
                name.to_string(),
                fmt_metric(Some(v.macro_f1)),
                fmt_metric(Some(v.accuracy)),
                temp.map_or("-".into(), |x| format!("{x:.2}")),
            ]);
        };
    if let Some(e) = &m.encoder {
        add("encoder", &e.valid, Some(e.temperature));
    }
    add(
        "small model",
        &m.small_model.valid,
        Some(m.small_model.temperature),
    );
    add("keyword rules", &m.rules, None);
    println!(
        "{}\nexception notes: {} training, {} validation\n",
        t.render(),
        m.train_notes,
        m.valid_notes
    );
}

/// The artifact's creation time: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn created_at() -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    let t = epoch.unwrap_or_else(|| chrono::Utc::now().timestamp());
    format!(
        "{}Z",
        dispatch_risk_training::data::dates::format_timestamp(t)
    )
}

fn print_summary(s: &TrainSummary, out: &str, version: &str) {
    let mut rows = TextTable::new(&["rows", "count"]);
    for (name, n) in [
        ("read", s.rows.read),
        ("rejected", s.rows.rejected),
        ("open (no outcome yet)", s.rows.open),
        ("fit", s.rows.fit),
        ("calibration slice", s.rows.calibration),
        ("validation", s.rows.validation),
    ] {
        rows.row(vec![name.to_string(), n.to_string()]);
    }
    println!("{}\n", rows.render());

    let mut m = TextTable::new(&["model", "rows", "AUC", "log loss", "Brier", "late rate"]);
    let mut add = |name: &str, v: Option<&dispatch_risk_training::model::BinaryMetrics>| {
        if let Some(v) = v {
            m.row(vec![
                name.to_string(),
                v.n.to_string(),
                fmt_metric(Some(v.auc)),
                fmt_metric(Some(v.logloss)),
                fmt_metric(Some(v.brier)),
                fmt_metric(Some(v.positive_rate)),
            ]);
        }
    };
    add("booster (calibration slice)", Some(&s.delay_holdout));
    add("booster (validation)", s.delay_valid.as_ref());
    add("logistic baseline (validation)", s.baseline_valid.as_ref());
    add("fallback rules (validation)", s.fallback_valid.as_ref());
    println!("{}\n", m.render());

    let mut f = TextTable::new(&["top features", "gain share"]);
    for (name, g) in s.top_features.iter().take(8) {
        f.row(vec![name.clone(), format!("{:.3}", g)]);
    }
    println!("{}\n", f.render());
    let stages: Vec<String> = s
        .stage_seconds
        .iter()
        .map(|(n, t)| format!("{n} {t:.1}s"))
        .collect();
    println!("stages: {}", stages.join(", "));
    println!("model {version} ({} trees) written to {out}", s.trees);
}

fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(CliError::input)
}
