//! The history features as the code before the order-independent rewrite computed them,
//! kept verbatim (but for the names) as the reference the rewrite is checked against: inserts
//! into sorted vectors and rebuilds the running sums from the insertion point on. O(n^2) on
//! unsorted input, so the tests feed it sorted input only.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use dispatch_risk_training::data::table::{ShipmentTable, Timestamp, SECONDS_PER_DAY};
use dispatch_risk_training::features::history::{HistoryConfig, HistoryKey, Lane};

/// The key the earlier code built for an entity (the current code builds the same).
fn key_into<'b>(lane: &Lane<'_>, key: HistoryKey, buf: &'b mut String) -> &'b str {
    buf.clear();
    let (a, b) = match key {
        HistoryKey::Carrier => (lane.carrier, None),
        HistoryKey::Lane => (lane.warehouse, Some(lane.destination)),
        HistoryKey::CarrierDestination => (lane.carrier, Some(lane.destination)),
        HistoryKey::Warehouse => (lane.warehouse, None),
        HistoryKey::Destination => (lane.destination, None),
    };
    buf.push_str(a);
    if let Some(b) = b {
        buf.push('\u{1f}');
        buf.push_str(b);
    }
    buf.as_str()
}

/// Outcomes of one entity, sorted by delivery time, with running sums for O(log n) windows.
#[derive(Debug, Clone)]
struct Series {
    times: Vec<Timestamp>,
    late: Vec<bool>,
    lateness_days: Vec<f64>,
    transit_days: Vec<f64>,
    /// late_cum[i] = late outcomes among the first i entries (one longer than `times`).
    late_cum: Vec<u32>,
    /// lateness_cum[i] = sum of (delivered - deadline) in days over the first i entries.
    lateness_cum: Vec<f64>,
    /// transit_cum[i] = sum of (delivered - decided) in days over the first i entries.
    transit_cum: Vec<f64>,
}

impl Series {
    fn new() -> Self {
        Series {
            times: Vec::new(),
            late: Vec::new(),
            lateness_days: Vec::new(),
            transit_days: Vec::new(),
            late_cum: vec![0],
            lateness_cum: vec![0.0],
            transit_cum: vec![0.0],
        }
    }

    fn insert(&mut self, at: Timestamp, late: bool, lateness_days: f64, transit_days: f64) {
        let pos = self.times.partition_point(|&t| t <= at);
        self.times.insert(pos, at);
        self.late.insert(pos, late);
        self.lateness_days.insert(pos, lateness_days);
        self.transit_days.insert(pos, transit_days);
        // Outcomes mostly arrive in time order, so the rebuilt tail is usually one entry.
        self.late_cum.truncate(pos + 1);
        self.lateness_cum.truncate(pos + 1);
        self.transit_cum.truncate(pos + 1);
        for i in pos..self.times.len() {
            let l = self.late_cum[i] + self.late[i] as u32;
            let s = self.lateness_cum[i] + self.lateness_days[i];
            let t = self.transit_cum[i] + self.transit_days[i];
            self.late_cum.push(l);
            self.lateness_cum.push(s);
            self.transit_cum.push(t);
        }
    }

    /// How many outcomes were delivered strictly before `to`: the cut every query starts from.
    fn upto(&self, to: Timestamp) -> usize {
        self.times.partition_point(|&t| t < to)
    }

    /// Outcomes `lo..hi` (positions in delivery order).
    fn between(&self, lo: usize, hi: usize) -> Window {
        Window {
            n: (hi - lo) as u32,
            late: self.late_cum[hi] - self.late_cum[lo],
            lateness: self.lateness_cum[hi] - self.lateness_cum[lo],
            transit: self.transit_cum[hi] - self.transit_cum[lo],
        }
    }

    /// Outcomes delivered in [from, to), where `hi = upto(to)`.
    fn since(&self, from: Timestamp, hi: usize) -> Window {
        self.between(self.times[..hi].partition_point(|&t| t < from), hi)
    }
}

/// Sums over a window of outcomes.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    n: u32,
    late: u32,
    lateness: f64,
    transit: f64,
}

impl Window {
    fn mean(&self, sum: f64) -> f64 {
        if self.n > 0 {
            sum / self.n as f64
        } else {
            f64::NAN
        }
    }
}

/// One carrier's (lane's, warehouse's...) outcomes and decision times.
#[derive(Debug, Clone)]
struct Entity {
    outcomes: Series,
    /// Decision times, sorted: the workload known at any moment, outcomes or not.
    decisions: Vec<Timestamp>,
}

impl Default for Entity {
    fn default() -> Self {
        Entity {
            outcomes: Series::new(),
            decisions: Vec::new(),
        }
    }
}

/// All entities' outcome series.
#[derive(Debug, Clone)]
pub struct ReferenceHistory {
    config: HistoryConfig,
    overall: Series,
    /// Per key kind, each entity's outcomes and decisions: one lookup serves both.
    entities: [HashMap<String, Entity>; 5],
    /// Shipments already recorded: an outcome reported twice counts once.
    recorded: HashSet<String>,
    decided: HashSet<String>,
}

impl ReferenceHistory {
    pub fn new(config: HistoryConfig) -> Self {
        ReferenceHistory {
            config,
            overall: Series::new(),
            entities: Default::default(),
            recorded: HashSet::default(),
            decided: HashSet::default(),
        }
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Number of outcomes recorded.
    pub fn len(&self) -> usize {
        self.overall.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.overall.times.is_empty()
    }

    /// Records a delivered shipment; returns false when it was already recorded.
    pub fn record(
        &mut self,
        shipment_id: &str,
        lane: Lane<'_>,
        decided: Timestamp,
        deadline: Timestamp,
        delivered_at: Timestamp,
    ) -> bool {
        if !self.recorded.insert(shipment_id.to_string()) {
            return false;
        }
        let late = delivered_at > deadline;
        let lateness = (delivered_at - deadline) as f64 / SECONDS_PER_DAY;
        let transit = (delivered_at - decided) as f64 / SECONDS_PER_DAY;
        self.overall.insert(delivered_at, late, lateness, transit);
        let mut buf = String::with_capacity(64);
        for (k, key) in HistoryKey::ALL.iter().enumerate() {
            let name = key_into(&lane, *key, &mut buf);
            self.entity(k, name)
                .outcomes
                .insert(delivered_at, late, lateness, transit);
        }
        true
    }

    /// Records that a shipment was decided (released for dispatch); returns false when it was
    /// already recorded.
    pub fn record_decision(
        &mut self,
        shipment_id: &str,
        lane: Lane<'_>,
        decided: Timestamp,
    ) -> bool {
        if !self.decided.insert(shipment_id.to_string()) {
            return false;
        }
        let mut buf = String::with_capacity(64);
        for (k, key) in HistoryKey::ALL.iter().enumerate() {
            let name = key_into(&lane, *key, &mut buf);
            let times = &mut self.entity(k, name).decisions;
            let pos = times.partition_point(|&t| t <= decided);
            times.insert(pos, decided);
        }
        true
    }

    /// The entity's entry, created on first sight (allocating its name only then).
    fn entity(&mut self, kind: usize, name: &str) -> &mut Entity {
        if !self.entities[kind].contains_key(name) {
            self.entities[kind].insert(name.to_string(), Entity::default());
        }
        self.entities[kind].get_mut(name).expect("inserted above")
    }

    /// Records every shipment of a table as decided, and every delivered one's outcome.
    pub fn record_table(&mut self, table: &ShipmentTable) {
        for i in 0..table.len() {
            self.record_decision(
                &table.shipment_id[i],
                table.lane(i),
                table.scheduled_date[i],
            );
        }
        for i in 0..table.len() {
            if let Some(d) = table.delivered_at[i] {
                self.record(
                    &table.shipment_id[i],
                    table.lane(i),
                    table.scheduled_date[i],
                    table.date_deadline[i],
                    d,
                );
            }
        }
    }

    /// Writes the history features of a shipment decided at `at` and promised for `deadline`
    /// into `out` (length [`HistoryConfig::feature_count`]).
    pub fn features_at(&self, lane: Lane<'_>, at: Timestamp, deadline: Timestamp, out: &mut [f64]) {
        self.features_of(lane, at, deadline, out, |_| true);
    }

    /// Rewrites, in `out` as [`HistoryState::features_at`] filled it for the same shipment with
    /// another carrier, only the features that depend on the carrier. Ranking candidate
    /// carriers needs every candidate's row; the lane's, warehouse's and destination's
    /// features are the same in all of them, so three of the five keys are looked up once.
    pub fn carrier_features_at(
        &self,
        lane: Lane<'_>,
        at: Timestamp,
        deadline: Timestamp,
        out: &mut [f64],
    ) {
        self.features_of(lane, at, deadline, out, HistoryKey::depends_on_carrier);
    }

    fn features_of(
        &self,
        lane: Lane<'_>,
        at: Timestamp,
        deadline: Timestamp,
        out: &mut [f64],
        wanted: impl Fn(HistoryKey) -> bool,
    ) {
        let m = self.config.prior_strength;
        let all = self.overall.between(0, self.overall.upto(at));
        // Before any outcome is known the prior is uninformative: one half.
        let prior = (all.late as f64 + 0.5 * m) / (all.n as f64 + m);
        let smooth = |w: &Window| (w.late as f64 + m * prior) / (w.n as f64 + m);
        let lead_days = (deadline - at) as f64 / SECONDS_PER_DAY;
        out[0] = prior;
        let block = 2 * self.config.windows_days.len() + 7;
        let mut buf = String::with_capacity(64);
        for (k, key) in HistoryKey::ALL.iter().enumerate() {
            if !wanted(*key) {
                continue;
            }
            let mut j = 1 + k * block;
            let name = key_into(&lane, *key, &mut buf);
            let entity = self.entities[k].get(name);
            let series = entity.map(|e| &e.outcomes);
            let decided = entity.map(|e| &e.decisions);
            let hi = series.map_or(0, |s| s.upto(at));
            for &w in &self.config.windows_days {
                let win = series
                    .map(|s| s.since(at - w as i64 * SECONDS_PER_DAY as i64, hi))
                    .unwrap_or_default();
                out[j] = smooth(&win);
                out[j + 1] = win.n as f64;
                j += 2;
            }
            let win = series.map(|s| s.between(0, hi)).unwrap_or_default();
            let transit = win.mean(win.transit);
            out[j] = smooth(&win);
            out[j + 1] = win.mean(win.lateness);
            out[j + 2] = transit;
            // The promise's slack over what this entity has typically needed.
            out[j + 3] = lead_days - transit;
            out[j + 4] = smooth(
                &series
                    .map(|s| s.between(hi.saturating_sub(10), hi))
                    .unwrap_or_default(),
            );
            let (recent, before) = decided.map_or((0, 0), |d| {
                let before = d.partition_point(|&t| t < at);
                let week_ago = at - 7 * SECONDS_PER_DAY as i64;
                (
                    before - d[..before].partition_point(|&t| t < week_ago),
                    before,
                )
            });
            out[j + 5] = recent as f64;
            // Decided before now and not delivered before now: still on the road or in the yard.
            out[j + 6] = (before as f64 - win.n as f64).max(0.0);
        }
    }
}
