//! `POST /v1/carriers/recommend`: every carrier known on a shipment's lane, ranked by on-time
//! probability (the delay model with that carrier, blended with its lane scorecard), cost and
//! the shipment's SLA.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::answers::CarrierChoice;
use super::error::ApiError;
use super::json::ApiJson;
use super::{Access, Load, Routes};
use crate::scoring::request::to_table;
use crate::scoring::{CarrierOption, Shipment, ShipmentRequest};
use crate::state::AppState;
use crate::store::keys::Role;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        Access::Role(Role::Workflow),
        Load::Request,
        routes!(recommend),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendResponse {
    pub shipment_id: String,
    /// Best first; empty when no model is loaded or no carrier is known on the lane.
    pub carriers: Vec<CarrierChoice>,
    /// What the ranking could use: "service and cost" or "service only".
    pub basis: Option<String>,
    /// Whether the shipment's tier, priority or slack made on-time delivery weigh more.
    pub strict_sla: bool,
    pub model_version: Option<String>,
    pub degraded: bool,
}

/// Rank the carriers for a shipment that has none booked yet.
#[utoipa::path(
    post,
    path = "/v1/carriers/recommend",
    tag = "scoring",
    request_body = ShipmentRequest,
    responses(
        (status = 200, description = "The carriers, best first", body = RecommendResponse),
        (status = 400, description = "A field is missing or wrong, or a carrier was given", body = super::error::ErrorBody),
    ),
)]
pub async fn recommend(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ShipmentRequest>,
) -> Result<Json<RecommendResponse>, ApiError> {
    if request.carrier.is_some() {
        return Err(ApiError::invalid_field(
            "carrier",
            "leave the carrier out: every carrier on the lane is ranked",
        ));
    }
    let shipment = Shipment::parse(request, state.clock.now().timestamp())
        .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;
    let models = state.models.current();
    let ranking = state.policies.source().ranking.clone();
    let id = shipment.id.clone();
    let Some(lock) = &models.delay else {
        return Ok(Json(RecommendResponse {
            shipment_id: id,
            carriers: Vec::new(),
            basis: None,
            strict_sla: false,
            model_version: None,
            degraded: true,
        }));
    };
    let model = lock.read().unwrap_or_else(|p| p.into_inner());
    let table = to_table(std::slice::from_ref(&shipment));
    let (rec, degraded) = match model.recommend(&table, &[0], None, &ranking) {
        Ok(mut r) => (r.pop().flatten(), false),
        Err(e) => {
            tracing::warn!(error = %e, "carrier recommendation failed");
            (None, true)
        }
    };
    Ok(Json(RecommendResponse {
        shipment_id: id,
        basis: rec.as_ref().map(|r| r.basis.clone()),
        strict_sla: rec.as_ref().is_some_and(|r| r.strict_sla),
        carriers: rec
            .map(|r| {
                std::iter::once(r.recommended)
                    .chain(r.alternatives)
                    .map(|c| CarrierChoice::from(CarrierOption::from(c)))
                    .collect()
            })
            .unwrap_or_default(),
        model_version: models.version.clone(),
        degraded,
    }))
}
