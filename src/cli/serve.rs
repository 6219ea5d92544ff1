//! `dispatch-risk serve`: the decision service over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::inputs::load_taxonomy;
use super::CliResult;
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
    let taxonomy = load_taxonomy(args.taxonomy.as_deref())?;
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
