//! Limits at the door, so that no client can hold the service: a cap on requests in flight (and
//! a smaller one on batches, which hold tens of megabytes each) that sheds the excess with 503
//! `overloaded` at once instead of queueing it without end, and a deadline per request. Health,
//! readiness and metrics pass the gate: an orchestrator must see an overloaded service as up.
//! Per-key and unknown-key rate limits are in [`crate::auth`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::{ApiError, Code};
use crate::state::AppState;

/// How many requests may be in flight at once.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    pub in_flight: usize,
    pub batches: usize,
    pub request_timeout: Duration,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            // Far above what two cores answer at once (a single score takes ~0.1 ms of CPU),
            // far below what exhausts memory.
            in_flight: 512,
            // A full batch holds ~60 MB while it is answered.
            batches: 8,
            request_timeout: Duration::from_secs(60),
        }
    }
}

pub struct Gate {
    limits: GateLimits,
    in_flight: Arc<Semaphore>,
    batches: Arc<Semaphore>,
}

impl Gate {
    pub fn new(limits: GateLimits) -> Self {
        Gate {
            limits,
            in_flight: Arc::new(Semaphore::new(limits.in_flight)),
            batches: Arc::new(Semaphore::new(limits.batches)),
        }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(GateLimits::default())
    }
}

/// The limits in front of a route whose [`super::Load`] is not a probe; `batch` routes also
/// take a batch permit.
pub async fn gate(
    State((state, batch)): State<(AppState, bool)>,
    request: Request,
    next: Next,
) -> Response {
    let gate = &state.gate;
    let Ok(_request) = gate.in_flight.clone().try_acquire_owned() else {
        state.metrics.shed.inc();
        return overloaded("requests");
    };
    let _batch = if batch {
        match gate.batches.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                state.metrics.shed.inc();
                return overloaded("batches");
            }
        }
    } else {
        None
    };
    match tokio::time::timeout(gate.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Timeout,
            format!(
                "the request took longer than {} s and was cut off",
                gate.limits.request_timeout.as_secs()
            ),
        )
        .retry_after(5)
        .into_response(),
    }
}

/// The body a shed request was sending is never read, so the connection is closed after the
/// answer (a client must not send its next request down it).
fn overloaded(what: &str) -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Overloaded,
        format!("the service is answering as many {what} as it can; retry in a moment"),
    )
    .retry_after(1)
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}
