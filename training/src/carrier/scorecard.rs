//! Carrier scorecards: on-time performance per carrier, per carrier on a lane (warehouse ->
//! destination) and per carrier x destination, built from delivered history, stored in the
//! model artifact, and kept current by [`Scorecards::record`] as outcomes are reported.
//!
//! Thin cells are shrunk toward their parent: a lane's rate toward the carrier's, the carrier's
//! toward the overall rate. This is a beta-binomial prior worth `prior_strength` shipments: with
//! few shipments on a lane, a carrier's network-wide record predicts its next delivery there
//! better than three lucky or unlucky trips, and the prior fades as the lane's own volume grows.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::data::table::{ShipmentTable, Timestamp};
use crate::error::{Error, Result};
use crate::exceptions::KeywordRules;

const WEEK: i64 = 7 * 86_400;
/// Weeks of per-week counts kept per card: enough for the recent and trend windows.
const WEEKS_KEPT: i64 = 26;
/// Upper edges (hours late; negative is early) of the lateness histogram's buckets; the last
/// bucket is open. Quantiles interpolate inside a bucket.
const LATENESS_EDGES: [f64; 15] = [
    -168.0, -72.0, -48.0, -24.0, -12.0, -6.0, 0.0, 6.0, 12.0, 24.0, 48.0, 72.0, 120.0, 168.0, 336.0,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorecardConfig {
    /// Pseudo-shipments of the parent's rate added to each cell.
    pub prior_strength: f64,
    /// The recent window, in days, for the recent rate and the trend.
    pub recent_days: u32,
    /// The trend compares the recent window with the `trend_days` before it.
    pub trend_days: u32,
}

impl Default for ScorecardConfig {
    fn default() -> Self {
        ScorecardConfig {
            prior_strength: 20.0,
            recent_days: 28,
            trend_days: 84,
        }
    }
}

impl ScorecardConfig {
    pub fn check(&self) -> Result<()> {
        if !(self.prior_strength.is_finite() && self.prior_strength >= 0.0) {
            return Err(Error::param("scorecards.prior_strength", "must be >= 0"));
        }
        if self.recent_days < 7 || self.trend_days < 7 {
            return Err(Error::param(
                "scorecards.recent_days",
                "windows are counted in weeks: use at least 7 days",
            ));
        }
        if (self.recent_days + self.trend_days) as i64 > WEEKS_KEPT * 7 {
            return Err(Error::param(
                "scorecards.trend_days",
                format!(
                    "recent_days + trend_days must be at most {}",
                    WEEKS_KEPT * 7
                ),
            ));
        }
        Ok(())
    }
}

/// What a card is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Carrier,
    Lane,
    CarrierDestination,
}

/// Raw counts for one carrier, lane or carrier x destination; views derive the rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub level: Level,
    pub carrier: String,
    pub warehouse: Option<String>,
    pub destination: Option<String>,
    pub volume: u64,
    pub late: u64,
    lateness: [u32; LATENESS_EDGES.len() + 1],
    /// (week number, shipments, late), ascending, the last [`WEEKS_KEPT`] weeks.
    weeks: Vec<(i64, u32, u32)>,
    /// Exception notes by category (see [`crate::exceptions`]). Absent in artifacts written
    /// before notes were read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exceptions: BTreeMap<String, u64>,
}

impl Card {
    fn new(
        level: Level,
        carrier: &str,
        warehouse: Option<&str>,
        destination: Option<&str>,
    ) -> Self {
        Card {
            level,
            carrier: carrier.to_string(),
            warehouse: warehouse.map(str::to_string),
            destination: destination.map(str::to_string),
            volume: 0,
            late: 0,
            lateness: [0; LATENESS_EDGES.len() + 1],
            weeks: Vec::new(),
            exceptions: BTreeMap::new(),
        }
    }

    fn record(&mut self, deadline: Timestamp, delivered: Timestamp) {
        let late = delivered > deadline;
        self.volume += 1;
        self.late += late as u64;
        let hours = (delivered - deadline) as f64 / 3600.0;
        let bucket = LATENESS_EDGES.partition_point(|&e| e < hours);
        self.lateness[bucket] += 1;
        let week = delivered.div_euclid(WEEK);
        match self.weeks.binary_search_by_key(&week, |w| w.0) {
            Ok(k) => {
                self.weeks[k].1 += 1;
                self.weeks[k].2 += late as u32;
            }
            Err(k) => self.weeks.insert(k, (week, 1, late as u32)),
        }
        let newest = self.weeks.last().map_or(week, |w| w.0);
        let keep_from = self.weeks.partition_point(|w| w.0 <= newest - WEEKS_KEPT);
        self.weeks.drain(..keep_from);
    }

    /// The `k` most frequent exception categories and their shares, largest first (ties by
    /// name, for stable output).
    fn exception_mix(&self, k: usize) -> Vec<(String, f64)> {
        let total: u64 = self.exceptions.values().sum();
        let mut mix: Vec<(String, f64)> = self
            .exceptions
            .iter()
            .map(|(c, &n)| (c.clone(), ((n as f64 / total as f64) * 1e4).round() / 1e4))
            .collect();
        mix.sort_by(|a, b| b.1.total_cmp(&a.1));
        mix.truncate(k);
        mix
    }

    /// On-time share of all recorded shipments (`None` without any).
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.volume > 0).then(|| 1.0 - self.late as f64 / self.volume as f64)
    }

    /// The `q` quantile of lateness in hours (negative: early), interpolated in its bucket.
    pub fn lateness_quantile(&self, q: f64) -> Option<f64> {
        let n: u32 = self.lateness.iter().sum();
        if n == 0 {
            return None;
        }
        let target = q.clamp(0.0, 1.0) * n as f64;
        let mut below = 0.0;
        for (b, &count) in self.lateness.iter().enumerate() {
            let c = count as f64;
            if c > 0.0 && below + c >= target {
                let lo = if b == 0 {
                    LATENESS_EDGES[0]
                } else {
                    LATENESS_EDGES[b - 1]
                };
                let hi = LATENESS_EDGES.get(b).copied().unwrap_or(lo);
                let lo = if b == 0 { hi } else { lo };
                return Some(lo + (hi - lo) * ((target - below) / c).clamp(0.0, 1.0));
            }
            below += c;
        }
        LATENESS_EDGES.last().copied()
    }

    /// (shipments, late) delivered in the weeks `[from, to)`.
    fn window(&self, from: i64, to: i64) -> (u32, u32) {
        self.weeks
            .iter()
            .filter(|w| w.0 >= from && w.0 < to)
            .fold((0, 0), |(n, l), w| (n + w.1, l + w.2))
    }
}

/// A card's recent window (see [`ScorecardConfig::recent_days`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recent {
    pub volume: u32,
    pub on_time_rate: Option<f64>,
    /// Recent on-time rate minus the rate of the trend window before it.
    pub trend: Option<f64>,
}

/// A card as an analyst reads it: rates, shrunk rate, quantiles and trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardView {
    pub level: Level,
    pub carrier: String,
    pub warehouse: Option<String>,
    pub destination: Option<String>,
    pub volume: u64,
    pub on_time_rate: Option<f64>,
    /// Shrunk toward the parent (the carrier, or the overall rate for a carrier).
    pub on_time_shrunk: f64,
    pub lateness_p50_hours: Option<f64>,
    pub lateness_p90_hours: Option<f64>,
    pub recent_volume: u32,
    pub recent_on_time_rate: Option<f64>,
    /// Recent on-time rate minus the rate of the window before it (both need 5 shipments).
    pub trend: Option<f64>,
    /// Exception notes recorded on this card.
    pub exception_notes: u64,
    /// The most frequent exception categories with their share of the notes, largest first
    /// (at most three).
    pub exception_mix: Vec<(String, f64)>,
}

/// All cards, with the overall rate they shrink toward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecards {
    pub config: ScorecardConfig,
    pub volume: u64,
    pub late: u64,
    /// The latest delivery recorded: where the recent window ends.
    pub as_of: Option<Timestamp>,
    cards: Vec<Card>,
    #[serde(skip)]
    /// Card positions by [`card_key`].
    index: FxHashMap<String, usize>,
    /// (warehouse, destination) -> the lane cards on it: candidates are looked up per shipment.
    #[serde(skip)]
    lanes: FxHashMap<(String, String), Vec<usize>>,
}

/// The category the keyword rules give each row's note (`None` without one): each distinct
/// text classified once, across the cores. Notes repeat (templates, carriers' status
/// messages), and classifying every row's was half the carrier stage at a million rows.
fn note_categories<'c>(
    table: &ShipmentTable,
    rows: &[usize],
    rules: &'c KeywordRules,
) -> Vec<Option<&'c str>> {
    let mut distinct: FxHashMap<&str, usize> = FxHashMap::default();
    let mut texts: Vec<&str> = Vec::new();
    let of_row: Vec<Option<usize>> = rows
        .iter()
        .map(|&r| {
            table.notes.get(r).map(|note| {
                *distinct.entry(note).or_insert_with(|| {
                    texts.push(note);
                    texts.len() - 1
                })
            })
        })
        .collect();
    let categories: Vec<&'c str> = crate::parallel::map(&texts, 256, |t| rules.category_of(t))
        .expect("classifying notes does not panic");
    of_row
        .into_iter()
        .map(|k| k.map(|k| categories[k]))
        .collect()
}

impl Scorecards {
    /// Whether any card is `carrier`'s.
    pub fn knows(&self, carrier: &str) -> bool {
        self.cards.iter().any(|c| c.carrier == carrier)
    }

    pub fn new(config: ScorecardConfig) -> Self {
        Scorecards {
            config,
            volume: 0,
            late: 0,
            as_of: None,
            cards: Vec::new(),
            index: FxHashMap::default(),
            lanes: FxHashMap::default(),
        }
    }

    /// Cards from the delivered `rows` of a table, with the exception mix of the rows' notes
    /// (open shipments' notes included) as `rules` classify them.
    pub fn build(
        config: ScorecardConfig,
        table: &ShipmentTable,
        rows: &[usize],
        rules: &KeywordRules,
    ) -> Self {
        let mut s = Scorecards::new(config);
        let categories = note_categories(table, rows, rules);
        for (k, &r) in rows.iter().enumerate() {
            if let Some(delivered) = table.delivered_at[r] {
                s.record(
                    &table.carrier[r],
                    &table.warehouse[r],
                    &table.destination[r],
                    table.date_deadline[r],
                    delivered,
                );
            }
            if let Some(category) = categories[k] {
                s.record_exception(
                    &table.carrier[r],
                    &table.warehouse[r],
                    &table.destination[r],
                    category,
                );
            }
        }
        s
    }

    /// Rebuilds the lookup index after deserializing.
    pub fn reindex(&mut self) {
        self.index = self
            .cards
            .iter()
            .enumerate()
            .map(|(i, c)| (key_of(c), i))
            .collect();
        self.lanes.clear();
        for (i, c) in self.cards.iter().enumerate() {
            if let (Level::Lane, Some(w), Some(d)) = (c.level, &c.warehouse, &c.destination) {
                self.lanes
                    .entry((w.clone(), d.clone()))
                    .or_default()
                    .push(i);
            }
        }
    }

    /// Adds one delivered shipment's outcome to its carrier, lane and carrier x destination.
    pub fn record(
        &mut self,
        carrier: &str,
        warehouse: &str,
        destination: &str,
        deadline: Timestamp,
        delivered: Timestamp,
    ) {
        self.volume += 1;
        self.late += (delivered > deadline) as u64;
        self.as_of = Some(self.as_of.map_or(delivered, |t| t.max(delivered)));
        for i in self.cards_of(carrier, warehouse, destination) {
            self.cards[i].record(deadline, delivered);
        }
    }

    /// Adds one exception note's category to its carrier, lane and carrier x destination.
    pub fn record_exception(
        &mut self,
        carrier: &str,
        warehouse: &str,
        destination: &str,
        category: &str,
    ) {
        for i in self.cards_of(carrier, warehouse, destination) {
            *self.cards[i]
                .exceptions
                .entry(category.to_string())
                .or_default() += 1;
        }
    }

    /// The carrier's, lane's and carrier x destination's cards, created on first sight.
    fn cards_of(&mut self, carrier: &str, warehouse: &str, destination: &str) -> [usize; 3] {
        [
            (Level::Carrier, None, None),
            (Level::Lane, Some(warehouse), Some(destination)),
            (Level::CarrierDestination, None, Some(destination)),
        ]
        .map(|(level, w, d)| {
            let key = card_key(level, carrier, w.unwrap_or_default(), d.unwrap_or_default());
            match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    self.cards.push(Card::new(level, carrier, w, d));
                    self.index.insert(key, self.cards.len() - 1);
                    if level == Level::Lane {
                        self.lanes
                            .entry((warehouse.to_string(), destination.to_string()))
                            .or_default()
                            .push(self.cards.len() - 1);
                    }
                    self.cards.len() - 1
                }
            }
        })
    }

    pub fn overall_on_time(&self) -> f64 {
        if self.volume == 0 {
            // Before any outcome, an uninformative one half.
            0.5
        } else {
            (self.volume - self.late) as f64 / self.volume as f64
        }
    }

    fn card(
        &self,
        level: Level,
        carrier: &str,
        warehouse: &str,
        destination: &str,
    ) -> Option<&Card> {
        // Looked up per candidate carrier on every recommendation: the key is assembled on
        // the stack when it fits, not in three fresh Strings.
        let parts = [level_tag(level), carrier, warehouse, destination];
        let len = parts.iter().map(|p| p.len() + 1).sum::<usize>() - 1;
        let mut stack = [0u8; 192];
        let i = if len <= stack.len() {
            let mut at = 0;
            for (k, part) in parts.iter().enumerate() {
                if k > 0 {
                    stack[at] = KEY_SEPARATOR as u8;
                    at += 1;
                }
                stack[at..at + part.len()].copy_from_slice(part.as_bytes());
                at += part.len();
            }
            let key = std::str::from_utf8(&stack[..len]).expect("joined UTF-8 is UTF-8");
            self.index.get(key)
        } else {
            self.index
                .get(&card_key(level, carrier, warehouse, destination))
        };
        i.map(|&i| &self.cards[i])
    }

    fn shrink(&self, card: Option<&Card>, parent: f64) -> f64 {
        let m = self.config.prior_strength;
        match card {
            Some(c) => ((c.volume - c.late) as f64 + m * parent) / (c.volume as f64 + m),
            None => parent,
        }
    }

    /// The carrier's shrunk on-time rate network-wide.
    pub fn carrier_on_time(&self, carrier: &str) -> f64 {
        self.shrink(
            self.card(Level::Carrier, carrier, "", ""),
            self.overall_on_time(),
        )
    }

    /// The carrier's shrunk on-time rate on a lane, shrunk toward its network-wide rate.
    pub fn lane_on_time(&self, carrier: &str, warehouse: &str, destination: &str) -> f64 {
        self.shrink(
            self.card(Level::Lane, carrier, warehouse, destination),
            self.carrier_on_time(carrier),
        )
    }

    /// The carrier's card on a lane, if it has delivered there.
    pub fn lane_card(&self, carrier: &str, warehouse: &str, destination: &str) -> Option<CardView> {
        self.card(Level::Lane, carrier, warehouse, destination)
            .map(|c| self.view(c))
    }

    /// Carriers that have delivered on a lane, most used first.
    pub fn carriers_on_lane(&self, warehouse: &str, destination: &str) -> Vec<&str> {
        let mut found: Vec<&Card> = self
            .lanes
            .get(&(warehouse.to_string(), destination.to_string()))
            .map(|ids| ids.iter().map(|&i| &self.cards[i]).collect())
            .unwrap_or_default();
        found.sort_by(|a, b| b.volume.cmp(&a.volume).then(a.carrier.cmp(&b.carrier)));
        found.into_iter().map(|c| c.carrier.as_str()).collect()
    }

    /// Every card as an analyst reads it, carriers first.
    pub fn views(&self) -> Vec<CardView> {
        let mut v: Vec<CardView> = self.cards.iter().map(|c| self.view(c)).collect();
        v.sort_by(|a, b| {
            (a.level as u8, &a.carrier, &a.warehouse, &a.destination).cmp(&(
                b.level as u8,
                &b.carrier,
                &b.warehouse,
                &b.destination,
            ))
        });
        v
    }

    /// The recent window of the carrier's card on a lane, without the rest of its
    /// [`CardView`]: `None` if it has not delivered there. Ranking asks this of every
    /// candidate on every recommendation.
    pub fn lane_recent(&self, carrier: &str, warehouse: &str, destination: &str) -> Option<Recent> {
        self.card(Level::Lane, carrier, warehouse, destination)
            .map(|c| self.recent(c))
    }

    fn recent(&self, c: &Card) -> Recent {
        let Some(t) = self.as_of else {
            return Recent {
                volume: 0,
                on_time_rate: None,
                trend: None,
            };
        };
        let now = t.div_euclid(WEEK) + 1;
        let recent_weeks = (self.config.recent_days as i64 / 7).max(1);
        let trend_weeks = (self.config.trend_days as i64 / 7).max(1);
        let (rn, rl) = c.window(now - recent_weeks, now);
        let (pn, pl) = c.window(now - recent_weeks - trend_weeks, now - recent_weeks);
        let rate = |n: u32, l: u32| (n > 0).then(|| 1.0 - l as f64 / n as f64);
        let trend =
            (rn >= 5 && pn >= 5).then(|| rate(rn, rl).unwrap_or(0.0) - rate(pn, pl).unwrap_or(0.0));
        Recent {
            volume: rn,
            on_time_rate: rate(rn, rl),
            trend,
        }
    }

    fn view(&self, c: &Card) -> CardView {
        let parent = match c.level {
            Level::Carrier => self.overall_on_time(),
            _ => self.carrier_on_time(&c.carrier),
        };
        let Recent {
            volume: recent_volume,
            on_time_rate: recent_on_time_rate,
            trend,
        } = self.recent(c);
        CardView {
            level: c.level,
            carrier: c.carrier.clone(),
            warehouse: c.warehouse.clone(),
            destination: c.destination.clone(),
            volume: c.volume,
            on_time_rate: c.on_time_rate(),
            on_time_shrunk: self.shrink(Some(c), parent),
            lateness_p50_hours: c.lateness_quantile(0.5),
            lateness_p90_hours: c.lateness_quantile(0.9),
            recent_volume,
            recent_on_time_rate,
            trend,
            exception_notes: c.exceptions.values().sum(),
            exception_mix: c.exception_mix(3),
        }
    }
}

fn key_of(c: &Card) -> String {
    card_key(
        c.level,
        &c.carrier,
        c.warehouse.as_deref().unwrap_or_default(),
        c.destination.as_deref().unwrap_or_default(),
    )
}

/// Joins a card's names with a control character that names do not contain.
const KEY_SEPARATOR: char = '\u{1f}';

fn level_tag(level: Level) -> &'static str {
    match level {
        Level::Carrier => "c",
        Level::Lane => "l",
        Level::CarrierDestination => "d",
    }
}

/// The index key of a card.
fn card_key(level: Level, carrier: &str, warehouse: &str, destination: &str) -> String {
    [level_tag(level), carrier, warehouse, destination].join(&KEY_SEPARATOR.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;
    const DAY: i64 = 86_400;

    #[test]
    fn thin_lanes_shrink_toward_the_carrier_and_counts_update() {
        let mut s = Scorecards::new(ScorecardConfig::default());
        // Carrier A: 100 network shipments, 10 late; one lucky trip on a new lane.
        for k in 0..100 {
            let late = k % 10 == 0;
            s.record("A", "WH1", "D1", 0, if late { 5 * H } else { -H });
        }
        s.record("A", "WH2", "D9", 0, -H);
        let carrier = s.carrier_on_time("A");
        assert!((carrier - (91.0 + 20.0 * s.overall_on_time()) / 121.0).abs() < 1e-12);
        let thin = s.lane_on_time("A", "WH2", "D9");
        assert!(
            thin > carrier && thin < 1.0,
            "one trip moves the lane a little: {thin}"
        );
        let thick = s.lane_on_time("A", "WH1", "D1");
        assert!((thick - (90.0 + 20.0 * carrier) / 120.0).abs() < 1e-12);
        // An unseen lane falls back to the carrier's rate.
        assert_eq!(s.lane_on_time("A", "WH3", "D3"), carrier);
        assert_eq!(s.carriers_on_lane("WH1", "D1"), vec!["A"]);

        let before = s.lane_card("A", "WH1", "D1").unwrap();
        s.record("A", "WH1", "D1", 0, 100 * H);
        let after = s.lane_card("A", "WH1", "D1").unwrap();
        assert_eq!(after.volume, before.volume + 1);
        assert!(after.on_time_shrunk < before.on_time_shrunk);
    }

    #[test]
    fn lateness_quantiles_and_trend_follow_the_outcomes() {
        let mut s = Scorecards::new(ScorecardConfig::default());
        // 20 weeks on time, then 4 weeks mostly late.
        for day in 0..140 {
            s.record("B", "W", "D", day * DAY, day * DAY - 2 * H);
        }
        for day in 140..168 {
            let late = day % 4 != 0;
            s.record(
                "B",
                "W",
                "D",
                day * DAY,
                day * DAY + if late { 30 * H } else { -2 * H },
            );
        }
        let v = s.lane_card("B", "W", "D").unwrap();
        assert_eq!(v.volume, 168);
        let p50 = v.lateness_p50_hours.unwrap();
        let p90 = v.lateness_p90_hours.unwrap();
        assert!((-6.0..=0.0).contains(&p50), "p50 {p50}");
        assert!((24.0..=48.0).contains(&p90), "p90 {p90}");
        let recent = v.recent_on_time_rate.unwrap();
        assert!(recent < 0.4, "recent rate {recent}");
        assert!(v.trend.unwrap() < -0.5, "trend {:?}", v.trend);
    }

    #[test]
    fn round_trips_through_json() {
        let mut s = Scorecards::new(ScorecardConfig::default());
        s.record("A", "W", "D", 0, H);
        let mut back: Scorecards =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        back.reindex();
        assert_eq!(back.carriers_on_lane("W", "D"), vec!["A"]);
        assert_eq!(back.views(), s.views());
        assert_eq!(
            back.lane_on_time("A", "W", "D"),
            s.lane_on_time("A", "W", "D")
        );
    }
}
