//! `POST /v1/exceptions/classify`: one exception note to its category, owner and severity;
//! with a `shipment_id` the note is kept for the shipment before the answer is sent.
//! `POST /v1/exceptions/{id}/resolve` closes a kept note.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use dispatch_risk_training::exceptions::{Answer, NoteText};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::error::{ApiError, Code};
use super::json::ApiJson;
use super::{Access, Load, Routes};
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::exceptions::{new_note_id, ExceptionNote, ResolveError};
use crate::store::keys::Role;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        Access::Role(Role::Workflow),
        Load::Request,
        routes!(classify),
    )
    .add(
        Access::Role(Role::Workflow),
        Load::Request,
        routes!(resolve),
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// The note: a dispatcher's remark, a carrier message, a customer email (at most 10,000
    /// characters are read).
    text: String,
    /// The shipment the note is about: the note is then stored, shown with the shipment's
    /// approval and aged on the dashboard until it is resolved.
    #[serde(default)]
    shipment_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClassifyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    shipment_id: Option<String>,
    /// The stored note's id (`POST /v1/exceptions/{id}/resolve`), when a shipment was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    note_id: Option<String>,
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
        (status = 200, description = "The category with its owner and severity; with a shipment, stored", body = ClassifyResponse),
        (status = 400, description = "Empty or missing text, or an unusable shipment_id", body = super::error::ErrorBody),
        (status = 503, description = "The note could not be stored: the database is unreachable", body = super::error::ErrorBody),
    ),
)]
pub async fn classify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<ClassifyRequest>,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let note = NoteText::parse(&request.text)
        .map_err(|e| ApiError::invalid_field("text", e.to_string()))?;
    let shipment_id = request
        .shipment_id
        .as_deref()
        .map(|id| crate::scoring::request::identifier("shipment_id", id))
        .transpose()
        .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
    let models = state.models.current();
    // The encoder tier takes milliseconds of CPU: off the async workers.
    let version = models.version.clone();
    let text = note.as_str().to_string();
    let answer = tokio::task::spawn_blocking(move || models.classifier.classify_one(&note))
        .await
        .map_err(|e| ApiError::internal(format!("classification failed: {e}")))?;
    let note_id = match &shipment_id {
        Some(shipment) => {
            let stored = stored_note(&state, shipment, &text, &answer, version.clone());
            state.store.record_note(&stored, &caller.key_id).await?;
            Some(stored.id)
        }
        None => None,
    };
    Ok(Json(ClassifyResponse {
        shipment_id,
        note_id,
        answer,
        model_version: version,
    }))
}

/// The note as the store keeps it. PostgreSQL refuses NUL in text: those bytes are dropped.
fn stored_note(
    state: &AppState,
    shipment: &str,
    text: &str,
    answer: &Answer,
    model_version: Option<String>,
) -> ExceptionNote {
    let severity = serde_json::to_value(answer.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    ExceptionNote {
        id: new_note_id(),
        shipment_id: shipment.to_string(),
        created_at: state.clock.now_text(),
        note: text.replace('\0', ""),
        category: answer.category.clone(),
        owner: answer.owner.clone(),
        severity,
        confidence: answer.confidence,
        needs_review: answer.needs_review,
        tier: answer.tier.as_str().to_string(),
        model_version,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
    }
}

/// Close a stored exception note: the exception was handled.
#[utoipa::path(
    post,
    path = "/v1/exceptions/{id}/resolve",
    tag = "exceptions",
    params(("id" = String, Path, description = "The note's id (a classification's `note_id`)")),
    responses(
        (status = 200, description = "The note, resolved", body = ExceptionNote),
        (status = 404, description = "No such note", body = super::error::ErrorBody),
        (status = 409, description = "The note was already resolved", body = super::error::ErrorBody),
    ),
)]
pub async fn resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ExceptionNote>, ApiError> {
    let by = caller
        .person
        .as_ref()
        .map_or(caller.key_id.as_str(), |p| p.id.as_str());
    match state
        .store
        .resolve_note(&id, by, &state.clock.now_text())
        .await
    {
        Ok(note) => Ok(Json(note)),
        Err(e @ ResolveError::Unknown(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ ResolveError::AlreadyResolved(..)) => {
            Err(ApiError::conflict(Code::ExceptionResolved, e.to_string()))
        }
        Err(ResolveError::Store(e)) => Err(e.into()),
    }
}
