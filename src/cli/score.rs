//! `dispatch-risk score`: batch scoring for analysts: risk, band and top factors per row, for a
//! file of any size (parsed once a block at a time and read back for the second pass; see the
//! training crate's `batch`), written block by block.

use std::path::PathBuf;
use std::time::Instant;

use dispatch_risk_training::batch::{score_file, BatchOptions};
use dispatch_risk_training::carrier::RankingPolicy;
use dispatch_risk_training::data::sink::FrameSink;
use dispatch_risk_training::model::{DelayModel, FactorMethod};
use polars_frame::score_frame;

use super::inputs::{print_rejections, ProfileArgs};
use super::progress::Bars;
use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model artifact directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Shipments to score (CSV or Parquet); outcome columns are not needed.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the scores (`.csv` or `.parquet`).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    profile: ProfileArgs,
    /// How many contributing factors to report per row (0 for none, which is faster).
    #[arg(long, default_value_t = 3)]
    top_factors: usize,
    /// How factors are attributed: `path` follows each tree's decision path (as fast as a
    /// prediction); `shap` is LightGBM's exact TreeSHAP (about a millisecond a row).
    #[arg(long, value_enum, default_value = "path")]
    factors: Factors,
    /// Carrier ranking policy (TOML); the built-in default is policies/carrier_ranking.toml.
    #[arg(long, value_name = "FILE")]
    carrier_policy: Option<PathBuf>,
    /// Skip carrier recommendation (it scores every lane's carriers, so it costs a few times
    /// the risk scoring).
    #[arg(long)]
    no_carriers: bool,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Factors {
    Path,
    Shap,
}

impl From<Factors> for FactorMethod {
    fn from(f: Factors) -> Self {
        match f {
            Factors::Path => FactorMethod::Path,
            Factors::Shap => FactorMethod::Shap,
        }
    }
}

pub fn run(args: Args) -> CliResult {
    let started = Instant::now();
    let policy = match (&args.carrier_policy, args.no_carriers) {
        (_, true) => None,
        (None, false) => Some(RankingPolicy::default()),
        (Some(path), false) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                super::CliError::input(anyhow::anyhow!("cannot read {}: {e}", path.display()))
            })?;
            Some(RankingPolicy::from_toml(&text)?)
        }
    };
    let mut model = DelayModel::load(&args.model)?;
    let loaded = started.elapsed();
    let (profile, _) = args.profile.load_profile()?;
    let options = BatchOptions {
        profile: &profile,
        limit: args.profile.max_bad_rows,
        top_factors: args.top_factors,
        factors: args.factors.into(),
        carriers: policy.as_ref(),
        block: None,
        batch: None,
    };
    let version = model.version().to_string();
    let mut sink = FrameSink::new(&args.output);
    let progress = Bars::new(args.quiet);
    let mut scored = 0usize;
    let (report, times) = score_file(&mut model, &args.input, &options, &progress, &mut |b| {
        scored += b.rows.len();
        let mut df = score_frame(b.table, b.rows, &b.scores, &b.recommendations, &version)?;
        sink.write(&mut df)
    })?;
    sink.finish()?;
    print_rejections(&report);
    let total = started.elapsed().as_secs_f64();
    let scoring = (times.features + times.model).as_secs_f64();
    eprintln!(
        "scored {scored} shipments in {total:.3}s ({:.0} rows/s end to end; model load {:.3}s, \
         history pass {:.3}s, scoring pass {:.3}s: reading back {:.3}s, features {:.3}s and model{} {:.3}s ({:.0} rows/s), \
         carriers {:.3}s, writing {:.3}s) -> {}",
        scored as f64 / total.max(1e-9),
        loaded.as_secs_f64(),
        times.history.as_secs_f64(),
        times.scoring.as_secs_f64(),
        times.reading.as_secs_f64(),
        times.features.as_secs_f64(),
        match (args.top_factors, args.factors) {
            (0, _) => "",
            (_, Factors::Path) => " with path factors",
            (_, Factors::Shap) => " with SHAP factors",
        },
        times.model.as_secs_f64(),
        scored as f64 / scoring.max(1e-9),
        times.carriers.as_secs_f64(),
        times.sink.as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

mod polars_frame {
    use dispatch_risk_training::carrier::Recommendation;
    use dispatch_risk_training::data::ShipmentTable;
    use dispatch_risk_training::model::RiskScore;
    use dispatch_risk_training::Error;
    use polars::prelude::*;

    /// One output row per input row of `rows`, in input order.
    pub fn score_frame(
        table: &ShipmentTable,
        rows: std::ops::Range<usize>,
        scores: &[RiskScore],
        recommendations: &[Option<Recommendation>],
        version: &str,
    ) -> Result<DataFrame, Error> {
        let factors: Vec<String> = scores
            .iter()
            .map(|s| serde_json::to_string(&s.top_factors).unwrap_or_default())
            .collect();
        DataFrame::new(
            scores.len(),
            vec![
                Column::new(
                    "shipment_id".into(),
                    rows.map(|i| &table.shipment_id[i]).collect::<Vec<&str>>(),
                ),
                Column::new(
                    "delay_risk".into(),
                    scores
                        .iter()
                        .map(|s| (s.delay_risk * 1e6).round() / 1e6)
                        .collect::<Vec<f64>>(),
                ),
                Column::new(
                    "risk_band".into(),
                    scores
                        .iter()
                        .map(|s| s.risk_band.as_str())
                        .collect::<Vec<_>>(),
                ),
                Column::new("top_factors".into(), factors),
                Column::new("model_version".into(), vec![version; scores.len()]),
            ]
            .into_iter()
            .chain(
                (!recommendations.is_empty())
                    .then(|| {
                        let pick = |f: &dyn Fn(&Recommendation) -> Option<String>| {
                            recommendations
                                .iter()
                                .map(|r| r.as_ref().and_then(f))
                                .collect::<Vec<Option<String>>>()
                        };
                        [
                            Column::new(
                                "recommended_carrier".into(),
                                pick(&|r| Some(r.recommended.carrier.clone())),
                            ),
                            Column::new(
                                "recommended_on_time".into(),
                                recommendations
                                    .iter()
                                    .map(|r| {
                                        r.as_ref().map(|r| {
                                            (r.recommended.on_time_probability * 1e4).round() / 1e4
                                        })
                                    })
                                    .collect::<Vec<Option<f64>>>(),
                            ),
                            Column::new(
                                "runner_up_carrier".into(),
                                pick(&|r| r.alternatives.first().map(|a| a.carrier.clone())),
                            ),
                            Column::new(
                                "recommendation_reasons".into(),
                                pick(&|r| Some(r.recommended.reasons.join("; "))),
                            ),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .collect(),
        )
        .map_err(|source| Error::Polars {
            context: "building the score table".into(),
            source,
        })
    }
}
