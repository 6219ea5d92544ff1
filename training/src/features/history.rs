//! Time-aware history: late rates and volumes of carriers, lanes, warehouses and destinations,
//! computed only from outcomes delivered strictly before the moment asked about.
//!
//! Training inserts every known outcome and then asks each row at its decision time; the service
//! inserts outcomes as they are reported and asks at "now". Both use [`HistoryState::features_at`],
//! and because every query cuts at the asked time, an outcome delivered later can never reach an
//! earlier row: there is no leakage whatever the insertion order.

// Fx hashing: keys are short strings hashed millions of times per training run, and HashDoS
// does not apply to a model's own history.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::{Deserialize, Serialize};

use crate::data::table::{ShipmentTable, Timestamp, SECONDS_PER_DAY};

/// The entities whose history becomes features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKey {
    Carrier,
    /// warehouse -> destination
    Lane,
    /// carrier x destination
    CarrierDestination,
    Warehouse,
    Destination,
}

impl HistoryKey {
    pub const ALL: [HistoryKey; 5] = [
        HistoryKey::Carrier,
        HistoryKey::Lane,
        HistoryKey::CarrierDestination,
        HistoryKey::Warehouse,
        HistoryKey::Destination,
    ];

    /// Whether the key's entity changes with the carrier.
    pub fn depends_on_carrier(self) -> bool {
        matches!(self, HistoryKey::Carrier | HistoryKey::CarrierDestination)
    }

    pub fn name(self) -> &'static str {
        match self {
            HistoryKey::Carrier => "carrier",
            HistoryKey::Lane => "lane",
            HistoryKey::CarrierDestination => "carrier_dest",
            HistoryKey::Warehouse => "warehouse",
            HistoryKey::Destination => "destination",
        }
    }
}

/// The entities a shipment belongs to: its carrier, warehouse and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane<'a> {
    pub carrier: &'a str,
    pub warehouse: &'a str,
    pub destination: &'a str,
}

impl<'a> Lane<'a> {
    /// The key written into a reused buffer: lookups on the scoring path allocate nothing.
    fn key_into<'b>(&self, key: HistoryKey, buf: &'b mut String) -> &'b str {
        buf.clear();
        let (a, b) = match key {
            HistoryKey::Carrier => (self.carrier, None),
            HistoryKey::Lane => (self.warehouse, Some(self.destination)),
            HistoryKey::CarrierDestination => (self.carrier, Some(self.destination)),
            HistoryKey::Warehouse => (self.warehouse, None),
            HistoryKey::Destination => (self.destination, None),
        };
        buf.push_str(a);
        if let Some(b) = b {
            buf.push('\u{1f}');
            buf.push_str(b);
        }
        buf.as_str()
    }
}

/// Which windows and how much smoothing; stored in the artifact so serving matches training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Window lengths in days; an all-time rate is always added.
    pub windows_days: Vec<u32>,
    /// Pseudo-observations of the overall late rate added to every rate, so that a carrier
    /// with two shipments does not get a 0 % or 100 % late rate.
    pub prior_strength: f64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            windows_days: vec![30, 180],
            prior_strength: 5.0,
        }
    }
}

impl HistoryConfig {
    /// Feature names, in the order [`HistoryState::features_at`] writes them.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = vec!["hist_overall_late_rate".to_string()];
        for key in HistoryKey::ALL {
            for w in &self.windows_days {
                names.push(format!("hist_{}_late_rate_{w}d", key.name()));
                names.push(format!("hist_{}_volume_{w}d", key.name()));
            }
            names.push(format!("hist_{}_late_rate_all", key.name()));
            names.push(format!("hist_{}_mean_lateness_days", key.name()));
            names.push(format!("hist_{}_mean_transit_days", key.name()));
            names.push(format!("hist_{}_slack_days", key.name()));
            names.push(format!("hist_{}_late_rate_last10", key.name()));
            names.push(format!("load_{}_decided_7d", key.name()));
            names.push(format!("load_{}_open_now", key.name()));
        }
        names
    }

    /// Per feature (in [`HistoryConfig::feature_names`] order), whether its value depends on
    /// the shipment's carrier: what changes when another carrier is considered.
    pub fn carrier_dependent(&self) -> Vec<bool> {
        let mut out = vec![false];
        for key in HistoryKey::ALL {
            let depends = matches!(key, HistoryKey::Carrier | HistoryKey::CarrierDestination);
            out.extend(std::iter::repeat_n(
                depends,
                2 * self.windows_days.len() + 7,
            ));
        }
        out
    }

    pub fn feature_count(&self) -> usize {
        1 + HistoryKey::ALL.len() * (2 * self.windows_days.len() + 7)
    }
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
pub struct HistoryState {
    config: HistoryConfig,
    overall: Series,
    /// Per key kind, each entity's outcomes and decisions: one lookup serves both.
    entities: [HashMap<String, Entity>; 5],
    /// Shipments already recorded: an outcome reported twice counts once.
    recorded: HashSet<String>,
    decided: HashSet<String>,
}

impl HistoryState {
    pub fn new(config: HistoryConfig) -> Self {
        HistoryState {
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
            let name = lane.key_into(*key, &mut buf);
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
            let name = lane.key_into(*key, &mut buf);
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
            let name = lane.key_into(*key, &mut buf);
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

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn lane(carrier: &'static str) -> Lane<'static> {
        Lane {
            carrier,
            warehouse: "W",
            destination: "D",
        }
    }

    #[test]
    fn only_outcomes_before_the_query_time_count() {
        let mut h = HistoryState::new(HistoryConfig::default());
        // Inserted out of order on purpose: the cut is by time, not by insertion.
        h.record("s1", lane("A"), 9 * DAY, 10 * DAY, 12 * DAY); // late
        h.record("s2", lane("A"), 4 * DAY, 10 * DAY, 5 * DAY); // on time
        assert!(
            !h.record("s2", lane("A"), 4 * DAY, 10 * DAY, 5 * DAY),
            "a repeated outcome counts once"
        );
        let names = h.config().feature_names();
        let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
        let mut out = vec![0.0; h.config().feature_count()];
        h.features_at(lane("A"), 6 * DAY, 9 * DAY, &mut out);
        assert_eq!(out[idx("hist_carrier_volume_30d")], 1.0);
        let before_late = out[idx("hist_carrier_late_rate_30d")];
        h.features_at(lane("A"), 12 * DAY, 14 * DAY, &mut out);
        assert_eq!(
            out[idx("hist_carrier_volume_30d")],
            1.0,
            "delivered exactly at t is not before t"
        );
        h.features_at(lane("A"), 13 * DAY, 16 * DAY, &mut out);
        assert_eq!(out[idx("hist_carrier_volume_30d")], 2.0);
        // Transit was 3 days (s1) and 1 day (s2): mean 2, and a 3-day promise has 1 day of slack.
        assert!((out[idx("hist_lane_mean_transit_days")] - 2.0).abs() < 1e-9);
        assert!((out[idx("hist_lane_slack_days")] - 1.0).abs() < 1e-9);
        assert!(out[idx("hist_carrier_late_rate_30d")] > before_late);
        assert_eq!(out[idx("hist_carrier_dest_volume_30d")], 2.0);
        h.features_at(lane("B"), 13 * DAY, 16 * DAY, &mut out);
        assert_eq!(out[idx("hist_carrier_volume_30d")], 0.0);
        assert_eq!(
            out[idx("hist_lane_volume_30d")],
            2.0,
            "the lane does not depend on the carrier"
        );
        assert!(out[idx("hist_carrier_mean_lateness_days")].is_nan());
    }

    #[test]
    fn workload_counts_decisions_not_yet_delivered() {
        let mut h = HistoryState::new(HistoryConfig::default());
        for (id, decided) in [("a", 1), ("b", 2), ("c", 3)] {
            h.record_decision(id, lane("A"), decided * DAY);
        }
        assert!(
            !h.record_decision("a", lane("A"), DAY),
            "a decision recorded twice counts once"
        );
        h.record("a", lane("A"), DAY, 5 * DAY, 4 * DAY);
        let names = h.config().feature_names();
        let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
        let mut out = vec![0.0; h.config().feature_count()];
        h.features_at(lane("A"), 3 * DAY, 6 * DAY, &mut out);
        assert_eq!(
            out[idx("load_carrier_decided_7d")],
            2.0,
            "b and a; c is decided at the query time itself"
        );
        assert_eq!(out[idx("load_carrier_open_now")], 2.0);
        h.features_at(lane("A"), 5 * DAY, 8 * DAY, &mut out);
        assert_eq!(
            out[idx("load_carrier_open_now")],
            2.0,
            "a was delivered, c joined"
        );
    }

    #[test]
    fn windows_forget_old_outcomes() {
        let mut h = HistoryState::new(HistoryConfig::default());
        h.record("s1", lane("A"), 0, 0, DAY);
        let names = h.config().feature_names();
        let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
        let mut out = vec![0.0; h.config().feature_count()];
        h.features_at(lane("A"), 100 * DAY, 101 * DAY, &mut out);
        assert_eq!(out[idx("hist_carrier_volume_30d")], 0.0);
        assert_eq!(out[idx("hist_carrier_volume_180d")], 1.0);
        assert!((out[idx("hist_carrier_mean_lateness_days")] - 1.0).abs() < 1e-9);
    }
}
