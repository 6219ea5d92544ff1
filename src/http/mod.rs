//! The HTTP API. Each module owns its routes and says who may call them; [`router`] puts them
//! together with request ids, metrics, the key check, the load limits, and the fallback that
//! answers unknown paths in the API's error shape. The OpenAPI document ([`openapi`]) is built
//! from the same declarations; [`route_table`] lists them for tests.

mod answers;
pub(crate) mod approvals;
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
mod pages;
mod score;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

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

/// What a route costs and so which limits it passes ([`limits::gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Health, readiness and metrics: answered however busy the service is.
    Probe,
    /// Within the requests-in-flight limit and the request timeout.
    Request,
    /// Also within the batches-in-flight limit.
    Batch,
}

/// One route as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
    pub access: Access,
}

/// Collects routes: each is declared once, by its handler's `#[utoipa::path]` (method, path,
/// description) and the module's [`Routes::add`] (who may call it, what it costs), and becomes
/// the router's route, the OpenAPI document's operation and a row of [`route_table`].
pub(crate) struct Routes {
    router: OpenApiRouter<AppState>,
    list: Vec<RouteInfo>,
    state: Option<AppState>,
}

impl Routes {
    /// Adds the handler of `routes!(handler)`, or of `(schemas, paths, method_router)` with the
    /// method router given layers of its own (a body limit).
    pub(crate) fn add(
        mut self,
        access: Access,
        load: Load,
        (schemas, mut paths, handler): UtoipaMethodRouter<AppState>,
    ) -> Self {
        for (path, item) in paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                self.list.push(RouteInfo {
                    method: method.to_string(),
                    path: path.clone(),
                    access,
                });
                // The document says a key is needed exactly where the router asks for one.
                operation.security = match access {
                    Access::Role(_) | Access::AnyKey => {
                        Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                            docs::API_KEY,
                            Vec::<String>::new(),
                        )])
                    }
                    Access::Open | Access::Metrics => None,
                };
            }
        }
        let handler = match &self.state {
            Some(state) => {
                let handler = match access {
                    Access::Role(_) | Access::AnyKey | Access::Metrics => {
                        handler.route_layer(axum::middleware::from_fn_with_state(
                            (state.clone(), access),
                            middleware::require_key,
                        ))
                    }
                    Access::Open => handler,
                };
                match load {
                    Load::Probe => handler,
                    Load::Request | Load::Batch => {
                        handler.route_layer(axum::middleware::from_fn_with_state(
                            (state.clone(), load == Load::Batch),
                            limits::gate,
                        ))
                    }
                }
            }
            None => handler,
        };
        self.router = self.router.routes((schemas, paths, handler));
        self
    }
}

/// The operations of one path item with their methods, upper case as HTTP spells them.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("GET", &mut item.get),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("PATCH", &mut item.patch),
        ("DELETE", &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
}

fn collect(state: Option<AppState>) -> Routes {
    let routes = Routes {
        router: OpenApiRouter::with_openapi(ApiDoc::openapi()),
        list: Vec::new(),
        state,
    };
    let routes = health::routes(routes);
    let routes = docs::routes(routes);
    let routes = models::routes(routes);
    let routes = score::routes(routes);
    let routes = carriers::routes(routes);
    let routes = exceptions::routes(routes);
    let routes = outcomes::routes(routes);
    approvals::routes(routes)
}

/// Every route of the service, on its state.
pub fn router(state: AppState) -> Router {
    let (router, _) = collect(Some(state.clone())).router.split_for_parts();
    router
        .merge(pages::router())
        .fallback(|| async { ApiError::not_found("no such route") })
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

/// The OpenAPI document of what [`router`] serves, built once.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| collect(None).router.split_for_parts().1)
}
