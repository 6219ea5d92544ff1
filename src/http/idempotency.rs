//! `Idempotency-Key` for the routes that record something: the first successful answer is
//! kept (per API key) and a repeat of the same request gets it back with
//! `Idempotent-Replayed: true`; the same key on a different request is refused. Concurrent
//! repeats do not compute twice: the first claims the key (see [`crate::store::idempotency`])
//! and the others wait for its answer, up to [`WAIT`], then get 409 `idempotency_in_progress`.
//!
//! This is also where an answer's records are committed: [`respond`] sends nothing before
//! the records and the answer kept for the key are durable, in one transaction.

use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::{ApiError, Code};
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::idempotency::{Claim, ClaimTimes, StoredResponse};
use crate::store::recorder::Stream;
use crate::store::{Completion, ScoreRecord, Text, Write, WriteError};

/// A computed answer: the records it must leave behind, whose answers make its body.
pub struct Prepared {
    pub records: Vec<ScoreRecord>,
    pub shape: Shape,
}

/// How a request's body is made of its records' answers.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// The one record's answer.
    Single,
    /// `BatchResponse`: the answers in order.
    Batch { degraded: bool },
}

impl Shape {
    fn body<'a>(self, answers: impl Iterator<Item = &'a str> + Clone) -> String {
        match self {
            Shape::Single => answers.into_iter().next().unwrap_or_default().to_string(),
            Shape::Batch { degraded } => {
                let count = answers.clone().count();
                let size = answers.clone().map(|a| a.len() + 1).sum::<usize>() + 64;
                let mut body = String::with_capacity(size);
                body.push_str(&format!(
                    "{{\"count\":{count},\"degraded\":{degraded},\"scores\":["
                ));
                for (i, a) in answers.enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(a);
                }
                body.push_str("]}");
                body
            }
        }
    }
}

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

/// Answers with `compute`'s body once its records are committed, or with the response kept
/// for this key. `request_json` (the request as JSON) is only read when a key is sent.
pub async fn respond<F>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &'static str,
    request_json: impl FnOnce() -> String,
    compute: F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Prepared, ApiError>>,
{
    let claimed = match begin(state, caller, headers, route, request_json).await? {
        Begun::Replayed(response) => return Ok(response),
        Begun::Fresh(claimed) => claimed,
    };
    let answered = async {
        let prepared = compute.await?;
        claimed
            .commit(state, prepared.records, prepared.shape)
            .await
    }
    .await;
    claimed.answer(state, answered).await
}

/// Where a request stands once its key (if it sent one) was looked up.
pub enum Begun {
    /// A repeat: the answer kept for the key.
    Replayed(Response),
    /// A request to answer afresh: it holds its key's claim, if it sent a key.
    Fresh(Claimed),
}

/// A request's claim on its Idempotency-Key (none without a key): its answer is kept with the
/// last of its records, and a failed request gives the claim up.
pub struct Claimed {
    owner: Option<(Text, Text)>,
}

/// Looks the request's key up: claims it, or returns the answer kept for it, or waits for the
/// request that holds it.
pub async fn begin(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &'static str,
    request_json: impl FnOnce() -> String,
) -> Result<Begun, ApiError> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok(Begun::Fresh(Claimed { owner: None }));
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
    let waited_until = tokio::time::Instant::now() + WAIT;
    loop {
        let now = state.clock.now();
        let stale_before =
            crate::clock::text(now - chrono::Duration::from_std(ABANDONED).unwrap_or_default());
        let times = ClaimTimes {
            now: &crate::clock::text(now),
            stale_before: &stale_before,
        };
        match state
            .store
            .claim(&caller.key_id, &key, route, &request_hash, times)
            .await
            .map_err(ApiError::from)?
        {
            Claim::Won => {
                let owner = (Text::from(caller.key_id.as_str()), Text::from(key.as_str()));
                return Ok(Begun::Fresh(Claimed { owner: Some(owner) }));
            }
            Claim::Done(stored) => {
                return replay(state, stored, route, &request_hash).map(Begun::Replayed)
            }
            Claim::Pending {
                route: r,
                request_hash: h,
            } => {
                if r != route || h != request_hash {
                    return Err(reused());
                }
                if tokio::time::Instant::now() >= waited_until {
                    return Err(ApiError::conflict(
                        Code::IdempotencyInProgress,
                        "a request with this Idempotency-Key is still being answered; retry shortly",
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

impl Claimed {
    /// The response to a request's outcome: its body once everything is durable, or its
    /// error, after giving the key's claim up so a retry computes afresh.
    pub async fn answer(
        self,
        state: &AppState,
        answered: Result<Text, ApiError>,
    ) -> Result<Response, ApiError> {
        match answered {
            Ok(body) => Ok(json_response(StatusCode::OK, body, false)),
            Err(e) => {
                if let Some((owner, key)) = &self.owner {
                    if let Err(release) = state.store.release_claim(owner, key).await {
                        tracing::warn!(error = %release, "releasing an idempotency claim");
                    }
                }
                Err(e)
            }
        }
    }
}

impl Claimed {
    /// Commits a request's records with the answer kept for its key, in one transaction;
    /// returns the body, made of the records' answers as `shape` says.
    pub async fn commit(
        &self,
        state: &AppState,
        records: Vec<ScoreRecord>,
        shape: Shape,
    ) -> Result<Text, ApiError> {
        let body_of = |records: &[ScoreRecord]| shape.body(records.iter().map(|r| &*r.response));
        commit(state, records, self.owner.clone(), body_of).await
    }
}

impl Claimed {
    /// Ends a streamed write with the answer kept for the key, the body `shape` makes of
    /// `answers`; returns the body once everything is durable.
    pub async fn finish(
        &self,
        stream: Stream,
        answers: &[Text],
        shape: Shape,
    ) -> Result<Text, WriteError> {
        let body = Text::from(shape.body(answers.iter().map(|a| &**a)));
        let completion = self.owner.clone().map(|(owner, key)| Completion {
            owner,
            key,
            status: 200,
            body: body.clone(),
        });
        stream.finish(completion).await.map(|_| body)
    }
}

/// Times a request's approvals are asked for again after the recorder found a proposal stale.
const STALE_RETRIES: usize = 3;

/// Commits records (with the answer kept for an idempotency key, `owner`, whose body
/// `body_of` makes from them) and returns the body; the answer waits for it. A
/// write whose approval proposals no longer hold asks the database which approvals are open
/// and tries again.
async fn commit(
    state: &AppState,
    mut records: Vec<ScoreRecord>,
    owner: Option<(Text, Text)>,
    body_of: impl Fn(&[ScoreRecord]) -> String,
) -> Result<Text, ApiError> {
    let mut attempt = 0;
    loop {
        let body = Text::from(body_of(&records));
        let completion = owner.clone().map(|(owner, key)| Completion {
            owner,
            key,
            status: 200,
            body: body.clone(),
        });
        let tickets = crate::http::approvals::tickets(&records);
        let write = Write {
            records,
            completion,
        };
        match state.store.recorder.commit_returning(write).await {
            Ok(_) => {
                crate::http::approvals::remember(state, &tickets);
                return Ok(body);
            }
            Err((WriteError::StaleApproval(shipment), Some(back))) if attempt < STALE_RETRIES => {
                tracing::debug!(%shipment, attempt, "approval proposal stale; asking again");
                records = back.records;
                crate::http::approvals::correct(state, &mut records)
                    .await
                    .map_err(ApiError::from)?;
                attempt += 1;
            }
            Err((e, _)) => return Err(write_error(e)),
        }
    }
}

/// How a failed write answers: no room and no database are worth retrying later.
pub(crate) fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Full(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::StoreFull,
            format!("the score could not be recorded: {e}"),
        )
        .retry_after(30),
        WriteError::Unavailable(_) | WriteError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::StoreUnavailable,
            format!("the score could not be recorded: {e}"),
        )
        .retry_after(5),
        WriteError::Refused(_) | WriteError::StaleApproval(_) => {
            ApiError::internal(format!("the score could not be recorded: {e}"))
        }
    }
}

fn reused() -> ApiError {
    ApiError::unprocessable(
        Code::IdempotencyKeyReused,
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
    Ok(json_response(status, stored.body.into(), true))
}

/// A body shared with the record that keeps it: sent without a copy.
struct Shared(Text);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn json_response(status: StatusCode, body: Text, replayed: bool) -> Response {
    let mut r = (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        axum::body::Bytes::from_owner(Shared(body)),
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
