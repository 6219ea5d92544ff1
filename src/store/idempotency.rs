//! Stored responses for `Idempotency-Key`: a workflow that retries a request (a timeout, an n8n
//! retry) gets the first answer back instead of a second score. Keys are scoped to the API key
//! that sent them; the same key with a different body is refused.

use sqlx::Row;

use super::{now_text, Store, StoreError};

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub route: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

impl Store {
    pub async fn idempotent_response(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT route, request_hash, status, response FROM idempotency \
             WHERE key_owner = $1 AND idempotency_key = $2",
        )
        .bind(owner.to_string())
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let status: i32 = r.try_get("status")?;
            Ok(StoredResponse {
                route: r.try_get("route")?,
                request_hash: r.try_get("request_hash")?,
                status: status as u16,
                body: r.try_get("response")?,
            })
        })
        .transpose()
    }

    /// Keeps a response; when another request with the same key got there first, returns
    /// that one instead (the caller answers with it).
    pub async fn keep_response(
        &self,
        owner: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency (key_owner, idempotency_key, route, request_hash, status, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key_owner, idempotency_key) DO NOTHING",
        )
        .bind(owner.to_string())
        .bind(key.to_string())
        .bind(response.route.clone())
        .bind(response.request_hash.clone())
        .bind(response.status as i32)
        .bind(response.body.clone())
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() > 0 {
            Ok(None)
        } else {
            self.idempotent_response(owner, key).await
        }
    }
}
