//! The replay: how the recommender would have done over a validation period. Rows are visited
//! in decision order; before each, the scorecards learn every outcome delivered by then (as the
//! service learns reported outcomes), and on lanes with two or more carriers it recommends one.
//! Rows whose actual carrier was the recommendation should have been late less often.

use serde::{Deserialize, Serialize};

use super::cost::CostModel;
use super::rank::{rank, Candidate, RankingPolicy, Shipment};
use super::rates::RateTable;
use super::scorecard::{ScorecardConfig, Scorecards};
use super::{candidates, price};
use crate::data::table::{ShipmentTable, SECONDS_PER_DAY};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReplayMetrics {
    /// Late rate of the rows whose actual carrier was the recommended one.
    pub late_rate_followed: Option<f64>,
    /// Late rate of every replayed row.
    pub late_rate_all: f64,
    /// 1 - followed / all: the share of lateness the recommendation would have avoided.
    pub reduction: Option<f64>,
    /// Replayed rows (on lanes with two or more carriers).
    pub n: usize,
    pub followed: usize,
}

/// The shipment-side context a ranking needs, from a table row.
pub fn shipment_of(table: &ShipmentTable, row: usize) -> Shipment<'_> {
    let text = |name: &str| table.categorical(name).and_then(|c| c.values.get(row));
    Shipment {
        warehouse: &table.warehouse[row],
        destination: &table.destination[row],
        customer_tier: text("customer_tier"),
        priority: text("priority"),
        slack_days: (table.date_deadline[row] - table.scheduled_date[row]) as f64 / SECONDS_PER_DAY,
    }
}

/// What the replayed recommender is made of, besides the delay model.
#[derive(Debug, Clone, Copy)]
pub struct ReplaySetup<'a> {
    pub scorecards: &'a ScorecardConfig,
    pub policy: &'a RankingPolicy,
    pub cost: Option<&'a CostModel>,
    pub rates: Option<&'a RateTable>,
}

/// Replays `valid_rows` (delivered, in decision order) with outcomes from `known_rows` and the
/// validation rows themselves fed in as they are delivered. `model_on_time(row, carriers)` is
/// the delay model's on-time probability of the row with each carrier swapped in.
pub fn replay(
    table: &ShipmentTable,
    known_rows: &[usize],
    valid_rows: &[usize],
    setup: &ReplaySetup<'_>,
    model_on_time: &mut dyn FnMut(usize, &[String]) -> Vec<f64>,
) -> ReplayMetrics {
    let mut events: Vec<usize> = known_rows
        .iter()
        .chain(valid_rows)
        .copied()
        .filter(|&r| table.delivered_at[r].is_some())
        .collect();
    events.sort_by_key(|&r| (table.delivered_at[r], r));
    events.dedup();
    let ReplaySetup {
        scorecards: config,
        policy,
        cost,
        rates,
    } = *setup;
    let mut cards = Scorecards::new(config.clone());
    let (mut next, mut n, mut late_all, mut followed, mut late_followed) = (0, 0, 0, 0, 0);
    let weight = table.numeric("weight_kg");
    for &r in valid_rows {
        let Some(late) = table.is_late(r) else {
            continue;
        };
        while next < events.len()
            && table.delivered_at[events[next]].is_some_and(|d| d < table.scheduled_date[r])
        {
            let e = events[next];
            cards.record(
                &table.carrier[e],
                &table.warehouse[e],
                &table.destination[e],
                table.date_deadline[e],
                table.delivered_at[e].unwrap_or_default(),
            );
            next += 1;
        }
        let carriers = candidates(rates, &cards, &table.warehouse[r], &table.destination[r]);
        if carriers.len() < 2 {
            continue;
        }
        let on_time = model_on_time(r, &carriers);
        let w = weight.map(|c| c.values[r]);
        let candidates = carriers
            .into_iter()
            .zip(on_time)
            .map(|(carrier, p)| {
                let (expected_cost, transit_days) = price(
                    rates,
                    cost,
                    &carrier,
                    &table.warehouse[r],
                    &table.destination[r],
                    w,
                );
                Candidate {
                    carrier,
                    model_on_time: Some(p),
                    expected_cost,
                    transit_days,
                }
            })
            .collect();
        let Some(rec) = rank(policy, &cards, &shipment_of(table, r), candidates) else {
            continue;
        };
        n += 1;
        late_all += late as usize;
        if rec.recommended.carrier == table.carrier[r] {
            followed += 1;
            late_followed += late as usize;
        }
    }
    let late_rate_all = late_all as f64 / n.max(1) as f64;
    let late_rate_followed = (followed > 0).then(|| late_followed as f64 / followed as f64);
    ReplayMetrics {
        late_rate_followed,
        late_rate_all,
        reduction: late_rate_followed
            .filter(|_| late_all > 0)
            .map(|f| 1.0 - f / late_rate_all),
        n,
        followed,
    }
}
