//! `dispatch-risk serve`: the decision service over HTTP. Settings come from flags, then
//! environment variables, then an optional TOML file (`--config`), then the defaults; each is
//! declared once, in [`crate::config`].

use std::path::Path;

use anyhow::Context;

use super::inputs::load_taxonomy;
use super::{CliError, CliResult};
use crate::startup::Application;

pub use crate::config::Args;
use crate::config::LogFormat;

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
    let config = args.or(file).resolve();
    super::init_logging("info", config.log_format == LogFormat::Json);
    // A taxonomy that does not load is a mistake in the command (exit 2), not a failure.
    if let Some(p) = &config.taxonomy {
        load_taxonomy(Some(p))?;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        eprintln!("dispatch-risk listening on http://{}", app.local_addr());
        app.run_until_stopped().await
    })?;
    Ok(())
}
