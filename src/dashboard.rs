//! The figures managers and analysts watch the approval queue by: what waits now and per day,
//! how long decisions take per queue, what is past its SLA or escalated, decisions per reason
//! and overrides per manager; and decision quality, which no approval tool offers: once
//! outcomes arrive, how often approved deliveries were late against the risk the model gave
//! them, and whether carrier overrides did better or worse than the approvals that kept the
//! recommendation, per reason and per manager, with the counts beside every rate so a small
//! sample shows itself as one.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::clock::text;
use crate::store::{Store, StoreError};

/// Days the dashboard looks back.
pub const DAYS: i64 = 7;

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// Open approvals per queue now.
    pub open_by_queue: BTreeMap<String, i64>,
    /// Approvals opened per day (UTC date) and queue over the last 7 days.
    #[schema(value_type = Object)]
    pub opened_by_day: BTreeMap<String, BTreeMap<String, i64>>,
    /// Minutes from opening to decision, per queue, over the decisions of the last 7 days.
    pub decision_minutes: BTreeMap<String, Spread>,
    /// Pending approvals past their due time now.
    pub past_sla: i64,
    /// Approvals escalated now, and escalations over the last 7 days.
    pub escalated_now: i64,
    pub escalations_7d: i64,
    /// Decisions of the last 7 days per reason code.
    pub decisions_by_reason: BTreeMap<String, i64>,
    /// Overrides of the last 7 days per manager (user id).
    pub overrides_by_manager: BTreeMap<String, i64>,
    /// Open exception notes per category: how many and how long they have waited.
    pub exceptions_open: BTreeMap<String, crate::store::exceptions::Aging>,
    /// Per warehouse, the share of the last 7 days' scores (at most the latest 100,000) whose
    /// risk came from the fallback rules rather than a model.
    pub fallback_by_warehouse: BTreeMap<String, Share>,
    pub quality: Quality,
}

/// A part of a whole, with both counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Share {
    pub scores: i64,
    pub fallback: i64,
    /// `fallback / scores`.
    pub share: f64,
}

/// p50 and p90 of a set of durations, with its size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Spread {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
}

/// Decided approvals whose delivery has an outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Quality {
    /// Approved as recommended (approved, not overridden).
    pub approved: Rate,
    /// Approved with another carrier or release time.
    pub overridden: Rate,
    pub by_reason: BTreeMap<String, Rate>,
    pub by_manager: BTreeMap<String, Rate>,
}

/// How many were late of how many, against the mean risk the model gave them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rate {
    pub count: usize,
    pub late: usize,
    /// `late / count`; null without any.
    pub late_rate: Option<f64>,
    /// The mean delay risk of the same deliveries when approved.
    pub mean_risk: Option<f64>,
}

impl Rate {
    fn add(&mut self, late: bool, risk: f64) {
        let sum = self.mean_risk.unwrap_or(0.0) * self.count as f64 + risk;
        self.count += 1;
        self.late += usize::from(late);
        self.late_rate = Some(self.late as f64 / self.count as f64);
        self.mean_risk = Some(sum / self.count as f64);
    }
}

fn spread(mut minutes: Vec<f64>) -> Spread {
    if minutes.is_empty() {
        return Spread::default();
    }
    minutes.sort_by(f64::total_cmp);
    let at = |q: f64| minutes[((minutes.len() as f64 - 1.0) * q).round() as usize];
    Spread {
        count: minutes.len(),
        p50: at(0.5),
        p90: at(0.9),
    }
}

fn minutes_between(from: &str, to: &str) -> Option<f64> {
    let from = DateTime::parse_from_rfc3339(from).ok()?;
    let to = DateTime::parse_from_rfc3339(to).ok()?;
    Some((to - from).num_seconds() as f64 / 60.0)
}

/// Rows read for the 7-day figures at most: the page stays bounded on a busy store.
const MAX_ROWS: i64 = 200_000;

/// The dashboard at `now`.
pub async fn figures(store: &Store, now: DateTime<Utc>) -> Result<Dashboard, StoreError> {
    let since = text(now - Duration::days(DAYS));
    let now_text = text(now);
    let pool = &store.pool;
    let mut d = Dashboard {
        open_by_queue: store.open_counts().await?.into_iter().collect(),
        ..Dashboard::default()
    };
    let opened = sqlx::query(
        "SELECT substr(opened_at, 1, 10) AS day, queue, count(*) AS n FROM approvals \
         WHERE opened_at >= $1 GROUP BY substr(opened_at, 1, 10), queue",
    )
    .bind(&since)
    .fetch_all(pool)
    .await?;
    for r in &opened {
        let (day, queue, n): (String, String, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        d.opened_by_day.entry(day).or_default().insert(queue, n);
    }
    let decided = sqlx::query(
        "SELECT queue, opened_at, decided_at, decision_reason, state, decided_by FROM approvals \
         WHERE decided_at >= $1 LIMIT $2",
    )
    .bind(&since)
    .bind(MAX_ROWS)
    .fetch_all(pool)
    .await?;
    let mut minutes: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &decided {
        let queue: String = r.try_get(0)?;
        let opened_at: String = r.try_get(1)?;
        let decided_at: String = r.try_get(2)?;
        if let Some(m) = minutes_between(&opened_at, &decided_at) {
            minutes.entry(queue).or_default().push(m);
        }
        let reason: Option<String> = r.try_get(3)?;
        *d.decisions_by_reason
            .entry(reason.unwrap_or_default())
            .or_default() += 1;
        let state: String = r.try_get(4)?;
        if state == "overridden" {
            let by: Option<String> = r.try_get(5)?;
            *d.overrides_by_manager
                .entry(by.unwrap_or_default())
                .or_default() += 1;
        }
    }
    d.decision_minutes = minutes.into_iter().map(|(q, m)| (q, spread(m))).collect();
    d.past_sla = store.past_sla(&now_text).await?;
    d.escalated_now =
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM approvals WHERE state = 'escalated'")
            .fetch_one(pool)
            .await?;
    d.escalations_7d = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM audit WHERE action = 'approval.escalated' AND at >= $1",
    )
    .bind(&since)
    .fetch_one(pool)
    .await?;
    d.exceptions_open = store.note_aging(now).await?;
    d.fallback_by_warehouse = fallback_by_warehouse(store, now).await?;
    d.quality = quality(store).await?;
    Ok(d)
}

/// Scores read for the fallback shares at most.
const MAX_SCORES: i64 = 100_000;

/// The fallback share per warehouse of the latest scores of the last 7 days. Score ids start
/// with their time, so the window is a range of the primary key.
async fn fallback_by_warehouse(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Share>, StoreError> {
    let since = format!(
        "sc_{:012x}",
        (now - Duration::days(DAYS)).timestamp_millis().max(0)
    );
    let rows = sqlx::query(
        "SELECT w, count(*), sum(f) FROM (SELECT coalesce(warehouse, '') AS w, \
         CASE WHEN source = 'rules' THEN 1 ELSE 0 END AS f FROM scores \
         WHERE score_id >= $1 ORDER BY score_id DESC LIMIT $2) latest GROUP BY w",
    )
    .bind(since)
    .bind(MAX_SCORES)
    .fetch_all(&store.pool)
    .await?;
    let mut shares = BTreeMap::new();
    for r in &rows {
        let warehouse: String = r.try_get(0)?;
        let scores = r.try_get::<i64, _>(1)?;
        let fallback = crate::store::int(r, 2)?;
        let share = if scores > 0 {
            fallback as f64 / scores as f64
        } else {
            0.0
        };
        shares.insert(
            warehouse,
            Share {
                scores,
                fallback,
                share,
            },
        );
    }
    Ok(shares)
}

/// Decided approvals joined to their deliveries' outcomes. An outcome belongs to the approval
/// decided before it was received.
async fn quality(store: &Store) -> Result<Quality, StoreError> {
    let rows = sqlx::query(
        "SELECT a.state, a.decision_reason, a.decided_by, a.delay_risk, o.late \
         FROM approvals a JOIN outcomes o ON o.shipment_id = a.shipment_id \
         WHERE a.state IN ('approved', 'overridden') AND a.decided_at <= o.received_at \
         LIMIT $1",
    )
    .bind(MAX_ROWS)
    .fetch_all(&store.pool)
    .await?;
    let mut q = Quality::default();
    for r in &rows {
        let state: String = r.try_get(0)?;
        let reason: Option<String> = r.try_get(1)?;
        let by: Option<String> = r.try_get(2)?;
        let risk: f64 = r.try_get(3)?;
        let late = crate::store::int(r, 4)? != 0;
        if state == "overridden" {
            q.overridden.add(late, risk);
        } else {
            q.approved.add(late, risk);
        }
        q.by_reason
            .entry(reason.unwrap_or_default())
            .or_default()
            .add(late, risk);
        q.by_manager
            .entry(by.unwrap_or_default())
            .or_default()
            .add(late, risk);
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_their_counts_and_means() {
        let mut r = Rate::default();
        r.add(true, 0.8);
        r.add(false, 0.4);
        assert_eq!((r.count, r.late), (2, 1));
        assert_eq!(r.late_rate, Some(0.5));
        assert!((r.mean_risk.unwrap() - 0.6).abs() < 1e-12);
        let s = spread(vec![10.0, 30.0, 20.0]);
        assert_eq!((s.count, s.p50, s.p90), (3, 20.0, 30.0));
    }
}
