//! `ShipmentTable`: shipments in columns, after the import profile and validation. Training,
//! evaluation, batch scoring and the service's single-shipment requests all go through it, so
//! features are computed from one representation.

/// Seconds since the Unix epoch, UTC. Integers keep the history sweep cheap and exact.
pub type Timestamp = i64;

pub const SECONDS_PER_DAY: f64 = 86_400.0;

/// A numeric feature column; `NaN` marks a missing value.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericColumn {
    pub name: String,
    pub values: Vec<f64>,
}

/// A categorical feature column; `None` marks a missing value.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalColumn {
    pub name: String,
    pub values: Vec<Option<String>>,
}

/// Validated shipments, one entry per row in every column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShipmentTable {
    pub shipment_id: Vec<String>,
    /// The decision time: planned dispatch.
    pub scheduled_date: Vec<Timestamp>,
    /// The date promised to the customer.
    pub date_deadline: Vec<Timestamp>,
    /// Proof of delivery; `None` for open shipments.
    pub delivered_at: Vec<Option<Timestamp>>,
    pub carrier: Vec<String>,
    pub warehouse: Vec<String>,
    pub destination: Vec<String>,
    /// Optional contract numbers and flags, then numeric extras.
    pub numeric: Vec<NumericColumn>,
    /// Optional contract categories, then categorical extras.
    pub categorical: Vec<CategoricalColumn>,
    /// Exception notes (the contract's `notes`); `None` where a row has none or the source
    /// has no such column.
    pub notes: Vec<Option<String>>,
    /// 1-based data row in the source file, for messages about a row.
    pub source_row: Vec<usize>,
}

impl ShipmentTable {
    pub fn len(&self) -> usize {
        self.shipment_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shipment_id.is_empty()
    }

    /// The outcome: `Some(true)` when delivered after the promised date, `None` while open.
    pub fn is_late(&self, row: usize) -> Option<bool> {
        self.delivered_at[row].map(|d| d > self.date_deadline[row])
    }

    pub fn numeric(&self, name: &str) -> Option<&NumericColumn> {
        self.numeric.iter().find(|c| c.name == name)
    }

    pub fn categorical(&self, name: &str) -> Option<&CategoricalColumn> {
        self.categorical.iter().find(|c| c.name == name)
    }

    /// The carrier, warehouse and destination of a row.
    pub fn lane(&self, row: usize) -> crate::features::history::Lane<'_> {
        crate::features::history::Lane {
            carrier: &self.carrier[row],
            warehouse: &self.warehouse[row],
            destination: &self.destination[row],
        }
    }

    /// Row indices ordered by decision time (ties by source order), the order of the replay.
    pub fn order_by_decision_time(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| (self.scheduled_date[i], i));
        order
    }

    /// A new table holding the given rows, in the given order.
    pub fn select(&self, rows: &[usize]) -> ShipmentTable {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&i| v[i].clone()).collect()
        }
        ShipmentTable {
            shipment_id: pick(&self.shipment_id, rows),
            scheduled_date: pick(&self.scheduled_date, rows),
            date_deadline: pick(&self.date_deadline, rows),
            delivered_at: pick(&self.delivered_at, rows),
            carrier: pick(&self.carrier, rows),
            warehouse: pick(&self.warehouse, rows),
            destination: pick(&self.destination, rows),
            numeric: self
                .numeric
                .iter()
                .map(|c| NumericColumn {
                    name: c.name.clone(),
                    values: pick(&c.values, rows),
                })
                .collect(),
            categorical: self
                .categorical
                .iter()
                .map(|c| CategoricalColumn {
                    name: c.name.clone(),
                    values: pick(&c.values, rows),
                })
                .collect(),
            notes: pick(&self.notes, rows),
            source_row: pick(&self.source_row, rows),
        }
    }
}
