//! `GET /v1/models`: what is loaded, from where, and why any part did not load;
//! `POST /v1/models/reload`: load the active version again and swap it in atomically, unless
//! it is worse than what serves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(list))
        .route("/v1/models/reload", post(reload))
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    let m = state.models.current();
    Json(json!({
        "models_dir": state.models.dir().display().to_string(),
        "active": m.version,
        "exception_classifier": { "tier": m.classifier.tier() },
        "problems": m.problems,
        "degraded": m.degraded(),
    }))
}

async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.models.clone();
    let result = tokio::task::spawn_blocking(move || store.reload())
        .await
        .map_err(|e| ApiError::internal(format!("reload failed: {e}")))?;
    match result {
        Ok(m) => {
            tracing::info!(version = ?m.version, "models reloaded");
            Ok(Json(json!({
                "reloaded": true,
                "active": m.version,
                "exception_classifier": { "tier": m.classifier.tier() },
                "problems": m.problems,
            })))
        }
        Err(problems) => {
            tracing::warn!(
                ?problems,
                "reload refused; the previous models keep serving"
            );
            Err(ApiError {
                status: StatusCode::CONFLICT,
                code: "reload_refused",
                message: format!(
                    "the new models were refused and the previous ones keep serving: {}",
                    problems.join("; ")
                ),
                field: None,
            })
        }
    }
}
