//! Reads shipment history (CSV or Parquet) with polars, applies an import profile and validates
//! every row into a [`ShipmentTable`]. Rows with invalid values are rejected and reported with
//! their row number and column, never dropped silently; too many of them fail the load.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use polars::prelude::*;

use super::contract;
use super::dates::DateParser;
use super::profile::ImportProfile;
use super::table::{CategoricalColumn, NumericColumn, ShipmentTable, Timestamp, SECONDS_PER_DAY};
use crate::error::{Error, Result};

/// How many rejected rows a load tolerates before it fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BadRowLimit {
    Count(usize),
    /// A fraction of the rows read, 0 to 1.
    Fraction(f64),
}

impl Default for BadRowLimit {
    fn default() -> Self {
        BadRowLimit::Count(0)
    }
}

impl std::str::FromStr for BadRowLimit {
    type Err = String;

    /// `50` (rows) or `1%` (of the rows read).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not a percentage like `1%`"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("`{s}`: a percentage must be between 0% and 100%"));
            }
            Ok(BadRowLimit::Fraction(v / 100.0))
        } else {
            s.parse().map(BadRowLimit::Count).map_err(|_| {
                format!("`{s}` is neither a row count like `50` nor a percentage like `1%`")
            })
        }
    }
}

impl BadRowLimit {
    fn allows(&self, bad: usize, read: usize) -> bool {
        match *self {
            BadRowLimit::Count(n) => bad <= n,
            BadRowLimit::Fraction(f) => (bad as f64) <= f * read as f64,
        }
    }
}

/// A rejected row: where, which column, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// 1-based data row (the header is not counted).
    pub row: usize,
    pub column: String,
    pub reason: String,
}

impl fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}, column `{}`: {}",
            self.row, self.column, self.reason
        )
    }
}

/// What a load did with the file, for the summary and the manifest.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub rows_read: usize,
    pub rows_accepted: usize,
    pub open_shipments: usize,
    pub rejected: Vec<RejectedRow>,
    /// Extra columns left out, with the reason.
    pub dropped_columns: Vec<(String, String)>,
}

/// Reads a history file (by extension: `.parquet`/`.pq`, anything else as CSV); the
/// `delivered_at` column must exist (its cells may be empty for open shipments).
pub fn load_history(
    path: &Path,
    profile: &ImportProfile,
    limit: BadRowLimit,
) -> Result<(ShipmentTable, LoadReport)> {
    load(path, profile, limit, true)
}

/// Reads shipments to score: like [`load_history`], but outcomes may be absent altogether.
pub fn load_shipments(
    path: &Path,
    profile: &ImportProfile,
    limit: BadRowLimit,
) -> Result<(ShipmentTable, LoadReport)> {
    load(path, profile, limit, false)
}

fn load(
    path: &Path,
    profile: &ImportProfile,
    limit: BadRowLimit,
    outcomes_required: bool,
) -> Result<(ShipmentTable, LoadReport)> {
    let df = read_frame(path)?;
    let (table, report) = frame_to_table(&df, profile, outcomes_required)?;
    if report.rows_read == 0 {
        return Err(Error::Input(format!(
            "{}: the file has no data rows",
            path.display()
        )));
    }
    if !limit.allows(report.rejected.len(), report.rows_read) {
        let mut msg = format!(
            "{}: {} of {} rows have invalid values (tolerance: {}); first problems:",
            path.display(),
            report.rejected.len(),
            report.rows_read,
            match limit {
                BadRowLimit::Count(n) => format!("{n} rows, set with --max-bad-rows"),
                BadRowLimit::Fraction(f) =>
                    format!("{}% of rows, set with --max-bad-rows", f * 100.0),
            }
        );
        for r in report.rejected.iter().take(10) {
            msg.push_str(&format!("\n  {r}"));
        }
        return Err(Error::Input(msg));
    }
    if table.is_empty() {
        return Err(Error::Input(format!("{}: no valid rows", path.display())));
    }
    Ok((table, report))
}

/// Reads a CSV or Parquet file into a frame whose columns are all strings, so that the profile
/// decides how each cell is parsed.
pub fn read_frame(path: &Path) -> Result<DataFrame> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Input(format!("{}: no such file", path.display())),
        _ => Error::io(path, e),
    })?;
    if meta.len() == 0 {
        return Err(Error::Input(format!(
            "{}: the file is empty",
            path.display()
        )));
    }
    let polars_err = |source| Error::Polars {
        context: format!("reading {}", path.display()),
        source,
    };
    let df = if is_parquet(path) {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let df = ParquetReader::new(file).finish().map_err(polars_err)?;
        let cols = df
            .columns()
            .iter()
            .map(|c| c.cast(&DataType::String))
            .collect::<PolarsResult<Vec<_>>>()
            .map_err(polars_err)?;
        DataFrame::new(df.height(), cols).map_err(polars_err)?
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.into()))
            .map_err(polars_err)?
            .finish()
            .map_err(|source| {
                Error::Input(format!(
                    "{}: not a readable CSV file: {source}",
                    path.display()
                ))
            })?
    };
    Ok(df)
}

pub fn is_parquet(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("parquet" | "pq")
    )
}

/// Cell access by contract name, resolving the profile's renames.
struct Source<'a> {
    df: &'a DataFrame,
    profile: &'a ImportProfile,
    /// Lower-cased source names, for a forgiving match on case.
    names: Vec<String>,
}

impl<'a> Source<'a> {
    fn source_name(&self, name: &str) -> Option<String> {
        let wanted = self
            .profile
            .columns
            .get(name)
            .map(String::as_str)
            .unwrap_or(name);
        self.df
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .find(|c| c == wanted)
            .or_else(|| {
                let lower = wanted.to_ascii_lowercase();
                self.names
                    .iter()
                    .position(|n| *n == lower)
                    .map(|i| self.df.columns()[i].name().to_string())
            })
    }

    /// The cells of a column as trimmed strings, `None` for empty or missing tokens.
    fn cells(&self, name: &str) -> Option<Vec<Option<&'a str>>> {
        let source = self.source_name(name)?;
        let col = self.df.column(&source).ok()?.str().ok()?;
        Some(
            col.iter()
                .map(|v| {
                    v.map(str::trim)
                        .filter(|s| !s.is_empty() && !self.profile.is_missing_token(s))
                })
                .collect(),
        )
    }
}

/// Per-row rejection: the first problem found in a row is the one reported.
struct Rejections {
    reasons: Vec<Option<RejectedRow>>,
}

impl Rejections {
    fn reject(&mut self, row: usize, column: &str, reason: String) {
        if self.reasons[row].is_none() {
            self.reasons[row] = Some(RejectedRow {
                row: row + 1,
                column: column.to_string(),
                reason,
            });
        }
    }
}

/// Validates a frame of string columns into a table; public for callers that already hold a
/// frame (the service's batch requests).
pub fn frame_to_table(
    df: &DataFrame,
    profile: &ImportProfile,
    outcomes_required: bool,
) -> Result<(ShipmentTable, LoadReport)> {
    let n = df.height();
    let src = Source {
        df,
        profile,
        names: df
            .columns()
            .iter()
            .map(|c| c.name().to_ascii_lowercase())
            .collect(),
    };
    let dates = DateParser::new(&profile.dates.formats);
    let mut rej = Rejections {
        reasons: vec![None; n],
    };
    let mut report = LoadReport {
        rows_read: n,
        ..Default::default()
    };

    for required in contract::REQUIRED {
        if !outcomes_required && required == "delivered_at" {
            continue;
        }
        if src.source_name(required).is_none() {
            let found: Vec<String> = df
                .columns()
                .iter()
                .map(|c| format!("`{}`", c.name()))
                .collect();
            let mapped = profile
                .columns
                .get(required)
                .map(|s| format!(" (the profile maps it from `{s}`)"))
                .unwrap_or_default();
            return Err(Error::Input(format!(
                "missing required column `{required}`{mapped}; the file has {}",
                found.join(", ")
            )));
        }
    }

    let text_required = |name: &str, rej: &mut Rejections| -> Vec<String> {
        let cells = src.cells(name).unwrap_or_else(|| vec![None; n]);
        let default = profile.defaults.get(name);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| match (c, default) {
                (Some(v), _) => v.to_string(),
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    rej.reject(i, name, "empty value in a required column".into());
                    String::new()
                }
            })
            .collect()
    };
    let shipment_id = text_required("shipment_id", &mut rej);
    let carrier = text_required("carrier", &mut rej);
    let warehouse = text_required("warehouse", &mut rej);
    let destination = text_required("destination", &mut rej);

    let parse_dates = |name: &str,
                       required: bool,
                       rej: &mut Rejections|
     -> Option<Vec<Option<Timestamp>>> {
        let cells = src.cells(name)?;
        Some(
            cells
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Some(v) => {
                        let t = dates.parse(v);
                        if t.is_none() {
                            rej.reject(
                                i,
                                name,
                                format!("unparsable date `{v}` (expected {})", dates.describe()),
                            );
                        }
                        t
                    }
                    None => {
                        if required {
                            rej.reject(i, name, "empty value in a required date column".into());
                        }
                        None
                    }
                })
                .collect(),
        )
    };
    let deadline = parse_dates("date_deadline", true, &mut rej).expect("checked above");
    let delivered_at =
        parse_dates("delivered_at", false, &mut rej).unwrap_or_else(|| vec![None; n]);
    let deadline_or_zero: Vec<Timestamp> = deadline.iter().map(|d| d.unwrap_or(0)).collect();

    let scheduled: Vec<Option<Timestamp>> = if src.source_name(contract::DECISION_TIME).is_some()
        && !profile.derive.contains_key(contract::DECISION_TIME)
    {
        parse_dates(contract::DECISION_TIME, true, &mut rej).expect("present")
    } else if let Some(d) = profile.derive.get(contract::DECISION_TIME) {
        let mut out: Vec<Option<Timestamp>> = vec![None; n];
        for name in &d.first_of {
            let cells = src.cells(name).ok_or_else(|| {
                Error::Input(format!(
                    "the profile derives `scheduled_date` from `{name}`, which the file does not have"
                ))
            })?;
            for (i, c) in cells.into_iter().enumerate() {
                if out[i].is_none() {
                    out[i] = c.and_then(|v| dates.parse(v));
                }
            }
        }
        if let Some(fb) = &d.fallback {
            let base = if fb.from == "date_deadline" {
                deadline.clone()
            } else {
                parse_dates(&fb.from, false, &mut rej).ok_or_else(|| {
                    Error::Input(format!(
                        "the profile derives `scheduled_date` from `{}`, which the file does not have",
                        fb.from
                    ))
                })?
            };
            let shift = (fb.offset_days * SECONDS_PER_DAY) as i64;
            for (o, b) in out.iter_mut().zip(base) {
                if o.is_none() {
                    *o = b.map(|b| b + shift);
                }
            }
        }
        for (i, o) in out.iter().enumerate() {
            if o.is_none() {
                rej.reject(
                    i,
                    contract::DECISION_TIME,
                    "no value to derive the decision time from".into(),
                );
            }
        }
        out
    } else {
        return Err(Error::Input(
            "missing column `scheduled_date` (the decision time) and the profile derives none; \
             add it to the export or a [derive.scheduled_date] section to the profile"
                .into(),
        ));
    };

    let mut numeric = Vec::new();
    for name in contract::NUMERIC {
        if let Some(cells) = src.cells(name) {
            let lenient = profile.numbers.lenient.iter().any(|l| l == name);
            let values = cells
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    None => f64::NAN,
                    Some(v) => match parse_number(v) {
                        Some(x) => x,
                        None if lenient => f64::NAN,
                        None => {
                            rej.reject(i, name, format!("`{v}` is not a number"));
                            f64::NAN
                        }
                    },
                })
                .collect();
            numeric.push(NumericColumn {
                name: name.to_string(),
                values,
            });
        }
    }
    for name in contract::FLAGS {
        if let Some(cells) = src.cells(name) {
            let values = cells
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    None => f64::NAN,
                    Some(v) => match parse_flag(v) {
                        Some(b) => b,
                        None => {
                            rej.reject(i, name, format!("`{v}` is not a yes/no value"));
                            f64::NAN
                        }
                    },
                })
                .collect();
            numeric.push(NumericColumn {
                name: name.to_string(),
                values,
            });
        }
    }
    let mut categorical = Vec::new();
    for name in contract::CATEGORICAL {
        if let Some(cells) = src.cells(name) {
            let default = profile.defaults.get(name);
            categorical.push(CategoricalColumn {
                name: name.to_string(),
                values: cells
                    .into_iter()
                    .map(|c| c.map(str::to_string).or_else(|| default.cloned()))
                    .collect(),
            });
        }
    }

    // Extras: every remaining source column, unless mapped, ignored or an outcome.
    let mut consumed: BTreeSet<String> = BTreeSet::new();
    for (target, source) in &profile.columns {
        if contract::is_contract_column(target) {
            consumed.insert(source.clone());
        }
    }
    for d in profile.derive.values() {
        consumed.extend(d.first_of.iter().filter_map(|c| src.source_name(c)));
    }
    let renamed_from: HashMap<&str, &str> = profile
        .columns
        .iter()
        .map(|(t, s)| (s.as_str(), t.as_str()))
        .collect();
    for col in df.columns() {
        let source = col.name().to_string();
        let name = renamed_from
            .get(source.as_str())
            .copied()
            .unwrap_or(&source)
            .to_string();
        if consumed.contains(&source)
            || contract::is_contract_column(&name)
            || profile.ignore.iter().any(|i| *i == source || *i == name)
        {
            continue;
        }
        let feature_name = sanitize(&name);
        let cells = src.cells(&name).unwrap_or_default();
        if profile
            .extra_dates
            .iter()
            .any(|d| *d == name || *d == source)
        {
            let values = cells
                .iter()
                .zip(&scheduled)
                .map(|(c, s)| match (c.and_then(|v| dates.parse(v)), s) {
                    (Some(d), Some(s)) => (*s - d) as f64 / SECONDS_PER_DAY,
                    _ => f64::NAN,
                })
                .collect();
            numeric.push(NumericColumn {
                name: format!("{feature_name}_days_before_decision"),
                values,
            });
            continue;
        }
        let present: Vec<&str> = cells.iter().flatten().copied().collect();
        if present.is_empty() {
            report.dropped_columns.push((source, "no values".into()));
            continue;
        }
        if present.iter().all(|v| parse_number(v).is_some()) {
            numeric.push(NumericColumn {
                name: feature_name,
                values: cells
                    .iter()
                    .map(|c| c.and_then(parse_number).unwrap_or(f64::NAN))
                    .collect(),
            });
            continue;
        }
        let distinct: BTreeSet<&str> = present.iter().copied().collect();
        if distinct.len() > 50 && distinct.len() * 2 > present.len() {
            report.dropped_columns.push((
                source,
                format!(
                    "looks like an identifier or free text ({} distinct values)",
                    distinct.len()
                ),
            ));
            continue;
        }
        categorical.push(CategoricalColumn {
            name: feature_name,
            values: cells.iter().map(|c| c.map(str::to_string)).collect(),
        });
    }

    // Duplicated ids: the first occurrence wins, later ones are rejected.
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, id) in shipment_id.iter().enumerate() {
        if id.is_empty() {
            continue;
        }
        if let Some(&first) = first_seen.get(id.as_str()) {
            rej.reject(i, "shipment_id", format!("duplicate of row {}", first + 1));
        } else {
            first_seen.insert(id, i);
        }
    }

    let notes: Vec<Option<String>> = match src.cells(contract::NOTES) {
        Some(cells) => cells.into_iter().map(|c| c.map(str::to_string)).collect(),
        None => vec![None; n],
    };
    let keep: Vec<usize> = (0..n).filter(|&i| rej.reasons[i].is_none()).collect();
    report.rejected = rej.reasons.into_iter().flatten().collect();
    let full = ShipmentTable {
        shipment_id,
        scheduled_date: scheduled.into_iter().map(|s| s.unwrap_or(0)).collect(),
        date_deadline: deadline_or_zero,
        delivered_at,
        carrier,
        warehouse,
        destination,
        numeric,
        categorical,
        notes,
        source_row: (1..=n).collect(),
    };
    let table = if keep.len() == n {
        full
    } else {
        full.select(&keep)
    };
    report.rows_accepted = table.len();
    report.open_shipments = table.delivered_at.iter().filter(|d| d.is_none()).count();
    Ok((table, report))
}

fn parse_number(v: &str) -> Option<f64> {
    let v = v.trim();
    v.parse::<f64>()
        .ok()
        .or_else(|| v.replace(',', "").parse::<f64>().ok())
        .filter(|x| x.is_finite())
}

fn parse_flag(v: &str) -> Option<f64> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "t" => Some(1.0),
        "0" | "false" | "no" | "n" | "f" => Some(0.0),
        _ => None,
    }
}

/// Feature names safe for LightGBM and JSON: lower-case ASCII letters, digits and underscores.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.trim().chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_').to_string();
    if trimmed.is_empty() {
        "column".into()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const HEADER: &str = "shipment_id,scheduled_date,date_deadline,delivered_at,carrier,warehouse,destination,weight_kg,hazardous,note";

    #[test]
    fn missing_required_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "h.csv", "shipment_id,scheduled_date,delivered_at,carrier,warehouse,destination\nA,2024-01-01,2024-01-02,X,W,D\n");
        let err = load_history(&p, &ImportProfile::default(), BadRowLimit::Count(0)).unwrap_err();
        assert!(err.is_input());
        assert!(
            err.to_string()
                .contains("missing required column `date_deadline`"),
            "{err}"
        );
    }

    #[test]
    fn unparsable_date_names_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{HEADER}\nA,2024-01-01,2024-01-03,2024-01-02,X,W,D,1,no,a\nB,2024-01-01,someday,2024-01-02,X,W,D,2,yes,b\n");
        let p = write(&dir, "h.csv", &text);
        let err = load_history(&p, &ImportProfile::default(), BadRowLimit::Count(0))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 2, column `date_deadline`: unparsable date `someday`"),
            "{err}"
        );
        // Within tolerance, the row is rejected and reported, the rest is kept.
        let (table, report) =
            load_history(&p, &ImportProfile::default(), BadRowLimit::Count(1)).unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].row, 2);
    }

    #[test]
    fn empty_and_header_only_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(&dir, "e.csv", "");
        let err = load_history(&empty, &ImportProfile::default(), BadRowLimit::Count(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
        let header = write(&dir, "h.csv", &format!("{HEADER}\n"));
        let err = load_history(&header, &ImportProfile::default(), BadRowLimit::Count(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no data rows"), "{err}");
    }

    #[test]
    fn values_are_typed_and_bad_ones_counted() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{HEADER}\nA,2024-01-01 08:00,2024-01-03,2024-01-04 10:00,X,W,D,1.5,yes,red\n\
             B,2024-01-01,2024-01-03,,X,W,D,,no,blue\n\
             C,2024-01-01,2024-01-03,2024-01-02,X,W,D,heavy,no,red\n\
             A,2024-01-02,2024-01-03,2024-01-02,X,W,D,1,maybe,red\n"
        );
        let p = write(&dir, "h.csv", &text);
        let (t, report) =
            load_history(&p, &ImportProfile::default(), BadRowLimit::Fraction(0.5)).unwrap();
        assert_eq!(t.shipment_id, vec!["A", "B"]);
        assert_eq!(t.is_late(0), Some(true));
        assert_eq!(t.is_late(1), None, "an empty delivery is an open shipment");
        assert_eq!(report.open_shipments, 1);
        let reasons: Vec<String> = report.rejected.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            reasons,
            vec![
                "row 3, column `weight_kg`: `heavy` is not a number".to_string(),
                "row 4, column `hazardous`: `maybe` is not a yes/no value".to_string(),
            ]
        );
        assert_eq!(t.numeric("weight_kg").unwrap().values[0], 1.5);
        assert!(t.numeric("weight_kg").unwrap().values[1].is_nan());
        assert_eq!(
            t.categorical("note").unwrap().values,
            vec![Some("red".into()), Some("blue".into())]
        );
    }

    #[test]
    fn duplicate_ids_are_rejected_after_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{HEADER}\nA,2024-01-01,2024-01-03,2024-01-02,X,W,D,1,no,a\nA,2024-01-02,2024-01-03,2024-01-02,X,W,D,1,no,a\n");
        let p = write(&dir, "h.csv", &text);
        let (t, report) =
            load_history(&p, &ImportProfile::default(), BadRowLimit::Count(1)).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            report.rejected[0].to_string(),
            "row 2, column `shipment_id`: duplicate of row 1"
        );
    }

    #[test]
    fn a_profile_renames_derives_and_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let text = "ID,Promised,Delivered,Mode,Origin,Country,PO date,Weight,Recorded\n\
                    1,2-Jun-06,3-Jun-06,Air,V1,Kenya,1-May-06,See ASN-1,4-Jun-06\n\
                    2,5-Jun-06,4-Jun-06,,V1,Kenya,Date Not Captured,12,6-Jun-06\n";
        let p = write(&dir, "scms.csv", text);
        let profile = ImportProfile::from_toml(
            r#"
            ignore = ["Recorded"]
            [columns]
            shipment_id = "ID"
            date_deadline = "Promised"
            delivered_at = "Delivered"
            carrier = "Mode"
            warehouse = "Origin"
            destination = "Country"
            weight_kg = "Weight"
            po_date = "PO date"
            [dates]
            formats = ["%d-%b-%y"]
            missing = ["Date Not Captured"]
            [numbers]
            lenient = ["weight_kg"]
            [defaults]
            carrier = "Unknown"
            [derive.scheduled_date]
            first_of = ["po_date"]
            fallback = { from = "date_deadline", offset_days = -10 }
            "#,
        )
        .unwrap();
        let (t, report) = load_history(&p, &profile, BadRowLimit::Count(0)).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let day = 86_400;
        let parser = crate::data::dates::DateParser::default();
        assert_eq!(t.scheduled_date[0], parser.parse("2006-05-01").unwrap());
        assert_eq!(
            t.scheduled_date[1],
            parser.parse("2006-06-05").unwrap() - 10 * day
        );
        assert_eq!(t.carrier, vec!["Air", "Unknown"]);
        assert!(t.numeric("weight_kg").unwrap().values[0].is_nan());
        assert!(
            t.categorical("recorded").is_none() && t.numeric("recorded").is_none(),
            "ignored columns never become features"
        );
        assert!(
            t.categorical("po_date").is_none(),
            "columns consumed by a derivation are not extras"
        );
    }

    #[test]
    fn bad_row_limit_parses_counts_and_shares() {
        assert_eq!("50".parse::<BadRowLimit>().unwrap(), BadRowLimit::Count(50));
        assert_eq!(
            "1%".parse::<BadRowLimit>().unwrap(),
            BadRowLimit::Fraction(0.01)
        );
        assert!("lots".parse::<BadRowLimit>().is_err());
        assert!("120%".parse::<BadRowLimit>().is_err());
    }
}
