//! `POST /v1/exceptions/classify`: one exception note to its category, owner and severity.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use dispatch_risk_training::exceptions::{Answer, NoteText};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::json::ApiJson;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/exceptions/classify", post(classify))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyRequest {
    text: String,
    #[serde(default)]
    shipment_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct ClassifyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    shipment_id: Option<String>,
    #[serde(flatten)]
    answer: Answer,
    model_version: Option<String>,
}

async fn classify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ClassifyRequest>,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let note = NoteText::parse(&request.text)
        .map_err(|e| ApiError::invalid_field("text", e.to_string()))?;
    let models = state.models.current();
    // The encoder tier takes milliseconds of CPU: off the async workers.
    let version = models.version.clone();
    let answer = tokio::task::spawn_blocking(move || models.classifier.classify_one(&note))
        .await
        .map_err(|e| ApiError::internal(format!("classification failed: {e}")))?;
    Ok(Json(ClassifyResponse {
        shipment_id: request.shipment_id,
        answer,
        model_version: version,
    }))
}
