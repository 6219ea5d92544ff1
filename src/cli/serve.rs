//! `dispatch-risk serve`: the decision service over HTTP. Settings come from flags, then
//! environment variables, then an optional TOML file (`--config`), then the defaults; each is
//! declared once, in [`Args`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::inputs::load_taxonomy;
use super::{CliError, CliResult};
use crate::startup::{Application, Secret, ServeConfig};

/// The embedded database used when none is named: a file beside where the service runs.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:dispatch-risk.sqlite3";

/// Every setting of `serve`, declared once: its flag, its environment variable, and its key in
/// the `--config` file (the field's name). Flags and variables win over the file, the file
/// over the defaults.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// TOML file with any of the settings below (flags and environment variables win).
    #[arg(long, env = "DISPATCH_RISK_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DISPATCH_RISK_BIND")]
    bind: Option<SocketAddr>,
    /// `sqlite:PATH` (embedded, the default: sqlite:dispatch-risk.sqlite3) or
    /// `postgres://user:password@host/db` for several instances sharing one store.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    database_url: Option<Secret>,
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
    #[arg(long, env = "DISPATCH_RISK_PRIVATE_METRICS", num_args = 0..=1, default_missing_value = "true")]
    private_metrics: Option<bool>,
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
    admitted_carriers: Option<Vec<String>>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "DISPATCH_RISK_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

impl Args {
    /// These settings, with the file's for those not given.
    fn or(self, file: Args) -> Args {
        macro_rules! either {
            ($($field:ident),*) => {
                Args { config: self.config, $($field: self.$field.or(file.$field)),* }
            };
        }
        either!(
            bind,
            database_url,
            models,
            encoders,
            policies,
            taxonomy,
            private_metrics,
            spool,
            spool_max_bytes,
            admitted_carriers,
            log_format
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

fn read_file_config(path: &Path) -> CliResult<Args> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(anyhow::anyhow!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| CliError::input(anyhow::anyhow!("{}: {e}", path.display())))
}

pub fn run(args: Args) -> CliResult {
    let file = match &args.config {
        Some(p) => read_file_config(p)?,
        None => Args::default(),
    };
    let args = args.or(file);
    let format = args.log_format.unwrap_or(LogFormat::Text);
    super::init_logging("info", format == LogFormat::Json);
    let taxonomy = load_taxonomy(args.taxonomy.as_deref())?;
    let mut config = ServeConfig::new(
        args.models.unwrap_or_else(|| PathBuf::from("models")),
        args.database_url
            .unwrap_or_else(|| Secret::from(DEFAULT_DATABASE_URL)),
    );
    if let Some(b) = args.bind {
        config.bind = b;
    }
    config.encoders_dir = args.encoders;
    config.taxonomy = taxonomy;
    if let Some(p) = args.policies {
        config.policies_dir = p;
    }
    config.public_metrics = !args.private_metrics.unwrap_or(false);
    if let Some(p) = args.spool {
        config.spool_path = p;
    }
    config.admitted_carriers = args.admitted_carriers.unwrap_or_default();
    if let Some(n) = args.spool_max_bytes {
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
