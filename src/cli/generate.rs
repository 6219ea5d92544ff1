//! `dispatch-risk generate`: synthetic history for demos, tests and benchmarks.

use std::path::PathBuf;

use dispatch_risk_training::generate::{generate, write_frame, GenerateConfig};

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of shipments.
    #[arg(long)]
    rows: usize,
    /// Seed: the same seed writes the same file.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file (`.csv`, or `.parquet`).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    let config = GenerateConfig::new(args.rows, args.seed)?;
    let mut df = generate(&config)?;
    write_frame(&mut df, &args.out)?;
    eprintln!("wrote {} shipments to {}", df.height(), args.out.display());
    Ok(())
}
