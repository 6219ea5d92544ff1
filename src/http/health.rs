//! Liveness and readiness: open to everyone, for load balancers and orchestrators.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The service answers requests. It is ready even without models, since the rules answer then;
/// `degraded` says whether any model tier is missing.
async fn readyz(State(state): State<AppState>) -> Json<Value> {
    let models = state.models.current();
    Json(json!({
        "status": "ready",
        "model_version": models.version,
        "degraded": models.degraded(),
    }))
}
