//! `POST /v1/shipments/{shipment_id}/outcome`: when a delivery lands, the workflow reports it.
//! The outcome is stored for retraining, joined to the shipment's last score for its lane and
//! dates, and fed to the live history features and carrier scorecards of the serving model;
//! its notes, if any, are classified and counted in the carrier's exception mix.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use dispatch_risk_training::data::dates::DateParser;
use dispatch_risk_training::exceptions::NoteText;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::error::{ApiError, Code};
use super::json::ApiJson;
use super::{Access, Load, Routes};
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::date_text;
use crate::store::keys::Role;
use crate::store::outcomes::OutcomeRecord;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        Access::Role(Role::Workflow),
        Load::Request,
        routes!(outcome),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// Proof-of-delivery time (ISO 8601, UTC).
    pub delivered_at: String,
    /// Exception notes written while the delivery travelled.
    #[serde(default)]
    pub notes: Option<String>,
    /// The carrier that actually delivered, when it differs from the scored one.
    #[serde(default)]
    pub carrier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeResponse {
    pub shipment_id: String,
    /// False when the same outcome had already been recorded.
    pub recorded: bool,
    pub late: bool,
    /// Delivered minus promised, in days (negative: early).
    pub lateness_days: f64,
    pub carrier: String,
    /// The score the outcome joins.
    pub score_id: String,
    /// Whether the serving model's history and scorecards took it in.
    pub live_history_updated: bool,
    /// The notes' category, when notes were sent.
    pub exception_category: Option<String>,
}

/// Report a delivered shipment.
#[utoipa::path(
    post,
    path = "/v1/shipments/{shipment_id}/outcome",
    tag = "outcomes",
    params(("shipment_id" = String, Path, description = "The scored shipment's id")),
    request_body = OutcomeRequest,
    responses(
        (status = 200, description = "Stored (or already stored with the same time)", body = OutcomeResponse),
        (status = 400, description = "A field is wrong", body = super::error::ErrorBody),
        (status = 404, description = "The shipment was never scored", body = super::error::ErrorBody),
        (status = 409, description = "The shipment already has a different outcome", body = super::error::ErrorBody),
        (status = 422, description = "The carrier is one neither the model nor the configuration knows", body = super::error::ErrorBody),
    ),
)]
pub async fn outcome(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(shipment_id): Path<String>,
    ApiJson(request): ApiJson<OutcomeRequest>,
) -> Result<Json<OutcomeResponse>, ApiError> {
    let delivered = DateParser::default()
        .parse(&request.delivered_at)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "delivered_at",
                format!(
                    "`{}` is not a date; expected ISO 8601 such as 2025-03-05T14:30:00Z",
                    request.delivered_at
                ),
            )
        })?;
    let notes = match request.notes.as_deref() {
        Some(t) if !t.trim().is_empty() => {
            Some(NoteText::parse(t).map_err(|e| ApiError::invalid_field("notes", e.to_string()))?)
        }
        _ => None,
    };
    // Every answered score is committed before its answer was sent, here or on another
    // instance: the database has it, unless this instance's spool still holds it.
    let last = match state.store.last_score(&shipment_id).await? {
        Some(last) => last,
        None if state.store.recorder.health().spooled_bytes > 0 => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::StoreUnavailable,
                format!(
                    "no score for shipment `{shipment_id}` is in the database yet; this instance holds scores answered while it was unreachable, retry once they are written"
                ),
            )
            .retry_after(5))
        }
        None => {
            return Err(ApiError::not_found(format!(
                "no score is recorded for shipment `{shipment_id}`; an outcome joins the shipment's last score"
            )))
        }
    };
    let carrier = request
        .carrier
        .clone()
        .filter(|c| !c.trim().is_empty())
        .or(last.scored_carrier.clone())
        .unwrap_or_default();
    let known = !carrier.is_empty()
        && (state.admitted_carriers.contains(&carrier)
            || state.models.current().knows_carrier(&carrier) != Some(false));
    if !carrier.is_empty() && !known {
        return Err(ApiError::unprocessable(
            Code::UnknownCarrier,
            Some("carrier"),
            format!(
                "`{carrier}` is a carrier neither the model nor its rate table knows; admit it in the service's configuration (admitted_carriers) before reporting its deliveries"
            ),
        ));
    }
    let late = delivered > last.deadline;
    let record = OutcomeRecord {
        shipment_id: shipment_id.clone(),
        score_id: Some(last.score_id.clone()),
        delivered_at: date_text(delivered),
        notes: request.notes.clone(),
        carrier: carrier.clone(),
        warehouse: last.warehouse.clone(),
        destination: last.destination.clone(),
        scheduled_date: date_text(last.scheduled),
        date_deadline: date_text(last.deadline),
        late,
        api_key_id: Some(caller.key_id.clone()),
    };
    let existing = state
        .store
        .insert_outcome(&record, &state.clock.now_text())
        .await?;
    let recorded = match existing {
        None => true,
        Some(at) if at == record.delivered_at => false,
        Some(at) => {
            return Err(ApiError::conflict(
                Code::OutcomeConflict,
                format!("shipment `{shipment_id}` already has an outcome delivered at {at}"),
            ))
        }
    };
    let models = state.models.current();
    let category = match notes {
        Some(note) => {
            let m = models.clone();
            let answer = tokio::task::spawn_blocking(move || m.classifier.classify_one(&note))
                .await
                .map_err(|e| ApiError::internal(format!("classifying the notes: {e}")))?;
            Some(answer.category)
        }
        None => None,
    };
    // Only a new outcome feeds the live history (a repeat would count twice).
    let live = recorded && models.take_outcome(&record, category.as_deref());
    Ok(Json(OutcomeResponse {
        shipment_id,
        recorded,
        late,
        lateness_days: ((delivered - last.deadline) as f64 / 86_400.0 * 100.0).round() / 100.0,
        carrier,
        score_id: last.score_id,
        live_history_updated: live,
        exception_category: category,
    }))
}
