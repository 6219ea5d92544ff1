//! Typing and validating one block of a history file: the column plan is made once, from the
//! header and the import profile, and each block's string cells become a [`ShipmentTable`] of
//! the same columns plus the rows' rejections. Blocks are converted across the cores.
//!
//! Extras (columns outside the contract) become numeric, categorical or are left out by what
//! the *whole* column holds, so a block only gathers them ([`ExtraColumn`]); the load decides
//! when the last block is in.

use polars::prelude::*;

use super::contract;
use super::dates::DateParser;
use super::load::RejectedRow;
use super::profile::ImportProfile;
use super::table::{
    CategoricalColumn, Labels, NumericColumn, ShipmentKey, ShipmentTable, Texts, Timestamp,
    SECONDS_PER_DAY,
};
use crate::error::{Error, Result};

/// An extra column with more distinct values than this is taken for an identifier without
/// counting further: its values would cost as much memory as the text itself.
pub const MAX_EXTRA_DISTINCT: usize = 1_000_000;

/// Which source column feeds what, decided once per file.
pub struct Plan {
    profile: ImportProfile,
    dates: DateParser,
    id: Option<String>,
    carrier: Option<String>,
    warehouse: Option<String>,
    destination: Option<String>,
    deadline: String,
    delivered: Option<String>,
    decision: Decision,
    numeric: Vec<(&'static str, String, bool)>,
    flags: Vec<(&'static str, String)>,
    categorical: Vec<(&'static str, String)>,
    pub extras: Vec<ExtraPlan>,
    notes: Option<String>,
}

enum Decision {
    Column(String),
    Derived {
        first_of: Vec<String>,
        fallback: Option<(Fallback, i64)>,
    },
}

enum Fallback {
    Deadline,
    /// The profile's name for the column (as rejections name it) and the column read.
    Column(String, String),
}

/// What the extras of a file become when a model already says so (batch scoring reads a file
/// a block at a time and cannot look at a whole column first): the feature names it reads as
/// numbers and as categories. Other extras are not read.
#[derive(Debug, Clone, Default)]
pub struct ExtraKinds {
    pub numeric: Vec<String>,
    pub categorical: Vec<String>,
}

/// How an extra column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    /// Days before the decision time (the profile's `extra_dates`).
    Date,
    /// Decided by the whole column's values (a whole-file load).
    Auto,
    /// Fixed by a model: numbers (anything else is missing), or categories.
    Numeric,
    Categorical,
    /// Not read: the model has no such feature.
    Skip,
}

/// An extra column: where it comes from and the feature it may become.
pub struct ExtraPlan {
    /// The source column's name, as reported when the column is left out.
    pub source: String,
    /// The column read (the source, or what the profile maps the extra's name to).
    read: Option<String>,
    pub feature: String,
    pub kind: ExtraKind,
}

impl ExtraPlan {
    pub fn is_date(&self) -> bool {
        self.kind == ExtraKind::Date
    }

    /// The feature's name in a table: a date extra is its days before the decision.
    pub fn column_name(&self) -> String {
        if self.is_date() {
            format!("{}_days_before_decision", self.feature)
        } else {
            self.feature.clone()
        }
    }
}

/// Resolves contract names to the frame's columns through the profile's renames, forgiving
/// differences in case.
struct Names<'a> {
    columns: Vec<String>,
    lower: Vec<String>,
    profile: &'a ImportProfile,
}

impl Names<'_> {
    /// Every column the contract requires is in the file (or mapped by the profile); the
    /// error names the first one missing and what the file has.
    fn check_required(&self, outcomes_required: bool) -> Result<()> {
        for required in contract::REQUIRED {
            if !outcomes_required && required == "delivered_at" {
                continue;
            }
            if self.source(required).is_none() {
                let found: Vec<String> = self.columns.iter().map(|c| format!("`{c}`")).collect();
                let mapped = self
                    .profile
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
        Ok(())
    }

    /// Where the decision time comes from: its column, or the profile's derivation.
    fn decision(&self) -> Result<Decision> {
        let missing_derivation = |name: &str| {
            Error::Input(format!(
                "the profile derives `scheduled_date` from `{name}`, which the file does not have"
            ))
        };
        Ok(match self.profile.derive.get(contract::DECISION_TIME) {
            None => match self.source(contract::DECISION_TIME) {
                Some(c) => Decision::Column(c),
                None => {
                    return Err(Error::Input(
                        "missing column `scheduled_date` (the decision time) and the profile derives none; \
                         add it to the export or a [derive.scheduled_date] section to the profile"
                            .into(),
                    ))
                }
            },
            Some(d) => Decision::Derived {
                first_of: d
                    .first_of
                    .iter()
                    .map(|n| self.source(n).ok_or_else(|| missing_derivation(n)))
                    .collect::<Result<_>>()?,
                fallback: match &d.fallback {
                    None => None,
                    Some(fb) => Some((
                        if fb.from == "date_deadline" {
                            Fallback::Deadline
                        } else {
                            Fallback::Column(
                                fb.from.clone(),
                                self
                                    .source(&fb.from)
                                    .ok_or_else(|| missing_derivation(&fb.from))?,
                            )
                        },
                        (fb.offset_days * SECONDS_PER_DAY) as i64,
                    )),
                },
            },
        })
    }

    fn source(&self, name: &str) -> Option<String> {
        let wanted = self
            .profile
            .columns
            .get(name)
            .map(String::as_str)
            .unwrap_or(name);
        self.columns
            .iter()
            .find(|c| *c == wanted)
            .cloned()
            .or_else(|| {
                let lower = wanted.to_ascii_lowercase();
                self.lower
                    .iter()
                    .position(|n| *n == lower)
                    .map(|i| self.columns[i].clone())
            })
    }
}

impl Plan {
    /// The plan for frames with `df`'s columns; a missing required column or a derivation
    /// from a column the file lacks is an error naming it.
    pub fn new(
        df: &DataFrame,
        profile: &ImportProfile,
        outcomes_required: bool,
        kinds: Option<&ExtraKinds>,
    ) -> Result<Self> {
        let columns: Vec<String> = df.columns().iter().map(|c| c.name().to_string()).collect();
        let names = Names {
            lower: columns.iter().map(|c| c.to_ascii_lowercase()).collect(),
            columns,
            profile,
        };
        names.check_required(outcomes_required)?;
        let decision = names.decision()?;
        let numeric = contract::NUMERIC
            .iter()
            .filter_map(|&n| {
                names
                    .source(n)
                    .map(|s| (n, s, profile.numbers.lenient.iter().any(|l| l == n)))
            })
            .collect();
        let flags = contract::FLAGS
            .iter()
            .filter_map(|&n| names.source(n).map(|s| (n, s)))
            .collect();
        let categorical = contract::CATEGORICAL
            .iter()
            .filter_map(|&n| names.source(n).map(|s| (n, s)))
            .collect();
        let extras = plan_extras(&names, profile, kinds);
        Ok(Plan {
            dates: DateParser::new(&profile.dates.formats),
            id: names.source("shipment_id"),
            carrier: names.source("carrier"),
            warehouse: names.source("warehouse"),
            destination: names.source("destination"),
            deadline: names.source("date_deadline").expect("checked above"),
            delivered: names.source("delivered_at"),
            decision,
            numeric,
            flags,
            categorical,
            extras,
            notes: names.source(contract::NOTES),
            profile: profile.clone(),
        })
    }

    /// The table's columns, with no rows: what every converted block has.
    pub fn empty_table(&self) -> ShipmentTable {
        let mut t = ShipmentTable::default();
        for (name, _, _) in &self.numeric {
            t.numeric.push(NumericColumn {
                name: name.to_string(),
                values: Vec::new(),
            });
        }
        for (name, _) in &self.flags {
            t.numeric.push(NumericColumn {
                name: name.to_string(),
                values: Vec::new(),
            });
        }
        for (name, _) in &self.categorical {
            t.categorical.push(CategoricalColumn {
                name: name.to_string(),
                values: Labels::default(),
            });
        }
        t
    }
}

/// Extras: every remaining source column, unless mapped, ignored or an outcome.
fn plan_extras(
    names: &Names<'_>,
    profile: &ImportProfile,
    kinds: Option<&ExtraKinds>,
) -> Vec<ExtraPlan> {
    let mut consumed = std::collections::BTreeSet::new();
    for (target, source) in &profile.columns {
        if contract::is_contract_column(target) {
            consumed.insert(source.clone());
        }
    }
    for d in profile.derive.values() {
        consumed.extend(d.first_of.iter().filter_map(|c| names.source(c)));
    }
    let renamed_from: std::collections::HashMap<&str, &str> = profile
        .columns
        .iter()
        .map(|(t, s)| (s.as_str(), t.as_str()))
        .collect();
    let mut out = Vec::new();
    for source in &names.columns {
        let name = renamed_from
            .get(source.as_str())
            .copied()
            .unwrap_or(source)
            .to_string();
        if consumed.contains(source)
            || contract::is_contract_column(&name)
            || profile.ignore.iter().any(|i| i == source || *i == name)
        {
            continue;
        }
        let feature = super::load::sanitize(&name);
        let date = profile
            .extra_dates
            .iter()
            .any(|d| *d == name || d == source);
        let kind = match (date, kinds) {
            (_, None) if date => ExtraKind::Date,
            (_, None) => ExtraKind::Auto,
            (true, Some(k))
                if k.numeric
                    .contains(&format!("{feature}_days_before_decision")) =>
            {
                ExtraKind::Date
            }
            (false, Some(k)) if k.numeric.contains(&feature) => ExtraKind::Numeric,
            (false, Some(k)) if k.categorical.contains(&feature) => ExtraKind::Categorical,
            (_, Some(_)) => ExtraKind::Skip,
        };
        out.push(ExtraPlan {
            source: source.clone(),
            read: names.source(&name),
            feature,
            kind,
        });
    }
    out
}

/// One block converted: every row typed (rejected ones too, with placeholders), the first
/// problem of each rejected row, and the extras' cells.
pub struct Block {
    pub table: ShipmentTable,
    pub rejected: Vec<Option<RejectedRow>>,
    pub extras: Vec<ExtraColumn>,
}

/// What a block (then the whole file) holds of an extra column.
pub enum ExtraColumn {
    /// A date extra (days before the decision time), or a numeric one a model fixed.
    Days(Vec<f64>),
    Cells(ExtraCells),
    /// A categorical one a model fixed.
    Labels(Labels),
    Skipped,
}

/// An extra column's cells, kept both ways until the whole column decides what it is.
pub struct ExtraCells {
    /// Non-empty cells, rejected rows included (the rule counts every row read).
    pub present: usize,
    /// The values as numbers, while every present one is a number.
    pub numbers: Option<Vec<f64>>,
    /// The values as labels, while there are at most [`MAX_EXTRA_DISTINCT`] of them.
    pub labels: Option<Labels>,
}

impl ExtraColumn {
    /// Keeps the rows where `keep` is true.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut k = keep.iter();
        match self {
            ExtraColumn::Days(v) => v.retain(|_| *k.next().unwrap_or(&true)),
            ExtraColumn::Labels(l) => l.retain(keep),
            ExtraColumn::Skipped => {}
            ExtraColumn::Cells(c) => {
                if let Some(n) = &mut c.numbers {
                    n.retain(|_| *k.next().unwrap_or(&true));
                }
                if let Some(l) = &mut c.labels {
                    l.retain(keep);
                }
            }
        }
    }

    /// Appends a later block's rows of the same column.
    pub fn append(&mut self, other: ExtraColumn) {
        match (self, other) {
            (ExtraColumn::Days(a), ExtraColumn::Days(b)) => a.extend(b),
            (ExtraColumn::Labels(a), ExtraColumn::Labels(b)) => a.extend_from(&b),
            (ExtraColumn::Skipped, ExtraColumn::Skipped) => {}
            (ExtraColumn::Cells(a), ExtraColumn::Cells(b)) => {
                a.present += b.present;
                a.numbers = match (a.numbers.take(), b.numbers) {
                    (Some(mut x), Some(y)) => {
                        x.extend(y);
                        Some(x)
                    }
                    _ => None,
                };
                a.labels = match (a.labels.take(), b.labels) {
                    (Some(mut x), Some(y)) => {
                        x.extend_from(&y);
                        (x.dictionary().len() <= MAX_EXTRA_DISTINCT).then_some(x)
                    }
                    _ => None,
                };
            }
            _ => unreachable!("one plan makes every block's extras"),
        }
    }
}

/// A column's cells as trimmed strings, `None` for empty or missing tokens.
fn cells<'a>(
    df: &'a DataFrame,
    source: Option<&str>,
    profile: &ImportProfile,
) -> Vec<Option<&'a str>> {
    let col = source
        .and_then(|s| df.column(s).ok())
        .and_then(|c| c.str().ok());
    match col {
        None => vec![None; df.height()],
        Some(col) => col
            .iter()
            .map(|v| {
                v.map(str::trim)
                    .filter(|s| !s.is_empty() && !profile.is_missing_token(s))
            })
            .collect(),
    }
}

/// A required column's cells: an empty one takes the profile's default for `name`, or rejects
/// its row.
fn required<'a>(
    df: &'a DataFrame,
    profile: &'a ImportProfile,
    name: &str,
    source: Option<&str>,
    rej: &mut Rejections,
) -> Vec<Option<&'a str>> {
    let default = profile.defaults.get(name).map(String::as_str);
    cells(df, source, profile)
        .into_iter()
        .enumerate()
        .map(|(i, c)| match (c, default) {
            (Some(v), _) => Some(v),
            (None, Some(d)) => Some(d),
            (None, None) => {
                rej.reject(i, name, "empty value in a required column".into());
                None
            }
        })
        .collect()
}

/// The first problem found in each row is the one reported.
struct Rejections {
    reasons: Vec<Option<RejectedRow>>,
    /// Data rows before this block.
    offset: usize,
}

impl Rejections {
    fn reject(&mut self, i: usize, column: &str, reason: String) {
        if self.reasons[i].is_none() {
            self.reasons[i] = Some(RejectedRow {
                row: self.offset + i + 1,
                column: column.to_string(),
                reason,
            });
        }
    }
}

impl Plan {
    /// [`Plan::convert`] on a part of `df` per core, parts in order, each with the keys of its
    /// rows' ids (empty ids have none) and their data rows.
    pub fn convert_across_cores(
        &self,
        df: &DataFrame,
        offset: usize,
    ) -> Vec<(Block, Vec<(ShipmentKey, u32)>)> {
        let n = df.height();
        let per = n.div_ceil(crate::parallel::threads()).max(16_384);
        let parts: Vec<(usize, DataFrame)> = (0..n)
            .step_by(per.max(1))
            .map(|start| (start, df.slice(start as i64, per.min(n - start))))
            .collect();
        crate::parallel::each(parts, |(start, part)| {
            let block = self.convert(&part, offset + start);
            let keys: Vec<(ShipmentKey, u32)> = block
                .table
                .shipment_id
                .iter()
                .enumerate()
                .filter(|(_, id)| id.is_some_and(|id| !id.is_empty()))
                .map(|(i, id)| {
                    (
                        ShipmentKey::of(id.unwrap_or_default()),
                        (offset + start + i) as u32,
                    )
                })
                .collect();
            (block, keys)
        })
        .into_iter()
        .map(|b| b.expect("converting a block does not panic"))
        .collect()
    }

    /// Converts the rows of `df`, the block after `offset` data rows.
    pub fn convert(&self, df: &DataFrame, offset: usize) -> Block {
        let n = df.height();
        let profile = &self.profile;
        let mut rej = Rejections {
            reasons: vec![None; n],
            offset,
        };
        let mut table = self.empty_table();
        self.identity(df, &mut table, &mut rej);
        let deadline = self.dates_of(df, "date_deadline", Some(&self.deadline), true, &mut rej);
        let delivered = match &self.delivered {
            Some(_) => self.dates_of(df, "delivered_at", self.delivered.as_ref(), false, &mut rej),
            None => vec![None; n],
        };
        let scheduled = self.decision_times(df, &deadline, &mut rej);
        table.date_deadline = deadline.iter().map(|d| d.unwrap_or(0)).collect();
        table.delivered_at = delivered;
        self.numbers(df, &mut table, &mut rej);
        self.categories(df, &mut table);
        let extras = self
            .extras
            .iter()
            .map(|e| self.extra(df, e, &scheduled))
            .collect();
        table.scheduled_date = scheduled.iter().map(|s| s.unwrap_or(0)).collect();
        table.notes = cells(df, self.notes.as_deref(), profile)
            .into_iter()
            .collect();
        Block {
            table,
            rejected: rej.reasons,
            extras,
        }
    }

    /// The shipment's id, carrier and lane: required texts, where an empty cell takes the
    /// profile's default or rejects its row.
    fn identity(&self, df: &DataFrame, table: &mut ShipmentTable, rej: &mut Rejections) {
        let n = df.height();
        let ids = required(df, &self.profile, "shipment_id", self.id.as_deref(), rej);
        table.shipment_id = Texts::with_capacity(n, ids.iter().flatten().map(|s| s.len()).sum());
        for id in &ids {
            table.shipment_id.push(id.unwrap_or(""));
        }
        drop(ids);
        for (name, source, column) in [
            ("carrier", &self.carrier, &mut table.carrier),
            ("warehouse", &self.warehouse, &mut table.warehouse),
            ("destination", &self.destination, &mut table.destination),
        ] {
            *column = Labels::with_capacity(n);
            for v in required(df, &self.profile, name, source.as_deref(), rej) {
                column.push(v.unwrap_or(""));
            }
        }
    }

    /// The contract's numbers, then its yes/no flags (stored as 0/1): a value that does not
    /// read rejects its row, unless the profile calls the column lenient.
    fn numbers(&self, df: &DataFrame, table: &mut ShipmentTable, rej: &mut Rejections) {
        let profile = &self.profile;
        let mut k = 0;
        for (name, source, lenient) in &self.numeric {
            table.numeric[k].values = cells(df, Some(source), profile)
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    None => f64::NAN,
                    Some(v) => match parse_number(v) {
                        Some(x) => x,
                        None if *lenient => f64::NAN,
                        None => {
                            rej.reject(i, name, format!("`{v}` is not a number"));
                            f64::NAN
                        }
                    },
                })
                .collect();
            k += 1;
        }
        for (name, source) in &self.flags {
            table.numeric[k].values = cells(df, Some(source), profile)
                .into_iter()
                .enumerate()
                .map(|(i, c)| match c {
                    None => f64::NAN,
                    Some(v) => parse_flag(v).unwrap_or_else(|| {
                        rej.reject(i, name, format!("`{v}` is not a yes/no value"));
                        f64::NAN
                    }),
                })
                .collect();
            k += 1;
        }
    }

    /// The category columns, where an empty cell takes the profile's default.
    fn categories(&self, df: &DataFrame, table: &mut ShipmentTable) {
        for (k, (name, source)) in self.categorical.iter().enumerate() {
            let default = self.profile.defaults.get(*name).map(String::as_str);
            let mut labels = Labels::with_capacity(df.height());
            for c in cells(df, Some(source), &self.profile) {
                labels.push_opt(c.or(default));
            }
            table.categorical[k].values = labels;
        }
    }

    fn dates_of(
        &self,
        df: &DataFrame,
        name: &str,
        source: Option<&String>,
        required: bool,
        rej: &mut Rejections,
    ) -> Vec<Option<Timestamp>> {
        cells(df, source.map(String::as_str), &self.profile)
            .into_iter()
            .enumerate()
            .map(|(i, c)| match c {
                Some(v) => {
                    let t = self.dates.parse(v);
                    if t.is_none() {
                        rej.reject(
                            i,
                            name,
                            format!("unparsable date `{v}` (expected {})", self.dates.describe()),
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
            .collect()
    }

    fn decision_times(
        &self,
        df: &DataFrame,
        deadline: &[Option<Timestamp>],
        rej: &mut Rejections,
    ) -> Vec<Option<Timestamp>> {
        let (first_of, fallback) = match &self.decision {
            Decision::Column(c) => {
                return self.dates_of(df, contract::DECISION_TIME, Some(c), true, rej)
            }
            Decision::Derived { first_of, fallback } => (first_of, fallback),
        };
        let mut out: Vec<Option<Timestamp>> = vec![None; df.height()];
        for source in first_of {
            for (i, c) in cells(df, Some(source), &self.profile)
                .into_iter()
                .enumerate()
            {
                if out[i].is_none() {
                    out[i] = c.and_then(|v| self.dates.parse(v));
                }
            }
        }
        if let Some((from, shift)) = fallback {
            let base = match from {
                Fallback::Deadline => deadline.to_vec(),
                Fallback::Column(name, c) => self.dates_of(df, name, Some(c), false, rej),
            };
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
    }

    fn extra(&self, df: &DataFrame, e: &ExtraPlan, scheduled: &[Option<Timestamp>]) -> ExtraColumn {
        if e.kind == ExtraKind::Skip {
            return ExtraColumn::Skipped;
        }
        let cells = cells(df, e.read.as_deref(), &self.profile);
        if e.kind == ExtraKind::Numeric {
            return ExtraColumn::Days(
                cells
                    .iter()
                    .map(|c| c.and_then(parse_number).unwrap_or(f64::NAN))
                    .collect(),
            );
        }
        if e.kind == ExtraKind::Categorical {
            return ExtraColumn::Labels(cells.iter().copied().collect());
        }
        if e.is_date() {
            return ExtraColumn::Days(
                cells
                    .iter()
                    .zip(scheduled)
                    .map(|(c, s)| match (c.and_then(|v| self.dates.parse(v)), s) {
                        (Some(d), Some(s)) => (*s - d) as f64 / SECONDS_PER_DAY,
                        _ => f64::NAN,
                    })
                    .collect(),
            );
        }
        let present = cells.iter().flatten().count();
        let numbers: Option<Vec<f64>> = cells
            .iter()
            .map(|c| match c {
                None => Some(f64::NAN),
                Some(v) => parse_number(v),
            })
            .collect();
        let labels: Labels = cells.iter().copied().collect();
        let labels = (labels.dictionary().len() <= MAX_EXTRA_DISTINCT).then_some(labels);
        ExtraColumn::Cells(ExtraCells {
            present,
            numbers,
            labels,
        })
    }
}

pub fn parse_number(v: &str) -> Option<f64> {
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
