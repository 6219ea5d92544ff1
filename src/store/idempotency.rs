//! Stored responses for `Idempotency-Key`: a workflow that retries a request (a timeout, an n8n
//! retry) gets the first answer back instead of a second score. Keys are scoped to the API key
//! that sent them; the same key with a different body is refused.
//!
//! A request claims its key before it computes anything: the claim is a row with status 0,
//! and the primary key lets exactly one insert win, on SQLite and across PostgreSQL
//! instances alike. The winner completes the row with its answer (or releases it on an
//! error); the others see the claim and wait for the answer. A claim left by a request that
//! never finished (its client went away, the process died) is taken over once it is older
//! than the caller's cut-off.

use sqlx::Row;

use super::{Store, StoreError};

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub route: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: compute, then commit the answer with the records (a
    /// [`super::Completion`]) or [`Store::release_claim`].
    Won,
    /// The answer kept for the key.
    Done(StoredResponse),
    /// Another request holds the key and has not answered yet.
    Pending { route: String, request_hash: String },
}

/// When a claim is made, and before when an unanswered one counts as abandoned (the store's
/// time texts).
#[derive(Debug, Clone, Copy)]
pub struct ClaimTimes<'a> {
    pub now: &'a str,
    pub stale_before: &'a str,
}

/// The status of a claim that has no answer yet.
const CLAIMED: i32 = 0;

impl Store {
    /// Claims `key` for a request to `route` with `request_hash` at `times.now`; a claim made
    /// before `times.stale_before` that never got an answer is taken over.
    pub async fn claim(
        &self,
        owner: &str,
        key: &str,
        route: &str,
        request_hash: &str,
        times: ClaimTimes<'_>,
    ) -> Result<Claim, StoreError> {
        let ClaimTimes { now, stale_before } = times;
        for _ in 0..2 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency (key_owner, idempotency_key, route, request_hash, status, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5, '', $6) ON CONFLICT (key_owner, idempotency_key) DO NOTHING",
            )
            .bind(owner.to_string())
            .bind(key.to_string())
            .bind(route.to_string())
            .bind(request_hash.to_string())
            .bind(CLAIMED)
            .bind(now.to_string())
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() > 0 {
                return Ok(Claim::Won);
            }
            let row = sqlx::query(
                "SELECT route, request_hash, status, response, created_at FROM idempotency \
                 WHERE key_owner = $1 AND idempotency_key = $2",
            )
            .bind(owner.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
            // Released between the insert and the read: claim again.
            let Some(row) = row else { continue };
            let status: i32 = row.try_get("status")?;
            let (route, request_hash): (String, String) =
                (row.try_get("route")?, row.try_get("request_hash")?);
            if status != CLAIMED {
                return Ok(Claim::Done(StoredResponse {
                    route,
                    request_hash,
                    status: status as u16,
                    body: row.try_get("response")?,
                }));
            }
            let created: String = row.try_get("created_at")?;
            if created.as_str() >= stale_before {
                return Ok(Claim::Pending {
                    route,
                    request_hash,
                });
            }
            // Abandoned: whoever deletes it first claims again (the other finds the new claim).
            sqlx::query(
                "DELETE FROM idempotency WHERE key_owner = $1 AND idempotency_key = $2 \
                 AND status = $3 AND created_at = $4",
            )
            .bind(owner.to_string())
            .bind(key.to_string())
            .bind(CLAIMED)
            .bind(created)
            .execute(&self.pool)
            .await?;
        }
        Ok(Claim::Pending {
            route: route.to_string(),
            request_hash: request_hash.to_string(),
        })
    }

    /// Gives a claim up (its request failed), so a retry can compute afresh.
    pub async fn release_claim(&self, owner: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency WHERE key_owner = $1 AND idempotency_key = $2 AND status = $3",
        )
        .bind(owner.to_string())
        .bind(key.to_string())
        .bind(CLAIMED)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
