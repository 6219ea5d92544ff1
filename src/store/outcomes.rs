//! Delivery outcomes: stored for retraining (one per shipment), joined to the last score of the
//! shipment for what the outcome alone does not say (lane, dates).

use sqlx::Row;

use dispatch_risk_training::data::Timestamp;

use super::{flag, parse_date, Store, StoreError};

/// The last score recorded for a shipment, with the facts an outcome joins to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastScore {
    pub score_id: String,
    /// The carrier the risk was scored for.
    pub scored_carrier: Option<String>,
    pub warehouse: String,
    pub destination: String,
    pub scheduled: Timestamp,
    pub deadline: Timestamp,
}

/// A score as it was asked and answered, JSON text both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub request: String,
    pub response: String,
}

/// An outcome joined to its shipment.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    pub shipment_id: String,
    pub score_id: Option<String>,
    pub delivered_at: String,
    pub notes: Option<String>,
    pub carrier: String,
    pub warehouse: String,
    pub destination: String,
    pub scheduled_date: String,
    pub date_deadline: String,
    pub late: bool,
    pub api_key_id: Option<String>,
}

impl Store {
    pub async fn last_score(&self, shipment_id: &str) -> Result<Option<LastScore>, StoreError> {
        let row = sqlx::query(
            "SELECT s.score_id, s.scored_carrier, s.warehouse, s.destination, s.scheduled_date, \
             s.date_deadline FROM latest_scores l \
             JOIN scores s ON s.score_id = l.score_id WHERE l.shipment_id = $1",
        )
        .bind(shipment_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let score_id: String = r.try_get("score_id")?;
        // Written by the recorder, or filled in at connect for scores from before: a row
        // without them is one whose request never had them.
        let text = |column: &str| -> Result<String, StoreError> {
            r.try_get::<Option<String>, _>(column)?
                .ok_or_else(|| StoreError::Facts(score_id.clone(), column.to_string()))
        };
        let date = |column: &str| -> Result<Timestamp, StoreError> {
            parse_date(&text(column)?)
                .ok_or_else(|| StoreError::Facts(score_id.clone(), column.to_string()))
        };
        Ok(Some(LastScore {
            scored_carrier: r.try_get("scored_carrier")?,
            warehouse: text("warehouse")?,
            destination: text("destination")?,
            scheduled: date("scheduled_date")?,
            deadline: date("date_deadline")?,
            score_id,
        }))
    }

    /// The request and the answer of a recorded score.
    pub async fn answered(&self, score_id: &str) -> Result<Option<Answered>, StoreError> {
        let row = sqlx::query("SELECT request, response FROM scores WHERE score_id = $1")
            .bind(score_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Answered {
                request: r.try_get("request")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }

    /// Stores an outcome received at `received_at` (the store's time text); `Some(existing
    /// delivered_at)` when the shipment already has one.
    pub async fn insert_outcome(
        &self,
        o: &OutcomeRecord,
        received_at: &str,
    ) -> Result<Option<String>, StoreError> {
        // The delivery is over: its open exception notes close with the outcome, in its
        // transaction.
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO outcomes (shipment_id, score_id, delivered_at, notes, carrier, warehouse, \
             destination, scheduled_date, date_deadline, late, received_at, api_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (shipment_id) DO NOTHING",
        )
        .bind(o.shipment_id.clone())
        .bind(o.score_id.clone())
        .bind(o.delivered_at.clone())
        .bind(o.notes.clone())
        .bind(o.carrier.clone())
        .bind(o.warehouse.clone())
        .bind(o.destination.clone())
        .bind(o.scheduled_date.clone())
        .bind(o.date_deadline.clone())
        .bind(flag(o.late))
        .bind(received_at.to_string())
        .bind(o.api_key_id.clone())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            sqlx::query(
                "UPDATE exception_notes SET resolved_at = $1, resolved_by = $2, \
                 resolution = 'delivered' WHERE shipment_id = $3 AND resolved_at IS NULL",
            )
            .bind(received_at.to_string())
            .bind(o.api_key_id.clone())
            .bind(o.shipment_id.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(None);
        }
        tx.rollback().await?;
        let row = sqlx::query("SELECT delivered_at FROM outcomes WHERE shipment_id = $1")
            .bind(o.shipment_id.clone())
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(row.try_get("delivered_at")?))
    }

    /// Every stored outcome, oldest first: replayed into a newly loaded model's history.
    pub async fn all_outcomes(&self) -> Result<Vec<OutcomeRecord>, StoreError> {
        self.outcomes_received_since("").await
    }

    /// The outcomes received at or after `since` (the store's time text), by any instance,
    /// oldest delivery first.
    pub async fn outcomes_received_since(
        &self,
        since: &str,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT shipment_id, score_id, delivered_at, notes, carrier, warehouse, destination, \
             scheduled_date, date_deadline, late, api_key_id FROM outcomes \
             WHERE received_at >= $1 ORDER BY delivered_at",
        )
        .bind(since.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let late: i32 = r.try_get("late")?;
                Ok(OutcomeRecord {
                    shipment_id: r.try_get("shipment_id")?,
                    score_id: r.try_get("score_id")?,
                    delivered_at: r.try_get("delivered_at")?,
                    notes: r.try_get("notes")?,
                    carrier: r.try_get("carrier")?,
                    warehouse: r.try_get("warehouse")?,
                    destination: r.try_get("destination")?,
                    scheduled_date: r.try_get("scheduled_date")?,
                    date_deadline: r.try_get("date_deadline")?,
                    late: late != 0,
                    api_key_id: r.try_get("api_key_id")?,
                })
            })
            .collect()
    }

    pub async fn count_rows(&self, table: Table) -> Result<i64, StoreError> {
        let row = sqlx::query(table.count_sql()).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }
}

/// Tables whose rows can be counted (tests, the bench).
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Scores,
    Outcomes,
    Idempotency,
}

impl Table {
    fn count_sql(self) -> &'static str {
        match self {
            Table::Scores => "SELECT COUNT(*) FROM scores",
            Table::Outcomes => "SELECT COUNT(*) FROM outcomes",
            Table::Idempotency => "SELECT COUNT(*) FROM idempotency",
        }
    }
}
