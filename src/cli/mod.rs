//! The command line: subcommands, their arguments, and the mapping of failures to exit codes
//! (2 for bad input or usage, 1 for internal failures).

mod audit;
mod classify;
mod evaluate;
mod generate;
mod inputs;
mod keys;
mod policies;
mod progress;
mod score;
mod serve;
mod table;
mod train;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Delay-risk scoring and carrier decisions for Odoo dispatch.
#[derive(Debug, Parser)]
#[command(name = "dispatch-risk", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write synthetic Odoo-shaped shipment history.
    Generate(generate::Args),
    /// Train the delay-risk model from shipment history.
    Train(train::Args),
    /// Measure a trained model on another history file.
    Evaluate(evaluate::Args),
    /// Score a file of shipments in bulk.
    Score(score::Args),
    /// Classify exception notes: category, confidence, owner, severity.
    Classify(classify::Args),
    /// Run the decision service over HTTP.
    Serve(serve::Args),
    /// Manage the service's API keys.
    Keys(keys::Args),
    /// Check policy tables; export the fallback table from a model.
    Policies(policies::Args),
    /// Manage the people who decide approvals: users, passwords, personal tokens.
    Users(users::Args),
    /// Verify and export the audit trail.
    Audit(audit::Args),
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    /// The caller's input is at fault: exit code 2.
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        CliError {
            code: 2,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError { code: 1, error }
    }
}

impl From<dispatch_risk_training::Error> for CliError {
    fn from(e: dispatch_risk_training::Error) -> Self {
        let code = if e.is_input() { 2 } else { 1 };
        CliError {
            code,
            error: e.into(),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Runs `f` on the service's database (`url`, else the default) on a runtime of its own: the
/// commands that manage keys, users and the audit trail.
fn on_store(
    url: Option<String>,
    f: impl AsyncFnOnce(crate::store::Store) -> CliResult,
) -> CliResult {
    use anyhow::Context;
    let url = url.unwrap_or_else(|| crate::config::DEFAULT_DATABASE_URL.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::store::Store::connect(&url)
            .await
            .with_context(|| format!("opening the database {url}"))?;
        f(store).await
    })
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise; JSON lines if asked.
fn init_logging(default_level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The service sets up its own logging (its format is a setting); batch commands log only
    // what went wrong.
    if !matches!(cli.command, Command::Serve(_)) {
        init_logging("warn", false);
    }
    let result = match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Train(a) => train::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Score(a) => score::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Keys(a) => keys::run(a),
        Command::Policies(a) => policies::run(a),
        Command::Users(a) => users::run(a),
        Command::Audit(a) => audit::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            ExitCode::from(e.code)
        }
    }
}
