//! Time-aware history: late rates and volumes of carriers, lanes, warehouses and destinations,
//! computed only from outcomes delivered strictly before the moment asked about.
//!
//! Training loads every known outcome and then asks each row at its decision time; the service
//! adds outcomes as they are reported and asks at "now". Both use [`HistoryState::features_at`],
//! and because every query cuts at the asked time, an outcome delivered later can never reach an
//! earlier row: there is no leakage whatever the insertion order.
//!
//! Nor does the order change an answer, or its cost: each series keeps its outcomes in one
//! canonical order (see [`series`]), loads ([`HistoryState::record_table`],
//! [`HistoryState::record_outcomes`]) sort once and merge, and the same set of outcomes gives the
//! same features, bit for bit, whether it came sorted, shuffled or one by one. On input sorted by
//! delivery time (ties by lateness, then transit) they are bit for bit those of the earlier
//! insert-one-at-a-time code, which rebuilt every running sum after the insertion point and cost
//! O(n^2) on unsorted exports (314 s of a 327 s training run on one).

mod load;
mod seen;
mod series;
mod sweep;
mod times;

// Fx hashing: keys are short strings hashed millions of times per training run, and HashDoS
// does not apply to a model's own history.
use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use crate::data::table::{ShipmentTable, Timestamp, SECONDS_PER_DAY};
pub use load::Load;
use seen::{Seen, ShipmentKey};
use series::{Decisions, Outcome, Series, Window};
use sweep::{Cutter, Search, Times};
pub use sweep::{Sweep, MAX_WINDOWS};

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

/// Defined with the table whose rows it names (the data layer knows nothing of features).
pub use crate::data::table::Lane;

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

/// One entity kind's entities (every carrier, or every lane, ...): names to positions, so a
/// bulk load resolves each name once per row and then works by position.
#[derive(Debug, Clone, Default)]
struct Kind {
    names: HashMap<String, u32>,
    entities: Vec<Entity>,
}

impl Kind {
    fn find(&self, name: &str) -> Option<(u32, &Entity)> {
        self.names
            .get(name)
            .map(|&i| (i, &self.entities[i as usize]))
    }

    /// The entity's position, created on first sight (allocating its name only then).
    fn index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.names.get(name) {
            return i as usize;
        }
        let i = self.entities.len();
        self.names.insert(name.to_string(), i as u32);
        self.entities.push(Entity::default());
        i
    }
}

/// One carrier's (lane's, warehouse's...) outcomes and decision times.
#[derive(Debug, Clone, Default)]
struct Entity {
    outcomes: Series,
    decisions: Decisions,
}

/// A delivered shipment, as bulk loads hand them over.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    pub shipment_id: &'a str,
    pub lane: Lane<'a>,
    pub decided: Timestamp,
    pub deadline: Timestamp,
    pub delivered_at: Timestamp,
}

impl<'a> Delivered<'a> {
    /// Row `i` of `table`, when it was delivered.
    pub fn of_row(table: &'a ShipmentTable, i: usize) -> Option<Self> {
        table.delivered_at[i].map(|d| Delivered {
            shipment_id: &table.shipment_id[i],
            lane: table.lane(i),
            decided: table.scheduled_date[i],
            deadline: table.date_deadline[i],
            delivered_at: d,
        })
    }
}

/// A decided shipment (released for dispatch), as bulk loads hand them over.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    pub shipment_id: &'a str,
    pub lane: Lane<'a>,
    pub decided: Timestamp,
}

/// All entities' outcome series.
#[derive(Debug, Clone)]
pub struct HistoryState {
    config: HistoryConfig,
    overall: Series,
    /// Per key kind, each entity's outcomes and decisions: one lookup serves both.
    kinds: [Kind; 5],
    /// Shipments already recorded: an outcome reported twice counts once.
    recorded: Seen,
    decided: Seen,
    /// See [`HistoryState::seal`].
    sealed: bool,
}

impl HistoryState {
    pub fn new(config: HistoryConfig) -> Self {
        HistoryState {
            config,
            overall: Series::default(),
            kinds: Default::default(),
            recorded: Seen::default(),
            decided: Seen::default(),
            sealed: false,
        }
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Number of outcomes recorded.
    pub fn len(&self) -> usize {
        self.overall.len()
    }

    pub fn is_empty(&self) -> bool {
        self.overall.len() == 0
    }

    /// Number of decisions recorded.
    pub fn decisions(&self) -> usize {
        self.decided.len()
    }

    /// Lets go of the shipment ids kept to count each shipment once (~300 MB at ten million
    /// shipments), for a history that only answers from now on (batch scoring). Recording
    /// into a sealed history is a bug, and panics.
    pub fn seal(&mut self) {
        self.recorded = Seen::default();
        self.decided = Seen::default();
        self.sealed = true;
    }

    fn assert_open(&self) {
        assert!(!self.sealed, "recording into a sealed history");
    }

    /// Records a delivered shipment; returns false when it was already recorded. For one
    /// outcome at a time (the service); loads go through [`HistoryState::record_outcomes`].
    pub fn record(
        &mut self,
        shipment_id: &str,
        lane: Lane<'_>,
        decided: Timestamp,
        deadline: Timestamp,
        delivered_at: Timestamp,
    ) -> bool {
        self.assert_open();
        if !self.recorded.insert(ShipmentKey::of(shipment_id)) {
            return false;
        }
        let o = Outcome::new(decided, deadline, delivered_at);
        self.overall.insert(o);
        let mut buf = String::with_capacity(64);
        for (key, kind) in HistoryKey::ALL.iter().zip(&mut self.kinds) {
            let i = kind.index(lane.key_into(*key, &mut buf));
            kind.entities[i].outcomes.insert(o);
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
        self.assert_open();
        if !self.decided.insert(ShipmentKey::of(shipment_id)) {
            return false;
        }
        let mut buf = String::with_capacity(64);
        for (key, kind) in HistoryKey::ALL.iter().zip(&mut self.kinds) {
            let i = kind.index(lane.key_into(*key, &mut buf));
            kind.entities[i].decisions.insert(decided);
        }
        true
    }

    /// Records every shipment of a table as decided, and every delivered one's outcome.
    pub fn record_table(&mut self, table: &ShipmentTable) {
        let mut load = self.load();
        load.table(table);
        load.finish();
    }

    /// Records the outcomes `item(0..n)` gives (`None`: not delivered), skipping shipments
    /// already recorded (the first of repeats wins, as with [`HistoryState::record`]). The
    /// result is the same as recording them one by one in any order; the cost is one sort,
    /// whatever the order. Returns the items that were new.
    pub fn record_outcomes<'a>(
        &mut self,
        n: usize,
        item: impl Fn(usize) -> Option<Delivered<'a>> + Sync,
    ) -> Vec<u32> {
        let mut load = self.load();
        let new = load.outcomes(n, item);
        load.finish();
        new
    }

    /// Records the decisions `item(0..n)` gives, skipping shipments already recorded as
    /// decided; one sort, whatever the order. Returns how many were new.
    pub fn record_decisions<'a>(
        &mut self,
        n: usize,
        item: impl Fn(usize) -> Decided<'a> + Sync,
    ) -> usize {
        let mut load = self.load();
        let new = load.decisions(n, item);
        load.finish();
        new
    }

    /// Writes the history features of a shipment decided at `at` and promised for `deadline`
    /// into `out` (length [`HistoryConfig::feature_count`]).
    pub fn features_at(&self, lane: Lane<'_>, at: Timestamp, deadline: Timestamp, out: &mut [f64]) {
        self.features_of(lane, at, deadline, out, |_| true, &mut Search);
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
        self.features_of(
            lane,
            at,
            deadline,
            out,
            HistoryKey::depends_on_carrier,
            &mut Search,
        );
    }

    /// [`HistoryState::features_at`] for queries in time order (a bulk encode's), cutting
    /// each series where `sweep` left it at the entity's last query; the same values.
    pub fn features_sweeping(
        &self,
        sweep: &mut Sweep,
        lane: Lane<'_>,
        at: Timestamp,
        deadline: Timestamp,
        out: &mut [f64],
    ) {
        self.features_of(lane, at, deadline, out, |_| true, sweep);
    }

    fn features_of(
        &self,
        lane: Lane<'_>,
        at: Timestamp,
        deadline: Timestamp,
        out: &mut [f64],
        wanted: impl Fn(HistoryKey) -> bool,
        cutter: &mut impl Cutter,
    ) {
        let m = self.config.prior_strength;
        let all_hi = cutter.overall(&self.overall, at);
        let all = self.overall.window(0, all_hi, self.overall.prefix(all_hi));
        // Before any outcome is known the prior is uninformative: one half.
        let prior = (all.late as f64 + 0.5 * m) / (all.n as f64 + m);
        let smooth = |w: &Window| (w.late as f64 + m * prior) / (w.n as f64 + m);
        let lead_days = (deadline - at) as f64 / SECONDS_PER_DAY;
        out[0] = prior;
        let windows = &self.config.windows_days;
        let block = 2 * windows.len() + 7;
        let times = Times {
            at,
            window_days: windows,
        };
        let mut buf = String::with_capacity(64);
        for (k, key) in HistoryKey::ALL.iter().enumerate() {
            if !wanted(*key) {
                continue;
            }
            let mut j = 1 + k * block;
            let Some((e, entity)) = self.kinds[k].find(lane.key_into(*key, &mut buf)) else {
                // Never seen: no outcomes and no decisions, as an empty series answers.
                let none = Window::default();
                for _ in windows {
                    out[j] = smooth(&none);
                    out[j + 1] = 0.0;
                    j += 2;
                }
                let transit = none.mean(none.transit);
                out[j] = smooth(&none);
                out[j + 1] = none.mean(none.lateness);
                out[j + 2] = transit;
                out[j + 3] = lead_days - transit;
                out[j + 4] = (0.0 + m * prior) / (0.0 + m);
                out[j + 5] = 0.0;
                out[j + 6] = 0.0;
                continue;
            };
            let series = &entity.outcomes;
            let cuts = cutter.cuts((k, e), series, &entity.decisions, times);
            let hi = cuts.hi;
            let upto_hi = series.prefix(hi);
            for w in 0..windows.len() {
                let win = series.window(cuts.lo[w], hi, upto_hi);
                out[j] = smooth(&win);
                out[j + 1] = win.n as f64;
                j += 2;
            }
            let win = series.window(0, hi, upto_hi);
            let transit = win.mean(win.transit);
            out[j] = smooth(&win);
            out[j + 1] = win.mean(win.lateness);
            out[j + 2] = transit;
            // The promise's slack over what this entity has typically needed.
            out[j + 3] = lead_days - transit;
            // The last ten outcomes (those delivered together at the tenth count for their share).
            let (late, n) = series.recent_late(hi, 10, upto_hi);
            out[j + 4] = (late + m * prior) / (n as f64 + m);
            out[j + 5] = (cuts.decided - cuts.decided_week_ago) as f64;
            // Decided before now and not delivered before now: still on the road or in the yard.
            out[j + 6] = (cuts.decided as f64 - win.n as f64).max(0.0);
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
