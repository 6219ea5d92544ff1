//! `dispatch-risk classify`: exception notes to category, confidence, owner and severity, one
//! note from the command line or a CSV column in bulk. The best tier the model directory
//! supports answers; tiers that could not load are named on stderr.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dispatch_risk_training::exceptions::{load_classifier, Answer, ExceptionClassifier, NoteText};

use super::inputs::load_taxonomy;
use super::{CliError, CliResult};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (an artifact trained with `train --notes`, e.g. models/default).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The note to classify; the answer is printed as JSON.
    #[arg(conflicts_with = "input", required_unless_present = "input")]
    text: Option<String>,
    /// CSV file of notes to classify in bulk.
    #[arg(long, value_name = "FILE", requires = "output")]
    input: Option<PathBuf>,
    /// Where the bulk answers go (CSV): the input's columns, then category, confidence,
    /// owner, severity, tier, needs_review, truncated and error.
    #[arg(long, value_name = "FILE", requires = "input")]
    output: Option<PathBuf>,
    /// The input column that holds the notes.
    #[arg(long, default_value = "text")]
    column: String,
    /// Folder of pretrained encoders (default: `encoders/` beside the model directory).
    #[arg(long, value_name = "DIR")]
    encoders: Option<PathBuf>,
    /// Exception taxonomy (TOML) with the owners, severities and review threshold to answer
    /// with; the built-in one is policies/exception_taxonomy.toml.
    #[arg(long, value_name = "FILE")]
    taxonomy: Option<PathBuf>,
    /// Notes classified together in bulk.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
}

pub fn run(args: Args) -> CliResult {
    if !args.model.is_dir() {
        return Err(CliError::input(anyhow::anyhow!(
            "{}: no such model directory",
            args.model.display()
        )));
    }
    let taxonomy = load_taxonomy(args.taxonomy.as_deref())?;
    let loaded = load_classifier(&args.model, args.encoders.as_deref(), taxonomy);
    let classifier = loaded.classifier;
    for p in &loaded.problems {
        eprintln!("note: {p}");
    }
    match (&args.text, &args.input, &args.output) {
        (Some(text), _, _) => {
            let note = NoteText::parse(text).map_err(CliError::input)?;
            let answer = classifier.classify_one(&note);
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).context("serialising the answer")?
            );
            Ok(())
        }
        (None, Some(input), Some(output)) => bulk(
            &classifier,
            input,
            output,
            &args.column,
            args.batch as usize,
        ),
        _ => Err(CliError::input(anyhow::anyhow!(
            "give a note, or --input and --output"
        ))),
    }
}

/// Answer columns appended to the input's.
const ANSWER_COLUMNS: [&str; 8] = [
    "category",
    "confidence",
    "owner",
    "severity",
    "tier",
    "needs_review",
    "truncated",
    "error",
];

/// A row that cannot be classified, with the reason.
struct RowProblem {
    row: usize,
    line: u64,
    reason: String,
}

fn bulk(
    classifier: &ExceptionClassifier,
    input: &Path,
    output: &Path,
    column: &str,
    batch: usize,
) -> CliResult {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(input)
        .with_context(|| format!("reading {}", input.display()))
        .map_err(CliError::input)?;
    let headers = reader
        .byte_headers()
        .with_context(|| format!("reading the header of {}", input.display()))
        .map_err(CliError::input)?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let at = names.iter().position(|n| n == column).ok_or_else(|| {
        CliError::input(anyhow::anyhow!(
            "{}: no column `{column}` (columns: {})",
            input.display(),
            names.join(", ")
        ))
    })?;
    let mut writer =
        csv::Writer::from_path(output).with_context(|| format!("writing {}", output.display()))?;
    // Input columns whose names the answer uses keep their values under `input_<name>`.
    let mut header: Vec<String> = names
        .iter()
        .map(|n| {
            if ANSWER_COLUMNS.contains(&n.as_str()) {
                format!("input_{n}")
            } else {
                n.clone()
            }
        })
        .collect();
    header.extend(ANSWER_COLUMNS.iter().map(|s| s.to_string()));
    writer.write_record(&header).context("writing the header")?;

    let mut problems: Vec<RowProblem> = Vec::new();
    let (mut records, mut notes) = (Vec::new(), Vec::new());
    let mut counts = [0usize; 3];
    let mut flush = |records: &mut Vec<(csv::ByteRecord, Result<NoteText, String>)>,
                     notes: &mut Vec<NoteText>,
                     writer: &mut csv::Writer<std::fs::File>|
     -> anyhow::Result<()> {
        let mut answers = classifier.classify(notes).into_iter();
        for (record, parsed) in records.drain(..) {
            let mut out = record.clone();
            match parsed {
                Ok(_) => {
                    let a = answers.next().context("one answer per note")?;
                    counts[a.tier as usize] += 1;
                    for v in answer_fields(&a) {
                        out.push_field(v.as_bytes());
                    }
                    out.push_field(b"");
                }
                Err(reason) => {
                    for _ in 0..ANSWER_COLUMNS.len() - 1 {
                        out.push_field(b"");
                    }
                    out.push_field(reason.as_bytes());
                }
            }
            writer.write_byte_record(&out)?;
        }
        notes.clear();
        Ok(())
    };
    let mut record = csv::ByteRecord::new();
    let mut row = 0;
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .with_context(|| format!("{}: row {}", input.display(), row + 1))
            .map_err(CliError::input)?;
        if !more {
            break;
        }
        row += 1;
        let line = record.position().map_or(0, |p| p.line());
        let field = record.get(at).unwrap_or_default();
        let parsed = match std::str::from_utf8(field) {
            Err(e) => Err(format!(
                "invalid UTF-8 after {} valid bytes of `{column}`",
                e.valid_up_to()
            )),
            Ok(text) => NoteText::parse(text).map_err(|e| e.to_string()),
        };
        match &parsed {
            Ok(note) => notes.push(note.clone()),
            Err(reason) => problems.push(RowProblem {
                row,
                line,
                reason: reason.clone(),
            }),
        }
        records.push((record.clone(), parsed));
        if records.len() >= batch {
            flush(&mut records, &mut notes, &mut writer)?;
        }
    }
    flush(&mut records, &mut notes, &mut writer)?;
    writer.flush().context("writing the answers")?;
    eprintln!(
        "classified {} of {row} notes (encoder {}, small model {}, rules {}) into {}",
        counts.iter().sum::<usize>(),
        counts[0],
        counts[1],
        counts[2],
        output.display()
    );
    if !problems.is_empty() {
        eprintln!(
            "{} rows could not be classified (their `error` column says why):",
            problems.len()
        );
        for p in problems.iter().take(20) {
            eprintln!("  row {} (line {}): {}", p.row, p.line, p.reason);
        }
        if problems.len() > 20 {
            eprintln!("  ... and {} more", problems.len() - 20);
        }
    }
    Ok(())
}

fn answer_fields(a: &Answer) -> [String; 7] {
    [
        a.category.clone(),
        format!("{:.4}", a.confidence),
        a.owner.clone(),
        serde_json::to_value(a.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        a.tier.as_str().to_string(),
        a.needs_review.to_string(),
        a.truncated.to_string(),
    ]
}
