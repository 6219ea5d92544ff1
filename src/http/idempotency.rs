//! `Idempotency-Key` for the routes that record something: the first successful answer is
//! kept (per API key) and a repeat of the same request gets it back with
//! `Idempotent-Replayed: true`; the same key on a different request is refused. Concurrent
//! repeats do not compute twice: the first claims the key (see [`crate::store::idempotency`])
//! and the others wait for its answer, up to [`WAIT`], then get 409 `idempotency_in_progress`.

use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::idempotency::{Claim, StoredResponse};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
const MAX_KEY_CHARS: usize = 255;
/// How long a repeat waits for the first request's answer.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often it looks.
const POLL: Duration = Duration::from_millis(20);
/// A claim older than this never got its answer (the request was dropped or the process
/// died): a repeat takes it over.
const ABANDONED: Duration = Duration::from_secs(60);

/// Answers with `compute`'s body (JSON text), or with the response kept for this key.
/// `request_json` (the request as JSON) is only read when a key is sent.
pub async fn respond<F>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &'static str,
    request_json: impl FnOnce() -> String,
    compute: F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<String, ApiError>>,
{
    let Some(key) = idempotency_key(headers)? else {
        return Ok(json_response(StatusCode::OK, compute.await?, false));
    };
    let request_hash = {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update(b"\n");
        h.update(request_json().as_bytes());
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let store_error =
        |e: crate::store::StoreError| ApiError::internal(format!("idempotency store: {e}"));
    let waited_until = tokio::time::Instant::now() + WAIT;
    loop {
        let stale_before = (chrono::Utc::now()
            - chrono::Duration::from_std(ABANDONED).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        match state
            .store
            .claim(&caller.key_id, &key, route, &request_hash, &stale_before)
            .await
            .map_err(store_error)?
        {
            Claim::Won => break,
            Claim::Done(stored) => return replay(state, stored, route, &request_hash),
            Claim::Pending {
                route: r,
                request_hash: h,
            } => {
                if r != route || h != request_hash {
                    return Err(reused());
                }
                if tokio::time::Instant::now() >= waited_until {
                    return Err(ApiError::conflict(
                        "idempotency_in_progress",
                        "a request with this Idempotency-Key is still being answered; retry shortly",
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
    let body = match compute.await {
        Ok(body) => body,
        Err(e) => {
            // A failed request keeps nothing: a retry computes afresh.
            if let Err(release) = state.store.release_claim(&caller.key_id, &key).await {
                tracing::warn!(error = %release, "releasing an idempotency claim");
            }
            return Err(e);
        }
    };
    let kept = StoredResponse {
        route: route.to_string(),
        request_hash,
        status: 200,
        body,
    };
    state
        .store
        .complete_claim(&caller.key_id, &key, &kept)
        .await
        .map_err(store_error)?;
    Ok(json_response(StatusCode::OK, kept.body, false))
}

fn reused() -> ApiError {
    ApiError::unprocessable(
        "idempotency_key_reused",
        Some("Idempotency-Key"),
        "this Idempotency-Key was used for a different request; use a new key per request",
    )
}

fn replay(
    state: &AppState,
    stored: StoredResponse,
    route: &str,
    request_hash: &str,
) -> Result<Response, ApiError> {
    if stored.route != route || stored.request_hash != request_hash {
        return Err(reused());
    }
    state.metrics.replays.inc();
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    Ok(json_response(status, stored.body, true))
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if replayed {
        r.headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    r
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid_field(
            "Idempotency-Key",
            format!("expected 1 to {MAX_KEY_CHARS} visible ASCII characters"),
        )
    };
    let v = v.to_str().map_err(|_| bad())?.trim();
    if v.is_empty() || v.len() > MAX_KEY_CHARS || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(v.to_string()))
}
