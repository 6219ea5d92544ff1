//! The HTTP API. Each module owns its routes; [`router`] puts them together with the fallback
//! that answers unknown paths in the API's error shape.

mod error;
mod exceptions;
mod health;
mod json;
mod models;

use axum::Router;

pub use error::ApiError;

use crate::state::AppState;

/// Every route of the service, on its state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(models::routes())
        .merge(exceptions::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}
