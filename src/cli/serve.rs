//! `dispatch-risk serve`: the decision service over HTTP. Settings come from flags, then
//! environment variables, then an optional TOML file (`--config`), then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::inputs::load_taxonomy;
use super::{CliError, CliResult};
use crate::startup::{Application, ServeConfig};

/// The embedded database used when none is named: a file beside where the service runs.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:dispatch-risk.sqlite3";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML file with any of the settings below (flags and environment variables win).
    #[arg(long, env = "DISPATCH_RISK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DISPATCH_RISK_BIND")]
    bind: Option<SocketAddr>,
    /// `sqlite:PATH` (embedded, the default: sqlite:dispatch-risk.sqlite3) or
    /// `postgres://user@host/db` for several instances sharing one store.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Models directory: versions in subdirectories, the active one named in `ACTIVE`
    /// (`default` without it) [default: models].
    #[arg(long, env = "DISPATCH_RISK_MODELS", value_name = "DIR")]
    models: Option<PathBuf>,
    /// Folder of pretrained encoders (default: `encoders/` in the models directory).
    #[arg(long, env = "DISPATCH_RISK_ENCODERS", value_name = "DIR")]
    encoders: Option<PathBuf>,
    /// Routing, approval and fallback decision tables [default: policies].
    #[arg(long, env = "DISPATCH_RISK_POLICIES", value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Exception taxonomy (TOML); the built-in one is policies/exception_taxonomy.toml.
    #[arg(long, env = "DISPATCH_RISK_TAXONOMY", value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Require an analyst key for GET /metrics (open by default).
    #[arg(long, env = "DISPATCH_RISK_PRIVATE_METRICS")]
    private_metrics: bool,
    /// On PostgreSQL, the file where answered scores wait while the database is unreachable
    /// [default: dispatch-risk.spool].
    #[arg(long, env = "DISPATCH_RISK_SPOOL", value_name = "FILE")]
    spool: Option<PathBuf>,
    /// The spool's bound in bytes; past it scores answer 503 [default: 1 GiB].
    #[arg(long, env = "DISPATCH_RISK_SPOOL_MAX_BYTES", value_name = "BYTES")]
    spool_max_bytes: Option<u64>,
    /// A carrier outcomes may name that the model and its rate table do not know (repeat, or
    /// comma-separate).
    #[arg(
        long = "admit-carrier",
        env = "DISPATCH_RISK_ADMITTED_CARRIERS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    admitted_carriers: Vec<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "DISPATCH_RISK_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    database_url: Option<String>,
    models: Option<PathBuf>,
    encoders: Option<PathBuf>,
    policies: Option<PathBuf>,
    taxonomy: Option<PathBuf>,
    public_metrics: Option<bool>,
    spool: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    admitted_carriers: Option<Vec<String>>,
    log_format: Option<LogFormat>,
}

fn read_file_config(path: &Path) -> CliResult<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(anyhow::anyhow!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| CliError::input(anyhow::anyhow!("{}: {e}", path.display())))
}

pub fn run(args: Args) -> CliResult {
    let file = match &args.config {
        Some(p) => read_file_config(p)?,
        None => FileConfig::default(),
    };
    let format = args
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text);
    super::init_logging("info", format == LogFormat::Json);
    let taxonomy = load_taxonomy(args.taxonomy.or(file.taxonomy).as_deref())?;
    let mut config = ServeConfig::new(
        args.models
            .or(file.models)
            .unwrap_or_else(|| PathBuf::from("models")),
        args.database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()),
    );
    if let Some(b) = args.bind.or(file.bind) {
        config.bind = b;
    }
    config.encoders_dir = args.encoders.or(file.encoders);
    config.taxonomy = taxonomy;
    if let Some(p) = args.policies.or(file.policies) {
        config.policies_dir = p;
    }
    config.public_metrics = !args.private_metrics && file.public_metrics.unwrap_or(true);
    if let Some(p) = args.spool.or(file.spool) {
        config.spool_path = p;
    }
    config.admitted_carriers = if args.admitted_carriers.is_empty() {
        file.admitted_carriers.unwrap_or_default()
    } else {
        args.admitted_carriers
    };
    if let Some(n) = args.spool_max_bytes.or(file.spool_max_bytes) {
        config.spool_max_bytes = n;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        eprintln!("dispatch-risk listening on http://{}", app.local_addr());
        app.run_until_stopped().await
    })?;
    Ok(())
}
