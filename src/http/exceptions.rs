//! `POST /v1/exceptions/classify`: one exception note to its category, owner and severity.

use axum::extract::State;
use axum::Json;
use dispatch_risk_training::exceptions::{Answer, NoteText};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::error::ApiError;
use super::json::ApiJson;
use super::{Access, Load, Routes};
use crate::state::AppState;
use crate::store::keys::Role;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        Access::Role(Role::Workflow),
        Load::Request,
        routes!(classify),
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// The note: a dispatcher's remark, a carrier message, a customer email (at most 10,000
    /// characters are read).
    text: String,
    #[serde(default)]
    shipment_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClassifyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    shipment_id: Option<String>,
    /// category, confidence, alternatives, owner, severity, tier, needs_review, truncated
    #[serde(flatten)]
    #[schema(value_type = Object)]
    answer: Answer,
    model_version: Option<String>,
}

/// Classify an exception note: category, owner, severity.
#[utoipa::path(
    post,
    path = "/v1/exceptions/classify",
    tag = "exceptions",
    request_body = ClassifyRequest,
    responses(
        (status = 200, description = "The category with its owner and severity", body = ClassifyResponse),
        (status = 400, description = "Empty or missing text", body = super::error::ErrorBody),
    ),
)]
pub async fn classify(
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
