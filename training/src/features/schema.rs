//! The feature schema: which columns become features, in which order, and how categories map to
//! codes. It is fitted once on training rows, stored in the artifact, and turned into an
//! [`Encoder`] wherever features are computed, in training, evaluation, batch scoring and the
//! service alike.

use std::ops::Range;

use rustc_hash::FxHashMap as HashMap;

use chrono::{DateTime, Datelike, Timelike};
use serde::{Deserialize, Serialize};

use super::history::{HistoryConfig, HistoryState, Lane, Sweep};
use crate::data::table::{Labels, ShipmentTable, Timestamp, SECONDS_PER_DAY};
use crate::progress::{Progress, Ticker};

/// Features computed from the shipment's own dates.
pub const CALENDAR_FEATURES: [&str; 7] = [
    "lead_time_days",
    "required_km_per_day",
    "decision_weekday",
    "decision_hour",
    "decision_month",
    "decision_day_of_year",
    "deadline_weekday",
];

/// The columns that are always categorical features.
pub const CORE_CATEGORIES: [&str; 3] = ["carrier", "warehouse", "destination"];

/// A categorical feature's known values; a value's code is its position. Rare and unseen values
/// share the code `values.len()`, so serving never meets a code training did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub name: String,
    pub values: Vec<String>,
}

/// How the schema is fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// A category needs this many training rows to get its own code.
    pub min_category_count: usize,
    /// At most this many codes per categorical feature (the most frequent win).
    pub max_categories: usize,
    pub history: HistoryConfig,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        SchemaConfig {
            min_category_count: 5,
            max_categories: 250,
            history: HistoryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// Numeric table columns, in feature order.
    pub numeric: Vec<String>,
    /// Categorical features: the core three first, then optional and extra ones.
    pub categorical: Vec<Vocabulary>,
    pub history: HistoryConfig,
}

/// Row-major feature values; `NaN` is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub data: Vec<f64>,
    pub n_rows: usize,
    pub n_cols: usize,
}

impl FeatureMatrix {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.n_cols..(i + 1) * self.n_cols]
    }

    /// Every row, as a view.
    pub fn all(&self) -> Rows<'_> {
        Rows::span(self, 0..self.n_rows)
    }

    /// The given rows, in the given order.
    pub fn select_rows(&self, rows: &[usize]) -> FeatureMatrix {
        let mut data = Vec::with_capacity(rows.len() * self.n_cols);
        for &r in rows {
            data.extend_from_slice(self.row(r));
        }
        FeatureMatrix {
            data,
            n_rows: rows.len(),
            n_cols: self.n_cols,
        }
    }
}

/// Some rows of a [`FeatureMatrix`] as contiguous runs: a training run's fit, calibration and
/// validation sets are runs of one matrix built once, so none of them is a copy (at ten
/// million rows each copy was ~5 GB).
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    matrix: &'a FeatureMatrix,
    runs: Vec<Range<usize>>,
    /// Rows before each run, in the view.
    starts: Vec<usize>,
    len: usize,
}

impl<'a> Rows<'a> {
    pub fn new(matrix: &'a FeatureMatrix, runs: Vec<Range<usize>>) -> Self {
        let runs: Vec<Range<usize>> = runs.into_iter().filter(|r| !r.is_empty()).collect();
        let mut starts = Vec::with_capacity(runs.len());
        let mut len = 0;
        for r in &runs {
            debug_assert!(r.end <= matrix.n_rows);
            starts.push(len);
            len += r.len();
        }
        Rows {
            matrix,
            runs,
            starts,
            len,
        }
    }

    /// The rows `range` of `matrix`.
    pub fn span(matrix: &'a FeatureMatrix, range: Range<usize>) -> Self {
        Rows::new(matrix, std::iter::once(range).collect())
    }

    pub fn n_rows(&self) -> usize {
        self.len
    }

    pub fn n_cols(&self) -> usize {
        self.matrix.n_cols
    }

    /// Row `i` of the view.
    pub fn row(&self, i: usize) -> &'a [f64] {
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        self.matrix.row(self.runs[k].start + i - self.starts[k])
    }

    /// The runs' values, each contiguous (row-major).
    pub fn parts(&self) -> impl Iterator<Item = &'a [f64]> + '_ {
        let n = self.matrix.n_cols;
        self.runs
            .iter()
            .map(move |r| &self.matrix.data[r.start * n..r.end * n])
    }

    /// The matrix positions of the view's rows, in order.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.runs.iter().flat_map(|r| r.clone())
    }
}

impl FeatureSchema {
    /// Fits the schema on the given training rows.
    pub fn fit<'t>(table: &'t ShipmentTable, rows: &[usize], config: &SchemaConfig) -> Self {
        let vocab = |name: &str, values: &dyn Fn(usize) -> Option<&'t str>| {
            vocabulary(name, rows, config, values)
        };
        let mut categorical = vec![
            vocab("carrier", &|i| Some(&table.carrier[i])),
            vocab("warehouse", &|i| Some(&table.warehouse[i])),
            vocab("destination", &|i| Some(&table.destination[i])),
        ];
        for col in &table.categorical {
            categorical.push(vocab(&col.name, &|i| col.values.get(i)));
        }
        FeatureSchema {
            numeric: table.numeric.iter().map(|c| c.name.clone()).collect(),
            categorical,
            history: config.history.clone(),
        }
    }

    pub fn n_features(&self) -> usize {
        CALENDAR_FEATURES.len()
            + self.numeric.len()
            + self.categorical.len()
            + self.history.feature_count()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = CALENDAR_FEATURES.iter().map(|s| s.to_string()).collect();
        names.extend(self.numeric.iter().cloned());
        names.extend(self.categorical.iter().map(|v| v.name.clone()));
        names.extend(self.history.feature_names());
        names
    }

    /// Per feature, whether it changes when the shipment's carrier does: the carrier itself and
    /// its history.
    pub fn carrier_dependent(&self) -> Vec<bool> {
        let mut out = vec![false; CALENDAR_FEATURES.len() + self.numeric.len()];
        out.extend(
            self.categorical
                .iter()
                .map(|v| v.name == CORE_CATEGORIES[0]),
        );
        out.extend(self.history.carrier_dependent());
        out
    }

    /// Positions of the categorical features, for LightGBM's `categorical_feature`.
    pub fn categorical_indices(&self) -> Vec<usize> {
        let start = CALENDAR_FEATURES.len() + self.numeric.len();
        (start..start + self.categorical.len()).collect()
    }

    /// Positions of the history features.
    pub fn history_indices(&self) -> Vec<usize> {
        let start = CALENDAR_FEATURES.len() + self.numeric.len() + self.categorical.len();
        (start..self.n_features()).collect()
    }

    /// Features computable from a request alone, without history or vocabularies: what the
    /// fallback rules may use when no model is available.
    pub fn standalone_indices(&self) -> Vec<usize> {
        (0..CALENDAR_FEATURES.len() + self.numeric.len()).collect()
    }
}

/// The most frequent values of a column among `rows` (deterministic order on ties).
fn vocabulary<'t>(
    name: &str,
    rows: &[usize],
    config: &SchemaConfig,
    values: &dyn Fn(usize) -> Option<&'t str>,
) -> Vocabulary {
    let mut counts: HashMap<&str, usize> = HashMap::default();
    for &i in rows {
        if let Some(v) = values(i) {
            *counts.entry(v).or_default() += 1;
        }
    }
    let mut kept: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= config.min_category_count)
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    kept.truncate(config.max_categories);
    Vocabulary {
        name: name.to_string(),
        values: kept.into_iter().map(|(v, _)| v.to_string()).collect(),
    }
}

/// Computes feature rows for a schema; built once per loaded model.
#[derive(Debug, Clone)]
pub struct Encoder {
    schema: FeatureSchema,
    codes: Vec<HashMap<String, u32>>,
}

impl Encoder {
    pub fn new(schema: FeatureSchema) -> Self {
        let codes = schema
            .categorical
            .iter()
            .map(|v| {
                v.values
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.clone(), i as u32))
                    .collect()
            })
            .collect();
        Encoder { schema, codes }
    }

    pub fn schema(&self) -> &FeatureSchema {
        &self.schema
    }

    /// Encodes rows of a table, their history features cut at each row's decision time.
    /// Large batches are split across the available cores.
    pub fn encode(
        &self,
        table: &ShipmentTable,
        rows: &[usize],
        history: &HistoryState,
    ) -> FeatureMatrix {
        self.encode_with_progress(table, rows, history, &())
    }

    /// [`Encoder::encode`], reporting the rows done. Rows in decision order are encoded where
    /// they go; others are encoded in decision order and put in place after, because queries
    /// that move forward in time find the history's entries in cache (shuffled queries cost
    /// four times as much at a million rows).
    pub fn encode_with_progress(
        &self,
        table: &ShipmentTable,
        rows: &[usize],
        history: &HistoryState,
        progress: &dyn Progress,
    ) -> FeatureMatrix {
        let n_cols = self.schema.n_features();
        let in_time_order = rows
            .windows(2)
            .all(|w| table.scheduled_date[w[0]] <= table.scheduled_date[w[1]]);
        let order: Option<Vec<usize>> = (!in_time_order && rows.len() > 4096).then(|| {
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by_key(|&k| table.scheduled_date[rows[k]]);
            order
        });
        let sorted: Vec<usize>;
        let encode_rows = match &order {
            Some(order) => {
                sorted = order.iter().map(|&k| rows[k]).collect();
                &sorted[..]
            }
            None => rows,
        };
        let mut data = vec![f64::NAN; rows.len() * n_cols];
        crate::parallel::for_row_blocks(rows.len(), n_cols, &mut data, 4096, |block, out| {
            let mut ticker = Ticker::new(progress, 8192);
            // The block's rows are in decision order: each entity's cuts move forward.
            let mut sweep = Sweep::default();
            for (part, out) in block
                .clone()
                .step_by(4096)
                .zip(out.chunks_mut(4096 * n_cols))
            {
                let part = part..(part + 4096).min(block.end);
                self.encode_into(table, &encode_rows[part.clone()], history, out, &mut sweep);
                ticker.tick(part.len() as u64);
            }
        });
        if let Some(order) = order {
            let mut placed = vec![f64::NAN; data.len()];
            for (k, &to) in order.iter().enumerate() {
                placed[to * n_cols..(to + 1) * n_cols]
                    .copy_from_slice(&data[k * n_cols..(k + 1) * n_cols]);
            }
            data = placed;
        }
        FeatureMatrix {
            data,
            n_rows: rows.len(),
            n_cols,
        }
    }

    /// Encodes rows given in decision order, continuing `sweeps` (one per core, kept by the
    /// caller across calls whose rows keep moving forward in time): a large sorted batch goes
    /// through in small matrices without each one starting its cuts afresh. The sweep of the
    /// `i`-th core takes the `i`-th contiguous part of `rows`. Any order gives the same
    /// values; decision order is what makes it fast.
    pub fn encode_in_order(
        &self,
        table: &ShipmentTable,
        rows: &[usize],
        history: &HistoryState,
        sweeps: &mut [Sweep],
    ) -> FeatureMatrix {
        let n_cols = self.schema.n_features();
        let mut data = vec![f64::NAN; rows.len() * n_cols];
        let per = rows.len().div_ceil(sweeps.len().max(1)).max(4096);
        let encode = |rows: &[usize], out: &mut [f64], sweep: &mut Sweep| {
            for (part, out) in rows.chunks(4096).zip(out.chunks_mut(4096 * n_cols)) {
                self.encode_into(table, part, history, out, sweep);
            }
        };
        if rows.len() <= per || sweeps.len() < 2 {
            if let Some(sweep) = sweeps.first_mut() {
                encode(rows, &mut data, sweep);
            } else {
                encode(rows, &mut data, &mut Sweep::default());
            }
        } else {
            let encode = &encode;
            std::thread::scope(|scope| {
                for ((rows, out), sweep) in rows
                    .chunks(per)
                    .zip(data.chunks_mut(per * n_cols))
                    .zip(sweeps.iter_mut())
                {
                    scope.spawn(move || encode(rows, out, sweep));
                }
            });
        }
        FeatureMatrix {
            data,
            n_rows: rows.len(),
            n_cols,
        }
    }

    /// Rows of one table row with its carrier swapped for each of `carriers`: the same
    /// values [`Encoder::encode`] gives a copy of the row with that carrier, computed once for
    /// the shipment and again only for what depends on the carrier (its code and its history).
    pub fn encode_carrier_variants(
        &self,
        table: &ShipmentTable,
        row: usize,
        carriers: &[String],
        history: &HistoryState,
    ) -> FeatureMatrix {
        let n_cols = self.schema.n_features();
        let mut base = vec![f64::NAN; n_cols];
        self.encode_into(table, &[row], history, &mut base, &mut Sweep::default());
        let carrier_col = CALENDAR_FEATURES.len() + self.schema.numeric.len();
        let hist_start = n_cols - self.schema.history.feature_count();
        let mut data = Vec::with_capacity(carriers.len() * n_cols);
        for carrier in carriers {
            let start = data.len();
            data.extend_from_slice(&base);
            let out = &mut data[start..];
            out[carrier_col] = self.code(0, Some(carrier));
            let lane = Lane {
                carrier,
                ..table.lane(row)
            };
            history.carrier_features_at(
                lane,
                table.scheduled_date[row],
                table.date_deadline[row],
                &mut out[hist_start..],
            );
        }
        FeatureMatrix {
            data,
            n_rows: carriers.len(),
            n_cols,
        }
    }

    fn encode_into(
        &self,
        table: &ShipmentTable,
        rows: &[usize],
        history: &HistoryState,
        data: &mut [f64],
        sweep: &mut Sweep,
    ) {
        let n_cols = self.schema.n_features();
        let numeric: Vec<Option<&[f64]>> = self
            .schema
            .numeric
            .iter()
            .map(|n| table.numeric(n).map(|c| c.values.as_slice()))
            .collect();
        let core = [&table.carrier, &table.warehouse, &table.destination];
        let codes: Vec<Codes<'_>> = self
            .schema
            .categorical
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let labels = match core.get(k) {
                    Some(l) => Some(*l),
                    None => table.categorical(&v.name).map(|c| &c.values),
                };
                Codes::new(self, k, labels, rows.len())
            })
            .collect();
        let hist_start = n_cols - self.schema.history.feature_count();
        let distance = table.numeric("distance_km").map(|c| c.values.as_slice());
        for (r, &i) in rows.iter().enumerate() {
            let out = &mut data[r * n_cols..(r + 1) * n_cols];
            calendar(
                table.scheduled_date[i],
                table.date_deadline[i],
                distance.map(|d| d[i]),
                out,
            );
            let mut j = CALENDAR_FEATURES.len();
            for col in &numeric {
                out[j] = col.map_or(f64::NAN, |c| c[i]);
                j += 1;
            }
            for c in &codes {
                out[j] = c.of(i);
                j += 1;
            }
            history.features_sweeping(
                sweep,
                table.lane(i),
                table.scheduled_date[i],
                table.date_deadline[i],
                &mut out[hist_start..],
            );
        }
    }

    fn code(&self, feature: usize, value: Option<&str>) -> f64 {
        match value {
            None => f64::NAN,
            Some(v) => self.codes[feature]
                .get(v)
                .copied()
                .unwrap_or(self.schema.categorical[feature].values.len() as u32)
                as f64,
        }
    }

    /// A readable value for a feature of an encoded row (the category name for codes).
    pub fn describe_value(&self, feature: usize, value: f64) -> serde_json::Value {
        let cat = self.schema.categorical_indices();
        if let Some(k) = cat.iter().position(|&c| c == feature) {
            if value.is_nan() {
                return serde_json::Value::Null;
            }
            let vocab = &self.schema.categorical[k].values;
            return match vocab.get(value as usize) {
                Some(v) => serde_json::Value::String(v.clone()),
                None => serde_json::Value::String("(rare or unseen)".into()),
            };
        }
        if value.is_finite() {
            serde_json::json!((value * 1e4).round() / 1e4)
        } else {
            serde_json::Value::Null
        }
    }
}

/// A categorical feature's codes for the rows of one table: looked up by text per row, or
/// through a table per distinct value when the rows outnumber the column's values (ten
/// million rows of twenty carriers: twenty lookups, not ten million).
enum Codes<'a> {
    Missing,
    ByText {
        encoder: &'a Encoder,
        feature: usize,
        labels: &'a Labels,
    },
    ByValue {
        labels: &'a Labels,
        codes: Vec<f64>,
    },
}

impl<'a> Codes<'a> {
    fn new(encoder: &'a Encoder, feature: usize, labels: Option<&'a Labels>, rows: usize) -> Self {
        let Some(labels) = labels else {
            return Codes::Missing;
        };
        if rows <= labels.dictionary().len() {
            return Codes::ByText {
                encoder,
                feature,
                labels,
            };
        }
        let codes = labels
            .dictionary()
            .iter()
            .map(|v| encoder.code(feature, Some(v)))
            .collect();
        Codes::ByValue { labels, codes }
    }

    /// The code of row `i`, as [`Encoder::code`] gives it for the row's value.
    #[inline]
    fn of(&self, i: usize) -> f64 {
        match self {
            Codes::Missing => f64::NAN,
            Codes::ByText {
                encoder,
                feature,
                labels,
            } => encoder.code(*feature, labels.get(i)),
            Codes::ByValue { labels, codes } => {
                labels.code(i).map_or(f64::NAN, |c| codes[c as usize])
            }
        }
    }
}

/// The [`CALENDAR_FEATURES`] of one shipment, as the encoder computes them: what the service's
/// fallback rules read when no model (and so no schema) is loaded.
pub fn calendar_features(
    decision: Timestamp,
    deadline: Timestamp,
    distance_km: Option<f64>,
) -> [f64; CALENDAR_FEATURES.len()] {
    let mut out = [f64::NAN; CALENDAR_FEATURES.len()];
    calendar(decision, deadline, distance_km, &mut out);
    out
}

fn calendar(decision: Timestamp, deadline: Timestamp, distance_km: Option<f64>, out: &mut [f64]) {
    let lead = (deadline - decision) as f64 / SECONDS_PER_DAY;
    out[0] = lead;
    // The pace the promise demands; trees approximate a ratio of two features poorly.
    out[1] = match distance_km {
        Some(d) if d.is_finite() => d / lead.max(1.0 / 24.0),
        _ => f64::NAN,
    };
    if let Some(d) = DateTime::from_timestamp(decision, 0) {
        out[2] = d.weekday().num_days_from_monday() as f64;
        out[3] = d.hour() as f64 + d.minute() as f64 / 60.0;
        out[4] = d.month() as f64;
        out[5] = d.ordinal() as f64;
    }
    if let Some(d) = DateTime::from_timestamp(deadline, 0) {
        out[6] = d.weekday().num_days_from_monday() as f64;
    }
}
