//! The HTTP API. Each module owns its routes and says who may call them; [`router`] puts them
//! together with request ids, metrics, the key check, and the fallback that answers unknown
//! paths in the API's error shape. [`route_table`] lists what the router serves, so a test can
//! hold the OpenAPI document to it.

mod carriers;
mod docs;
mod error;
mod exceptions;
mod health;
mod idempotency;
mod json;
pub mod limits;
mod middleware;
mod models;
mod outcomes;
mod score;

use axum::routing::MethodRouter;
use axum::Router;

pub use docs::ApiDoc;
pub use error::ApiError;

use crate::state::AppState;
use crate::store::keys::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, readiness and the docs page (a page without data: it asks for a key
    /// and reads the description with it).
    Open,
    /// Any valid key, whatever its role: the API description (`/openapi.json`).
    AnyKey,
    /// `GET /metrics`: open unless configured otherwise, then analysts.
    Metrics,
    /// A key with this role (or admin).
    Role(Role),
}

/// One route as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// Collects routes with their access rule.
pub(crate) struct Routes {
    router: Router<AppState>,
    list: Vec<RouteInfo>,
    state: Option<AppState>,
}

impl Routes {
    pub(crate) fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState>,
    ) -> Self {
        self.list.push(RouteInfo {
            method,
            path,
            access,
        });
        let handler = match (&self.state, access) {
            (Some(state), Access::Role(_) | Access::AnyKey | Access::Metrics) => handler
                .route_layer(axum::middleware::from_fn_with_state(
                    (state.clone(), access),
                    middleware::require_key,
                )),
            _ => handler,
        };
        self.router = self.router.route(path, handler);
        self
    }
}

fn collect(state: Option<AppState>) -> Routes {
    let routes = Routes {
        router: Router::new(),
        list: Vec::new(),
        state,
    };
    let routes = health::routes(routes);
    let routes = docs::routes(routes);
    let routes = models::routes(routes);
    let routes = score::routes(routes);
    let routes = carriers::routes(routes);
    let routes = exceptions::routes(routes);
    outcomes::routes(routes)
}

/// Every route of the service, on its state.
pub fn router(state: AppState) -> Router {
    let routes = collect(Some(state.clone()));
    routes
        .router
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

/// What [`router`] serves: method, path template and access rule of every route.
pub fn route_table() -> Vec<RouteInfo> {
    collect(None).list
}
