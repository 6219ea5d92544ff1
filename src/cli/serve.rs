//! `dispatch-risk serve`: the decision service over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use dispatch_risk_training::exceptions::Taxonomy;

use super::{CliError, CliResult};
use crate::startup::{Application, ServeConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "DISPATCH_RISK_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Models directory: versions in subdirectories, the active one named in `ACTIVE`
    /// (`default` without it).
    #[arg(long, env = "DISPATCH_RISK_MODELS", default_value = "models")]
    models: PathBuf,
    /// Folder of pretrained encoders (default: `encoders/` in the models directory).
    #[arg(long, env = "DISPATCH_RISK_ENCODERS")]
    encoders: Option<PathBuf>,
    /// Exception taxonomy (TOML); the built-in one is policies/exception_taxonomy.toml.
    #[arg(long, env = "DISPATCH_RISK_TAXONOMY")]
    taxonomy: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let taxonomy = match &args.taxonomy {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))
                .map_err(CliError::input)?;
            Taxonomy::from_toml(&text)
                .map_err(|e| CliError::input(anyhow::anyhow!("{}: {e}", p.display())))?
        }
        None => Taxonomy::default(),
    };
    let config = ServeConfig {
        bind: args.bind,
        models_dir: args.models,
        encoders_dir: args.encoders,
        taxonomy,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        eprintln!("dispatch-risk listening on http://{}", app.local_addr());
        app.run_until_stopped().await.context("serving")?;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
