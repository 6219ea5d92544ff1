//! The scored shipment's facts kept as columns beside its score ([`Facts`]), and how they are
//! recovered from a score's stored JSON where they were not written: rows from before migration
//! 0004 and frames spooled by an earlier build. Recovery runs once, at connect, for each
//! shipment's latest score, the only row an outcome or an approval reads them from.

use dispatch_risk_training::data::dates::DateParser;
use dispatch_risk_training::data::Timestamp;
use sqlx::{AnyPool, Row};

use super::recorder::{Facts, Text};
use super::StoreError;

/// A time as the facts keep it: RFC 3339 to the second, in UTC.
pub fn date_text(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A time of [`date_text`]'s, read back.
pub fn parse_date(text: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.timestamp())
}

/// The facts of a score written without them, from the request it answered and its answer;
/// `None` when the request lacks a field the scorer required (it was never scored then).
pub fn from_stored(request: &str, response: &str) -> Option<Facts> {
    let request: serde_json::Value = serde_json::from_str(request).ok()?;
    let response: serde_json::Value = serde_json::from_str(response).ok()?;
    let text = |v: &serde_json::Value, k: &str| v.get(k)?.as_str().map(str::to_string);
    let dates = DateParser::default();
    let date = |k: &str| Some(date_text(dates.parse(&text(&request, k)?)?));
    Some(Facts {
        scored_carrier: text(&response, "scored_carrier").map(Text::from),
        warehouse: text(&request, "warehouse")?.into(),
        destination: text(&request, "destination")?.into(),
        scheduled_date: date("scheduled_date")?.into(),
        date_deadline: date("date_deadline")?.into(),
    })
}

/// Fills in the facts of every shipment's latest score written without them; returns how many.
pub async fn backfill(pool: &AnyPool) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "SELECT s.score_id, s.request, s.response FROM latest_scores l \
         JOIN scores s ON s.score_id = l.score_id WHERE s.warehouse IS NULL",
    )
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let mut filled = 0;
    for row in rows {
        let score_id: String = row.try_get("score_id")?;
        let request: String = row.try_get("request")?;
        let response: String = row.try_get("response")?;
        let Some(f) = from_stored(&request, &response) else {
            tracing::warn!(%score_id, "a stored score's request lacks its lane or dates");
            continue;
        };
        sqlx::query(
            "UPDATE scores SET scored_carrier = $1, warehouse = $2, destination = $3, \
             scheduled_date = $4, date_deadline = $5 WHERE score_id = $6",
        )
        .bind(f.scored_carrier.as_deref().map(str::to_string))
        .bind(f.warehouse.to_string())
        .bind(f.destination.to_string())
        .bind(f.scheduled_date.to_string())
        .bind(f.date_deadline.to_string())
        .bind(score_id)
        .execute(&mut *tx)
        .await?;
        filled += 1;
    }
    tx.commit().await?;
    tracing::info!(
        filled,
        "kept the facts of scores written before they were columns"
    );
    Ok(filled)
}
