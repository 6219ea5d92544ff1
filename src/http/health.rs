//! Liveness and readiness: open to everyone, for load balancers and orchestrators.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use super::{Access, Routes};
use crate::state::AppState;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/healthz", Access::Open, get(healthz))
        .add("GET", "/readyz", Access::Open, get(readyz))
        .add("GET", "/metrics", Access::Metrics, get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The service answers requests. It is ready even without models, since the rules answer then;
/// `degraded` says whether any model tier is missing.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready, with the versions serving")))]
pub async fn readyz(State(state): State<AppState>) -> Json<Value> {
    let models = state.models.current();
    Json(json!({
        "status": "ready",
        "model_version": models.version,
        "policy_version": state.policies.source().version,
        "degraded": models.degraded(),
    }))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .recorder_pending
        .set(i64::try_from(state.store.recorder.pending()).unwrap_or(i64::MAX));
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
