//! Exception notes kept per shipment: a note classified for a shipment is stored with its
//! category, owner and severity before its answer is sent, shown with the shipment's approval,
//! and open until a workflow resolves it or the delivery's outcome arrives; the dashboard ages
//! the open ones per category.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// A note as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExceptionNote {
    pub id: String,
    pub shipment_id: String,
    pub created_at: String,
    pub note: String,
    pub category: String,
    /// The team the taxonomy gives the category to.
    pub owner: String,
    pub severity: String,
    pub confidence: f64,
    /// The confidence was under the taxonomy's review threshold.
    pub needs_review: bool,
    /// Which classifier answered: `encoder`, `small_model` or `rules`.
    pub tier: String,
    pub model_version: Option<String>,
    /// Null while the note is open.
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    /// `resolved` (a workflow closed it) or `delivered` (the outcome arrived).
    pub resolution: Option<String>,
}

/// How long the open notes of one category have waited, in hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Aging {
    pub open: usize,
    pub p50_hours: f64,
    pub oldest_hours: f64,
    /// Open for more than a day.
    pub over_24h: usize,
}

/// Open notes read for the aging at most: the dashboard stays bounded on a busy store.
const MAX_OPEN: i64 = 200_000;

/// The columns [`note_of`] reads, in its order.
macro_rules! columns {
    () => {
        "id, shipment_id, created_at, note, category, owner, severity, confidence, \
         needs_review, tier, model_version, resolved_at, resolved_by, resolution"
    };
}

fn note_of(r: &sqlx::any::AnyRow) -> Result<ExceptionNote, sqlx::Error> {
    Ok(ExceptionNote {
        id: r.try_get(0)?,
        shipment_id: r.try_get(1)?,
        created_at: r.try_get(2)?,
        note: r.try_get(3)?,
        category: r.try_get(4)?,
        owner: r.try_get(5)?,
        severity: r.try_get(6)?,
        confidence: r.try_get(7)?,
        needs_review: super::int(r, 8)? != 0,
        tier: r.try_get(9)?,
        model_version: r.try_get(10)?,
        resolved_at: r.try_get(11)?,
        resolved_by: r.try_get(12)?,
        resolution: r.try_get(13)?,
    })
}

/// Why a resolution was not made.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no exception note `{0}`")]
    Unknown(String),
    #[error("exception note `{0}` was already resolved at {1}")]
    AlreadyResolved(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Keeps a classified note; returns once it is committed.
    pub async fn record_note(
        &self,
        note: &ExceptionNote,
        api_key_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO exception_notes (id, shipment_id, created_at, note, category, owner, \
             severity, confidence, needs_review, tier, model_version, api_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&note.id)
        .bind(&note.shipment_id)
        .bind(&note.created_at)
        .bind(&note.note)
        .bind(&note.category)
        .bind(&note.owner)
        .bind(&note.severity)
        .bind(note.confidence)
        .bind(super::flag(note.needs_review))
        .bind(&note.tier)
        .bind(&note.model_version)
        .bind(api_key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A shipment's notes, newest first.
    pub async fn notes_of(
        &self,
        shipment_id: &str,
        limit: i64,
    ) -> Result<Vec<ExceptionNote>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM exception_notes WHERE shipment_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(shipment_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(note_of).collect::<Result<_, _>>()?)
    }

    /// Resolves an open note: a conditional update, so of two resolutions one is told the
    /// note was already resolved.
    pub async fn resolve_note(
        &self,
        id: &str,
        by: &str,
        at: &str,
    ) -> Result<ExceptionNote, ResolveError> {
        let changed = sqlx::query(
            "UPDATE exception_notes SET resolved_at = $1, resolved_by = $2, \
             resolution = 'resolved' WHERE id = $3 AND resolved_at IS NULL",
        )
        .bind(at)
        .bind(by)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM exception_notes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        let note = row
            .as_ref()
            .map(note_of)
            .transpose()
            .map_err(StoreError::from)?
            .ok_or_else(|| ResolveError::Unknown(id.to_string()))?;
        if changed == 0 {
            let at = note.resolved_at.clone().unwrap_or_default();
            return Err(ResolveError::AlreadyResolved(id.to_string(), at));
        }
        Ok(note)
    }

    /// The open notes' aging per category at `now`.
    pub async fn note_aging(
        &self,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Aging>, StoreError> {
        let rows = sqlx::query(
            "SELECT category, created_at FROM exception_notes WHERE resolved_at IS NULL \
             ORDER BY category, created_at LIMIT $1",
        )
        .bind(MAX_OPEN)
        .fetch_all(&self.pool)
        .await?;
        let mut hours: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in &rows {
            let category: String = r.try_get(0)?;
            let created: String = r.try_get(1)?;
            let Ok(created) = DateTime::parse_from_rfc3339(&created) else {
                continue;
            };
            let h = (now - created.with_timezone(&Utc)).num_seconds().max(0) as f64 / 3600.0;
            hours.entry(category).or_default().push(h);
        }
        Ok(hours.into_iter().map(|(c, h)| (c, aging(h))).collect())
    }
}

fn aging(mut hours: Vec<f64>) -> Aging {
    hours.sort_by(f64::total_cmp);
    let Some(&oldest) = hours.last() else {
        return Aging::default();
    };
    Aging {
        open: hours.len(),
        p50_hours: hours[(hours.len() - 1) / 2],
        oldest_hours: oldest,
        over_24h: hours.iter().filter(|&&h| h > 24.0).count(),
    }
}

/// A new note's id: time-ordered like score ids.
pub fn new_note_id() -> String {
    let ms = Utc::now().timestamp_millis();
    format!("exn_{ms:012x}{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aging_counts_the_old_ones() {
        let a = aging(vec![30.0, 1.0, 2.0]);
        assert_eq!((a.open, a.over_24h), (3, 1));
        assert_eq!((a.p50_hours, a.oldest_hours), (2.0, 30.0));
        assert_eq!(aging(vec![]), Aging::default());
    }
}
