//! Liveness and readiness: open to everyone, for load balancers and orchestrators.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::routes;

use super::{Access, Load, Routes};
use crate::state::AppState;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(Access::Open, Load::Probe, routes!(healthz))
        .add(Access::Open, Load::Probe, routes!(readyz))
        .add(Access::Metrics, Load::Probe, routes!(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The service answers requests. It is ready even without models, since the rules answer then
/// (`degraded` says whether any model tier is missing), and while PostgreSQL is away, since
/// scores go to the spool then (`spooled_bytes`); it is not ready while scores cannot be
/// recorded (a full disk or spool): they would answer 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready, with the versions serving"),
    (status = 503, description = "Scores cannot be recorded now; `reason` says why"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let models = state.models.current();
    let store = state.store.recorder.health();
    let mut body = json!({
        "status": "ready",
        "model_version": models.version,
        "policy_version": state.policies.source().version,
        "degraded": models.degraded(),
        "spooled_bytes": store.spooled_bytes,
    });
    match store.refusing {
        None => Json(body).into_response(),
        Some(reason) => {
            body["status"] = json!("not_ready");
            body["reason"] = json!(reason);
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
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
