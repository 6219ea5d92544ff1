//! Arguments shared by the commands that read shipment files (the file, its import profile and
//! the bad-row tolerance) or an exception taxonomy, and how they are loaded.

use std::path::{Path, PathBuf};

use dispatch_risk_training::data::{self, BadRowLimit, ImportProfile, LoadReport, ShipmentTable};
use dispatch_risk_training::exceptions::Taxonomy;
use dispatch_risk_training::progress::Progress;

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// Import profile (TOML) mapping the export's columns onto the data contract.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Rejected rows tolerated before the command fails: a count (`50`) or a share (`1%`).
    #[arg(long, value_name = "N|P%", default_value = "0")]
    pub max_bad_rows: BadRowLimit,
}

impl ProfileArgs {
    pub fn load_profile(&self) -> CliResult<(ImportProfile, Option<(String, String)>)> {
        match &self.profile {
            None => Ok((ImportProfile::default(), None)),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| super::CliError::input(anyhow::anyhow!("{}: {e}", p.display())))?;
                let profile = ImportProfile::from_toml(&text).map_err(|e| {
                    super::CliError::input(anyhow::anyhow!("import profile {}: {e}", p.display()))
                })?;
                let name = profile
                    .name
                    .clone()
                    .unwrap_or_else(|| p.display().to_string());
                Ok((profile, Some((name, text))))
            }
        }
    }

    /// Loads a file with the given profile, showing progress and printing what was rejected.
    pub fn load_with(
        &self,
        profile: &ImportProfile,
        path: &Path,
        outcomes_required: bool,
        progress: &dyn Progress,
    ) -> CliResult<(ShipmentTable, LoadReport)> {
        let options = data::LoadOptions {
            profile,
            limit: self.max_bad_rows,
            outcomes_required,
        };
        let (table, report) = data::load::load(path, &options, progress)?;
        print_rejections(&report);
        Ok((table, report))
    }

    /// Loads a file with the `--profile` given on the command line.
    pub fn load(
        &self,
        path: &Path,
        outcomes_required: bool,
        progress: &dyn Progress,
    ) -> CliResult<(ShipmentTable, LoadReport)> {
        let (profile, _) = self.load_profile()?;
        self.load_with(&profile, path, outcomes_required, progress)
    }
}

pub fn print_rejections(report: &LoadReport) {
    if report.rejected.is_empty() && report.dropped_columns.is_empty() {
        return;
    }
    if !report.rejected.is_empty() {
        eprintln!(
            "rejected {} of {} rows (within --max-bad-rows):",
            report.rejected_total, report.rows_read
        );
        for r in report.rejected.iter().take(10) {
            eprintln!("  {r}");
        }
        if report.rejected_total > 10 {
            eprintln!("  ... and {} more", report.rejected_total - 10);
        }
    }
    for (col, why) in &report.dropped_columns {
        eprintln!("left out column `{col}`: {why}");
    }
}

/// Parses `YYYY-MM-DD` (or a date-time) for `--valid-from` style options.
pub fn parse_date(s: &str) -> Result<i64, String> {
    data::dates::DateParser::default()
        .parse(s)
        .ok_or_else(|| format!("`{s}` is not a date like 2024-07-01"))
}

/// An edited exception taxonomy, or the built-in one (`policies/exception_taxonomy.toml`).
pub fn load_taxonomy(path: Option<&Path>) -> CliResult<Taxonomy> {
    match path {
        Some(p) => crate::startup::load_taxonomy(p).map_err(super::CliError::input),
        None => Ok(Taxonomy::default()),
    }
}
