//! What runs around every request: a request id (taken from `X-Request-Id` or made up) in the
//! logs and the response, per-route counts and latency, and the API-key check of protected
//! routes.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ApiError, Code};
use super::Access;
use crate::auth::Denied;
use crate::metrics::{LatencyLabels, RouteLabels};
use crate::state::AppState;
use crate::store::keys::Role;

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, for handlers that record it (the audit trail).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{:016x}", rand::random::<u64>()));
    // Unknown paths share one label, so scanners cannot grow the metric families.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&LatencyLabels { method, route })
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(
                status,
                micros = elapsed.as_micros() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(status, micros = elapsed.as_micros() as u64, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

pub async fn require_key(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let needed = match access {
        Access::Open => return next.run(request).await,
        Access::Metrics if state.public_metrics => return next.run(request).await,
        Access::Metrics => Some(Role::Analyst),
        Access::Role(r) => Some(r),
        Access::AnyKey => None,
    };
    let client = crate::server::client_of(&request).map(|a| a.ip());
    let verdict = state
        .keys
        .authorize(&state.store, request.headers(), needed, client)
        .await;
    match verdict {
        Ok(Ok(caller)) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(Err(Denied::Unauthenticated(message))) => {
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message)
                .into_response();
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            r
        }
        Ok(Err(Denied::Forbidden { role, needed })) => ApiError::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            format!(
                "this key's role is `{}`; the route needs `{}`",
                role.as_str(),
                needed.as_str()
            ),
        )
        .into_response(),
        Ok(Err(Denied::RateLimited { retry_after, why })) => {
            state.metrics.rate_limited.inc();
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, why)
                .retry_after(retry_after)
                .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
