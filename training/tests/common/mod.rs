//! Helpers shared by the training crate's integration tests: generated history on disk.

use std::path::PathBuf;

use dispatch_risk_training::data::{
    load_history, BadRowLimit, ImportProfile, LoadReport, ShipmentTable,
};
use dispatch_risk_training::generate::{generate, write_frame, GenerateConfig};

/// Generated history written as CSV into `dir`, and loaded back.
pub fn generated(
    dir: &tempfile::TempDir,
    rows: usize,
    seed: u64,
) -> (PathBuf, ShipmentTable, LoadReport) {
    let path = dir.path().join(format!("history_{rows}_{seed}.csv"));
    let mut df = generate(&GenerateConfig::new(rows, seed).unwrap()).unwrap();
    write_frame(&mut df, &path).unwrap();
    let (table, report) =
        load_history(&path, &ImportProfile::default(), BadRowLimit::Count(0)).unwrap();
    (path, table, report)
}

pub mod reference_history;
