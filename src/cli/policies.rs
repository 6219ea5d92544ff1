//! `dispatch-risk policies check|export-fallback`: check a policies directory as the service
//! would load it, and write the fallback-risk table from a trained model's shallow tree.

use std::path::PathBuf;

use anyhow::Context;
use dispatch_risk_training::model::DelayModel;

use super::{CliError, CliResult};
use crate::policy::fallback::table_from_tree;
use crate::policy::PolicySource;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Load and probe the tables of a policies directory, as `serve` and reload do.
    Check {
        #[arg(long, default_value = "policies", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Write the fallback-risk table (JDM) from a model's fallback tree, after Odoo's
    /// lateness rule.
    ExportFallback {
        /// Model artifact directory.
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Where to write the table (e.g. policies/fallback_risk.json).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
}

pub fn run(args: Args) -> CliResult {
    match args.command {
        Command::Check { dir } => {
            let source = PolicySource::load(&dir).map_err(CliError::input)?;
            println!("{}: policies version {}", dir.display(), source.version);
        }
        Command::ExportFallback { model, output } => {
            let m = DelayModel::load(&model)?;
            let table = table_from_tree(m.fallback_rules(), m.version());
            let text = serde_json::to_string_pretty(&table).context("writing the table")?;
            std::fs::write(&output, text + "\n")
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "{}: {} rules (2 from Odoo, {} tree leaves)",
                output.display(),
                m.fallback_rules().rules.len() + 2,
                m.fallback_rules().rules.len()
            );
        }
    }
    Ok(())
}
