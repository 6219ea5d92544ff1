//! `dispatch-risk evaluate`: a trained model's metrics on another history file.

use std::path::PathBuf;

use anyhow::Context;
use dispatch_risk_training::model::{BinaryMetrics, DelayModel};

use super::inputs::ProfileArgs;
use super::table::{fmt_metric, TextTable};
use super::{CliError, CliResult};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model artifact directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// History with outcomes (CSV or Parquet).
    #[arg(long, value_name = "FILE")]
    history: PathBuf,
    #[command(flatten)]
    input: ProfileArgs,
    /// Print metrics as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let mut model = DelayModel::load(&args.model)?;
    let (table, _) = args.input.load(&args.history, true, &())?;
    // The file's own outcomes join the model's history; each row still sees only outcomes
    // delivered before its decision time.
    model.history.record_table(&table);
    let rows: Vec<usize> = table
        .order_by_decision_time()
        .into_iter()
        .filter(|&i| table.delivered_at[i].is_some())
        .collect();
    if rows.is_empty() {
        return Err(CliError::input(anyhow::anyhow!(
            "{}: no delivered shipments to evaluate on",
            args.history.display()
        )));
    }
    let labels: Vec<bool> = rows
        .iter()
        .map(|&i| table.is_late(i) == Some(true))
        .collect();
    let x = model.features(&table, &rows);
    let probs = model.predict(&x)?;
    let fallback: Vec<f64> = (0..x.n_rows)
        .map(|i| model.fallback(x.row(i)).delay_risk)
        .collect();
    let delay = BinaryMetrics::compute(&labels, &probs);
    let rules = BinaryMetrics::compute(&labels, &fallback);
    if args.json {
        let out = serde_json::json!({
            "model_version": model.version(),
            "metrics": { "delay_risk": delay, "fallback": rules },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("serialising metrics")?
        );
    } else {
        let mut t = TextTable::new(&["model", "rows", "AUC", "log loss", "Brier"]);
        for (name, m) in [("booster", delay), ("fallback rules", rules)] {
            t.row(vec![
                name.into(),
                m.n.to_string(),
                fmt_metric(Some(m.auc)),
                fmt_metric(Some(m.logloss)),
                fmt_metric(Some(m.brier)),
            ]);
        }
        println!("{}", t.render());
    }
    Ok(())
}
