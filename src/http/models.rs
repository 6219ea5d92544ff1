//! `GET /v1/models`: what is loaded, from where, and why any part did not load;
//! `POST /v1/models/reload`: load the active model version and the policy tables again and
//! swap in each part that checks out, atomically; a part that does not is refused and the
//! previous one keeps serving.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::routes;

use super::error::{ApiError, Code};
use super::{Access, Load, Routes};
use crate::state::AppState;
use crate::store::keys::Role;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(Access::Role(Role::Analyst), Load::Request, routes!(list))
        .add(Access::Role(Role::Analyst), Load::Request, routes!(reload))
}

/// The models and policies serving, and any problems loading them.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "What is loaded")))]
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let m = state.models.current();
    let policies = state.policies.source();
    let delay = m.delay.as_ref().map(|d| {
        let d = d.read().unwrap_or_else(|p| p.into_inner());
        json!({
            "version": d.version(),
            "features": d.feature_names().len(),
            "history_outcomes": d.history_outcomes(),
            "carrier_scorecards": d.has_scorecards(),
        })
    });
    Json(json!({
        "models_dir": state.models.dir().display().to_string(),
        "active": m.version,
        "delay_model": delay,
        "exception_classifier": { "tier": m.classifier.tier() },
        "policies": { "dir": policies.dir.display().to_string(), "version": policies.version },
        "problems": m.problems,
        "degraded": m.degraded(),
    }))
}

/// Reload models and policies.
#[utoipa::path(post, path = "/v1/models/reload", tag = "models",
    responses(
        (status = 200, description = "Everything reloaded"),
        (status = 409, description = "A part was refused; the previous one keeps serving", body = super::error::ErrorBody),
    ))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let report = state
        .reload()
        .await
        .map_err(|e| ApiError::unavailable(format!("reload failed: {e}")))?;
    let mut refused = Vec::new();
    if !report.models_refused.is_empty() {
        refused.push(format!("models: {}", report.models_refused.join("; ")));
    }
    if let Some(p) = &report.policies_refused {
        refused.push(format!("policies: {p}"));
    }
    if !refused.is_empty() {
        tracing::warn!(?refused, "reload refused; the previous parts keep serving");
        return Err(ApiError::conflict(
            Code::ReloadRefused,
            format!(
                "refused, and the previous version keeps serving: {}",
                refused.join("; ")
            ),
        ));
    }
    let m = state.models.current();
    let replayed = report.outcomes_replayed;
    tracing::info!(version = ?report.model_version, policies = %report.policy_version, replayed, "reloaded");
    Ok(Json(json!({
        "reloaded": true,
        "active": report.model_version,
        "policy_version": report.policy_version,
        "exception_classifier": { "tier": m.classifier.tier() },
        "outcomes_replayed": replayed,
        "problems": report.problems,
    })))
}
